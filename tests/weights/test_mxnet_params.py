"""MXNet NDArray-list ``.params`` files (read, written and refused byte by byte) and the
Gluon-CV / torchvision key mapping of buildFCNResNet (all-or-nothing loading)."""

import struct

import numpy as np
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.models.fcn_resnet import buildFCNResNet
from fcn8_lasagne.weights.assign import WeightLoadError
from fcn8_lasagne.weights.fcn_resnet import (
    fcn_resnet_keys,
    fcn_resnet_state_dict,
    load_fcn_resnet,
    save_fcn_resnet_params,
)
from fcn8_lasagne.weights.mxnet_params import (
    read_mxnet_params,
    read_ndarray_list,
    write_mxnet_params,
)


def _header(count):
    return struct.pack("<QQQ", 0x112, 0, count)


def _names(names):
    out = struct.pack("<Q", len(names))
    for name in names:
        out += struct.pack("<Q", len(name)) + name.encode()
    return out


def _v2_record(array, code=0, magic=0xF993FAC9, stype=0):
    """An NDArray record written by hand from ndarray.cc's Save (not by the module)."""
    out = struct.pack("<I", magic)
    if magic != 0xF993FAC8:
        out += struct.pack("<i", stype)
    out += struct.pack("<i", array.ndim) + struct.pack(f"<{array.ndim}q", *array.shape)
    return out + struct.pack("<iii", 1, 0, code) + array.tobytes()


def _write(path, payload):
    path.write_bytes(payload)
    return path


def test_hand_written_v2_file_reads(tmp_path):
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.array([1.5, -2.0], dtype="<f8")
    payload = _header(2) + _v2_record(a) + _v2_record(b, code=1) + _names(["w", "b.beta"])
    arrays = read_mxnet_params(_write(tmp_path / "x.params", payload))
    assert list(arrays) == ["w", "b.beta"]
    np.testing.assert_array_equal(arrays["w"], a)
    assert arrays["b.beta"].dtype == np.float64


def test_legacy_pre_v1_layout_and_v1(tmp_path):
    """Pre-V1 (as MXNet's tests/python/unittest/legacy_ndarray.v0: arange(128), no
    names): the first uint32 is ndim, dims are uint32."""
    data = np.arange(128, dtype="<f4")
    legacy = (struct.pack("<I", 1) + struct.pack("<I", 128) + struct.pack("<iii", 1, 0, 0)
              + data.tobytes())
    arrays, names = read_ndarray_list(_write(tmp_path / "v0", _header(6) + legacy * 6
                                             + _names([])))
    assert names == [] and len(arrays) == 6
    np.testing.assert_array_equal(arrays[5], data)
    v1 = _v2_record(data.reshape(8, 16), magic=0xF993FAC8)
    arrays, _ = read_ndarray_list(_write(tmp_path / "v1", _header(1) + v1 + _names([])))
    assert arrays[0].shape == (8, 16)


@pytest.mark.parametrize("version", ["v1", "v2", "v3", "legacy"])
def test_round_trip_every_layout_and_dtype(tmp_path, version):
    dtypes = ["float32", "float64", "float16", "uint8", "int32", "int8", "int64", "int16",
              "uint16", "uint32", "uint64", "bool"]
    arrays = {dtype: (np.arange(12) - 4).reshape(3, 4) for dtype in dtypes}
    arrays = {k: (np.abs(v) if k[0] == "u" else v).astype(k) for k, v in arrays.items()}
    arrays["empty"] = np.zeros((0, 5), "float32")
    write_mxnet_params(tmp_path / "r.params", arrays, version=version)
    back = read_mxnet_params(tmp_path / "r.params")
    assert list(back) == list(arrays)
    for key in arrays:
        assert back[key].dtype == arrays[key].dtype
        np.testing.assert_array_equal(back[key], arrays[key])


def test_v3_scalar_and_bfloat16(tmp_path):
    write_mxnet_params(tmp_path / "s.params", {"s": np.float32(3.5)}, version="v3")
    assert read_mxnet_params(tmp_path / "s.params")["s"].shape == ()
    values = np.array([1.0, -2.5, 3.140625], "float32")  # exact in bfloat16
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    payload = (_header(1) + struct.pack("<Iii", 0xF993FAC9, 0, 1) + struct.pack("<q", 3)
               + struct.pack("<iii", 1, 0, 12) + bits.tobytes() + _names(["bf"]))
    np.testing.assert_array_equal(
        read_mxnet_params(_write(tmp_path / "bf.params", payload))["bf"], values)


GOOD = np.ones((2, 2), "<f4")


