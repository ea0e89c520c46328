"""C implementations of the fused recurrent sequence ops (:mod:`..recurrent`).

PyTensor compiles these (its ``cmodule``, cached per machine) when a C++ compiler is
configured; without one the ops run their NumPy ``perform`` (:mod:`._recurrent_cpu`). The
whole time loop is C++: per step one BLAS GEMM for the hidden products (the input
projections of all steps are one product outside the op) and one fused loop over the
gates, which the compiler vectorises. Each time loop is a function of its own, not inlined
into the op's generated ``run()`` (``FCN8_RNN_KERNEL`` below): there GCC's static profile
judged the loops rarely executed and left the LSTM's gate loops scalar. The batch rows of a
recurrence are independent, so where the per-step products are small (one BLAS thread
each) the forward and backward loops run blocks of rows on as many threads as the worker
pool of :mod:`._threads` has (``std::thread``; at batch 32 and 128 units an LSTM's time
loop took 2.6 ms on one core, 1.4 ms on two).

BLAS: PyTensor often links none (pip installs), so the kernels call the Fortran
``sgemm``/``dgemm`` that SciPy links, the same routines :mod:`._blas` calls; their
addresses come from :mod:`scipy.linalg.cython_blas` through :func:`blas_addresses` the
first time a kernel runs. The per-step GEMMs below :data:`._recurrent_cpu.SINGLE_THREAD_MACS`
run on one OpenBLAS thread (restored after the loop), as in the NumPy kernels.

Nonlinearities: float64 uses ``std::exp``/``std::tanh``. float32 uses branch-free forms the
compiler vectorises (the gate loops carry ``#pragma GCC ivdep``: their
arrays never overlap): Cephes' ``expf`` (range reduction by ``ln 2`` in two parts, a degree-6
polynomial; within ~2 ulp over ``[-87, 88]``), ``sigmoid(x)`` as ``1 / (1 + e)`` or
``e / (1 + e)`` with ``e = exp(-|x|)`` (relative accuracy kept for large negative ``x``
down to ``exp(-87)``), and Cephes' ``tanhf`` (an odd polynomial below 0.625, else
``(1 - e) / (1 + e)`` with ``e = exp(-2|x|)``). Compared with NumPy's float32 functions they
differ by a few ulp.
"""

import ctypes
import hashlib

__all__ = ["blas_addresses", "SUPPORT_CODE", "CODE_VERSION", "lstm_forward_code",
           "lstm_backward_code", "gru_forward_code", "gru_backward_code"]


def blas_addresses():
    """``(sgemm, dgemm, get_num_threads, set_num_threads)`` addresses (0 where missing) and
    the number of threads the forward time loops may split the batch over."""
    from . import _blas, _threads

    import scipy.linalg.cython_blas as cython_blas

    sgemm = _blas._capsule_address(cython_blas.__pyx_capi__["sgemm"])
    dgemm = _blas._capsule_address(cython_blas.__pyx_capi__["dgemm"])
    get_threads, set_threads = (
        ctypes.cast(control, ctypes.c_void_p).value if control is not None else 0
        for control in (_blas._GET_THREADS, _blas._SET_THREADS))
    return (sgemm or 0, dgemm or 0, get_threads or 0, set_threads or 0,
            _threads.worker_count())


