"""Lasagne Recipes vgg16.pkl into the FCN body: placement, fc6 reshape, trust, errors."""

import io
import pickle
import struct

import numpy as np
import pytest

from fcn8_lasagne.weights.assign import WeightLoadError
from fcn8_lasagne.weights.lasagne_vgg16 import VGG16_LAYERS, load_lasagne_vgg16

from ._tiny_nets import (
    BLOCK_OF,
    CONV_NAMES,
    TINY_WIDTHS,
    assert_unchanged,
    distinct,
    snapshot,
    tiny_tutorial_fcn,
)

MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


class _Python2Pickler(pickle._Pickler):
    """Writes ``str`` and ``bytes`` as Python 2 ``str`` opcodes, as the Recipes file has."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_python2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_python2_str
    dispatch[bytes] = _save_python2_str


def recipes_param_values(widths=TINY_WIDTHS, in_channels=3, n_imagenet=10):
    """32 arrays laid out as the Recipes VGG16 (Dense fc6/fc7/fc8 are (inputs, units))."""
    values = []
    channels = in_channels
    for index, name in enumerate(CONV_NAMES):
        width = widths[BLOCK_OF[name]]
        values += [distinct((width, channels, 3, 3), index), distinct((width,), index + 50)]
        channels = width
    dense_shapes = [(channels * 49, widths[5]), (widths[5], widths[5]), (widths[5], n_imagenet)]
    for index, shape in enumerate(dense_shapes, start=len(CONV_NAMES)):
        values += [distinct(shape, index), distinct(shape[1:], index + 50)]
    return values


def write_recipes_pickle(path, param_values):
    contents = {
        "param values": param_values,
        "mean value": MEAN_BGR,
        "synset words": ["tench", "goldfish"],
    }
    with open(path, "wb") as stream:
        _Python2Pickler(stream, protocol=2).dump(contents)


@pytest.fixture
def pickle_path(tmp_path):
    path = tmp_path / "vgg16.pkl"
    write_recipes_pickle(path, recipes_param_values())
    return path


def test_fixture_is_a_python2_pickle(pickle_path):
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(pickle_path.read_bytes())  # Python 3's default encoding fails


def test_places_every_array(pickle_path):
    net = tiny_tutorial_fcn("fcn8")
    before = snapshot(net)
    values = recipes_param_values()
    mean = load_lasagne_vgg16(net, pickle_path, trust=True)
    np.testing.assert_allclose(mean, MEAN_BGR)
    for index, name in enumerate(CONV_NAMES):
        np.testing.assert_array_equal(net[name].W.get_value(), values[2 * index], err_msg=name)
        np.testing.assert_array_equal(net[name].b.get_value(), values[2 * index + 1])
    fc6_dense, fc6_bias = values[26], values[27]
    fc6 = net["fc6"].W.get_value()
    assert fc6.shape == (TINY_WIDTHS[5], TINY_WIDTHS[4], 7, 7)
    # filter[o, c, i, j] is the Dense weight of input (c, i, j) flattened C-order
    for o, c, i, j in [(0, 0, 0, 0), (3, 2, 5, 1), (6, 5, 6, 6)]:
        assert fc6[o, c, i, j] == fc6_dense[c * 49 + i * 7 + j, o]
    np.testing.assert_array_equal(net["fc6"].b.get_value(), fc6_bias)
    np.testing.assert_array_equal(net["fc7"].W.get_value()[:, :, 0, 0], values[28].T)
    np.testing.assert_array_equal(net["fc7"].b.get_value(), values[29])
    for name in ("score_fr", "score2", "score_pool4", "score4", "score_pool3", "upsample"):
        for old, new in zip(before[name], snapshot(net)[name]):
            np.testing.assert_array_equal(old, new, err_msg=f"{name} must stay untouched")


def test_fc6_convolution_equals_the_dense_layer(pickle_path):
    net = tiny_tutorial_fcn("fcn8")
    load_lasagne_vgg16(net, pickle_path, trust=True)
    dense = recipes_param_values()[26]
    pool5 = np.random.default_rng(0).standard_normal((TINY_WIDTHS[4], 7, 7))
    dense_output = pool5.reshape(-1) @ dense
    # fc6 is flip_filters=False: cross-correlation over the single 7x7 window
    conv_output = np.einsum("ocij,cij->o", net["fc6"].W.get_value(), pool5)
    np.testing.assert_allclose(conv_output, dense_output, rtol=1e-10)


@pytest.mark.parametrize("kind", ["fcn16", "fcn32"])
def test_other_fcns_take_the_same_body(pickle_path, kind):
    net = tiny_tutorial_fcn(kind)
    load_lasagne_vgg16(net, pickle_path, trust=True)
    np.testing.assert_array_equal(net["conv5_3"].W.get_value(), recipes_param_values()[24])


def test_refuses_without_trust(pickle_path):
    net = tiny_tutorial_fcn()
    before = snapshot(net)
    with pytest.raises(PermissionError, match="trust=True"):
        load_lasagne_vgg16(net, pickle_path)
    with pytest.raises(PermissionError):
        load_lasagne_vgg16(net, pickle_path, trust="yes")  # only True itself
    assert_unchanged(net, before)


def test_truncated_file_names_the_file(pickle_path):
    data = pickle_path.read_bytes()
    pickle_path.write_bytes(data[: len(data) // 2])
    net = tiny_tutorial_fcn()
    before = snapshot(net)
    with pytest.raises(WeightLoadError, match=str(pickle_path)):
        load_lasagne_vgg16(net, pickle_path, trust=True)
    assert_unchanged(net, before)


def test_wrong_shape_names_layer_and_shapes_and_changes_nothing(tmp_path):
    values = recipes_param_values()
    values[12] = np.zeros((4, 4, 5, 5), np.float32)  # conv3_3.W should be (4, 4, 3, 3)
    path = tmp_path / "bad.pkl"
    write_recipes_pickle(path, values)
    net = tiny_tutorial_fcn()
    before = snapshot(net)
    with pytest.raises(WeightLoadError) as error:
        load_lasagne_vgg16(net, path, trust=True)
    message = str(error.value)
    assert str(path) in message and "'conv3_3'" in message
    assert "(4, 4, 3, 3)" in message and "(4, 4, 5, 5)" in message
    assert_unchanged(net, before)  # conv1_1 ... conv3_2 were valid but not set either


def test_wrong_fc6_size_is_reported(tmp_path):
    values = recipes_param_values()
    values[26] = np.zeros((6 * 36, TINY_WIDTHS[5]), np.float32)  # a 6x6 pool5
    path = tmp_path / "bad_fc6.pkl"
    write_recipes_pickle(path, values)
    net = tiny_tutorial_fcn()
    before = snapshot(net)
    with pytest.raises(WeightLoadError, match=r"'fc6'.*\(7, 294\).*\(7, 216\)"):
        load_lasagne_vgg16(net, path, trust=True)
    assert_unchanged(net, before)


def test_wrong_array_count(tmp_path):
    path = tmp_path / "short.pkl"
    write_recipes_pickle(path, recipes_param_values()[:-2])
    net = tiny_tutorial_fcn()
    with pytest.raises(WeightLoadError, match=f"{len(VGG16_LAYERS) * 2} arrays.*got 30"):
        load_lasagne_vgg16(net, path, trust=True)


def test_not_a_recipes_pickle(tmp_path):
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"weights": []}))
    with pytest.raises(WeightLoadError, match="param values"):
        load_lasagne_vgg16(tiny_tutorial_fcn(), path, trust=True)


def test_python3_pickle_also_loads(tmp_path):
    path = tmp_path / "py3.pkl"
    buffer = io.BytesIO()
    pickle.dump({"param values": recipes_param_values(), "mean value": MEAN_BGR}, buffer)
    path.write_bytes(buffer.getvalue())
    net = tiny_tutorial_fcn()
    load_lasagne_vgg16(net, path, trust=True)
    np.testing.assert_array_equal(net["conv1_1"].W.get_value(), recipes_param_values()[0])
