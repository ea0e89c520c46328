"""standardize, ExpressionLayer(output_shape='auto'), InverseLayer, ParametricRectifierLayer
/ prelu and RandomizedRectifierLayer / rrelu against NumPy references, Lasagne's API and
finite differences; JAX against C."""

import copy
import inspect

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as fcompile
from fcn8_lasagne import init, nonlinearities
from fcn8_lasagne.layers import (
    BiasLayer,
    Conv2DLayer,
    DenseLayer,
    ExpressionLayer,
    InputLayer,
    InverseLayer,
    MaxPool2DLayer,
    NINLayer,
    ParametricRectifierLayer,
    RandomizedRectifierLayer,
    ScaleLayer,
    get_all_params,
    get_output,
    prelu,
    rrelu,
    standardize,
)
from tests.conftest import FAST_MODE
from tests.reference import lasagne_extras as ref


def _defaults(function):
    return {name: p.default for name, p in inspect.signature(function).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _function(inputs, outputs, mode=FAST_MODE, **kwargs):
    """A JAX ('jax'), C ('CVM', through compile.function, which brings shared values a
    JAX function left on the device back) or FAST_COMPILE function."""
    if mode in ("jax", "CVM"):
        return fcompile.function(inputs, outputs, device="jax" if mode == "jax" else "cpu",
                                 **kwargs)
    return pytensor.function(inputs, outputs, mode=mode, **kwargs)


# --- standardize ------------------------------------------------------------------------

@pytest.mark.parametrize("shared_axes, stat_axes", [(0, 0), ("auto", (0, 2)), ((0, 2), (0, 2))])
def test_standardize_values_and_untrainable_params(rng, shared_axes, stat_axes):
    data = (5 + 2 * rng.standard_normal((6, 3, 4))).astype("float32")
    offset = data.mean(axis=stat_axes)
    scale = data.std(axis=stat_axes)
    x_var = pt.tensor3("x")
    top = standardize(InputLayer((None, 3, 4), x_var), offset, scale, shared_axes=shared_axes)
    assert isinstance(top, ScaleLayer) and isinstance(top.input_layer, BiasLayer)
    bias = top.input_layer
    assert bias.params[bias.b] == set() and top.params[top.scales] == set()
    assert get_all_params(top, trainable=True) == []
    assert get_all_params(top) == [bias.b, top.scales]
    out = _function([x_var], get_output(top))(data)
    keep = tuple(a for a in range(3) if a not in np.atleast_1d(stat_axes))
    expected = (data - np.expand_dims(offset, tuple(set(range(3)) - set(keep))))
    expected = expected / np.expand_dims(scale, tuple(set(range(3)) - set(keep)))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=stat_axes), 0, atol=1e-5)


# --- ExpressionLayer --------------------------------------------------------------------

def test_expression_layer_output_shapes():
    l_in = InputLayer((32, 100, 20))
    assert ExpressionLayer(l_in, lambda X: X.mean(-1), output_shape="auto").output_shape \
        == (32, 100)  # Lasagne's docstring example
    assert ExpressionLayer(l_in, lambda X: X * 2).output_shape == (32, 100, 20)
    assert ExpressionLayer(l_in, lambda X: X[0], output_shape=(100, None)).output_shape \
        == (100, None)
    swap = ExpressionLayer(l_in, lambda X: X.dimshuffle(0, 2, 1),
                           output_shape=lambda s: (s[0], s[2], s[1]))
    assert swap.output_shape == (32, 20, 100)
    assert swap.get_output_shape_for((1, 2, 3)) == (1, 3, 2)
    unknown = InputLayer((None, 3, None))
    flat = ExpressionLayer(unknown, lambda X: X.flatten(2), output_shape="auto")
    assert flat.output_shape == (None, None)
    assert ExpressionLayer(InputLayer((None, 3, 5)), lambda X: X.sum(axis=1),
                           output_shape="auto").output_shape == (None, 5)
    assert ExpressionLayer(unknown, lambda X: X.sum(axis=(0, 2)),
                           output_shape="auto").output_shape == (3,)
    assert ExpressionLayer(unknown, lambda X: X[:, :2, ::2], output_shape="auto") \
        .get_output_shape_for((4, 3, 7)) == (4, 2, 4)