SUPPORT_CODE = r"""
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <thread>
#include <vector>

namespace fcn8_rnn {

typedef void (*sgemm_fn)(const char*, const char*, const int*, const int*, const int*,
                         const float*, const float*, const int*, const float*, const int*,
                         const float*, float*, const int*);
typedef void (*dgemm_fn)(const char*, const char*, const int*, const int*, const int*,
                         const double*, const double*, const int*, const double*,
                         const int*, const double*, double*, const int*);
typedef int (*get_threads_fn)(void);
typedef void (*set_threads_fn)(int);

static sgemm_fn sgemm_ptr = 0;
static dgemm_fn dgemm_ptr = 0;
static get_threads_fn get_threads_ptr = 0;
static set_threads_fn set_threads_ptr = 0;
static int worker_threads = 1;

/* Fetch the BLAS addresses from Python once (the GIL is held in a C thunk). */
static int load_blas(void) {
    if (sgemm_ptr && dgemm_ptr) return 0;
    PyObject* module = PyImport_ImportModule("fcn8_lasagne.ops._recurrent_c");
    if (!module) return -1;
    PyObject* result = PyObject_CallMethod(module, "blas_addresses", NULL);
    Py_DECREF(module);
    if (!result) return -1;
    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 5) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_RuntimeError, "blas_addresses() must return 5 integers");
        return -1;
    }
    void* addresses[4];
    for (int k = 0; k < 4; ++k) {
        addresses[k] = PyLong_AsVoidPtr(PyTuple_GET_ITEM(result, k));
    }
    long workers = PyLong_AsLong(PyTuple_GET_ITEM(result, 4));
    Py_DECREF(result);
    if (PyErr_Occurred()) return -1;
    if (!addresses[0] || !addresses[1]) {
        PyErr_SetString(PyExc_RuntimeError, "the recurrent C kernels found no BLAS sgemm/dgemm "
                        "in scipy.linalg.cython_blas");
        return -1;
    }
    sgemm_ptr = (sgemm_fn)addresses[0];
    dgemm_ptr = (dgemm_fn)addresses[1];
    get_threads_ptr = (get_threads_fn)addresses[2];
    set_threads_ptr = (set_threads_fn)addresses[3];
    worker_threads = workers > 1 ? (int)workers : 1;
    return 0;
}

/* Row-major C (m x n) = op(A) @ op(B) + beta * C, through the column-major Fortran call. */
static inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, const float* A,
                        int lda, const float* B, int ldb, float beta, float* C, int ldc) {
    if (m <= 0 || n <= 0) return;
    const float one = 1.0f;
    sgemm_ptr(trans_b ? "T" : "N", trans_a ? "T" : "N", &n, &m, &k, &one, B, &ldb, A, &lda,
              &beta, C, &ldc);
}

static inline void gemm(bool trans_a, bool trans_b, int m, int n, int k, const double* A,
                        int lda, const double* B, int ldb, double beta, double* C, int ldc) {
    if (m <= 0 || n <= 0) return;
    const double one = 1.0;
    dgemm_ptr(trans_b ? "T" : "N", trans_a ? "T" : "N", &n, &m, &k, &one, B, &ldb, A, &lda,
              &beta, C, &ldc);
}

/* The per-step products go to BLAS in pieces of at most SMALL_GEMM_MACS multiply-adds:
   OpenBLAS's small-matrix kernels (its SkylakeX and later builds) take such products
   (not transposed, or only the second operand) without first packing (copying) both
   operands, which at batch 32 and 128 units took about 40% of an LSTM step's product.
   Where BLAS has no such kernels the pieces cost little more than one call. */
static const double SMALL_GEMM_MACS = 1e6;

/* Width of the pieces (a multiple of 16, all but the last equal) that split `width`
   so that each product of `other` multiply-adds per unit of width stays small. */
static inline int gemm_piece(double other, int width) {
    int most = (int)(SMALL_GEMM_MACS / (other > 1 ? other : 1)) / 16 * 16;
    if (most < 16 || most >= width) return width;
    int pieces = (width + most - 1) / most;
    return ((width + pieces - 1) / pieces + 15) / 16 * 16;
}

/* Row-major C (m x n) = A (m x k) @ B (k x n) + beta * C, split along n. */
template <typename T>
static inline void gemm_split_columns(int m, int n, int k, const T* A, int lda, const T* B,
                                      int ldb, T beta, T* C, int ldc) {
    const int piece = gemm_piece((double)m * k, n);
    for (int c = 0; c < n; c += piece) {
        gemm(false, false, m, n - c < piece ? n - c : piece, k, A, lda, B + c, ldb, beta,
             C + c, ldc);
    }
}

/* Row-major C (m x n) = A (m x k) @ B (k x n) + beta * C, split along k. */
template <typename T>
static inline void gemm_split_inner(int m, int n, int k, const T* A, int lda, const T* B,
                                    int ldb, T beta, T* C, int ldc) {
    const int piece = gemm_piece((double)m * n, k);
    for (int c = 0; c < k; c += piece) {
        gemm(false, false, m, n, k - c < piece ? k - c : piece, A + c, lda,
             B + (size_t)c * ldb, ldb, c ? (T)1 : beta, C, ldc);
    }
}

/* W^T (cols x rows) of a row-major W (rows x cols), or 0 when out of memory. */
template <typename T>
static T* transposed(const T* W, int rows, int cols) {
    T* WT = (T*)std::malloc(((size_t)rows * cols + 1) * sizeof(T));
    if (!WT) return 0;
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) WT[(size_t)c * rows + r] = W[(size_t)r * cols + c];
    return WT;
}

/* d_h (B x U) += d_a (B x G) . W^T with W (U x G): through WT (G x U) when there is one. */
template <typename T>
static inline void gemm_state_gradient(int B, int U, int G, const T* d_a, const T* W,
                                       const T* WT, T* d_h) {
    if (WT) gemm_split_inner(B, U, G, d_a, G, WT, U, (T)1, d_h, U);
    else gemm(false, true, B, U, G, d_a, G, W, G, (T)1, d_h, U);
}

/* One OpenBLAS thread while alive (when asked), the previous count restored after. */
struct BlasThreads {
    int saved;
    explicit BlasThreads(bool single) : saved(-1) {
        if (single && get_threads_ptr && set_threads_ptr) {
            saved = get_threads_ptr();
            if (saved != 1) set_threads_ptr(1); else saved = -1;
        }
    }
    void restore() {
        if (saved > 0) set_threads_ptr(saved);
        saved = -1;
    }
    ~BlasThreads() { restore(); }
};

/* Batch rows of a recurrence are independent: with small per-step products (one BLAS
   thread each) the forward loops split the batch into blocks of at least MIN_BLOCK_ROWS
   rows, each block's whole time loop on a thread of its own (the first on the calling
   thread), instead of leaving the other core idle. */
static const int MIN_BLOCK_ROWS = 8;

/* Number of row blocks over_row_blocks makes of `rows` rows for up to `parts` threads. */
static inline int row_block_count(int rows, int parts) {
    if (parts > rows / MIN_BLOCK_ROWS) parts = rows / MIN_BLOCK_ROWS;
    return parts < 1 ? 1 : parts;
}

/* body(block, r0, r1) for the row_block_count(rows, parts) blocks of [0, rows), block 0 on
   the calling thread and the others on threads of their own; a block whose thread cannot
   start runs on the calling thread. */
template <typename F>
static void over_row_blocks(int rows, int parts, F body) {
    const int blocks = row_block_count(rows, parts);
    auto start = [&](int k) { return (int)((long)rows * k / blocks); };
    std::vector<std::thread> others;
    for (int k = 1; k < blocks; ++k) {
        try {
            others.emplace_back(body, k, start(k), start(k + 1));
        } catch (...) {
            body(k, start(k), start(k + 1));
        }
    }
    body(0, 0, start(1));
    for (auto& thread : others) thread.join();
}

/* The time loops stay out-of-line functions compiled for speed. Inlined into the op's
   generated run() they inherit its static profile, whose many error branches make GCC
   judge them rarely executed: it then skips vectorising the gate loops (the LSTM forward
   ran scalar code with branches, 3-5x slower and value-dependent). */
#define FCN8_RNN_KERNEL static __attribute__((noinline, hot))

/* float32: vectorisable Cephes forms (see the module docstring). */
static inline float exp_(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* n = round(x / ln 2) by the 1.5 * 2^23 trick: no libm call, so the loop vectorises */
    float n = (1.44269504088896341f * x + 12582912.0f) - 12582912.0f;
    x = x - n * 0.693359375f;
    x = x - n * -2.12194440e-4f;
    float z = x * x;
    float p = 1.9875691500E-4f;
    p = p * x + 1.3981999507E-3f;
    p = p * x + 8.3334519073E-3f;
    p = p * x + 4.1665795894E-2f;
    p = p * x + 1.6666665459E-1f;
    p = p * x + 5.0000001201E-1f;
    p = p * z + x + 1.0f;
    int bits = ((int)n + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid_(float x) {
    float e = exp_(-std::fabs(x));
    float r = 1.0f / (1.0f + e);
    return x >= 0.0f ? r : e * r;
}

static inline float tanh_(float x) {
    float ax = std::fabs(x);
    float z = x * x;
    float small = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z
                     - 5.37397155531E-2f) * z + 1.33314422036E-1f) * z
                   - 3.33332819422E-1f) * z * x + x;
    float e = exp_(-2.0f * ax);
    float large = (1.0f - e) / (1.0f + e);
    large = x < 0.0f ? -large : large;
    return ax < 0.625f ? small : large;
}

static inline double sigmoid_(double x) { return 1.0 / (1.0 + std::exp(-x)); }
static inline double tanh_(double x) { return std::tanh(x); }

/* ------------------------------------------------------------------------------------ */
/* LSTM (gates i, f, c, o; x (steps, B, 4U); W (U, 4U); gates out (steps, 4, B, U))      */
/* ------------------------------------------------------------------------------------ */

/* gate_step: the distance between the steps' gate blocks in `gates`, 4 * B * U, or 0 when
   the gates are not kept (then `gates` is one step's scratch block). */

/* The batch rows [r0, r1) of the forward loop; hw: (B, 4U) scratch. */
template <typename T, bool PEEP>
FCN8_RNN_KERNEL void lstm_forward_rows(int r0, int r1, int steps, int B, int U, const T* x,
                                       const T* W, const T* wci, const T* wcf, const T* wco,
                                       const T* c0, const T* h0, const unsigned char* keep,
                                       T* hid, T* cell, T* gates, size_t gate_step, T* hw) {
    const int G = 4 * U;
    const size_t BU = (size_t)B * U;
    for (int t = 0; t < steps; ++t) {
        const T* hp = t ? hid + (t - 1) * BU : h0;
        const T* cp = t ? cell + (t - 1) * BU : c0;
        gemm_split_columns(r1 - r0, G, U, hp + (size_t)r0 * U, U, W, G, (T)0,
                           hw + (size_t)r0 * G, G);
        const T* xt = x + (size_t)t * B * G;
        T* gt = gates + (size_t)t * gate_step;
        for (int b = r0; b < r1; ++b) {
            const T* __restrict__ xa = xt + (size_t)b * G;
            const T* __restrict__ ha = hw + (size_t)b * G;
            const T* __restrict__ cpb = cp + (size_t)b * U;
            T* __restrict__ gi = gt + (size_t)b * U;
            T* __restrict__ gf = gi + BU;
            T* __restrict__ gc = gf + BU;
            T* __restrict__ go = gc + BU;
            T* __restrict__ cb = cell + t * BU + (size_t)b * U;
            T* __restrict__ hb = hid + t * BU + (size_t)b * U;
            #pragma GCC ivdep
            for (int j = 0; j < U; ++j) {
                T ai = xa[j] + ha[j];
                T af = xa[U + j] + ha[U + j];
                T ac = xa[2 * U + j] + ha[2 * U + j];
                T ao = xa[3 * U + j] + ha[3 * U + j];
                T c_prev = cpb[j];
                if (PEEP) {
                    ai += c_prev * wci[j];
                    af += c_prev * wcf[j];
                }
                T i = sigmoid_(ai), f = sigmoid_(af), g = tanh_(ac);
                T c = f * c_prev + i * g;
                if (PEEP) ao += c * wco[j];
                T o = sigmoid_(ao);
                gi[j] = i;
                gf[j] = f;
                gc[j] = g;
                go[j] = o;
                cb[j] = c;
                hb[j] = o * tanh_(c);
            }
            if (keep && !keep[(size_t)t * B + b]) {
                std::memcpy(cb, cpb, U * sizeof(T));
                std::memcpy(hb, hp + (size_t)b * U, U * sizeof(T));
            }
        }
    }
}

template <typename T, bool PEEP>
static void lstm_forward(int steps, int B, int U, const T* x, const T* W, const T* wci,
                         const T* wcf, const T* wco, const T* c0, const T* h0,
                         const unsigned char* keep, T* hid, T* cell, T* gates,
                         size_t gate_step, T* hw, bool single_thread) {
    BlasThreads threads(single_thread);
    over_row_blocks(B, single_thread ? worker_threads : 1, [=](int, int r0, int r1) {
        lstm_forward_rows<T, PEEP>(r0, r1, steps, B, U, x, W, wci, wcf, wco, c0, h0, keep,
                                   hid, cell, gates, gate_step, hw);
    });
}

/* The batch rows [r0, r1) of the backward loop (d_c0, d_h0 zeroed, the peephole
   gradients d_w* accumulated); WT: W transposed, or 0. */
template <typename T, bool PEEP>
FCN8_RNN_KERNEL void lstm_backward_rows(int r0, int r1, int steps, int B, int U,
                                        const T* W, const T* WT, const T* wci, const T* wcf,
                                        const T* wco, const T* c0, const unsigned char* keep,
                                        const T* cell, const T* gates, const T* d_hid,
                                        const T* d_cell, T* d_x, T* d_wci, T* d_wcf,
                                        T* d_wco, T* d_c0, T* d_h0) {
    const int G = 4 * U;
    const size_t BU = (size_t)B * U;
    for (int t = steps - 1; t >= 0; --t) {
        const T* cp = t ? cell + (t - 1) * BU : c0;
        const T* gt = gates + (size_t)t * 4 * BU;
        T* dxt = d_x + (size_t)t * B * G;
        for (int b = r0; b < r1; ++b) {
            const size_t row = (size_t)b * U;
            T* __restrict__ dh = d_h0 + row;
            T* __restrict__ dc = d_c0 + row;
            const T* __restrict__ dht = d_hid + t * BU + row;
            T* __restrict__ dxa = dxt + (size_t)b * G;
            if (keep && !keep[(size_t)t * B + b]) {
                /* a masked step passes the state (and its gradient) through unchanged */
                #pragma GCC ivdep
                for (int j = 0; j < U; ++j) dh[j] += dht[j];
                if (d_cell) {
                    const T* __restrict__ dct = d_cell + t * BU + row;
                    #pragma GCC ivdep
                    for (int j = 0; j < U; ++j) dc[j] += dct[j];
                }
                std::memset(dxa, 0, G * sizeof(T));
                continue;
            }
            const T* __restrict__ dct = d_cell ? d_cell + t * BU + row : 0;
            const T* __restrict__ gi = gt + row;
            const T* __restrict__ gf = gi + BU;
            const T* __restrict__ gc = gf + BU;
            const T* __restrict__ go = gc + BU;
            const T* __restrict__ cb = cell + t * BU + row;
            const T* __restrict__ cpb = cp + row;
            #pragma GCC ivdep
            for (int j = 0; j < U; ++j) {
                T dhj = dh[j] + dht[j];
                T dcj = dct ? dc[j] + dct[j] : dc[j];
                T i = gi[j], f = gf[j], g = gc[j], o = go[j];
                T c = cb[j], c_prev = cpb[j];
                T tc = tanh_(c);
                T dao = dhj * tc * o * ((T)1 - o);
                dcj += dhj * o * ((T)1 - tc * tc);
                if (PEEP) dcj += dao * wco[j];
                T dai = dcj * g * i * ((T)1 - i);
                T daf = dcj * c_prev * f * ((T)1 - f);
                T dac = dcj * i * ((T)1 - g * g);
                T dc_prev = dcj * f;
                if (PEEP) {
                    dc_prev += dai * wci[j] + daf * wcf[j];
                    d_wci[j] += dai * c_prev;
                    d_wcf[j] += daf * c_prev;
                    d_wco[j] += dao * c;
                }
                dxa[j] = dai;
                dxa[U + j] = daf;
                dxa[2 * U + j] = dac;
                dxa[3 * U + j] = dao;
                dc[j] = dc_prev;
                dh[j] = (T)0;
            }
        }
        /* d_h_prev += d_a . W^T (masked rows have d_a = 0 and keep their carried value) */
        gemm_state_gradient(r1 - r0, U, G, dxt + (size_t)r0 * G, W, WT,
                            d_h0 + (size_t)r0 * U);
    }
}

/* d_c0, d_h0 are the running state gradients; d_w* the peepholes' gradients. */
template <typename T, bool PEEP>
static void lstm_backward(int steps, int B, int U, const T* W, const T* wci, const T* wcf,
                          const T* wco, const T* c0, const T* h0, const unsigned char* keep,
                          const T* hid, const T* cell, const T* gates, const T* d_hid,
                          const T* d_cell, T* d_x, T* d_W, T* d_wci, T* d_wcf, T* d_wco,
                          T* d_c0, T* d_h0, bool single_thread) {
    const int G = 4 * U;
    const size_t BU = (size_t)B * U;
    std::memset(d_c0, 0, BU * sizeof(T));
    std::memset(d_h0, 0, BU * sizeof(T));
    const int parts = single_thread ? worker_threads : 1;
    const int blocks = row_block_count(B, parts);
    /* the peephole gradients of blocks 1.. sum into their own rows, added at the end */
    std::vector<T> peep_sums(PEEP ? (size_t)3 * U * blocks : 0, (T)0);
    T* WT = transposed(W, U, G);
    BlasThreads threads(single_thread);
    over_row_blocks(B, parts, [=, &peep_sums](int block, int r0, int r1) {
        T* sums = PEEP ? peep_sums.data() + (size_t)3 * U * block : 0;
        lstm_backward_rows<T, PEEP>(r0, r1, steps, B, U, W, WT, wci, wcf, wco, c0, keep,
                                    cell, gates, d_hid, d_cell, d_x, sums,
                                    PEEP ? sums + U : 0, PEEP ? sums + 2 * U : 0, d_c0, d_h0);
    });
    threads.restore();
    std::free(WT);
    if (PEEP) {
        T* outs[3] = {d_wci, d_wcf, d_wco};
        for (int g = 0; g < 3; ++g) {
            for (int j = 0; j < U; ++j) {
                T sum = (T)0;
                for (int k = 0; k < blocks; ++k) sum += peep_sums[(size_t)(3 * k + g) * U + j];
                outs[g][j] = sum;
            }
        }
    }
    if (steps == 0 || B == 0) {
        std::memset(d_W, 0, (size_t)U * G * sizeof(T));
        return;
    }
    gemm(true, false, U, G, B, h0, U, d_x, G, (T)0, d_W, G);
    if (steps > 1) {
        gemm(true, false, U, G, (steps - 1) * B, hid, U, d_x + (size_t)B * G, G, (T)1, d_W, G);
    }
}

/* ------------------------------------------------------------------------------------ */
/* GRU (gates r, u, c; x (steps, B, 3U); W (U, 3U); gates out (steps, 4, B, U) holding    */
/* r, u, tanh(c~) and the candidate's hidden product h_{t-1} . W_hc)                      */
/* ------------------------------------------------------------------------------------ */

/* The batch rows [r0, r1) of the forward loop; hw: (B, 3U) scratch. */
template <typename T>
FCN8_RNN_KERNEL void gru_forward_rows(int r0, int r1, int steps, int B, int U, const T* x,
                                      const T* W, const T* h0, const unsigned char* keep,
                                      T* hid, T* gates, T* hw) {
    const int G = 3 * U;
    const size_t BU = (size_t)B * U;
    for (int t = 0; t < steps; ++t) {
        const T* hp = t ? hid + (t - 1) * BU : h0;
        gemm_split_columns(r1 - r0, G, U, hp + (size_t)r0 * U, U, W, G, (T)0,
                           hw + (size_t)r0 * G, G);
        const T* xt = x + (size_t)t * B * G;
        T* gt = gates + (size_t)t * 4 * BU;
        for (int b = r0; b < r1; ++b) {
            const T* __restrict__ xa = xt + (size_t)b * G;
            const T* __restrict__ ha = hw + (size_t)b * G;
            const T* __restrict__ hpb = hp + (size_t)b * U;
            T* __restrict__ gr = gt + (size_t)b * U;
            T* __restrict__ gu = gr + BU;
            T* __restrict__ gc = gu + BU;
            T* __restrict__ gh = gc + BU;
            T* __restrict__ hb = hid + t * BU + (size_t)b * U;
            #pragma GCC ivdep
            for (int j = 0; j < U; ++j) {
                T r = sigmoid_(xa[j] + ha[j]);
                T u = sigmoid_(xa[U + j] + ha[U + j]);
                T hc = ha[2 * U + j];
                T c = tanh_(xa[2 * U + j] + r * hc);
                gr[j] = r;
                gu[j] = u;
                gc[j] = c;
                gh[j] = hc;
                hb[j] = ((T)1 - u) * hpb[j] + u * c;
            }
            if (keep && !keep[(size_t)t * B + b]) {
                std::memcpy(hb, hpb, U * sizeof(T));
            }
        }
    }
}

template <typename T>
static void gru_forward(int steps, int B, int U, const T* x, const T* W, const T* h0,
                        const unsigned char* keep, T* hid, T* gates, T* hw,
                        bool single_thread) {
    BlasThreads threads(single_thread);
    over_row_blocks(B, single_thread ? worker_threads : 1, [=](int, int r0, int r1) {
        gru_forward_rows<T>(r0, r1, steps, B, U, x, W, h0, keep, hid, gates, hw);
    });
}

/* d_hw: workspace (steps, B, 3U), the gradients of the hidden products. */
template <typename T>
FCN8_RNN_KERNEL void gru_backward(int steps, int B, int U, const T* W, const T* h0,
                                  const unsigned char* keep, const T* hid, const T* gates,
                                  const T* d_hid, T* d_x, T* d_W, T* d_h0, T* d_hw,
                                  bool single_thread) {
    const int G = 3 * U;
    const size_t BU = (size_t)B * U;
    std::memset(d_h0, 0, BU * sizeof(T));
    T* WT = transposed(W, U, G);
    BlasThreads threads(single_thread);
    for (int t = steps - 1; t >= 0; --t) {
        const T* hp = t ? hid + (t - 1) * BU : h0;
        const T* gt = gates + (size_t)t * 4 * BU;
        T* dxt = d_x + (size_t)t * B * G;
        T* dwt = d_hw + (size_t)t * B * G;
        for (int b = 0; b < B; ++b) {
            const size_t row = (size_t)b * U;
            T* __restrict__ dh = d_h0 + row;
            const T* __restrict__ dht = d_hid + t * BU + row;
            T* __restrict__ dxa = dxt + (size_t)b * G;
            T* __restrict__ dwa = dwt + (size_t)b * G;
            if (keep && !keep[(size_t)t * B + b]) {
                #pragma GCC ivdep
                for (int j = 0; j < U; ++j) dh[j] += dht[j];
                std::memset(dxa, 0, G * sizeof(T));
                std::memset(dwa, 0, G * sizeof(T));
                continue;
            }
            const T* __restrict__ gr = gt + row;
            const T* __restrict__ gu = gr + BU;
            const T* __restrict__ gc = gu + BU;
            const T* __restrict__ gh = gc + BU;
            const T* __restrict__ hpb = hp + row;
            #pragma GCC ivdep
            for (int j = 0; j < U; ++j) {
                T dhj = dh[j] + dht[j];
                T r = gr[j], u = gu[j], c = gc[j], hc = gh[j];
                T dau = dhj * (c - hpb[j]) * u * ((T)1 - u);
                T dac = dhj * u * ((T)1 - c * c);
                T dar = dac * hc * r * ((T)1 - r);
                dxa[j] = dar;
                dxa[U + j] = dau;
                dxa[2 * U + j] = dac;
                dwa[j] = dar;
                dwa[U + j] = dau;
                dwa[2 * U + j] = dac * r;
                dh[j] = dhj * ((T)1 - u);
            }
        }
        gemm_state_gradient(B, U, G, dwt, W, WT, d_h0);
    }
    threads.restore();
    std::free(WT);
    if (steps == 0 || B == 0) {
        std::memset(d_W, 0, (size_t)U * G * sizeof(T));
        return;
    }
    gemm(true, false, U, G, B, h0, U, d_hw, G, (T)0, d_W, G);
    if (steps > 1) {
        gemm(true, false, U, G, (steps - 1) * B, hid, U, d_hw + (size_t)B * G, G, (T)1, d_W, G);
    }
}

/* A C-contiguous output of the given shape and type, reusing *out when it fits. */
static int prepare_output(PyArrayObject** out, int nd, const npy_intp* dims, int typenum) {
    if (*out && PyArray_NDIM(*out) == nd && PyArray_TYPE(*out) == typenum
        && PyArray_IS_C_CONTIGUOUS(*out)) {
        bool same = true;
        for (int k = 0; k < nd; ++k) same = same && PyArray_DIMS(*out)[k] == dims[k];
        if (same) return 0;
    }
    Py_XDECREF(*out);
    *out = (PyArrayObject*)PyArray_EMPTY(nd, (npy_intp*)dims, typenum, 0);
    return *out ? 0 : -1;
}

}  // namespace fcn8_rnn
"""

