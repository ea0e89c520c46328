"""CPU kernels of the convolution ops: BLAS GEMMs on views of zero-padded images.

The kernels handle 2 and 3 spatial axes directly, with strides, filter dilation and channel
groups. A batch of 1-D images ``(B, C, L)`` -- and a batch of 2-D images one pixel high with
kernels one tap high, the layout of Lasagne's ``Conv1DLayer`` -- runs as *one* 2-D image
``(1, C, B, L)`` with a kernel one tap high: rows never mix, and every GEMM of the
strategies below spans the whole batch instead of one short row (the 1-D FCN's rows of 200
samples gave GEMMs too thin for BLAS, 2.6 times slower). Four strategies, picked per call
by :func:`_strategy`:

*Shifted views* (stride 1, images that are large next to the filter count). On a
zero-padded image flattened to ``(C, Hp * Wp)``, output pixel ``(i, j)`` of kernel tap
``(u, v)`` reads column ``(i + u) * Wp + (j + v) = i * Wp + j + (u * Wp + v)``. So with the
output laid out on the padded width (column ``i * Wp + j``), each tap is one GEMM of its
``(F, C)`` weight slice with the *view* ``x_flat[:, u * Wp + v:][:, :length]``; the
``kh * kw`` GEMMs accumulate into one output and the ``Wp - Wout`` wrapped columns of each
row are skipped at the end. No patch matrix is built. The columns are cut into blocks that
stay in cache across the taps and are shared out to the worker threads. A dilated kernel
shifts by ``u * dilation`` instead of ``u``; a 3-D image is flattened to
``(C, Dp * Hp * Wp)`` the same way (tap ``(t, u, v)`` shifts by ``(t Hp + u) Wp + v``).

*Phases* (2-D, undilated, strides ``s`` no larger than the kernel). A stride-``s``
convolution is a stride-1 convolution of the ``s * s`` phase images (space-to-depth,
``C * s * s`` channels) with sub-kernels of ``ceil(k / s)`` taps; a strided transposed
convolution is the stride-1 transposed convolution of those, interleaved back
(depth-to-space). Both then run on shifted views, without scatter-adds.

*Unfolding* (small images with many filters, such as FCN's fc6, 1x1 kernels, strides
larger than the kernel, and strided 3-D or dilated convolutions). The patches are copied
into a ``(C * prod(k), B * prod(out))`` matrix and a few large GEMMs read the weights once.

*Winograd* (2-D stride-1 undilated 3x3 kernels with many channels, :mod:`._winograd`). The
shifted-view case of those layers, their input and their weight gradients, computed by
Winograd's F(2x2, 3x3) in 2.25 times fewer products; :func:`._winograd.worthwhile`
decides, ``set_winograd(False)`` turns it off. Float32 results then differ from the direct
sum by about twice its rounding error (a documented difference from Theano's ``CorrMM``,
``docs/faithfulness.md``).

*Groups* split the channels and filters into ``groups`` contiguous blocks (Theano's
layout: weights ``(F, C / groups, k...)``). Small groups (at most ``_GROUPED_MAX`` channels
and filters, stride 1) run as one grouped shifted-view correlation: one padded copy, one
output buffer, every group's GEMMs in one task list. Otherwise each group runs the
ungrouped kernel on its channel slices, the groups shared out to the worker threads when
there are enough of them.

*Few channels* (3-D and dilated convolutions with at most ``_CHANNELS_LAST_MAX`` channels
and filters): the shifted-view GEMMs run on channels-last copies of the images, and the
weight gradient folds the last axis's taps into the channels.

*Compiled direct kernels* (:mod:`._conv_c`, where a C++ compiler is available): stride-1
3-D, dilated and grouped convolutions, their input gradients and (up to
``_C_WEIGHT_GRAD_MAX`` channels per group) their weight gradients, which BLAS runs as many
small tap GEMMs, take these instead of the strategies above (:func:`_use_c_kernels`). They
sum in a different order than the GEMMs (float32 results differ by rounding).

Kernels work on NumPy arrays of one dtype; ``flip=True`` means a true convolution (kernel
rotated by 180 degrees), ``flip=False`` a cross-correlation.
"""

import itertools
import math

import numpy as np

from . import _conv_c, _winograd
from ._blas import gemm
from ._threads import parallel_for, spans, worker_count
from .shapes import grid_steps

__all__ = [
    "conv_forward",
    "conv_backward_input",
    "conv_backward_weights",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weights",
    "check_forward_shapes",
    "output_shape",
    "pad_images",
    "pad_nd",
]

# Bytes of output (forward) or of operands (weight gradient) per block of columns: a block
# is revisited by every kernel tap, so it should stay in cache (measured best: 2-4 MiB).
_BLOCK_BYTES = 4 << 20
# Unfold when the images hold fewer than this many output pixels per filter: shifted views
# would copy about as many weights as unfolding copies patches, in many thin GEMMs.
_UNFOLD_PIXELS_PER_FILTER = 2
# Copies smaller than this (elements) are not worth splitting among threads.
_PARALLEL_COPY_SIZE = 1 << 20


