"""Direct access to the BLAS ``?gemm`` routines that SciPy links against.

NumPy's ``matmul`` cannot accumulate into its output (``beta = 1``), and SciPy's Python
wrappers copy row-major operands. The convolution kernels need both, so this module calls
the Fortran ``sgemm``/``dgemm`` behind :mod:`scipy.linalg.cython_blas` through ``ctypes``:
row-major views with any leading dimension (row stride) go in without copies, and ``ctypes``
releases the GIL during the call. The worker threads that run many such GEMMs side by side
are in :mod:`._threads`.

OpenBLAS picks its kernels for the CPU unless ``OPENBLAS_CORETYPE`` forces a choice; on an
AVX-512 machine forcing ``Haswell`` (AVX2) halves the GEMM throughput. :func:`blas_info`
reports the kernels in use and :func:`coretype_advice` says when such a setting slows us.

OpenBLAS's threads spin after each threaded call for ``2 ** OPENBLAS_THREAD_TIMEOUT`` clock
ticks (default 2^28, a tenth of a second) before they sleep. The kernels' own threads (the
worker pool of :mod:`._threads`, the recurrent time loops) run right after such calls, and
an OpenBLAS thread spinning on their core halved them: an LSTM's forward pass took 3.4 ms
after its threaded input projection where it takes 2.2 ms with the spinning cut to 2^16
ticks (about 20 microseconds), the default set here unless the environment already sets
one. OpenBLAS reads it when it loads, so it takes effect when this module is the first to
import :mod:`scipy.linalg` (NumPy's own OpenBLAS is loaded earlier and keeps its default).
"""

import contextlib
import ctypes
import os
import threading

import numpy as np

__all__ = ["gemm", "blas_info", "coretype_advice", "blas_thread_count", "single_threaded_blas"]


def _capsule_address(capsule):
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return get_pointer(capsule, get_name(capsule))


def _load_blas():
    """Return ``{dtype: gemm function}`` and the ``cython_blas`` shared library (or Nones)."""
    try:
        import scipy.linalg.cython_blas as cython_blas
    except ImportError:  # pragma: no cover - scipy is a dependency
        return {}, None
    int_p = ctypes.POINTER(ctypes.c_int)
    functions = {}
    for dtype, name, scalar in (
        (np.dtype(np.float32), "sgemm", ctypes.c_float),
        (np.dtype(np.float64), "dgemm", ctypes.c_double),
    ):
        prototype = ctypes.CFUNCTYPE(
            None, ctypes.c_char_p, ctypes.c_char_p, int_p, int_p, int_p,
            ctypes.POINTER(scalar), ctypes.c_void_p, int_p, ctypes.c_void_p, int_p,
            ctypes.POINTER(scalar), ctypes.c_void_p, int_p,
        )
        address = _capsule_address(cython_blas.__pyx_capi__[name])
        functions[dtype] = (prototype(address), scalar)
    try:
        library = ctypes.CDLL(cython_blas.__file__)
    except OSError:  # pragma: no cover
        library = None
    return functions, library


#: ``OPENBLAS_THREAD_TIMEOUT`` set (if not set) before SciPy's OpenBLAS loads; see above.
THREAD_TIMEOUT = "16"
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", THREAD_TIMEOUT)
_GEMM, _BLAS_LIBRARY = _load_blas()


def _openblas_core_name(library):
    for symbol in ("scipy_openblas_get_corename", "scipy_openblas_get_corename64_",
                   "openblas_get_corename", "openblas_get_corename64_"):
        function = getattr(library, symbol, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            return function().decode()
    return None


def _thread_controls():
    """``(get, set)`` of the OpenBLAS thread count behind ``gemm``, or ``(None, None)``."""
    if _BLAS_LIBRARY is None:
        return None, None
    for prefix in ("scipy_openblas", "openblas"):
        get = getattr(_BLAS_LIBRARY, prefix + "_get_num_threads", None)
        set_ = getattr(_BLAS_LIBRARY, prefix + "_set_num_threads", None)
        if get is not None and set_ is not None:
            get.restype = ctypes.c_int
            set_.argtypes = [ctypes.c_int]
            return get, set_
    return None, None


_GET_THREADS, _SET_THREADS = _thread_controls()
_lock = threading.Lock()
_single_thread_users = 0
_saved_threads = None


def blas_thread_count():
    """Threads OpenBLAS would use (it honours ``OPENBLAS_NUM_THREADS`` and the CPU
    affinity); 1 when its thread count cannot be read."""
    return max(1, _GET_THREADS()) if _GET_THREADS is not None else 1


def _forget_users():
    global _single_thread_users
    _single_thread_users = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_users)


