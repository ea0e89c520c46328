"""Winograd's minimal filtering F(2x2, 3x3): stride-1 3x3 correlations in fewer products.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). A 2x2
block of output pixels is computed from the 4x4 tile of input around it:

``Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A``

with the filter transform ``U = G g G^T`` (once per call), the input transform
``V = B^T d B`` of every tile, the sum over channels as 16 GEMMs (one per element of the
4x4 transformed tile: ``(F, C) @ (C, tiles)``) and the output transform ``A^T M A``. The
GEMMs do 16 multiply-adds per channel pair and 2x2 outputs where the direct correlation
does 36, 2.25 times fewer; the transforms are additions and subtractions only, so they
pay off when the channel counts are large next to the image (see :func:`worthwhile`).

The result differs from the direct sum by float rounding only: the transforms add and
subtract up to 16 values (and ``G`` halves them), so the float32 error is about twice that
of the direct correlation (measured on FCN-8's layers: max |error| 3-8e-6 against 1-2e-6,
relative to float64).
"""

import os

import numpy as np

from ._gemm import gemm, parallel_for, worker_count

__all__ = ["winograd_correlation", "padded_size", "worthwhile", "set_winograd",
           "get_winograd"]

# Filter transform G (4x3); the input transform B^T and output transform A^T are written
# out as additions in _transform_input and _transform_output.
_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])

# A GEMM reads each of its (F, C) weight matrices once per block of tiles: blocks of at
# least this many tiles keep that read small next to the products.
_MIN_TILES = 512
# Bytes of transformed input and products per block, above the tiles needed by _MIN_TILES.
_BLOCK_BYTES = 4 << 20
# Fewest channel pairs (C * F) and 2x2 output blocks of a call for the Winograd path.
_MIN_CHANNEL_PAIRS = 64 * 128
_MIN_CALL_TILES = 128
# Fewest filters per task when the filters are split among the workers.
_MIN_FILTERS = 64

_enabled = os.environ.get("FCN8_LASAGNE_WINOGRAD", "1").strip().lower() not in (
    "0", "false", "no", "off")


def set_winograd(enabled):
    """Let the CPU convolutions use Winograd's algorithm where it is faster (default: on).

    Turn it off to compute every CPU convolution as a direct sum of products, as Theano's
    ``CorrMM`` did (the results then differ from Theano's by summation order only). The
    environment variable ``FCN8_LASAGNE_WINOGRAD=0`` does the same at import time. Applies
    to every later call, including functions compiled before.

    Parameters
    ----------
    enabled : bool

    Returns
    -------
    bool
        The previous setting.
    """
    global _enabled
    previous, _enabled = _enabled, bool(enabled)
    return previous


def get_winograd():
    """Whether the CPU convolutions may use Winograd's algorithm (see :func:`set_winograd`)."""
    return _enabled


