"""Files on disk: atomic writes, their stale temporaries, and plain array archives.

Every file the package saves (weights, training state, error histories, configuration,
results, label maps) goes through :func:`atomic_write`: a file is either its old self or
completely new, never half-written. A process killed during a save leaves its temporary
(``.tmp-*``) behind; :func:`remove_stale_temporaries` clears them when a run starts.

:func:`read_npz_arrays` reads the ``arr_0 … arr_{n-1}`` arrays of a Lasagne ``.npz`` with
NumPy only and :func:`check_weight_values` refuses values no network parameter can hold
(integer, boolean or object dtypes; NaN or infinity unless allowed). They live here, below
``layers``, because both the model builders (``buildFCN8(..., load_weights=True)``, which
then set the arrays with the layer-level :func:`~fcn8_lasagne.layers.set_all_param_values`)
and :mod:`fcn8_lasagne.weights` use them, and ``models`` never imports ``weights``.
No message here ever advises unpickling: a weight file never needs it.
"""

import errno
import glob
import os
import tempfile
import zipfile
import zlib

import numpy as np

__all__ = ["atomic_write", "file_mode", "remove_stale_temporaries", "TEMPORARY_PREFIX",
           "read_npz_arrays", "check_weight_values", "describe_content",
           "CORRUPT_ARCHIVE_ERRORS", "WeightLoadError", "TUTORIAL_SKIPPED",
           "read_matconvnet_params", "matconvnet_to_fcn"]

class WeightLoadError(ValueError):
    """A weight file cannot be read or does not fit the network.

    The message names the file, the layer and the expected and found shapes. When it is
    raised by a loader of this package, no parameter of the network has been changed.
    (Defined here, below every reader; :mod:`fcn8_lasagne.weights` exports it.)
    """


#: Prefix of the temporary files :func:`atomic_write` creates next to their target.
TEMPORARY_PREFIX = ".tmp-"

#: What a truncated or corrupt archive raises while it is opened or read.
# a damaged zip can also claim an unsupported compression (NotImplementedError) or
# encryption (RuntimeError)
CORRUPT_ARCHIVE_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError,
                          RuntimeError)


def file_mode():
    """The mode ``open(path, 'w')`` gives a new file: ``0o666`` less the process umask.

    Read from ``/proc/self/status`` where the kernel reports it (no race); otherwise set and
    restored at once with ``os.umask``, which is not thread-safe (another thread creating a
    file in that instant would get umask 0).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _naming(error, path):
    """``error`` (an OSError) again, with ``path`` in its message instead of a temporary."""
    if error.errno is None:
        return type(error)(f"cannot write {path}: {error}")
    try:
        return type(error)(error.errno, f"cannot write {path}: {error.strerror}")
    except TypeError:  # an OSError subclass with another constructor
        return OSError(error.errno, f"cannot write {path}: {error.strerror}")


def atomic_write(path, write, suffix=""):
    """Write ``path`` by ``write(stream)`` on a temporary file, then rename it over ``path``.

    The temporary file (``.tmp-*<suffix>`` in the same folder) is flushed to disk before the
    rename, so an existing ``path`` stays intact if anything fails, and it is removed on
    failure. The new file gets the mode a plain ``open()`` would give it (``0o666`` less the
    umask).

    Parameters
    ----------
    path : str or path-like
    write : callable
        ``write(stream)`` writes the content to a binary stream.
    suffix : str
        Of the temporary file's name (e.g. ``'.npz'``).

    Raises
    ------
    OSError
        The folder not writable, ``path`` a folder, a full disk, …: raised again naming
        ``path``, with the original chained.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"cannot write {path}: it is a folder")
    folder = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=TEMPORARY_PREFIX,
                                                 suffix=suffix)
        with os.fdopen(handle, "wb") as stream:
            os.fchmod(stream.fileno(), file_mode())
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise _naming(error, path) from error
        raise


