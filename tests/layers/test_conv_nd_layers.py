"""Conv1DLayer, Conv3DLayer and TransposedConv3DLayer against NumPy references."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import init
from fcn8_lasagne.layers import (
    Conv1DLayer,
    Conv3DLayer,
    Deconv3DLayer,
    InputLayer,
    TransposedConv3DLayer,
    get_output,
)
from fcn8_lasagne.nonlinearities import identity, linear
from fcn8_lasagne.theano_extensions import conv
from tests.conftest import FAST_MODE
from tests.reference import conv_layers as reference


def _run(layer, x_var, x, mode=FAST_MODE):
    return np.asarray(pytensor.function([x_var], get_output(layer), mode=mode)(x))


def _bias(layer, n):
    b = layer.b.get_value()
    return b[None] if layer.untie_biases else b.reshape((1, -1) + (1,) * n)


# --- Conv1DLayer -------------------------------------------------------------------------


@pytest.mark.parametrize("pad, stride, expected", [
    (0, 1, 11), ("valid", 3, 4), ("full", 1, 15), ("full", 2, 8), ("same", 1, 13),
    ("same", 3, 5), (2, 1, 15), ((1,), 2, 7),
])
def test_conv1d_output_shapes_by_hand(pad, stride, expected):
    # 13 - 3 + 1 = 11; ceil(11 / 3); 13 + 2; ceil(15 / 2); 13; ceil(13 / 3); 13 + 4 - 2;
    # ceil(13 / 2)
    layer = Conv1DLayer(InputLayer((2, 4, 13)), 5, 3, stride=stride, pad=pad)
    assert layer.output_shape == (2, 5, expected)
    assert layer.n == 1


@pytest.mark.parametrize("pad", [0, 1, 2, "valid", "full", "same", (1,)])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("flip_filters", [True, False])
def test_conv1d_layer_matches_reference(rng, pad, stride, flip_filters):
    x_var = pt.tensor3("x")
    x = rng.standard_normal((2, 3, 11)).astype("float32")
    layer = Conv1DLayer(InputLayer((None, 3, None), x_var), 4, 3, stride=stride, pad=pad,
                        flip_filters=flip_filters, nonlinearity=linear, b=init.Normal(1.0))
    expected = reference.convolve(x, layer.W.get_value(), stride, pad, flip=flip_filters)
    expected += _bias(layer, 1)
    out = _run(layer, x_var, x)
    assert out.shape == expected.shape
    assert Conv1DLayer(InputLayer((2, 3, 11)), 4, 3, stride=stride,
                       pad=pad).output_shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("implementation", ["conv1d_sc", "conv1d_mc0", "conv1d_mc1",
                                            "conv1d_unstrided", "conv1d_sd", "conv1d_md"])
def test_conv1d_layer_convolution_implementations(rng, implementation):
    x_var = pt.tensor3("x")
    x = rng.standard_normal((2, 3, 12)).astype("float32")
    layer = Conv1DLayer(InputLayer((2, 3, 12), x_var), 4, 4, stride=2, untie_biases=True,
                        b=init.Normal(1.0), convolution=getattr(conv, implementation))
    assert layer.b.get_value().shape == (4, 5)
    expected = np.maximum(reference.convolve(x, layer.W.get_value(), 2) + _bias(layer, 1), 0)
    np.testing.assert_allclose(_run(layer, x_var, x), expected, rtol=1e-4, atol=1e-4)


def test_conv1d_layer_defaults_groups_params_and_errors(rng):
    layer = Conv1DLayer(InputLayer((None, 4, 9)), 6, 3, num_groups=2, name="c1")
    assert layer.convolution is conv.conv1d_mc0
    assert layer.stride == (1,) and layer.pad == (0,) and layer.flip_filters is True
    assert layer.W.get_value().shape == (6, 2, 3)
    assert [p.name for p in layer.get_params()] == ["c1.W", "c1.b"]
    assert layer.get_params(regularizable=True) == [layer.W]
    assert layer.get_params(trainable=True) == [layer.W, layer.b]
    x_var = pt.tensor3("x")
    x = rng.standard_normal((2, 4, 9)).astype("float32")
    grouped = Conv1DLayer(InputLayer((None, 4, 9), x_var), 6, 3, pad="same", num_groups=2,
                          nonlinearity=None, b=None)
    assert grouped.nonlinearity is identity and grouped.b is None
    expected = reference.convolve(x, grouped.W.get_value(), 1, "same", groups=2)
    np.testing.assert_allclose(_run(grouped, x_var, x), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="^Conv1DLayer 'c': .*Expected 3 input dimensions"):
        Conv1DLayer(InputLayer((None, 4, 9, 9)), 6, 3, name="c")
    with pytest.raises(NotImplementedError, match="requires odd filter size"):
        Conv1DLayer(InputLayer((None, 4, 9)), 6, 4, pad="same")
    with pytest.raises(TypeError, match="iterable of int"):
        Conv1DLayer(InputLayer((None, 4, 9)), 6, 3, pad="_nonexistent_mode")


def test_conv1d_layer_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var = pt.tensor3("x")
    x = rng.standard_normal((2, 3, 10)).astype("float32")
    layer = Conv1DLayer(InputLayer((None, 3, None), x_var), 4, 3, stride=2, pad="full",
                        b=init.Normal(1.0))
    np.testing.assert_allclose(_run(layer, x_var, x, "JAX"), _run(layer, x_var, x, "CVM"),
                               rtol=1e-5, atol=1e-5)


# --- Conv3DLayer -------------------------------------------------------------------------


@pytest.mark.parametrize("pad, stride, expected", [
    (0, 1, (5, 6, 7)),            # 7 - 3 + 1, 8 - 3 + 1, 9 - 3 + 1
    ("full", 2, (5, 5, 6)),       # ceil(9 / 2), ceil(10 / 2), ceil(11 / 2)
    ("same", (1, 2, 3), (7, 4, 3)),
    ((1, 0, 2), 1, (7, 6, 11)),
])
def test_conv3d_output_shapes_by_hand(pad, stride, expected):
    layer = Conv3DLayer(InputLayer((2, 3, 7, 8, 9)), 4, 3, stride=stride, pad=pad)
    assert layer.output_shape == (2, 4) + expected
    assert layer.W.get_value().shape == (4, 3, 3, 3, 3)


@pytest.mark.parametrize("pad, stride", [(0, 1), (1, 2), ("full", 1), ("same", (1, 2, 3)),
                                         ((1, 0, 2), (2, 1, 1)), ("valid", 3)])
@pytest.mark.parametrize("flip_filters", [True, False])
def test_conv3d_layer_matches_reference(rng, pad, stride, flip_filters):
    x_var = pt.tensor5("x")
    x = rng.standard_normal((2, 2, 5, 6, 4)).astype("float32")
    filter_size = 3 if pad == "same" else (3, 2, 3)  # 'same' needs odd sizes
    layer = Conv3DLayer(InputLayer((None, 2, None, None, None), x_var), 3, filter_size,
                        stride=stride, pad=pad, flip_filters=flip_filters,
                        nonlinearity=linear, b=init.Normal(1.0))
    expected = reference.convolve(x, layer.W.get_value(), stride, pad, flip=flip_filters)
    expected += _bias(layer, 3)
    out = _run(layer, x_var, x)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_conv3d_layer_groups_untied_params(rng):
    x_var = pt.tensor5("x")
    x = rng.standard_normal((1, 4, 4, 5, 3)).astype("float32")
    layer = Conv3DLayer(InputLayer((None, 4, 4, 5, 3), x_var), 6, 2, num_groups=2,
                        untie_biases=True, b=init.Normal(1.0), name="c3")
    assert layer.W.get_value().shape == (6, 2, 2, 2, 2)
    assert layer.b.get_value().shape == (6, 3, 4, 2)
    assert [p.name for p in layer.get_params()] == ["c3.W", "c3.b"]
    assert layer.get_params(regularizable=False) == [layer.b]
    assert layer.convolution.__name__ == "conv3d"
    expected = reference.convolve(x, layer.W.get_value(), groups=2) + _bias(layer, 3)
    np.testing.assert_allclose(_run(layer, x_var, x), np.maximum(expected, 0), rtol=1e-4,
                               atol=1e-4)
    with pytest.raises(ValueError, match="^Conv3DLayer: .*Expected 5 input dimensions"):
        Conv3DLayer(InputLayer((None, 4, 4, 5)), 6, 2)
    with pytest.raises(ValueError, match="evenly divide"):
        Conv3DLayer(InputLayer((None, 4, 4, 5, 3)), 6, 2, num_groups=4)
    with pytest.raises(NotImplementedError, match="requires odd filter size"):
        Conv3DLayer(InputLayer((None, 4, 4, 5, 3)), 6, (3, 3, 2), pad="same")


def test_conv3d_layer_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var = pt.tensor5("x")
    x = rng.standard_normal((2, 2, 5, 4, 6)).astype("float32")
    layer = Conv3DLayer(InputLayer((None, 2, None, None, None), x_var), 3, 3, stride=(1, 2, 2),
                        pad="same", b=init.Normal(1.0))
    np.testing.assert_allclose(_run(layer, x_var, x, "JAX"), _run(layer, x_var, x, "CVM"),
                               rtol=1e-5, atol=1e-5)


# --- TransposedConv3DLayer ---------------------------------------------------------------


@pytest.mark.parametrize("crop", [0, 1, "valid", "full", "same", (0, 1, 2)])
@pytest.mark.parametrize("stride", [1, 2, (1, 3, 2)])
@pytest.mark.parametrize("flip_filters", [False, True])
def test_transposed_conv3d_matches_reference(rng, crop, stride, flip_filters):
    x_var = pt.tensor5("x")
    x = rng.standard_normal((1, 2, 3, 4, 2)).astype("float32")
    layer = TransposedConv3DLayer(InputLayer((None, 2, None, None, None), x_var), 3, 3,
                                  stride=stride, crop=crop, flip_filters=flip_filters,
                                  nonlinearity=linear, b=init.Normal(1.0))
    assert layer.W.get_value().shape == (2, 3, 3, 3, 3)
    expected = reference.transposed_convolve(x, layer.W.get_value(), stride, crop,
                                             flip_filters) + _bias(layer, 3)
    out = _run(layer, x_var, x)
    assert out.shape == expected.shape
    static = TransposedConv3DLayer(InputLayer((1, 2, 3, 4, 2)), 3, 3, stride=stride,
                                   crop=crop)
    assert static.output_shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_transposed_conv3d_output_size_params_and_defaults(rng):
    x_var = pt.tensor5("x")
    x = rng.standard_normal((1, 2, 3, 2, 2)).astype("float32")
    layer = Deconv3DLayer(InputLayer((None, 2, None, None, None), x_var), 2, (3, 2, 2),
                          stride=2, output_size=(8, 5, 4), nonlinearity=linear, name="up")
    assert Deconv3DLayer is TransposedConv3DLayer
    assert layer.flip_filters is False and layer.crop == (0, 0, 0)
    assert not hasattr(layer, "pad")
    assert layer.output_shape == (None, 2, 8, 5, 4)
    assert [p.name for p in layer.get_params()] == ["up.W", "up.b"]
    assert layer.get_params(regularizable=True) == [layer.W]
    expected = reference.transposed_convolve(x, layer.W.get_value(), 2, 0,
                                             output_size=(8, 5, 4))
    np.testing.assert_allclose(_run(layer, x_var, x), expected, rtol=1e-4, atol=1e-4)
    # (3 - 1) * 2 + 3, (2 - 1) * 2 + 2, (2 - 1) * 2 + 2: the smallest size
    assert TransposedConv3DLayer(InputLayer((1, 2, 3, 2, 2)), 2, (3, 2, 2), stride=2,
                                 untie_biases=True).b.get_value().shape == (2, 7, 4, 4)
    with pytest.raises(ValueError, match="Expected 5 input dimensions"):
        TransposedConv3DLayer(InputLayer((1, 2, 3, 2)), 2, 3)


def test_transposed_conv3d_transposes_conv3d_with_tied_weights(rng):
    # Lasagne's docstring example: a transposed layer sharing the forward layer's W is its
    # adjoint, <conv(x), y> = <x, deconv(y)>
    forward = Conv3DLayer(InputLayer((None, 1, 6, 5, 7)), 4, 3, stride=2, pad=1, b=None,
                          nonlinearity=None)
    backward = TransposedConv3DLayer(forward, forward.input_shape[1], forward.filter_size,
                                     stride=forward.stride, crop=forward.pad, W=forward.W,
                                     flip_filters=not forward.flip_filters, b=None,
                                     nonlinearity=None, output_size=(6, 5, 7))
    assert backward.W is forward.W
    x_var, y_var = pt.tensor5("x"), pt.tensor5("y")
    x = rng.standard_normal((2, 1, 6, 5, 7)).astype("float32")
    y = rng.standard_normal((2,) + forward.output_shape[1:]).astype("float32")
    fx = pytensor.function([x_var], forward.get_output_for(x_var), mode=FAST_MODE)(x)
    by = pytensor.function([y_var], backward.get_output_for(y_var), mode=FAST_MODE)(y)
    assert by.shape == x.shape
    np.testing.assert_allclose(np.sum(fx * y), np.sum(x * by), rtol=1e-4)


def test_transposed_conv3d_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var = pt.tensor5("x")
    x = rng.standard_normal((2, 2, 3, 4, 3)).astype("float32")
    layer = TransposedConv3DLayer(InputLayer((None, 2, None, None, None), x_var), 2, 3,
                                  stride=2, crop=1, b=init.Normal(1.0))
    np.testing.assert_allclose(_run(layer, x_var, x, "JAX"), _run(layer, x_var, x, "CVM"),
                               rtol=1e-5, atol=1e-5)



# --- gradients ---------------------------------------------------------------------------


def _conv1d_full(x, w):
    return Conv1DLayer(InputLayer((None, 2, None), x), 3, 3, stride=2, pad="full", W=w,
                       b=None, nonlinearity=linear)


def _conv1d_unstrided(x, w):
    # the unstrided implementation needs known channel counts and lengths
    return Conv1DLayer(InputLayer((None, 2, 9), x), 3, 4, stride=2, W=w, b=None,
                       nonlinearity=linear, convolution=conv.conv1d_unstrided)


def _conv3d_grouped(x, w):
    return Conv3DLayer(InputLayer((None, 4, None, None, None), x), 2, (2, 3, 1),
                       stride=(1, 2, 1), pad=1, num_groups=2, W=w, b=None,
                       nonlinearity=linear)


def _transposed_conv3d(x, w):
    return TransposedConv3DLayer(InputLayer((None, 2, None, None, None), x), 3, (2, 3, 2),
                                 stride=2, crop=1, W=w, b=None, nonlinearity=linear)


@pytest.mark.parametrize("make, x_shape, w_shape", [
    (_conv1d_full, (2, 2, 7), (3, 2, 3)),
    (_conv1d_unstrided, (2, 2, 9), (3, 2, 4)),
    (_conv3d_grouped, (1, 4, 3, 4, 3), (2, 2, 2, 3, 1)),
    (_transposed_conv3d, (1, 2, 3, 2, 3), (2, 3, 2, 3, 2)),
])
def test_layer_gradients_match_finite_differences(rng, make, x_shape, w_shape):
    # float64 inputs and weights (W given as a symbolic variable)
    pytensor.gradient.verify_grad(lambda x, w: get_output(make(x, w)),
                                  [rng.standard_normal(x_shape), rng.standard_normal(w_shape)],
                                  rng=np.random.default_rng(1), eps=1e-6, mode=FAST_MODE)
