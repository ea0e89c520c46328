"""MXNet ``.params`` files (``NDArray::Save`` of a named NDArray list), read and written with
NumPy alone.

MXNet 1.9.1, the last release, cannot be imported beside NumPy >= 1.24, so Gluon-CV's
weights are read here from the byte layout of ``src/ndarray/ndarray.cc`` (little-endian,
dmlc serializer):

* ``uint64 0x112`` (kMXAPINDArrayListMagic), ``uint64 0`` (reserved);
* ``uint64 n``, then ``n`` array records;
* ``uint64 n_names`` (0 or ``n``), then per name ``uint64 length`` and UTF-8 bytes.

An array record starts with a ``uint32`` magic: **V2** ``0xF993FAC9`` (``int32 stype``,
then the shape, MXNet >= 0.12), **V3** ``0xF993FACA`` (the same, saved under NumPy shape
semantics), **V1** ``0xF993FAC8`` (no stype) or, before V1, no magic at all (the ``uint32``
is ``ndim`` and the dims are ``uint32``). The shape is ``int32 ndim`` and ``ndim`` x ``int64``
(ndim 0 means "no array" except in V3, where it is a scalar and -1 is "no array"); then
``int32 dev_type, dev_id`` (ignored), ``int32`` dtype code (mshadow's) and the raw C-order
data. The one rule to know: everything is checked while reading -- sparse storage, unknown
magics and dtype codes, truncation and trailing bytes are refused with a one-line
:class:`~fcn8_lasagne.weights.WeightLoadError` naming the file, the array (index and name)
and what was expected and found.
"""

import os
import struct
from collections import OrderedDict

import numpy as np

from ..files import atomic_write
from .assign import WeightLoadError

__all__ = ["NDARRAY_LIST_MAGIC", "NDARRAY_V1_MAGIC", "NDARRAY_V2_MAGIC", "NDARRAY_V3_MAGIC",
           "MXNET_DTYPES", "read_ndarray_list", "read_mxnet_params", "write_mxnet_params"]

NDARRAY_LIST_MAGIC = 0x112
NDARRAY_V1_MAGIC = 0xF993FAC8
NDARRAY_V2_MAGIC = 0xF993FAC9
NDARRAY_V3_MAGIC = 0xF993FACA

#: mshadow type flag -> NumPy dtype (12, bfloat16, is widened to float32 when read).
MXNET_DTYPES = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8",
                7: "?", 8: "<i2", 9: "<u2", 10: "<u4", 11: "<u8", 12: "bfloat16"}
_CODES = {np.dtype(v): k for k, v in MXNET_DTYPES.items() if v != "bfloat16"}
_STYPES = {-1: "undefined", 0: "default", 1: "row_sparse", 2: "csr"}
_MAX_NDIM = 32
_VERSIONS = ("v1", "v2", "v3", "legacy")


class _Reader:
    def __init__(self, data, source):
        self.data = data
        self.offset = 0
        self.source = source
        self.where = "the header"

    def fail(self, message):
        raise WeightLoadError(f"{self.source}: {self.where}: {message}")

    def take(self, count, what):
        end = self.offset + count
        if count < 0 or end > len(self.data):
            self.fail(f"truncated file: expected {count} bytes of {what} at byte "
                      f"{self.offset}, got {max(len(self.data) - self.offset, 0)}")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def unpack(self, fmt, what):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))[0]


def _read_shape(reader, magic_version):
    if magic_version == "legacy":
        ndim = reader.unpack("I", "ndim")
        kind, size = "I", "uint32 dims"
    else:
        ndim = reader.unpack("i", "ndim")
        kind, size = "q", "int64 dims"
    if ndim == -1 and magic_version == "v3":
        return None
    if ndim == 0 and magic_version != "v3":
        return None
    if not 0 <= ndim <= _MAX_NDIM:
        reader.fail(f"expected a shape of 0 to {_MAX_NDIM} dimensions, got ndim {ndim}")
    dims = tuple(reader.unpack(kind, size) for _ in range(ndim))
    if any(d < 0 for d in dims):
        reader.fail(f"expected non-negative dimensions, got shape {dims}")
    return dims