def _block_size(length, bytes_per_column, pieces):
    """Column block that fits :data:`_BLOCK_BYTES` and cuts ``length`` into enough pieces."""
    cached = max(64, _BLOCK_BYTES // max(1, bytes_per_column))
    balanced = -(-length // max(1, pieces))
    return max(1, min(cached, -(-balanced // 64) * 64))


def _parallel_assign(destination, source):
    """``destination[...] = source``, split along axis 1 among the workers when large."""
    channels = destination.shape[1]
    if destination.size < _PARALLEL_COPY_SIZE or channels < 2 or worker_count() == 1:
        destination[...] = source
        return
    block = -(-channels // (2 * worker_count()))

    def copy(span, _):
        destination[:, span[0]:span[1]] = source[:, span[0]:span[1]]

    parallel_for(spans(channels, block), copy)


def pad_nd(x, pads, totals=None):
    """Zero-pad (or, for negative pads, crop) the spatial axes of ``x`` (B, C, ...).

    ``x`` goes to offset ``pads[i]`` of spatial axis ``i`` of a new C-contiguous array of
    spatial size ``totals`` (default: symmetric padding, ``size + 2 * pad``).
    """
    spatial = x.shape[2:]
    if totals is None:
        totals = [n + 2 * p for n, p in zip(spatial, pads)]
    totals = [n + 2 * p if t is None else t for n, p, t in zip(spatial, pads, totals)]
    padded = np.zeros(x.shape[:2] + tuple(totals), dtype=x.dtype)
    source, target = [slice(None)] * 2, [slice(None)] * 2
    for n, p, t in zip(spatial, pads, totals):
        src0, dst0 = max(0, -p), max(0, p)
        count = min(n - src0, t - dst0)
        if count <= 0:
            return padded
        source.append(slice(src0, src0 + count))
        target.append(slice(dst0, dst0 + count))
    _parallel_assign(padded[tuple(target)], x[tuple(source)])
    return padded


def pad_images(x, pad_h, pad_w, total_h=None, total_w=None):
    """Zero-pad (or, for negative pads, crop) the two spatial axes of ``x``.

    ``x`` goes to rows ``pad_h``..., columns ``pad_w``... of a new C-contiguous array of
    spatial size ``(total_h, total_w)`` (default: symmetric padding).
    """
    return pad_nd(x, (pad_h, pad_w), (total_h, total_w))


def _contiguous_images(x, pad):
    """``x`` padded by ``pad``; ``x`` itself when no padding or copy is needed."""
    if not any(pad) and x.flags.c_contiguous:
        return x
    return pad_nd(x, pad)


def _tap_shifts(kernel, dilation, steps):
    """``[(tap, flat shift)]`` of every kernel tap, in C order."""
    return [(tap, sum(t * d * s for t, d, s in zip(tap, dilation, steps)))
            for tap in itertools.product(*(range(k) for k in kernel))]


def _ones(n):
    return (1,) * n


def _shifted_view_correlation(padded, tap_weights, out_shape, flip, dilation=None, groups=1):
    """Stride-1 correlation of padded images with per-tap weight matrices.

    Parameters
    ----------
    padded : ndarray, (B, C, *Sp), C-contiguous
    tap_weights : ndarray, (*k, F, C / groups), C-contiguous
        ``tap_weights[u, v]`` multiplies the input shifted by ``(u, v)`` (times the
        dilation), or by ``(kh-1-u, kw-1-v)`` when ``flip``; with groups, rows
        ``g * F/G ... (g+1) * F/G - 1`` read channels ``g * C/G ... (g+1) * C/G - 1``.
    out_shape : tuple of int
        ``Sp - (k - 1) * dilation``.
    dilation : tuple of int, optional
    groups : int, optional

    Returns
    -------
    ndarray, (B, F, *out_shape)
        A view that skips the wrapped columns of a ``(B, F, out_shape[0], *Sp[1:])`` buffer.
    """
    batch, channels = padded.shape[:2]
    spatial = padded.shape[2:]
    ndim = len(spatial)
    kernel = tap_weights.shape[:ndim]
    filters = tap_weights.shape[ndim]
    dilation = _ones(ndim) if dilation is None else dilation
    steps = grid_steps(spatial)
    length = sum((n - 1) * s for n, s in zip(out_shape, steps)) + 1
    images = padded.reshape(batch, channels, -1)
    out = np.empty((batch, filters, out_shape[0] * steps[0]), dtype=padded.dtype)
    taps = _tap_shifts(kernel, dilation, steps)
    per_group, filters_per_group = channels // groups, filters // groups
    pieces = -(-2 * worker_count() // (batch * groups))
    block = _block_size(length, filters_per_group * padded.itemsize, pieces)

    def correlate(task, _):
        g, b, (start, stop) = task
        rows = slice(g * filters_per_group, (g + 1) * filters_per_group)
        source = images[b, g * per_group:(g + 1) * per_group]
        for index, (tap, shift) in enumerate(taps):
            weights = tap_weights[tuple(k - 1 - t for k, t in zip(kernel, tap))] if flip else (
                tap_weights[tap])
            gemm(weights[rows], source[:, shift + start:shift + stop], out[b, rows, start:stop],
                 beta=0.0 if index == 0 else 1.0)

    parallel_for([(g, b, span) for g in range(groups) for b in range(batch)
                  for span in spans(length, block)], correlate,
                 flops=2.0 * batch * length * filters * per_group * len(taps))
    grid = out.reshape(batch, filters, out_shape[0], *spatial[1:])
    return grid[(Ellipsis, slice(None)) + tuple(slice(0, n) for n in out_shape[1:])]


def _shifted_view_weight_grad(padded, output_grad, kernel, dilation=None, groups=1):
    """Kernel gradient ``(*k, F, C / groups)`` of a stride-1 correlation of padded images."""
    batch, channels = padded.shape[:2]
    spatial = padded.shape[2:]
    ndim = len(spatial)
    filters, out_shape = output_grad.shape[1], output_grad.shape[2:]
    dilation = _ones(ndim) if dilation is None else dilation
    steps = grid_steps(spatial)
    length = sum((n - 1) * s for n, s in zip(out_shape, steps)) + 1
    images = padded.reshape(batch, channels, -1)
    # The output gradient laid out on the padded grid: its zero columns cancel the
    # products of wrapped-around input columns.
    wide_grad = pad_nd(output_grad, (0,) * ndim,
                       (out_shape[0], *spatial[1:])).reshape(batch, filters, -1)
    taps = _tap_shifts(kernel, dilation, steps)
    per_group, filters_per_group = channels // groups, filters // groups
    pieces = -(-2 * worker_count() // (batch * groups))
    block = _block_size(length, (per_group + filters_per_group) * padded.itemsize, pieces)

    def new_state():
        return {"grad": np.empty((*kernel, filters, per_group), dtype=padded.dtype),
                "started": set()}

    def accumulate(task, state):
        g, b, (start, stop) = task
        rows = slice(g * filters_per_group, (g + 1) * filters_per_group)
        source = images[b, g * per_group:(g + 1) * per_group]
        beta = 1.0 if g in state["started"] else 0.0
        for tap, shift in taps:
            gemm(wide_grad[b, rows, start:stop], source[:, shift + start:shift + stop],
                 state["grad"][tap][rows], beta=beta, trans_b=True)
        state["started"].add(g)

    states = parallel_for([(g, b, span) for g in range(groups) for b in range(batch)
                           for span in spans(length, block)],
                          accumulate, new_state,
                          flops=2.0 * batch * length * filters * per_group * len(taps))
    grad = states[0]["grad"]
    for g in range(groups):
        rows = slice(g * filters_per_group, (g + 1) * filters_per_group)
        holders = [state for state in states if g in state["started"]]
        if holders[0] is not states[0]:
            grad[(Ellipsis, rows, slice(None))] = holders[0]["grad"][(Ellipsis, rows, slice(None))]
        for state in holders[1:]:
            grad[(Ellipsis, rows, slice(None))] += state["grad"][(Ellipsis, rows, slice(None))]
    return grad

# At most this many channels and filters: the shifted-view GEMMs of 3-D and dilated
# convolutions run on channels-last images (OpenBLAS multiplies a (pixels, C) block by a
# (C, F) tap about 1.4 times faster than (F, C) by (C, pixels) when C and F are this small).
_CHANNELS_LAST_MAX = 64


def _channels_last_pays(ndim, dilation, channels, filters):
    """Whether a stride-1 shifted-view correlation should run channels-last, and its weight
    gradient with the last axis's taps folded into the channels (never for the undilated
    2-D convolutions, which keep their kernels)."""
    return (ndim == 3 or any(d > 1 for d in dilation)) and max(channels, filters) <= (
        _CHANNELS_LAST_MAX)


def _pad_channels_last(x, pads):
    """Zero-pad (negative pads crop) the spatial axes of ``x`` (B, C, *S) into a new
    channels-last array (B, *(S + 2 pad), C)."""
    spatial = x.shape[2:]
    totals = tuple(n + 2 * p for n, p in zip(spatial, pads))
    padded = np.zeros((x.shape[0], *totals, x.shape[1]), dtype=x.dtype)
    source, target = [slice(None)], [slice(None)]
    for n, p, t in zip(spatial, pads, totals):
        src0, dst0 = max(0, -p), max(0, p)
        count = min(n - src0, t - dst0)
        if count <= 0:
            return padded
        source.append(slice(src0, src0 + count))
        target.append(slice(dst0, dst0 + count))
    window = x[(slice(None), slice(None)) + tuple(source[1:])]
    _parallel_assign(padded[tuple(target)], np.moveaxis(window, 1, -1))
    return padded


def _channels_last_correlation(images, tap_weights, out_shape, flip, dilation):
    """:func:`_shifted_view_correlation` on channels-last images.

    Parameters
    ----------
    images : ndarray, (B, *Sp, C), C-contiguous
    tap_weights : ndarray, (*k, C, F), C-contiguous
    out_shape, flip, dilation
        As for :func:`_shifted_view_correlation`.

    Returns
    -------
    ndarray, (B, F, *out_shape)
        A channels-first view of a channels-last buffer.
    """
    batch, channels = images.shape[0], images.shape[-1]
    spatial = images.shape[1:-1]
    ndim = len(spatial)
    kernel = tap_weights.shape[:ndim]
    filters = tap_weights.shape[-1]
    steps = grid_steps(spatial)
    length = sum((n - 1) * s for n, s in zip(out_shape, steps)) + 1
    flat = images.reshape(batch, -1, channels)
    out = np.empty((batch, out_shape[0] * steps[0], filters), dtype=images.dtype)
    taps = _tap_shifts(kernel, dilation, steps)
    pieces = -(-2 * worker_count() // batch)
    block = _block_size(length, filters * images.itemsize, pieces)

    def correlate(task, _):
        b, (start, stop) = task
        for index, (tap, shift) in enumerate(taps):
            weights = tap_weights[tuple(k - 1 - t for k, t in zip(kernel, tap))] if flip else (
                tap_weights[tap])
            gemm(flat[b, shift + start:shift + stop], weights, out[b, start:stop],
                 beta=0.0 if index == 0 else 1.0)

    parallel_for([(b, span) for b in range(batch) for span in spans(length, block)], correlate,
                 flops=2.0 * batch * length * filters * channels * len(taps))
    grid = out.reshape(batch, out_shape[0], *spatial[1:], filters)
    view = grid[(slice(None), slice(None)) + tuple(slice(0, n) for n in out_shape[1:])]
    return np.moveaxis(view, -1, 1)


def _folded_weight_grad(padded, output_grad, kernel, dilation):
    """:func:`_shifted_view_weight_grad` with the taps of the last axis folded into the
    channels: the rows ``(c, v)`` of a copy hold channel ``c`` shifted by ``v * dilation``, so
    each GEMM computes ``kw`` taps at once (``kw`` times fewer, ``kw`` times wider GEMMs for
    small channel counts)."""
    batch, channels = padded.shape[:2]
    spatial = padded.shape[2:]
    ndim = len(spatial)
    filters, out_shape = output_grad.shape[1], output_grad.shape[2:]
    steps = grid_steps(spatial)
    length = sum((n - 1) * s for n, s in zip(out_shape, steps)) + 1
    images = padded.reshape(batch, channels, -1)
    last, step = kernel[-1], dilation[-1]
    total = images.shape[2] - (last - 1) * step
    folded = np.empty((batch, channels, last, total), dtype=padded.dtype)

    def copy(task, _):
        b, v = task
        folded[b, :, v] = images[b, :, v * step:v * step + total]

    parallel_for([(b, v) for b in range(batch) for v in range(last)], copy,
                 flops=8.0 * folded.size)
    folded = folded.reshape(batch, channels * last, total)
    wide_grad = pad_nd(output_grad, (0,) * ndim, (out_shape[0], *spatial[1:])).reshape(
        batch, filters, -1)
    taps = _tap_shifts(kernel[:-1], dilation[:-1], steps[:-1])
    pieces = -(-2 * worker_count() // batch)
    block = _block_size(length, (channels * last + filters) * padded.itemsize, pieces)

    def new_state():
        return {"grad": np.empty((*kernel[:-1], filters, channels * last), dtype=padded.dtype),
                "beta": 0.0}

    def accumulate(task, state):
        b, (start, stop) = task
        for tap, shift in taps:
            gemm(wide_grad[b, :, start:stop], folded[b, :, shift + start:shift + stop],
                 state["grad"][tap], beta=state["beta"], trans_b=True)
        state["beta"] = 1.0

    states = parallel_for([(b, span) for b in range(batch) for span in spans(length, block)],
                          accumulate, new_state,
                          flops=2.0 * batch * length * filters * channels * math.prod(kernel))
    grad = states[0]["grad"]
    for state in states[1:]:
        grad += state["grad"]
    return np.moveaxis(grad.reshape(*kernel[:-1], filters, channels, last), -1, ndim - 1)


def _phase_kernel(w, stride, flip):
    """Kernel ``(F, C * sh * sw, ceil(kh / sh), ceil(kw / sw))`` of the phase images.

    A stride-``s`` correlation equals a stride-1 correlation of the space-to-depth input
    (:func:`_space_to_depth`) with this kernel: tap ``u = m * s + a`` of the original
    becomes tap ``m`` of phase channel ``(c, a)``. Taps past the original kernel are zero.
    """
    filters, channels, kernel_h, kernel_w = w.shape
    stride_h, stride_w = stride
    taps_h, taps_w = -(-kernel_h // stride_h), -(-kernel_w // stride_w)
    padded = np.zeros((filters, channels, taps_h * stride_h, taps_w * stride_w), dtype=w.dtype)
    padded[:, :, :kernel_h, :kernel_w] = w[:, :, ::-1, ::-1] if flip else w
    split = padded.reshape(filters, channels, taps_h, stride_h, taps_w, stride_w)
    return np.ascontiguousarray(split.transpose(0, 1, 3, 5, 2, 4)).reshape(
        filters, channels * stride_h * stride_w, taps_h, taps_w)


def _space_to_depth(x, stride):
    """``(B, C, Hq * sh, Wq * sw)`` to ``(B, C * sh * sw, Hq, Wq)``, phase ``(a, b)`` minor."""
    batch, channels, height, width = x.shape
    stride_h, stride_w = stride
    out_h, out_w = height // stride_h, width // stride_w
    split = x.reshape(batch, channels, out_h, stride_h, out_w, stride_w)
    out = np.empty((batch, channels, stride_h, stride_w, out_h, out_w), dtype=x.dtype)
    _parallel_assign(out, split.transpose(0, 1, 3, 5, 2, 4))
    return out.reshape(batch, channels * stride_h * stride_w, out_h, out_w)


def _depth_to_space(x, stride):
    """Inverse of :func:`_space_to_depth` (accepts views)."""
    batch, phase_channels, height, width = x.shape
    stride_h, stride_w = stride
    channels = phase_channels // (stride_h * stride_w)
    split = x.reshape(batch, channels, stride_h, stride_w, height, width)
    out = np.empty((batch, channels, height, stride_h, width, stride_w), dtype=x.dtype)
    _parallel_assign(out, split.transpose(0, 1, 4, 2, 5, 3))
    return out.reshape(batch, channels, height * stride_h, width * stride_w)


def _phase_images(x, pad, stride, taps, out_hw):
    """Pad ``x`` to ``(out + taps - 1) * stride`` per axis and split it into phases."""
    total = [(n + t - 1) * s for n, t, s in zip(out_hw, taps, stride)]
    return _space_to_depth(pad_images(x, pad[0], pad[1], *total), stride)


def _window(tap, dilation, stride, out_shape):
    """Slices of the padded input that tap ``tap`` reads for every output pixel."""
    return tuple(slice(t * d, t * d + s * (n - 1) + 1, s)
                 for t, d, s, n in zip(tap, dilation, stride, out_shape))


def _unfold(padded, kernel, stride, out_shape, flip, dilation=None):
    """Patch matrix ``(C * prod(k), B * prod(out))`` of padded images.

    Row ``(c, u, v)`` holds the input shifted by tap ``(u, v)`` -- by ``(kh-1-u, kw-1-v)``
    when ``flip`` -- so the rows line up with an unflipped ``(F, C, kh, kw)`` kernel.
    """
    batch, channels = padded.shape[:2]
    ndim = len(kernel)
    dilation = _ones(ndim) if dilation is None else dilation
    if all(k == 1 for k in kernel) and all(s == 1 for s in stride) and batch == 1:
        return padded[(0, slice(None)) + tuple(slice(0, n) for n in out_shape)].reshape(
            channels, -1)
    cols = np.empty((channels, *kernel, batch, *out_shape), dtype=padded.dtype)
    order = (1, 0) + tuple(range(2, 2 + ndim))

    def copy_tap(tap, _):
        source = tuple(k - 1 - t for k, t in zip(kernel, tap)) if flip else tap
        window = padded[(slice(None), slice(None)) + _window(source, dilation, stride,
                                                             out_shape)]
        cols[(slice(None),) + tap] = window.transpose(order)

    parallel_for(list(itertools.product(*(range(k) for k in kernel))), copy_tap,
                 flops=8.0 * cols.size)
    return cols.reshape(channels * math.prod(kernel), batch * math.prod(out_shape))


def _channels_first(y):
    """``(B, F, ...)`` as the matrix ``(F, B * ...)`` (a copy unless B == 1)."""
    batch, channels = y.shape[:2]
    if batch == 1:
        return np.ascontiguousarray(y[0]).reshape(channels, -1)
    order = (1, 0) + tuple(range(2, y.ndim))
    return np.ascontiguousarray(y.transpose(order)).reshape(channels, -1)


def _batch_first(matrix, batch, out_shape):
    """Inverse of :func:`_channels_first` (a view)."""
    order = (1, 0) + tuple(range(2, 2 + len(out_shape)))
    return matrix.reshape(-1, batch, *out_shape).transpose(order)


def _row_blocks(rows):
    """Row ranges for splitting a GEMM's output among the workers: one each, since every
    piece packs the whole other operand again."""
    return spans(rows, max(16, -(-rows // worker_count())))


def _gemm_by_rows(a, b, out, trans_a=False, trans_b=False):
    """``out = op(a) @ op(b)`` with the rows of ``out`` shared out to the workers."""

    def multiply(span, _):
        start, stop = span
        part = a[:, start:stop] if trans_a else a[start:stop]
        gemm(part, b, out[start:stop], trans_a=trans_a, trans_b=trans_b)

    inner = a.shape[0] if trans_a else a.shape[1]
    parallel_for(_row_blocks(out.shape[0]), multiply, flops=2.0 * out.size * inner)


def _strategy(stride, kernel, filters, batch, out_shape, dilation=None):
    """``'shifted'``, ``'phases'`` or ``'unfold'`` (see the module docstring).

    ``filters`` is the forward convolution's filter count and ``out_shape`` its output
    size (for a transposed convolution: the channels and size of the output gradient). The
    shifted views copy the ``F * C * prod(k)`` weights, unfolding copies ``C * prod(k)``
    values per output pixel.
    """
    ndim = len(kernel)
    dilation = _ones(ndim) if dilation is None else tuple(dilation)
    pixels = batch * math.prod(out_shape)
    if all(s == 1 for s in stride):
        if math.prod(kernel) > 1 and pixels >= _UNFOLD_PIXELS_PER_FILTER * filters:
            return "shifted"
        return "unfold"
    if ndim == 2 and dilation == (1, 1) and all(k >= s for k, s in zip(kernel, stride)):
        return "phases"
    return "unfold"


def _output_length(length, kernel, stride, pad, dilation=1):
    return (length + 2 * pad - (kernel - 1) * dilation - 1) // stride + 1


def output_shape(input_spatial, kernel, pad, stride, dilation):
    """Spatial output size of a convolution (Theano's formula, ints)."""
    return tuple(_output_length(n, k, s, p, d)
                 for n, k, p, s, d in zip(input_spatial, kernel, pad, stride, dilation))


_AXIS_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def check_forward_shapes(input_shape, filter_shape, pad, dilation=None, groups=1, name=None):
    """Raise ``ValueError`` (naming both shapes) for channel or size mismatches."""
    ndim = len(input_shape) - 2
    name = name or f"conv{ndim}d"
    dilation = _ones(ndim) if dilation is None else dilation
    shapes = (f"input shape {tuple(input_shape)}, filter shape {tuple(filter_shape)}")
    if input_shape[1] % groups or filter_shape[0] % groups:
        raise ValueError(
            f"{name}: num_groups={groups} must divide the {input_shape[1]} input channels and "
            f"the {filter_shape[0]} filters ({shapes})")
    if input_shape[1] != filter_shape[1] * groups:
        if groups == 1:
            raise ValueError(
                f"{name}: the input has {input_shape[1]} channels but the filters expect "
                f"{filter_shape[1]} ({shapes})")
        raise ValueError(
            f"{name}: the input has {input_shape[1]} channels, {input_shape[1] // groups} per "
            f"group of num_groups={groups}, but the filters expect {filter_shape[1]} per "
            f"group ({shapes})")
    for axis, axis_name in enumerate(_AXIS_NAMES[ndim]):
        padded = input_shape[2 + axis] + 2 * pad[axis]
        extent = (filter_shape[2 + axis] - 1) * dilation[axis] + 1
        if padded < extent:
            dilated = f" (dilated {dilation[axis]}: {extent})" if dilation[axis] > 1 else ""
            raise ValueError(
                f"{name}: the filter {axis_name} {filter_shape[2 + axis]}{dilated} exceeds the "
                f"padded input {axis_name} {padded} ({shapes}, padding {tuple(pad)})")


# --- 1-D as one 2-D image, groups as a loop over channel slices -----------------------------


def _rows_as_image(images):
    """A batch of 1-D images ``(B, C, L)`` as one 2-D image ``(1, C, B, L)`` (a view)."""
    return images.transpose(1, 0, 2)[np.newaxis]


def _image_as_rows(image):
    """Inverse of :func:`_rows_as_image` (a view)."""
    return image[0].transpose(1, 0, 2)


def _kernel_as_row(w):
    """A 1-D kernel ``(F, C, k)`` as the 2-D kernel ``(F, C, 1, k)`` (a view)."""
    return w[:, :, np.newaxis]


def _is_row_convolution(x_shape, kernel, pad):
    """Whether a 2-D convolution is a 1-D one on rows: images one pixel high, kernels one
    tap high, no padding of the height."""
    return len(kernel) == 2 and x_shape[2] == 1 and kernel[0] == 1 and pad[0] == 0


def _run_groups(groups, out, compute, work):
    """Fill ``out`` group by group: ``compute(g)`` returns group ``g``'s block of ``out``
    (axis 1 for images, axis 0 for kernels is handled by the caller's ``compute``)."""
    if groups >= 2 * worker_count() and worker_count() > 1:
        parallel_for(range(groups), lambda g, _: compute(g), flops=work)
    else:
        for g in range(groups):
            compute(g)
    return out


# Groups of at most this many channels and filters run as one grouped shifted-view
# correlation (one padded copy, one output buffer, all groups' GEMMs in one task list)
# instead of a loop of ungrouped convolutions.
_GROUPED_MAX = 16


def _grouped_shifted(kernel, stride, channels, filters, batch, out_shape, dilation):
    """Whether a grouped stride-1 convolution with ``channels`` and ``filters`` per group
    takes the grouped shifted-view path."""
    return (max(channels, filters) <= _GROUPED_MAX
            and _strategy(stride, kernel, filters, batch, out_shape, dilation) == "shifted")


def _group_major(w, groups):
    """Tap weights ``(*k, C, F / groups)`` of the grouped transposed correlation: rows
    ``g * C/G ...`` hold group ``g``'s transposed ``(C/G, F/G)`` matrices."""
    filters, per_group = w.shape[:2]
    kernel = w.shape[2:]
    ndim = len(kernel)
    split = w.reshape(groups, filters // groups, per_group, *kernel)
    order = tuple(range(3, 3 + ndim)) + (0, 2, 1)
    return np.ascontiguousarray(split.transpose(order)).reshape(
        *kernel, groups * per_group, filters // groups)


# --- compiled direct kernels (:mod:`._conv_c`) ----------------------------------------------

# Rows narrower than this many outputs stay on the BLAS kernels (the compiled kernels tile
# rows in vectors; 1-D convolutions run as 2-D ones on rows of width 1).
_C_MIN_WIDTH = 8
# The compiled weight gradient is used up to this many channels and filters per group;
# above, the tap GEMMs are large enough for BLAS (256-channel dilated: BLAS as fast).
_C_WEIGHT_GRAD_MAX = 64


def _use_c_kernels(x_dtype, kernel, stride, dilation, groups, filters, batch, out_shape):
    """Whether a stride-1 convolution runs on the compiled direct kernels: 3-D, dilated or
    grouped ones with rows of at least :data:`_C_MIN_WIDTH` outputs that would take the
    shifted views (the undilated ungrouped 2-D ones keep their BLAS and Winograd kernels)."""
    if x_dtype not in (np.float32, np.float64) or any(s != 1 for s in stride):
        return False
    if not (len(kernel) == 3 or any(d > 1 for d in dilation) or groups > 1):
        return False
    if out_shape[-1] < _C_MIN_WIDTH or 0 in out_shape or batch == 0:
        return False
    if _strategy(stride, kernel, filters // groups, batch, out_shape, dilation) != "shifted":
        return False
    return _conv_c.library() is not None


def conv_forward(x, w, pad, stride, flip, dilation=None, groups=1):
    """Convolution of ``x`` (B, C, *S) with ``w`` (F, C / groups, *k), 1 to 3 spatial axes.

    ``pad``, ``stride`` and ``dilation`` have one int per spatial axis. Returns
    (B, F, *out), possibly a non-contiguous view.
    """
    ndim = x.ndim - 2
    dilation = _ones(ndim) if dilation is None else tuple(dilation)
    check_forward_shapes(x.shape, w.shape, pad, dilation, groups)
    if ndim == 1:
        return _image_as_rows(conv_forward(_rows_as_image(x), _kernel_as_row(w), (0, pad[0]),
                                           (1, stride[0]), flip, (1, dilation[0]), groups))
    if x.shape[0] > 1 and _is_row_convolution(x.shape, w.shape[2:], pad):
        return conv_forward(x[:, :, 0], w[:, :, 0], pad[1:], stride[1:], flip, dilation[1:],
                            groups)[:, :, np.newaxis]
    out_shape = output_shape(x.shape[2:], w.shape[2:], pad, stride, dilation)
    if 0 not in x.shape + w.shape and _use_c_kernels(
            x.dtype, w.shape[2:], stride, dilation, groups, w.shape[0], x.shape[0], out_shape):
        return _conv_c.conv_correlation(x, w, tuple(pad), out_shape, flip, dilation, groups)
    if groups == 1:
        return _forward(x, w, tuple(pad), tuple(stride), flip, dilation)
    cg, fg = x.shape[1] // groups, w.shape[0] // groups
    if 0 not in x.shape + w.shape + out_shape and _grouped_shifted(
            w.shape[2:], stride, cg, fg, x.shape[0], out_shape, dilation):
        tap_weights = np.ascontiguousarray(w.transpose(tuple(range(2, 2 + ndim)) + (0, 1)))
        return _shifted_view_correlation(_contiguous_images(x, pad), tap_weights, out_shape,
                                         flip, dilation, groups)
    out = np.empty((x.shape[0], w.shape[0], *out_shape), dtype=x.dtype)

    def compute(g):
        out[:, g * fg:(g + 1) * fg] = _forward(x[:, g * cg:(g + 1) * cg],
                                               w[g * fg:(g + 1) * fg], tuple(pad),
                                               tuple(stride), flip, dilation)

    return _run_groups(groups, out, compute, 2.0 * out.size * w[0].size)


def _forward(x, w, pad, stride, flip, dilation):
    batch, filters = x.shape[0], w.shape[0]
    kernel = w.shape[2:]
    ndim = len(kernel)
    out_shape = output_shape(x.shape[2:], kernel, pad, stride, dilation)
    if 0 in (batch, filters, x.shape[1]) + out_shape:
        return np.zeros((batch, filters) + out_shape, dtype=x.dtype)
    strategy = _strategy(stride, kernel, filters, batch, out_shape, dilation)
    order = tuple(range(2, 2 + ndim)) + (0, 1)
    if strategy == "phases":
        phase_w = _phase_kernel(w, stride, flip)
        phases = _phase_images(x, pad, stride, phase_w.shape[2:], out_shape)
        tap_weights = np.ascontiguousarray(phase_w.transpose(order))
        return _shifted_view_correlation(phases, tap_weights, out_shape, flip=False)
    if strategy == "shifted":
        tap_weights = np.ascontiguousarray(w.transpose(order))
        if ndim == 2 and dilation == (1, 1) and _winograd.worthwhile(
                kernel, x.shape[1], filters, batch, out_shape):
            padded = pad_images(x, pad[0], pad[1], *_winograd.padded_size(*out_shape))
            return _winograd.winograd_correlation(padded, tap_weights, *out_shape, flip)
        if _channels_last_pays(ndim, dilation, x.shape[1], filters):
            taps_last = np.ascontiguousarray(w.transpose(order[:-2] + (1, 0)))
            return _channels_last_correlation(_pad_channels_last(x, pad), taps_last, out_shape,
                                              flip, dilation)
        return _shifted_view_correlation(_contiguous_images(x, pad), tap_weights, out_shape,
                                         flip=flip, dilation=dilation)
    padded = _contiguous_images(x, pad)
    cols = _unfold(padded, kernel, stride, out_shape, flip, dilation)
    out = np.empty((filters, cols.shape[1]), dtype=x.dtype)
    _gemm_by_rows(np.ascontiguousarray(w).reshape(filters, -1), cols, out)
    return _batch_first(out, batch, out_shape)


def conv2d_forward(x, w, pad, stride, flip):
    """Convolution of ``x`` (B, C, H, W) with ``w`` (F, C, kh, kw).

    ``pad`` and ``stride`` are integer pairs. Returns (B, F, Hout, Wout), possibly a
    non-contiguous view.
    """
    return conv_forward(x, w, pad, stride, flip)


def _check_output_grad(name, gy, w, input_spatial, pad, stride, dilation, groups):
    batch, filters = gy.shape[:2]
    if filters != w.shape[0]:
        raise ValueError(
            f"{name}: the output gradient has {filters} channels but the filters have "
            f"{w.shape[0]} (output gradient shape {tuple(gy.shape)}, filter shape "
            f"{tuple(w.shape)})")
    input_shape = (batch, w.shape[1] * groups, *input_spatial)
    check_forward_shapes(input_shape, w.shape, pad, dilation, groups, name)
    expected = output_shape(input_spatial, w.shape[2:], pad, stride, dilation)
    if expected != tuple(gy.shape[2:]):
        raise ValueError(
            f"{name}: an input of size {tuple(input_spatial)} gives outputs of size "
            f"{expected}, not {tuple(gy.shape[2:])} (output gradient shape {tuple(gy.shape)}, "
            f"filter shape {tuple(w.shape)}, padding {tuple(pad)}, stride {tuple(stride)})")


def conv_backward_input(gy, w, input_spatial, pad, stride, flip, dilation=None, groups=1):
    """Transposed convolution: the gradient of :func:`conv_forward` w.r.t. its input.

    Parameters
    ----------
    gy : ndarray, (B, F, *out)
    w : ndarray, (F, C / groups, *k)
        The forward convolution's kernel.
    input_spatial : tuple of int
        Size of the forward input; any size the forward maps to ``out``.
    pad, stride, dilation : tuple of int
    flip : bool
    groups : int

    Returns
    -------
    ndarray, (B, C, *input_spatial), possibly a non-contiguous view
    """
    ndim = gy.ndim - 2
    dilation = _ones(ndim) if dilation is None else tuple(dilation)
    input_spatial = tuple(int(n) for n in input_spatial)
    _check_output_grad(f"conv{ndim}d_grad_wrt_inputs", gy, w, input_spatial, pad, stride, dilation,
                       groups)
    if ndim == 1:
        return _image_as_rows(conv_backward_input(
            _rows_as_image(gy), _kernel_as_row(w), (gy.shape[0], input_spatial[0]),
            (0, pad[0]), (1, stride[0]), flip, (1, dilation[0]), groups))
    if gy.shape[0] > 1 and _is_row_convolution((None, None, *input_spatial), w.shape[2:], pad):
        return conv_backward_input(gy[:, :, 0], w[:, :, 0], input_spatial[1:], pad[1:],
                                   stride[1:], flip, dilation[1:], groups)[:, :, np.newaxis]
    if 0 not in gy.shape + w.shape + input_spatial and _use_c_kernels(
            gy.dtype, w.shape[2:], stride, dilation, groups, w.shape[1] * groups, gy.shape[0],
            input_spatial):
        pads = tuple((k - 1) * d - p for k, d, p in zip(w.shape[2:], dilation, pad))
        return _conv_c.conv_correlation(gy, w, pads, input_spatial, not flip, dilation, groups,
                                        transposed=True)
    if groups == 1:
        return _backward_input(gy, w, input_spatial, tuple(pad), tuple(stride), flip, dilation)
    batch = gy.shape[0]
    cg, fg = w.shape[1], w.shape[0] // groups
    if 0 not in gy.shape + w.shape + input_spatial and _grouped_shifted(
            w.shape[2:], stride, cg, fg, batch, gy.shape[2:], dilation):
        pads = tuple((k - 1) * d - p for k, d, p in zip(w.shape[2:], dilation, pad))
        return _shifted_view_correlation(pad_nd(gy, pads), _group_major(w, groups),
                                         input_spatial, not flip, dilation, groups)
    out = np.empty((batch, cg * groups, *input_spatial), dtype=gy.dtype)

    def compute(g):
        out[:, g * cg:(g + 1) * cg] = _backward_input(
            gy[:, g * fg:(g + 1) * fg], w[g * fg:(g + 1) * fg], input_spatial, tuple(pad),
            tuple(stride), flip, dilation)

    return _run_groups(groups, out, compute, 2.0 * gy.size * w[0].size)


def _backward_input(gy, w, input_spatial, pad, stride, flip, dilation):
    batch, filters = gy.shape[:2]
    out_shape = gy.shape[2:]
    channels, kernel = w.shape[1], w.shape[2:]
    ndim = len(kernel)
    if 0 in (batch, channels) + input_spatial:
        return np.zeros((batch, channels) + input_spatial, dtype=gy.dtype)
    if filters == 0 or 0 in out_shape:
        return np.zeros((batch, channels) + input_spatial, dtype=gy.dtype)
    extent = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    strategy = _strategy(stride, kernel, filters, batch, out_shape, dilation)
    order = tuple(range(2, 2 + ndim)) + (1, 0)
    if strategy == "shifted":
        # Correlate the (extent - 1 - pad)-padded gradient with the transposed kernel,
        # rotated (rotating is the same as toggling ``flip``).
        tap_weights = np.ascontiguousarray(w.transpose(order))
        pads = tuple(e - 1 - p for e, p in zip(extent, pad))
        if ndim == 2 and dilation == (1, 1) and _winograd.worthwhile(
                kernel, filters, channels, batch, input_spatial):
            padded = pad_images(gy, *pads, *_winograd.padded_size(*input_spatial))
            return _winograd.winograd_correlation(padded, tap_weights, *input_spatial,
                                                  not flip)
        if _channels_last_pays(ndim, dilation, channels, filters):
            taps_last = np.ascontiguousarray(w.transpose(order[:-2] + (0, 1)))
            return _channels_last_correlation(_pad_channels_last(gy, pads), taps_last,
                                              input_spatial, not flip, dilation)
        padded = pad_nd(gy, pads)
        return _shifted_view_correlation(padded, tap_weights, input_spatial, not flip,
                                         dilation)
    if strategy == "phases":
        # The full transposed convolution of every phase at once, then interleaved.
        phase_w = _phase_kernel(w, stride, flip)
        taps_h, taps_w = phase_w.shape[2:]
        padded = pad_images(gy, taps_h - 1, taps_w - 1)
        tap_weights = np.ascontiguousarray(phase_w.transpose(order))
        phases = _shifted_view_correlation(
            padded, tap_weights, (out_shape[0] + taps_h - 1, out_shape[1] + taps_w - 1),
            flip=True)
        full = _depth_to_space(phases, stride)
    else:
        full = _fold(gy, w, stride, flip, dilation)
    if all(p + n <= f for p, n, f in zip(pad, input_spatial, full.shape[2:])):
        return full[(slice(None), slice(None)) + tuple(
            slice(p, p + n) for p, n in zip(pad, input_spatial))]
    return pad_nd(full, tuple(-p for p in pad), input_spatial)


def conv2d_backward_input(gy, w, input_hw, pad, stride, flip):
    """Transposed 2-D convolution: the gradient of :func:`conv2d_forward` w.r.t. its input
    of spatial size ``input_hw``; see :func:`conv_backward_input`."""
    return conv_backward_input(gy, w, input_hw, pad, stride, flip)


def _fold(gy, w, stride, flip, dilation):
    """Full transposed convolution by one GEMM into patches and their scatter-add."""
    batch, filters = gy.shape[:2]
    out_shape = gy.shape[2:]
    channels, kernel = w.shape[1], w.shape[2:]
    ndim = len(kernel)
    cols = np.empty((channels * math.prod(kernel), batch * math.prod(out_shape)),
                    dtype=gy.dtype)
    _gemm_by_rows(np.ascontiguousarray(w).reshape(filters, -1), _channels_first(gy), cols,
                  trans_a=True)
    cols = cols.reshape(channels, *kernel, batch, *out_shape)
    full = np.zeros((batch, channels) + tuple(
        (n - 1) * s + (k - 1) * d + 1
        for n, s, k, d in zip(out_shape, stride, kernel, dilation)), dtype=gy.dtype)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    order = (1, 0) + tuple(range(2, 2 + ndim))

    def scatter(span, _):
        start, stop = span
        for tap in taps:
            source = tuple(k - 1 - t for k, t in zip(kernel, tap)) if flip else tap
            target = (slice(None), slice(start, stop)) + _window(tap, dilation, stride,
                                                                 out_shape)
            full[target] += cols[(slice(start, stop),) + source].transpose(order)

    parallel_for(_row_blocks(channels), scatter, flops=8.0 * cols.size)
    return full


def conv_backward_weights(x, gy, kernel, pad, stride, flip, dilation=None, groups=1):
    """Gradient of :func:`conv_forward` w.r.t. its kernel of spatial size ``kernel``.

    Returns
    -------
    ndarray, (F, C / groups, *kernel), C-contiguous
    """
    ndim = x.ndim - 2
    dilation = _ones(ndim) if dilation is None else tuple(dilation)
    kernel = tuple(int(k) for k in kernel)
    batch, channels = x.shape[:2]
    filters = gy.shape[1]
    name = f"conv{ndim}d_grad_wrt_weights"
    if channels % groups or filters % groups:
        raise ValueError(
            f"{name}: num_groups={groups} must divide the {channels} input channels and the "
            f"{filters} filters (input shape {tuple(x.shape)}, output gradient shape "
            f"{tuple(gy.shape)})")
    filter_shape = (filters, channels // groups, *kernel)
    check_forward_shapes(x.shape, filter_shape, pad, dilation, groups, name)
    expected = (batch, filters) + output_shape(x.shape[2:], kernel, pad, stride, dilation)
    if tuple(gy.shape) != expected:
        raise ValueError(
            f"{name}: an input of shape {tuple(x.shape)} and filters of shape {filter_shape} "
            f"give outputs of shape {expected}, but the output gradient has shape "
            f"{tuple(gy.shape)} (padding {tuple(pad)}, stride {tuple(stride)})")
    if ndim == 1:
        return conv_backward_weights(_rows_as_image(x), _rows_as_image(gy), (1, kernel[0]),
                                     (0, pad[0]), (1, stride[0]), flip, (1, dilation[0]),
                                     groups)[:, :, 0]
    if batch > 1 and _is_row_convolution(x.shape, kernel, pad):
        return conv_backward_weights(x[:, :, 0], gy[:, :, 0], kernel[1:], pad[1:], stride[1:],
                                     flip, dilation[1:], groups)[:, :, np.newaxis]
    cg, fg = channels // groups, filters // groups
    if (0 not in x.shape + gy.shape and max(cg, fg) <= _C_WEIGHT_GRAD_MAX
            and _use_c_kernels(x.dtype, kernel, stride, dilation, groups, filters, batch,
                               gy.shape[2:])):
        grad = _conv_c.conv_weight_grad(x, gy, kernel, tuple(pad), dilation, groups)
        if flip:
            grad = grad[(slice(None), slice(None)) + (slice(None, None, -1),) * ndim]
        return np.ascontiguousarray(grad)
    if groups == 1:
        return _backward_weights(x, gy, kernel, tuple(pad), tuple(stride), flip, dilation)
    if 0 not in x.shape + gy.shape and _grouped_shifted(kernel, stride, cg, fg, batch,
                                                        gy.shape[2:], dilation):
        tap_grads = _shifted_view_weight_grad(_contiguous_images(x, pad), gy, kernel, dilation,
                                              groups)
        grad = tap_grads.transpose((ndim, ndim + 1) + tuple(range(ndim)))
        if flip:
            grad = grad[(slice(None), slice(None)) + (slice(None, None, -1),) * ndim]
        return np.ascontiguousarray(grad)
    out = np.empty(filter_shape, dtype=x.dtype)

    def compute(g):
        out[g * fg:(g + 1) * fg] = _backward_weights(
            x[:, g * cg:(g + 1) * cg], gy[:, g * fg:(g + 1) * fg], kernel, tuple(pad),
            tuple(stride), flip, dilation)

    return _run_groups(groups, out, compute, 2.0 * gy.size * out[0].size)


def _backward_weights(x, gy, kernel, pad, stride, flip, dilation):
    batch, channels = x.shape[:2]
    filters, out_shape = gy.shape[1], gy.shape[2:]
    ndim = len(kernel)
    filter_shape = (filters, channels, *kernel)
    if 0 in (batch, filters, channels) + out_shape:
        return np.zeros(filter_shape, dtype=x.dtype)
    strategy = _strategy(stride, kernel, filters, batch, out_shape, dilation)
    if strategy == "unfold":
        cols = _unfold(_contiguous_images(x, pad), kernel, stride, out_shape, flip, dilation)
        grad = np.empty((filters, cols.shape[0]), dtype=x.dtype)
        _gemm_by_rows(_channels_first(gy), cols, grad, trans_b=True)
        return grad.reshape(filter_shape)
    order = (ndim, ndim + 1) + tuple(range(ndim))
    if strategy == "shifted":
        if ndim == 2 and dilation == (1, 1) and _winograd.worthwhile(
                kernel, channels, filters, batch, out_shape):
            padded = pad_images(x, pad[0], pad[1], *_winograd.padded_size(*out_shape))
            tap_grads = _winograd.winograd_weight_grad(padded, gy)
        elif _channels_last_pays(ndim, dilation, channels, filters) and kernel[-1] > 1:
            tap_grads = _folded_weight_grad(_contiguous_images(x, pad), gy, kernel, dilation)
        else:
            tap_grads = _shifted_view_weight_grad(_contiguous_images(x, pad), gy, kernel,
                                                  dilation)
        grad = tap_grads.transpose(order)
    else:
        kernel_h, kernel_w = kernel
        taps = (-(-kernel_h // stride[0]), -(-kernel_w // stride[1]))
        phases = _phase_images(x, pad, stride, taps, out_shape)
        phase_grads = _shifted_view_weight_grad(phases, gy, taps)
        split = phase_grads.reshape(*taps, filters, channels, *stride)
        grad = split.transpose(2, 3, 0, 4, 1, 5).reshape(
            filters, channels, taps[0] * stride[0], taps[1] * stride[1])
        grad = grad[:, :, :kernel_h, :kernel_w]
    if flip:
        grad = grad[(slice(None), slice(None)) + (slice(None, None, -1),) * ndim]
    return np.ascontiguousarray(grad)


def conv2d_backward_weights(x, gy, kernel_hw, pad, stride, flip):
    """Gradient of :func:`conv2d_forward` w.r.t. its kernel of spatial size ``kernel_hw``;
    see :func:`conv_backward_weights`."""
    return conv_backward_weights(x, gy, kernel_hw, pad, stride, flip)
