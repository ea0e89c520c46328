"""Compiled loops for :class:`fcn8_lasagne.ops.elemwise.CompiledElemwise`.

Each ``Elemwise`` node gets a C++ function built from its scalar operation's own C code (the
code PyTensor's C loop inlines, so every element is computed by the same expression and
rounds the same): ``run(start, stop, ...)`` computes rows ``start .. stop - 1`` of the
output (columns ``begin .. end - 1`` of each), a row being the innermost axis after
:func:`collapse` has merged the axes that all operands step through evenly. Ranges of rows,
or of columns when there are few rows, go to the worker threads. Where every operand's
innermost stride is 1, or 0 for the inputs broadcast along that axis, the row loop indexes
plain arrays, which the compiler vectorises; other strides take a strided loop.
"""

import ctypes
import hashlib

import pytensor.scalar as ps
from pytensor.graph.basic import Apply
from pytensor.scalar import get_scalar_type

from ._c_build import load_library

__all__ = ["SCALAR_OPS", "C_TYPES", "collapse", "element_strides", "kernel", "supported"]

#: Scalar operations whose C code is plain arithmetic on C scalars (no Python API, no
#: error paths): those a compiled loop accepts, inside a ``Composite`` too.
SCALAR_OPS = (ps.Add, ps.Sub, ps.Mul, ps.TrueDiv, ps.Neg, ps.Maximum, ps.Minimum, ps.Abs,
              ps.Sqr, ps.Sqrt, ps.Exp, ps.Expm1, ps.Log, ps.Log1p, ps.Tanh, ps.Switch,
              ps.GT, ps.GE, ps.LT, ps.LE, ps.EQ, ps.NEQ, ps.Identity, ps.Cast, ps.Sign,
              ps.AND, ps.OR, ps.Invert, ps.Second)
#: NumPy dtype → the C type PyTensor's scalar code names it by.
C_TYPES = {"float32": "float", "float64": "double", "bool": "unsigned char",
           "int8": "signed char", "uint8": "unsigned char", "int16": "short",
           "int32": "int", "int64": "long"}
_TYPEDEFS = "".join(f"typedef {c} npy_{name};\n" for name, c in C_TYPES.items())


def supported(scalar_op, dtypes):
    """Whether a compiled loop can run ``scalar_op`` on values of ``dtypes``."""
    if not set(dtypes) <= set(C_TYPES):
        return False
    if isinstance(scalar_op, ps.Composite):
        nodes = scalar_op.fgraph.toposort()
        return all(supported(node.op, [v.type.dtype for v in node.inputs + node.outputs])
                   for node in nodes)
    return isinstance(scalar_op, SCALAR_OPS)


def _source(scalar_op, input_dtypes, output_dtypes, broadcast_last):
    """C++ source of the loop; ``broadcast_last[k]``: input ``k`` is broadcast along the
    innermost axis (a fixed value per row in the vectorised loop)."""
    scalar_inputs = [get_scalar_type(dtype)() for dtype in input_dtypes]
    scalar_node = Apply(scalar_op, scalar_inputs,
                        [get_scalar_type(dtype)() for dtype in output_dtypes])
    n_in, n_out = len(input_dtypes), len(output_dtypes)
    inames = [f"i{k}" for k in range(n_in)]
    onames = [f"o{k}" for k in range(n_out)]
    task = scalar_op.c_code(scalar_node, "scalar", inames, onames, {"fail": "return;"})
    support = scalar_op.c_support_code() or ""
    types = [f"npy_{d}" for d in list(input_dtypes) + list(output_dtypes)]
    n_ops = n_in + n_out
    pointers = "".join(f"        {t}* p{k} = ({t}*)base[{k}] + offset[{k}];\n"
                       for k, t in enumerate(types))
    fixed = "".join(f"            const npy_{input_dtypes[k]} i{k} = p{k}[0];\n"
                    for k in range(n_in) if broadcast_last[k])
    read_fast = "".join(f"                npy_{input_dtypes[k]} i{k} = p{k}[i];\n"
                        for k in range(n_in) if not broadcast_last[k])
    read_strided = "".join(f"                npy_{input_dtypes[k]} i{k} = p{k}[i * s{k}];\n"
                           for k in range(n_in))
    declare_out = "".join(f"                npy_{output_dtypes[k]} o{k};\n"
                          for k in range(n_out))
    write_fast = "".join(f"                p{n_in + k}[i] = o{k};\n" for k in range(n_out))
    write_strided = "".join(f"                p{n_in + k}[i * s{n_in + k}] = o{k};\n"
                            for k in range(n_out))
    inner_strides = "".join(f"    const long s{k} = strides[{k} * (outer + 1) + outer];\n"
                            for k in range(n_ops))
    return f"""
#include <math.h>
{_TYPEDEFS}
{support}
extern "C" void run(long start, long stop, long begin, long end, long outer,
                    const long* shape, const long* strides, void** base, int fast) {{
{inner_strides}
    for (long r = start; r < stop; ++r) {{
        long offset[{n_ops}] = {{0}};
        long rest = r;
        for (long d = outer - 1; d >= 0; --d) {{
            const long index = rest % shape[d];
            rest /= shape[d];
            for (int k = 0; k < {n_ops}; ++k) offset[k] += index * strides[k * (outer + 1) + d];
        }}
{pointers}
        if (fast) {{
{fixed}
            for (long i = begin; i < end; ++i) {{
{read_fast}{declare_out}
                {{
{task}
                }}
{write_fast}
            }}
        }} else {{
            for (long i = begin; i < end; ++i) {{
{read_strided}{declare_out}
                {{
{task}
                }}
{write_strided}
            }}
        }}
    }}
}}
"""


_kernels = {}


def kernel(scalar_op, input_dtypes, output_dtypes, broadcast_last):
    """The compiled ``run`` function for these operands, or None (no compiler, or the
    build failed: the caller then keeps PyTensor's loop)."""
    source = _source(scalar_op, tuple(input_dtypes), tuple(output_dtypes),
                     tuple(broadcast_last))
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    if key not in _kernels:
        library = load_library(f"elemwise_{key}", source, "compiled elementwise loops",
                               "PyTensor's elementwise loops")
        function = None
        if library is not None:
            function = library.run
            function.restype = None
            function.argtypes = [ctypes.c_long] * 5 + [ctypes.c_void_p] * 3 + [ctypes.c_int]
            function.library = library  # kept alive with the function
        _kernels[key] = function
    return _kernels[key]


def collapse(shape, strides):
    """Drop length-1 axes and merge neighbours that every operand steps through evenly.

    Parameters
    ----------
    shape : tuple of int
        The output's shape (at least one axis).
    strides : list of tuple of int
        Each operand's strides in elements along the output's axes (0 where broadcast).

    Returns
    -------
    (shape, strides)
        Shape with at least one axis; strides as a list of lists.
    """
    keep = [d for d, n in enumerate(shape) if n != 1] or [len(shape) - 1]
    shape = [shape[d] for d in keep]
    strides = [[s[d] for d in keep] for s in strides]
    d = len(shape) - 1
    while d > 0:
        if all(s[d - 1] == s[d] * shape[d] for s in strides):
            shape[d - 1:d + 1] = [shape[d - 1] * shape[d]]
            for s in strides:
                s[d - 1:d + 1] = [s[d]]
        d -= 1
    return shape, strides


def element_strides(array, shape):
    """Strides of ``array`` in elements along ``shape`` (0 on broadcast axes)."""
    itemsize = array.itemsize
    return tuple(0 if n == 1 and m != 1 else s // itemsize
                 for n, m, s in zip(array.shape, shape, array.strides))
