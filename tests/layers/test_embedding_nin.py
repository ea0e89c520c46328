"""EmbeddingLayer and NINLayer against NumPy references, Lasagne's API and finite
differences."""

import inspect

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import init, nonlinearities
from fcn8_lasagne.layers import EmbeddingLayer, InputLayer, NINLayer, get_output
from tests.conftest import FAST_MODE
from tests.reference import lasagne_extras as ref


def _defaults(function):
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


# --- EmbeddingLayer ---------------------------------------------------------------------

def test_embedding_signature_param_and_default_init():
    defaults = _defaults(EmbeddingLayer.__init__)
    assert list(defaults) == ["W"] and isinstance(defaults["W"], init.Normal)
    assert (defaults["W"].std, defaults["W"].mean) == (0.01, 0.0)
    np.random.seed(3)
    layer = EmbeddingLayer(InputLayer((None, 4)), input_size=6, output_size=3, name="emb")
    np.random.seed(3)
    np.testing.assert_array_equal(layer.W.get_value(),
                                  np.random.normal(0, 0.01, (6, 3)).astype("float32"))
    assert layer.W.name == "emb.W"
    assert layer.params[layer.W] == {"trainable", "regularizable"}
    assert layer.get_params() == [layer.W]
    assert layer.output_shape == (None, 4, 3)
    assert EmbeddingLayer((2, 3, 5), 4, 7).output_shape == (2, 3, 5, 7)


def test_embedding_looks_up_rows(rng):
    W = rng.standard_normal((5, 4)).astype("float32")
    indices = np.array([[0, 4, 2], [3, 3, 1]], dtype="int32")
    x = pt.imatrix("x")
    layer = EmbeddingLayer(InputLayer((None, 3), x), 5, 4, W=W)
    out = pytensor.function([x], get_output(layer), mode=FAST_MODE)(indices)
    assert out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, ref.embedding(indices, W))
    # Lasagne's docstring example
    W = np.arange(15).reshape((3, 5)).astype("float32")
    example = EmbeddingLayer(InputLayer((3,)), input_size=3, output_size=5, W=W)
    f = pytensor.function([x], get_output(example, x), mode=FAST_MODE)
    np.testing.assert_array_equal(f(np.array([[0, 2], [1, 2]], dtype="int32")),
                                  [[W[0], W[2]], [W[1], W[2]]])


def test_embedding_gradient_by_finite_differences(rng):
    W = rng.standard_normal((4, 3))
    weights = rng.standard_normal((2, 2, 3))
    indices = np.array([[1, 1], [3, 0]], dtype="int32")
    x = pt.imatrix("x")
    layer = EmbeddingLayer(InputLayer((None, 2), x), 4, 3, W=W.copy())
    loss = (get_output(layer) * weights).sum()
    f = pytensor.function([x], [loss, pytensor.grad(loss, layer.W)], mode=FAST_MODE)
    _, grad = f(indices)

    def value():
        return (ref.embedding(indices, W_fd) * weights).sum()

    W_fd = W.copy()
    np.testing.assert_allclose(grad, ref.numeric_gradient(value, W_fd), atol=1e-6)
    # a repeated index accumulates: row 1 gets both of its positions' weights
    np.testing.assert_allclose(grad[1], weights[0, 0] + weights[0, 1])
    np.testing.assert_array_equal(grad[2], 0)


# --- NINLayer ---------------------------------------------------------------------------

