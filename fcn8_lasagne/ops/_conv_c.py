"""Direct convolution kernels in C++, compiled at first use, for the shapes BLAS handles badly.

Small tap GEMMs (the ``(32, 32)`` taps of a 3-D convolution, the ``(8, 8)`` ones of 32
channel groups) run far below the CPU's peak in OpenBLAS, and issuing one ``ctypes`` GEMM
per tap and group costs more than its arithmetic. These kernels compute a whole stride-1
correlation (or its weight gradient) in one call per block of output rows: register-blocked
loops over the taps and channels of a padded image, written with GCC vector extensions and
compiled with ``-march=native``, so the vector width is that of the machine (AVX-512, AVX2
or SSE).

The source is compiled once per machine by :mod:`._c_build` (PyTensor's C++ compiler, cached
in PyTensor's compile directory, loaded with ``ctypes``, which releases the GIL so the worker
threads of :mod:`._threads` run calls side by side). Without a compiler, when compiling
fails, or with ``FCN8_LASAGNE_C_KERNELS=0``, :func:`library` returns None and the
convolutions use their BLAS kernels.

Layouts. Images are channels-first and flattened: channel ``c`` of a padded image starts at
``c * channel_stride`` and output row ``r`` reads ``row_in[r] + shift[t] + j`` for tap ``t``
and column ``j``. Weights are packed per group and block of ``FB`` filters as
``[group][block][channel][tap][FB]`` (:func:`pack_weights`). Reads may run up to a vector
block past a row (into the next row or channel, discarded), so flattened images carry
:func:`slack` trailing elements. The zero-padded copy of the images and the packing of the
weights are C loops as well (one pass each, shared out to the worker threads when large):
in NumPy they took a quarter of a 32-group forward.
"""

import ctypes
import threading
import warnings

import numpy as np

from ._c_build import load_library
from ._threads import parallel_for, spans, worker_count
from .shapes import grid_steps

__all__ = ["library", "conv_correlation", "conv_weight_grad"]

