"""Convolution ops against the NumPy references, across backends, with their gradients."""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from fcn8_lasagne.ops.conv import (
    Conv2d,
    Conv2dGradInputs,
    Conv2dGradWeights,
    conv2d,
    conv2d_grad_wrt_inputs,
    conv2d_grad_wrt_weights,
)
from tests import reference
from tests.conftest import FAST_MODE

BORDER_MODES = [0, 2, (1, 2), "valid", "full", "half"]
STRIDES = [(1, 1), (2, 2), (3, 2)]


def tolerance(dtype):
    return {"atol": 1e-4, "rtol": 1e-4} if dtype == "float32" else {"atol": 1e-10, "rtol": 1e-10}


def compile_fn(inputs, outputs, mode=FAST_MODE):
    return pytensor.function(inputs, outputs, mode=mode)


def tensor4(name, dtype="float32", shape=(None,) * 4):
    return pt.tensor4(name, dtype=dtype, shape=shape)


def random(rng, shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("border_mode", BORDER_MODES)
def test_conv2d_matches_reference(rng, dtype, border_mode):
    x, w = tensor4("x", dtype), tensor4("w", dtype)
    x_value, w_value = random(rng, (2, 3, 9, 8), dtype), random(rng, (4, 3, 3, 2), dtype)
    for stride in STRIDES:
        for flip in (True, False):
            out = conv2d(x, w, border_mode=border_mode, subsample=stride, filter_flip=flip)
            result = compile_fn([x, w], out)(x_value, w_value)
            expected = reference.conv2d(x_value, w_value, stride, border_mode, flip)
            assert result.dtype == dtype
            np.testing.assert_allclose(result, expected, **tolerance(dtype))


@pytest.mark.parametrize("shapes", [
    ((1, 2, 30, 27), (5, 2, 3, 3), 1),      # shifted-view path
    ((3, 4, 12, 10), (6, 4, 4, 3), "full"),  # shifted views, several images
    ((2, 8, 5, 5), (64, 8, 5, 5), 0),        # unfolded path (small image, many filters)
    ((2, 3, 6, 7), (4, 3, 1, 1), 0),         # 1x1 kernel
])
def test_conv2d_paths(rng, shapes):
    x_shape, w_shape, pad = shapes
    x, w = tensor4("x"), tensor4("w")
    x_value, w_value = random(rng, x_shape), random(rng, w_shape)
    for flip in (True, False):
        out = conv2d(x, w, border_mode=pad, filter_flip=flip)
        result = compile_fn([x, w], out)(x_value, w_value)
        np.testing.assert_allclose(result, reference.conv2d(x_value, w_value, 1, pad, flip),
                                   atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("x_shape, w_shape, stride, pad", [
    ((1, 64, 130, 126), (8, 64, 3, 3), 1, 1),     # shifted views, parallel padding copy
    ((2, 64, 8, 8), (1024, 64, 3, 3), 1, 0),      # unfolded, GEMM split by rows
    ((2, 16, 64, 60), (32, 16, 4, 4), 2, 1),      # phases
    ((2, 24, 40, 40), (16, 24, 1, 1), 3, 0),      # unfolded, stride above the kernel
])
def test_threaded_kernels_match_reference(rng, x_shape, w_shape, stride, pad):
    """Shapes large enough for the kernels to share their work among threads."""
    from fcn8_lasagne.ops import _conv_cpu

    x, w = random(rng, x_shape) / 8, random(rng, w_shape) / 8
    strides, pads = (stride, stride), (pad, pad)
    out = _conv_cpu.conv2d_forward(x, w, pads, strides, True)
    np.testing.assert_allclose(out, reference.conv2d(x, w, stride, pad, True), atol=1e-4)
    grad_in = _conv_cpu.conv2d_backward_input(out, w, x_shape[2:], pads, strides, False)
    np.testing.assert_allclose(
        grad_in, reference.conv2d_transpose(out, w, stride, pad, False, x_shape[2:]),
        atol=1e-4)
    grad_w = _conv_cpu.conv2d_backward_weights(x, out, w_shape[2:], pads, strides, True)
    np.testing.assert_allclose(
        grad_w, reference.conv2d_grad_weights(x, out, w_shape, stride, pad, True),
        atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("crop", [0, 1, (2, 1), "valid", "full", "half"])
def test_transposed_conv_matches_reference(rng, dtype, crop):
    y, w = tensor4("y", dtype), tensor4("w", dtype)
    w_value = random(rng, (3, 2, 4, 3), dtype)
    for stride in STRIDES:
        for flip in (True, False):
            y_value = random(rng, (2, 3, 5, 6), dtype)
            out = conv2d_grad_wrt_inputs(y, w, (None, 2, None, None), border_mode=crop,
                                         subsample=stride, filter_flip=flip)
            expected = reference.conv2d_transpose(y_value, w_value, stride, crop, flip)
            result = compile_fn([y, w], out)(y_value, w_value)
            np.testing.assert_allclose(result, expected, **tolerance(dtype))


@pytest.mark.parametrize("stride", [2, 3])
def test_transposed_conv_explicit_sizes(rng, stride):
    """Every input size that a strided convolution maps to the same output size."""
    y, w = tensor4("y"), tensor4("w")
    y_value, w_value = random(rng, (1, 3, 4, 5)), random(rng, (3, 2, 3, 3))
    height, width = reference.conv2d_transpose(y_value, w_value, stride, 1).shape[2:]
    for extra_h in range(stride):
        size = (height + extra_h, width + stride - 1 - extra_h)
        expected = reference.conv2d_transpose(y_value, w_value, stride, 1, True, size)
        as_ints = conv2d_grad_wrt_inputs(y, w, (1, 2) + size, border_mode=1, subsample=stride)
        symbolic_size = pt.lscalar("h"), pt.lscalar("w")
        as_symbols = conv2d_grad_wrt_inputs(y, w, (1, 2) + symbolic_size, border_mode=1,
                                            subsample=stride)
        np.testing.assert_allclose(compile_fn([y, w], as_ints)(y_value, w_value), expected,
                                   atol=1e-5)
        fn = compile_fn([y, w, *symbolic_size], as_symbols)
        np.testing.assert_allclose(fn(y_value, w_value, *size), expected, atol=1e-5)
    # None on one axis: the minimal size there.
    out = conv2d_grad_wrt_inputs(y, w, (1, 2, height + 1, None), border_mode=1, subsample=stride)
    assert compile_fn([y, w], out)(y_value, w_value).shape == (1, 2, height + 1, width)


def test_transposed_conv_rejects_inconsistent_size(rng):
    y, w, h = tensor4("y"), tensor4("w"), pt.lscalar("h")
    fn = compile_fn([y, w, h], conv2d_grad_wrt_inputs(y, w, (1, 2, h, 9), subsample=2))
    with pytest.raises(ValueError, match=r"\(1, 3, 4, 4\)"):
        fn(random(rng, (1, 3, 4, 4)), random(rng, (3, 2, 3, 3)), 20)


def test_lasagne_transposed_layer_convention(rng):
    """``TransposedConv2DLayer(flip_filters=False)`` is PyTorch's transposed conv, rotated."""
    torch = pytest.importorskip("torch")
    y, w = tensor4("y"), tensor4("w")
    y_value, w_value = random(rng, (2, 3, 5, 4)), random(rng, (3, 4, 4, 4))
    out = conv2d_grad_wrt_inputs(y, w, (None, 4, None, None), border_mode=0, subsample=2,
                                 filter_flip=True)  # filter_flip = not flip_filters
    rotated = np.ascontiguousarray(w_value[:, :, ::-1, ::-1])
    expected = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(y_value), torch.from_numpy(rotated), stride=2).numpy()
    np.testing.assert_allclose(compile_fn([y, w], out)(y_value, w_value), expected, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("border_mode", BORDER_MODES)
def test_weight_grad_matches_reference(rng, dtype, border_mode):
    x, gy = tensor4("x", dtype), tensor4("gy", dtype)
    x_value = random(rng, (2, 3, 9, 8), dtype)
    filter_shape = (4, 3, 3, 2)
    for stride in STRIDES:
        for flip in (True, False):
            out_shape = reference.conv2d(x_value, np.zeros(filter_shape), stride,
                                         border_mode).shape
            gy_value = random(rng, out_shape, dtype)
            out = conv2d_grad_wrt_weights(x, gy, filter_shape, border_mode=border_mode,
                                          subsample=stride, filter_flip=flip)
            expected = reference.conv2d_grad_weights(x_value, gy_value, filter_shape, stride,
                                                     border_mode, flip)
            result = compile_fn([x, gy], out)(x_value, gy_value)
            np.testing.assert_allclose(result, expected, **tolerance(dtype))


def test_weight_grad_unfolded_path(rng):
    x, gy = tensor4("x"), tensor4("gy")
    x_value, gy_value = random(rng, (3, 6, 7, 7)), random(rng, (3, 40, 3, 3))
    out = conv2d_grad_wrt_weights(x, gy, (40, 6, 5, 5), filter_flip=False)
    expected = reference.conv2d_grad_weights(x_value, gy_value, (40, 6, 5, 5), 1, 0, False)
    np.testing.assert_allclose(compile_fn([x, gy], out)(x_value, gy_value), expected,
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("border_mode, stride, flip", [
    ("half", (1, 1), True), ((1, 0), (2, 3), False), ("full", (2, 1), True),
])
def test_verify_grad_conv2d(rng, border_mode, stride, flip):
    op = Conv2d(border_mode, stride, flip)
    x_value, w_value = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((3, 2, 3, 2))
    verify_grad(op, [x_value, w_value], rng=rng, mode=FAST_MODE)


@pytest.mark.parametrize("crop, stride, flip, size", [
    ("valid", (2, 2), False, None), (1, (1, 1), True, None), ((1, 0), (3, 2), True, (9, 7)),
])
def test_verify_grad_transposed_conv(rng, crop, stride, flip, size):
    op = Conv2dGradInputs(crop, stride, flip)
    y_value, w_value = rng.standard_normal((2, 3, 3, 3)), rng.standard_normal((3, 2, 3, 2))
    if size is None:
        verify_grad(op, [y_value, w_value], rng=rng, mode=FAST_MODE)
    else:
        size_value = np.array(size, dtype="int64")
        verify_grad(lambda y, w: op(y, w, pt.constant(size_value)), [y_value, w_value],
                    rng=rng, mode=FAST_MODE)


def test_verify_grad_weight_grad(rng):
    op = Conv2dGradWeights(1, (2, 1), True)
    size = pt.constant(np.array([3, 2], dtype="int64"))
    x_value, gy_value = rng.standard_normal((2, 2, 7, 6)), rng.standard_normal((2, 3, 4, 7))
    verify_grad(lambda x, gy: op(x, gy, size), [x_value, gy_value], rng=rng, mode=FAST_MODE)


def _network(x, w1, w2, w3):
    """A small conv / strided conv / transposed conv stack like FCN's."""
    h = pt.maximum(conv2d(x, w1, border_mode="half", filter_flip=False), 0)
    h = conv2d(h, w2, border_mode=1, subsample=(3, 2), filter_flip=True)
    return conv2d_grad_wrt_inputs(h, w3, (None, 2, None, None), subsample=(2, 2),
                                  filter_flip=False)


def _network_functions(mode):
    x = tensor4("x")
    weights = [tensor4(name) for name in ("w1", "w2", "w3")]
    out = _network(x, *weights)
    cost = (out ** 2).sum() + out.sum()
    grads = pytensor.grad(cost, [x, *weights])
    return pytensor.function([x, *weights], [out, *grads], mode=mode)


def _network_values(rng, height, width):
    return [random(rng, (2, 3, height, width)), random(rng, (4, 3, 3, 3)) / 3,
            random(rng, (5, 4, 3, 4)) / 4, random(rng, (5, 2, 4, 4)) / 4]


def test_jax_matches_cvm_on_unknown_shapes(rng):
    """One compiled function per backend runs at several sizes, with equal results."""
    pytest.importorskip("jax")
    cvm, jax_fn = _network_functions("CVM"), _network_functions("JAX")
    for height, width in ((11, 10), (14, 9)):  # strided convs with non-minimal inputs
        values = _network_values(rng, height, width)
        expected, result = cvm(*values), jax_fn(*values)
        assert result[1].shape == values[0].shape
        for got, want in zip(result, expected):
            np.testing.assert_allclose(np.asarray(got), want, atol=2e-4, rtol=2e-4)


def test_jax_float64(rng):
    jax = pytest.importorskip("jax")
    # PyTensor sets jax_enable_x64 from floatX when it first loads its JAX dispatch: load it
    # before switching x64 on, whichever test ran first
    import pytensor.link.jax.dispatch  # noqa: F401

    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        x, w = tensor4("x", "float64"), tensor4("w", "float64")
        y = conv2d(x, w, border_mode="full", subsample=2)
        out = conv2d_grad_wrt_inputs(y, w, (1, 2, 7, 8), border_mode="full", subsample=2)
        values = rng.standard_normal((1, 2, 7, 8)), rng.standard_normal((3, 2, 2, 3))
        result = pytensor.function([x, w], out, mode="JAX")(*values)
        expected = pytensor.function([x, w], out, mode="CVM")(*values)
        assert result.dtype == np.float64
        np.testing.assert_allclose(result, expected, atol=1e-12)
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_jax_rejects_computed_sizes():
    pytest.importorskip("jax")
    y, w, h = tensor4("y"), tensor4("w"), pt.lscalar("h")
    out = conv2d_grad_wrt_inputs(y, w, (1, 2, h, 9), subsample=2)
    with pytest.raises(NotImplementedError, match="compile time"):
        pytensor.function([y, w, h], out, mode="JAX")


def test_default_mode_is_silent_and_matches_cvm(rng):
    values = _network_values(rng, 11, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        numba_fn = _network_functions(None)
        result = numba_fn(*values)
    for got, want in zip(result, _network_functions("CVM")(*values)):
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["CVM", None])
def test_compiled_modes_on_fcn_like_shapes(rng, mode):
    """Non-contiguous op outputs flow through compiled elementwise code."""
    x, w = tensor4("x"), tensor4("w")
    out = pt.maximum(conv2d(x, w, border_mode=2, filter_flip=False), 0) * 2
    x_value, w_value = random(rng, (2, 5, 20, 17)), random(rng, (6, 5, 3, 3))
    expected = 2 * np.maximum(reference.conv2d(x_value, w_value, 1, 2, False), 0)
    np.testing.assert_allclose(pytensor.function([x, w], out, mode=mode)(x_value, w_value),
                               expected, atol=1e-4, rtol=1e-4)


def test_wrong_rank_and_dtype():
    with pytest.raises(TypeError, match="4-D.*shape"):
        conv2d(pt.matrix("x"), tensor4("w"))
    with pytest.raises(TypeError, match="4-D"):
        conv2d_grad_wrt_inputs(pt.tensor3("y"), tensor4("w"), (None, None, None, None))
    with pytest.raises(TypeError, match="float"):
        conv2d(pt.tensor4("x", dtype="int32"), tensor4("w"))


def test_static_shape_errors_name_both_shapes():
    x = tensor4("x", shape=(1, 3, 5, 5))
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        conv2d(x, tensor4("w", shape=(4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*\(4, 3, 7, 3\)"):
        conv2d(x, tensor4("w", shape=(4, 3, 7, 3)))
    conv2d(x, tensor4("w", shape=(4, 3, 7, 3)), border_mode=1)  # padded input is 7 rows
    with pytest.raises(ValueError, match=r"\(1, 4, 3, 3\).*\(5, 2, 3, 3\)"):
        conv2d_grad_wrt_inputs(tensor4("y", shape=(1, 4, 3, 3)), tensor4("w", shape=(5, 2, 3, 3)),
                               (None, None, None, None))
    with pytest.raises(ValueError, match="contradicts"):
        conv2d(x, tensor4("w"), input_shape=(1, 4, 5, 5))


def test_run_time_shape_errors_name_both_shapes(rng):
    x, w = tensor4("x"), tensor4("w")
    fn = compile_fn([x, w], conv2d(x, w))
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*\(4, 2, 3, 3\)"):
        fn(random(rng, (1, 3, 5, 5)), random(rng, (4, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*\(4, 3, 6, 3\)"):
        fn(random(rng, (1, 3, 5, 5)), random(rng, (4, 3, 6, 3)))
    y = tensor4("y")
    fn = compile_fn([y, w], conv2d_grad_wrt_inputs(y, w, (None, None, None, None)))
    with pytest.raises(ValueError, match=r"\(1, 4, 3, 3\).*\(5, 2, 3, 3\)"):
        fn(random(rng, (1, 4, 3, 3)), random(rng, (5, 2, 3, 3)))


def test_infer_shape_without_computing(rng):
    x, w = tensor4("x"), tensor4("w")
    h = pt.lscalar("h")
    outputs = [
        conv2d(x, w, border_mode="half", subsample=(2, 3)),
        conv2d_grad_wrt_inputs(x, w.dimshuffle(1, 0, 2, 3), (None, None, None, None),
                               border_mode=1, subsample=(3, 2)),
        conv2d_grad_wrt_inputs(x, w.dimshuffle(1, 0, 2, 3), (None, None, h, None),
                               border_mode=1, subsample=(3, 2)),
        conv2d_grad_wrt_weights(x, x, (3, 3, 3, 3), border_mode="half"),
    ]
    fn = pytensor.function([x, w, h], [out.shape for out in outputs], mode="CVM",
                           on_unused_input="ignore")
    ops = (Conv2d, Conv2dGradInputs, Conv2dGradWeights)
    assert not any(isinstance(node.op, ops) for node in fn.maker.fgraph.apply_nodes)
    x_value, w_value = random(rng, (2, 3, 8, 7)), random(rng, (4, 3, 3, 2))
    shapes = [tuple(s) for s in fn(x_value, w_value, 23)]
    actual = pytensor.function([x, w, h], outputs, mode=FAST_MODE)(x_value, w_value, 23)
    assert shapes == [a.shape for a in actual]


def test_static_output_shapes():
    x, w = tensor4("x", shape=(2, 3, 9, None)), tensor4("w", shape=(4, 3, 3, 3))
    assert conv2d(x, w, border_mode="half", subsample=2).type.shape == (2, 4, 5, None)
    y = tensor4("y", shape=(2, 4, 5, 6))
    assert conv2d_grad_wrt_inputs(y, w, (2, 3, None, 12), subsample=2, border_mode=1
                                  ).type.shape == (2, 3, 9, 12)
    assert conv2d_grad_wrt_weights(x, y, (4, 3, 3, 3), subsample=2, border_mode=1
                                   ).type.shape == (4, 3, 3, 3)


def test_op_props():
    assert Conv2d("same", 2, True) == Conv2d("half", (2, 2), True)
    assert Conv2d("valid") == Conv2d(0) == Conv2d((0, 0))
    assert Conv2d("full") != Conv2d("full", filter_flip=False)
    with pytest.raises(ValueError):
        Conv2d("wide")
    with pytest.raises(ValueError):
        Conv2d(-1)
    with pytest.raises(ValueError):
        Conv2d(0, subsample=0)


# --- the BLAS layer under the kernels -------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
def test_gemm_on_strided_views(rng, dtype, trans_a, trans_b):
    from fcn8_lasagne.ops._blas import gemm

    big_a, big_b = random(rng, (40, 50), dtype), random(rng, (60, 70), dtype)
    a = big_a[3:3 + 7, 5:5 + 9] if not trans_a else big_a[3:3 + 9, 5:5 + 7]
    b = big_b[2:2 + 9, 1:1 + 11] if not trans_b else big_b[2:2 + 11, 1:1 + 9]
    out_big = random(rng, (30, 40), dtype)
    out = out_big[4:11, 6:17]
    previous = out.copy()
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b) + 0.5 * previous
    gemm(a, b, out, beta=0.5, trans_a=trans_a, trans_b=trans_b)
    np.testing.assert_allclose(out, expected, **tolerance(dtype))
    gemm(a[:, ::-1], b, out, trans_a=trans_a, trans_b=trans_b)  # no unit stride: NumPy path
    np.testing.assert_allclose(out, (a[:, ::-1].T if trans_a else a[:, ::-1])
                               @ (b.T if trans_b else b), **tolerance(dtype))


def test_parallel_for_states_and_errors():
    from fcn8_lasagne.ops._threads import parallel_for

    def add(task, state):
        state.append(task)

    states = parallel_for(range(100), add, list)
    assert sorted(sum(states, [])) == list(range(100))

    def fail(task, state):
        if task == 7:
            raise RuntimeError("task 7")

    with pytest.raises(RuntimeError, match="task 7"):
        parallel_for(range(20), fail)


def test_nested_parallel_for_runs_serially():
    from fcn8_lasagne.ops._threads import parallel_for

    def outer(task, state):
        state.extend(sum(parallel_for(range(3), lambda t, s: s.append((task, t)), list), []))

    states = parallel_for(range(4), outer, list)
    assert sorted(sum(states, [])) == [(i, j) for i in range(4) for j in range(3)]


def test_backends_register_lazily():
    """Importing the ops loads neither JAX nor Numba's dispatch; compiling for them works."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, warnings\n"
        "import numpy as np, pytensor, pytensor.tensor as pt\n"
        "from fcn8_lasagne.ops import conv2d\n"
        "assert 'jax' not in sys.modules\n"
        "assert 'pytensor.link.numba.dispatch.basic' not in sys.modules\n"
        "x, w = pt.tensor4('x'), pt.tensor4('w')\n"
        "y = conv2d(x, w, subsample=2)\n"
        "values = np.ones((1, 2, 5, 5), 'float32'), np.ones((3, 2, 3, 3), 'float32')\n"
        "with warnings.catch_warnings():\n"
        "    warnings.simplefilter('error')\n"
        "    assert pytensor.function([x, w], y)(*values).sum() == 3 * 4 * 18\n"
        "try:\n"
        "    import jax\n"
        "except ImportError:\n"
        "    sys.exit(0)\n"
        "assert np.asarray(pytensor.function([x, w], y, mode='JAX')(*values)).sum() == 216\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_coretype_advice_names_a_forced_pre_avx512_core(tmp_path, monkeypatch):
    from fcn8_lasagne.ops._blas import coretype_advice

    avx512, avx2 = tmp_path / "avx512", tmp_path / "avx2"
    avx512.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n")
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert "OPENBLAS_CORETYPE=Haswell" in coretype_advice(str(avx512))
    assert coretype_advice(str(avx2)) is None
    assert coretype_advice(str(tmp_path / "missing")) is None
    monkeypatch.setenv("OPENBLAS_CORETYPE", "SkylakeX")
    assert coretype_advice(str(avx512)) is None
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert coretype_advice(str(avx512)) is None
