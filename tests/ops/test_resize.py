import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.ops import bilinear_resize
from fcn8_lasagne.ops.resize import (BilinearResize, BilinearResizeGrad, bilinear_upsampling,
                                     grid_axis, interpolation_matrix, sampling_grid)
from tests.conftest import FAST_MODE
from tests.reference import resize as reference

# (input H, W) -> (output H, W): up and down, odd and even, size 1 on either side
SIZES = [
    ((4, 6), (7, 9)),
    ((5, 3), (10, 6)),
    ((7, 8), (3, 5)),
    ((6, 6), (2, 1)),
    ((1, 3), (4, 1)),
    ((3, 1), (1, 5)),
    ((5, 4), (5, 4)),
]


def _resize_function(size, align_corners, mode=FAST_MODE, dtype="float64"):
    x = pt.tensor4("x", dtype=dtype)
    return pytensor.function([x], bilinear_resize(x, size, align_corners), mode=mode)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("in_hw, out_hw", SIZES)
def test_resize_against_reference(rng, align_corners, in_hw, out_hw):
    x = rng.standard_normal((2, 3, *in_hw))
    out = _resize_function(out_hw, align_corners)(x)
    assert out.shape == (2, 3, *out_hw)
    np.testing.assert_allclose(out, reference.bilinear_resize(x, out_hw, align_corners),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("align_corners", [True, False])
def test_resize_c_backend_float32(rng, align_corners):
    x = rng.standard_normal((2, 3, 5, 6)).astype("float32")
    out = _resize_function((9, 4), align_corners, mode="CVM", dtype="float32")(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference.bilinear_resize(x, (9, 4), align_corners),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("in_hw, out_hw", SIZES)
def test_resize_against_torch(rng, align_corners, in_hw, out_hw):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, *in_hw)).astype("float32")
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(x), size=out_hw, mode="bilinear", align_corners=align_corners).numpy()
    out = _resize_function(out_hw, align_corners, dtype="float32")(x)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_align_corners_by_hand():
    a, b, c, d = 1.0, 2.0, 4.0, 8.0
    x = np.array([[a, b], [c, d]]).reshape(1, 1, 2, 2)
    expected = np.array([[a, (a + b) / 2, b],
                         [(a + c) / 2, (a + b + c + d) / 4, (b + d) / 2],
                         [c, (c + d) / 2, d]])
    np.testing.assert_allclose(_resize_function((3, 3), True)(x)[0, 0], expected, rtol=1e-15)


def test_half_pixel_by_hand():
    # centres aligned: output j of 4 samples 0.5 j - 0.25, clamped at 0 and at the last pixel
    x = np.array([[0.0, 1.0]]).reshape(1, 1, 1, 2)
    out = _resize_function((1, 4), False)(x)[0, 0, 0]
    np.testing.assert_allclose(out, [0.0, 0.25, 0.75, 1.0], rtol=1e-15)
    out = _resize_function((1, 4), True)(x)[0, 0, 0]
    np.testing.assert_allclose(out, [0.0, 1 / 3, 2 / 3, 1.0], rtol=1e-15)


@pytest.mark.parametrize("mode", ["align_corners", "half_pixel", "theano"])
def test_interpolation_rows_sum_to_one(mode):
    for in_size, out_size in [(3, 9), (5, 5), (1, 4), (4, 8)]:
        matrix = interpolation_matrix(in_size, out_size, mode)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-15)
        assert ((matrix != 0).sum(axis=1) <= 2).all()
        assert not matrix.flags.writeable


@pytest.mark.parametrize("align_corners", [True, False])
def test_gradient_finite_differences(rng, align_corners):
    x = rng.standard_normal((1, 2, 3, 4))
    pytensor.gradient.verify_grad(
        lambda v: bilinear_resize(v, (5, 3), align_corners), [x], rng=rng, mode=FAST_MODE)


@pytest.mark.parametrize("align_corners", [True, False])
def test_gradient_is_the_reference_transpose(rng, align_corners):
    in_shape, out_hw = (1, 1, 3, 5), (4, 2)
    matrix = reference.linear_map_matrix(
        lambda v: reference.bilinear_resize(v, out_hw, align_corners), in_shape)
    x = pt.tensor4("x", dtype="float64")
    gz = pt.tensor4("gz", dtype="float64")
    out = bilinear_resize(x, out_hw, align_corners)
    grad = pytensor.grad((out * gz).sum(), x)
    assert isinstance(grad.owner.op, BilinearResizeGrad)
    gz_value = rng.standard_normal((1, 1, *out_hw))
    value = pytensor.function([x, gz], grad, mode=FAST_MODE)(np.zeros(in_shape), gz_value)
    np.testing.assert_allclose(value.ravel(), matrix.T @ gz_value.ravel(), rtol=1e-12,
                               atol=1e-14)