def worthwhile(kernel_hw, channels, filters, batch, out_hw):
    """Whether a stride-1 correlation should take the Winograd path.

    Only 3x3 kernels qualify, with many channels and enough 2x2 output blocks. With few
    channels the transforms (memory-bound passes over 4x the image) cost as much as the
    products they save; with few blocks the filter transform dominates. Measured on 2
    cores: FCN-8's 64-to-64-channel layer ran as fast as the direct GEMMs, the layers with
    128 or more filters or channels (on at least 128 blocks) took 0.6-0.9 of their time,
    and 512 channels on a 14x14 output (49 blocks) took 1.2 times as long.

    Parameters
    ----------
    kernel_hw : (int, int)
    channels, filters : int
        Input and output channels of the correlation.
    batch : int
    out_hw : (int, int)
        Output size.
    """
    blocks = batch * -(-out_hw[0] // 2) * -(-out_hw[1] // 2)
    return (_enabled and tuple(kernel_hw) == (3, 3) and channels * filters >= _MIN_CHANNEL_PAIRS
            and blocks >= _MIN_CALL_TILES)


def padded_size(out_h, out_w):
    """Padded image size the Winograd path reads: whole 4x4 tiles for every 2x2 output block.

    An odd output size gets one more row or column of tiles; the extra outputs are cut off.
    """
    return 2 * (-(-out_h // 2)) + 2, 2 * (-(-out_w // 2)) + 2


def _filter_transform(tap_weights, flip):
    """``U = G g G^T`` for every filter and channel: ``(4, 4, F, C)``, C-contiguous.

    Written out as additions (``G`` keeps the two outer taps and halves the sum and the
    difference of the three) and shared out to the workers by blocks of filters.
    """
    taps = tap_weights[::-1, ::-1] if flip else tap_weights
    filters, channels = tap_weights.shape[2:]
    transformed = np.empty((4, 4, filters, channels), dtype=tap_weights.dtype)
    # G applied along axis 0 of (3, ...) weights, into the (4, ...) view out.
    def apply_g(g, out, scratch):
        np.add(g[0], g[2], out=scratch)
        np.add(scratch, g[1], out=out[1])
        out[1] *= 0.5
        np.subtract(scratch, g[1], out=out[2])
        out[2] *= 0.5
        out[0] = g[0]
        out[3] = g[2]

    def transform(span, _):
        f0, f1 = span
        rows = np.empty((4, 3, f1 - f0, channels), dtype=tap_weights.dtype)
        apply_g(taps[:, :, f0:f1], rows, np.empty_like(rows[0]))
        scratch = np.empty_like(rows[:, 0])
        apply_g(rows.transpose(1, 0, 2, 3), transformed[:, :, f0:f1].transpose(1, 0, 2, 3),
                scratch)

    parallel_for(_spans(filters, max(16, -(-filters // (2 * worker_count())))), transform,
                 flops=16.0 * filters * channels * 4)
    return transformed.reshape(16, filters, channels)


def _transform_input(rows, tiles_w, half, transformed):
    """``V = B^T d B`` of every tile in a band of image rows.

    ``rows`` is ``(C, 2 n + 2, >= 2 tiles_w + 2)``; ``transformed`` receives
    ``(4, 4, C, n, tiles_w)``. The columns are split into even and odd ones first (into
    ``half``, ``(2, 4, C, n, tiles_w + 1)``), so the second pass reads contiguous slices.
    """
    band = transformed.shape[3]
    for parity in range(2):
        columns = rows[:, :, parity:parity + 2 * tiles_w + 2:2]
        r0, r1, r2, r3 = (columns[:, r:r + 2 * band:2] for r in range(4))
        out = half[parity]
        np.subtract(r0, r2, out=out[0])
        np.add(r1, r2, out=out[1])
        np.subtract(r2, r1, out=out[2])
        np.subtract(r1, r3, out=out[3])
    for a in range(4):
        q0, q2 = half[0, a, :, :, :tiles_w], half[0, a, :, :, 1:]
        q1, q3 = half[1, a, :, :, :tiles_w], half[1, a, :, :, 1:]
        np.subtract(q0, q2, out=transformed[a, 0])
        np.add(q1, q2, out=transformed[a, 1])
        np.subtract(q2, q1, out=transformed[a, 2])
        np.subtract(q1, q3, out=transformed[a, 3])


def _transform_output(products, partial, out):
    """``Y = A^T M A``: ``products`` ``(4, 4, F, n, tw)`` into ``out`` ``(F, n, 2, tw, 2)``.

    ``partial`` ``(2, 4, F, n, tw)`` holds ``A^T M``.
    """
    for c in range(4):
        np.add(products[0, c], products[1, c], out=partial[0, c])
        partial[0, c] += products[2, c]
        np.subtract(products[1, c], products[2, c], out=partial[1, c])
        partial[1, c] -= products[3, c]
    for a in range(2):
        even, odd = out[:, :, a, :, 0], out[:, :, a, :, 1]
        np.add(partial[a, 0], partial[a, 1], out=even)
        even += partial[a, 2]
        np.subtract(partial[a, 1], partial[a, 2], out=odd)
        odd -= partial[a, 3]


def _spans(length, size):
    return [(start, min(length, start + size)) for start in range(0, length, size)]


def winograd_correlation(padded, tap_weights, out_h, out_w, flip):
    """Stride-1 3x3 correlation of padded images, by F(2x2, 3x3).

    Same contract as the shifted-view correlation of :mod:`._conv_cpu`, except that
    ``padded`` must cover :func:`padded_size` ``(out_h, out_w)``.

    Parameters
    ----------
    padded : ndarray, (B, C, Hp, Wp)
    tap_weights : ndarray, (3, 3, F, C)
        ``tap_weights[u, v]`` multiplies the input shifted by ``(u, v)``, or by
        ``(2 - u, 2 - v)`` when ``flip``.
    out_h, out_w : int

    Returns
    -------
    ndarray, (B, F, out_h, out_w)
        A view of a buffer of whole 2x2 blocks.
    """
    batch, channels, padded_h, padded_w = padded.shape
    filters = tap_weights.shape[2]
    need_h, need_w = padded_size(out_h, out_w)
    if tap_weights.shape[:2] != (3, 3) or padded_h < need_h or padded_w < need_w:
        raise ValueError(
            f"winograd_correlation: needs 3x3 taps and images of at least {(need_h, need_w)} "
            f"for outputs of {(out_h, out_w)}, got taps {tap_weights.shape[:2]} and images "
            f"{(padded_h, padded_w)}")
    tiles_h, tiles_w = need_h // 2 - 1, need_w // 2 - 1
    dtype = padded.dtype
    transformed_filters = _filter_transform(tap_weights, flip)
    out = np.empty((batch, filters, 2 * tiles_h, 2 * tiles_w), dtype=dtype)
    # Output pixel (2 i + a, 2 j + d) is element (i, a, j, d) of this view.
    blocks = out.reshape(batch, filters, tiles_h, 2, tiles_w, 2)

    # Bands of tile rows: at least _MIN_TILES tiles (whole images if smaller), at most
    # _BLOCK_BYTES of buffers, and enough bands for the workers where the images allow.
    bytes_per_tile_row = 16 * (channels + filters) * tiles_w * dtype.itemsize
    balanced = -(-batch * tiles_h // (2 * worker_count()))
    band = max(-(-_MIN_TILES // tiles_w), min(_BLOCK_BYTES // bytes_per_tile_row, balanced))
    band = min(band, tiles_h)
    bands = [(b, span) for b in range(batch) for span in _spans(tiles_h, band)]
    # Too few bands to keep the workers busy (small images): also split the filters;
    # each piece then transforms its band of input again, a small cost next to its GEMMs.
    pieces = min(-(-2 * worker_count() // len(bands)), max(1, filters // _MIN_FILTERS))
    filter_spans = _spans(filters, -(-filters // pieces))
    tasks = [(b, rows, fs) for b, rows in bands for fs in filter_spans]

    def buffers(state, n, width):
        key = (n, width)
        if key not in state:
            state.clear()
            state[key] = (np.empty((2, 4, channels, n, tiles_w + 1), dtype),
                          np.empty((4, 4, channels, n, tiles_w), dtype),
                          np.empty((16, width, n * tiles_w), dtype),
                          np.empty((2, 4, width, n, tiles_w), dtype))
        return state[key]

    def compute(task, state):
        b, (row0, row1), (f0, f1) = task
        n = row1 - row0
        half, transformed, products, partial = buffers(state, n, f1 - f0)
        _transform_input(padded[b, :, 2 * row0:2 * row1 + 2], tiles_w, half, transformed)
        columns = transformed.reshape(16, channels, n * tiles_w)
        for k in range(16):
            gemm(transformed_filters[k, f0:f1], columns[k], products[k])
        _transform_output(products.reshape(4, 4, f1 - f0, n, tiles_w), partial,
                          blocks[b, f0:f1, row0:row1])

    parallel_for(tasks, compute, dict,
                 flops=2.0 * 16 * batch * tiles_h * tiles_w * filters * channels)
    return out[:, :, :out_h, :out_w]
