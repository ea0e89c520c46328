"""The Winograd F(2x2, 3x3) path of the CPU convolutions, against the direct reference."""

import os
import subprocess
import sys

import numpy as np
import pytest

from fcn8_lasagne.ops import _conv_cpu, _winograd, get_winograd, set_winograd
from tests import reference


@pytest.fixture
def winograd_on():
    previous = set_winograd(True)
    yield
    set_winograd(previous)


def random(rng, shape, dtype="float64"):
    return rng.standard_normal(shape).astype(dtype)


def correlate(x, w, pad, flip):
    """``winograd_correlation`` called as the forward convolution calls it."""
    out_hw = (x.shape[2] + 2 * pad - 2, x.shape[3] + 2 * pad - 2)
    padded = _conv_cpu.pad_images(x, pad, pad, *_winograd.padded_size(*out_hw))
    taps = np.ascontiguousarray(w.transpose(2, 3, 0, 1))
    return _winograd.winograd_correlation(padded, taps, *out_hw, flip)


SHAPES = [
    ((1, 3, 6, 6), (2, 3, 3, 3), 0),      # two 2x2 blocks per row: a 4x4 output
    ((2, 5, 9, 8), (4, 5, 3, 3), 1),      # odd height: the extra output row is cut off
    ((3, 4, 7, 11), (6, 4, 3, 3), 2),     # odd both ways, padding larger than the kernel
    ((1, 2, 3, 3), (1, 2, 3, 3), 0),      # a single output pixel
]


