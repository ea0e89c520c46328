"""LocalResponseNormalization2DLayer, StandardizationLayer, instance_norm, layer_norm (and
BatchNormLayer's tags) against NumPy references and Lasagne's API; JAX against C."""

import inspect
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as fcompile
from fcn8_lasagne import nonlinearities
from fcn8_lasagne.layers import (
    BatchNormLayer,
    BiasLayer,
    DenseLayer,
    InputLayer,
    LocalResponseNormalization2DLayer,
    NINLayer,
    NonlinearityLayer,
    ScaleLayer,
    StandardizationLayer,
    batch_norm,
    get_all_layers,
    get_all_params,
    get_output,
    instance_norm,
    layer_norm,
)
from tests.conftest import FAST_MODE
from tests.reference import lasagne_extras as ref


def _defaults(function):
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _run(layer, x_var, x, mode=FAST_MODE, **kwargs):
    if mode in ("jax", "CVM"):
        device = "jax" if mode == "jax" else "cpu"
        return fcompile.function([x_var], get_output(layer, **kwargs), device=device)(x)
    return pytensor.function([x_var], get_output(layer, **kwargs), mode=mode)(x)


# --- LocalResponseNormalization2DLayer --------------------------------------------------

def test_lrn_signature_and_even_n():
    assert _defaults(LocalResponseNormalization2DLayer.__init__) == {
        "alpha": 1e-4, "k": 2, "beta": 0.75, "n": 5}
    layer = LocalResponseNormalization2DLayer(InputLayer((None, 3, None, 4)))
    assert layer.output_shape == (None, 3, None, 4) and layer.get_params() == []
    with pytest.raises(NotImplementedError, match="odd n"):
        LocalResponseNormalization2DLayer((1, 3, 2, 2), n=4)


@pytest.mark.parametrize("kwargs", [
    {},
    {"alpha": 0.5, "k": 1.5, "beta": 0.6, "n": 3},
    {"alpha": 0.2, "k": 1, "beta": 1.0, "n": 1},
    {"alpha": 0.1, "n": 9},  # window wider than the channels
])
def test_lrn_matches_reference(rng, kwargs):
    x = (3 * rng.standard_normal((2, 6, 3, 4))).astype("float32")
    x_var = pt.tensor4("x")
    layer = LocalResponseNormalization2DLayer(InputLayer((None, 6, None, None), x_var),
                                              **kwargs)
    out = _run(layer, x_var, x)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, ref.local_response_normalization(x, **kwargs),
                               rtol=2e-6, atol=1e-6)


def test_lrn_jax_matches_c(rng):
    x = (3 * rng.standard_normal((2, 5, 3, 3))).astype("float32")
    x_var = pt.tensor4("x")
    layer = LocalResponseNormalization2DLayer(InputLayer((None, 5, None, None), x_var),
                                              alpha=0.3, n=3)
    np.testing.assert_allclose(_run(layer, x_var, x, mode="jax"),
                               _run(layer, x_var, x, mode="CVM"), rtol=1e-6, atol=1e-7)


def test_lrn_input_gradient_by_finite_differences(rng):
    x = rng.standard_normal((1, 4, 2, 2))
    weights = rng.standard_normal(x.shape)
    x_var = pt.dtensor4("x")
    kwargs = {"alpha": 0.4, "k": 1.2, "beta": 0.7, "n": 3}
    layer = LocalResponseNormalization2DLayer(InputLayer((None, 4, 2, 2), x_var), **kwargs)
    loss = (get_output(layer) * weights).sum()
    grad = pytensor.function([x_var], pytensor.grad(loss, x_var), mode=FAST_MODE)(x)
    x_fd = x.copy()
    expected = ref.numeric_gradient(
        lambda: (ref.local_response_normalization(x_fd, **kwargs) * weights).sum(), x_fd)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


# --- StandardizationLayer ---------------------------------------------------------------

@pytest.mark.parametrize("shape, axes, numpy_axes", [
    ((4, 6), "auto", (1,)),
    ((2, 3, 4, 5), "auto", (2, 3)),
    ((2, 3, 4, 5), "spatial", (2, 3)),
    ((2, 3, 4), "features", (1, 2)),
    ((2, 3, 4, 5), "features", (1, 2, 3)),
    ((2, 3, 4), 0, (0,)),
    ((2, 3, 4, 5), (1, 3), (1, 3)),
])
def test_standardization_matches_reference(rng, shape, axes, numpy_axes):
    x = (2 + 3 * rng.standard_normal(shape)).astype("float32")
    x_var = pt.tensor("x", dtype="float32", shape=(None,) * len(shape))
    layer = StandardizationLayer(InputLayer((None,) + shape[1:], x_var), axes=axes,
                                 epsilon=1e-3)
    assert layer.axes == numpy_axes and layer.output_shape == (None,) + shape[1:]
    np.testing.assert_allclose(_run(layer, x_var, x), ref.standardize_over(x, numpy_axes, 1e-3),
                               rtol=1e-5, atol=1e-5)


def test_standardization_defaults_and_jax(rng):
    assert _defaults(StandardizationLayer.__init__) == {"axes": "auto", "epsilon": 1e-4}
    x = rng.standard_normal((2, 3, 4, 4)).astype("float32")
    x_var = pt.tensor4("x")
    layer = StandardizationLayer(InputLayer((None, 3, None, None), x_var))
    assert layer.get_params() == []
    np.testing.assert_allclose(_run(layer, x_var, x), ref.standardize_over(x, (2, 3)),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_run(layer, x_var, x, mode="jax"),
                               _run(layer, x_var, x, mode="CVM"), rtol=1e-5, atol=1e-6)