#: Part of every op's ``c_code_cache_version``: a change of the C source recompiles.
CODE_VERSION = (2, int(hashlib.sha256(SUPPORT_CODE.encode()).hexdigest()[:12], 16))


def _prefix(node):
    name = node.outputs[0].name
    return f"layer '{name}': " if name else ""


def _c_string(text):
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _contiguous(names, out_names):
    """C lines: ``<out> = PyArray_GETCONTIGUOUS(<in>)`` for each pair."""
    return "\n".join(f"{o} = PyArray_GETCONTIGUOUS({i});" for i, o in zip(names, out_names))


def _keep_code(mask_var, steps, batch, fail):
    """C lines filling ``keep`` (unsigned char, steps * batch) from a mask of any dtype."""
    return f"""
    {{
        PyArrayObject* mask_c = PyArray_GETCONTIGUOUS({mask_var});
        keep = (unsigned char*)malloc(({steps}) * ({batch}) + 1);
        if (!keep) {{ Py_DECREF(mask_c); PyErr_NoMemory(); {fail} }}
        const dtype_{mask_var}* mask_data = (const dtype_{mask_var}*)PyArray_DATA(mask_c);
        for (npy_intp k = 0; k < ({steps}) * ({batch}); ++k) keep[k] = mask_data[k] != 0;
        Py_DECREF(mask_c);
    }}"""


