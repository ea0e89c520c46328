"""``AxisSum`` and the CPU rewrite that uses it for bias gradients."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from fcn8_lasagne import compile as fcn8_compile
from fcn8_lasagne.ops.reduce import AxisSum, axis_sum
from tests.conftest import FAST_MODE


def op_types(function):
    return [type(node.op).__name__ for node in function.maker.fgraph.toposort()]


@pytest.mark.parametrize("shape, axis", [((3, 5, 7, 2), 1), ((4, 6), 0), ((2, 3, 4), 2),
                                         ((2, 3, 4), -1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_numpy_sum_in_float64(rng, shape, axis, dtype):
    x = pt.tensor(dtype=dtype, shape=(None,) * len(shape))
    value = rng.standard_normal(shape).astype(dtype)
    result = pytensor.function([x], axis_sum(x, axis), mode=FAST_MODE)(value)
    others = tuple(a for a in range(len(shape)) if a != axis % len(shape))
    expected = value.astype(np.float64).sum(axis=others)
    assert result.dtype == dtype
    np.testing.assert_allclose(result, expected, rtol=1e-6 if dtype == "float32" else 1e-12)


def test_large_sums_use_threads_and_stay_exact(rng):
    """Many channels, split into blocks: every block lands in its place."""
    value = rng.standard_normal((2, 37, 300, 310)).astype("float32")
    x = pt.tensor4("x")
    result = pytensor.function([x], axis_sum(x, 1), mode=FAST_MODE)(value)
    expected = value.astype(np.float64).sum(axis=(0, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(result, expected)


def test_cpu_functions_sum_bias_gradients_with_it(rng):
    """``compile.function(device='cpu')`` rewrites the bias gradient, a plain CVM does not;
    both give the float64-accumulated sum."""
    x, b = pt.tensor4("x"), pt.vector("b")
    loss = ((x + b.dimshuffle("x", 0, "x", "x")) ** 2).sum()
    grad = pytensor.grad(loss, b)
    ours = fcn8_compile.function([x, b], grad, device="cpu")
    plain = pytensor.function([x, b], grad, mode="CVM")
    assert "AxisSum" in op_types(ours)
    assert "AxisSum" not in op_types(plain)
    x_value = rng.standard_normal((2, 6, 9, 8)).astype("float32")
    b_value = rng.standard_normal(6).astype("float32")
    expected = (2 * (x_value.astype(np.float64) + b_value[:, None, None])).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(ours(x_value, b_value), expected, rtol=1e-6)
    np.testing.assert_allclose(plain(x_value, b_value), expected, rtol=1e-6)


def test_full_and_single_axis_sums_are_left_alone():
    x = pt.tensor4("x")
    function = fcn8_compile.function([x], [x.sum(), x.sum(axis=1)], device="cpu")
    assert "AxisSum" not in op_types(function)


def test_gradient(rng):
    verify_grad(lambda x: axis_sum(x, 1) ** 2, [rng.standard_normal((2, 3, 4, 5))], rng=rng,
                mode=FAST_MODE)


def test_static_shape_and_bad_axis():
    x = pt.tensor(dtype="float32", shape=(2, 7, None))
    assert axis_sum(x, 1).type.shape == (7,)
    with pytest.raises(ValueError, match="axis 3 does not exist in a 3-dimensional input"):
        AxisSum(3, "float32", "float64")(x)


def test_jax_matches(rng):
    pytest.importorskip("jax")
    x = pt.tensor4("x")
    value = rng.standard_normal((2, 5, 6, 7)).astype("float32")
    result = pytensor.function([x], axis_sum(x, 1), mode="JAX")(value)
    np.testing.assert_allclose(np.asarray(result), value.sum(axis=(0, 2, 3)), rtol=1e-5)
