"""CPU kernels of the bilinear resize: interpolation matrices and two GEMMs per image.

Bilinear resizing is separable: an image ``X`` (H, W) becomes ``R @ X @ C.T`` where ``R``
(H', H) and ``C`` (W', W) hold the interpolation weights of the rows and of the columns
(two non-zeros a row). The gradient is the transposed product ``R.T @ G @ C``. No loop
runs over pixels: one GEMM covers a block of images along one axis, then one small GEMM an
image along the other, the blocks on the worker threads.
"""

import functools
import math

import numpy as np

from ._blas import gemm
from ._threads import parallel_for, spans, worker_count

__all__ = ["MODES", "interpolation_matrix", "source_coordinates", "resize_images"]


#: How an output index maps to a source coordinate (see :func:`source_coordinates`).
MODES = ("align_corners", "half_pixel", "theano")


def source_coordinates(in_size, out_size, mode):
    """Float64 source coordinate of every output index along one axis.

    * ``'align_corners'`` (MXNet's / Gluon-CV's ``BilinearResize2D``): the corner pixels of
      input and output coincide, ``src = dst * (in - 1) / (out - 1)`` (0 when ``out == 1``);
    * ``'half_pixel'`` (PyTorch's ``interpolate(mode='bilinear', align_corners=False)``):
      pixel centres are aligned, ``src = (dst + 0.5) * in / out - 0.5``, clamped at 0;
    * ``'theano'`` (Theano's ``bilinear_upsampling`` by an integer ``ratio = out / in``:
      edge padding and a transposed convolution with a triangle kernel, which amounts to
      ``src = (dst - (ratio - 1) // 2) / ratio``, clamped at 0 — the half-pixel rule for
      odd ratios, half an output pixel off it for even ones).

    Indices past the last input pixel are clamped by :func:`interpolation_matrix`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown resize mode {mode!r}; expected one of {MODES}")
    dst = np.arange(out_size, dtype=np.float64)
    if mode == "align_corners":
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        return dst * scale
    if mode == "half_pixel":
        return np.maximum((dst + 0.5) * (in_size / out_size) - 0.5, 0.0)
    ratio, rest = divmod(out_size, in_size)
    if rest:
        raise ValueError(f"Theano's bilinear upsampling needs an integer ratio, got "
                         f"{in_size} -> {out_size}")
    return np.maximum((dst - (ratio - 1) // 2) / ratio, 0.0)


@functools.lru_cache(maxsize=256)
def _matrix(in_size, out_size, mode, dtype, transposed):
    src = source_coordinates(in_size, out_size, mode)
    low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = src - low
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, low), 1.0 - frac)
    np.add.at(weights, (rows, high), frac)
    if transposed:
        weights = weights.T
    weights = np.ascontiguousarray(weights, dtype=dtype)
    weights.setflags(write=False)
    return weights


def interpolation_matrix(in_size, out_size, mode, dtype="float64", transposed=False):
    """The (out_size, in_size) matrix of linear interpolation weights along one axis.

    Row ``o`` has ``1 - f`` at ``i0`` and ``f`` at ``i1 = min(i0 + 1, in - 1)``, where
    ``i0 = floor(src)`` and ``f = src - i0`` for the source coordinate ``src`` of
    :func:`source_coordinates` of ``mode``. Weights are computed in float64, then cast to
    ``dtype`` (``transposed``: the transpose, contiguous); the result is cached and
    read-only.
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"bilinear resize sizes must be positive, got {in_size} -> {out_size}")
    return _matrix(int(in_size), int(out_size), mode, np.dtype(dtype).name, bool(transposed))


def resize_images(x, rows, columns):
    """``rows @ x[b, c] @ columns.T`` for every image of a (B, C, H, W) array.

    Parameters
    ----------
    x : numpy.ndarray
        (B, C, H, W).
    rows : numpy.ndarray
        (H', H), of ``x``'s dtype.
    columns : numpy.ndarray
        (W', W), of ``x``'s dtype.

    Returns
    -------
    numpy.ndarray
        (B, C, H', W'), a new array.
    """
    batch, channels, height, width = x.shape
    out_h, out_w = rows.shape[0], columns.shape[0]
    count = batch * channels
    out = np.empty((count, out_h, out_w), dtype=x.dtype)
    if count == 0:
        return out.reshape(batch, channels, out_h, out_w)
    images = np.ascontiguousarray(x).reshape(count, height, width)
    # the order of the two products that needs fewer operations
    columns_first = height * width * out_w + out_h * height * out_w <= \
        out_h * height * width + out_h * width * out_w
    flops = 2.0 * count * min(height * width * out_w + out_h * height * out_w,
                              out_h * height * width + out_h * width * out_w)
    block = max(1, math.ceil(count / (4 * worker_count())))

    def columns_then_rows(span, state):
        start, stop = span
        temp = np.empty(((stop - start) * height, out_w), dtype=x.dtype)
        gemm(images[start:stop].reshape(-1, width), columns, temp, trans_b=True)
        for n in range(start, stop):
            offset = (n - start) * height
            gemm(rows, temp[offset:offset + height], out[n])

    def rows_then_columns(span, state):
        start, stop = span
        temp = np.empty(((stop - start) * out_h, width), dtype=x.dtype)
        for n in range(start, stop):
            offset = (n - start) * out_h
            gemm(rows, images[n], temp[offset:offset + out_h])
        gemm(temp, columns, out[start:stop].reshape(-1, out_w), trans_b=True)

    body = columns_then_rows if columns_first else rows_then_columns
    parallel_for(spans(count, block), body, flops=flops)
    return out.reshape(batch, channels, out_h, out_w)
