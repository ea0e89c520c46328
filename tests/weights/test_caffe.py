"""Caffe .caffemodel files: the shipped schema, FCN VOC models, VGG16 ILSVRC (V1)."""

import numpy as np
import pytest

from fcn8_lasagne.models.caffe_fcn import buildFCN8s_caffe, buildFCN32s_caffe
from fcn8_lasagne.weights.assign import WeightLoadError
from fcn8_lasagne.weights.caffe import (
    caffe_messages,
    load_caffemodel,
    parse_proto,
    read_caffemodel,
)

from ._tiny_nets import (
    BLOCK_OF,
    CONV_NAMES,
    TINY_WIDTHS,
    assert_unchanged,
    distinct,
    param_layers,
    snapshot,
    tiny_tutorial_fcn,
)

pytest.importorskip("google.protobuf")

N_CLASSES = 3
DECONVOLUTIONS = ("upscore2", "upscore_pool4", "upscore8", "upscore16", "upscore")

# Field numbers of BVLC/caffe src/caffe/proto/caffe.proto, written down independently of
# the shipped schema so that a typo in either is caught.
CAFFE_FIELD_NUMBERS = {
    "NetParameter": {"name": 1, "layers": 2, "layer": 100},
    "LayerParameter": {"name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7},
    "V1LayerParameter": {"bottom": 2, "top": 3, "name": 4, "type": 5, "blobs": 6, "layer": 1},
    "V0LayerParameter": {"name": 1, "type": 2, "blobs": 50},
    "BlobProto": {"shape": 7, "data": 5, "diff": 6, "double_data": 8, "double_diff": 9,
                  "num": 1, "channels": 2, "height": 3, "width": 4},
    "BlobShape": {"dim": 1},
}


# -- writing .caffemodel files --------------------------------------------------------


def add_blob(blobs, array, legacy=False, double=False):
    blob = blobs.add()
    array = np.asarray(array)
    if legacy:  # num, channels, height, width with leading ones
        dims = (1,) * (4 - array.ndim) + array.shape
        blob.num, blob.channels, blob.height, blob.width = dims
    else:
        blob.shape.dim.extend(array.shape)
    (blob.double_data if double else blob.data).extend(array.reshape(-1).tolist())


def write_caffemodel(path, layers, legacy=False):
    """``layers``: list of (name, type, [arrays]); ``legacy`` writes V1 ``layers``."""
    messages = caffe_messages()
    net = messages["NetParameter"](name="FCN")
    v1_types = {"Convolution": 4, "Deconvolution": 39, "InnerProduct": 14, "ReLU": 18,
                "Pooling": 17, "Data": 5, "Dropout": 6, "Softmax": 20}
    for name, type_name, arrays in layers:
        if legacy:
            layer = net.layers.add(name=name, type=v1_types[type_name])
        else:
            layer = net.layer.add(name=name, type=type_name)
        for array in arrays:
            add_blob(layer.blobs, array, legacy=legacy)
    path.write_bytes(net.SerializeToString())


def fcn_layers(net, kind="fcn8s", n_classes=N_CLASSES):
    """Layers of a Caffe FCN VOC model whose blobs fit ``net`` (Caffe names and layouts)."""
    layers = [("data", "Input", [])]
    for index, name in enumerate(param_layers(net)):
        shape = net[name].W.get_value().shape
        if name in DECONVOLUTIONS:
            layers.append((name, "Deconvolution", [distinct(shape, index)]))
        else:
            arrays = [distinct(shape, index), distinct(shape[:1], index + 50)]
            layers.append((name, "Convolution", arrays))
            layers.append((f"relu_{name}", "ReLU", []))
    return layers


def vgg16_ilsvrc_layers(widths=TINY_WIDTHS, n_imagenet=10):
    """The V1 VGG_ILSVRC_16_layers layout: fc layers are InnerProduct (out, in)."""
    layers = [("data", "Data", [])]
    channels = 3
    for index, name in enumerate(CONV_NAMES):
        width = widths[BLOCK_OF[name]]
        layers.append((name, "Convolution", [distinct((width, channels, 3, 3), index),
                                             distinct((width,), index + 50)]))
        layers.append((name.replace("conv", "relu"), "ReLU", []))
        channels = width
    for index, (name, shape) in enumerate(
        [("fc6", (widths[5], channels * 49)), ("fc7", (widths[5], widths[5])),
         ("fc8", (n_imagenet, widths[5]))], start=20):
        layers.append((name, "InnerProduct", [distinct(shape, index),
                                              distinct(shape[:1], index + 50)]))
    layers.append(("prob", "Softmax", []))
    return layers


# -- raw protobuf wire format, from field numbers only --------------------------------


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number, payload):
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int_field(number, value):
    return _varint(number << 3) + _varint(value)


