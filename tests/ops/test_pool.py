"""Tests of the 2-D pooling ops against the NumPy references in ``tests/reference/pool.py``
(explicit windows; the max ignores the padding as Theano's C code and documentation do).

The 1-D and 3-D cases, symbolic windows and the upscaling ops are in ``test_pool_nd.py``
and ``test_pool_upscale.py``.
"""

import itertools
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.ops import pool_2d
from fcn8_lasagne.ops.pool import (
    AveragePoolGrad,
    DownsampleFactorMaxGradGrad,
    MaxPoolGrad,
    Pool,
    max_pool_2d_same_size,
)
from tests.reference import pool as reference

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")

# (ws, stride, pad, ignore_border): square and rectangular windows, stride < ws (overlap),
# stride > ws (gaps), padding, and the partial windows that ignore_border=False keeps.
GEOMETRIES = [
    ((2, 2), (2, 2), (0, 0), True),
    ((2, 2), (2, 2), (0, 0), False),
    ((3, 3), (2, 2), (1, 1), True),
    ((3, 2), (1, 2), (0, 0), False),
    ((3, 2), (1, 2), (1, 0), True),
    ((3, 3), (1, 1), (2, 1), True),
    ((2, 3), (3, 4), (0, 0), False),
    ((2, 3), (3, 4), (1, 2), True),
    ((1, 1), (2, 3), (0, 0), False),
    ((4, 4), (4, 4), (0, 0), True),  # larger than the 3-row input: an empty output
]


def _geometry_id(geometry):
    ws, stride, pad, ignore_border = geometry
    return f"ws{ws}-st{stride}-pad{pad}-{'ib' if ignore_border else 'keep'}"


def _perform(op, arrays, ws, stride=None, pad=(0, 0)):
    """Run ``op`` through ``make_node`` and its NumPy ``perform`` (no compilation)."""
    node = op.make_node(*[pt.as_tensor_variable(array) for array in arrays], ws, stride, pad)
    values = list(arrays) + [v.data for v in node.inputs[len(arrays):]]
    storage = [[None] for _ in node.outputs]
    op.perform(node, values, storage)
    return storage[0][0]


def _pool(x, ws, stride=None, pad=(0, 0), ignore_border=True, mode="max"):
    return _perform(Pool(ignore_border, mode), [x], ws, stride, pad)


def _max_grad(x, z, gz, ws, stride=None, pad=(0, 0), ignore_border=True):
    return _perform(MaxPoolGrad(ignore_border), [x, z, gz], ws, stride, pad)


def _max_grad_grad(x, z, ggx, ws, stride=None, pad=(0, 0), ignore_border=True):
    return _perform(DownsampleFactorMaxGradGrad(ignore_border), [x, z, ggx], ws, stride, pad)


def _max_reference(x, ws, stride, pad, ignore_border):
    return reference.pool(x, ws, stride, pad, ignore_border, "max")


def _max_grad_reference(x, gz, ws, stride, pad, ignore_border):
    return reference.max_pool_grad(x, gz, ws, stride, pad, ignore_border)


def _tied_input(rng, shape, dtype):
    """ReLU-like values: many zeros and few distinct values, so windows have ties."""
    return np.maximum(rng.integers(-3, 3, size=shape), 0).astype(dtype)


def _tie_free_input(rng, shape):
    """Distinct values at least 0.1 apart (finite differences never cross a tie)."""
    return (rng.permutation(np.prod(shape)).reshape(shape) * 0.1 - 1.0).astype("float64")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=_geometry_id)
