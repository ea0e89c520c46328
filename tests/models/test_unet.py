"""The tutorial's U-Net: hand-derived shapes and parameter counts, a NumPy forward pass,
finite-difference gradients and the JAX backend against the C backend."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.compile import function
from fcn8_lasagne.layers import (
    BatchNormLayer,
    DropoutLayer,
    NonlinearityLayer,
    count_params,
    get_all_layers,
    get_all_params,
    get_output,
    get_output_shape,
)
from fcn8_lasagne.models import build_UNet
from fcn8_lasagne.nonlinearities import elu
from tests.conftest import FAST_MODE
from tests.reference import unet as ref

KEYS = [
    "input", "contr_1_1", "contr_1_2", "pool1", "contr_2_1", "contr_2_2", "pool2",
    "contr_3_1", "contr_3_2", "pool3", "contr_4_1", "contr_4_2", "pool4", "encode_1",
    "encode_2", "upscale1", "concat1", "expand_1_1", "expand_1_2", "upscale2", "concat2",
    "expand_2_1", "expand_2_2", "upscale3", "concat3", "expand_3_1", "expand_3_2", "upscale4",
    "concat4", "expand_4_1", "expand_4_2", "output_segmentation", "dimshuffle", "reshapeSeg",
    "dimshuffle2", "output_flattened",
]
BN_KEYS = [key for key in KEYS if key.startswith(("contr", "encode", "upscale", "expand"))]


def _random_params(net, rng, stats=True):
    """Set every parameter to a random value of a sensible scale; return name → value."""
    values = {}
    for param in get_all_params(net["output_flattened"]):
        shape = param.get_value().shape
        kind = param.name.rsplit(".", 1)[1]
        if kind == "W":
            fan_in = np.prod(shape[1:]) if "upscale" not in param.name else shape[1] * 4
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
        elif kind == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif kind == "inv_std":
            value = rng.uniform(0.5, 2.0, shape) if stats else np.ones(shape)
        else:  # beta, mean, b
            value = rng.uniform(-0.3, 0.3, shape) if (stats or kind != "mean") else np.zeros(shape)
        param.set_value(value.astype(param.dtype))
        values[param.name] = param.get_value().astype(np.float64)
    return values


def test_keys_and_layer_types():
    net = build_UNet(base_n_filters=2)
    assert list(net) == KEYS
    for key in BN_KEYS:
        # batch_norm(conv) ends in the nonlinearity, after a BatchNormLayer
        assert isinstance(net[key], NonlinearityLayer) and net[key].nonlinearity is elu
        assert isinstance(net[key].input_layer, BatchNormLayer)
        conv = net[key].input_layer.input_layer
        assert conv.b is None and conv.name == key
    assert net["output_segmentation"].b is not None
    assert not any(isinstance(layer, DropoutLayer)
                   for layer in get_all_layers(net["output_flattened"]))


def test_shape_table_at_224_with_base_64():
    """224 = 16 * 14: every level halves exactly, the crops cut nothing."""
    net = build_UNet(BATCH_SIZE=5, input_dim=(224, 224))
    shapes = dict(zip(KEYS, get_output_shape([net[key] for key in KEYS])))
    assert shapes["contr_1_2"] == (5, 64, 224, 224) and shapes["pool1"] == (5, 64, 112, 112)
    assert shapes["contr_2_2"] == (5, 128, 112, 112) and shapes["pool2"] == (5, 128, 56, 56)
    assert shapes["contr_3_2"] == (5, 256, 56, 56) and shapes["pool3"] == (5, 256, 28, 28)
    assert shapes["contr_4_2"] == (5, 512, 28, 28) and shapes["pool4"] == (5, 512, 14, 14)
    assert shapes["encode_2"] == (5, 1024, 14, 14)
    assert shapes["upscale1"] == (5, 1024, 28, 28) and shapes["concat1"] == (5, 1536, 28, 28)
    assert shapes["expand_1_2"] == (5, 512, 28, 28)
    assert shapes["upscale2"] == (5, 512, 56, 56) and shapes["concat2"] == (5, 768, 56, 56)
    assert shapes["upscale3"] == (5, 256, 112, 112) and shapes["concat3"] == (5, 384, 112, 112)
    assert shapes["upscale4"] == (5, 128, 224, 224) and shapes["concat4"] == (5, 192, 224, 224)
    assert shapes["expand_4_2"] == (5, 64, 224, 224)
    assert shapes["output_segmentation"] == (5, 2, 224, 224)
    assert shapes["dimshuffle"] == (2, 5, 224, 224)
    assert shapes["reshapeSeg"] == (2, 5 * 224 * 224)
    assert shapes["output_flattened"] == (5 * 224 * 224, 2)


def test_shape_table_when_the_size_is_not_a_multiple_of_16():
    """20x24: pools floor to 10x12, 5x6, 2x3, 1x1; up-samplings double to 2x2, 4x4, 8x8,
    16x16; each concatenation crops the contracting map to the up-sampled size."""
    net = build_UNet(base_n_filters=2)
    shapes = dict(zip(KEYS, get_output_shape([net[key] for key in KEYS], (3, 1, 20, 24))))
    assert [shapes[f"pool{i}"][2:] for i in range(1, 5)] == [(10, 12), (5, 6), (2, 3), (1, 1)]
    assert [shapes[f"upscale{i}"][2:] for i in range(1, 5)] == [(2, 2), (4, 4), (8, 8),
                                                                 (16, 16)]
    assert [shapes[f"concat{i}"][1:] for i in range(1, 5)] == [
        (32 + 16, 2, 2), (16 + 8, 4, 4), (8 + 4, 8, 8), (4 + 2, 16, 16)]
    assert shapes["output_flattened"] == (3 * 16 * 16, 2)


# Per parameterised layer of the base-64 U-Net at 1 input channel: (input channels,
# output channels, kernel side). Conv W: out * in * k * k; deconv W: in * out * 2 * 2.
BASE_64_LAYERS = [
    ("contr_1_1", 1, 64, 3), ("contr_1_2", 64, 64, 3), ("contr_2_1", 64, 128, 3),
    ("contr_2_2", 128, 128, 3), ("contr_3_1", 128, 256, 3), ("contr_3_2", 256, 256, 3),
    ("contr_4_1", 256, 512, 3), ("contr_4_2", 512, 512, 3), ("encode_1", 512, 1024, 3),
    ("encode_2", 1024, 1024, 3), ("upscale1", 1024, 1024, 2), ("expand_1_1", 1536, 512, 3),
    ("expand_1_2", 512, 512, 3), ("upscale2", 512, 512, 2), ("expand_2_1", 768, 256, 3),
    ("expand_2_2", 256, 256, 3), ("upscale3", 256, 256, 2), ("expand_3_1", 384, 128, 3),
    ("expand_3_2", 128, 128, 3), ("upscale4", 128, 128, 2), ("expand_4_1", 192, 64, 3),
    ("expand_4_2", 64, 64, 3),
]


def test_parameter_order_shapes_and_counts_base_64():
    np.random.seed(0)
    net = build_UNet()
    params = get_all_params(net["output_flattened"])
    # 22 batch-normalised layers: W (no bias), beta, gamma, mean, inv_std; then the 1x1 conv
    assert len(params) == 22 * 5 + 2 == 112
    expected_names, expected_shapes = [], []
    for name, n_in, n_out, k in BASE_64_LAYERS:
        expected_names += [f"{name}.W"] + [f"{name}_bn.{kind}"
                                           for kind in ("beta", "gamma", "mean", "inv_std")]
        w_shape = (n_in, n_out, k, k) if name.startswith("upscale") else (n_out, n_in, k, k)
        expected_shapes += [w_shape] + [(n_out,)] * 4
    expected_names += ["output_segmentation.W", "output_segmentation.b"]
    expected_shapes += [(2, 64, 1, 1), (2,)]
    assert [p.name for p in params] == expected_names
    assert [p.get_value().shape for p in params] == expected_shapes
    # sum of the W sizes of the table, worked out by hand: 36 942 400; batch-norm channels
    # 7 808 (x 4 arrays, of which beta and gamma trainable); the 1x1 conv 2 * 64 + 2 = 130
    assert count_params(net["output_flattened"]) == 36_942_400 + 4 * 7_808 + 130 == 36_973_762
    assert count_params(net["output_flattened"], trainable=True) == 36_958_146
    assert count_params(net["output_flattened"], regularizable=True) == 36_942_400 + 7_808 + 128
    assert len(get_all_params(net["output_flattened"], trainable=True)) == 22 * 3 + 2


def test_he_normal_weights_with_relu_gain():
    np.random.seed(1)
    net = build_UNet()
    w = net["contr_4_2"].input_layer.input_layer.W.get_value()  # fan-in 512 * 9
    assert abs(w.mean()) < 1e-3 and w.std() == pytest.approx(np.sqrt(2 / 4608), rel=0.01)
    up = net["upscale2"].input_layer.input_layer.W.get_value()  # shape (512, 512, 2, 2)
    assert up.std() == pytest.approx(np.sqrt(2 / (512 * 4)), rel=0.01)


def _compiled_outputs(net, keys, deterministic, mode=FAST_MODE):
    x = net["input"].input_var
    outputs = get_output([net[key] for key in keys], deterministic=deterministic)
    return pytensor.function([x], outputs, mode=mode, on_unused_input="ignore")


@pytest.mark.parametrize("deterministic", [False, True])
def test_every_stage_matches_the_numpy_forward_pass(deterministic):
    keys = ["contr_1_2", "pool2", "encode_2", "upscale1", "concat2", "concat4", "expand_4_2",
            "output_segmentation", "output_flattened"]
    with pytensor.config.change_flags(floatX="float64"):
        net = build_UNet(n_input_channels=2, num_output_classes=3, base_n_filters=2)
        params = _random_params(net, np.random.default_rng(5))
        fn = _compiled_outputs(net, keys, deterministic)
    x = np.random.default_rng(6).standard_normal((2, 2, 20, 24))
    expected = ref.unet_forward(x, params, deterministic=deterministic)
    for key, value in zip(keys, fn(x)):
        np.testing.assert_allclose(value, expected[key], rtol=1e-9, atol=1e-10, err_msg=key)
    assert expected["output_flattened"].shape == (2 * 16 * 16, 3)


def test_dropout_before_the_bottleneck():
    np.random.seed(2)
    net = build_UNet(base_n_filters=2, do_dropout=True)
    dropout = net["encode_1"].input_layer.input_layer.input_layer
    assert isinstance(dropout, DropoutLayer) and dropout.p == 0.4
    assert dropout.input_layer is net["pool4"] and "dropout" not in net
    x = net["input"].input_var
    train = pytensor.function([x], get_output(net["encode_2"]), mode=FAST_MODE)
    test = pytensor.function([x], get_output(net["encode_2"], deterministic=True),
                             mode=FAST_MODE)
    plain = build_UNet(base_n_filters=2)
    for mine, theirs in zip(get_all_params(plain["output_flattened"]),
                            get_all_params(net["output_flattened"])):
        mine.set_value(theirs.get_value())  # the dropout layer drew a seed in between
    plain_x = plain["input"].input_var
    plain_test = pytensor.function([plain_x], get_output(plain["encode_2"], deterministic=True),
                                   mode=FAST_MODE)
    image = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype("float32")
    np.testing.assert_allclose(test(image), plain_test(image), rtol=1e-5, atol=1e-6)
    assert not np.allclose(train(image), test(image))


def _loss_and_grads(net, params):
    x = net["input"].input_var
    y = pt.ivector("y")
    probs = get_output(net["output_flattened"])
    loss = -pt.mean(pt.log(probs[pt.arange(y.shape[0]), y]))
    return x, y, loss, pytensor.grad(loss, params)


def test_gradients_match_finite_differences():
    with pytensor.config.change_flags(floatX="float64"):
        net = build_UNet(base_n_filters=2)
        _random_params(net, np.random.default_rng(7))
        params = get_all_params(net["output_flattened"], trainable=True)
        checked = [p for p in params if p.name in (
            "contr_1_1.W", "contr_3_2_bn.gamma", "encode_2.W", "upscale2.W", "upscale4_bn.beta",
            "expand_4_2.W", "output_segmentation.b")]
        x, y, loss, grads = _loss_and_grads(net, checked)
        loss_fn = pytensor.function([x, y], loss, mode=FAST_MODE, no_default_updates=True)
        grad_fn = pytensor.function([x, y], grads, mode=FAST_MODE, no_default_updates=True)
    rng = np.random.default_rng(8)
    image = rng.standard_normal((2, 1, 16, 16))
    labels = rng.integers(0, 2, 2 * 16 * 16).astype("int32")
    analytic = grad_fn(image, labels)
    eps = 1e-6
    for param, grad in zip(checked, analytic):
        value = param.get_value()
        for flat in rng.choice(value.size, size=min(2, value.size), replace=False):
            index = np.unravel_index(flat, value.shape)
            shifted = value.copy()
            shifted[index] += eps
            param.set_value(shifted)
            up = loss_fn(image, labels)
            shifted[index] -= 2 * eps
            param.set_value(shifted)
            down = loss_fn(image, labels)
            param.set_value(value)
            numeric = (up - down) / (2 * eps)
            assert grad[index] == pytest.approx(numeric, rel=1e-4, abs=1e-8), param.name


@pytest.mark.slow
def test_jax_mode_equals_c_mode():
    pytest.importorskip("jax")
    np.random.seed(3)
    net = build_UNet(base_n_filters=2)
    _random_params(net, np.random.default_rng(9))
    params = get_all_params(net["output_flattened"], trainable=True)
    x, y, loss, grads = _loss_and_grads(net, params)
    deterministic = get_output(net["output_flattened"], deterministic=True)
    outputs = [loss, deterministic, *grads]
    # the training functions move the batch-norm averages (default updates): both start from
    # the same. (A deterministic output in the same JAX function reads the averages that
    # the function donates, which XLA refuses: they are compiled apart.)
    c_fn = function([x, y], outputs[:1] + outputs[2:], mode="CVM")
    jax_fn = function([x, y], outputs[:1] + outputs[2:], device="jax")
    c_test = function([x], outputs[1], mode="CVM")
    jax_test = function([x], outputs[1], device="jax")
    every_param = get_all_params(net["output_flattened"])
    start = [param.get_value() for param in every_param]
    rng = np.random.default_rng(10)
    image = rng.standard_normal((2, 1, 20, 24)).astype("float32")
    labels = rng.integers(0, 2, 2 * 16 * 16).astype("int32")
    c_values = c_fn(image, labels)
    after_c = [param.get_value() for param in every_param]
    for param, value in zip(every_param, start):
        param.set_value(value)
    for c_value, jax_value in zip(c_values, jax_fn(image, labels)):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-5)
    for param, value in zip(every_param, after_c):  # the same averages after the step
        np.testing.assert_allclose(param.get_value(), value, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(jax_test(image)), c_test(image), rtol=2e-4,
                               atol=2e-5)