def _shape_checks(node, op_name, checks):
    """C lines raising ValueError (the op's messages) for each ``(condition, format, args)``."""
    prefix = _c_string(_prefix(node))
    lines = []
    for condition, message, args in checks:
        formatted = ", ".join(f"(long){a}" for a in args)
        lines.append(f'if ({condition}) {{ PyErr_Format(PyExc_ValueError, "{prefix}{op_name}: '
                     f'{message}"{", " if args else ""}{formatted}); goto fcn8_rnn_fail; }}')
    return "\n".join(lines)


def _single_thread(batch, units, width):
    from ._recurrent_cpu import SINGLE_THREAD_MACS

    return f"(({batch}) * (double)({units}) * ({width}) < {SINGLE_THREAD_MACS}.0)"


def _ctype(node):
    return "float" if node.outputs[0].type.dtype == "float32" else "double"


def _typenum(node):
    return "NPY_FLOAT32" if node.outputs[0].type.dtype == "float32" else "NPY_FLOAT64"


def lstm_forward_code(op, node, inputs, outputs, sub):
    """``c_code`` of :class:`..recurrent.LSTMSequence`."""
    names = list(inputs)
    x, W = names[0], names[1]
    peeps = names[2:5] if op.peepholes else []
    rest = names[5:] if op.peepholes else names[2:]
    c0, h0 = rest[0], rest[1]
    mask = rest[2] if op.masked else None
    hid, cell, gates = outputs
    fail, T = sub["fail"], _ctype(node)
    all_in = [x, W, *peeps, c0, h0]
    local = [f"fcn8_{k}" for k in range(len(all_in))]
    xc, Wc = local[0], local[1]
    pc = local[2:2 + len(peeps)]
    c0c, h0c = local[-2], local[-1]
    steps, batch, width = (f"PyArray_DIMS({x})[{k}]" for k in range(3))
    units = f"PyArray_DIMS({W})[0]"
    checks = [
        (f"{width} != 4 * {units} || PyArray_DIMS({W})[1] != {width}",
         "input projections of shape (%ld, %ld, %ld) and W_hid of shape (%ld, %ld), expected "
         "(steps, batch, 4 * units) and (units, 4 * units)",
         [steps, batch, width, units, f"PyArray_DIMS({W})[1]"]),
    ]
    for what, var in (("c0", c0), ("h0", h0)):
        checks.append((f"PyArray_DIMS({var})[0] != {batch} || PyArray_DIMS({var})[1] != {units}",
                       what + " has shape (%ld, %ld), expected (batch, units) = (%ld, %ld)",
                       [f"PyArray_DIMS({var})[0]", f"PyArray_DIMS({var})[1]", batch, units]))
    if mask:
        checks.append((f"PyArray_DIMS({mask})[0] != {steps} || PyArray_DIMS({mask})[1] != {batch}",
                       "the mask has shape (%ld, %ld), expected (steps, batch) = (%ld, %ld)",
                       [f"PyArray_DIMS({mask})[0]", f"PyArray_DIMS({mask})[1]", steps, batch]))
    for p in peeps:
        checks.append((f"PyArray_DIMS({p})[0] != {units}",
                       "a peephole weight has shape (%ld,), expected (%ld,)",
                       [f"PyArray_DIMS({p})[0]", units]))
    data = {v: f"(const {T}*)PyArray_DATA({v})" for v in local}
    peep_args = ", ".join(data[p] for p in pc) if peeps else "0, 0, 0"
    return f"""
{{
    PyArrayObject *{", *".join(f"{v} = NULL" for v in local)};
    unsigned char* keep = NULL;
    {T}* hw = NULL;
    if (fcn8_rnn::load_blas()) {{ {fail} }}
    {{
    {_shape_checks(node, "LSTMSequence", checks)}
    {{
        npy_intp steps = {steps}, batch = {batch}, units = {units};
        npy_intp state_dims[3] = {{steps, batch, units}};
        npy_intp gate_dims[4] = {{{"steps" if op.store_gates else "0"}, 4, batch, units}};
        if (fcn8_rnn::prepare_output(&{hid}, 3, state_dims, {_typenum(node)})
            || fcn8_rnn::prepare_output(&{cell}, 3, state_dims, {_typenum(node)})
            || fcn8_rnn::prepare_output(&{gates}, 4, gate_dims, {_typenum(node)})) goto fcn8_rnn_fail;
        {_contiguous(all_in, local)}
        {_keep_code(mask, "steps", "batch", "goto fcn8_rnn_fail;") if mask else ""}
        /* the hidden products, then (without kept gates) one step's gate block */
        hw = ({T}*)malloc(((1 + !{int(op.store_gates)}) * batch * 4 * units + 1) * sizeof({T}));
        if (!hw) {{ PyErr_NoMemory(); goto fcn8_rnn_fail; }}
        fcn8_rnn::lstm_forward<{T}, {"true" if peeps else "false"}>(
            (int)steps, (int)batch, (int)units, {data[xc]}, {data[Wc]}, {peep_args},
            {data[c0c]}, {data[h0c]}, keep, ({T}*)PyArray_DATA({hid}),
            ({T}*)PyArray_DATA({cell}),
            {f"({T}*)PyArray_DATA({gates}), (size_t)(4 * batch * units)" if op.store_gates
             else "hw + batch * 4 * units, (size_t)0"},
            hw, {_single_thread("batch", "units", "4 * units")});
        goto fcn8_rnn_done;
    }}
    }}
fcn8_rnn_fail:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep); free(hw);
    {fail}
fcn8_rnn_done:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep); free(hw);
}}
"""