_SOURCE = r"""
#include <stdlib.h>
#include <string.h>
#ifndef PREFETCH
#define PREFETCH 1
#endif

#if defined(__AVX512F__)
#define VBYTES 64
#define NREGS 32
#elif defined(__AVX__)
#define VBYTES 32
#define NREGS 16
#else
#define VBYTES 16
#define NREGS 16
#endif

template <typename T> struct Vec;
template <> struct Vec<float> {
    typedef float type __attribute__((vector_size(VBYTES)));
    typedef int index __attribute__((vector_size(VBYTES)));
};
template <> struct Vec<double> {
    typedef double type __attribute__((vector_size(VBYTES)));
    typedef long long index __attribute__((vector_size(VBYTES)));
};

template <typename T>
static inline typename Vec<T>::type load(const T* p) {
    typename Vec<T>::type v;
    memcpy(&v, p, sizeof v);
    return v;
}

template <typename T>
static inline typename Vec<T>::type splat(T s) {
    typename Vec<T>::type v = {s};
    return __builtin_shuffle(v, typename Vec<T>::index{});
}

template <typename T>
static inline void store(T* p, typename Vec<T>::type v) { memcpy(p, &v, sizeof v); }

/* acc[i][p] += sum over channels [c0, c1) and taps t of w[c][t][i] * x[c][shift[t] + p V],
   with x = xrow + c * xcs and w = wblock + c * ntaps * FB; with PF, prefetching the next
   tile's pixels. */
template <typename T, int FB, int P, bool PF>
static inline __attribute__((always_inline)) void accumulate(
        typename Vec<T>::type (&acc)[FB][P], const T* __restrict xrow, long xcs,
        const T* __restrict wblock, int c0, int c1, int ntaps, const long* shifts) {
    typedef typename Vec<T>::type vec;
    const int V = VBYTES / sizeof(T);
    for (int c = c0; c < c1; c++) {
        const T* xc = xrow + (long)c * xcs;
        const T* wt = wblock + (long)c * ntaps * FB;
        for (int t = 0; t < ntaps; t++, wt += FB) {
            const T* xs = xc + shifts[t];
            if (PF)
                for (int p = 0; p <= P; p++) __builtin_prefetch(xs + (P + p) * V);
            vec xv[P];
            for (int p = 0; p < P; p++) xv[p] = load(xs + p * V);
            for (int i = 0; i < FB; i++) {
                const vec b = splat<T>(wt[i]);
                for (int p = 0; p < P; p++) acc[i][p] += b * xv[p];
            }
        }
    }
}

/* out[g*fg + f][row_out[r] + j] = sum over channels c of group g and taps t of
   w[g][f][c][t] * x[(g*cg + c)*xcs + row_in[r] + shift[t] + j], for rows [r0, r1) and
   columns j < width. Channels are taken in blocks of cblock (partial sums kept in out);
   each tile of a row is done for every filter block while its pixels are in the L1 cache. */
template <typename T, int FB, int P>
static void correlate(const T* __restrict x, long xcs, const T* __restrict wp,
                      T* __restrict out, long ocs, int groups, int cg, int fg, int cblock,
                      int ntaps, const long* shifts, int r0, int r1, const long* row_in,
                      const long* row_out, int width) {
    typedef typename Vec<T>::type vec;
    const int V = VBYTES / sizeof(T);
    const int tile = P * V;
    const int nfb = (fg + FB - 1) / FB;
    T partial[FB][P * (VBYTES / sizeof(T))];
    for (int g = 0; g < groups; g++) {
        for (int c0 = 0; c0 < cg; c0 += cblock) {
            const int c1 = c0 + cblock < cg ? c0 + cblock : cg;
            auto body = [&](int r, int j0, int fb) __attribute__((always_inline)) {
                    const bool full = j0 + tile <= width;
                    const T* xrow = x + row_in[r] + j0 + (long)g * cg * xcs;
                    {
                        const int nf = fg - fb * FB < FB ? fg - fb * FB : FB;
                        const T* wblock = wp + ((long)(g * nfb + fb) * cg) * ntaps * FB;
                        T* orow = out + (long)(g * fg + fb * FB) * ocs + row_out[r] + j0;
                        vec acc[FB][P];
                        if (c0 == 0) {
                            for (int i = 0; i < FB; i++)
                                for (int p = 0; p < P; p++) acc[i][p] = splat<T>(0);
                        } else if (full) {
                            for (int i = 0; i < FB; i++)
                                for (int p = 0; p < P; p++)
                                    acc[i][p] = i < nf ? load(orow + i * ocs + p * V) : splat<T>(0);
                        } else {
                            for (int i = 0; i < FB; i++) {
                                if (i < nf) memcpy(partial[i], orow + i * ocs, sizeof(T) * (width - j0));
                                for (int p = 0; p < P; p++) acc[i][p] = load(partial[i] + p * V);
                            }
                        }
                        if (PREFETCH && fb == 0)
                            accumulate<T, FB, P, true>(acc, xrow, xcs, wblock, c0, c1, ntaps,
                                                       shifts);
                        else
                            accumulate<T, FB, P, false>(acc, xrow, xcs, wblock, c0, c1, ntaps,
                                                        shifts);
                        if (full) {
                            for (int i = 0; i < nf; i++)
                                for (int p = 0; p < P; p++) store(orow + i * ocs + p * V, acc[i][p]);
                        } else {
                            for (int i = 0; i < nf; i++) {
                                for (int p = 0; p < P; p++) store(partial[i] + p * V, acc[i][p]);
                                memcpy(orow + i * ocs, partial[i], sizeof(T) * (width - j0));
                            }
                        }
                    }
            };
            for (int r = r0; r < r1; r++)
                for (int j0 = 0; j0 < width; j0 += tile)
                    for (int fb = 0; fb < nfb; fb++) body(r, j0, fb);
        }
    }
}

/* dw[(g*fg + f)*cg + c][t] += sum over p in [start, stop) of
   gy[(g*fg + f)*gcs + p] * x[(g*cg + c)*xcs + p + shift[t]]; stop - start is a multiple of
   the vector width and gy is zero where the sum must skip (wrapped columns). For each block
   of FB filters and CB channels the columns go in chunks, every tap on a chunk while it is
   in cache; the vector sums of each tap are kept in part[] between chunks and reduced once. */
template <typename T, int FB, int CB>
static void weight_grad(const T* __restrict x, long xcs, const T* __restrict gy, long gcs,
                        T* __restrict dw, int groups, int cg, int fg, int ntaps,
                        const long* shifts, long start, long stop, long chunk) {
    typedef typename Vec<T>::type vec;
    const int V = VBYTES / sizeof(T);
    vec* part = (vec*)aligned_alloc(64, sizeof(vec) * FB * CB * ntaps);
    if (!part) return;
    for (int g = 0; g < groups; g++) {
        for (int f0 = 0; f0 < fg; f0 += FB) {
            const T* grow[FB];
            for (int i = 0; i < FB; i++)
                grow[i] = gy + (long)(g * fg + (f0 + i < fg ? f0 + i : fg - 1)) * gcs;
            for (int c0 = 0; c0 < cg; c0 += CB) {
                const T* xrow[CB];
                for (int k = 0; k < CB; k++)
                    xrow[k] = x + (long)(g * cg + (c0 + k < cg ? c0 + k : cg - 1)) * xcs;
                for (int n = 0; n < FB * CB * ntaps; n++) part[n] = splat<T>(0);
                for (long p0 = start; p0 < stop; p0 += chunk) {
                    const long p1 = p0 + chunk < stop ? p0 + chunk : stop;
                    for (int t = 0; t < ntaps; t++) {
                        const long shift = shifts[t];
                        vec* tap_part = part + (long)t * FB * CB;
                        vec acc[FB][CB];
                        for (int i = 0; i < FB; i++)
                            for (int k = 0; k < CB; k++) acc[i][k] = tap_part[i * CB + k];
                        for (long p = p0; p < p1; p += V) {
                            vec xv[CB];
                            for (int k = 0; k < CB; k++) xv[k] = load(xrow[k] + p + shift);
                            for (int i = 0; i < FB; i++) {
                                const vec gv = load(grow[i] + p);
                                for (int k = 0; k < CB; k++) acc[i][k] += gv * xv[k];
                            }
                        }
                        for (int i = 0; i < FB; i++)
                            for (int k = 0; k < CB; k++) tap_part[i * CB + k] = acc[i][k];
                    }
                }
                for (int t = 0; t < ntaps; t++)
                    for (int i = 0; i < FB && f0 + i < fg; i++)
                        for (int k = 0; k < CB && c0 + k < cg; k++) {
                            const vec v = part[((long)t * FB + i) * CB + k];
                            T sum = 0;
                            for (int l = 0; l < V; l++) sum += v[l];
                            dw[((long)(g * fg + f0 + i) * cg + c0 + k) * ntaps + t] += sum;
                        }
            }
        }
    }
    free(part);
}

/* Channels [c0, c1) of zero-padded images: row r of padded channel c (row_len elements at
   out + c * frame + r * row_len) holds count elements of the source row at
   x + c * xcs + src_row[r] + src0 from column dst0 on, zeros elsewhere (all zeros when
   src_row[r] < 0). */
template <typename T>
static void pad_channels(const T* __restrict x, long xcs, T* __restrict out, long frame, int c0,
                         int c1, int rows, const long* src_row, long row_len, long src0,
                         long dst0, long count) {
    for (int c = c0; c < c1; c++) {
        const T* xc = x + (long)c * xcs + src0;
        T* oc = out + (long)c * frame;
        for (int r = 0; r < rows; r++) {
            T* o = oc + (long)r * row_len;
            if (src_row[r] < 0) {
                memset(o, 0, sizeof(T) * row_len);
                continue;
            }
            memset(o, 0, sizeof(T) * dst0);
            memcpy(o + dst0, xc + src_row[r], sizeof(T) * count);
            memset(o + dst0 + count, 0, sizeof(T) * (row_len - dst0 - count));
        }
    }
}

/* Filter blocks [b0, b1) (counted over groups and blocks) of the packed weights
   out[g][block][c][t][FB]: element i is w[g * gs + f * fs + c * cs + t'] for filter
   f = block * FB + i < fg (zero past it), with t' = ntaps - 1 - t when flip (the kernel
   rotated by 180 degrees), t otherwise. */
template <typename T>
static void pack(const T* __restrict w, long gs, long fs, long cs, int fg, int cg, int ntaps,
                 int fb_size, int flip, int b0, int b1, T* __restrict out) {
    const int nfb = (fg + fb_size - 1) / fb_size;
    for (int gb = b0; gb < b1; gb++) {
        const int g = gb / nfb, f0 = (gb % nfb) * fb_size;
        const int nf = fg - f0 < fb_size ? fg - f0 : fb_size;
        T* o = out + (long)gb * cg * ntaps * fb_size;
        for (int c = 0; c < cg; c++) {
            const T* wc = w + g * gs + (long)f0 * fs + c * cs;
            for (int t = 0; t < ntaps; t++) {
                const T* wt = wc + (flip ? ntaps - 1 - t : t);
                for (int i = 0; i < nf; i++) o[i] = wt[i * fs];
                for (int i = nf; i < fb_size; i++) o[i] = 0;
                o += fb_size;
            }
        }
    }
}

#define CORRELATE(T, NAME, FB, P)                                                          \
    extern "C" void correlate_##NAME##_##FB##_##P(                                          \
        const T* x, long xcs, const T* wp, T* out, long ocs, int groups, int cg, int fg,   \
        int cblock, int ntaps, const long* shifts, int r0, int r1, const long* row_in,     \
        const long* row_out, int width) {                                                  \
        correlate<T, FB, P>(x, xcs, wp, out, ocs, groups, cg, fg, cblock, ntaps, shifts,   \
                            r0, r1, row_in, row_out, width);                               \
    }
#define WEIGHT_GRAD(T, NAME, FB, CB)                                                       \
    extern "C" void weight_grad_##NAME##_##FB##_##CB(                                       \
        const T* x, long xcs, const T* gy, long gcs, T* dw, int groups, int cg, int fg,    \
        int ntaps, const long* shifts, long start, long stop, long chunk) {                \
        weight_grad<T, FB, CB>(x, xcs, gy, gcs, dw, groups, cg, fg, ntaps, shifts, start,  \
                               stop, chunk);                                               \
    }
#define HELPERS(T, NAME)                                                                   \
    extern "C" void pad_channels_##NAME(const T* x, long xcs, T* out, long frame, int c0,   \
                                        int c1, int rows, const long* src_row, long row_len, \
                                        long src0, long dst0, long count) {                  \
        pad_channels<T>(x, xcs, out, frame, c0, c1, rows, src_row, row_len, src0, dst0,     \
                        count);                                                              \
    }                                                                                        \
    extern "C" void pack_##NAME(const T* w, long gs, long fs, long cs, int fg, int cg,       \
                                int ntaps, int fb_size, int flip, int b0, int b1, T* out) {  \
        pack<T>(w, gs, fs, cs, fg, cg, ntaps, fb_size, flip, b0, b1, out);                   \
    }
#define VARIANTS(T, NAME)                                                                  \
    CORRELATE(T, NAME, 4, 1) CORRELATE(T, NAME, 4, 2) CORRELATE(T, NAME, 4, 3)             \
    CORRELATE(T, NAME, 4, 4) CORRELATE(T, NAME, 8, 1) CORRELATE(T, NAME, 8, 2)             \
    CORRELATE(T, NAME, 8, 3) CORRELATE(T, NAME, 6, 4) CORRELATE(T, NAME, 12, 2)            \
    CORRELATE(T, NAME, 6, 2) WEIGHT_GRAD(T, NAME, 2, 4) WEIGHT_GRAD(T, NAME, 4, 4)         \
    WEIGHT_GRAD(T, NAME, 4, 6) HELPERS(T, NAME)
VARIANTS(float, float32)
VARIANTS(double, float64)

extern "C" int vector_bytes(void) { return VBYTES; }
extern "C" int vector_registers(void) { return NREGS; }
"""