@pytest.mark.parametrize("payload, message", [
    ((_header(1) + _v2_record(GOOD))[:-3], r"array 0: truncated file: expected 16 bytes of "
                                           r"float32 data of shape \(2, 2\) at byte 64, got 13"),
    (_header(1) + _v2_record(GOOD), r"the names: truncated file"),
    (_header(1) + _v2_record(GOOD) + _names(["w"]) + b"\0", r"the end: .*1 trailing bytes"),
    (_header(1) + _v2_record(GOOD, code=42) + _names(["w"]),
     r"array 0: unknown dtype code 42"),
    (_header(1) + _v2_record(GOOD, magic=0xDEADBEEF) + _names(["w"]),
     r"array 0: unknown array magic 0xDEADBEEF"),
    (_header(1) + _v2_record(GOOD, stype=1) + _names(["w"]),
     r"array 0: sparse storage \(row_sparse\) is not supported"),
    (_header(1) + _v2_record(GOOD, stype=2) + _names(["w"]), r"sparse storage \(csr\)"),
    (_header(2) + _v2_record(GOOD) * 2 + _names(["w"]), r"expected 0 or 2 names \(one per array\), got 1"),
    (_header(2) + _v2_record(GOOD) * 2 + _names(["w", "w"]), r"array 1 'w': .*twice"),
    (_header(1) + _v2_record(GOOD) + _names([]), r"1 unnamed arrays"),
    (struct.pack("<QQQ", 0x113, 0, 0), r"not an MXNet NDArray list: expected header 0x112, "
                                       r"got 0x113"),
    (b"PK\x03\x04" + b"\0" * 40, r"ZIP archive"),
    (b"\x12\x01", r"truncated file: expected 8 bytes of the list header"),
    (_header(10 ** 12), r"cannot fit"),
    (_header(1) + struct.pack("<Ii", 0xF993FAC9, 0) + struct.pack("<i", 0) + _names(["w"]),
     r"array 0: the array is empty"),
], ids=["truncated-data", "no-names", "trailing", "dtype", "magic", "row-sparse", "csr",
        "name-count", "duplicate", "unnamed", "header", "zip", "short", "count", "none"])