def test_expression_layer_output(rng):
    x = rng.standard_normal((2, 3)).astype("float32")
    x_var = pt.matrix("x")
    layer = ExpressionLayer(InputLayer((None, 3), x_var), lambda X: X ** 2 + 1)
    np.testing.assert_allclose(_function([x_var], get_output(layer))(x), x ** 2 + 1, rtol=1e-6)


# --- InverseLayer -----------------------------------------------------------------------

def test_inverse_of_dense_is_the_transposed_product(rng):
    x_var = pt.matrix("x")
    y_var = pt.matrix("y")
    l_in = InputLayer((None, 4), x_var)
    dense = DenseLayer(l_in, 3, nonlinearity=None)
    inverse = InverseLayer(InputLayer((None, 3), y_var), dense)
    assert inverse.input_layers[1:] == [dense, l_in]
    assert inverse.output_shape == (None, 4) and inverse.get_params() == []
    x = rng.standard_normal((2, 4)).astype("float32")
    y = rng.standard_normal((2, 3)).astype("float32")
    # a linear layer's gradient does not depend on its input
    out = _function([x_var, y_var], get_output(inverse), on_unused_input="ignore")(x, y)
    np.testing.assert_allclose(out, y @ dense.W.get_value().T, rtol=1e-5, atol=1e-6)


def test_inverse_includes_the_nonlinearity_derivative(rng):
    x_var = pt.matrix("x")
    l_in = InputLayer((None, 4), x_var)
    W = rng.standard_normal((4, 3)).astype("float32")
    b = rng.standard_normal(3).astype("float32")
    dense = DenseLayer(l_in, 3, W=W, b=b, nonlinearity=nonlinearities.tanh)
    inverse = InverseLayer(dense, dense)  # an auto-encoder's tied decoder
    x = rng.standard_normal((5, 4)).astype("float32")
    out = _function([x_var], get_output(inverse))(x)
    y = np.tanh(x @ W + b)
    np.testing.assert_allclose(out, (y * (1 - y ** 2)) @ W.T, rtol=1e-4, atol=1e-5)


def test_inverse_of_max_pool_unpools(rng):
    x_var = pt.tensor4("x")
    l_in = InputLayer((None, 2, 4, 4), x_var)
    pool = MaxPool2DLayer(l_in, 2)
    inverse = InverseLayer(pool, pool)
    x = rng.permutation(2 * 2 * 16).reshape(2, 2, 4, 4).astype("float32")  # no ties
    out = _function([x_var], get_output(inverse))(x)
    windows = x.reshape(2, 2, 2, 2, 2, 2)
    pooled = windows.max(axis=(3, 5))
    upsampled = np.repeat(np.repeat(pooled, 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(out, np.where(x == upsampled, x, 0))


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1)])
def test_inverse_of_a_convolution_is_its_adjoint(rng, stride, pad):
    """For a linear convolution A (bias b), <inverse(y), x> = <y, A x>: the transposed
    convolution, whatever the stride and padding."""
    x_var = pt.tensor4("x")
    y_var = pt.tensor4("y")
    l_in = InputLayer((2, 3, 7, 7), x_var)
    conv = Conv2DLayer(l_in, 4, 3, stride=stride, pad=pad, nonlinearity=None,
                       b=init.Constant(0.5))
    inverse = InverseLayer(InputLayer(conv.output_shape, y_var), conv)
    assert inverse.output_shape == (2, 3, 7, 7)
    x = rng.standard_normal((2, 3, 7, 7)).astype("float32")
    y = rng.standard_normal((2,) + conv.output_shape[1:]).astype("float32")
    f = _function([x_var, y_var], [get_output(inverse), get_output(conv)],
                  on_unused_input="ignore")
    back, forward = f(x, y)
    assert back.shape == x.shape
    np.testing.assert_allclose((back * x).sum(), (y * (forward - 0.5)).sum(), rtol=1e-4)


@pytest.mark.parametrize("untie", [False, True])
def test_inverse_of_nin_jax_matches_c(rng, untie):
    x_var = pt.tensor4("x")
    nin = NINLayer(InputLayer((None, 3, 2, 2), x_var), 4, untie_biases=untie)
    inverse = InverseLayer(nin, nin)
    x = rng.standard_normal((2, 3, 2, 2)).astype("float32")
    c_out = _function([x_var], get_output(inverse), mode="CVM")(x)
    np.testing.assert_allclose(_function([x_var], get_output(inverse), mode="jax")(x), c_out,
                               rtol=1e-5, atol=1e-6)
    W = nin.W.get_value()
    b = nin.b.get_value()
    pre = np.einsum("nchw,cu->nuhw", x, W) + (b if untie else b[:, None, None])
    y = np.maximum(pre, 0)
    # rectify = 0.5 (x + |x|): derivative 1 above 0, 0 below
    expected = np.einsum("nuhw,cu->nchw", y * (pre > 0), W)
    np.testing.assert_allclose(c_out, expected, rtol=1e-5, atol=1e-5)


