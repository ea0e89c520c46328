import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.layers import (DenseLayer, InputLayer, ReshapeLayer, TPSTransformerLayer,
                                 TransformerLayer, get_all_params, get_output)
from fcn8_lasagne.utils import floatX
from tests.conftest import FAST_MODE
from tests.reference import resize as reference

BORDER_MODES = ["nearest", "mirror", "wrap"]
IDENTITY = [1, 0, 0, 0, 1, 0]


def _output(layer, *values, mode=FAST_MODE):
    return pytensor.function([], layer.get_output_for([pt.constant(v) for v in values]),
                             mode=mode)()


def _random_theta(rng, batch):
    """Zoom, skew and shift around the identity; some points fall outside the image."""
    return np.tile(IDENTITY, (batch, 1)) + rng.uniform(-0.4, 0.4, (batch, 6))


def test_affine_identity(rng):
    x = rng.standard_normal((3, 2, 5, 7)).astype("float32")
    layer = TransformerLayer(InputLayer((3, 2, 5, 7)), InputLayer((3, 6)))
    out = _output(layer, x, floatX(np.tile(IDENTITY, (3, 1))))
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("border_mode", BORDER_MODES)
@pytest.mark.parametrize("downsample", [1, (0.7, 1.5)])
def test_affine_against_reference(rng, border_mode, downsample):
    x = rng.standard_normal((2, 3, 6, 5))
    theta = _random_theta(rng, 2)
    layer = TransformerLayer(InputLayer((None, 3, 6, 5)), InputLayer((None, 6)),
                             downsample_factor=downsample, border_mode=border_mode)
    out = _output(layer, x, theta)
    assert out.shape[1:] == layer.output_shape[1:]
    np.testing.assert_allclose(
        out, reference.affine_transform(x, theta, out.shape[2:], border_mode),
        rtol=1e-10, atol=1e-10)


def test_affine_translation_and_scale_by_hand():
    # x_s = 0.5 x_t + 0.5: the output's 5 columns sample input columns 2, 2.5, .., 4
    x = np.arange(5.0)[None, None, None, :].repeat(2, axis=2)
    layer = TransformerLayer(InputLayer((1, 1, 2, 5)), InputLayer((1, 6)))
    out = _output(layer, x, np.array([[0.5, 0, 0.5, 0, 1, 0]]))
    np.testing.assert_allclose(out[0, 0], [[2, 2.5, 3, 3.5, 4]] * 2, rtol=1e-12)


def test_border_modes_lasagne_values():
    # Lasagne's own test: a 4x horizontal zoom-out of a half-black, half-white image
    l_in, l_loc = InputLayer((1, 1, 16, 16)), InputLayer((1, 6))
    image = floatX(np.hstack((np.zeros((16, 8)), np.ones((16, 8)))).reshape(1, 1, 16, 16))
    theta = floatX(np.array([[4, 0, 0, 0, 1, 0]]))
    expected = {
        "nearest": image[0, 0, 0],
        "mirror": [.5, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, .5],
        "wrap": [1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0],
    }
    for border_mode, row in expected.items():
        out = _output(TransformerLayer(l_in, l_loc, border_mode=border_mode), image, theta)
        np.testing.assert_allclose(out[0, 0], np.broadcast_to(row, (16, 16)), rtol=1e-6,
                                   atol=1e-6)


@pytest.mark.parametrize("layer_class, units", [(TransformerLayer, 6),
                                                (TPSTransformerLayer, 32)])
