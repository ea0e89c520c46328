"""The tutorial's 1-D FCN: keys, hand-derived shapes and parameter counts, a NumPy forward
pass, finite-difference gradients and the JAX backend against the C backend."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.compile import function
from fcn8_lasagne.layers import (
    BatchNormLayer,
    Conv1DLayer,
    NonlinearityLayer,
    count_params,
    get_all_params,
    get_output,
    get_output_shape,
)
from fcn8_lasagne.models.fcn1d import build_model
from fcn8_lasagne.nonlinearities import rectify, softmax
from tests.conftest import FAST_MODE
from tests.reference import fcn1d as ref

HEAD = ["final_conv", "final_dimshuffle", "final_reshape", "last_layer", "probs_reshape",
        "probs_dimshuffle"]


def _random_params(layer, rng):
    values = {}
    for param in get_all_params(layer):
        shape = param.get_value().shape
        kind = param.name.rsplit(".", 1)[1]
        if kind == "W":
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif kind in ("gamma", "inv_std"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            value = rng.uniform(-0.3, 0.3, shape)
        param.set_value(value.astype(param.dtype))
        values[param.name] = param.get_value().astype(np.float64)
    return values


def test_keys_blocks_and_return_value():
    x = pt.tensor3("x")
    output, net = build_model(x, depth=2)
    assert list(net) == ["input", "bn0", "relu0", "conv0", "bn1", "relu1", "conv1"] + HEAD
    assert output == [net["last_layer"]] and net["input"].input_var is x
    assert isinstance(net["bn0"], BatchNormLayer) and net["relu0"].nonlinearity is rectify
    conv = net["conv1"]
    assert isinstance(conv, Conv1DLayer) and conv.b is not None and conv.pad == "same"
    assert conv.nonlinearity(3.0) == 3.0 and conv.nonlinearity(-3.0) == -3.0  # identity
    assert net["final_conv"].nonlinearity is rectify  # Conv1DLayer's default, as the original
    assert net["last_layer"].nonlinearity is softmax
    _, other = build_model(None, depth=2, block="conv_bn_relu")
    assert list(other)[:7] == ["input", "conv0", "bn0", "relu0", "conv1", "bn1", "relu1"]
    assert isinstance(other["relu1"], NonlinearityLayer)
    with pytest.raises(ValueError, match="unknown block 'bn_conv'"):
        build_model(None, block="bn_conv")


def test_shapes():
    output, net = build_model(pt.tensor3())
    assert net["input"].output_shape == (None, 2, 200)
    assert net["conv7"].output_shape == (None, 64, 200)  # 'same': 200 + 2 * 12 - 25 + 1
    assert net["final_conv"].output_shape == (None, 6, 200)
    assert net["final_dimshuffle"].output_shape == (None, 200, 6)
    shapes = get_output_shape([net[key] for key in HEAD], (5, 2, 200))
    assert shapes[:4] == [(5, 6, 200), (5, 200, 6), (1000, 6), (1000, 6)]
    _, wide = build_model(None, n_classes=7, nb_in_channels=1, filter_size=9, n_filters=4,
                          depth=3, last_filter_size=3)
    assert wide["final_conv"].W.get_value().shape == (7, 4, 3)
    assert get_output_shape(wide["final_conv"], (2, 1, 200)) == (2, 7, 200)


def test_parameter_order_and_counts():
    output, net = build_model(pt.tensor3())
    params = get_all_params(output[0])
    names = []
    for d in range(8):
        names += [f"bn{d}.{kind}" for kind in ("beta", "gamma", "mean", "inv_std")]
        names += [f"conv{d}.W", f"conv{d}.b"]
    assert [p.name for p in params] == names + ["final_conv.W", "final_conv.b"]
    assert net["conv0"].W.get_value().shape == (64, 2, 25)
    assert net["conv3"].W.get_value().shape == (64, 64, 25)
    assert net["bn0"].beta.get_value().shape == (2,) and net["bn1"].beta.get_value().shape == (64,)
    # bn0: 4 * 2; conv0: 64 * 2 * 25 + 64 = 3 264; bn1..7: 7 * 4 * 64 = 1 792;
    # conv1..7: 7 * (64 * 64 * 25 + 64) = 717 248; final_conv: 6 * 64 + 6 = 390
    assert count_params(output[0]) == 8 + 3_264 + 1_792 + 717_248 + 390 == 722_702
    assert count_params(output[0], trainable=True) == 722_702 - 4 - 7 * 128 == 721_802
    # train_fcn1D.py: 7 classes; final_conv 7 * 64 + 7
    assert count_params(build_model(None, n_classes=7)[0][0]) == 722_702 - 390 + 455
    # conv_bn_relu: every bn has 64 channels: 8 * 256 + 3 264 + 717 248 + 390
    other = build_model(None, block="conv_bn_relu")[0][0]
    assert count_params(other) == 722_950
    assert [p.name for p in get_all_params(other)][:6] == [
        "conv0.W", "conv0.b", "bn0.beta", "bn0.gamma", "bn0.mean", "bn0.inv_std"]


@pytest.mark.parametrize("block", ["bn_relu_conv", "conv_bn_relu"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_matches_the_numpy_forward_pass(block, deterministic):
    with pytensor.config.change_flags(floatX="float64"):
        x = pt.tensor3("x")
        output, net = build_model(x, n_classes=4, nb_in_channels=2, filter_size=5,
                                  n_filters=3, depth=2, last_filter_size=3, block=block)
        params = _random_params(output[0], np.random.default_rng(11))
        keys = ["final_conv", "last_layer", "probs_dimshuffle"]
        fn = pytensor.function([x], get_output([net[k] for k in keys],
                                               deterministic=deterministic), mode=FAST_MODE)
    profiles = np.random.default_rng(12).standard_normal((3, 2, 200))
    expected = ref.fcn1d_forward(profiles, params, depth=2, block=block,
                                 deterministic=deterministic)
    for key, value in zip(keys, fn(profiles)):
        np.testing.assert_allclose(value, expected[key], rtol=1e-9, atol=1e-12, err_msg=key)
    assert (expected["final_conv"] == 0).any()  # the ReLU of final_conv was exercised


def test_gradients_match_finite_differences():
    with pytensor.config.change_flags(floatX="float64"):
        x, y = pt.tensor3("x"), pt.ivector("y")
        output, net = build_model(x, n_classes=3, filter_size=5, n_filters=3, depth=2)
        _random_params(output[0], np.random.default_rng(13))
        probs = get_output(output[0])
        loss = -pt.mean(pt.log(probs[pt.arange(y.shape[0]), y]))
        checked = get_all_params(output[0], trainable=True)
        loss_fn = pytensor.function([x, y], loss, mode=FAST_MODE, no_default_updates=True)
        grad_fn = pytensor.function([x, y], pytensor.grad(loss, checked), mode=FAST_MODE,
                                    no_default_updates=True)
    rng = np.random.default_rng(14)
    profiles = rng.standard_normal((2, 2, 200))
    labels = rng.integers(0, 3, 400).astype("int32")
    eps = 1e-6
    for param, grad in zip(checked, grad_fn(profiles, labels)):
        value = param.get_value()
        for flat in rng.choice(value.size, size=min(3, value.size), replace=False):
            index = np.unravel_index(flat, value.shape)
            shifted = value.copy()
            shifted[index] += eps
            param.set_value(shifted)
            up = loss_fn(profiles, labels)
            shifted[index] -= 2 * eps
            param.set_value(shifted)
            down = loss_fn(profiles, labels)
            param.set_value(value)
            assert grad[index] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-9), \
                param.name


@pytest.mark.slow
def test_jax_mode_equals_c_mode():
    pytest.importorskip("jax")
    x, y = pt.tensor3("x"), pt.ivector("y")
    output, net = build_model(x, n_classes=7, filter_size=7, n_filters=4, depth=2)
    _random_params(output[0], np.random.default_rng(15))
    params = get_all_params(output[0], trainable=True)
    probs = get_output(output[0])
    loss = -pt.mean(pt.log(probs[pt.arange(y.shape[0]), y]))
    outputs = [loss, get_output(net["probs_dimshuffle"], deterministic=True),
               *pytensor.grad(loss, params)]
    # the training functions move the batch-norm averages (default updates): both start from
    # the same. (A deterministic output in the same JAX function reads the averages that
    # the function donates, which XLA refuses: they are compiled apart.)
    c_fn = function([x, y], outputs[:1] + outputs[2:], mode="CVM")
    jax_fn = function([x, y], outputs[:1] + outputs[2:], device="jax")
    c_test = function([x], outputs[1], mode="CVM")
    jax_test = function([x], outputs[1], device="jax")
    every_param = get_all_params(output[0])
    start = [param.get_value() for param in every_param]
    rng = np.random.default_rng(16)
    profiles = rng.standard_normal((4, 2, 200)).astype("float32")
    labels = rng.integers(0, 7, 800).astype("int32")
    c_values = c_fn(profiles, labels)
    after_c = [param.get_value() for param in every_param]
    for param, value in zip(every_param, start):
        param.set_value(value)
    for c_value, jax_value in zip(c_values, jax_fn(profiles, labels)):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=2e-4, atol=2e-5)
    for param, value in zip(every_param, after_c):  # the same averages after the step
        np.testing.assert_allclose(param.get_value(), value, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(np.asarray(jax_test(profiles)), c_test(profiles), rtol=2e-4,
                               atol=2e-5)


def test_batch_norm_averages_move_only_in_training():
    x = pt.tensor3("x")
    output, net = build_model(x, filter_size=3, n_filters=2, depth=1)
    train = pytensor.function([x], get_output(output[0]), mode=FAST_MODE)
    test = pytensor.function([x], get_output(net["probs_dimshuffle"], deterministic=True),
                             mode=FAST_MODE)
    profiles = np.random.default_rng(17).standard_normal((3, 2, 200)).astype("float32") + 2
    test(profiles)
    np.testing.assert_array_equal(net["bn0"].mean.get_value(), 0)
    train(profiles)
    np.testing.assert_allclose(net["bn0"].mean.get_value(),
                               0.1 * profiles.mean(axis=(0, 2)), rtol=1e-5)