def lstm_backward_code(op, node, inputs, outputs, sub):
    """``c_code`` of :class:`..recurrent.LSTMSequenceGrad`."""
    names = list(inputs)
    W = names[1]
    peeps = names[2:5] if op.peepholes else []
    rest = names[5:] if op.peepholes else names[2:]
    c0, h0 = rest[0], rest[1]
    rest = rest[2:]
    mask = rest.pop(0) if op.masked else None
    hid, cell, gates, d_hid = rest[:4]
    d_cell = rest[4] if op.cell_grad else None
    d_x, d_W = outputs[0], outputs[1]
    d_peeps = outputs[2:5] if op.peepholes else []
    d_c0, d_h0 = outputs[-2], outputs[-1]
    fail, T, typenum = sub["fail"], _ctype(node), _typenum(node)
    all_in = [W, *peeps, c0, h0, hid, cell, gates, d_hid] + ([d_cell] if d_cell else [])
    local = [f"fcn8_{k}" for k in range(len(all_in))]
    L = dict(zip(all_in, local))
    data = {v: f"(const {T}*)PyArray_DATA({L[v]})" for v in all_in}
    steps, batch, units = (f"PyArray_DIMS({gates})[{k}]" for k in (0, 2, 3))
    state_checks = []
    for what, var in (("hid", hid), ("cell", cell), ("d_hid", d_hid)) + (
            (("d_cell", d_cell),) if d_cell else ()):
        state_checks.append((
            f"PyArray_DIMS({var})[0] != {steps} || PyArray_DIMS({var})[1] != {batch} "
            f"|| PyArray_DIMS({var})[2] != {units}",
            what + " has shape (%ld, %ld, %ld), expected (%ld, %ld, %ld)",
            [f"PyArray_DIMS({var})[{k}]" for k in range(3)] + [steps, batch, units]))
    checks = [(f"PyArray_DIMS({gates})[1] != 4 || PyArray_DIMS({W})[0] != {units} "
               f"|| PyArray_DIMS({W})[1] != 4 * {units}",
               "gates of shape (%ld, %ld, %ld, %ld) and W_hid of shape (%ld, %ld) do not agree",
               [f"PyArray_DIMS({gates})[{k}]" for k in range(4)]
               + [f"PyArray_DIMS({W})[0]", f"PyArray_DIMS({W})[1]"])] + state_checks
    for what, var in (("c0", c0), ("h0", h0)):
        checks.append((f"PyArray_DIMS({var})[0] != {batch} || PyArray_DIMS({var})[1] != {units}",
                       what + " has shape (%ld, %ld), expected (batch, units) = (%ld, %ld)",
                       [f"PyArray_DIMS({var})[0]", f"PyArray_DIMS({var})[1]", batch, units]))
    if mask:
        checks.append((f"PyArray_DIMS({mask})[0] != {steps} || PyArray_DIMS({mask})[1] != {batch}",
                       "the mask has shape (%ld, %ld), expected (steps, batch) = (%ld, %ld)",
                       [f"PyArray_DIMS({mask})[0]", f"PyArray_DIMS({mask})[1]", steps, batch]))
    for p in peeps:
        checks.append((f"PyArray_DIMS({p})[0] != {units}",
                       "a peephole weight has shape (%ld,), expected (%ld,)",
                       [f"PyArray_DIMS({p})[0]", units]))
    out = lambda v: f"({T}*)PyArray_DATA({v})"  # noqa: E731
    peep_args = ", ".join(data[p] for p in peeps) if peeps else "0, 0, 0"
    d_peep_args = ", ".join(out(p) for p in d_peeps) if peeps else "0, 0, 0"
    prepare = [f"fcn8_rnn::prepare_output(&{d_x}, 3, dx_dims, {typenum})",
               f"fcn8_rnn::prepare_output(&{d_W}, 2, w_dims, {typenum})"]
    prepare += [f"fcn8_rnn::prepare_output(&{p}, 1, u_dims, {typenum})" for p in d_peeps]
    prepare += [f"fcn8_rnn::prepare_output(&{v}, 2, s_dims, {typenum})" for v in (d_c0, d_h0)]
    return f"""
{{
    PyArrayObject *{", *".join(f"{v} = NULL" for v in local)};
    unsigned char* keep = NULL;
    if (fcn8_rnn::load_blas()) {{ {fail} }}
    {{
    {_shape_checks(node, "LSTMSequenceGrad", checks)}
    {{
        npy_intp steps = {steps}, batch = {batch}, units = {units};
        npy_intp dx_dims[3] = {{steps, batch, 4 * units}};
        npy_intp w_dims[2] = {{units, 4 * units}};
        npy_intp u_dims[1] = {{units}};
        npy_intp s_dims[2] = {{batch, units}};
        if ({" || ".join(prepare)}) goto fcn8_rnn_fail;
        {_contiguous(all_in, local)}
        {_keep_code(mask, "steps", "batch", "goto fcn8_rnn_fail;") if mask else ""}
        fcn8_rnn::lstm_backward<{T}, {"true" if peeps else "false"}>(
            (int)steps, (int)batch, (int)units, {data[W]}, {peep_args}, {data[c0]},
            {data[h0]}, keep, {data[hid]}, {data[cell]}, {data[gates]}, {data[d_hid]},
            {data[d_cell] if d_cell else "0"}, {out(d_x)}, {out(d_W)}, {d_peep_args},
            {out(d_c0)}, {out(d_h0)}, {_single_thread("batch", "units", "4 * units")});
        goto fcn8_rnn_done;
    }}
    }}
fcn8_rnn_fail:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep);
    {fail}
fcn8_rnn_done:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep);
}}
"""