def test_shapes_with_downsample_factor(rng, layer_class, units):
    downsample = (0.7, 2.3)
    l_in = InputLayer((None, 3, 12, 12))
    l_loc = DenseLayer(l_in, num_units=units)
    layer = layer_class(l_in, l_loc, downsample_factor=downsample)
    assert layer.output_shape == (None, 3, int(12 // 0.7), int(12 // 2.3)) == (None, 3, 17, 5)
    x_var = pt.tensor4("x")
    x = rng.random((2, 3, 12, 12)).astype("float32")
    fixed = pytensor.function([x_var], get_output(layer, x_var), mode=FAST_MODE)(x)
    assert fixed.shape == (2, 3, 17, 5)
    # the same weights with an input of unknown height
    l_in = InputLayer((None, 3, None, 12))
    l_loc = DenseLayer(ReshapeLayer(l_in, ([0], 3 * 12 * 12)), num_units=units, W=l_loc.W,
                       b=l_loc.b)
    layer = layer_class(l_in, l_loc, downsample_factor=downsample)
    assert layer.output_shape == (None, 3, None, 5)
    if layer_class is TPSTransformerLayer:
        assert layer.precompute_grid is False
    variable = pytensor.function([x_var], get_output(layer, x_var), mode=FAST_MODE)(x)
    np.testing.assert_allclose(variable, fixed, rtol=1e-5, atol=1e-5)


def test_errors_name_the_layer_and_shapes():
    l_in = InputLayer((None, 3, 8, 8))
    with pytest.raises(ValueError, match=r"TransformerLayer 'st'.*\(batch_size, 6\).*\(None, 5\)"):
        TransformerLayer(l_in, InputLayer((None, 5)), name="st")
    with pytest.raises(ValueError, match=r"\(batch_size, 6\).*\(None, 2, 3\)"):
        TransformerLayer(l_in, InputLayer((None, 2, 3)))
    with pytest.raises(ValueError, match=r"4-dimensional.*\(3, 8, 8\)"):
        TransformerLayer(InputLayer((3, 8, 8)), InputLayer((3, 6)))
    with pytest.raises(ValueError, match="border_mode"):
        TransformerLayer(l_in, InputLayer((None, 6)), border_mode="invalid")
    with pytest.raises(ValueError, match=r"TPSTransformerLayer 'tps'.*2\*control_points.*48"):
        TPSTransformerLayer(l_in, InputLayer((None, 48)), name="tps")
    with pytest.raises(ValueError, match="perfect square"):
        TPSTransformerLayer(l_in, InputLayer((None, 34)), control_points=17)
    with pytest.raises(ValueError, match="4-dimensional"):
        TPSTransformerLayer(InputLayer((3, 8, 8)), InputLayer((3, 32)))
    with pytest.raises(ValueError, match="pre-specified"):
        TPSTransformerLayer(InputLayer((None, 3, None, 8)), InputLayer((None, 32)),
                            precompute_grid=True)
    with pytest.raises(ValueError, match="border_mode"):
        TPSTransformerLayer(l_in, InputLayer((None, 32)), border_mode="reflect")


@pytest.mark.parametrize("precompute_grid", [True, False])
def test_tps_zero_offsets_are_the_identity(rng, precompute_grid):
    x = rng.standard_normal((2, 3, 9, 7)).astype("float32")
    layer = TPSTransformerLayer(InputLayer((2, 3, 9, 7)), InputLayer((2, 32)),
                                precompute_grid=precompute_grid)
    assert layer.precompute_grid is precompute_grid
    out = _output(layer, x, floatX(np.zeros((2, 32))))
    np.testing.assert_allclose(out, x, atol=2e-5)


@pytest.mark.parametrize("precompute_grid", [True, False])
def test_tps_shift_lasagne_values(precompute_grid):
    # Lasagne's own test: every control point moves by (+1, +1)
    image = np.zeros((28, 28))
    image[[0, -1], :] = 1
    image[:, [0, -1]] = 1
    x = floatX(np.tile(image, (2, 3, 1, 1)))
    expected = np.ones((28, 28))
    expected[:13, :13] = 0
    expected[13, :13] = expected[:13, 13] = 0.50000271
    expected[13, 13] = 0.75000271
    layer = TPSTransformerLayer(InputLayer((2, 3, 28, 28)), InputLayer((2, 32)),
                                precompute_grid=precompute_grid)
    out = _output(layer, x, floatX(np.ones((2, 32))))
    np.testing.assert_allclose(out, np.broadcast_to(expected, out.shape), atol=2e-5)


@pytest.mark.parametrize("precompute_grid", [True, False])
@pytest.mark.parametrize("border_mode, downsample, points", [
    ("nearest", 1, 16), ("mirror", (1.5, 0.8), 9), ("wrap", 1, 4)])
def test_tps_against_reference(rng, precompute_grid, border_mode, downsample, points):
    x = rng.standard_normal((2, 2, 6, 7))
    offsets = rng.uniform(-0.3, 0.3, (2, 2 * points))
    layer = TPSTransformerLayer(InputLayer((2, 2, 6, 7)), InputLayer((2, 2 * points)),
                                downsample_factor=downsample, control_points=points,
                                precompute_grid=precompute_grid, border_mode=border_mode)
    out = _output(layer, x, offsets)
    assert out.shape[1:] == layer.output_shape[1:]
    # the layer's spline constants are float32 (floatX), as in Lasagne
    np.testing.assert_allclose(
        out, reference.thin_plate_spline(x, offsets, points, out.shape[2:], border_mode),
        atol=2e-5)


def _float64_inputs(shape):
    return InputLayer(shape, pt.tensor("x", dtype="float64", shape=(None,) * len(shape)))


def _check_gradient(rng, output, value, eps=1e-6):
    """Central finite differences of a random projection of ``output(variable)`` against
    its symbolic gradient, in float64 (``verify_grad`` would compile the cost with Numba)."""
    variable = pt.dmatrix("v")
    out = output(variable)
    projection = pt.constant(rng.standard_normal(
        pytensor.function([variable], out.shape, mode=FAST_MODE)(value)))
    cost = (out * projection).sum()
    cost_f = pytensor.function([variable], cost, mode=FAST_MODE)
    grad = pytensor.function([variable], pytensor.grad(cost, variable), mode=FAST_MODE)(value)
    numeric = np.zeros_like(value)
    for index in np.ndindex(*value.shape):
        step = np.zeros_like(value)
        step[index] = eps
        numeric[index] = (cost_f(value + step) - cost_f(value - step)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-7)
    assert np.abs(grad).max() > 1e-3


@pytest.mark.parametrize("border_mode", BORDER_MODES)
def test_affine_gradient_finite_differences(rng, border_mode):
    # random points: none lies on a pixel row or column, where the gradient jumps
    x = pt.constant(rng.standard_normal((2, 2, 4, 5)))
    layer = TransformerLayer(_float64_inputs((2, 2, 4, 5)), _float64_inputs((2, 6)),
                             border_mode=border_mode)
    _check_gradient(rng, lambda theta: layer.get_output_for([x, theta]),
                    _random_theta(rng, 2))


@pytest.mark.parametrize("precompute_grid", [True, False])
def test_tps_gradient_finite_differences(rng, precompute_grid):
    x = pt.constant(rng.standard_normal((1, 2, 4, 5)))
    layer = TPSTransformerLayer(_float64_inputs((1, 2, 4, 5)), _float64_inputs((1, 8)),
                                control_points=4, precompute_grid=precompute_grid)
    _check_gradient(rng, lambda offsets: layer.get_output_for([x, offsets]),
                    rng.uniform(-0.2, 0.2, (1, 8)))


def test_gradient_reaches_the_localization_network(rng):
    x_var = pt.tensor4("x")
    l_in = InputLayer((None, 1, 5, 5), x_var)
    l_loc = DenseLayer(l_in, num_units=6, nonlinearity=None,
                       b=floatX(np.array(IDENTITY)))
    layer = TransformerLayer(l_in, l_loc)
    loss = (get_output(layer) * floatX(rng.standard_normal((5, 5)))).sum()
    params = get_all_params(layer, trainable=True)
    assert params == [l_loc.W, l_loc.b]
    grads = pytensor.function([x_var], pytensor.grad(loss, params), mode=FAST_MODE)(
        rng.random((2, 1, 5, 5)).astype("float32"))
    assert all(np.abs(g).max() > 1e-3 for g in grads)


def test_jax_equals_c(rng):
    pytest.importorskip("jax")
    x_var, theta_var, offsets_var = pt.tensor4("x"), pt.matrix("theta"), pt.matrix("offsets")
    l_in = InputLayer((None, 2, 6, 5), x_var)
    affine = TransformerLayer(l_in, InputLayer((None, 6), theta_var), border_mode="wrap",
                              downsample_factor=(1, 0.8))
    tps = [TPSTransformerLayer(l_in, InputLayer((None, 18), offsets_var), control_points=9,
                               precompute_grid=flag, border_mode="mirror")
           for flag in (True, False)]
    outputs = [get_output(layer) for layer in [affine] + tps]
    loss = sum((out ** 2).sum() for out in outputs)
    inputs = [x_var, theta_var, offsets_var]
    outputs += pytensor.grad(loss, inputs)
    values = [rng.standard_normal((2, 2, 6, 5)).astype("float32"),
              floatX(_random_theta(rng, 2)), floatX(rng.uniform(-0.3, 0.3, (2, 18)))]
    c_values = pytensor.function(inputs, outputs, mode="CVM")(*values)
    jax_values = pytensor.function(inputs, outputs, mode="JAX")(*values)
    for c_value, jax_value in zip(c_values, jax_values):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=1e-4, atol=1e-4)


def test_jax_one_function_for_two_input_sizes(rng):
    pytest.importorskip("jax")
    x_var, theta_var = pt.tensor4("x"), pt.matrix("theta")
    layer = TransformerLayer(InputLayer((None, 2, None, None), x_var),
                             InputLayer((None, 6), theta_var), downsample_factor=2)
    out = get_output(layer)
    jax_f = pytensor.function([x_var, theta_var], out, mode="JAX")
    theta = _random_theta(rng, 1)
    for hw in [(6, 8), (5, 9)]:
        x = rng.standard_normal((1, 2, *hw)).astype("float32")
        expected = reference.affine_transform(x, theta, (hw[0] // 2, hw[1] // 2), "nearest")
        np.testing.assert_allclose(np.asarray(jax_f(x, floatX(theta))), expected, rtol=1e-4,
                                   atol=1e-4)
