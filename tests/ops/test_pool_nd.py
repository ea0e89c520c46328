"""1-D and 3-D pooling, symbolic windows, and JAX against C, against the explicit-window
NumPy references of ``tests/reference/pool.py``."""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from fcn8_lasagne.ops import pool_2d, pool_3d
from fcn8_lasagne.ops.pool import (AveragePoolGrad, DownsampleFactorMaxGradGrad, MaxPoolGrad,
                                   Pool)
from tests.reference import pool as reference

MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")

# (ws, stride, pad, ignore_border) in 3-D: tiling windows, overlap (stride < window), gaps
# (stride > window), padding, partial windows kept, and a window longer than an axis
GEOMETRIES_3D = [
    ((2, 2, 2), (2, 2, 2), (0, 0, 0), True),
    ((2, 2, 2), (2, 2, 2), (0, 0, 0), False),
    ((3, 2, 2), (1, 2, 1), (1, 0, 1), True),
    ((2, 3, 2), (1, 1, 3), (0, 0, 0), False),
    ((2, 1, 3), (3, 2, 4), (1, 0, 2), True),
    ((1, 2, 2), (2, 3, 1), (0, 0, 0), False),
    ((5, 2, 2), (1, 1, 1), (0, 0, 0), True),  # deeper than the 4-deep input: empty output
]
GEOMETRIES_1D = [
    ((2,), (2,), (0,), True),
    ((3,), (1,), (1,), True),
    ((3,), (2,), (0,), False),
    ((2,), (3,), (0,), False),
    ((4,), (3,), (2,), True),
]


def _geometry_id(geometry):
    ws, stride, pad, ignore_border = geometry
    return f"ws{ws}-st{stride}-pad{pad}-{'ib' if ignore_border else 'keep'}"


def _perform(op, arrays, ws, stride, pad):
    node = op.make_node(*[pt.as_tensor_variable(a) for a in arrays], ws, stride, pad)
    values = list(arrays) + [v.data for v in node.inputs[len(arrays):]]
    storage = [[None]]
    op.perform(node, values, storage)
    return storage[0][0]


def _tied_input(rng, shape, dtype="float64"):
    """ReLU-like values: many zeros and few distinct values, so windows have ties."""
    return np.maximum(rng.integers(-3, 3, size=shape), 0).astype(dtype)


def _tie_free_input(rng, shape):
    """Distinct values at least 0.1 apart (finite differences never cross a tie)."""
    return (rng.permutation(np.prod(shape)).reshape(shape) * 0.1 - 1.0).astype("float64")


def _check_all_modes(x, geometry, rng):
    ws, stride, pad, ignore_border = geometry
    ndim = len(ws)
    for mode in MODES:
        expected = reference.pool(x, ws, stride, pad, ignore_border, mode)
        z = _perform(Pool(ignore_border, mode, ndim), [x], ws, stride, pad)
        assert z.shape == expected.shape, mode
        np.testing.assert_allclose(z, expected, rtol=1e-12, atol=1e-12, err_msg=mode)
        gz = rng.standard_normal(z.shape)
        if mode == "max":
            tied = _tied_input(rng, x.shape)
            z_tied = _perform(Pool(ignore_border, "max", ndim), [tied], ws, stride, pad)
            gx = _perform(MaxPoolGrad(ignore_border, ndim), [tied, z_tied, gz], ws, stride,
                          pad)
            expected_gx = reference.max_pool_grad(tied, gz, ws, stride, pad, ignore_border)
            ggx = rng.standard_normal(x.shape)
            ggz = _perform(DownsampleFactorMaxGradGrad(ignore_border, ndim=ndim),
                           [tied, z_tied, ggx], ws, stride, pad)
            np.testing.assert_allclose(
                ggz, reference.max_pool_grad_grad(tied, ggx, ws, stride, pad, ignore_border),
                atol=1e-12)
        else:
            gx = _perform(AveragePoolGrad(ignore_border, mode, ndim), [x, gz], ws, stride,
                          pad)
            expected_gx = reference.average_pool_grad(x.shape, gz, ws, stride, pad,
                                                      ignore_border, mode)
        np.testing.assert_allclose(gx, expected_gx, rtol=1e-12, atol=1e-12, err_msg=mode)


