"""CPU kernels of the convolution ops: BLAS GEMMs on views of zero-padded images.

Three strategies, picked per call by :func:`_strategy`, and a faster variant of the first:

*Shifted views* (stride 1, images that are large next to the filter count). On a
zero-padded image flattened to ``(C, Hp * Wp)``, output pixel ``(i, j)`` of kernel tap
``(u, v)`` reads column ``(i + u) * Wp + (j + v) = i * Wp + j + (u * Wp + v)``. So with the
output laid out on the padded width (column ``i * Wp + j``), each tap is one GEMM of its
``(F, C)`` weight slice with the *view* ``x_flat[:, u * Wp + v:][:, :length]``; the
``kh * kw`` GEMMs accumulate into one output and the ``Wp - Wout`` wrapped columns of each
row are skipped at the end. No patch matrix is built. The columns are cut into blocks that
stay in cache across the taps and are shared out to the worker threads.

*Phases* (strides ``s`` no larger than the kernel). A stride-``s`` convolution is a stride-1
convolution of the ``s * s`` phase images (space-to-depth, ``C * s * s`` channels) with
sub-kernels of ``ceil(k / s)`` taps; a strided transposed convolution is the stride-1
transposed convolution of those, interleaved back (depth-to-space). Both then run on
shifted views, without scatter-adds.

*Unfolding* (small images with many filters, such as FCN's fc6, 1x1 kernels, and strides
larger than the kernel). The patches are copied into a ``(C * kh * kw, B * Hout * Wout)``
matrix and a few large GEMMs read the weights once.

*Winograd* (stride-1 3x3 kernels with many channels, :mod:`._winograd`). The shifted-view
case of those layers, their input and their weight gradients, computed by Winograd's
F(2x2, 3x3) in 2.25 times fewer products; :func:`._winograd.worthwhile` decides,
``set_winograd(False)`` turns it off. Float32 results then differ from the direct sum by
about twice its rounding error (a documented difference from Theano's ``CorrMM``,
``docs/faithfulness.md``).

Kernels work on NumPy arrays of one dtype; ``flip=True`` means a true convolution (kernel
rotated by 180 degrees), ``flip=False`` a cross-correlation.
"""

import numpy as np

from . import _winograd
from ._blas import gemm
from ._threads import parallel_for, spans, worker_count

