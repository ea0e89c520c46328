"""Caffe ``.caffemodel`` files: the reference FCN-8s/16s/32s and VGG16 weights.

A ``.caffemodel`` is a binary protocol-buffer ``NetParameter``. This module reads it with
the ``protobuf`` package (``pip install fcn8_lasagne[caffe]``) and message classes built on
first use from ``caffe.proto``, a subset of Caffe's schema shipped with the package — no
``protoc`` and no Caffe needed.

Layers come from the ``layer`` field (``LayerParameter``) or, in old files such as
``VGG_ILSVRC_16_layers.caffemodel``, from ``layers`` (``V1LayerParameter``, possibly
wrapping a ``V0LayerParameter``). A blob's shape is its ``BlobShape`` or the legacy
``num``/``channels``/``height``/``width``; its values are ``data`` (float) or
``double_data``.

Mapping to our layers (by name, see :func:`fcn8_lasagne.weights.assign.resolve_layer_name`):

- ``Convolution`` blobs ``[W (out, in, kh, kw), b]`` as they are (Caffe convolves by
  cross-correlation, like ``flip_filters=False``);
- ``Deconvolution`` blobs ``[W (in, out, kh, kw)]`` (FCN deconvolutions have no bias), the
  kernel rotated by 180 degrees for ``TransposedConv2DLayer(flip_filters=False)``;
- ``InnerProduct`` ``fc6`` / ``fc7`` of the ImageNet VGG16 ``(4096, 25088)`` /
  ``(4096, 4096)`` (legacy shape ``(1, 1, out, in)``) reshaped to the convolutions
  ``(4096, 512, 7, 7)`` / ``(4096, 4096, 1, 1)``; ``fc8`` is not loaded;
- the ``Scale`` layers ``scale_pool4`` / ``scale_pool3`` of the "at-once" FCN-8s hold
  fixed factors (0.01, 0.0001); they are checked against the network's
  ``ConstantScaleLayer`` of the same name (see :mod:`fcn8_lasagne.models.caffe_fcn`).

The Caffe FCNs expect BGR inputs in [0, 255] minus the mean
(104.00699, 116.66877, 122.67892).
"""

import os
import re
from importlib import resources

import numpy as np

from .assign import WeightLoadError, assign_params, resolve_layer_name

__all__ = [
    "CAFFE_PROTO",
    "parse_proto",
    "caffe_messages",
    "read_caffemodel",
    "caffe_layers_to_fcn",
    "load_caffemodel",
]

#: Name of the schema file shipped in this package.
CAFFE_PROTO = "caffe.proto"

_IMAGENET_CLASSIFIER = "fc8"
#: Fixed ``Scale`` layers of the "at-once" FCN-8s and the score layers they feed.
_FIXED_SCALE_LAYERS = {"scale_pool4": "score_pool4", "scale_pool3": "score_pool3"}

