"""The helpers of the compiled convolution kernels (``ops._conv_c``): the zero-padded copy of
the images and the packed weights, against element-by-element NumPy references."""

import ctypes
import functools
import itertools

import numpy as np
import pytest

from fcn8_lasagne.ops import _conv_c

pytestmark = pytest.mark.skipif(_conv_c.library() is None,
                                reason="no C++ compiler: the compiled kernels are not built")


def padded_reference(x, pads, totals):
    """Element by element: padded[b, c, i...] = x[b, c, i - pad...] inside x, else 0."""
    out = np.zeros(x.shape[:2] + tuple(totals), dtype=x.dtype)
    for index in itertools.product(*(range(t) for t in totals)):
        source = tuple(i - p for i, p in zip(index, pads))
        if all(0 <= s < n for s, n in zip(source, x.shape[2:])):
            out[(slice(None), slice(None)) + index] = x[(slice(None), slice(None)) + source]
    return out.reshape(x.shape[0], x.shape[1], -1)


PAD_CASES = [  # x shape, pads, padded spatial size
    ((2, 3, 5, 7), (1, 2), (8, 12)),  # symmetric-ish padding, extra rows and columns
    ((2, 3, 5, 7), (-1, 2), (4, 9)),  # a negative pad crops
    ((2, 3, 5, 7), (0, -3), (5, 3)),  # cropped columns, the output narrower than x
    ((2, 3, 5, 7), (9, 0), (5, 7)),  # every row outside x: all zeros
    ((1, 4, 3, 4, 5), (1, 0, 2), (5, 4, 9)),  # 3-D
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape, pads, totals", PAD_CASES)
def test_padded_copy_matches_reference(rng, dtype, x_shape, pads, totals):
    """The padded flat copy of contiguous and strided images equals the reference, and the
    slack past the last image is zero."""
    x = rng.standard_normal(x_shape).astype(dtype)
    channels_last = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    for images in (x, channels_last, x[:, ::-1], x.transpose(1, 0, *range(2, x.ndim))):
        got = _conv_c._padded_flat(images, pads, totals)
        np.testing.assert_array_equal(got, padded_reference(images, pads, totals))
        tail = (ctypes.c_byte * (_conv_c.slack(got.dtype) * got.itemsize)).from_address(
            got.ctypes.data + got.nbytes)
        assert not any(bytes(tail))
        assert got.ctypes.data % 64 == 0


def packed_reference(w, groups, block, flip, transposed):
    """Element by element: packed[g, b, c, t, i] is the weight of filter b * block + i (zero
    past the group's last) and channel c of group g, at tap t (counted from the end when
    flip)."""
    filters, per_group = w.shape[:2]
    taps = int(np.prod(w.shape[2:]))
    flat = w.reshape(filters, per_group, taps)
    fg, cg = (per_group, filters // groups) if transposed else (filters // groups, per_group)
    blocks = -(-fg // block)
    out = np.zeros((groups, blocks, cg, taps, block), dtype=w.dtype)
    for g, b, c, t, i in itertools.product(range(groups), range(blocks), range(cg),
                                           range(taps), range(block)):
        f = b * block + i
        if f >= fg:
            continue
        tap = taps - 1 - t if flip else t
        if transposed:  # filter f of the transposed correlation is forward channel f
            out[g, b, c, t, i] = flat[g * cg + c, f, tap]
        else:
            out[g, b, c, t, i] = flat[g * fg + f, c, tap]
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("w_shape, groups", [((12, 3, 3, 2), 4), ((10, 6, 2, 3, 2), 2),
                                             ((9, 5, 3, 3), 1)])
def test_packed_weights_match_reference(rng, dtype, w_shape, groups):
    """Every filter block size, both flips, the forward and the transposed kernel."""
    w = rng.standard_normal(w_shape).astype(dtype)
    for block, flip, transposed in itertools.product((4, 6, 8), (False, True), (False, True)):
        got = _conv_c.pack_weights(w, groups, block, flip, transposed)
        np.testing.assert_array_equal(
            got, packed_reference(w, groups, block, flip, transposed),
            err_msg=f"block {block}, flip {flip}, transposed {transposed}")


def test_transposed_correlation_is_the_input_gradient(rng):
    """conv_correlation(transposed=True) of an output gradient equals the adjoint of the
    forward correlation: <conv(x), gy> == <x, conv_transposed(gy)>."""
    x = rng.standard_normal((2, 6, 7, 19))
    w = rng.standard_normal((8, 3, 3, 2))
    pads, dilation, groups = (1, 2), (2, 1), 2
    y = _conv_c.conv_correlation(x, w, pads, (5, 22), False, dilation, groups)
    gy = rng.standard_normal(y.shape)
    back_pads = tuple((k - 1) * d - p for k, d, p in zip(w.shape[2:], dilation, pads))
    gx = _conv_c.conv_correlation(gy, w, back_pads, x.shape[2:], True, dilation, groups,
                                  transposed=True)
    assert gx.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, gy), np.vdot(x, gx), rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_gradient_ignores_the_memory_after_the_padded_images(rng, monkeypatch, dtype):
    """The weight gradient's last taps read past the padded images (times a zero output
    gradient): that memory is zeroed, so stale NaN there does not reach the gradient.
    Buffers are handed out full of NaN, as reused memory may be."""
    aligned_empty = _conv_c._aligned_empty

    def stale_empty(shape, dtype, alignment=64, allocate=np.empty):
        if allocate is np.empty:
            allocate = functools.partial(np.full, fill_value=np.nan)
        return aligned_empty(shape, dtype, alignment, allocate)

    monkeypatch.setattr(_conv_c, "_aligned_empty", stale_empty)
    x = rng.standard_normal((2, 4, 6, 5, 6)).astype(dtype)
    kernel, pads, dilation = (2, 3, 2), (2, 4, 2), (2, 2, 2)  # 'full' padding, dilated
    gy = rng.standard_normal((2, 6, 8, 9, 8)).astype(dtype)
    grad = _conv_c.conv_weight_grad(x, gy, kernel, pads, dilation, 1)
    padded = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(p, p) for p in pads])
    expected = np.empty((6, 4) + kernel)
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = padded[(slice(None), slice(None)) + tuple(
            slice(t * d, t * d + n) for t, d, n in zip(tap, dilation, gy.shape[2:]))]
        expected[(slice(None), slice(None)) + tap] = np.tensordot(gy, window,
                                                                    ([0, 2, 3, 4], [0, 2, 3, 4]))
    np.testing.assert_allclose(grad, expected, rtol=1e-4 if dtype == "float32" else 1e-10,
                               atol=1e-3 if dtype == "float32" else 1e-10)