def test_second_order_gradient(rng):
    # the gradient op's own gradient is the forward resize
    gz = rng.standard_normal((1, 2, 5, 3))
    x_ref = pt.constant(np.zeros((1, 2, 3, 4)))
    pytensor.gradient.verify_grad(
        lambda g: BilinearResizeGrad("half_pixel")(g, x_ref), [gz], rng=rng, mode=FAST_MODE)


@pytest.mark.parametrize("align_corners", [True, False])
def test_jax_equals_c(rng, align_corners):
    pytest.importorskip("jax")
    x = pt.tensor4("x")
    out = bilinear_resize(x, (7, 3), align_corners)
    grad = pytensor.grad((out ** 2).sum(), x)
    value = rng.standard_normal((2, 3, 4, 5)).astype("float32")
    c_out, c_grad = pytensor.function([x], [out, grad], mode="CVM")(value)
    jax_out, jax_grad = pytensor.function([x], [out, grad], mode="JAX")(value)
    np.testing.assert_allclose(np.asarray(jax_out), c_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jax_grad), c_grad, rtol=1e-5, atol=1e-5)


def test_size_from_reference_one_jax_function_for_two_sizes(rng):
    pytest.importorskip("jax")
    x, like = pt.tensor4("x"), pt.tensor4("like")
    out = bilinear_resize(x, like, True)
    grad = pytensor.grad((out ** 2).sum(), x)
    jax_f = pytensor.function([x, like], [out, grad], mode="JAX")
    c_f = pytensor.function([x, like], [out, grad], mode="CVM")
    for in_hw, out_hw in [((3, 4), (6, 8)), ((5, 7), (4, 9))]:
        value = rng.standard_normal((1, 2, *in_hw)).astype("float32")
        like_value = np.zeros((1, 1, *out_hw), dtype="float32")
        (jax_out, jax_grad), (c_out, c_grad) = jax_f(value, like_value), c_f(value, like_value)
        assert jax_out.shape == (1, 2, *out_hw) and jax_grad.shape == value.shape
        np.testing.assert_allclose(np.asarray(jax_out), c_out, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(jax_grad), c_grad, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c_out, reference.bilinear_resize(value, out_hw, True),
                                   rtol=1e-5, atol=1e-6)


def test_size_computed_in_the_graph(rng):
    x = pt.tensor4("x", dtype="float64")
    size = pt.lvector("size")
    out = bilinear_resize(x, size, False)
    assert out.type.shape == (None, None, None, None)
    f = pytensor.function([x, size], [out, out.shape], mode=FAST_MODE)
    value = rng.standard_normal((1, 2, 3, 4))
    result, shape = f(value, np.array([5, 2]))
    np.testing.assert_allclose(result, reference.bilinear_resize(value, (5, 2), False),
                               rtol=1e-12)
    assert tuple(shape) == (1, 2, 5, 2)
    pytest.importorskip("jax")
    with pytest.raises(NotImplementedError, match="compile time"):
        pytensor.function([x, size], out, mode="JAX")


def test_static_shapes_and_infer_shape():
    x = pt.tensor4("x")
    out = bilinear_resize(x, (5, 7), True)
    assert out.type.shape == (None, None, 5, 7)
    x_known = pt.tensor("x", dtype="float32", shape=(2, 3, 4, 4))
    assert bilinear_resize(x_known, x_known[:, :, :2], True).type.shape == (2, 3, 2, 4)
    like = pt.tensor4("like")
    shape = bilinear_resize(x, like, False).shape
    f = pytensor.function([x, like], shape, mode=FAST_MODE)
    # shape inference does not run the resize (the input may even be empty of channels)
    assert tuple(f(np.zeros((2, 0, 3, 3), "float32"), np.zeros((1, 1, 6, 2), "float32"))) == \
        (2, 0, 6, 2)
    assert not any(isinstance(node.op, BilinearResize) for node in f.maker.fgraph.toposort())