def _raw_blob(array, legacy=False):
    array = np.asarray(array, dtype="<f4")
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        header = b"".join(_int_field(n, d) for n, d in zip((1, 2, 3, 4), dims))
    else:
        header = _field(7, _field(1, b"".join(_varint(d) for d in array.shape)))
    return header + _field(5, array.tobytes())


# -- tests ----------------------------------------------------------------------------


def test_schema_has_caffes_field_numbers():
    messages = caffe_messages()
    for message, fields in CAFFE_FIELD_NUMBERS.items():
        descriptor = messages[message].DESCRIPTOR
        for field, number in fields.items():
            assert descriptor.fields_by_name[field].number == number, (message, field)
    data = messages["BlobProto"].DESCRIPTOR.fields_by_name["data"]
    repeated = (data.is_repeated if hasattr(data, "is_repeated")  # protobuf >= 6
                else data.label == data.LABEL_REPEATED)
    assert data.type == data.TYPE_FLOAT and repeated
    v1_type = messages["V1LayerParameter"].DESCRIPTOR.fields_by_name["type"].enum_type
    assert v1_type.values_by_name["INNER_PRODUCT"].number == 14
    assert v1_type.values_by_name["DECONVOLUTION"].number == 39


def test_proto_parser_rejects_what_it_does_not_understand():
    with pytest.raises(SyntaxError, match="unknown type 'Missing'"):
        parse_proto('syntax = "proto2"; package p; message A { optional Missing m = 1; }',
                    "x.proto")
    with pytest.raises(SyntaxError, match="unsupported statement 'service'"):
        parse_proto("package p; service S {}", "x.proto")


def test_hand_encoded_file_is_read(tmp_path):
    weight = distinct((2, 3, 3, 3), 1)
    bias = distinct((2,), 2)
    inner = distinct((4, 6), 3)
    new_layer = _field(1, b"conv1_1") + _field(2, b"Convolution") + _field(
        7, _raw_blob(weight)) + _field(7, _raw_blob(bias))
    v1_layer = _field(4, b"fc6") + _int_field(5, 14) + _field(6, _raw_blob(inner, legacy=True))
    v0_layer = _field(1, _field(1, b"fc7") + _field(2, b"innerproduct") + _field(
        50, _raw_blob(bias)))
    path = tmp_path / "raw.caffemodel"
    path.write_bytes(_field(1, b"raw") + _field(100, new_layer) + _field(2, v1_layer)
                     + _field(2, v0_layer) + _field(100, _field(1, b"relu") + _field(2, b"ReLU")))
    layers = read_caffemodel(path)
    assert [(name, type_name) for name, type_name, _ in layers] == [
        ("conv1_1", "Convolution"), ("fc6", "INNER_PRODUCT"), ("fc7", "innerproduct")]
    np.testing.assert_array_equal(layers[0][2][0], weight)
    np.testing.assert_array_equal(layers[0][2][1], bias)
    assert layers[1][2][0].shape == (1, 1, 4, 6)
    np.testing.assert_array_equal(layers[1][2][0][0, 0], inner)
    np.testing.assert_array_equal(layers[2][2][0], bias)