def remove_stale_temporaries(folder):
    """Remove the ``.tmp-*`` files an interrupted :func:`atomic_write` left in ``folder``.

    Call it only where no other process is saving into ``folder`` (``fcn8 train`` refuses
    a second run in one folder).

    Returns
    -------
    list of (str, int)
        The removed files and their sizes in bytes (empty when there were none).
    """
    removed = []
    for path in sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)),
                                              TEMPORARY_PREFIX + "*"))):
        if not os.path.isfile(path) or os.path.islink(path):
            continue
        size = os.path.getsize(path)
        os.unlink(path)
        removed.append((path, size))
    return removed


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def describe_content(head):
    """What the first bytes of a file look like, for a message: ``'an empty file'``,
    ``'a text file'``, ``'a Python pickle'``, ... or ``None`` for a zip archive."""
    if not head:
        return "an empty file (0 bytes)"
    if head.startswith(_ZIP_MAGICS):
        return None
    if head.startswith(_NPY_MAGIC):
        return "a single .npy array"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if head.startswith(b"\x89HDF") or head.startswith(b"MATLAB"):
        return "a MATLAB/HDF5 file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data that is not a zip archive"
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return f"a text file (it starts {text[:24]!r})"
    return "binary data that is not a zip archive"


def _arr_index(name):
    prefix, _, index = name.partition("_")
    return (prefix != "arr", int(index) if index.isdigit() else -1, name)


