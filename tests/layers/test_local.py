"""LocallyConnected2DLayer against a NumPy loop over output positions."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import init
from fcn8_lasagne.layers import Conv2DLayer, InputLayer, LocallyConnected2DLayer, get_output
from fcn8_lasagne.nonlinearities import linear
from tests.conftest import FAST_MODE
from tests.reference import conv_layers as reference


def _run(layer, x_var, x, mode=FAST_MODE):
    return np.asarray(pytensor.function([x_var], get_output(layer), mode=mode)(x))


@pytest.mark.parametrize("input_shape, num_filters, filter_size, channelwise", [
    ((2, 2, 5, 5), 2, (3, 3), False),
    ((2, 2, 5, 5), 2, (3, 3), True),
    ((3, 4, 6, 5), 2, (3, 5), False),
    ((3, 4, 6, 5), 4, (3, 5), True),
    ((2, 3, 4, 7), 2, (5, 1), False),
    ((2, 3, 4, 7), 3, (1, 5), True),
])
@pytest.mark.parametrize("flip_filters", [True, False])
def test_locally_connected_matches_reference(rng, input_shape, num_filters, filter_size,
                                             channelwise, flip_filters):
    x_var = pt.tensor4("x")
    x = rng.standard_normal(input_shape).astype("float32")
    layer = LocallyConnected2DLayer(InputLayer((None,) + input_shape[1:], x_var), num_filters,
                                    filter_size, flip_filters=flip_filters,
                                    channelwise=channelwise, nonlinearity=linear,
                                    b=init.Normal(1.0))
    w_shape = (num_filters,) + (() if channelwise else (input_shape[1],)) + filter_size + \
        input_shape[2:]
    assert layer.W.get_value().shape == w_shape
    expected = reference.locally_connected(x, layer.W.get_value(), flip_filters, channelwise)
    expected += layer.b.get_value()[None, :, None, None]
    out = _run(layer, x_var, x)
    assert out.shape == expected.shape == layer.get_output_shape_for(input_shape)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_locally_connected_with_shared_weights_is_a_convolution(rng):
    # every position holding the same kernel gives Conv2DLayer(pad='same')
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 5, 6)).astype("float32")
    conv = Conv2DLayer(InputLayer((None, 3, 5, 6), x_var), 4, (3, 5), pad="same",
                       nonlinearity=linear)
    kernel = conv.W.get_value()
    tiled = np.ascontiguousarray(np.broadcast_to(kernel[..., None, None], kernel.shape + (5, 6)))
    local = LocallyConnected2DLayer(InputLayer((None, 3, 5, 6), x_var), 4, (3, 5), W=tiled,
                                    nonlinearity=linear)
    np.testing.assert_allclose(_run(local, x_var, x), _run(conv, x_var, x), rtol=1e-5,
                               atol=1e-5)


def test_locally_connected_params_defaults_and_untied_biases(rng):
    layer = LocallyConnected2DLayer(InputLayer((None, 3, 4, 5)), 2, 3, name="lc")
    assert layer.pad == "same" and layer.stride == (1, 1) and layer.flip_filters is True
    assert layer.channelwise is False
    assert layer.output_shape == (None, 2, 4, 5)
    assert layer.W.get_value().shape == (2, 3, 3, 3, 4, 5)
    assert [p.name for p in layer.get_params()] == ["lc.W", "lc.b"]
    assert layer.get_params(regularizable=True) == [layer.W]
    assert layer.get_params(trainable=True) == [layer.W, layer.b]
    assert isinstance(layer, Conv2DLayer)

    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    untied = LocallyConnected2DLayer(InputLayer((None, 3, 4, 5), x_var), 3, 3,
                                     untie_biases=True, channelwise=True, b=init.Normal(1.0))
    assert untied.b.get_value().shape == (3, 4, 5)
    assert untied.W.get_value().shape == (3, 3, 3, 4, 5)
    expected = reference.locally_connected(x, untied.W.get_value(), True, True)
    expected = np.maximum(expected + untied.b.get_value()[None], 0)
    np.testing.assert_allclose(_run(untied, x_var, x), expected, rtol=1e-4, atol=1e-4)


def test_locally_connected_weight_gradient(rng):
    # d/dW sum(g * out): W[f, c, u', v', i, j] collects g[b, f, i, j] * x_pad[b, c, i + u, j + v]
    x_var, g_var = pt.tensor4("x"), pt.tensor4("g")
    x = rng.standard_normal((2, 2, 4, 3)).astype("float32")
    g = rng.standard_normal((2, 3, 4, 3)).astype("float32")
    layer = LocallyConnected2DLayer(InputLayer((None, 2, 4, 3), x_var), 3, (3, 1),
                                    nonlinearity=linear, b=None)
    grad = pytensor.grad(pt.sum(get_output(layer) * g_var), layer.W)
    out = pytensor.function([x_var, g_var], grad, mode=FAST_MODE)(x, g)
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (1, 1), (0, 0)])
    expected = np.zeros(layer.W.get_value().shape)
    for u in range(3):
        window = xp[:, :, u:u + 4, :]
        expected[:, :, 2 - u, 0] = np.einsum("bfij,bcij->fcij", g, window)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_locally_connected_errors():
    with pytest.raises(NotImplementedError, match=r"requires stride=1 / \(1, 1\), but got 2"):
        LocallyConnected2DLayer(InputLayer((None, 3, 6, 6)), 2, 3, stride=2)
    with pytest.raises(NotImplementedError, match="requires pad='same', but got 1"):
        LocallyConnected2DLayer(InputLayer((None, 3, 6, 6)), 2, 3, pad=1)
    with pytest.raises(NotImplementedError, match="requires odd filter size"):
        LocallyConnected2DLayer(InputLayer((None, 3, 6, 6)), 2, 2)
    with pytest.raises(ValueError, match=r"requires a fixed input shape \(except for the "
                                         r"batch size\)\. Got \(None, 3, None, 6\)"):
        LocallyConnected2DLayer(InputLayer((None, 3, None, 6)), 2, 3)
    with pytest.raises(ValueError, match="num_filters=2 and 3 input channels"):
        LocallyConnected2DLayer(InputLayer((None, 3, 6, 6)), 2, 3, channelwise=True)
    with pytest.raises(ValueError, match="Expected 4 input dimensions"):
        LocallyConnected2DLayer(InputLayer((None, 3, 6)), 2, 3)


# Theano's (and PyTensor's) float32 sums accumulate in float64, which JAX without x64
# truncates to float32, saying so
@pytest.mark.filterwarnings("ignore:Explicitly requested dtype float64")
def test_locally_connected_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var = pt.tensor4("x")
    x = rng.standard_normal((2, 3, 5, 4)).astype("float32")
    layer = LocallyConnected2DLayer(InputLayer((None, 3, 5, 4), x_var), 2, 3,
                                    b=init.Normal(1.0))
    np.testing.assert_allclose(_run(layer, x_var, x, "JAX"), _run(layer, x_var, x, "CVM"),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("channelwise", [False, True])
def test_locally_connected_gradients_match_finite_differences(rng, channelwise):
    def output(x, w):
        layer = LocallyConnected2DLayer(InputLayer((None, 2, 4, 3), x), 2, 3, W=w, b=None,
                                        nonlinearity=linear, channelwise=channelwise)
        return get_output(layer)

    w_shape = (2,) + (() if channelwise else (2,)) + (3, 3, 4, 3)
    pytensor.gradient.verify_grad(output, [rng.standard_normal((2, 2, 4, 3)),
                                           rng.standard_normal(w_shape)],
                                  rng=np.random.default_rng(1), eps=1e-6, mode=FAST_MODE)
