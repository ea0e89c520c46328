"""Direct access to the BLAS ``?gemm`` routines that SciPy links against.

NumPy's ``matmul`` cannot accumulate into its output (``beta = 1``), and SciPy's Python
wrappers copy row-major operands. The convolution kernels need both, so this module calls
the Fortran ``sgemm``/``dgemm`` behind :mod:`scipy.linalg.cython_blas` through ``ctypes``:
row-major views with any leading dimension (row stride) go in without copies, and ``ctypes``
releases the GIL during the call.

It also works around OpenBLAS builds that do not recognise recent AVX-512 CPUs (AMD Zen 5
is run with the AVX2 "Haswell" kernels, at half the speed): see :func:`select_openblas_core`.
"""

import ctypes
import os
import sys

import numpy as np

__all__ = ["gemm", "blas_info", "select_openblas_core"]

_AVX512_FLAGS = {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}
_SLOW_CORES = {"haswell", "zen"}
_FAST_CORE = "SKYLAKEX"


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


_GEMM, _BLAS_LIBRARY = _load_blas()


def _cpu_flags():
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _openblas_core_name(library):
    for symbol in ("scipy_openblas_get_corename", "scipy_openblas_get_corename64_",
                   "openblas_get_corename", "openblas_get_corename64_"):
        function = getattr(library, symbol, None)
        if function is not None:
            function.restype = ctypes.c_char_p
            return function().decode()
    return None


def _openblas_libraries():
    """Handles whose dependency trees hold the OpenBLAS of SciPy and of NumPy."""
    libraries = [] if _BLAS_LIBRARY is None else [_BLAS_LIBRARY]
    try:
        import numpy._core._multiarray_umath as multiarray
    except ImportError:  # pragma: no cover - NumPy < 2
        import numpy.core._multiarray_umath as multiarray
    try:
        libraries.append(ctypes.CDLL(multiarray.__file__))
    except OSError:  # pragma: no cover
        pass
    return libraries


def select_openblas_core(core=_FAST_CORE):
    """Switch OpenBLAS to its AVX-512 kernels where it mis-detected an AVX-512 CPU.

    OpenBLAS picks its kernels once, when it is loaded, unless ``OPENBLAS_CORETYPE`` says
    otherwise. Builds that do not know a CPU fall back to older kernels: on AMD Zen 5 the
    SciPy/NumPy wheels run "Haswell" (AVX2) code at about half the speed of their
    "SkylakeX" (AVX-512) kernels. This re-runs OpenBLAS's own kernel selection with
    ``OPENBLAS_CORETYPE=core`` -- the same effect as setting the variable before starting
    Python -- for the OpenBLAS libraries of SciPy and NumPy.

    Nothing is changed unless all of these hold: Linux; ``OPENBLAS_CORETYPE`` is not set
    (setting it, to any value, opts out); the CPU reports the AVX-512 F/CD/BW/DQ/VL
    extensions; the library runs Haswell or Zen kernels and contains ``core``'s. Call it
    while no BLAS routine is running (it runs once, when this module is imported).

    Returns
    -------
    list of (str, str)
        ``(before, after)`` kernel names of every OpenBLAS library that was switched.
    """
    if not sys.platform.startswith("linux") or "OPENBLAS_CORETYPE" in os.environ:
        return []
    if not _AVX512_FLAGS <= _cpu_flags():
        return []
    switched = []
    for library in _openblas_libraries():
        before = _openblas_core_name(library)
        if before is None or before.lower() not in _SLOW_CORES:
            continue
        try:
            quit_, init = library.gotoblas_dynamic_quit, library.gotoblas_dynamic_init
            getattr(library, "gotoblas_" + core)
        except AttributeError:
            continue
        os.environ["OPENBLAS_CORETYPE"] = core
        try:
            quit_()
            init()
        finally:
            del os.environ["OPENBLAS_CORETYPE"]
        after = _openblas_core_name(library)
        if after is None or after.lower() != core.lower():
            quit_()
            init()
            continue
        switched.append((before, after))
    return switched


_SWITCHED_CORES = select_openblas_core()


def blas_info():
    """Describe the BLAS the convolutions call: library kernels and any switch made.

    Returns
    -------
    dict
        ``{'direct': bool, 'core': str or None, 'switched': [(before, after), ...]}``;
        ``direct`` is False when ``gemm`` falls back to ``numpy.matmul``.
    """
    core = None if _BLAS_LIBRARY is None else _openblas_core_name(_BLAS_LIBRARY)
    return {"direct": bool(_GEMM), "core": core, "switched": list(_SWITCHED_CORES)}


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
