"""The tile transforms of :mod:`._winograd` in C++, compiled at first use.

In NumPy each transform is eight passes over a band of tiles (a subtraction or addition of
two strided views per pass); measured on FCN-8's layers (``benchmarks/profile_conv_cpu.py``)
they took about as many thread-seconds as the GEMMs between them. These loops do each
transform in one pass: every 4x4 input tile is read once and its 16 transformed values
written, every 4x4 block of products is read once and its 2x2 outputs written. They compute
the same additions and subtractions in the same order as the NumPy code (no fused or
reassociated arithmetic: ``-O3`` without ``-ffast-math``), so the results are bitwise equal
to it (``tests/ops/test_winograd.py``).

The source is compiled once per machine by :mod:`._c_build` and loaded with ``ctypes``, which
releases the GIL (the worker threads run the calls side by side). Without a compiler, when
compiling fails, or with ``FCN8_LASAGNE_C_KERNELS=0``, :func:`library` returns None and
:mod:`._winograd` keeps its NumPy transforms.
"""

import ctypes
import threading

import numpy as np

from ._c_build import load_library

__all__ = ["library", "transform_input", "transform_output", "transform_output_grad"]

_SOURCE = r"""
#include <vector>

// Scratch rows for the two-pass transforms: the even and the odd columns of four
// combinations of image rows, each ``length`` long.
template <typename T>
struct EvenOdd {
    std::vector<T> scratch;
    T* even[4];
    T* odd[4];
    explicit EvenOdd(long length) : scratch(8 * length) {
        for (int a = 0; a < 4; ++a) {
            even[a] = scratch.data() + (2 * a) * length;
            odd[a] = scratch.data() + (2 * a + 1) * length;
        }
    }
};

// B^T d B of every 4x4 tile (stride 2) of a band of image rows, written as
// out[(a * 4 + d) * channels + c][i * tiles_w + j]. Two passes per tile row, each a loop
// the compiler vectorises: the column combinations of the four rows (t_a, kept as even
// and odd columns), then the row combinations of those, tile by tile. Same operations in
// the same order as one tile at a time.
template <typename T>
static void input_transform(const T* __restrict__ rows, long channel_stride, long row_stride,
                            long channels, long n, long tiles_w, T* __restrict__ out) {
    const long plane = n * tiles_w, channel_plane = channels * plane;
    const long pairs = tiles_w + 1;
    EvenOdd<T> combined(pairs);
    T* const* even = combined.even;
    T* const* odd = combined.odd;
    for (long c = 0; c < channels; ++c) {
        for (long i = 0; i < n; ++i) {
            const T* r0 = rows + c * channel_stride + 2 * i * row_stride;
            const T* r1 = r0 + row_stride;
            const T* r2 = r1 + row_stride;
            const T* r3 = r2 + row_stride;
            T* __restrict__ e0 = even[0]; T* __restrict__ e1 = even[1];
            T* __restrict__ e2 = even[2]; T* __restrict__ e3 = even[3];
            T* __restrict__ o0 = odd[0]; T* __restrict__ o1 = odd[1];
            T* __restrict__ o2 = odd[2]; T* __restrict__ o3 = odd[3];
            for (long j = 0; j < pairs; ++j) {
                const long col = 2 * j;
                e0[j] = r0[col] - r2[col];
                e1[j] = r1[col] + r2[col];
                e2[j] = r2[col] - r1[col];
                e3[j] = r1[col] - r3[col];
                o0[j] = r0[col + 1] - r2[col + 1];
                o1[j] = r1[col + 1] + r2[col + 1];
                o2[j] = r2[col + 1] - r1[col + 1];
                o3[j] = r1[col + 1] - r3[col + 1];
            }
            T* o = out + c * plane + i * tiles_w;
            for (int a = 0; a < 4; ++a) {
                const T* __restrict__ e = even[a];
                const T* __restrict__ d = odd[a];
                T* __restrict__ p0 = o + (4 * a) * channel_plane;
                T* __restrict__ p1 = p0 + channel_plane;
                T* __restrict__ p2 = p1 + channel_plane;
                T* __restrict__ p3 = p2 + channel_plane;
                for (long j = 0; j < tiles_w; ++j) {
                    p0[j] = e[j] - e[j + 1];
                    p1[j] = d[j] + e[j + 1];
                    p2[j] = e[j + 1] - d[j];
                    p3[j] = d[j] - d[j + 1];
                }
            }
        }
    }
}

// A^T M A of every 4x4 block of products (in[(a * 4 + d) * filters + f][i * tiles_w + j])
// into output pixels (2 i + a, 2 j + d) of each filter's image.
template <typename T>
static void output_transform(const T* __restrict__ in, long filters, long n, long tiles_w,
                             T* __restrict__ out, long channel_stride, long row_stride) {
    const long plane = n * tiles_w, filter_plane = filters * plane;
    for (long f = 0; f < filters; ++f) {
        for (long i = 0; i < n; ++i) {
            const T* m = in + f * plane + i * tiles_w;
            T* y0 = out + f * channel_stride + 2 * i * row_stride;
            T* y1 = y0 + row_stride;
            for (long j = 0; j < tiles_w; ++j) {
                T p[2][4];
                for (long c = 0; c < 4; ++c) {
                    const T m0 = m[(0 + c) * filter_plane + j], m1 = m[(4 + c) * filter_plane + j];
                    const T m2 = m[(8 + c) * filter_plane + j], m3 = m[(12 + c) * filter_plane + j];
                    p[0][c] = (m0 + m1) + m2;
                    p[1][c] = (m1 - m2) - m3;
                }
                y0[2 * j] = (p[0][0] + p[0][1]) + p[0][2];
                y0[2 * j + 1] = (p[0][1] - p[0][2]) - p[0][3];
                y1[2 * j] = (p[1][0] + p[1][1]) + p[1][2];
                y1[2 * j + 1] = (p[1][1] - p[1][2]) - p[1][3];
            }
        }
    }
}

// A dY A^T of every 2x2 block of an output gradient, written as
// out[(a * 4 + d) * filters + f][i * tiles_w + j]. Two vectorised passes per row of blocks,
// as in input_transform: the row combinations (even and odd columns apart), then the
// column combinations. Same operations in the same order as one block at a time.
template <typename T>
static void output_grad_transform(const T* __restrict__ in, long channel_stride,
                                  long row_stride, long filters, long n, long tiles_w,
                                  T* __restrict__ out) {
    const long plane = n * tiles_w, filter_plane = filters * plane;
    EvenOdd<T> combined(tiles_w);
    T* const* even = combined.even;
    T* const* odd = combined.odd;
    for (long f = 0; f < filters; ++f) {
        for (long i = 0; i < n; ++i) {
            const T* g0 = in + f * channel_stride + 2 * i * row_stride;
            const T* g1 = g0 + row_stride;
            T* __restrict__ e0 = even[0]; T* __restrict__ e1 = even[1];
            T* __restrict__ e2 = even[2]; T* __restrict__ e3 = even[3];
            T* __restrict__ o0 = odd[0]; T* __restrict__ o1 = odd[1];
            T* __restrict__ o2 = odd[2]; T* __restrict__ o3 = odd[3];
            for (long j = 0; j < tiles_w; ++j) {
                const T first0 = g0[2 * j], first1 = g0[2 * j + 1];
                const T second0 = g1[2 * j], second1 = g1[2 * j + 1];
                e0[j] = first0;
                o0[j] = first1;
                e1[j] = first0 + second0;
                o1[j] = first1 + second1;
                e2[j] = first0 - second0;
                o2[j] = first1 - second1;
                e3[j] = -second0;
                o3[j] = -second1;
            }
            T* o = out + f * plane + i * tiles_w;
            for (int a = 0; a < 4; ++a) {
                const T* __restrict__ e = even[a];
                const T* __restrict__ d = odd[a];
                T* __restrict__ p0 = o + (4 * a) * filter_plane;
                T* __restrict__ p1 = p0 + filter_plane;
                T* __restrict__ p2 = p1 + filter_plane;
                T* __restrict__ p3 = p2 + filter_plane;
                for (long j = 0; j < tiles_w; ++j) {
                    p0[j] = e[j];
                    p1[j] = e[j] + d[j];
                    p2[j] = e[j] - d[j];
                    p3[j] = -d[j];
                }
            }
        }
    }
}

#define EXPORT(T, suffix)                                                                  \
    extern "C" void winograd_input_##suffix(const T* rows, long cs, long rs, long channels,  \
                                            long n, long tw, T* out) {                     \
        input_transform<T>(rows, cs, rs, channels, n, tw, out);                            \
    }                                                                                      \
    extern "C" void winograd_output_##suffix(const T* in, long filters, long n, long tw,    \
                                             T* out, long cs, long rs) {                   \
        output_transform<T>(in, filters, n, tw, out, cs, rs);                              \
    }                                                                                      \
    extern "C" void winograd_output_grad_##suffix(const T* in, long cs, long rs,            \
                                                  long filters, long n, long tw, T* out) { \
        output_grad_transform<T>(in, cs, rs, filters, n, tw, out);                         \
    }

EXPORT(float, f32)
EXPORT(double, f64)
"""

_SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_lock = threading.Lock()
_library = None
_loaded = False


def library():
    """The loaded transforms (a ``ctypes.CDLL``), or None when unavailable (see above)."""
    global _library, _loaded
    with _lock:
        if not _loaded:
            _loaded = True
            handle = load_library("winograd", _SOURCE, "Winograd transforms", "NumPy")
            if handle is not None:
                for suffix in _SUFFIXES.values():
                    for name in ("input", "output", "output_grad"):
                        getattr(handle, f"winograd_{name}_{suffix}").restype = None
                _library = handle
        return _library


def _elements(stride, itemsize):
    return ctypes.c_long(stride // itemsize)


def transform_input(rows, tiles_w, transformed):
    """C version of ``_winograd._transform_input`` (without its scratch buffer).

    ``rows`` ``(C, 2 n + 2, >= 2 tiles_w + 2)`` with unit column stride; ``transformed``
    a C-contiguous ``(4, 4, C, n, tiles_w)``.
    """
    channels, n = transformed.shape[2], transformed.shape[3]
    size = rows.itemsize
    function = getattr(_library, f"winograd_input_{_SUFFIXES[rows.dtype]}")
    function(ctypes.c_void_p(rows.ctypes.data), _elements(rows.strides[0], size),
             _elements(rows.strides[1], size), ctypes.c_long(channels), ctypes.c_long(n),
             ctypes.c_long(tiles_w), ctypes.c_void_p(transformed.ctypes.data))


def transform_output(products, out):
    """C version of ``_winograd._transform_output``: ``products`` a C-contiguous
    ``(4, 4, F, n, tw)``, ``out`` a ``(F, n, 2, tw, 2)`` view of whole images' rows."""
    filters, n, tiles_w = products.shape[2:]
    size = out.itemsize
    function = getattr(_library, f"winograd_output_{_SUFFIXES[out.dtype]}")
    function(ctypes.c_void_p(products.ctypes.data), ctypes.c_long(filters), ctypes.c_long(n),
             ctypes.c_long(tiles_w), ctypes.c_void_p(out.ctypes.data),
             _elements(out.strides[0], size), _elements(out.strides[2], size))


def transform_output_grad(blocks, out):
    """C version of ``_winograd._transform_output_grad``: ``blocks`` a ``(F, n, 2, tw, 2)``
    view of whole images' rows, ``out`` a C-contiguous ``(4, 4, F, n, tw)``."""
    filters, n, _, tiles_w, _ = blocks.shape
    size = blocks.itemsize
    function = getattr(_library, f"winograd_output_grad_{_SUFFIXES[blocks.dtype]}")
    function(ctypes.c_void_p(blocks.ctypes.data), _elements(blocks.strides[0], size),
             _elements(blocks.strides[2], size), ctypes.c_long(filters), ctypes.c_long(n),
             ctypes.c_long(tiles_w), ctypes.c_void_p(out.ctypes.data))


def usable(dtype):
    """Whether the C transforms are loaded and take ``dtype`` (float32 or float64)."""
    return np.dtype(dtype) in _SUFFIXES and library() is not None