@pytest.mark.parametrize("at_once", [False, True])
def test_fcn8s_into_caffe_semantics_net(tmp_path, at_once):
    net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, at_once=at_once, widths=TINY_WIDTHS)
    layers = fcn_layers(net)
    if at_once:
        layers.insert(-4, ("scale_pool4", "Scale", [np.full(TINY_WIDTHS[3], 0.01)]))
        layers.insert(-2, ("scale_pool3", "Scale", [np.full(TINY_WIDTHS[2], 0.0001)]))
    path = tmp_path / "fcn8s.caffemodel"
    write_caffemodel(path, layers)
    loaded = load_caffemodel(net, path)
    assert loaded == param_layers(net)
    blobs = {name: arrays for name, _, arrays in layers}
    for name in param_layers(net):
        if name in DECONVOLUTIONS:  # (in, out, kh, kw), rotated for flip_filters=False
            np.testing.assert_array_equal(net[name].W.get_value(),
                                          blobs[name][0][:, :, ::-1, ::-1])
            assert net[name].b is None
        else:
            np.testing.assert_array_equal(net[name].W.get_value(), blobs[name][0])
            np.testing.assert_array_equal(net[name].b.get_value(), blobs[name][1])


def test_atonce_and_staged_files_need_the_matching_net(tmp_path):
    staged = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    at_once = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, at_once=True, widths=TINY_WIDTHS)
    layers = fcn_layers(staged)
    staged_path = tmp_path / "staged.caffemodel"
    write_caffemodel(staged_path, layers)
    atonce_path = tmp_path / "atonce.caffemodel"
    write_caffemodel(atonce_path, layers + [
        ("scale_pool4", "Scale", [np.full(TINY_WIDTHS[3], 0.01)]),
        ("scale_pool3", "Scale", [np.full(TINY_WIDTHS[2], 0.0001)])])
    wrong_scale_path = tmp_path / "wrong_scale.caffemodel"
    write_caffemodel(wrong_scale_path, layers + [
        ("scale_pool4", "Scale", [np.full(TINY_WIDTHS[3], 0.5)]),
        ("scale_pool3", "Scale", [np.full(TINY_WIDTHS[2], 0.0001)])])
    for net, path, message in [
        (staged, atonce_path, "build the network with at_once=True"),
        (at_once, staged_path, "build the network with at_once=False"),
        (at_once, wrong_scale_path, "'scale_pool4': expected the constant scale 0.01"),
    ]:
        before = snapshot(net)
        with pytest.raises(WeightLoadError, match=message):
            load_caffemodel(net, path)
        assert_unchanged(net, before)


def test_fcn8s_into_tutorial_names(tmp_path):
    caffe_net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    layers = fcn_layers(caffe_net)
    path = tmp_path / "fcn8s-heavy-pascal.caffemodel"
    write_caffemodel(path, layers)
    net = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    net["score4"].b.set_value(np.ones(N_CLASSES, net["score4"].b.dtype))
    load_caffemodel(net, path)
    blobs = {name: arrays for name, _, arrays in layers}
    for ours, theirs in [("score2", "upscore2"), ("score4", "upscore_pool4"),
                         ("upsample", "upscore8")]:
        np.testing.assert_array_equal(net[ours].W.get_value(),
                                      blobs[theirs][0][:, :, ::-1, ::-1])
        np.testing.assert_array_equal(net[ours].b.get_value(), np.zeros(N_CLASSES))
    # the tutorial's score_pool4 is flip_filters=True: its (1x1) kernel is rotated too
    np.testing.assert_array_equal(net["score_pool4"].W.get_value(), blobs["score_pool4"][0])


def test_fcn32s_file(tmp_path):
    net = buildFCN32s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    layers = fcn_layers(net)
    path = tmp_path / "fcn32s.caffemodel"
    write_caffemodel(path, layers)
    assert load_caffemodel(net, path)[-1] == "upscore"
    tutorial = tiny_tutorial_fcn("fcn32", n_classes=N_CLASSES)
    assert load_caffemodel(tutorial, path)[-1] == "upsample"