def gru_forward_code(op, node, inputs, outputs, sub):
    """``c_code`` of :class:`..recurrent.GRUSequence`."""
    x, W, h0 = inputs[:3]
    mask = inputs[3] if op.masked else None
    hid, gates = outputs
    fail, T, typenum = sub["fail"], _ctype(node), _typenum(node)
    all_in = [x, W, h0]
    local = [f"fcn8_{k}" for k in range(3)]
    data = {v: f"(const {T}*)PyArray_DATA({lv})" for v, lv in zip(all_in, local)}
    steps, batch, width = (f"PyArray_DIMS({x})[{k}]" for k in range(3))
    units = f"PyArray_DIMS({W})[0]"
    checks = [
        (f"{width} != 3 * {units} || PyArray_DIMS({W})[1] != {width}",
         "input projections of shape (%ld, %ld, %ld) and W_hid of shape (%ld, %ld), expected "
         "(steps, batch, 3 * units) and (units, 3 * units)",
         [steps, batch, width, units, f"PyArray_DIMS({W})[1]"]),
        (f"PyArray_DIMS({h0})[0] != {batch} || PyArray_DIMS({h0})[1] != {units}",
         "h0 has shape (%ld, %ld), expected (batch, units) = (%ld, %ld)",
         [f"PyArray_DIMS({h0})[0]", f"PyArray_DIMS({h0})[1]", batch, units]),
    ]
    if mask:
        checks.append((f"PyArray_DIMS({mask})[0] != {steps} || PyArray_DIMS({mask})[1] != {batch}",
                       "the mask has shape (%ld, %ld), expected (steps, batch) = (%ld, %ld)",
                       [f"PyArray_DIMS({mask})[0]", f"PyArray_DIMS({mask})[1]", steps, batch]))
    return f"""
{{
    PyArrayObject *{", *".join(f"{v} = NULL" for v in local)};
    unsigned char* keep = NULL;
    {T}* hw = NULL;
    if (fcn8_rnn::load_blas()) {{ {fail} }}
    {{
    {_shape_checks(node, "GRUSequence", checks)}
    {{
        npy_intp steps = {steps}, batch = {batch}, units = {units};
        npy_intp state_dims[3] = {{steps, batch, units}};
        npy_intp gate_dims[4] = {{steps, 4, batch, units}};
        if (fcn8_rnn::prepare_output(&{hid}, 3, state_dims, {typenum})
            || fcn8_rnn::prepare_output(&{gates}, 4, gate_dims, {typenum})) goto fcn8_rnn_fail;
        {_contiguous(all_in, local)}
        {_keep_code(mask, "steps", "batch", "goto fcn8_rnn_fail;") if mask else ""}
        hw = ({T}*)malloc((batch * 3 * units + 1) * sizeof({T}));
        if (!hw) {{ PyErr_NoMemory(); goto fcn8_rnn_fail; }}
        fcn8_rnn::gru_forward<{T}>(
            (int)steps, (int)batch, (int)units, {data[x]}, {data[W]}, {data[h0]}, keep,
            ({T}*)PyArray_DATA({hid}), ({T}*)PyArray_DATA({gates}), hw,
            {_single_thread("batch", "units", "3 * units")});
        goto fcn8_rnn_done;
    }}
    }}
fcn8_rnn_fail:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep); free(hw);
    {fail}
fcn8_rnn_done:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep); free(hw);
}}
"""