_CORRELATE_VARIANTS = [(4, 1), (4, 2), (4, 3), (4, 4), (8, 1), (8, 2), (8, 3), (6, 4), (12, 2),
                       (6, 2)]
_WEIGHT_GRAD_VARIANTS = [(2, 4), (4, 4), (4, 6)]

_lock = threading.Lock()
_state = {"loaded": False, "library": None}


class _Library:
    """The loaded kernels: ``correlate[dtype][(FB, P)]``, ``weight_grad[dtype][(FB, CB)]``,
    ``pad[dtype]`` and ``pack[dtype]``."""

    def __init__(self, handle):
        self.handle = handle
        self.vector_bytes = handle.vector_bytes()
        self.registers = handle.vector_registers()
        pointer, long, int_ = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        self.correlate, self.weight_grad, self.pad, self.pack = {}, {}, {}, {}
        for dtype in (np.dtype(np.float32), np.dtype(np.float64)):
            name = dtype.name
            self.correlate[dtype], self.weight_grad[dtype] = {}, {}
            self.pad[dtype] = function = getattr(handle, f"pad_channels_{name}")
            function.restype = None
            function.argtypes = [pointer, long, pointer, long, int_, int_, int_, pointer, long,
                                 long, long, long]
            self.pack[dtype] = function = getattr(handle, f"pack_{name}")
            function.restype = None
            function.argtypes = [pointer, long, long, long, int_, int_, int_, int_, int_, int_,
                                 int_, pointer]
            for fb, p in _CORRELATE_VARIANTS:
                function = getattr(handle, f"correlate_{name}_{fb}_{p}")
                function.restype = None
                function.argtypes = [pointer, long, pointer, pointer, long, int_, int_, int_,
                                     int_, int_, pointer, int_, int_, pointer, pointer, int_]
                self.correlate[dtype][fb, p] = function
            for fb, cb in _WEIGHT_GRAD_VARIANTS:
                function = getattr(handle, f"weight_grad_{name}_{fb}_{cb}")
                function.restype = None
                function.argtypes = [pointer, long, pointer, long, pointer, int_, int_, int_,
                                     int_, pointer, long, long, long]
                self.weight_grad[dtype][fb, cb] = function