def test_forward_and_gradients_match_reference(geometry, dtype):
    ws, stride, pad, ignore_border = geometry
    rng = np.random.default_rng(7)
    tolerance = dict(rtol=1e-5, atol=1e-5) if dtype == "float32" else dict(rtol=1e-12, atol=1e-12)
    for shape in [(2, 3, 3, 7), (1, 2, 8, 5)]:
        x = rng.standard_normal(shape).astype(dtype)
        for mode in MODES:
            if mode == "max":
                expected = _max_reference(x, ws, stride, pad, ignore_border)
            else:
                expected = reference.pool(x, ws, stride, pad, ignore_border, mode)
            z = _pool(x, ws, stride, pad, ignore_border, mode)
            assert z.dtype == dtype and z.shape == expected.shape, (mode, shape)
            np.testing.assert_allclose(z, expected, **tolerance, err_msg=mode)

            gz = rng.standard_normal(z.shape).astype(dtype)
            if mode == "max":
                x_tied = _tied_input(rng, shape, dtype)
                z_tied = _pool(x_tied, ws, stride, pad, ignore_border)
                gx = _max_grad(x_tied, z_tied, gz, ws, stride, pad, ignore_border)
                expected_gx = _max_grad_reference(x_tied, gz, ws, stride, pad, ignore_border)
            else:
                op = AveragePoolGrad(ignore_border, mode)
                gx = _perform(op, [x, gz], ws, stride, pad)
                expected_gx = reference.average_pool_grad(
                    x.shape, gz, ws, stride, pad, ignore_border, mode
                )
            assert gx.dtype == dtype and gx.shape == x.shape
            np.testing.assert_allclose(gx, expected_gx, **tolerance, err_msg=mode)


def test_max_ignores_padding_like_theano_c_code():
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    z = _pool(x, (2, 2), pad=(1, 1))
    # every window holds at least one image element; the zero padding never wins
    assert (z < 0).all()
    np.testing.assert_array_equal(z[0, 0, 0], [-1.0, -2.0, -4.0])
    gx = _max_grad(x, z, np.ones_like(z), (2, 2), pad=(1, 1))
    assert gx.sum() == z.size


def test_max_gradient_gives_every_tied_maximum_the_gradient():
    rng = np.random.default_rng(3)
    x = _tied_input(rng, (2, 4, 10, 10), "float64")
    x[:, :, :4, :4] = 0.0  # all-zero windows, as after pad=100 and ReLU in FCN-8
    ws = (2, 2)
    z = _pool(x, ws)
    gz = rng.standard_normal(z.shape)
    gx = _max_grad(x, z, gz, ws)
    np.testing.assert_allclose(gx, reference.max_pool_grad(x, gz, ws, ws), atol=1e-12)

    # PyTorch's / JAX autodiff's rule: only the first maximum of each window.
    windows = x.reshape(2, 4, 5, 2, 5, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 4, 5, 5, 4)
    first = np.eye(4)[windows.argmax(axis=-1)] * gz[..., None]
    tie_broken = first.reshape(2, 4, 5, 5, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)
    assert not np.allclose(gx, tie_broken)
    np.testing.assert_allclose(gx.sum(), (gz * (windows == z[..., None]).sum(-1)).sum())
    assert np.count_nonzero(gx[:, :, :4, :4]) == 2 * 4 * 16  # all 16 zeros of each map


