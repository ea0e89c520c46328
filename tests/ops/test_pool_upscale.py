"""The upscaling ops (Lasagne's 'repeat' and 'dilate' modes) against the NumPy reference of
``tests/reference/pool.py``: values, static shapes, finite differences, JAX against C."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.ops.upscale import Upscale, UpscaleGrad, upscale
from tests.reference import pool as reference

CASES = [((3,), (2, 3, 4)), ((2, 3), (2, 2, 3, 4)), ((1, 2), (1, 2, 3, 5)),
         ((2, 1, 3), (1, 2, 2, 3, 2))]


@pytest.mark.parametrize("mode", ["repeat", "dilate"])
@pytest.mark.parametrize("factor, shape", CASES)
def test_values_static_shapes_and_adjoint(factor, shape, mode):
    rng = np.random.default_rng(1)
    x_value = rng.standard_normal(shape)
    x = pt.tensor(dtype="float64", shape=shape)
    y = upscale(x, factor, mode)
    expected = reference.upscale(x_value, factor, mode)
    assert y.type.shape == expected.shape
    np.testing.assert_array_equal(y.eval({x: x_value}, mode="CVM"), expected)
    # the gradient op is the adjoint: <up(x), g> == <x, up^T(g)>
    g_value = rng.standard_normal(expected.shape)
    g = pt.tensor(dtype="float64", shape=expected.shape)
    back = UpscaleGrad(factor, mode)(g)
    assert back.type.shape == shape
    back_value = back.eval({g: g_value}, mode="CVM")
    np.testing.assert_allclose((expected * g_value).sum(), (x_value * back_value).sum(),
                               rtol=1e-12)


@pytest.mark.parametrize("mode", ["repeat", "dilate"])
def test_gradients_by_finite_differences_and_second_order(mode):
    rng = np.random.default_rng(2)
    pytensor.gradient.verify_grad(lambda v: upscale(v, (2, 3), mode) ** 2,
                                  [rng.standard_normal((1, 2, 3, 2))], rng=rng, mode="CVM")
    pytensor.gradient.verify_grad(lambda v: UpscaleGrad((2, 2), mode)(v) ** 2,
                                  [rng.standard_normal((1, 1, 4, 2))], rng=rng, mode="CVM")


def test_unknown_shapes_identity_and_errors():
    x = pt.tensor4(dtype="float32")
    y = upscale(x, (2, 3))
    assert y.type.shape == (None,) * 4
    f = pytensor.function([x], y.shape, mode="CVM")
    assert not any(isinstance(n.op, Upscale) for n in f.maker.fgraph.apply_nodes)
    assert tuple(f(np.zeros((1, 2, 3, 4), "float32"))) == (1, 2, 6, 12)
    assert upscale(x, (1, 1)) is x
    with pytest.raises(ValueError, match="'repeat' or 'dilate'"):
        Upscale((2, 2), "nearest")
    with pytest.raises(ValueError, match="scale_factor"):
        Upscale((2, 0))
    with pytest.raises(TypeError, match="at least 3 dimensions"):
        Upscale((2, 2, 2))(pt.matrix())
    with pytest.raises(ValueError, match="multiples"):
        UpscaleGrad((2, 2))(pt.tensor4(shape=(1, 1, 3, 4)))


def test_jax_matches_c():
    pytest.importorskip("jax")
    x = pt.tensor4("x", dtype="float32")
    outputs = []
    for mode in ("repeat", "dilate"):
        y = upscale(x, (2, 3), mode)
        outputs += [y, pytensor.grad((y ** 3).sum(), x)]
    functions = [pytensor.function([x], outputs, mode=m) for m in ("CVM", "JAX")]
    value = np.random.default_rng(3).standard_normal((2, 2, 3, 4)).astype("float32")
    for c_value, jax_value in zip(*(f(value) for f in functions)):
        np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=1e-6, atol=1e-6)