def _read_array(reader, first_word):
    if first_word in (NDARRAY_V2_MAGIC, NDARRAY_V3_MAGIC):
        version = "v2" if first_word == NDARRAY_V2_MAGIC else "v3"
        stype = reader.unpack("i", "the storage type")
        if stype not in _STYPES:
            reader.fail(f"expected storage type 0 (default), got {stype}")
        if stype in (1, 2):
            reader.fail(f"sparse storage ({_STYPES[stype]}) is not supported, expected "
                        "dense (default) arrays")
    elif first_word == NDARRAY_V1_MAGIC:
        version, stype = "v1", 0
    elif first_word <= _MAX_NDIM:
        version, stype = "legacy", 0
        reader.offset -= 4  # the word was ndim
    else:
        reader.fail(f"unknown array magic 0x{first_word:08X}, expected 0x{NDARRAY_V2_MAGIC:08X}"
                    f" (V2), 0x{NDARRAY_V3_MAGIC:08X} (V3), 0x{NDARRAY_V1_MAGIC:08X} (V1) or a "
                    f"legacy ndim <= {_MAX_NDIM}")
    shape = _read_shape(reader, version)
    if shape is None:
        reader.fail("the array is empty (a 'none' NDArray), expected a value")
    if stype == -1:
        reader.fail("expected storage type 0 (default) for an array with a shape, got -1 "
                    "(undefined)")
    reader.unpack("i", "the device type")
    reader.unpack("i", "the device id")
    code = reader.unpack("i", "the dtype code")
    if code not in MXNET_DTYPES:
        reader.fail(f"unknown dtype code {code}, expected one of {sorted(MXNET_DTYPES)} "
                    "(mshadow type flags)")
    count = int(np.prod(shape, dtype=np.int64))
    if MXNET_DTYPES[code] == "bfloat16":
        raw = reader.take(2 * count, f"bfloat16 data of shape {shape}")
        bits = np.frombuffer(raw, "<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    dtype = np.dtype(MXNET_DTYPES[code])
    raw = reader.take(dtype.itemsize * count, f"{dtype.name} data of shape {shape}")
    return np.frombuffer(raw, dtype).reshape(shape).copy()


def read_ndarray_list(path):
    """Read an MXNet NDArray list file: ``(arrays, names)``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    (list of numpy.ndarray, list of str)
        ``names`` is empty for an unnamed list (``mx.nd.save(path, [a, b])``).

    Raises
    ------
    WeightLoadError
        For another kind of file, a sparse array, an unknown magic or dtype code, a
        truncated record or trailing bytes; the message names the file, the array and what
        was expected and found.
    """
    source = os.fspath(path)
    with open(source, "rb") as stream:  # a missing file stays a FileNotFoundError
        data = stream.read()
    reader = _Reader(data, source)
    if data[:4] == b"PK\x03\x04":
        reader.fail("this is a ZIP archive (an .npz written by MXNet 2's npx.savez, or a "
                    "Gluon-CV download still zipped), expected an MXNet NDArray list")
    header = reader.unpack("Q", "the list header")
    if header != NDARRAY_LIST_MAGIC:
        reader.fail(f"not an MXNet NDArray list: expected header 0x{NDARRAY_LIST_MAGIC:X}, "
                    f"got 0x{header:X}")
    reader.unpack("Q", "the reserved word")
    count = reader.unpack("Q", "the array count")
    if count > len(data) // 4:
        reader.fail(f"truncated or corrupt file: {count} arrays cannot fit in "
                    f"{len(data)} bytes")
    arrays = []
    for index in range(count):
        reader.where = f"array {index}"
        first_word = reader.unpack("I", "the array magic")
        arrays.append(_read_array(reader, first_word))
    reader.where = "the names"
    n_names = reader.unpack("Q", "the name count")
    if n_names not in (0, count):
        reader.fail(f"expected 0 or {count} names (one per array), got {n_names}")
    names = []
    for index in range(n_names):
        reader.where = f"name {index}"
        length = reader.unpack("Q", "the name length")
        raw = reader.take(length, "the name")
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            reader.fail(f"expected a UTF-8 name, got {raw[:40]!r} ({error.reason})")
    if reader.offset != len(data):
        reader.where = "the end"
        reader.fail(f"expected the file to end at byte {reader.offset}, got "
                    f"{len(data) - reader.offset} trailing bytes")
    return arrays, names


def read_mxnet_params(path):
    """Read a named ``.params`` file (``Block.save_parameters``) as ``{name: array}``.

    Raises
    ------
    WeightLoadError
        As :func:`read_ndarray_list`, and for a list without names or with a name twice.
    """
    source = os.fspath(path)
    arrays, names = read_ndarray_list(source)
    if arrays and not names:
        raise WeightLoadError(f"{source}: the file holds {len(arrays)} unnamed arrays, "
                              "expected named parameters (Block.save_parameters)")
    result = OrderedDict()
    for index, (name, array) in enumerate(zip(names, arrays)):
        if name in result:
            raise WeightLoadError(f"{source}: array {index} {name!r}: the name is given "
                                  "twice")
        result[name] = array
    return result


def _record(array, version):
    array = np.asarray(array, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
    if array.dtype not in _CODES:
        raise ValueError(f"MXNet has no dtype code for {array.dtype}")
    if array.ndim == 0 and version != "v3":
        raise ValueError("a 0-d array can only be written as V3 (ndim 0 means 'none' "
                         "before)")
    parts = []
    if version == "legacy":
        parts.append(struct.pack("<I", array.ndim))
        parts.append(struct.pack(f"<{array.ndim}I", *array.shape))
    else:
        magic = {"v1": NDARRAY_V1_MAGIC, "v2": NDARRAY_V2_MAGIC, "v3": NDARRAY_V3_MAGIC}
        parts.append(struct.pack("<I", magic[version]))
        if version != "v1":
            parts.append(struct.pack("<i", 0))
        parts.append(struct.pack("<i", array.ndim))
        parts.append(struct.pack(f"<{array.ndim}q", *array.shape))
    parts.append(struct.pack("<iii", 1, 0, _CODES[array.dtype]))
    parts.append(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return b"".join(parts)


def write_mxnet_params(path, arrays, version="v2"):
    """Write arrays as an MXNet NDArray list, atomically (what ``mx.nd.save`` writes).

    Parameters
    ----------
    path : str or path-like
    arrays : mapping of str to array, or sequence of arrays
        A mapping writes names (a ``.params`` file); a sequence an unnamed list.
    version : {'v2', 'v3', 'v1', 'legacy'}, default 'v2'
        The record layout (MXNet 1.x writes V2).
    """
    if version not in _VERSIONS:
        raise ValueError(f"version must be one of {_VERSIONS}, got {version!r}")
    if hasattr(arrays, "keys"):
        names = [str(name) for name in arrays.keys()]
        values = [np.asarray(arrays[name]) for name in arrays.keys()]
    else:
        names, values = [], [np.asarray(value) for value in arrays]
    parts = [struct.pack("<QQQ", NDARRAY_LIST_MAGIC, 0, len(values))]
    parts += [_record(value, version) for value in values]
    parts.append(struct.pack("<Q", len(names)))
    for name in names:
        raw = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(raw)) + raw)
    payload = b"".join(parts)
    atomic_write(os.fspath(path), lambda stream: stream.write(payload), suffix=".params")