def test_max_grad_grad_is_the_adjoint_of_max_grad():
    rng = np.random.default_rng(4)
    for ws, stride, pad, ignore_border in GEOMETRIES:
        x = _tied_input(rng, (2, 2, 7, 6), "float64")
        geometry = (ws, stride, pad, ignore_border)
        z = _pool(x, *geometry)
        gz = rng.standard_normal(z.shape)
        ggx = rng.standard_normal(x.shape)
        gx = _max_grad(x, z, gz, *geometry)
        ggz = _max_grad_grad(x, z, ggx, *geometry)
        assert ggz.shape == z.shape
        np.testing.assert_allclose(ggz, reference.max_pool_grad_grad(x, ggx, *geometry),
                                   atol=1e-12)
        np.testing.assert_allclose((gx * ggx).sum(), (gz * ggz).sum(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_verify_grad_on_tie_free_inputs(mode):
    rng = np.random.default_rng(5)
    for ws, stride, pad, ignore_border in [
        ((2, 2), None, (0, 0), True),
        ((3, 3), (2, 2), (1, 1), True),
        ((3, 2), (1, 3), (0, 0), False),
    ]:
        x = _tie_free_input(rng, (2, 2, 5, 7))
        pytensor.gradient.verify_grad(
            lambda v: pool_2d(v, ws, ignore_border, stride, pad, mode),
            [x], rng=rng, mode="CVM", eps=1e-4,
        )


def test_second_derivatives_and_pushforward():
    x = pt.tensor4("x", dtype="float64")
    rng = np.random.default_rng(6)
    x_value = _tie_free_input(rng, (1, 2, 6, 5))
    tangent = rng.standard_normal(x_value.shape)
    for mode in MODES:
        z = pool_2d(x, (3, 2), True, (2, 1), (1, 1), mode)
        gx = pytensor.grad((z**3).sum(), x)
        # d/dx of a gradient that depends on x through z**2: every op's pullback is used
        hessian_vector = pytensor.grad((gx * pt.constant(tangent)).sum(), x)
        jvp = pytensor.gradient.pushforward(z, x, pt.constant(tangent), use_op_pushforward=True)
        f = pytensor.function([x], [hessian_vector, jvp], mode="CVM")
        hessian_vector_value, jvp_value = f(x_value)
        # the Hessian is symmetric: H @ tangent is the directional derivative of the
        # gradient, which is quadratic in x away from ties, so central differences are exact
        # up to rounding
        gradient = pytensor.function([x], gx, mode="CVM")
        gx_plus = gradient(x_value + 1e-4 * tangent)
        gx_minus = gradient(x_value - 1e-4 * tangent)
        expected_hessian_vector = (gx_plus - gx_minus) / 2e-4
        assert np.abs(expected_hessian_vector).max() > 1.0, mode
        np.testing.assert_allclose(hessian_vector_value, expected_hessian_vector, rtol=1e-6,
                                   atol=1e-8 * np.abs(expected_hessian_vector).max(),
                                   err_msg=mode)
        step = 1e-6
        plus = pool_2d(x, (3, 2), True, (2, 1), (1, 1), mode).eval(
            {x: x_value + step * tangent}, mode="CVM"
        )
        minus = pool_2d(x, (3, 2), True, (2, 1), (1, 1), mode).eval(
            {x: x_value - step * tangent}, mode="CVM"
        )
        np.testing.assert_allclose(jvp_value, (plus - minus) / (2 * step), rtol=1e-6, atol=1e-8)


def test_jax_matches_c_backend_on_unknown_shapes_with_ties():
    pytest.importorskip("jax")
    x = pt.tensor4("x", dtype="float32")
    outputs, extra_inputs, cases = [], [], []
    for geometry in GEOMETRIES[1::2] + GEOMETRIES[-1:]:
        for mode in MODES:
            ws, stride, pad, ignore_border = geometry
            z = Pool(ignore_border, mode)(x, ws, stride, pad)
            gz = pt.tensor4(f"gz_{len(cases)}", dtype="float32")
            if mode == "max":
                ggx = pt.tensor4(f"ggx_{len(cases)}", dtype="float32")
                grads = [
                    MaxPoolGrad(ignore_border)(x, z, gz, ws, stride, pad),
                    DownsampleFactorMaxGradGrad(ignore_border)(x, z, ggx, ws, stride, pad),
                ]
                extra_inputs += [gz, ggx]
            else:
                grads = [AveragePoolGrad(ignore_border, mode)(x, gz, ws, stride, pad)]
                extra_inputs.append(gz)
            outputs += [z, *grads]
            cases.append((geometry, mode, z))
    # the gradients pytensor.grad builds, through the sum of all outputs
    outputs.append(pytensor.grad(sum((z**2).sum() for _, _, z in cases), x))
    by_backend = {
        backend: pytensor.function([x, *extra_inputs], outputs, mode=backend)
        for backend in ("CVM", "JAX")
    }
    shape_of_z = pytensor.function([x], [z.shape for _, _, z in cases], mode="CVM")
    rng = np.random.default_rng(8)
    for shape in [(2, 3, 9, 8), (1, 2, 6, 11)]:
        x_value = _tied_input(rng, shape, "float32")
        values = []
        for (_, mode, _), z_shape in zip(cases, shape_of_z(x_value)):
            values.append(rng.standard_normal(z_shape).astype("float32"))
            if mode == "max":
                values.append(_tied_input(rng, shape, "float32"))
        c_result = by_backend["CVM"](x_value, *values)
        jax_result = by_backend["JAX"](x_value, *values)
        for c_value, jax_value in zip(c_result, jax_result):
            assert np.asarray(jax_value).shape == c_value.shape
            np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=1e-5, atol=1e-5)


def test_default_mode_compiles_and_runs_without_warnings():
    x = pt.tensor4("x", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = pool_2d(x, (2, 2), ignore_border=True)
        z_avg = pool_2d(x, (3, 3), True, (2, 2), (1, 1), "average_exc_pad")
        gx = pytensor.grad((z**2).sum() + z_avg.sum(), x)
        f = pytensor.function([x], [z, gx])
        x_value = _tied_input(np.random.default_rng(9), (1, 2, 6, 7), "float32")
        z_value, gx_value = f(x_value)
    np.testing.assert_allclose(z_value, reference.pool(x_value, (2, 2), None, None, True))
    expected_gx = reference.max_pool_grad(x_value, 2 * z_value, (2, 2)) + (
        reference.average_pool_grad(
            x_value.shape, np.ones((1, 2, 3, 4)), (3, 3), (2, 2), (1, 1), True,
            "average_exc_pad"
        )
    )
    np.testing.assert_allclose(gx_value, expected_gx, rtol=1e-6)


def test_shapes_static_and_inferred():
    x = pt.tensor4("x", shape=(2, 3, 7, 8), dtype="float32")
    assert pool_2d(x, (2, 2), ignore_border=True).type.shape == (2, 3, 3, 4)
    assert pool_2d(x, (2, 2), ignore_border=False).type.shape == (2, 3, 4, 4)
    assert pool_2d(x, (3, 3), True, (2, 2), (1, 1)).type.shape == (2, 3, 4, 4)
    unknown = pt.tensor4("unknown", dtype="float32")
    z = pool_2d(unknown, (3, 2), ignore_border=False, stride=(1, 3))
    assert z.type.shape == (None, None, None, None)
    f = pytensor.function([unknown], z.shape, mode="CVM")
    # the shape comes from infer_shape: no pooling runs
    assert not any(isinstance(node.op, Pool) for node in f.maker.fgraph.apply_nodes)
    for size in [(1, 1, 5, 7), (3, 2, 2, 9)]:
        expected = reference.pool(np.zeros(size), (3, 2), (1, 3), None, False, "max").shape
        assert tuple(f(np.zeros(size, "float32"))) == expected


def test_pool_2d_other_ranks_and_aliases():
    rng = np.random.default_rng(10)
    x_value = rng.standard_normal((2, 3, 4, 5, 7)).astype("float32")
    x = pt.tensor(dtype="float32", shape=(None,) * 5)
    pooled = pool_2d(x, (2, 3), ignore_border=False).eval({x: x_value}, mode="CVM")
    expected = reference.pool(x_value, (2, 3), None, None, False, "max")
    assert expected.shape == (2, 3, 4, 3, 3)
    np.testing.assert_allclose(pooled, expected, rtol=1e-6)
    matrix = pt.matrix(dtype="float32")
    pooled_matrix = pool_2d(matrix, 2, ignore_border=True)
    assert pooled_matrix.eval({matrix: x_value[0, 0, 0]}, mode="CVM").shape == (2, 3)

    assert Pool(True, mode="average").mode == "average_inc_pad"
    assert Pool(True, mode="max_deterministic") == Pool(True, "max", 2)
    assert hash(Pool(True)) == hash(Pool(True, "max", ndim=2))
    with pytest.warns(DeprecationWarning):
        old_names = pool_2d(x, ds=(2, 3), st=(1, 1), padding=(1, 1), ignore_border=True)
    assert old_names.owner.op == Pool(True, "max", 2)
    assert [list(v.data) for v in old_names.owner.inputs[1:]] == [[2, 3], [1, 1], [1, 1]]


def test_max_pool_2d_same_size():
    x_value = np.array([[[[1, 5, 2, 2], [3, 0, 2, 1], [0, 0, 7, 7], [0, 0, 7, 1]]]], "float32")
    x = pt.tensor4(dtype="float32")
    kept = max_pool_2d_same_size(x, (2, 2)).eval({x: x_value}, mode="CVM")
    expected = [[0, 5, 2, 2], [0, 0, 2, 0], [0, 0, 7, 7], [0, 0, 7, 0]]
    np.testing.assert_array_equal(kept[0, 0], expected)


def test_ignore_border_none_warns_and_means_false_as_in_theano():
    x = pt.tensor4(dtype="float32", shape=(1, 1, 5, 5))
    with pytest.warns(UserWarning, match="ignore_border"):
        z = pool_2d(x, (2, 2))
    assert z.type.shape == (1, 1, 3, 3)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(ws=(2, 2), ignore_border=False, pad=(1, 0)), ValueError, "ignore_border=True"),
        (dict(ws=(2, 2), ignore_border=True, pad=(2, 0)), ValueError, "smaller than"),
        (dict(ws=(2, 2), ignore_border=True, mode="median"), ValueError, "mode"),
        (dict(ws=None, ignore_border=True), ValueError, "window size"),
        (dict(ws=(2, 0), ignore_border=True), ValueError, "ws"),
        (dict(ws=(2, 2, 2), ignore_border=True), ValueError, "tuple of 2 ints"),
        (dict(ws=(2.0, 2), ignore_border=True), TypeError, "ws"),
        (dict(ws=pt.constant([2, 0]), ignore_border=True), ValueError, "ws"),
        (dict(ws=pt.dvector(), ignore_border=True), TypeError, "integer vector"),
        (dict(ws=pt.lvector(), pad=(1, 1), ignore_border=False), ValueError,
         "ignore_border=True"),
        (dict(ws=2, stride=(0, 1), ignore_border=True), ValueError, "stride"),
        (dict(ws=2, ignore_border="yes"), TypeError, "ignore_border"),
        (dict(ws=2, ds=2, ignore_border=True), ValueError, "both"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        pool_2d(pt.tensor4(dtype="float32"), **kwargs)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="at least 3 dimensions"):
        Pool(True, ndim=3)(pt.matrix(dtype="float32"), 2)
    with pytest.raises(TypeError, match="dtype"):
        Pool(True)(pt.tensor4(dtype="int32"), 2)
    with pytest.raises(TypeError, match="dtype float32"):
        x = pt.tensor4(dtype="float32")
        MaxPoolGrad(True)(x, Pool(True)(x, 2), pt.tensor4(dtype="float64"), 2)
    with pytest.raises(ValueError, match="MaxPoolGrad"):
        AveragePoolGrad(True, mode="max")
    with pytest.raises(NotImplementedError, match="dimension >= 2"):
        pool_2d(pt.vector(dtype="float32"), 2, ignore_border=True)
    # a gradient of the wrong shape is refused at run time, naming the op and the shapes
    x = pt.tensor4(dtype="float64")
    gz = pt.tensor4(dtype="float64")
    grad = MaxPoolGrad(True)(x, Pool(True)(x, 2), gz, 2)
    with pytest.raises(ValueError, match=r"MaxPoolGrad: gz has shape \(1, 1, 3, 3\)"):
        grad.eval({x: np.zeros((1, 1, 4, 4)), gz: np.zeros((1, 1, 3, 3))}, mode="CVM")


def test_every_op_has_theanos_props_and_every_combination_is_distinct():
    ops = [
        Pool(ignore_border, mode, ndim)
        for ignore_border, mode, ndim in itertools.product([True, False], MODES, [1, 2, 3])
    ]
    assert len(set(ops)) == len(ops)
    for op_class in (Pool, MaxPoolGrad, AveragePoolGrad, DownsampleFactorMaxGradGrad):
        assert op_class.__props__ == ("ignore_border", "mode", "ndim")