@pytest.mark.parametrize("legacy", [True, False])
def test_vgg16_ilsvrc_inner_products_become_convolutions(tmp_path, legacy):
    layers = vgg16_ilsvrc_layers()
    path = tmp_path / "VGG_ILSVRC_16_layers.caffemodel"
    write_caffemodel(path, layers, legacy=legacy)
    net = tiny_tutorial_fcn("fcn8", n_classes=N_CLASSES)
    before = snapshot(net)
    assert load_caffemodel(net, path) == list(CONV_NAMES) + ["fc6", "fc7"]
    blobs = {name: arrays for name, _, arrays in layers}
    for name in CONV_NAMES:
        np.testing.assert_array_equal(net[name].W.get_value(), blobs[name][0])
        np.testing.assert_array_equal(net[name].b.get_value(), blobs[name][1])
    fc6 = net["fc6"].W.get_value()
    for o, c, i, j in [(0, 0, 0, 0), (4, 3, 2, 6), (6, 5, 6, 6)]:
        assert fc6[o, c, i, j] == blobs["fc6"][0][o, c * 49 + i * 7 + j]
    np.testing.assert_array_equal(net["fc7"].W.get_value()[:, :, 0, 0], blobs["fc7"][0])
    np.testing.assert_array_equal(net["fc7"].b.get_value(), blobs["fc7"][1])
    after = snapshot(net)
    for name in ("score_fr", "score2", "upsample"):
        np.testing.assert_array_equal(before[name][0], after[name][0])


def test_double_data_blobs(tmp_path):
    net = buildFCN32s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    messages = caffe_messages()
    model = messages["NetParameter"]()
    layer = model.layer.add(name="score_fr", type="Convolution")
    weight = np.random.default_rng(1).standard_normal((N_CLASSES, 7, 1, 1))
    add_blob(layer.blobs, weight, double=True)
    add_blob(layer.blobs, np.arange(N_CLASSES, dtype=float), double=True)
    path = tmp_path / "double.caffemodel"
    path.write_bytes(model.SerializeToString())
    load_caffemodel(net, path)
    np.testing.assert_array_equal(net["score_fr"].W.get_value(),
                                  weight.astype(net["score_fr"].W.dtype))