@contextlib.contextmanager
def single_threaded_blas():
    """Make ``gemm`` single-threaded while any caller is inside (reference counted)."""
    global _single_thread_users, _saved_threads
    if _SET_THREADS is None:
        yield
        return
    with _lock:
        if _single_thread_users == 0:
            _saved_threads = _GET_THREADS()
            _SET_THREADS(1)
        _single_thread_users += 1
    try:
        yield
    finally:
        with _lock:
            _single_thread_users -= 1
            if _single_thread_users == 0:
                _SET_THREADS(_saved_threads)


def blas_info():
    """Describe the BLAS the convolutions call.

    Returns
    -------
    dict
        ``{'direct': bool, 'core': str or None, 'workers': int}``: ``direct`` is False when
        ``gemm`` falls back to ``numpy.matmul``; ``core`` names the OpenBLAS kernels;
        ``workers`` is the number of
        worker threads (:func:`._threads.worker_count`).
    """
    core = None if _BLAS_LIBRARY is None else _openblas_core_name(_BLAS_LIBRARY)
    return {"direct": bool(_GEMM), "core": core, "workers": blas_thread_count()}


#: OpenBLAS core types whose kernels use AVX-512.
_AVX512_CORES = ("skylakex", "cooperlake", "sapphirerapids")


def _cpu_has_avx512(cpuinfo="/proc/cpuinfo"):
    try:
        with open(cpuinfo) as stream:
            for line in stream:
                if line.startswith("flags"):
                    return "avx512f" in line.split()
    except OSError:
        pass
    return False


def coretype_advice(cpuinfo="/proc/cpuinfo"):
    """A note when ``OPENBLAS_CORETYPE`` forces slower kernels than the CPU has, else None.

    Parameters
    ----------
    cpuinfo : str
        Where to read the CPU flags (Linux's ``/proc/cpuinfo``; elsewhere no note).

    Returns
    -------
    str or None
    """
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if not forced or forced.lower() in _AVX512_CORES or not _cpu_has_avx512(cpuinfo):
        return None
    return (f"OPENBLAS_CORETYPE={forced} makes OpenBLAS use older kernels than this CPU's "
            "AVX-512 ones, which halves the speed of the CPU convolutions; unset it (or set "
            "SkylakeX) for speed")


def _leading_dimension(matrix):
    """Row stride in elements of a 2-D view whose rows are contiguous, else None."""
    itemsize = matrix.itemsize
    row_stride, column_stride = matrix.strides
    if matrix.shape[1] > 1 and column_stride != itemsize:
        return None
    if matrix.shape[0] > 1 and (row_stride % itemsize or row_stride < matrix.shape[1] * itemsize):
        return None
    return max(row_stride // itemsize, matrix.shape[1], 1)


def gemm(a, b, out, beta=0.0, trans_a=False, trans_b=False):
    """``out[...] = op(a) @ op(b) + beta * out`` on row-major 2-D views, in place.

    ``op(m)`` is ``m.T`` when the matching ``trans_`` flag is set. All three arrays must
    share a dtype (float32 or float64) and have contiguous rows (unit stride along the last
    axis); their row strides may be anything else, so slices of larger arrays need no copy.
    With ``beta=0`` the previous content of ``out`` is ignored (it may be uninitialised).

    Parameters
    ----------
    a, b : numpy.ndarray
        2-D operands.
    out : numpy.ndarray
        2-D result of shape ``(op(a).shape[0], op(b).shape[1])``, overwritten.
    beta : float
        Weight of the previous content of ``out``.
    trans_a, trans_b : bool
        Use the transpose of ``a`` or ``b``.
    """
    rows, inner = (a.shape[1], a.shape[0]) if trans_a else a.shape
    inner_b, columns = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if inner != inner_b or out.shape != (rows, columns):
        raise ValueError(
            f"gemm shapes do not match: a {a.shape} (trans={trans_a}), "
            f"b {b.shape} (trans={trans_b}), out {out.shape}"
        )
    if rows == 0 or columns == 0:
        return
    if inner == 0:
        if beta == 0:
            out[...] = 0  # not 0 * out: the content may be uninitialised (NaN)
        else:
            out *= beta
        return
    lda, ldb, ldc = (_leading_dimension(m) for m in (a, b, out))
    blas = _GEMM.get(out.dtype)
    if blas is None or None in (lda, ldb, ldc) or not a.dtype == b.dtype == out.dtype:
        product = (a.T if trans_a else a) @ (b.T if trans_b else b)
        if beta == 0:
            out[...] = product
        else:
            out *= beta
            out += product
        return
    function, scalar = blas
    # Column-major BLAS sees each row-major matrix transposed: out.T = op(b).T @ op(a).T.
    c_int = ctypes.c_int
    function(
        b"T" if trans_b else b"N", b"T" if trans_a else b"N",
        c_int(columns), c_int(rows), c_int(inner), scalar(1.0),
        b.ctypes.data, c_int(ldb), a.ctypes.data, c_int(lda),
        scalar(beta), out.ctypes.data, c_int(ldc),
    )