@pytest.mark.parametrize("geometry", GEOMETRIES_3D, ids=_geometry_id)
def test_3d_values_and_gradients_match_reference(geometry):
    rng = np.random.default_rng(1)
    for shape in [(2, 2, 4, 5, 6), (1, 3, 5, 3, 4)]:
        _check_all_modes(rng.standard_normal(shape), geometry, rng)


@pytest.mark.parametrize("geometry", GEOMETRIES_1D, ids=_geometry_id)
def test_1d_op_and_2d_with_a_singleton_axis_match_reference(geometry):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 7))
    _check_all_modes(x, geometry, rng)
    ws, stride, pad, ignore_border = geometry
    # Lasagne's Pool1DLayer: pool_2d over (length, 1) windows of a trailing singleton axis
    x4 = x[..., None]
    for mode in MODES:
        got = _perform(Pool(ignore_border, mode, 2), [x4], ws + (1,), stride + (1,),
                       pad + (0,))
        np.testing.assert_allclose(got[..., 0],
                                   reference.pool(x, ws, stride, pad, ignore_border, mode),
                                   rtol=1e-12, atol=1e-12)


def test_3d_shapes_static_and_inferred():
    x = pt.tensor5("x", shape=(2, 3, 7, 8, 5), dtype="float32")
    assert pool_3d(x, (2, 2, 2), ignore_border=True).type.shape == (2, 3, 3, 4, 2)
    assert pool_3d(x, (2, 2, 2), ignore_border=False).type.shape == (2, 3, 4, 4, 3)
    assert pool_3d(x, (3, 3, 2), True, (2, 1, 3), (1, 2, 1)).type.shape == (2, 3, 4, 10, 2)
    unknown = pt.tensor5("unknown", dtype="float32")
    z = pool_3d(unknown, (3, 2, 2), ignore_border=False, stride=(1, 3, 2))
    assert z.type.shape == (None,) * 5
    f = pytensor.function([unknown], z.shape, mode="CVM")
    assert not any(isinstance(node.op, Pool) for node in f.maker.fgraph.apply_nodes)
    for size in [(1, 1, 5, 7, 2), (3, 2, 2, 9, 4)]:
        expected = reference.pool(np.zeros(size), (3, 2, 2), (1, 3, 2), None, False).shape
        assert tuple(f(np.zeros(size, "float32"))) == expected


def test_3d_max_gradient_gives_every_tied_maximum_the_gradient():
    rng = np.random.default_rng(3)
    x = _tied_input(rng, (2, 3, 6, 6, 6))
    x[:, :, :2, :4, :4] = 0.0  # all-zero windows, as after ReLU
    ws = (2, 2, 2)
    z = _perform(Pool(True, "max", 3), [x], ws, None, None)
    gz = rng.standard_normal(z.shape)
    gx = _perform(MaxPoolGrad(True, 3), [x, z, gz], ws, None, None)
    np.testing.assert_allclose(gx, reference.max_pool_grad(x, gz, ws), atol=1e-12)
    # every one of the 32 zeros of each all-zero block gets its window's gradient
    assert np.count_nonzero(gx[:, :, :2, :4, :4]) == 2 * 3 * 32
    np.testing.assert_allclose(gx[:, :, :2, :4, :4],
                               np.repeat(np.repeat(np.repeat(gz[:, :, :1, :2, :2], 2, 2),
                                                   2, 3), 2, 4))
    # the one-argmax rule (PyTorch, JAX autodiff) would give each window's gradient once
    windows = x.reshape(2, 3, 3, 2, 3, 2, 3, 2).transpose(0, 1, 2, 4, 6, 3, 5, 7)
    ties = (windows.reshape(2, 3, 3, 3, 3, 8) == z[..., None]).sum(-1)
    assert ties.max() > 1
    np.testing.assert_allclose(gx.sum(), (gz * ties).sum())