__all__ = [
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weights",
    "check_forward_shapes",
    "pad_images",
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


def pad_images(x, pad_h, pad_w, total_h=None, total_w=None):
    """Zero-pad (or, for negative pads, crop) the two spatial axes of ``x``.

    ``x`` goes to rows ``pad_h``..., columns ``pad_w``... of a new C-contiguous array of
    spatial size ``(total_h, total_w)`` (default: symmetric padding).
    """
    batch, channels, height, width = x.shape
    total_h = height + 2 * pad_h if total_h is None else total_h
    total_w = width + 2 * pad_w if total_w is None else total_w
    padded = np.zeros((batch, channels, total_h, total_w), dtype=x.dtype)
    src_h0, dst_h0 = max(0, -pad_h), max(0, pad_h)
    src_w0, dst_w0 = max(0, -pad_w), max(0, pad_w)
    rows = min(height - src_h0, total_h - dst_h0)
    cols = min(width - src_w0, total_w - dst_w0)
    if rows > 0 and cols > 0:
        _parallel_assign(padded[:, :, dst_h0:dst_h0 + rows, dst_w0:dst_w0 + cols],
                         x[:, :, src_h0:src_h0 + rows, src_w0:src_w0 + cols])
    return padded


def _contiguous_images(x, pad):
    """``x`` padded by ``pad``; ``x`` itself when no padding or copy is needed."""
    if pad == (0, 0) and x.flags.c_contiguous:
        return x
    return pad_images(x, *pad)


def _shifted_view_correlation(padded, tap_weights, out_h, out_w, flip):
    """Stride-1 correlation of padded images with per-tap weight matrices.

    Parameters
    ----------
    padded : ndarray, (B, C, Hp, Wp), C-contiguous
    tap_weights : ndarray, (kh, kw, F, C), C-contiguous
        ``tap_weights[u, v]`` multiplies the input shifted by ``(u, v)``, or by
        ``(kh-1-u, kw-1-v)`` when ``flip``.
    out_h, out_w : int
        ``Hp - kh + 1`` and ``Wp - kw + 1``.

    Returns
    -------
    ndarray, (B, F, out_h, out_w)
        A view that skips the wrapped columns of a ``(B, F, out_h, Wp)`` buffer.
    """
    batch, channels, padded_h, padded_w = padded.shape
    kernel_h, kernel_w, filters, _ = tap_weights.shape
    length = (out_h - 1) * padded_w + out_w
    images = padded.reshape(batch, channels, padded_h * padded_w)
    out = np.empty((batch, filters, out_h * padded_w), dtype=padded.dtype)
    taps = [(u, v) for u in range(kernel_h) for v in range(kernel_w)]
    pieces = -(-2 * worker_count() // batch)
    block = _block_size(length, filters * padded.itemsize, pieces)

    def correlate(task, _):
        b, (start, stop) = task
        for index, (u, v) in enumerate(taps):
            weights = tap_weights[kernel_h - 1 - u, kernel_w - 1 - v] if flip else (
                tap_weights[u, v])
            shift = u * padded_w + v
            gemm(weights, images[b, :, shift + start:shift + stop], out[b, :, start:stop],
                 beta=0.0 if index == 0 else 1.0)

    parallel_for([(b, span) for b in range(batch) for span in spans(length, block)], correlate,
                 flops=2.0 * batch * length * filters * channels * len(taps))
    return out.reshape(batch, filters, out_h, padded_w)[:, :, :, :out_w]


def _shifted_view_weight_grad(padded, output_grad, kernel_h, kernel_w):
    """Kernel gradient ``(kh, kw, F, C)`` of a stride-1 correlation of padded images."""
    batch, channels, padded_h, padded_w = padded.shape
    filters, out_h, out_w = output_grad.shape[1:]
    length = (out_h - 1) * padded_w + out_w
    images = padded.reshape(batch, channels, padded_h * padded_w)
    # The output gradient laid out on the padded width: its zero columns cancel the
    # products of wrapped-around input columns.
    wide_grad = pad_images(output_grad, 0, 0, out_h, padded_w).reshape(batch, filters, -1)
    taps = [(u, v) for u in range(kernel_h) for v in range(kernel_w)]
    pieces = -(-2 * worker_count() // batch)
    block = _block_size(length, (channels + filters) * padded.itemsize, pieces)

    def new_state():
        return {"grad": np.empty((kernel_h, kernel_w, filters, channels), dtype=padded.dtype),
                "beta": 0.0}

    def accumulate(task, state):
        b, (start, stop) = task
        for u, v in taps:
            shift = u * padded_w + v
            gemm(wide_grad[b, :, start:stop], images[b, :, shift + start:shift + stop],
                 state["grad"][u, v], beta=state["beta"], trans_b=True)
        state["beta"] = 1.0

    states = parallel_for([(b, span) for b in range(batch) for span in spans(length, block)],
                          accumulate, new_state,
                          flops=2.0 * batch * length * filters * channels * len(taps))
    grad = states[0]["grad"]
    for state in states[1:]:
        grad += state["grad"]
    return grad


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


def _unfold(padded, kernel_h, kernel_w, stride, out_h, out_w, flip):
    """Patch matrix ``(C * kh * kw, B * out_h * out_w)`` of padded images.

    Row ``(c, u, v)`` holds the input shifted by tap ``(u, v)`` -- by ``(kh-1-u, kw-1-v)``
    when ``flip`` -- so the rows line up with an unflipped ``(F, C, kh, kw)`` kernel.
    """
    batch, channels = padded.shape[:2]
    stride_h, stride_w = stride
    if kernel_h == kernel_w == 1 and stride == (1, 1) and batch == 1:
        return padded[0, :, :out_h, :out_w].reshape(channels, out_h * out_w)
    cols = np.empty((channels, kernel_h, kernel_w, batch, out_h, out_w), dtype=padded.dtype)

    def copy_tap(tap, _):
        u, v = tap
        su, sv = (kernel_h - 1 - u, kernel_w - 1 - v) if flip else (u, v)
        window = padded[:, :, su:su + stride_h * (out_h - 1) + 1:stride_h,
                        sv:sv + stride_w * (out_w - 1) + 1:stride_w]
        cols[:, u, v] = window.transpose(1, 0, 2, 3)

    parallel_for([(u, v) for u in range(kernel_h) for v in range(kernel_w)], copy_tap,
                 flops=8.0 * cols.size)
    return cols.reshape(channels * kernel_h * kernel_w, batch * out_h * out_w)


def _channels_first(y):
    """``(B, F, H, W)`` as the matrix ``(F, B * H * W)`` (a copy unless B == 1)."""
    batch, channels = y.shape[:2]
    if batch == 1:
        return np.ascontiguousarray(y[0]).reshape(channels, -1)
    return np.ascontiguousarray(y.transpose(1, 0, 2, 3)).reshape(channels, -1)


def _batch_first(matrix, batch, out_h, out_w):
    """Inverse of :func:`_channels_first` (a view)."""
    return matrix.reshape(-1, batch, out_h, out_w).transpose(1, 0, 2, 3)


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


def _strategy(stride, kernel_hw, filters, batch, out_hw):
    """``'shifted'``, ``'phases'`` or ``'unfold'`` (see the module docstring).

    ``filters`` is the forward convolution's filter count and ``out_hw`` its output size
    (for a transposed convolution: the channels and size of the output gradient). The
    shifted views copy the ``F * C * k * k`` weights, unfolding copies ``C * k * k`` values
    per output pixel.
    """
    kernel_h, kernel_w = kernel_hw
    pixels = batch * out_hw[0] * out_hw[1]
    if stride == (1, 1):
        if kernel_h * kernel_w > 1 and pixels >= _UNFOLD_PIXELS_PER_FILTER * filters:
            return "shifted"
        return "unfold"
    if kernel_h >= stride[0] and kernel_w >= stride[1]:
        return "phases"
    return "unfold"


def _output_length(length, kernel, stride, pad):
    return (length + 2 * pad - kernel) // stride + 1


def check_forward_shapes(input_shape, filter_shape, pad):
    """Raise ``ValueError`` (naming both shapes) for channel or size mismatches."""
    if input_shape[1] != filter_shape[1]:
        raise ValueError(
            f"conv2d: the input has {input_shape[1]} channels but the filters expect "
            f"{filter_shape[1]} (input shape {tuple(input_shape)}, filter shape "
            f"{tuple(filter_shape)})"
        )
    for axis, name in ((0, "height"), (1, "width")):
        padded = input_shape[2 + axis] + 2 * pad[axis]
        if padded < filter_shape[2 + axis]:
            raise ValueError(
                f"conv2d: the filter {name} {filter_shape[2 + axis]} exceeds the padded input "
                f"{name} {padded} (input shape {tuple(input_shape)}, filter shape "
                f"{tuple(filter_shape)}, padding {tuple(pad)})"
            )


def conv2d_forward(x, w, pad, stride, flip):
    """Convolution of ``x`` (B, C, H, W) with ``w`` (F, C, kh, kw).

    ``pad`` and ``stride`` are integer pairs. Returns (B, F, Hout, Wout), possibly a
    non-contiguous view.
    """
    check_forward_shapes(x.shape, w.shape, pad)
    batch = x.shape[0]
    filters, channels, kernel_h, kernel_w = w.shape
    out_hw = (_output_length(x.shape[2], kernel_h, stride[0], pad[0]),
              _output_length(x.shape[3], kernel_w, stride[1], pad[1]))
    if 0 in (batch, filters) + out_hw:
        return np.zeros((batch, filters) + out_hw, dtype=x.dtype)
    strategy = _strategy(stride, (kernel_h, kernel_w), filters, batch, out_hw)
    if strategy == "phases":
        phase_w = _phase_kernel(w, stride, flip)
        phases = _phase_images(x, pad, stride, phase_w.shape[2:], out_hw)
        tap_weights = np.ascontiguousarray(phase_w.transpose(2, 3, 0, 1))
        return _shifted_view_correlation(phases, tap_weights, *out_hw, flip=False)
    if strategy == "shifted":
        tap_weights = np.ascontiguousarray(w.transpose(2, 3, 0, 1))
        if _winograd.worthwhile((kernel_h, kernel_w), channels, filters, batch, out_hw):
            padded = pad_images(x, pad[0], pad[1], *_winograd.padded_size(*out_hw))
            return _winograd.winograd_correlation(padded, tap_weights, *out_hw, flip)
        return _shifted_view_correlation(_contiguous_images(x, pad), tap_weights, *out_hw,
                                         flip=flip)
    padded = _contiguous_images(x, pad)
    cols = _unfold(padded, kernel_h, kernel_w, stride, *out_hw, flip)
    out = np.empty((filters, cols.shape[1]), dtype=x.dtype)
    _gemm_by_rows(np.ascontiguousarray(w).reshape(filters, -1), cols, out)
    return _batch_first(out, batch, *out_hw)


def conv2d_backward_input(gy, w, input_hw, pad, stride, flip):
    """Transposed convolution: the gradient of :func:`conv2d_forward` w.r.t. its input.

    Parameters
    ----------
    gy : ndarray, (B, F, Hout, Wout)
    w : ndarray, (F, C, kh, kw)
        The forward convolution's kernel.
    input_hw : (int, int)
        Size of the forward input; any size the forward maps to ``(Hout, Wout)``.
    pad, stride : (int, int)
    flip : bool

    Returns
    -------
    ndarray, (B, C, H, W), possibly a non-contiguous view
    """
    batch, filters, out_h, out_w = gy.shape
    kernel_filters, channels, kernel_h, kernel_w = w.shape
    height, width = input_hw
    if filters != kernel_filters:
        raise ValueError(
            f"conv2d_grad_wrt_inputs: the output gradient has {filters} channels but the "
            f"filters have {kernel_filters} (output gradient shape {tuple(gy.shape)}, filter "
            f"shape {tuple(w.shape)})"
        )
    check_forward_shapes((batch, channels, height, width), w.shape, pad)
    expected = (_output_length(height, kernel_h, stride[0], pad[0]),
                _output_length(width, kernel_w, stride[1], pad[1]))
    if expected != (out_h, out_w):
        raise ValueError(
            f"conv2d_grad_wrt_inputs: an input of size {(height, width)} gives outputs of "
            f"size {expected}, not {(out_h, out_w)} (output gradient shape {tuple(gy.shape)}, "
            f"filter shape {tuple(w.shape)}, padding {tuple(pad)}, stride {tuple(stride)})"
        )
    if 0 in (batch, channels, height, width):
        return np.zeros((batch, channels, height, width), dtype=gy.dtype)
    strategy = _strategy(stride, (kernel_h, kernel_w), filters, batch, (out_h, out_w))
    if strategy == "shifted":
        # Correlate the (k - 1 - pad)-padded gradient with the transposed kernel, rotated
        # (rotating is the same as toggling ``flip``).
        tap_weights = np.ascontiguousarray(w.transpose(2, 3, 1, 0))
        pads = (kernel_h - 1 - pad[0], kernel_w - 1 - pad[1])
        if _winograd.worthwhile((kernel_h, kernel_w), filters, channels, batch,
                                (height, width)):
            padded = pad_images(gy, *pads, *_winograd.padded_size(height, width))
            return _winograd.winograd_correlation(padded, tap_weights, height, width, not flip)
        padded = pad_images(gy, *pads)
        return _shifted_view_correlation(padded, tap_weights, height, width, not flip)
    if strategy == "phases":
        # The full transposed convolution of every phase at once, then interleaved.
        phase_w = _phase_kernel(w, stride, flip)
        taps_h, taps_w = phase_w.shape[2:]
        padded = pad_images(gy, taps_h - 1, taps_w - 1)
        tap_weights = np.ascontiguousarray(phase_w.transpose(2, 3, 1, 0))
        phases = _shifted_view_correlation(padded, tap_weights, out_h + taps_h - 1,
                                           out_w + taps_w - 1, flip=True)
        full = _depth_to_space(phases, stride)
    else:
        full = _fold(gy, w, stride, flip)
    if pad[0] + height <= full.shape[2] and pad[1] + width <= full.shape[3]:
        return full[:, :, pad[0]:pad[0] + height, pad[1]:pad[1] + width]
    return pad_images(full, -pad[0], -pad[1], height, width)


def _fold(gy, w, stride, flip):
    """Full transposed convolution by one GEMM into patches and their scatter-add."""
    batch, filters, out_h, out_w = gy.shape
    channels, kernel_h, kernel_w = w.shape[1:]
    cols = np.empty((channels * kernel_h * kernel_w, batch * out_h * out_w), dtype=gy.dtype)
    _gemm_by_rows(np.ascontiguousarray(w).reshape(filters, -1), _channels_first(gy), cols,
                  trans_a=True)
    cols = cols.reshape(channels, kernel_h, kernel_w, batch, out_h, out_w)
    full = np.zeros((batch, channels, (out_h - 1) * stride[0] + kernel_h,
                     (out_w - 1) * stride[1] + kernel_w), dtype=gy.dtype)

    def scatter(span, _):
        start, stop = span
        for u in range(kernel_h):
            for v in range(kernel_w):
                su, sv = (kernel_h - 1 - u, kernel_w - 1 - v) if flip else (u, v)
                full[:, start:stop, u:u + stride[0] * (out_h - 1) + 1:stride[0],
                     v:v + stride[1] * (out_w - 1) + 1:stride[1]] += (
                         cols[start:stop, su, sv].transpose(1, 0, 2, 3))

    parallel_for(_row_blocks(channels), scatter, flops=8.0 * cols.size)
    return full


def conv2d_backward_weights(x, gy, kernel_hw, pad, stride, flip):
    """Gradient of :func:`conv2d_forward` w.r.t. its kernel of spatial size ``kernel_hw``.

    Returns
    -------
    ndarray, (F, C, kh, kw), C-contiguous
    """
    batch, channels, height, width = x.shape
    filters, out_h, out_w = gy.shape[1:]
    kernel_h, kernel_w = kernel_hw
    filter_shape = (filters, channels, kernel_h, kernel_w)
    check_forward_shapes(x.shape, filter_shape, pad)
    expected = (batch, filters, _output_length(height, kernel_h, stride[0], pad[0]),
                _output_length(width, kernel_w, stride[1], pad[1]))
    if tuple(gy.shape) != expected:
        raise ValueError(
            f"conv2d_grad_wrt_weights: an input of shape {tuple(x.shape)} and filters of "
            f"shape {filter_shape} give outputs of shape {expected}, but the output gradient "
            f"has shape {tuple(gy.shape)} (padding {tuple(pad)}, stride {tuple(stride)})"
        )
    if 0 in (batch, out_h, out_w):
        return np.zeros(filter_shape, dtype=x.dtype)
    strategy = _strategy(stride, kernel_hw, filters, batch, (out_h, out_w))
    if strategy == "unfold":
        cols = _unfold(_contiguous_images(x, pad), kernel_h, kernel_w, stride, out_h, out_w,
                       flip)
        grad = np.empty((filters, channels * kernel_h * kernel_w), dtype=x.dtype)
        _gemm_by_rows(_channels_first(gy), cols, grad, trans_b=True)
        return grad.reshape(filter_shape)
    if strategy == "shifted":
        if _winograd.worthwhile(kernel_hw, channels, filters, batch, (out_h, out_w)):
            padded = pad_images(x, pad[0], pad[1], *_winograd.padded_size(out_h, out_w))
            tap_grads = _winograd.winograd_weight_grad(padded, gy)
        else:
            tap_grads = _shifted_view_weight_grad(_contiguous_images(x, pad), gy, kernel_h,
                                                  kernel_w)
        grad = tap_grads.transpose(2, 3, 0, 1)
    else:
        taps = (-(-kernel_h // stride[0]), -(-kernel_w // stride[1]))
        phases = _phase_images(x, pad, stride, taps, (out_h, out_w))
        phase_grads = _shifted_view_weight_grad(phases, gy, *taps)
        split = phase_grads.reshape(*taps, filters, channels, *stride)
        grad = split.transpose(2, 3, 0, 4, 1, 5).reshape(
            filters, channels, taps[0] * stride[0], taps[1] * stride[1])
        grad = grad[:, :, :kernel_h, :kernel_w]
    if flip:
        grad = grad[:, :, ::-1, ::-1]
    return np.ascontiguousarray(grad)