def read_npz_arrays(path, allow_nonfinite=False):
    """Read the ``arr_0 … arr_{n-1}`` arrays of a Lasagne weight file, in order.

    Parameters
    ----------
    path : str or path-like
    allow_nonfinite : bool, default False
        Accept NaN and infinite values (by default they are an error: a network with them
        predicts class 0 everywhere).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming ``path``: not an ``.npz`` archive (saying what it looks like), keys other
        than ``arr_0 … arr_{n-1}``, truncated or corrupt data, pickled (object) arrays,
        non-float dtypes or (unless allowed) non-finite values.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a folder, not an .npz weight file")
    with open(path, "rb") as stream:  # a missing file stays a FileNotFoundError
        head = stream.read(64)
    kind = describe_content(head)
    if kind is not None:
        raise ValueError(f"{path}: not an .npz weight file: {kind}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name.endswith(".npy")]
            names = [name[:-len(".npy")] for name in members]
            expected = [f"arr_{i}" for i in range(len(names))]
            if not names or sorted(names, key=_arr_index) != expected:
                raise ValueError(
                    f"{path}: not a Lasagne weight file: expected arrays arr_0 … "
                    f"arr_{max(len(names) - 1, 0)}, found "
                    f"{sorted(names)[:5] if names else 'no arrays'}")
            values = []
            for name in expected:
                with archive.open(name + ".npy") as member:
                    try:
                        values.append(np.lib.format.read_array(member, allow_pickle=False))
                    except ValueError as error:
                        if "allow_pickle" in str(error) or "bject arrays" in str(error):
                            raise ValueError(
                                f"{path}: {name} holds pickled (object) data; a weight file "
                                "holds plain numeric arrays, so it is not loaded") from None
                        raise ValueError(f"{path}: {name}: truncated or corrupt array "
                                         f"({error})") from None
    except FileNotFoundError:
        raise
    except (*CORRUPT_ARCHIVE_ERRORS, OSError) as error:
        raise ValueError(f"{path}: truncated or corrupt .npz archive "
                         f"({type(error).__name__}: {error})") from None
    check_weight_values(values, path, [f"arr_{i}" for i in range(len(values))],
                        allow_nonfinite=allow_nonfinite)
    return values


def check_weight_values(values, source, names, allow_nonfinite=False, check_dtype=True):
    """Refuse arrays no network parameter should take: a dtype that is not floating point
    (integers would be cast silently) and, unless ``allow_nonfinite``, NaN or infinity.

    Parameters
    ----------
    values : sequence of array-like
    source : str
        Starts the message (usually the file).
    names : sequence of str
        One per value (``'arr_3'``, ``'conv1_1.W'``, ...).
    allow_nonfinite : bool
    check_dtype : bool, default True
        Whether a dtype other than floating point is an error (else such arrays are only
        skipped by the finiteness check).

    Raises
    ------
    ValueError
        Naming ``source``, the array, what was expected and what was found.
    """
    for name, value in zip(names, values):
        if value is None:
            continue
        value = np.asarray(value)
        if value.dtype.kind != "f":
            if not check_dtype:
                continue
            raise ValueError(f"{source}: {name} has dtype {value.dtype}, expected floating "
                             "point weights (float32 or float64)")
        if allow_nonfinite:
            continue
        finite = np.isfinite(value)
        if not finite.all():
            n_nan = int(np.isnan(value).sum())
            n_inf = int(value.size - finite.sum()) - n_nan
            raise ValueError(
                f"{source}: {name} {tuple(value.shape)} holds {n_nan} NaN and {n_inf} "
                "infinite values, expected finite weights (a diverged or corrupt run?); "
                "pass allow_nonfinite=True (CLI: --allow-nonfinite) to load them anyway")


# MatConvNet DagNN ``.mat`` files (see :mod:`fcn8_lasagne.weights.matconvnet`)

#: Substrings of layer names the original ``buildFCN8(pascal=True)`` did not load.
TUTORIAL_SKIPPED = ("score", "upsample", "final", "probs")

# Longer suffixes first: "conv1_1_filter" must not be read as layer "conv1_1_filte".
_SUFFIXES = (("_filter", "W"), ("_bias", "b"), ("f", "W"), ("b", "b"))


def _matlab_string(value):
    """A MATLAB char array as ``scipy.io.loadmat`` returns it, as a Python str."""
    array = np.asarray(value)
    if array.dtype == object:
        if array.size != 1:
            raise ValueError(f"expected one string, got an object array of shape {array.shape}")
        return _matlab_string(array.reshape(-1)[0])
    if array.dtype.kind in "US":
        return "".join(str(item) for item in array.reshape(-1))
    raise ValueError(f"expected a string, got an array of dtype {array.dtype}")


def read_matconvnet_params(path):
    """The ``params`` of a MatConvNet DagNN ``.mat`` file as a list of ``(name, value)``.

    Raises
    ------
    WeightLoadError
        When the file cannot be read or has no ``params`` struct with ``name`` and
        ``value`` fields.
    """
    import scipy.io

    path = os.fspath(path)
    with open(path, "rb") as stream:  # a missing file stays a FileNotFoundError
        kind = describe_content(stream.read(128))
        stream.seek(0)
        if kind is None or kind.startswith(("an empty", "a text", "a Python", "a single")):
            raise WeightLoadError(f"{path}: not a MATLAB .mat file: "
                                  f"{kind or 'a zip archive (an .npz?)'}")
        try:
            contents = scipy.io.loadmat(stream)
        except Exception as error:  # truncated files raise OSError, ValueError, ...
            raise WeightLoadError(
                f"{path}: cannot read the MatConvNet file: {type(error).__name__}: {error}"
            ) from error
    params = contents.get("params")
    if params is None or params.dtype.names is None:
        raise WeightLoadError(
            f"{path}: not a MatConvNet DagNN file: expected a struct array 'params', "
            f"found variables {sorted(k for k in contents if not k.startswith('__'))}"
        )
    missing = {"name", "value"} - set(params.dtype.names)
    if missing:
        raise WeightLoadError(
            f"{path}: 'params' lacks the field(s) {sorted(missing)} "
            f"(has {list(params.dtype.names)})"
        )
    entries = []
    for index, entry in enumerate(params.reshape(-1, order="F")):
        try:
            name = _matlab_string(entry["name"])
        except ValueError as error:
            raise WeightLoadError(f"{path}: params({index + 1}).name: {error}") from error
        entries.append((name, np.asarray(entry["value"])))
    return entries


def _split_param_name(name):
    for suffix, kind in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], kind
    return None, None


def matconvnet_to_fcn(entries, source, skip=TUTORIAL_SKIPPED):
    """Group MatConvNet ``(name, value)`` params into ``{layer: [W, b]}``.

    Filters are converted with ``np.swapaxes(value.T, 2, 3)``; biases are flattened.
    """
    weights, biases = {}, {}
    for name, value in entries:
        layer, kind = _split_param_name(name)
        if layer is None:
            raise WeightLoadError(
                f"{source}: parameter {name!r} has no filter or bias suffix "
                "('f'/'b' or '_filter'/'_bias')"
            )
        if any(word in layer for word in skip):
            continue
        if kind == "W":
            if value.ndim > 4:
                raise WeightLoadError(
                    f"{source}: layer {layer!r}: filter expected at most 4 axes "
                    f"(kh, kw, in, out), got shape {value.shape}"
                )
            # MATLAB drops trailing singleton axes (a 1-output filter is kh x kw x in).
            value = value.reshape(value.shape + (1,) * (4 - value.ndim))
            weights[layer] = np.swapaxes(value.T, 2, 3)
        else:
            biases[layer] = value.reshape(-1)
    for layer in biases:
        if layer not in weights:
            raise WeightLoadError(f"{source}: layer {layer!r} has a bias but no filter")
    return {layer: [weights[layer], biases.get(layer)] for layer in weights}