# --- ParametricRectifierLayer, prelu ----------------------------------------------------

def test_prelu_signature_param_and_tags():
    defaults = _defaults(ParametricRectifierLayer.__init__)
    assert list(defaults) == ["alpha", "shared_axes"] and defaults["shared_axes"] == "auto"
    assert isinstance(defaults["alpha"], init.Constant) and defaults["alpha"].val == 0.25
    layer = ParametricRectifierLayer(InputLayer((None, 3, 28, 28)), name="p")
    assert layer.alpha.name == "p.alpha" and layer.get_params() == [layer.alpha]
    assert layer.params[layer.alpha] == {"trainable"}
    np.testing.assert_array_equal(layer.alpha.get_value(), [0.25] * 3)
    assert ParametricRectifierLayer((20, 3, 28, 28), shared_axes=(0, 3)).alpha \
        .get_value().shape == (3, 28)  # Lasagne's docstring example
    assert ParametricRectifierLayer((20, 3, 28, 28), shared_axes="all").alpha \
        .get_value().shape == ()
    assert ParametricRectifierLayer((20, 3, 5), shared_axes=1).alpha.get_value().shape \
        == (20, 5)
    with pytest.raises(ValueError, match="needs input sizes"):
        ParametricRectifierLayer((None, 3), shared_axes=1)


@pytest.mark.parametrize("shared_axes, alpha_shape, pattern", [
    ("auto", (3,), (None, slice(None), None, None)),
    ("all", (), (None, None, None, None)),
    ((0, 3), (3, 4), (None, slice(None), slice(None), None)),
    (2, (2, 3, 5), (slice(None), slice(None), None, slice(None))),
])
def test_prelu_matches_reference(rng, shared_axes, alpha_shape, pattern):
    x = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    alpha = rng.uniform(-0.5, 1.5, alpha_shape).astype("float32")
    x_var = pt.tensor4("x")
    layer = ParametricRectifierLayer(InputLayer((2, 3, 4, 5), x_var), alpha=alpha,
                                     shared_axes=shared_axes)
    out = _function([x_var], get_output(layer))(x)
    slope = alpha[pattern] if alpha.ndim else alpha
    np.testing.assert_allclose(out, ref.leaky(x, slope), rtol=1e-6, atol=1e-6)


def test_prelu_gradients_by_finite_differences_and_at_zero(rng):
    x = rng.standard_normal((2, 3, 2))
    x[0, 0, 0] = 0.0
    alpha = rng.uniform(0, 1, 3)
    weights = rng.standard_normal(x.shape)
    x_var = pt.dtensor3("x")
    layer = ParametricRectifierLayer(InputLayer((None, 3, 2), x_var), alpha=alpha.copy())
    loss = (get_output(layer) * weights).sum()
    g_x, g_alpha = pytensor.function([x_var], pytensor.grad(loss, [x_var, layer.alpha]),
                                     mode=FAST_MODE)(x)
    alpha_fd = alpha.copy()
    expected = ref.numeric_gradient(
        lambda: (ref.leaky(x, alpha_fd[None, :, None]) * weights).sum(), alpha_fd)
    np.testing.assert_allclose(g_alpha, expected, rtol=1e-6, atol=1e-8)
    away = x != 0
    slope = np.where(x > 0, 1, alpha[None, :, None])
    np.testing.assert_allclose(g_x[away], (slope * weights)[away], rtol=1e-6)
    # Theano's relu(x, alpha) has the mean slope (1 + alpha) / 2 at exactly 0
    np.testing.assert_allclose(g_x[0, 0, 0], 0.5 * (1 + alpha[0]) * weights[0, 0, 0])