def gru_backward_code(op, node, inputs, outputs, sub):
    """``c_code`` of :class:`..recurrent.GRUSequenceGrad`."""
    names = list(inputs)
    W, h0 = names[1], names[2]
    rest = names[3:]
    mask = rest.pop(0) if op.masked else None
    hid, gates, d_hid = rest[:3]
    d_x, d_W, d_h0 = outputs
    fail, T, typenum = sub["fail"], _ctype(node), _typenum(node)
    all_in = [W, h0, hid, gates, d_hid]
    local = [f"fcn8_{k}" for k in range(len(all_in))]
    L = dict(zip(all_in, local))
    data = {v: f"(const {T}*)PyArray_DATA({L[v]})" for v in all_in}
    steps, batch, units = (f"PyArray_DIMS({gates})[{k}]" for k in (0, 2, 3))
    checks = [(f"PyArray_DIMS({gates})[1] != 4 || PyArray_DIMS({W})[0] != {units} "
               f"|| PyArray_DIMS({W})[1] != 3 * {units}",
               "gates of shape (%ld, %ld, %ld, %ld) and W_hid of shape (%ld, %ld) do not agree",
               [f"PyArray_DIMS({gates})[{k}]" for k in range(4)]
               + [f"PyArray_DIMS({W})[0]", f"PyArray_DIMS({W})[1]"])]
    for what, var in (("hid", hid), ("d_hid", d_hid)):
        checks.append((
            f"PyArray_DIMS({var})[0] != {steps} || PyArray_DIMS({var})[1] != {batch} "
            f"|| PyArray_DIMS({var})[2] != {units}",
            what + " has shape (%ld, %ld, %ld), expected (%ld, %ld, %ld)",
            [f"PyArray_DIMS({var})[{k}]" for k in range(3)] + [steps, batch, units]))
    checks.append((f"PyArray_DIMS({h0})[0] != {batch} || PyArray_DIMS({h0})[1] != {units}",
                   "h0 has shape (%ld, %ld), expected (batch, units) = (%ld, %ld)",
                   [f"PyArray_DIMS({h0})[0]", f"PyArray_DIMS({h0})[1]", batch, units]))
    if mask:
        checks.append((f"PyArray_DIMS({mask})[0] != {steps} || PyArray_DIMS({mask})[1] != {batch}",
                       "the mask has shape (%ld, %ld), expected (steps, batch) = (%ld, %ld)",
                       [f"PyArray_DIMS({mask})[0]", f"PyArray_DIMS({mask})[1]", steps, batch]))
    out = lambda v: f"({T}*)PyArray_DATA({v})"  # noqa: E731
    return f"""
{{
    PyArrayObject *{", *".join(f"{v} = NULL" for v in local)};
    unsigned char* keep = NULL;
    {T}* d_hw = NULL;
    if (fcn8_rnn::load_blas()) {{ {fail} }}
    {{
    {_shape_checks(node, "GRUSequenceGrad", checks)}
    {{
        npy_intp steps = {steps}, batch = {batch}, units = {units};
        npy_intp dx_dims[3] = {{steps, batch, 3 * units}};
        npy_intp w_dims[2] = {{units, 3 * units}};
        npy_intp s_dims[2] = {{batch, units}};
        if (fcn8_rnn::prepare_output(&{d_x}, 3, dx_dims, {typenum})
            || fcn8_rnn::prepare_output(&{d_W}, 2, w_dims, {typenum})
            || fcn8_rnn::prepare_output(&{d_h0}, 2, s_dims, {typenum})) goto fcn8_rnn_fail;
        {_contiguous(all_in, local)}
        {_keep_code(mask, "steps", "batch", "goto fcn8_rnn_fail;") if mask else ""}
        d_hw = ({T}*)malloc((steps * batch * 3 * units + 1) * sizeof({T}));
        if (!d_hw) {{ PyErr_NoMemory(); goto fcn8_rnn_fail; }}
        fcn8_rnn::gru_backward<{T}>(
            (int)steps, (int)batch, (int)units, {data[W]}, {data[h0]}, keep, {data[hid]},
            {data[gates]}, {data[d_hid]}, {out(d_x)}, {out(d_W)}, {out(d_h0)}, d_hw,
            {_single_thread("batch", "units", "3 * units")});
        goto fcn8_rnn_done;
    }}
    }}
fcn8_rnn_fail:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep); free(d_hw);
    {fail}
fcn8_rnn_done:
    {"; ".join(f"Py_XDECREF({v})" for v in local)};
    free(keep); free(d_hw);
}}
"""