# --------------------------------------------------------------------------------------
# A parser for the subset of the .proto language that caffe.proto uses.
# --------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>//[^\n]*)
      | (?P<string>"[^"\n]*")
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<symbol>[{}\[\]=;,])
      | (?P<other>\S)
    )""",
    re.VERBOSE,
)


def _tokenize(text, filename):
    tokens = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is None or kind == "comment":
            continue
        if kind == "other":
            line = text.count("\n", 0, match.start()) + 1
            raise SyntaxError(f"{filename}:{line}: unexpected character {match.group(kind)!r}")
        tokens.append(match.group(kind))
    return tokens


class _ProtoParser:
    """Recursive-descent parser from .proto text to a ``FileDescriptorProto``."""

    def __init__(self, text, filename):
        from google.protobuf import descriptor_pb2

        self._pb = descriptor_pb2
        self._tokens = _tokenize(text, filename)
        self._position = 0
        self._filename = filename
        self._unresolved = []  # (field proto, scope, type name)
        self._enums = set()
        self._messages = set()

    # token helpers ------------------------------------------------------------------
    def _peek(self):
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _next(self):
        token = self._peek()
        if token is None:
            raise SyntaxError(f"{self._filename}: unexpected end of file")
        self._position += 1
        return token

    def _expect(self, expected):
        token = self._next()
        if token != expected:
            raise SyntaxError(f"{self._filename}: expected {expected!r}, got {token!r}")

    # grammar ------------------------------------------------------------------------
    def parse(self):
        file_proto = self._pb.FileDescriptorProto(name=self._filename)
        while self._peek() is not None:
            keyword = self._next()
            if keyword == "syntax":
                self._expect("=")
                file_proto.syntax = self._next().strip('"')
                self._expect(";")
            elif keyword == "package":
                file_proto.package = self._next()
                self._expect(";")
            elif keyword == "message":
                self._message(file_proto.message_type.add(), f".{file_proto.package}")
            elif keyword == "enum":
                self._enum(file_proto.enum_type.add(), f".{file_proto.package}")
            else:
                raise SyntaxError(f"{self._filename}: unsupported statement {keyword!r}")
        self._resolve_types()
        return file_proto

    def _message(self, message, scope):
        message.name = self._next()
        full_name = f"{scope}.{message.name}"
        self._messages.add(full_name)
        self._expect("{")
        while self._peek() != "}":
            keyword = self._peek()
            if keyword == "message":
                self._next()
                self._message(message.nested_type.add(), full_name)
            elif keyword == "enum":
                self._next()
                self._enum(message.enum_type.add(), full_name)
            else:
                self._field(message.field.add(), full_name)
        self._expect("}")

    def _enum(self, enum, scope):
        enum.name = self._next()
        self._enums.add(f"{scope}.{enum.name}")
        self._expect("{")
        while self._peek() != "}":
            value = enum.value.add(name=self._next())
            self._expect("=")
            value.number = int(self._next())
            self._expect(";")
        self._expect("}")

    _LABELS = {"optional": "LABEL_OPTIONAL", "repeated": "LABEL_REPEATED",
               "required": "LABEL_REQUIRED"}
    _SCALARS = {
        "double": "TYPE_DOUBLE", "float": "TYPE_FLOAT", "int64": "TYPE_INT64",
        "uint64": "TYPE_UINT64", "int32": "TYPE_INT32", "uint32": "TYPE_UINT32",
        "bool": "TYPE_BOOL", "string": "TYPE_STRING", "bytes": "TYPE_BYTES",
        "sint32": "TYPE_SINT32", "sint64": "TYPE_SINT64",
    }  # fmt: skip

    def _field(self, field, scope):
        Field = self._pb.FieldDescriptorProto
        label = self._next()
        if label not in self._LABELS:
            raise SyntaxError(f"{self._filename}: in {scope[1:]}: expected a field label, "
                              f"got {label!r}")
        field.label = getattr(Field, self._LABELS[label])
        type_name = self._next()
        field.name = self._next()
        self._expect("=")
        field.number = int(self._next())
        if type_name in self._SCALARS:
            field.type = getattr(Field, self._SCALARS[type_name])
        else:
            self._unresolved.append((field, scope, type_name))
        if self._peek() == "[":
            self._next()
            while True:
                option = self._next()
                self._expect("=")
                value = self._next()
                if option == "packed":
                    field.options.packed = value == "true"
                elif option == "default":
                    field.default_value = value.strip('"')
                else:
                    raise SyntaxError(f"{self._filename}: unsupported option {option!r}")
                if self._next() == "]":
                    break
        self._expect(";")

    def _resolve_types(self):
        Field = self._pb.FieldDescriptorProto
        for field, scope, type_name in self._unresolved:
            parts = scope.split(".")
            for depth in range(len(parts), 0, -1):
                candidate = ".".join(parts[:depth] + [type_name])
                if candidate in self._messages or candidate in self._enums:
                    field.type_name = candidate
                    field.type = (
                        Field.TYPE_MESSAGE if candidate in self._messages else Field.TYPE_ENUM
                    )
                    break
            else:
                raise SyntaxError(
                    f"{self._filename}: in {scope[1:]}: unknown type {type_name!r}"
                )


def parse_proto(text, filename):
    """Parse .proto text (the subset used by ``caffe.proto``) to a ``FileDescriptorProto``."""
    return _ProtoParser(text, filename).parse()


_MESSAGES = None


def caffe_messages():
    """Message classes of the shipped ``caffe.proto``, built once.

    Returns
    -------
    dict of str to type
        ``'NetParameter'``, ``'LayerParameter'``, ``'V1LayerParameter'``,
        ``'V0LayerParameter'``, ``'BlobProto'``, ``'BlobShape'``.
    """
    global _MESSAGES
    if _MESSAGES is None:
        try:
            from google.protobuf import descriptor_pool, message_factory
        except ImportError as error:
            raise ImportError(
                "reading .caffemodel files needs protobuf: pip install 'fcn8_lasagne[caffe]'"
            ) from error
        text = resources.files(__package__).joinpath(CAFFE_PROTO).read_text(encoding="utf-8")
        file_proto = parse_proto(text, f"fcn8_lasagne/{CAFFE_PROTO}")
        pool = descriptor_pool.DescriptorPool()  # private: no clash with a real caffe_pb2
        pool.AddSerializedFile(file_proto.SerializeToString())
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21.x
            make_class = message_factory.GetMessageClass
        else:
            make_class = message_factory.MessageFactory(pool).GetPrototype
        _MESSAGES = {
            message.name: make_class(
                pool.FindMessageTypeByName(f"{file_proto.package}.{message.name}")
            )
            for message in file_proto.message_type
        }
    return _MESSAGES


# --------------------------------------------------------------------------------------
# Reading a .caffemodel
# --------------------------------------------------------------------------------------


def _blob_array(blob, source, layer_name, index):
    if blob.HasField("shape"):
        shape = tuple(int(d) for d in blob.shape.dim)
    else:
        shape = tuple(int(d) for d in (blob.num, blob.channels, blob.height, blob.width))
    values = blob.double_data if len(blob.double_data) else blob.data
    dtype = np.float64 if len(blob.double_data) else np.float32
    count = int(np.prod(shape)) if shape else 0
    if len(values) != count:
        raise WeightLoadError(
            f"{source}: layer {layer_name!r}: blob {index} of shape {shape} needs {count} "
            f"values, the file holds {len(values)} (truncated or corrupt file?)"
        )
    return np.array(values, dtype=dtype).reshape(shape)


def read_caffemodel(path):
    """Layers with blobs of a ``.caffemodel``, in file order.

    Returns
    -------
    list of (str, str, list of numpy.ndarray)
        ``(name, type, blobs)``; ``type`` is the layer type string (``'Convolution'``,
        ...) or the V1 enum name (``'CONVOLUTION'``, ...).
    """
    from google.protobuf.message import DecodeError

    messages = caffe_messages()
    source = os.fspath(path)
    with open(source, "rb") as stream:
        data = stream.read()
    net = messages["NetParameter"]()
    try:
        net.ParseFromString(data)
        del data  # the file can be half a gigabyte; keep one copy
    except DecodeError as error:
        raise WeightLoadError(
            f"{source}: cannot parse as a Caffe NetParameter (truncated or not a "
            f".caffemodel?): {error}"
        ) from error
    v1_types = messages["V1LayerParameter"].DESCRIPTOR.enum_types_by_name["LayerType"]
    layers = []
    for layer in net.layer:
        layers.append((layer.name, layer.type, list(layer.blobs)))
    for layer in net.layers:
        if layer.HasField("layer"):  # V0 nested in V1
            layers.append((layer.layer.name, layer.layer.type, list(layer.layer.blobs)))
            continue
        type_value = v1_types.values_by_number.get(layer.type)
        type_name = type_value.name if type_value is not None else str(layer.type)
        layers.append((layer.name, type_name, list(layer.blobs)))
    if not layers:
        raise WeightLoadError(f"{source}: no layers found: not a Caffe .caffemodel file")
    result = []
    for name, type_name, blobs in layers:
        if blobs:
            arrays = [_blob_array(blob, source, name, i) for i, blob in enumerate(blobs)]
            result.append((name, type_name, arrays))
    if not result:
        raise WeightLoadError(
            f"{source}: none of its {len(layers)} layers has weights (a network definition "
            "without trained parameters?)"
        )
    return result


def _strip_leading_ones(array, ndim):
    """Drop leading length-1 axes of a legacy 4-D blob down to ``ndim`` axes."""
    while array.ndim > ndim and array.shape[0] == 1:
        array = array[0]
    return array


def _check_fixed_scale(net, name, blobs, source):
    layer = net.get(name)
    if layer is None or not hasattr(layer, "scale"):
        raise WeightLoadError(
            f"{source}: layer {name!r} scales a skip input (the 'at-once' FCN-8s); "
            "build the network with at_once=True to load this file"
        )
    values = blobs[0]
    if not np.allclose(values, layer.scale, rtol=1e-6, atol=0):
        raise WeightLoadError(
            f"{source}: layer {name!r}: expected the constant scale {layer.scale}, "
            f"got values in [{values.min()}, {values.max()}] (shape {values.shape})"
        )


def caffe_layers_to_fcn(layers, net, source, exclude=()):
    """Turn :func:`read_caffemodel` output into ``{layer: [W, b]}`` for ``net``.

    Fixed ``Scale`` layers are checked here rather than returned. The ImageNet classifier
    ``fc8`` is left out unless ``net`` has a layer of that name.
    """
    values = {}
    for name, type_name, blobs in layers:
        if any(word in name for word in exclude):
            continue
        if name in _FIXED_SCALE_LAYERS and type_name == "Scale":
            _check_fixed_scale(net, name, blobs, source)
            continue
        if name == _IMAGENET_CLASSIFIER and resolve_layer_name(net, name) is None:
            continue
        if len(blobs) > 2:
            raise WeightLoadError(
                f"{source}: layer {name!r} ({type_name}) has {len(blobs)} blobs, "
                "expected a weight and at most a bias"
            )
        weight = blobs[0]
        bias = blobs[1] if len(blobs) == 2 else None
        if type_name.replace("_", "").lower() == "innerproduct":  # V2, V1 enum, V0 string
            weight = _strip_leading_ones(weight, 2)
        if bias is not None:
            bias = _strip_leading_ones(bias, 1)
        values[name] = [weight, bias]
    # A staged model (no Scale layers) in an at-once network would be off by 100x/10^4.
    scaled_in_file = {name for name, _, _ in layers if name in _FIXED_SCALE_LAYERS}
    for scale_name, score_name in _FIXED_SCALE_LAYERS.items():
        if (
            hasattr(net.get(scale_name), "scale")
            and score_name in values
            and scale_name not in scaled_in_file
        ):
            raise WeightLoadError(
                f"{source}: the network scales the input of {score_name!r} "
                f"(layer {scale_name!r}, at_once=True) but the file has no {scale_name!r} "
                "layer: it is a staged model; build the network with at_once=False"
            )
    return values


def load_caffemodel(net, path, exclude=(), strict=True, allow_nonfinite=False):
    """Load a Caffe ``.caffemodel`` (FCN-8s/16s/32s VOC models, VGG16 ILSVRC) into ``net``.

    Parameters
    ----------
    net : dict
        Layer name to layer: the Caffe-semantics builders
        (:func:`~fcn8_lasagne.models.caffe_fcn.buildFCN8s_caffe` and siblings) reproduce
        the reference networks exactly; the tutorial builders take the same weights under
        their own names (``score2``, ``score4``, ``upsample``), with zero deconvolution
        biases.
    path : str or os.PathLike
    exclude : sequence of str
        Skip layers whose name contains one of these substrings (e.g.
        ``('score', 'upscore')`` to take only the VGG body).
    strict : bool
        When true, a layer with weights that ``net`` lacks is an error; else it is skipped.
    allow_nonfinite : bool, default False
        Accept NaN and infinite values (by default an error, as are non-float dtypes).

    Returns
    -------
    list of str
        The layers of ``net`` that were set.

    Raises
    ------
    WeightLoadError
        On an unparsable or truncated file, an unknown layer or a shape mismatch;
        ``net`` is then unchanged.
    ImportError
        When protobuf is not installed.
    """
    source = os.fspath(path)
    values = caffe_layers_to_fcn(read_caffemodel(source), net, source, exclude=exclude)
    return assign_params(net, values, source, convention="cross_correlation", strict=strict,
                         allow_nonfinite=allow_nonfinite)