def test_errors():
    x = pt.tensor4("x")
    with pytest.raises(TypeError, match="4-D tensor"):
        bilinear_resize(pt.matrix("m"), (2, 2), True)
    with pytest.raises(TypeError, match="dtype"):
        bilinear_resize(pt.itensor4("i"), (2, 2), True)
    with pytest.raises(ValueError, match=">= 1"):
        bilinear_resize(x, (0, 2), True)
    with pytest.raises(ValueError, match="2 ints"):
        bilinear_resize(x, (2, 2, 2), True)
    with pytest.raises(TypeError, match="reference tensor or an integer"):
        bilinear_resize(x, pt.matrix("m"), True)
    with pytest.raises(ValueError, match="unknown resize mode"):
        BilinearResize("nearest")
    size = pt.lvector("size")
    out = bilinear_resize(x, size, True)
    out.name = "upscore"
    f = pytensor.function([x, size], out, mode=FAST_MODE)
    with pytest.raises(ValueError, match="layer 'upscore'.*output size must be positive"):
        f(np.zeros((1, 1, 2, 2), "float32"), np.array([0, 3]))


@pytest.mark.parametrize("ratio", [1, 2, 3, 4])
def test_theano_bilinear_upsampling_against_reference(rng, ratio):
    x = rng.standard_normal((2, 3, 3, 4))
    v = pt.tensor4("v", dtype="float64")
    out = pytensor.function([v], bilinear_upsampling(v, ratio), mode=FAST_MODE)(x)
    assert out.shape == (2, 3, 3 * ratio, 4 * ratio)
    np.testing.assert_allclose(out, reference.theano_bilinear_upsampling(x, ratio), rtol=1e-12,
                               atol=1e-12)


def test_theano_bilinear_upsampling_odd_ratio_is_half_pixel(rng):
    x = rng.standard_normal((1, 2, 3, 4))
    v = pt.tensor4("v", dtype="float64")
    out = pytensor.function([v], bilinear_upsampling(v, 3), mode=FAST_MODE)(x)
    np.testing.assert_allclose(out, reference.bilinear_resize(x, (9, 12), False), rtol=1e-12)


def test_theano_bilinear_upsampling_jax_and_static(rng):
    x = pt.tensor4("x")
    known = pt.tensor("k", dtype="float32", shape=(None, 2, 3, 5))
    assert bilinear_upsampling(known, 2, batch_size=None, num_input_channels=2).type.shape \
        == (None, 2, 6, 10)
    with pytest.raises(ValueError, match="num_input_channels"):
        bilinear_upsampling(known, 2, num_input_channels=3)
    with pytest.raises(ValueError, match="No ratio"):
        bilinear_upsampling(x)
    with pytest.raises(NotImplementedError, match="frac_ratio"):
        bilinear_upsampling(x, frac_ratio=(3, 2), use_1D_kernel=False)
    pytest.importorskip("jax")
    out = bilinear_upsampling(x, 2)
    grad = pytensor.grad((out ** 2).sum(), x)
    jax_f = pytensor.function([x], [out, grad], mode="JAX")
    c_f = pytensor.function([x], [out, grad], mode="CVM")
    for hw in [(2, 3), (4, 1)]:
        value = rng.standard_normal((1, 2, *hw)).astype("float32")
        for got, want in zip(jax_f(value), c_f(value)):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c_f(value)[0], reference.theano_bilinear_upsampling(value, 2),
                                   rtol=1e-5, atol=1e-6)


def test_sampling_grid():
    assert np.array_equal(grid_axis(1, "float32"), [-1])
    for length in (2, 5, 28):
        np.testing.assert_allclose(grid_axis(length, "float32"), np.linspace(-1, 1, length),
                                   atol=1e-6)
        # Lasagne's _linspace, computed in float32
        step = np.float32(2) / np.float32(length - 1)
        expected = np.arange(length, dtype="float32") * step - np.float32(1)
        assert np.array_equal(grid_axis(length, "float32"), expected)
    x = pt.tensor4("x")
    grid = sampling_grid(x, (0.7, 2.3))
    f = pytensor.function([x], grid, mode=FAST_MODE)
    value = f(np.zeros((1, 1, 28, 28), "float32"))
    assert value.shape == (2, int(28 // 0.7), int(28 // 2.3)) == (2, 40, 12)
    np.testing.assert_allclose(value[0], np.broadcast_to(np.linspace(-1, 1, 12), (40, 12)),
                               atol=1e-6)
    np.testing.assert_allclose(value[1], np.broadcast_to(np.linspace(-1, 1, 40)[:, None],
                                                         (40, 12)), atol=1e-6)
    assert pytensor.grad(grid.sum(), x, disconnected_inputs="ignore") is not None
    with pytest.raises(ValueError, match="empty output"):
        f(np.zeros((1, 1, 28, 2), "float32"))
    pytest.importorskip("jax")
    jax_value = pytensor.function([x], grid, mode="JAX")(np.zeros((1, 1, 28, 28), "float32"))
    assert np.array_equal(np.asarray(jax_value), value)
