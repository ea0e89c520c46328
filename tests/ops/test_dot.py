"""``BlasDot22``: PyTensor's matrix products through the kernels' BLAS, against NumPy."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne import compile as fcn8_compile
from fcn8_lasagne.ops.dot import BlasDot22

MODE = fcn8_compile.mode_for_device("cpu")


def layouts(rng, shape, dtype):
    """The same matrix C-ordered, Fortran-ordered (a transpose) and with strided rows and
    columns (neither axis of unit stride)."""
    value = rng.standard_normal(shape).astype(dtype)
    strided = np.zeros((shape[0] * 2, shape[1] * 3), dtype)[::2, ::3]
    strided[...] = value
    return {"C": value, "F": np.asfortranarray(value), "strided": strided}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("left", ["C", "F", "strided"])
@pytest.mark.parametrize("right", ["C", "F", "strided"])
def test_products_equal_numpy_for_every_layout(rng, dtype, left, right):
    a, b = pt.matrix("a", dtype=dtype), pt.matrix("b", dtype=dtype)
    function = pytensor.function([a, b], pt.dot(a, b), mode=MODE)
    assert [type(n.op) for n in function.maker.fgraph.toposort()] == [BlasDot22]
    a_value = layouts(rng, (37, 51), dtype)[left]
    b_value = layouts(rng, (51, 29), dtype)[right]
    result = function(a_value, b_value)
    assert result.dtype == dtype and result.shape == (37, 29)
    np.testing.assert_allclose(result, a_value.astype(np.float64) @ b_value,
                               rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


def test_empty_products_and_mismatched_shapes():
    a, b = pt.matrix("a"), pt.matrix("b")
    function = pytensor.function([a, b], pt.dot(a, b), mode=MODE)
    np.testing.assert_array_equal(function(np.ones((3, 0), "float32"),
                                           np.ones((0, 4), "float32")), np.zeros((3, 4)))
    assert function(np.ones((0, 2), "float32"), np.ones((2, 4), "float32")).shape == (0, 4)
    with pytest.raises(ValueError, match=r"shapes \(3, 2\) and \(3, 4\) do not align"):
        function(np.ones((3, 2), "float32"), np.ones((3, 4), "float32"))


def test_gradients_and_shapes_of_a_dense_layer(rng):
    x, w = pt.matrix("x", dtype="float64"), pt.matrix("w", dtype="float64")
    loss = pt.tanh(pt.dot(x, w)).sum()
    gx, gw = pytensor.grad(loss, [x, w])
    function = pytensor.function([x, w], [gx, gw, pt.dot(x, w).shape], mode=MODE)
    assert any(isinstance(n.op, BlasDot22) for n in function.maker.fgraph.toposort())
    x_value, w_value = rng.standard_normal((6, 5)), rng.standard_normal((5, 4))
    gx_value, gw_value, shape = function(x_value, w_value)
    d = 1 - np.tanh(x_value @ w_value) ** 2
    np.testing.assert_allclose(gx_value, d @ w_value.T, rtol=1e-12)
    np.testing.assert_allclose(gw_value, x_value.T @ d, rtol=1e-12)
    assert tuple(shape) == (6, 4)