@pytest.mark.parametrize("flip", [True, False])
@pytest.mark.parametrize("x_shape, w_shape, pad", SHAPES)
def test_matches_direct_correlation(rng, x_shape, w_shape, pad, flip):
    x, w = random(rng, x_shape), random(rng, w_shape)
    out = correlate(x, w, pad, flip)
    np.testing.assert_allclose(out, reference.conv2d(x, w, 1, pad, flip), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, pad", SHAPES)
def test_weight_grad_matches_reference(rng, x_shape, w_shape, pad):
    x, gy = random(rng, x_shape), random(rng, (x_shape[0], w_shape[0]) + tuple(
        size + 2 * pad - 2 for size in x_shape[2:]))
    padded = _conv_cpu.pad_images(x, pad, pad, *_winograd.padded_size(*gy.shape[2:]))
    tap_grads = _winograd.winograd_weight_grad(padded, gy)
    np.testing.assert_allclose(tap_grads.transpose(2, 3, 0, 1),
                               reference.conv2d_grad_weights(x, gy, w_shape, 1, pad, False),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("min_tiles, block_bytes", [(1, 1), (4, 1 << 20), (10 ** 6, 1 << 30)])
def test_bands_and_filter_spans_cover_the_output(rng, monkeypatch, min_tiles, block_bytes):
    """Many small bands of tile rows, and one band per image with the filters split."""
    monkeypatch.setattr(_winograd, "_MIN_TILES", min_tiles)
    monkeypatch.setattr(_winograd, "_BLOCK_BYTES", block_bytes)
    monkeypatch.setattr(_winograd, "_MIN_FILTERS", 3)
    x, w = random(rng, (2, 6, 21, 14)), random(rng, (13, 6, 3, 3))
    np.testing.assert_allclose(correlate(x, w, 1, True), reference.conv2d(x, w, 1, 1, True),
                               rtol=1e-12, atol=1e-12)
    gy = random(rng, (2, 13, 21, 14))
    padded = _conv_cpu.pad_images(x, 1, 1, *_winograd.padded_size(21, 14))
    np.testing.assert_allclose(
        _winograd.winograd_weight_grad(padded, gy).transpose(2, 3, 0, 1),
        reference.conv2d_grad_weights(x, gy, w.shape, 1, 1, False), rtol=1e-12, atol=1e-12)


def test_float32_error_stays_near_the_direct_sum(rng):
    """Against float64: at most a few times the error of the direct float32 sum."""
    x, w = random(rng, (1, 256, 20, 20)), random(rng, (64, 256, 3, 3)) / 48
    exact = reference.conv2d(x, w, 1, 1, True)
    x32, w32 = x.astype(np.float32), w.astype(np.float32)
    winograd_error = np.abs(correlate(x32, w32, 1, True) - exact).max()
    previous = set_winograd(False)
    try:
        direct_error = np.abs(_conv_cpu.conv2d_forward(x32, w32, (1, 1), (1, 1), True)
                              - exact).max()
    finally:
        set_winograd(previous)
    scale = np.abs(exact).max()
    assert winograd_error < 4e-6 * scale
    assert winograd_error < 8 * max(direct_error, 1e-7 * scale)


def test_rejects_other_kernels_and_short_images(rng):
    taps = random(rng, (3, 3, 2, 2))
    with pytest.raises(ValueError, match=r"at least \(6, 6\).*outputs of \(4, 3\)"):
        _winograd.winograd_correlation(random(rng, (1, 2, 6, 5)), taps, 4, 3, True)
    with pytest.raises(ValueError, match=r"3x3 taps.*\(5, 5\)"):
        _winograd.winograd_correlation(random(rng, (1, 2, 8, 8)), random(rng, (5, 5, 2, 2)),
                                       4, 4, True)


def test_worthwhile_rule(winograd_on, monkeypatch):
    from fcn8_lasagne.ops import _winograd_c

    big = dict(channels=128, filters=128, batch=1, out_hw=(32, 32))    # 256 blocks
    assert _winograd.worthwhile((3, 3), **big)
    assert not _winograd.worthwhile((5, 5), **big)
    # 64 -> 64 channels only with the compiled transforms
    assert _winograd.worthwhile((3, 3), **{**big, "channels": 64, "filters": 64}) == (
        _winograd_c.library() is not None)
    assert not _winograd.worthwhile((3, 3), **{**big, "channels": 32, "filters": 64})
    monkeypatch.setattr(_winograd, "_use_c_transforms", False)
    assert not _winograd.worthwhile((3, 3), **{**big, "channels": 64, "filters": 64})
    monkeypatch.undo()
    assert _winograd.worthwhile((3, 3), **{**big, "channels": 64})
    assert not _winograd.worthwhile((3, 3), **{**big, "out_hw": (14, 14)})   # 49 blocks
    assert _winograd.worthwhile((3, 3), **{**big, "batch": 3, "out_hw": (14, 13)})
    set_winograd(False)
    assert not _winograd.worthwhile((3, 3), **big)


@pytest.mark.parametrize("enabled", [True, False])
def test_convolution_ops_take_the_path_when_worthwhile(rng, monkeypatch, enabled):
    """Forward, input and weight gradients of a qualifying layer, switch on and off."""
    calls = []
    for name in ("winograd_correlation", "winograd_weight_grad"):
        def spy(*args, original=getattr(_winograd, name), name=name):
            calls.append((name, args[0].shape))
            return original(*args)

        monkeypatch.setattr(_winograd, name, spy)
    previous = set_winograd(enabled)
    try:
        x = random(rng, (2, 64, 17, 18), "float32") / 8
        w = random(rng, (128, 64, 3, 3), "float32") / 8
        out = _conv_cpu.conv2d_forward(x, w, (1, 1), (1, 1), True)
        grad_in = _conv_cpu.conv2d_backward_input(out, w, x.shape[2:], (1, 1), (1, 1), False)
        grad_w = _conv_cpu.conv2d_backward_weights(x, out, w.shape[2:], (1, 1), (1, 1), True)
    finally:
        set_winograd(previous)
    assert calls == ([("winograd_correlation", (2, 64, 20, 20)),
                      ("winograd_correlation", (2, 128, 20, 20)),
                      ("winograd_weight_grad", (2, 64, 20, 20))] if enabled else [])
    np.testing.assert_allclose(out, reference.conv2d(x, w, 1, 1, True), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(
        grad_in, reference.conv2d_transpose(out, w, 1, 1, False, x.shape[2:]), atol=1e-3,
        rtol=1e-4)
    np.testing.assert_allclose(
        grad_w, reference.conv2d_grad_weights(x, out, w.shape, 1, 1, True), atol=2e-3,
        rtol=1e-4)


def test_environment_variable_turns_it_off():
    code = "from fcn8_lasagne.ops import get_winograd; print(get_winograd())"
    env = {**os.environ, "FCN8_LASAGNE_WINOGRAD": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout.strip() == "False"


def test_bands_have_equal_heights():
    """26 tile rows in bands of at most 20 are split 13 + 13, not 20 + 6."""
    bands = _winograd._bands(1, 26, 26, 16 * (256 + 512) * 4)
    heights = [stop - start for _, (start, stop) in bands]
    assert sum(heights) == 26 and max(heights) - min(heights) <= 1
    many = [stop - start for _, (start, stop) in _winograd._bands(1, 106, 106, 16 * 192 * 4)]
    assert sum(many) == 106 and len(many) > 4 and max(many) - min(many) <= 1


def test_weight_grad_with_filters_split_on_the_worker_threads(rng, monkeypatch):
    """One band per image and the filters split: every worker's partial sums of each filter
    span are added, whichever worker ran which task."""
    from fcn8_lasagne.ops import _threads

    monkeypatch.setattr(_threads, "_PARALLEL_FLOPS", 0)
    monkeypatch.setattr(_winograd, "_MIN_TILES", 10 ** 6)
    monkeypatch.setattr(_winograd, "_MIN_FILTERS", 2)
    x = random(rng, (1, 5, 12, 10))
    gy = random(rng, (1, 9, 12, 10))
    padded = _conv_cpu.pad_images(x, 1, 1, *_winograd.padded_size(12, 10))
    assert len(_winograd._filter_pieces(9, 1)) > 1
    for _ in range(3):
        np.testing.assert_allclose(
            _winograd.winograd_weight_grad(padded, gy).transpose(2, 3, 0, 1),
            reference.conv2d_grad_weights(x, gy, (9, 5, 3, 3), 1, 1, False),
            rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape, w_shape, pad", SHAPES + [((2, 16, 13, 18), (24, 16, 3, 3), 1)])
def test_compiled_transforms_equal_numpys_bit_for_bit(rng, monkeypatch, dtype, x_shape,
                                                      w_shape, pad):
    """The C tile transforms compute the NumPy ones' additions in the same order."""
    from fcn8_lasagne.ops import _winograd_c

    if _winograd_c.library() is None:
        pytest.skip("no C++ compiler: the NumPy transforms are the only ones")
    x, w = random(rng, x_shape, dtype), random(rng, w_shape, dtype)
    out_hw = tuple(n + 2 * pad - 2 for n in x_shape[2:])
    gy = random(rng, (x_shape[0], w_shape[0]) + out_hw, dtype)
    padded = _conv_cpu.pad_images(x, pad, pad, *_winograd.padded_size(*out_hw))
    results = {}
    for compiled in (True, False):
        monkeypatch.setattr(_winograd, "_use_c_transforms", compiled)
        assert _winograd._c_transforms(padded) == compiled
        results[compiled] = (np.array(correlate(x, w, pad, False)),
                             _winograd.winograd_weight_grad(padded, gy))
    for with_c, with_numpy in zip(results[True], results[False]):
        assert with_c.dtype == dtype
        np.testing.assert_array_equal(with_c, with_numpy)


def test_compiled_transforms_can_be_turned_off_by_the_environment():
    code = ("from fcn8_lasagne.ops import _winograd_c; import numpy as np; "
            "print(_winograd_c.library() is None, _winograd_c.usable(np.float32))")
    env = {**os.environ, "FCN8_LASAGNE_C_KERNELS": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout.split() == ["True", "False"]