def library():
    """The compiled kernels, or None when no compiler is available (built at first call)."""
    with _lock:
        if not _state["loaded"]:
            _state["loaded"], _state["library"] = True, None
            handle = load_library("conv_kernels", _SOURCE, "C convolution kernels",
                                  "the BLAS kernels")
            if handle is not None:
                try:
                    _state["library"] = _Library(handle)
                except AttributeError as error:
                    warnings.warn(f"fcn8_lasagne: loading the C convolution kernels failed "
                                  f"({error}); using the BLAS kernels", RuntimeWarning)
        return _state["library"]


def vector_width(dtype):
    """Elements of ``dtype`` per vector register of the compiled kernels."""
    return library().vector_bytes // np.dtype(dtype).itemsize


def slack(dtype):
    """Trailing elements a flattened image needs past its last pixel."""
    return 4 * vector_width(dtype)


def pack_weights(w, groups, block, flip, transposed=False):
    """Pack a kernel as ``[group][filter block][channel][tap][block]`` for :func:`correlate`.

    ``w`` is (F, C / groups, *k). The packed correlation has the filters ``F`` and the
    channels ``C / groups`` per group, or with ``transposed`` those of the transposed
    correlation (the gradient w.r.t. the input): ``C`` filters, ``F / groups`` channels per
    group, filter ``c`` of group ``g`` reading ``w[g * F / groups + f, c]`` for channel ``f``.
    Taps are in C order of the kernel, rotated by 180 degrees when ``flip``; filters past
    the last of a group are zero.
    """
    w = np.ascontiguousarray(w)
    filters, per_group = w.shape[:2]
    taps = int(np.prod(w.shape[2:]))
    group_stride = filters // groups * per_group * taps
    if transposed:
        fg, cg, filter_stride, channel_stride = per_group, filters // groups, taps, per_group * taps
    else:
        fg, cg, filter_stride, channel_stride = filters // groups, per_group, per_group * taps, taps
    blocks = -(-fg // block)
    packed = np.empty((groups, blocks, cg, taps, block), dtype=w.dtype)
    function = library().pack[w.dtype]

    def run(span, _):
        function(_pointer(w), group_stride, filter_stride, channel_stride, fg, cg, taps, block,
                 int(bool(flip)), span[0], span[1], _pointer(packed))

    count = groups * blocks
    pieces = worker_count() if packed.size >= _PARALLEL_COPY_SIZE else 1
    parallel_for(spans(count, -(-count // pieces)), run)
    return packed


def _pointer(array):
    return ctypes.c_void_p(array.ctypes.data)


def choose_tile(width, filters_per_group, dtype):
    """``(FB, P)``: filters per block and vectors per row tile for rows of ``width``."""
    lib = library()
    vector = vector_width(dtype)
    budget = 24 if lib.registers >= 32 else 12
    best = None
    for fb, p in _CORRELATE_VARIANTS:
        if fb * p > budget:
            continue
        # work done, with the padding of filter blocks and row tiles, per useful FMA,
        # and a penalty when too few accumulators hide the FMA latency
        tiles = -(-width // (p * vector))
        waste = (tiles * p * vector / width) * (-(-filters_per_group // fb) * fb
                                                / filters_per_group)
        latency = max(1.0, 8.0 / (fb * p))
        loads = (fb + p) / (fb * p)
        cost = waste * latency * (1.0 + 0.5 * loads)
        if best is None or cost < best[0] - 1e-9:
            best = (cost, (fb, p))
    return best[1]


def correlate(x_flat, channel_stride, packed, out, out_channel_stride, groups, cg, fg,
              shifts, row_in, row_out, width, tile, rows, cblock):
    """Run the correlation kernel of ``tile = (FB, P)`` on output rows ``rows = (r0, r1)``.

    ``x_flat`` and ``out`` are arrays (or views) whose first element is channel 0 of one
    image; ``shifts``, ``row_in`` and ``row_out`` are int64 arrays (see the module
    docstring).
    """
    function = library().correlate[out.dtype][tile]
    function(_pointer(x_flat), channel_stride, _pointer(packed), _pointer(out),
             out_channel_stride, groups, cg, fg, cblock, len(shifts), _pointer(shifts),
             rows[0], rows[1], _pointer(row_in), _pointer(row_out), width)


def weight_grad(x_flat, channel_stride, gy_flat, gy_channel_stride, dw, groups, cg, fg,
                shifts, span, chunk, block=None):
    """Add the weight gradient of columns ``span = (start, stop)`` into ``dw``
    (F, C / groups, taps), C-contiguous."""
    kernels = library().weight_grad[dw.dtype]
    if block is None:
        block = (4, 4) if library().registers >= 32 else (2, 4)
    kernels[block](_pointer(x_flat), channel_stride, _pointer(gy_flat), gy_channel_stride,
                   _pointer(dw), groups, cg, fg, len(shifts), _pointer(shifts), span[0],
                   span[1], chunk)


# --- whole convolutions on the kernels above ------------------------------------------------

# Bytes of input pixels one output tile reads per channel block (reused by every filter block
# of the tile). Smaller blocks keep them in the L1 cache but reload the partial sums more
# often; measured on a 48 KiB L1: 8-16 KiB 10-20% slower, 32-512 KiB within noise.
_TILE_INPUT_BYTES = 64 << 10
# Bytes of partial sums (output rows) of one task when the channels go in several blocks:
# they are revisited by every block, so they should stay in the L2 cache.
_PARTIAL_SUM_BYTES = 512 << 10
# Bytes per row of a column chunk of the weight gradient: every tap runs on a chunk of FB
# output-gradient rows and CB image rows while they are in cache (measured best: 4 KiB;
# 2 and 8 KiB were 25-35% slower on 32 channels of 32^3 voxels).
_CHUNK_ROW_BYTES = 4 << 10
# Copies (padding, weight packing) of fewer elements are not worth splitting among threads.
_PARALLEL_COPY_SIZE = 1 << 20


def _padded_flat(x, pads, totals, tail=0):
    """``x`` (B, C, *S) zero-padded (negative pads crop) to spatial size ``totals`` at
    offsets ``pads``, flattened to (B, C, prod(totals)) inside a buffer with
    ``max(tail, slack(dtype))`` trailing zeros."""
    batch, channels = x.shape[:2]
    itemsize = x.itemsize
    if x.strides[-1] != itemsize or any(s < 0 or s % itemsize for s in x.strides):
        x = np.ascontiguousarray(x)
    size = int(np.prod(totals))
    buffer = _aligned_empty((batch * channels * size + max(tail, slack(x.dtype)),), x.dtype)
    buffer[batch * channels * size:] = 0
    flat = buffer[:batch * channels * size].reshape(batch, channels, size)
    # where each row of a padded channel starts in its source channel (-1: a row of zeros)
    starts = np.zeros(1, dtype=np.int64)
    for n, p, t, stride in zip(x.shape[2:-1], pads[:-1], totals[:-1], x.strides[2:-1]):
        source = np.arange(t) - p
        offsets = np.where((source >= 0) & (source < n), source * (stride // itemsize), -1)
        starts = np.where((starts[:, None] < 0) | (offsets[None, :] < 0), -1,
                          starts[:, None] + offsets[None, :]).ravel()
    n, p, t = x.shape[-1], pads[-1], totals[-1]
    src0, dst0 = max(0, -p), max(0, p)
    count = min(n - src0, t - dst0)
    if count <= 0:
        starts[:] = -1
        src0 = dst0 = count = 0
    starts = np.ascontiguousarray(starts)
    function = library().pad[x.dtype]
    channel_stride = x.strides[1] // itemsize

    def copy(task, _):
        b, (start, stop) = task
        function(ctypes.c_void_p(x.ctypes.data + b * x.strides[0]), channel_stride,
                 _pointer(flat[b]), size, start, stop, starts.size, _pointer(starts), t, src0,
                 dst0, count)

    pieces = worker_count() if flat.size >= _PARALLEL_COPY_SIZE else 1
    block = max(1, -(-channels // -(-pieces // batch)))
    parallel_for([(b, span) for b in range(batch) for span in spans(channels, block)], copy)
    return flat


def _aligned_empty(shape, dtype, alignment=64, allocate=np.empty):
    """An array whose first element sits on an ``alignment``-byte boundary (so rows whose
    length is a multiple of the vector width are aligned: split loads are slower)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    buffer = allocate(count + alignment // dtype.itemsize, dtype=dtype)
    offset = (-buffer.ctypes.data % alignment) // dtype.itemsize
    return buffer[offset:offset + count].reshape(shape)


def _aligned_zeros(shape, dtype, alignment=64):
    """Zeros, aligned as by :func:`_aligned_empty`."""
    return _aligned_empty(shape, dtype, alignment, np.zeros)


def _row_tables(out_shape, steps):
    """``(row_in, row_out)``: where each output row starts in the padded input grid and in the
    compact output."""
    leading = [np.arange(n, dtype=np.int64) * s for n, s in zip(out_shape[:-1], steps[:-1])]
    row_in = np.zeros(1, dtype=np.int64)
    for offsets in leading:
        row_in = (row_in[:, None] + offsets[None, :]).ravel()
    row_out = np.arange(row_in.size, dtype=np.int64) * out_shape[-1]
    return np.ascontiguousarray(row_in), row_out


def _shifts(kernel, dilation, steps):
    taps = np.indices(kernel).reshape(len(kernel), -1).T
    return np.ascontiguousarray(taps @ (np.asarray(dilation) * np.asarray(steps)),
                                dtype=np.int64)


def conv_correlation(x, w, pads, out_shape, flip, dilation, groups, tile=None,
                     transposed=False):
    """Stride-1 grouped correlation (a true convolution when ``flip``) of ``x`` zero-padded by
    ``pads`` with ``w`` (F, C / groups, *k), or with ``transposed`` with the kernel of the
    transposed correlation (see :func:`pack_weights`: ``x`` then has ``F`` channels).

    Returns
    -------
    ndarray, (B, F, *out_shape), or (B, C, *out_shape) when ``transposed``, C-contiguous
    """
    w = np.asarray(w, dtype=x.dtype)
    batch, channels = x.shape[:2]
    kernel = w.shape[2:]
    if transposed:
        filters, cg = w.shape[1] * groups, w.shape[0] // groups
    else:
        filters, cg = w.shape[:2]
    fg = filters // groups
    totals = tuple(n + (k - 1) * d for n, k, d in zip(out_shape, kernel, dilation))
    flat = _padded_flat(x, pads, totals)
    steps = grid_steps(totals)
    shifts = _shifts(kernel, dilation, steps)
    row_in, row_out = _row_tables(out_shape, steps)
    width = out_shape[-1]
    tile = tile or choose_tile(width, fg, x.dtype)
    packed = pack_weights(w, groups, tile[0], flip, transposed)
    # one cache line more per row than the tile, for unaligned reads and shifts
    tile_row_bytes = tile[1] * vector_width(x.dtype) * x.itemsize + 64
    cmax = max(1, _TILE_INPUT_BYTES // (int(np.prod(kernel[:-1])) * tile_row_bytes))
    cblock = -(-cg // -(-cg // cmax))
    out = np.empty((batch, filters, int(np.prod(out_shape))), dtype=x.dtype)
    rows = row_in.size
    pieces = max(1, -(-4 * worker_count() // batch))
    per_task = max(1, -(-rows // pieces))
    if cblock < cg:  # the partial sums of a task's rows are revisited per channel block
        per_task = min(per_task, max(1, _PARTIAL_SUM_BYTES // (filters * width * x.itemsize)))
    frame = flat.shape[2]

    def run(task, _):
        b, (r0, r1) = task
        correlate(flat[b], frame, packed, out[b], out.shape[2], groups, cg, fg, shifts,
                  row_in, row_out, width, tile, (r0, r1), cblock)

    parallel_for([(b, span) for b in range(batch) for span in spans(rows, per_task)], run,
                 flops=2.0 * out.size * cg * len(shifts))
    return out.reshape(batch, filters, *out_shape)


def conv_weight_grad(x, gy, kernel, pads, dilation, groups):
    """Gradient ``(F, C / groups, *kernel)`` of the stride-1 unflipped correlation of ``x``
    zero-padded by ``pads`` with its output gradient ``gy`` (B, F, *out)."""
    gy = np.asarray(gy, dtype=x.dtype)
    batch, channels = x.shape[:2]
    filters = gy.shape[1]
    out_shape = gy.shape[2:]
    cg, fg = channels // groups, filters // groups
    totals = tuple(n + (k - 1) * d for n, k, d in zip(out_shape, kernel, dilation))
    steps = grid_steps(totals)
    shifts = _shifts(kernel, dilation, steps)
    vector = vector_width(x.dtype)
    wide = out_shape[0] * steps[0]
    length = -(-wide // vector) * vector
    # The last tap of the last channel reads ``length`` columns from its shift, past the
    # padded image: those reads must be zeros (times a zero gradient), not stale memory that
    # may hold NaN.
    flat = _padded_flat(x, pads, totals, tail=int(shifts[-1]) + length - int(np.prod(totals)))
    # the output gradient on the padded grid: zeros where the wrapped columns would add
    wide_grad = _aligned_zeros((batch, filters, length), gy.dtype)
    grid = wide_grad[:, :, :wide].reshape(batch, filters, out_shape[0], *totals[1:])
    grid[(Ellipsis,) + tuple(slice(0, n) for n in out_shape)] = gy
    chunk = max(vector, _CHUNK_ROW_BYTES // x.itemsize // vector * vector)
    pieces = max(1, -(-2 * worker_count() // batch))
    per_task = -(-(-(-length // pieces)) // vector) * vector
    frame = flat.shape[2]

    def new_state():
        return np.zeros((filters, cg, len(shifts)), dtype=x.dtype)

    def run(task, dw):
        b, span = task
        weight_grad(flat[b], frame, wide_grad[b], length, dw, groups, cg, fg, shifts, span,
                    chunk)

    states = parallel_for([(b, span) for b in range(batch) for span in spans(length, per_task)],
                          run, new_state, flops=2.0 * gy.size * cg * len(shifts))
    grad = states[0]
    for state in states[1:]:
        grad += state
    return grad.reshape(filters, cg, *kernel)