# --- instance_norm, layer_norm ----------------------------------------------------------

def test_instance_norm_structure_names_and_values(rng):
    assert _defaults(instance_norm) == {"learn_scale": True, "learn_bias": True}
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    x_var = pt.tensor4("x")
    conv = NINLayer(InputLayer((None, 3, 4, 5), x_var), 2, name="c",
                    nonlinearity=nonlinearities.tanh)
    top = instance_norm(conv, epsilon=1e-3)
    layers = get_all_layers(top)
    assert [type(l).__name__ for l in layers] == [
        "InputLayer", "NINLayer", "StandardizationLayer", "ScaleLayer", "BiasLayer",
        "NonlinearityLayer"]
    assert [l.name for l in layers[2:]] == ["c_in", "c_in_scale", "c_in_bias", "c_in_nonlin"]
    assert conv.b is None and conv.nonlinearity is nonlinearities.identity
    assert layers[2].axes == (2, 3) and layers[2].epsilon == 1e-3
    assert [p.name for p in get_all_params(top)] == ["c.W", "c_in_scale.scales", "c_in_bias.b"]
    scales = rng.uniform(0.5, 2, 2).astype("float32")
    shift = rng.standard_normal(2).astype("float32")
    layers[3].scales.set_value(scales)
    layers[4].b.set_value(shift)
    W = conv.W.get_value()
    pre = np.einsum("nchw,cu->nuhw", x, W)
    expected = np.tanh(ref.standardize_over(pre, (2, 3), 1e-3) * scales[:, None, None]
                       + shift[:, None, None])
    np.testing.assert_allclose(_run(top, x_var, x), expected, rtol=1e-4, atol=1e-5)


def test_instance_norm_options_and_unnamed_layers():
    layer = NINLayer(InputLayer((None, 3, 4, 5)), 2, nonlinearity=None)
    top = instance_norm(layer, learn_scale=False, learn_bias=False)
    # nonlinearity=None became the identity, which (as in Lasagne) is still moved on top
    assert isinstance(top, NonlinearityLayer) and top.nonlinearity is nonlinearities.identity
    assert isinstance(top.input_layer, StandardizationLayer) and top.name is None
    assert top.input_layer.input_layer is layer
    del layer.nonlinearity  # a layer without one gets no NonlinearityLayer
    bare = instance_norm(layer, learn_scale=False, learn_bias=False)
    assert isinstance(bare, StandardizationLayer) and bare.input_layer is layer
    only_scale = instance_norm(NINLayer((None, 3, 4, 5), 2), learn_bias=False, name="x")
    assert isinstance(only_scale, NonlinearityLayer)
    assert isinstance(only_scale.input_layer, ScaleLayer)
    assert only_scale.input_layer.name == "x_scale"


def test_layer_norm_structure_names_and_values(rng):
    x = rng.standard_normal((3, 4)).astype("float32")
    x_var = pt.matrix("x")
    dense = DenseLayer(InputLayer((None, 4), x_var), 5, name="d")
    top = layer_norm(dense)
    layers = get_all_layers(top)
    assert [type(l).__name__ for l in layers] == [
        "InputLayer", "DenseLayer", "StandardizationLayer", "ScaleLayer", "BiasLayer",
        "NonlinearityLayer"]
    assert [l.name for l in layers[2:]] == ["d_ln", "d_ln_scale", "d_ln_bias", "d_ln_nonlin"]
    assert dense.b is None and layers[2].axes == (1,)
    assert layers[-1].nonlinearity is nonlinearities.rectify
    pre = x @ dense.W.get_value()
    np.testing.assert_allclose(_run(top, x_var, x),
                               np.maximum(ref.standardize_over(pre, (1,)), 0),
                               rtol=1e-4, atol=1e-5)
    linear = DenseLayer((None, 4), 5)
    del linear.nonlinearity
    top = layer_norm(linear)
    assert isinstance(top, BiasLayer) and top.name is None


# --- BatchNormLayer's Lasagne tags and batch_norm's names ------------------------------

def test_batch_norm_stats_are_tagged():
    layer = BatchNormLayer(InputLayer((None, 3, 4, 4)), name="bn")
    assert layer.get_params(batch_norm_stat=True) == [layer.mean, layer.inv_std]
    assert layer.get_params(trainable=True) == [layer.beta, layer.gamma]
    assert layer.get_params(batch_norm_stat=False) == [layer.beta, layer.gamma]
    assert layer.params[layer.mean] == {"batch_norm_stat"}
    assert layer.params[layer.gamma] == {"trainable", "regularizable"}


def test_batch_norm_without_a_name_attribute_and_no_deprecation_warning(rng):
    dense = DenseLayer(InputLayer((None, 4)), 3)
    del dense.name  # Lasagne reads it with getattr(layer, 'name', None)
    top = batch_norm(dense)
    assert isinstance(top, NonlinearityLayer) and top.name is None
    assert top.input_layer.name is None
    x_var = top.input_layer.input_layer.input_layer.input_var
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = get_output(top)
    f = pytensor.function([x_var], out, mode=FAST_MODE)
    f(rng.standard_normal((5, 4)).astype("float32"))
    assert not np.allclose(top.input_layer.mean.get_value(), 0)  # the default update ran