def test_prelu_function_and_jax(rng):
    dense = DenseLayer(InputLayer((None, 4)), 3)
    layer = prelu(dense, shared_axes="all", alpha=init.Constant(0.1))
    assert isinstance(layer, ParametricRectifierLayer) and layer.input_layer is dense
    assert dense.nonlinearity is nonlinearities.identity
    x_var = pt.tensor4("x")
    p = ParametricRectifierLayer(InputLayer((None, 3, None, None), x_var),
                                 alpha=rng.uniform(0, 1, 3).astype("float32"))
    x = rng.standard_normal((2, 3, 4, 4)).astype("float32")
    np.testing.assert_allclose(_function([x_var], get_output(p), "jax")(x),
                               _function([x_var], get_output(p), "CVM")(x), rtol=1e-6,
                               atol=1e-7)


# --- RandomizedRectifierLayer, rrelu ----------------------------------------------------

def test_rrelu_signature_and_errors():
    assert _defaults(RandomizedRectifierLayer.__init__) == {
        "lower": 0.3, "upper": 0.8, "shared_axes": "auto"}
    layer = RandomizedRectifierLayer(InputLayer((None, 3, 4, 4)))
    assert layer.shared_axes == (0, 2, 3) and layer.get_params() == []
    assert RandomizedRectifierLayer((2, 3), shared_axes="all").shared_axes == (0, 1)
    assert RandomizedRectifierLayer((2, 3), shared_axes=1).shared_axes == (1,)
    with pytest.raises(ValueError, match="Upper bound"):
        RandomizedRectifierLayer((2, 3), lower=0.5, upper=0.4)
    RandomizedRectifierLayer((2, 3), lower=pt.scalar(), upper=0.4)  # symbolic: not checked
    dense = DenseLayer(InputLayer((None, 4)), 3)
    top = rrelu(dense, lower=0.1, upper=0.2)
    assert isinstance(top, RandomizedRectifierLayer) and top.input_layer is dense
    assert dense.nonlinearity is nonlinearities.identity and (top.lower, top.upper) == (0.1, 0.2)


def test_rrelu_deterministic_uses_the_mean_slope_c_and_jax(rng):
    x = rng.standard_normal((2, 3, 4, 4)).astype("float32")
    x_var = pt.tensor4("x")
    layer = RandomizedRectifierLayer(InputLayer((None, 3, None, None), x_var), lower=0.2,
                                     upper=0.6)
    out = get_output(layer, deterministic=True)
    c_out = _function([x_var], out, "CVM")(x)
    np.testing.assert_allclose(c_out, ref.leaky(x, 0.4), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(_function([x_var], out, "jax")(x), c_out, rtol=1e-6, atol=1e-7)
    equal = RandomizedRectifierLayer(InputLayer((None, 3, None, None), x_var), lower=0.3,
                                     upper=0.3)
    np.testing.assert_allclose(_function([x_var], get_output(equal))(x), ref.leaky(x, 0.3),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shared_axes, slope_shape", [
    ("auto", (1, 3, 1, 1)), ("all", (1, 1, 1, 1)), ((), (2, 3, 4, 5)), ((1, 2), (2, 1, 1, 5))])
def test_rrelu_training_draws_fresh_shared_slopes(shared_axes, slope_shape):
    x_var = pt.tensor4("x")
    layer = RandomizedRectifierLayer(InputLayer((None, 3, None, None), x_var), lower=0.2,
                                     upper=0.6, shared_axes=shared_axes)
    generator = copy.deepcopy(layer._rng.get_value())
    f = _function([x_var], get_output(layer))
    x = -np.ones((2, 3, 4, 5), dtype="float32")
    first, second = f(x), f(x)
    slopes = -first
    assert np.all((slopes >= 0.2) & (slopes < 0.6))
    reduced = slopes[tuple(slice(0, s) for s in slope_shape)]
    np.testing.assert_array_equal(slopes, np.broadcast_to(reduced, x.shape))
    assert not np.array_equal(first, second)
    expected = generator.uniform(np.full(slope_shape, 0.2, dtype="float32"),
                                 np.float32(0.6)).astype("float32")
    np.testing.assert_allclose(reduced, expected, rtol=1e-6)
    np.testing.assert_array_equal(f(-x), -x)  # positive inputs pass unchanged


def test_rrelu_seeded_from_numpy_global_rng():
    x_var = pt.matrix("x")
    outs = []
    for _ in range(2):
        np.random.seed(11)
        layer = RandomizedRectifierLayer(InputLayer((None, 4), x_var))
        outs.append(_function([x_var], get_output(layer))(-np.ones((3, 4), dtype="float32")))
    np.testing.assert_array_equal(outs[0], outs[1])
