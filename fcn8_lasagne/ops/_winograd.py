"""Winograd's minimal filtering F(2x2, 3x3): stride-1 3x3 correlations in fewer products.

Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016). A 2x2
block of output pixels is computed from the 4x4 tile of input around it:

``Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A``

with the filter transform ``U = G g G^T`` (once per call), the input transform
``V = B^T d B`` of every tile, the sum over channels as 16 GEMMs (one per element of the
4x4 transformed tile: ``(F, C) @ (C, tiles)``) and the output transform ``A^T M A``. The
GEMMs do 16 multiply-adds per channel pair and 2x2 outputs where the direct correlation
does 36, 2.25 times fewer. The kernel gradient is the same computation transposed
(:func:`winograd_weight_grad`). The transforms are additions and subtractions only, so
they pay off when the channel counts are large next to the image (see :func:`worthwhile`).

The result differs from the direct sum by float rounding only: the transforms add and
subtract up to 16 values (and ``G`` halves them), so the float32 error is about twice that
of the direct correlation (measured on FCN-8's layers: max |error| 3-8e-6 against 1-2e-6,
relative to float64).
"""

import os

import numpy as np

from . import _winograd_c
from ._blas import gemm
from ._threads import parallel_for, spans, worker_count

__all__ = ["winograd_correlation", "winograd_weight_grad", "padded_size", "worthwhile",
           "set_winograd", "get_winograd"]

# The transforms G (4x3: rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2), B^T (4x4) and A^T (2x4)
# are written out as additions in _apply_g, _transform_input and _transform_output.

# A GEMM reads each of its (F, C) weight matrices once per block of tiles: blocks of at
# least this many tiles keep that read small next to the products.
_MIN_TILES = 512
# Bytes of transformed input and products per block, above the tiles needed by _MIN_TILES.
_BLOCK_BYTES = 4 << 20
# Fewest channel pairs (C * F) and 2x2 output blocks of a call for the Winograd path: with
# the compiled transforms (:mod:`._winograd_c`), and with the NumPy ones.
_MIN_CHANNEL_PAIRS_C = 64 * 64
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
    cores with the NumPy transforms: FCN-8's 64-to-64-channel layer ran as fast as the
    direct GEMMs, the layers with 128 or more filters or channels (on at least 128 blocks)
    took 0.6-0.9 of their time, and 512 channels on a 14x14 output (49 blocks) took 1.2
    times as long. With the compiled transforms the 64-to-64-channel layer (``conv1_2``)
    takes 0.75-0.84 of the direct time as well, so it qualifies when they are loaded.

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
    if not (_enabled and tuple(kernel_hw) == (3, 3) and blocks >= _MIN_CALL_TILES):
        return False
    if channels * filters >= _MIN_CHANNEL_PAIRS:
        return True
    return (channels * filters >= _MIN_CHANNEL_PAIRS_C and _use_c_transforms
            and _winograd_c.library() is not None)


