"""The tutorial's builders against the facts of fcn8-semantics.md and a NumPy forward pass."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import (
    count_params,
    get_all_param_values,
    get_all_params,
    get_output,
    get_output_shape,
    set_all_param_values,
)
from fcn8_lasagne.models import buildFCN8, buildFCN16, buildFCN32
from fcn8_lasagne.weights import save_npz
from tests import reference

FCN8_LAYERS = [
    "input", "conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2", "conv3_1",
    "conv3_2", "conv3_3", "pool3", "conv4_1", "conv4_2", "conv4_3", "pool4", "conv5_1",
    "conv5_2", "conv5_3", "pool5", "fc6", "fc6_dropout", "fc7", "fc7_dropout", "score_fr",
    "score2", "score_pool4", "score_fused", "score4", "score_pool3", "score_final",
    "upsample", "input_tmp", "score", "final_dimshuffle", "final_reshape", "probs",
    "probs_reshape", "probs_dimshuffle",
]
PARAM_LAYERS = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
    "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "score_fr", "score2",
    "score_pool4", "score4", "score_pool3", "upsample",
]


@pytest.fixture(scope="module")
def fcn8_net():
    np.random.seed(0)
    input_var = pt.tensor4("x")
    return input_var, buildFCN8(3, input_var, n_classes=5, trainable=True)


def _spatial_sizes(net, size, n_classes):
    shapes = {net["input"]: (1, 3, size, size), net["input_tmp"]: (1, n_classes, size, size)}
    names = [name for name in net if name not in ("input", "input_tmp")]
    result = get_output_shape([net[name] for name in names], shapes)
    return {name: shape for name, shape in zip(names, result)}


@pytest.mark.parametrize("size, pool3, pool4, pool5, fc6, score2, score4, upsample, offset", [
    (224, 52, 26, 13, 7, 16, 34, 280, 28),
    (225, 52, 26, 13, 7, 16, 34, 280, 27),
    (288, 60, 30, 15, 9, 20, 42, 344, 28),
    (500, 87, 43, 21, 15, 32, 66, 536, 18),
])
def test_fcn8_shape_table(fcn8_net, size, pool3, pool4, pool5, fc6, score2, score4,
                          upsample, offset):
    _, net = fcn8_net
    shapes = _spatial_sizes(net, size, 5)
    assert shapes["conv1_1"][2] == size + 198
    assert shapes["pool3"][2] == pool3 and shapes["pool4"][2] == pool4
    assert shapes["pool5"][2] == pool5 and shapes["fc6"][2] == fc6
    assert shapes["score2"][2] == score2 and shapes["score4"][2] == score4
    assert shapes["upsample"][2] == upsample
    assert (shapes["upsample"][2] - size) // 2 == offset
    assert shapes["score"] == (1, 5, size, size)
    assert shapes["probs_dimshuffle"][1] == 5


def test_fcn8_layers_params_order_and_counts(fcn8_net):
    _, net = fcn8_net
    assert list(net) == FCN8_LAYERS
    params = get_all_params(net["probs"])
    assert len(params) == 42
    assert [p.name for p in params] == [f"{layer}.{kind}" for layer in PARAM_LAYERS
                                        for kind in ("W", "b")]
    shapes = [p.get_value().shape for p in params]
    assert shapes[26:] == [(4096, 512, 7, 7), (4096,), (4096, 4096, 1, 1), (4096,),
                           (5, 4096, 1, 1), (5,), (5, 5, 4, 4), (5,), (5, 512, 1, 1), (5,),
                           (5, 5, 4, 4), (5,), (5, 256, 1, 1), (5,), (5, 5, 16, 16), (5,)]
    assert shapes[0] == (64, 3, 3, 3) and shapes[25] == (512,)
    assert net["score_pool4"].flip_filters and not net["conv1_1"].flip_filters
    assert net["conv1_1"].pad == (100, 100) and net["fc6"].filter_size == (7, 7)


@pytest.mark.slow
@pytest.mark.parametrize("n_classes, expected", [(2, 134_271_436), (21, 134_489_822)])
def test_fcn8_parameter_count(n_classes, expected):
    assert count_params(buildFCN8(3, pt.tensor4(), n_classes=n_classes)["probs"]) == expected


def test_trainable_flag_and_layer_selection():
    x = pt.tensor4()
    frozen = buildFCN32(3, x, n_classes=2)
    assert get_all_params(frozen["probs"], trainable=True) == []
    assert len(get_all_params(frozen["probs"])) == 34
    trainable = buildFCN32(3, x, n_classes=2, trainable=True, layer=["probs", "upsample"])
    assert len(get_all_params(trainable[0], trainable=True)) == 34
    assert trainable[1].stride == (32, 32) and trainable[1].filter_size == (64, 64)
    with pytest.raises(KeyError, match="nope"):
        buildFCN32(3, x, n_classes=2, layer=["nope"])
    with pytest.raises(ValueError, match="path_weights"):
        buildFCN32(3, x, n_classes=2, load_weights=True)


def _compare_all_layers(net, input_var, x, expected, names):
    outputs = get_output([net[name] for name in names], deterministic=True)
    f = pytensor.function([input_var], outputs)
    for name, got in zip(names, f(x)):
        want = expected[name]
        assert got.shape == want.shape, name
        scale = max(np.abs(want).max(), 1e-12)
        error = np.abs(got - want).max() / scale
        assert error <= 1e-4, f"{name}: max error {error:.2e} of the layer's largest value"


@pytest.mark.parametrize("shape", [(2, 3, 37, 70), (2, 3, 66, 45)])
def test_fcn8_every_layer_matches_numpy_forward(tmp_path, shape):
    np.random.seed(1)
    input_var = pt.tensor4("x")
    net = buildFCN8(3, input_var, n_classes=5, trainable=True)
    rng = np.random.default_rng(sum(shape))
    values = reference.scaled_random_params(
        [v.shape for v in get_all_param_values(net["probs"])], rng)
    set_all_param_values(net["probs"], values)
    path = tmp_path / "weights.npz"
    save_npz(net["probs"], path)
    loaded = buildFCN8(3, input_var, n_classes=5, path_weights=str(path), load_weights=True)
    x = rng.uniform(0, 1, shape).astype("float32")
    expected = reference.fcn_forward(x, values, "fcn8")
    names = [name for name in FCN8_LAYERS if name not in ("input", "input_tmp")]
    _compare_all_layers(loaded, input_var, x, expected, names)


@pytest.mark.parametrize("builder, variant", [(buildFCN16, "fcn16"), (buildFCN32, "fcn32")])
def test_fcn16_fcn32_match_numpy_forward(builder, variant):
    np.random.seed(2)
    input_var = pt.tensor4("x")
    net = builder(3, input_var, n_classes=3, trainable=True)
    rng = np.random.default_rng(5)
    values = reference.scaled_random_params(
        [v.shape for v in get_all_param_values(net["probs"])], rng)
    set_all_param_values(net["probs"], values)
    x = rng.uniform(0, 1, (2, 3, 41, 36)).astype("float32")
    expected = reference.fcn_forward(x, values, variant)
    names = ["score_fr", "upsample", "score", "probs_dimshuffle"]
    _compare_all_layers(net, input_var, x, expected, names)


def test_temperature_divides_upsample_after_loading(tmp_path):
    np.random.seed(3)
    x = pt.tensor4()
    net = buildFCN32(3, x, n_classes=2, trainable=True)
    path = tmp_path / "w.npz"
    save_npz(net["probs"], path)
    hot = buildFCN32(3, x, n_classes=2, path_weights=str(path), load_weights=True,
                     temperature=4.0)
    np.testing.assert_allclose(hot["upsample"].W.get_value(),
                               net["upsample"].W.get_value() / 4.0, rtol=1e-6)
    np.testing.assert_allclose(hot["fc6"].W.get_value(), net["fc6"].W.get_value())


def test_wrong_npz_names_layer_and_leaves_net_unchanged(tmp_path):
    np.random.seed(4)
    x = pt.tensor4()
    net = buildFCN32(3, x, n_classes=2, trainable=True)
    other = buildFCN32(3, x, n_classes=3, trainable=True)
    path = tmp_path / "three_classes.npz"
    save_npz(other["probs"], path)
    before = get_all_param_values(net["probs"])
    with pytest.raises(ValueError, match=r"three_classes\.npz.*'score_fr'.*\(2, 4096, 1, 1\)"
                                         r".*\(3, 4096, 1, 1\)"):
        from fcn8_lasagne.weights import load_npz

        load_npz(net["probs"], path)
    for got, want in zip(get_all_param_values(net["probs"]), before):
        np.testing.assert_array_equal(got, want)


def test_wrong_channel_count_or_too_small_image_names_the_layer():
    np.random.seed(6)
    input_var = pt.tensor4("x")
    net = buildFCN32(3, input_var, n_classes=2)
    f = pytensor.function([input_var], get_output(net["probs"], deterministic=True))
    with pytest.raises(ValueError, match=r"conv1_1.*\(1, 4, 30, 30\).*\(64, 3, 3, 3\)"):
        f(np.zeros((1, 4, 30, 30), dtype="float32"))
    with pytest.raises(ValueError, match=r"'fc6'.*7.*6"):
        f(np.zeros((1, 3, 20, 20), dtype="float32"))
    with pytest.raises(ValueError, match="shape has 4 dimensions, but variable has 3"):
        buildFCN32(3, pt.tensor3("x"), n_classes=2)