def test_truncated_file_changes_nothing(tmp_path):
    net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    path = tmp_path / "truncated.caffemodel"
    write_caffemodel(path, fcn_layers(net))
    data = path.read_bytes()
    before = snapshot(net)
    for cut in (len(data) // 3, len(data) - 5):
        path.write_bytes(data[:cut])
        with pytest.raises(WeightLoadError, match=str(path)):
            load_caffemodel(net, path)
        assert_unchanged(net, before)


def test_blob_with_too_few_values(tmp_path):
    messages = caffe_messages()
    model = messages["NetParameter"]()
    layer = model.layer.add(name="conv1_1", type="Convolution")
    blob = layer.blobs.add()
    blob.shape.dim.extend([2, 3, 3, 3])
    blob.data.extend([0.0] * 50)
    path = tmp_path / "short_blob.caffemodel"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(WeightLoadError,
                       match=r"'conv1_1': blob 0 of shape \(2, 3, 3, 3\) needs 54 values.*50"):
        read_caffemodel(path)


def test_shape_mismatch_and_unknown_layer(tmp_path):
    net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    before = snapshot(net)
    other = buildFCN8s_caffe(3, None, n_classes=21, widths=TINY_WIDTHS)
    path = tmp_path / "voc21.caffemodel"
    write_caffemodel(path, fcn_layers(other))
    with pytest.raises(WeightLoadError) as error:
        load_caffemodel(net, path)
    message = str(error.value)
    assert str(path) in message and "'score_fr'" in message
    assert "(3, 7, 1, 1)" in message and "(21, 7, 1, 1)" in message
    assert_unchanged(net, before)
    assert "score_fr" not in load_caffemodel(net, path, exclude=("score",))

    path = tmp_path / "extra.caffemodel"
    write_caffemodel(path, fcn_layers(net) + [("conv6_1", "Convolution", [np.zeros((2, 2))])])
    net = buildFCN8s_caffe(3, None, n_classes=N_CLASSES, widths=TINY_WIDTHS)
    before = snapshot(net)
    with pytest.raises(WeightLoadError, match=f"{path}: layer 'conv6_1' is not in the network"):
        load_caffemodel(net, path)
    assert_unchanged(net, before)
    assert "conv6_1" not in load_caffemodel(net, path, strict=False)


def test_not_a_caffemodel(tmp_path):
    path = tmp_path / "notes.caffemodel"
    path.write_bytes(b"\x00\x01 this is not a protobuf \xff\xff")
    with pytest.raises(WeightLoadError, match=str(path)):
        read_caffemodel(path)


# -- convert() (the `fcn8 convert` command), with tiny models instead of VGG16 ----------


@pytest.fixture
def tiny_models(monkeypatch):
    """Make convert() build tiny nets; returns the dict holding the last one built."""
    from fcn8_lasagne.weights import convert as convert_module

    built = {}

    def build_tiny(model, n_classes=21, nb_in_channels=3, input_var=None):
        if model == "fcn8s-caffe":
            built["net"] = buildFCN8s_caffe(nb_in_channels, input_var, n_classes,
                                            widths=TINY_WIDTHS)
        else:
            assert model == "fcn32"
            built["net"] = tiny_tutorial_fcn("fcn32", n_classes, nb_in_channels)
        return built["net"]

    monkeypatch.setattr(convert_module, "build_model", build_tiny)
    return built


def read_arrays(path):
    with np.load(path) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def test_convert_writes_the_lasagne_npz(tmp_path, tiny_models):
    from fcn8_lasagne.layers import get_all_params
    from fcn8_lasagne.weights.convert import convert

    layers = fcn_layers(buildFCN8s_caffe(3, None, N_CLASSES, widths=TINY_WIDTHS))
    source = tmp_path / "fcn8s-heavy-pascal.caffemodel"
    write_caffemodel(source, layers)
    target = tmp_path / "fcn8s.npz"
    loaded = convert(source, target, model="fcn8s-caffe", n_classes=N_CLASSES)
    net = tiny_models["net"]
    assert loaded == param_layers(net)
    params = get_all_params(net["score"])
    arrays = read_arrays(target)
    assert len(arrays) == len(params) == 2 * len(param_layers(net)) - 3  # bias-free deconvs
    for param, array in zip(params, arrays):
        np.testing.assert_array_equal(param.get_value(), array)
    np.testing.assert_array_equal(arrays[0], layers[1][2][0])  # arr_0 is conv1_1.W


def test_convert_warns_about_layers_the_file_lacks(tmp_path, tiny_models):
    from fcn8_lasagne.weights.convert import convert

    source = tmp_path / "VGG_ILSVRC_16_layers.caffemodel"
    write_caffemodel(source, vgg16_ilsvrc_layers(), legacy=True)
    with pytest.warns(UserWarning, match="no weights for score_fr, upsample"):
        convert(source, tmp_path / "fcn32.npz", fmt="caffe", model="fcn32", n_classes=2)
    arrays = read_arrays(tmp_path / "fcn32.npz")
    assert arrays[-2].shape == (2, 2, 64, 64)  # upsample.W kept its initial value


def test_convert_checks_arguments_before_building(tmp_path, tiny_models):
    from fcn8_lasagne.weights.convert import convert, guess_format

    assert [guess_format(name) for name in ("a.PKL", "b.mat", "c.pth", "d.caffemodel")] == [
        "lasagne-vgg16", "matconvnet", "torch", "caffe"]
    with pytest.raises(ValueError, match="cannot tell the weight format"):
        guess_format("weights.h5")
    with pytest.raises(FileNotFoundError, match="missing.caffemodel"):
        convert(tmp_path / "missing.caffemodel", tmp_path / "out.npz")
    source = tmp_path / "x.caffemodel"
    source.write_bytes(b"")
    with pytest.raises(ValueError, match="unknown model 'fcn4'"):
        convert(source, tmp_path / "out.npz", model="fcn4")
    with pytest.raises(ValueError, match="unknown weight format 'onnx'"):
        convert(source, tmp_path / "out.npz", fmt="onnx")
    pickle_path = tmp_path / "vgg16.pkl"
    pickle_path.write_bytes(b"not read")
    with pytest.raises(PermissionError, match="trust"):
        convert(pickle_path, tmp_path / "out.npz")
    with pytest.raises(PermissionError, match="trust"):
        convert(pickle_path, tmp_path / "out.npz", fmt="vgg16-pkl")  # the CLI's name
    assert tiny_models == {}  # nothing was built
    assert not (tmp_path / "out.npz").exists()


def test_empty_file_and_file_without_weights(tmp_path):
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    with pytest.raises(WeightLoadError, match="no layers found"):
        read_caffemodel(path)
    write_caffemodel(path, [("data", "Input", []), ("relu", "ReLU", [])])
    with pytest.raises(WeightLoadError, match="none of its 2 layers has weights"):
        read_caffemodel(path)