def test_bad_files_give_one_line_errors_naming_file_and_array(tmp_path, payload, message):
    path = _write(tmp_path / "bad.params", payload)
    with pytest.raises(WeightLoadError, match=message) as info:
        read_mxnet_params(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text


# ---- the key mapping ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def nets():
    x = pt.tensor4("x")
    return {v: buildFCNResNet(3, x, 5, variant=v) for v in ("gluoncv", "torchvision")}


def test_key_tables(nets):
    gluon, tv = fcn_resnet_keys(nets["gluoncv"]), fcn_resnet_keys(nets["torchvision"])
    assert len(gluon) == 289 and len(tv) == 279
    assert gluon["conv1.0.weight"] == ("conv1.0", "W")
    assert gluon["conv1.4.running_var"] == ("conv1.4", "inv_std")
    assert gluon["layer1.0.downsample.0.weight"] == ("layer1.0.downsample.0", "W")
    assert gluon["head.block.4.bias"] == ("head.block.4", "b")
    assert gluon["auxlayer.block.1.gamma"] == ("auxlayer.block.1", "gamma")
    assert tv["backbone.bn1.weight"] == ("bn1", "gamma")
    assert tv["backbone.bn1.running_mean"] == ("bn1", "mean")
    assert tv["backbone.layer3.1.conv2.weight"] == ("layer3.1.conv2", "W")
    assert tv["classifier.4.bias"] == ("classifier.4", "b")
    assert tv["aux_classifier.1.bias"] == ("aux_classifier.1", "beta")


def _random_state(net, rng):
    state = {}
    for key, (layer, attr) in fcn_resnet_keys(net).items():
        shape = getattr(net[layer], attr).get_value().shape
        value = rng.standard_normal(shape).astype("float32")
        state[key] = np.abs(value) + 0.5 if attr == "inv_std" else value
    return state


def test_running_var_becomes_inv_std_and_back(nets, tmp_path, rng):
    net = nets["gluoncv"]
    state = _random_state(net, rng)
    path = tmp_path / "g.params"
    write_mxnet_params(path, state)
    load_fcn_resnet(net, path)
    np.testing.assert_allclose(net["bn1"].inv_std.get_value(),
                               1 / np.sqrt(state["bn1.running_var"].astype(np.float64) + 1e-5),
                               rtol=1e-6)
    np.testing.assert_array_equal(net["head.block.0"].W.get_value(), state["head.block.0.weight"])
    save_fcn_resnet_params(net, tmp_path / "again.params")
    back = read_mxnet_params(tmp_path / "again.params")
    assert list(back) == list(state)
    for key in state:
        np.testing.assert_allclose(back[key], state[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fcn_resnet_state_dict(net)["bn1.running_var"],
                               state["bn1.running_var"], rtol=1e-5)


def _snapshot(net):
    return [p.get_value().copy() for layer in net.values() for p in layer.params]


def _unchanged(net, before):
    return all(np.array_equal(a, p.get_value())
               for a, p in zip(before, [p for layer in net.values() for p in layer.params]))


def test_bad_state_dicts_leave_the_net_unchanged(nets, rng, tmp_path):
    net = nets["torchvision"]
    good = _random_state(net, rng)
    good["backbone.bn1.num_batches_tracked"] = np.array(3, np.int64)
    load_fcn_resnet(net, good)
    before = _snapshot(net)
    missing = dict(good)
    del missing["backbone.layer2.0.bn2.running_mean"]
    extra = dict(good, **{"backbone.fc.weight": np.zeros((10, 2048), "float32")})
    shaped = dict(good, **{"classifier.4.weight": np.zeros((21, 512, 1, 1), "float32")})
    last = dict(good, **{"aux_classifier.4.bias": np.zeros(21, "float32")})
    negative = dict(good, **{"backbone.bn1.running_var": -np.ones(64, "float32")})
    integer = dict(good, **{"backbone.conv1.weight": np.zeros((64, 3, 7, 7), "int32")})
    nan = dict(good, **{"classifier.0.weight": good["classifier.0.weight"] * np.nan})
    counter = dict(good, **{"backbone.bn1.num_batches_tracked": np.zeros(3, "float32")})
    cases = [
        (missing, r"1 key\(s\) of the torchvision network missing: "
                  r"'backbone.layer2.0.bn2.running_mean'"),
        (extra, r"1 unexpected key\(s\): 'backbone.fc.weight'"),
        (shaped, r"key 'classifier.4.weight' \(layer 'classifier.4' parameter W\): expected "
                 r"shape \(5, 512, 1, 1\), got \(21, 512, 1, 1\)"),
        (last, r"aux_classifier.4.*expected shape \(5,\), got \(21,\)"),
        (negative, r"non-negative running variances"),
        (integer, r"dtype int32, expected floating point"),
        (nan, r"NaN"),
        (counter, r"num_batches_tracked"),
    ]
    for state, message in cases:
        with pytest.raises(WeightLoadError, match=message) as info:
            load_fcn_resnet(net, state)
        assert "\n" not in str(info.value) and str(info.value).startswith("<state dict>")
        assert _unchanged(net, before)


def test_another_models_file_is_refused_with_a_hint(nets, rng, tmp_path):
    gluon_path = tmp_path / "gluon.params"
    write_mxnet_params(gluon_path, _random_state(nets["gluoncv"], rng))
    before = _snapshot(nets["torchvision"])
    with pytest.raises(WeightLoadError, match=rf"^{gluon_path}: not the weights of this "
                                              r"network .*variant='gluoncv'"):
        load_fcn_resnet(nets["torchvision"], gluon_path)
    assert _unchanged(nets["torchvision"], before)
    other = tmp_path / "fcn8.params"
    write_mxnet_params(other, {"conv1_1.weight": np.zeros((64, 3, 3, 3), "float32")})
    with pytest.raises(WeightLoadError, match=r"289 key\(s\) of the gluoncv network missing"):
        load_fcn_resnet(nets["gluoncv"], other)
    unknown = tmp_path / "unknown.params"
    write_mxnet_params(unknown, {"w": np.zeros(2, "float32")})
    data = bytearray(unknown.read_bytes())
    data[24 + 4 + 4 + 4 + 8 + 8] = 99  # the dtype code of array 0
    unknown.write_bytes(bytes(data))
    with pytest.raises(WeightLoadError, match=rf"^{unknown}: array 0: unknown dtype code 99"):
        load_fcn_resnet(nets["gluoncv"], unknown)


def test_exclude_skips_the_classifiers(nets, rng):
    net = nets["gluoncv"]
    state = {k: v for k, v in _random_state(net, rng).items() if ".block.4." not in k}
    loaded = load_fcn_resnet(net, state, exclude=("head.block.4", "auxlayer.block.4"))
    assert len(loaded) == 285


def test_pth_file_with_torch_load_weights_only(nets, rng, tmp_path):
    torch = pytest.importorskip("torch")
    net = nets["torchvision"]
    state = {k: torch.from_numpy(v) for k, v in _random_state(net, rng).items()}
    state["backbone.bn1.num_batches_tracked"] = torch.tensor(5)
    path = tmp_path / "fcn_resnet50_coco.pth"
    torch.save(state, path)
    assert len(load_fcn_resnet(net, path)) == 279
    np.testing.assert_array_equal(net["classifier.4"].b.get_value(),
                                  state["classifier.4.bias"].numpy())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightLoadError, match=rf"^{path}: .*PyTorch"):
        load_fcn_resnet(net, path)