@pytest.mark.parametrize("mode", MODES)
def test_3d_and_1d_finite_differences(mode):
    rng = np.random.default_rng(4)
    for ws, stride, pad, ignore_border in [GEOMETRIES_3D[2], GEOMETRIES_3D[3]]:
        x = _tie_free_input(rng, (1, 2, 4, 4, 5))
        pytensor.gradient.verify_grad(
            lambda v: pool_3d(v, ws, ignore_border, stride, pad, mode),
            [x], rng=rng, mode="CVM", eps=1e-4)
    x = _tie_free_input(rng, (2, 2, 7))
    pytensor.gradient.verify_grad(
        lambda v: Pool(True, mode, 1)(v, (3,), (2,), (1,)), [x], rng=rng, mode="CVM",
        eps=1e-4)


@pytest.mark.slow
def test_jax_matches_c_in_3d_and_1d_with_ties():
    pytest.importorskip("jax")
    x5 = pt.tensor5("x5", dtype="float32")
    x3 = pt.tensor3("x3", dtype="float32")
    outputs = []
    for ws, stride, pad, ignore_border in GEOMETRIES_3D[1:4]:
        for mode in MODES:
            z = pool_3d(x5, ws, ignore_border, stride, pad, mode)
            outputs += [z, pytensor.grad((z ** 2).sum(), x5)]
    for ws, stride, pad, ignore_border in GEOMETRIES_1D[1:4]:
        for mode in MODES:
            z = Pool(ignore_border, mode, 1)(x3, ws, stride, pad)
            outputs += [z, pytensor.grad((z ** 2).sum(), x3)]
    # a second-order graph through DownsampleFactorMaxGradGrad
    z = pool_3d(x5, (2, 2, 2), True, (1, 1, 1))
    gx = pytensor.grad((z ** 2).sum(), x5)
    outputs.append(pytensor.grad((gx * x5).sum(), x5))
    functions = [pytensor.function([x5, x3], outputs, mode=mode, on_unused_input="ignore")
                 for mode in ("CVM", "JAX")]
    rng = np.random.default_rng(5)
    for shape5, shape3 in [((2, 2, 5, 6, 4), (2, 3, 7)), ((1, 3, 4, 5, 7), (1, 2, 9))]:
        values = (_tied_input(rng, shape5, "float32"), _tied_input(rng, shape3, "float32"))
        c_values, jax_values = (f(*values) for f in functions)
        for c_value, jax_value in zip(c_values, jax_values):
            assert np.asarray(jax_value).shape == c_value.shape
            np.testing.assert_allclose(np.asarray(jax_value), c_value, rtol=1e-5, atol=1e-5)