def padded_size(out_h, out_w):
    """Padded image size the Winograd path reads: whole 4x4 tiles for every 2x2 output block.

    An odd output size gets one more row or column of tiles; the extra outputs are cut off.
    """
    return 2 * (-(-out_h // 2)) + 2, 2 * (-(-out_w // 2)) + 2


def _apply_g(g, out, scratch):
    """``out = G g`` along axis 0: ``g`` ``(3, ...)``, ``out`` ``(4, ...)`` (views allowed).

    ``G`` keeps the outer taps and halves the sum and the difference of all three.
    """
    np.add(g[0], g[2], out=scratch)
    np.add(scratch, g[1], out=out[1])
    out[1] *= 0.5
    np.subtract(scratch, g[1], out=out[2])
    out[2] *= 0.5
    out[0] = g[0]
    out[3] = g[2]


def _apply_g_transposed(m, out, scratch):
    """``out = G^T m`` along axis 0: ``m`` ``(4, ...)``, ``out`` ``(3, ...)``."""
    np.add(m[1], m[2], out=scratch)
    scratch *= 0.5
    np.add(m[0], scratch, out=out[0])
    np.subtract(m[1], m[2], out=out[1])
    out[1] *= 0.5
    np.add(scratch, m[3], out=out[2])


def _transform_both_axes(apply, source, size):
    """``apply`` along axis 0, then along axis 1, of ``source`` ``(n, n, F, C)``.

    Returns ``(size, size, F, C)``; blocks of filters are shared out to the workers.
    """
    filters, channels = source.shape[2:]
    out = np.empty((size, size, filters, channels), dtype=source.dtype)

    def transform(span, _):
        f0, f1 = span
        rows = np.empty((size, source.shape[1], f1 - f0, channels), dtype=source.dtype)
        apply(source[:, :, f0:f1], rows, np.empty_like(rows[0]))
        apply(rows.transpose(1, 0, 2, 3), out[:, :, f0:f1].transpose(1, 0, 2, 3),
              np.empty_like(rows[:, 0]))

    filter_spans = spans(filters, max(16, -(-filters // (2 * worker_count()))))
    parallel_for(filter_spans, transform, flops=64.0 * filters * channels)
    return out


def _filter_transform(tap_weights, flip):
    """``U = G g G^T`` for every filter and channel: ``(16, F, C)``, C-contiguous."""
    taps = tap_weights[::-1, ::-1] if flip else tap_weights
    return _transform_both_axes(_apply_g, taps, 4).reshape(16, *tap_weights.shape[2:])


def _kernel_transform(sums):
    """``G^T M G`` of the ``(4, 4, F, C)`` transformed-domain sums: ``(3, 3, F, C)``."""
    return _transform_both_axes(_apply_g_transposed, sums, 3)


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


def _apply_a(first, second, out):
    """``out = A [first, second]`` along a new axis 0: ``out`` ``(4, ...)``."""
    out[0] = first
    np.add(first, second, out=out[1])
    np.subtract(first, second, out=out[2])
    np.negative(second, out=out[3])


def _transform_output_grad(blocks, half, out):
    """``Z = A dY A^T`` of 2x2 blocks of an output gradient (transposing
    :func:`_transform_output`).

    ``blocks`` is ``(F, n, 2, tw, 2)``, ``half`` ``(4, F, n, tw, 2)`` holds ``A dY``,
    ``out`` receives ``(4, 4, F, n, tw)``.
    """
    _apply_a(blocks[:, :, 0], blocks[:, :, 1], half)
    for a in range(4):
        _apply_a(half[a, ..., 0], half[a, ..., 1], out[a])


def _bands(batch, tiles_h, tiles_w, bytes_per_tile):
    """``(image, (first, stop))`` bands of tile rows that the workers compute one by one.

    At least :data:`_MIN_TILES` tiles (whole images if smaller), at most
    :data:`_BLOCK_BYTES` of buffers, and enough bands for the workers where the images
    allow.
    """
    balanced = -(-batch * tiles_h // (2 * worker_count()))
    cached = _BLOCK_BYTES // (bytes_per_tile * tiles_w)
    band = min(tiles_h, max(-(-_MIN_TILES // tiles_w), min(cached, balanced)))
    # bands of (nearly) equal height: 26 rows in bands of at most 20 are 13 + 13, not 20 + 6
    count = -(-tiles_h // band)
    edges = [tiles_h * k // count for k in range(count + 1)]
    return [(b, (start, stop)) for b in range(batch) for start, stop in zip(edges, edges[1:])]


def _filter_pieces(filters, tasks):
    """Filter spans that split each of ``tasks`` units of work when there are too few of
    them to keep the workers busy (small images); each piece transforms its band of input
    again, a small cost next to its GEMMs."""
    pieces = min(-(-2 * worker_count() // tasks), max(1, filters // _MIN_FILTERS))
    return spans(filters, -(-filters // pieces))


# Whether the tile transforms may run as compiled loops (:mod:`._winograd_c`, bitwise equal
# to the NumPy ones); tests turn it off to compare the two.
_use_c_transforms = True


def _c_transforms(padded):
    """Whether this call's transforms run in C: allowed, compiled, and the images' rows
    contiguous."""
    return (_use_c_transforms and padded.strides[-1] == padded.itemsize
            and _winograd_c.usable(padded.dtype))


def _tile_counts(out_h, out_w):
    need_h, need_w = padded_size(out_h, out_w)
    return need_h // 2 - 1, need_w // 2 - 1


def _check_images(name, images_hw, taps_hw, out_hw):
    need = padded_size(*out_hw)
    if tuple(taps_hw) != (3, 3) or images_hw[0] < need[0] or images_hw[1] < need[1]:
        raise ValueError(
            f"{name}: needs 3x3 taps and images of at least {need} for outputs of "
            f"{tuple(out_hw)}, got taps {tuple(taps_hw)} and images {tuple(images_hw)}")


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
    batch, channels = padded.shape[:2]
    filters = tap_weights.shape[2]
    _check_images("winograd_correlation", padded.shape[2:], tap_weights.shape[:2],
                  (out_h, out_w))
    tiles_h, tiles_w = _tile_counts(out_h, out_w)
    dtype = padded.dtype
    transformed_filters = _filter_transform(tap_weights, flip)
    out = np.empty((batch, filters, 2 * tiles_h, 2 * tiles_w), dtype=dtype)
    # Output pixel (2 i + a, 2 j + d) is element (i, a, j, d) of this view.
    blocks = out.reshape(batch, filters, tiles_h, 2, tiles_w, 2)

    bands = _bands(batch, tiles_h, tiles_w, 16 * (channels + filters) * dtype.itemsize)
    tasks = [(b, rows, fs) for b, rows in bands for fs in _filter_pieces(filters, len(bands))]

    compiled = _c_transforms(padded)

    def buffers(state, n, width):
        key = (n, width)
        if key not in state:
            state.clear()
            state[key] = (None if compiled else np.empty((2, 4, channels, n, tiles_w + 1), dtype),
                          np.empty((4, 4, channels, n, tiles_w), dtype),
                          np.empty((16, width, n * tiles_w), dtype),
                          None if compiled else np.empty((2, 4, width, n, tiles_w), dtype))
        return state[key]

    def compute(task, state):
        b, (row0, row1), (f0, f1) = task
        n = row1 - row0
        half, transformed, products, partial = buffers(state, n, f1 - f0)
        rows = padded[b, :, 2 * row0:2 * row1 + 2]
        if compiled:
            _winograd_c.transform_input(rows, tiles_w, transformed)
        else:
            _transform_input(rows, tiles_w, half, transformed)
        columns = transformed.reshape(16, channels, n * tiles_w)
        for k in range(16):
            gemm(transformed_filters[k, f0:f1], columns[k], products[k])
        products = products.reshape(4, 4, f1 - f0, n, tiles_w)
        if compiled:
            _winograd_c.transform_output(products, blocks[b, f0:f1, row0:row1])
        else:
            _transform_output(products, partial, blocks[b, f0:f1, row0:row1])

    parallel_for(tasks, compute, dict,
                 flops=2.0 * 16 * batch * tiles_h * tiles_w * filters * channels)
    return out[:, :, :out_h, :out_w]


def winograd_weight_grad(padded, output_grad):
    """Kernel gradient of a stride-1 3x3 correlation of padded images, by F(2x2, 3x3).

    The transpose of :func:`winograd_correlation`:
    ``dg = G^T [ sum over tiles and images of (A dY A^T) * (B^T d B) ] G``, the sum over
    tiles as 16 GEMMs ``(F, tiles) @ (tiles, C)`` per band. Same contract as the
    shifted-view weight gradient of :mod:`._conv_cpu` (unflipped taps), except that
    ``padded`` must cover :func:`padded_size` of the output.

    Parameters
    ----------
    padded : ndarray, (B, C, Hp, Wp)
    output_grad : ndarray, (B, F, out_h, out_w)

    Returns
    -------
    ndarray, (3, 3, F, C)
        ``[u, v]`` is the gradient of the taps that multiply the input shifted by ``(u, v)``.
    """
    batch, channels = padded.shape[:2]
    filters, out_h, out_w = output_grad.shape[1:]
    _check_images("winograd_weight_grad", padded.shape[2:], (3, 3), (out_h, out_w))
    tiles_h, tiles_w = _tile_counts(out_h, out_w)
    dtype = padded.dtype
    # Whole 2x2 blocks: the gradient of the outputs past the edge is zero.
    if (out_h, out_w) == (2 * tiles_h, 2 * tiles_w) and output_grad.flags.c_contiguous:
        even_grad = output_grad
    else:
        even_grad = np.zeros((batch, filters, 2 * tiles_h, 2 * tiles_w), dtype=dtype)
        even_grad[:, :, :out_h, :out_w] = output_grad
    blocks = even_grad.reshape(batch, filters, tiles_h, 2, tiles_w, 2)
    bands = _bands(batch, tiles_h, tiles_w, 16 * (channels + filters) * dtype.itemsize)
    filter_spans = _filter_pieces(filters, len(bands))
    tasks = [(b, rows, fs) for b, rows in bands for fs in filter_spans]

    compiled = _c_transforms(padded) and even_grad.strides[-1] == even_grad.itemsize

    def new_state():
        # "started": the filter spans whose rows of "sums" this worker has written
        return {"sums": np.empty((16, filters, channels), dtype), "started": set(),
                "buffers": {}}

    def accumulate(task, state):
        b, (row0, row1), (f0, f1) = task
        n, width = row1 - row0, f1 - f0
        key = (n, width)
        if key not in state["buffers"]:
            state["buffers"] = {key: (
                None if compiled else np.empty((2, 4, channels, n, tiles_w + 1), dtype),
                np.empty((4, 4, channels, n, tiles_w), dtype),
                None if compiled else np.empty((4, width, n, tiles_w, 2), dtype),
                np.empty((4, 4, width, n, tiles_w), dtype))}
        half, transformed, grad_half, grad_transformed = state["buffers"][key]
        rows, grad_blocks = padded[b, :, 2 * row0:2 * row1 + 2], blocks[b, f0:f1, row0:row1]
        if compiled:
            _winograd_c.transform_input(rows, tiles_w, transformed)
            _winograd_c.transform_output_grad(grad_blocks, grad_transformed)
        else:
            _transform_input(rows, tiles_w, half, transformed)
            _transform_output_grad(grad_blocks, grad_half, grad_transformed)
        columns = transformed.reshape(16, channels, n * tiles_w)
        grad_columns = grad_transformed.reshape(16, width, n * tiles_w)
        beta = 1.0 if (f0, f1) in state["started"] else 0.0
        for k in range(16):
            gemm(grad_columns[k], columns[k], state["sums"][k, f0:f1], beta=beta,
                 trans_b=True)
        state["started"].add((f0, f1))

    states = parallel_for(tasks, accumulate, new_state,
                          flops=2.0 * 16 * batch * tiles_h * tiles_w * filters * channels)
    sums = states[0]["sums"]
    for f0, f1 in filter_spans:
        holders = [state for state in states if (f0, f1) in state["started"]]
        if holders[0] is not states[0]:
            sums[:, f0:f1] = holders[0]["sums"][:, f0:f1]
        for state in holders[1:]:
            sums[:, f0:f1] += state["sums"][:, f0:f1]
    return _kernel_transform(sums.reshape(4, 4, filters, channels))