def test_nin_signature_params_tags_and_shapes():
    defaults = _defaults(NINLayer.__init__)
    assert list(defaults) == ["untie_biases", "W", "b", "nonlinearity"]
    assert defaults["untie_biases"] is False
    assert isinstance(defaults["W"], init.GlorotUniform)
    assert isinstance(defaults["b"], init.Constant) and defaults["b"].val == 0.0
    assert defaults["nonlinearity"] is nonlinearities.rectify

    layer = NINLayer(InputLayer((None, 20, 10, 3)), num_units=5, name="nin")
    assert layer.output_shape == (None, 5, 10, 3)
    assert layer.get_params() == [layer.W, layer.b]
    assert [p.name for p in layer.get_params()] == ["nin.W", "nin.b"]
    assert layer.W.get_value().shape == (20, 5) and layer.b.get_value().shape == (5,)
    assert layer.params[layer.W] == {"trainable", "regularizable"}
    assert layer.params[layer.b] == {"trainable"}
    untied = NINLayer(InputLayer((None, 2, 4, 3, 2)), 6, untie_biases=True)
    assert untied.b.get_value().shape == (6, 4, 3, 2)
    assert untied.output_shape == (None, 6, 4, 3, 2)
    assert NINLayer((7, 3), 2).output_shape == (7, 2)
    no_bias = NINLayer((7, 3, 5), 2, b=None)
    assert no_bias.b is None and no_bias.get_params() == [no_bias.W]
    with pytest.raises(TypeError):  # untied biases need the trailing sizes (as in Lasagne)
        NINLayer(InputLayer((None, 2, None)), 3, untie_biases=True)


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 4, 5), (1, 3, 2, 3, 2)])
@pytest.mark.parametrize("untie_biases", [False, True])
def test_nin_matches_reference(rng, shape, untie_biases):
    x = rng.standard_normal(shape).astype("float32")
    W = rng.standard_normal((3, 4)).astype("float32")
    b_shape = (4,) + shape[2:] if untie_biases else (4,)
    b = rng.standard_normal(b_shape).astype("float32")
    x_var = pt.tensor("x", dtype="float32", shape=(None,) * len(shape))
    layer = NINLayer(InputLayer((None,) + shape[1:], x_var), 4, untie_biases=untie_biases,
                     W=W, b=b)
    out = pytensor.function([x_var], get_output(layer), mode=FAST_MODE)(x)
    assert out.shape == (shape[0], 4) + shape[2:]
    np.testing.assert_allclose(out, ref.nin(x, W, b), rtol=1e-5, atol=1e-5)


def test_nin_without_bias_and_linear(rng):
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    W = rng.standard_normal((3, 2)).astype("float32")
    x_var = pt.tensor3("x")
    layer = NINLayer(InputLayer((None, 3, 4), x_var), 2, W=W, b=None, nonlinearity=None)
    assert layer.b is None
    out = pytensor.function([x_var], get_output(layer), mode=FAST_MODE)(x)
    np.testing.assert_allclose(out, ref.nin(x, W, None, nonlinearity=lambda v: v),
                               rtol=1e-5, atol=1e-5)
    assert (out < 0).any()  # really linear


@pytest.mark.parametrize("untie_biases", [False, True])
def test_nin_gradients_by_finite_differences(rng, untie_biases):
    x = rng.standard_normal((2, 3, 2, 2))
    W = rng.standard_normal((3, 2))
    b = rng.standard_normal((2, 2, 2) if untie_biases else (2,))
    weights = rng.standard_normal((2, 2, 2, 2))
    x_var = pt.dtensor4("x")
    layer = NINLayer(InputLayer((None, 3, 2, 2), x_var), 2, untie_biases=untie_biases,
                     W=W.copy(), b=b.copy(), nonlinearity=nonlinearities.tanh)
    loss = (get_output(layer) * weights).sum()
    grads = pytensor.function([x_var], pytensor.grad(loss, [layer.W, layer.b]),
                              mode=FAST_MODE)(x)
    W_fd, b_fd = W.copy(), b.copy()

    def value():
        return (ref.nin(x, W_fd, b_fd, nonlinearity=np.tanh) * weights).sum()

    np.testing.assert_allclose(grads[0], ref.numeric_gradient(value, W_fd), rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(grads[1], ref.numeric_gradient(value, b_fd), rtol=1e-5,
                               atol=1e-7)