def test_symbolic_windows_run_on_c_and_give_a_clear_jax_error():
    x = pt.tensor4("x", dtype="float64")
    ws, stride, pad = pt.lvector("ws"), pt.lvector("stride"), pt.lvector("pad")
    outputs = []
    for mode in MODES:
        z = pool_2d(x, ws, True, stride, pad, mode)
        assert z.type.shape == (None,) * 4
        outputs += [z, pytensor.grad((z ** 2).sum(), x)]
    f = pytensor.function([x, ws, stride, pad], outputs, mode="CVM")
    rng = np.random.default_rng(6)
    x_value = _tied_input(rng, (2, 2, 7, 6))
    for geometry in [((2, 2), (2, 2), (0, 0)), ((3, 2), (1, 3), (1, 1)), ((2, 3), (3, 2),
                                                                         (1, 0))]:
        results = f(x_value, *[np.array(g) for g in geometry])
        for mode, z_value, gx_value in zip(MODES, results[::2], results[1::2]):
            expected = reference.pool(x_value, *geometry, True, mode)
            np.testing.assert_allclose(z_value, expected, rtol=1e-12, atol=1e-12)
            if mode == "max":
                expected_gx = reference.max_pool_grad(x_value, 2 * expected, *geometry)
            else:
                expected_gx = reference.average_pool_grad(x_value.shape, 2 * expected,
                                                          *geometry, True, mode)
            np.testing.assert_allclose(gx_value, expected_gx, rtol=1e-12, atol=1e-12)
    # Theano's rules, checked when the values arrive
    with pytest.raises(ValueError, match="smaller than the pooling window"):
        f(x_value, np.array([2, 2]), np.array([1, 1]), np.array([2, 0]))
    with pytest.raises(ValueError, match="stride entries must be ints >= 1"):
        f(x_value, np.array([2, 2]), np.array([0, 1]), np.array([0, 0]))

    # a tuple holding a symbolic scalar (Lasagne's spatial pyramid pooling), and its shape
    n = pt.lscalar("n")
    z = pool_2d(x, (n, 2), ignore_border=True, stride=(n, 1), pad=None, mode="sum")
    z_fn = pytensor.function([x, n], [z, z.shape], mode="CVM")
    z_value, z_shape = z_fn(x_value, 3)
    np.testing.assert_allclose(z_value, reference.pool(x_value, (3, 2), (3, 1), None, True,
                                                       "sum"))
    assert tuple(z_shape) == z_value.shape == (2, 2, 2, 5)

    pytest.importorskip("jax")
    with pytest.raises(NotImplementedError, match="JAX needs the pooling ws at compile time"):
        pytensor.function([x, ws, stride, pad], outputs[0], mode="JAX")


def test_pool_3d_arguments_like_theano():
    x = pt.tensor5(dtype="float32", shape=(1, 1, 5, 5, 5))
    with pytest.warns(UserWarning, match="ignore_border"):
        assert pool_3d(x, (2, 2, 2)).type.shape == (1, 1, 3, 3, 3)
    with pytest.warns(DeprecationWarning):
        old = pool_3d(x, ds=(2, 2, 2), st=(1, 1, 1), padding=(1, 1, 1), ignore_border=True)
    assert old.type.shape == (1, 1, 6, 6, 6)
    with pytest.raises(ValueError, match="tuple of 3 ints"):
        pool_3d(x, (2, 2), ignore_border=True)
    with pytest.raises(NotImplementedError, match="dimension >= 3"):
        pool_3d(pt.matrix(dtype="float32"), (2, 2, 2), ignore_border=True)
    # leading axes beyond (batch, channels) are kept, as Theano's N-D inputs
    rng = np.random.default_rng(7)
    value = rng.standard_normal((2, 2, 2, 3, 4, 5)).astype("float32")
    six = pt.tensor(dtype="float32", shape=(None,) * 6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pooled = pool_3d(six, (2, 2, 3), ignore_border=False, mode="average_exc_pad")
        got = pooled.eval({six: value}, mode="CVM")
    np.testing.assert_allclose(
        got, reference.pool(value, (2, 2, 3), None, None, False, "average_exc_pad"),
        rtol=1e-6, atol=1e-6)


def test_kernels_split_into_blocks_on_the_threads_give_the_same_values(monkeypatch):
    """Tiny blocks (one plane each) run on the worker threads, as large inputs do."""
    from fcn8_lasagne.ops import _pool_cpu, _threads

    monkeypatch.setattr(_pool_cpu, "_BLOCK_BYTES", 64)
    monkeypatch.setattr(_threads, "_PARALLEL_FLOPS", 0)
    rng = np.random.default_rng(8)
    for geometry in [GEOMETRIES_3D[0], GEOMETRIES_3D[2], GEOMETRIES_3D[3]]:
        _check_all_modes(rng.standard_normal((3, 2, 4, 5, 6)), geometry, rng)
