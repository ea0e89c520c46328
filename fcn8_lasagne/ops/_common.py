"""Argument checks and small helpers shared by every op family of :mod:`fcn8_lasagne.ops`.

One home for what each op would otherwise write again: integer tuples (strides, windows,
dilations), the float-tensor-of-rank-N check, dtype upcasting, PyTensor's ``infer_shape``
signature across versions, and run-time errors that name the layer. The output-length
formulas live in :mod:`.shapes`.
"""

import contextlib

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Constant
from pytensor.scalar import upcast

__all__ = [
    "FLOAT_DTYPES",
    "int_tuple",
    "as_float_tensor",
    "common_dtype",
    "infer_shape_arguments",
    "named_errors",
    "size_input",
    "static_size",
    "run_time_size",
    "symbolic_size",
]

FLOAT_DTYPES = ("float16", "float32", "float64")

#: Names of the spatial axes for error messages, by number of spatial dimensions.
_LAYOUTS = {
    1: "(batch, channels, length)",
    2: "(batch, channels, rows, columns)",
    3: "(batch, channels, depth, rows, columns)",
}


def int_tuple(value, n, name, minimum=None):
    """``value`` (an int or a sequence of ``n`` ints) as a tuple of ``n`` Python ints.

    Parameters
    ----------
    value : int or sequence of int
    n : int
        The number of entries wanted (one per spatial axis).
    name : str
        The argument's name, for error messages.
    minimum : int, optional
        Smallest allowed entry.

    Returns
    -------
    tuple of int

    Raises
    ------
    TypeError
        For symbolic, boolean or non-integer entries.
    ValueError
        For the wrong number of entries or an entry below ``minimum``.
    """
    if isinstance(value, pt.Variable):
        raise TypeError(f"{name} must be an int or a tuple of {n} ints (symbolic {name} is "
                        f"not supported here), got {value}")
    entries = (value,) * n if np.ndim(value) == 0 else tuple(value)
    if len(entries) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    for entry in entries:
        if (isinstance(entry, (bool, np.bool_, pt.Variable))
                or not isinstance(entry, (int, np.integer))):
            raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
        if minimum is not None and entry < minimum:
            raise ValueError(f"{name} entries must be ints >= {minimum}, got {value!r}")
    return tuple(int(entry) for entry in entries)


def as_float_tensor(value, ndim, role, op_name, dtypes=FLOAT_DTYPES):
    """``value`` as a tensor variable of rank ``ndim`` and a floating-point dtype.

    Parameters
    ----------
    value : tensor-like
    ndim : int
        Expected rank (spatial dimensions + 2 for images).
    role : str
        What the tensor is ("the input", "the filters"), for error messages.
    op_name : str
    dtypes : tuple of str
        Accepted dtypes.

    Raises
    ------
    TypeError
        Naming the op, the role, the expected layout and what was given.
    """
    variable = pt.as_tensor_variable(value)
    if variable.type.ndim != ndim:
        layout = _LAYOUTS.get(ndim - 2, f"{ndim}-D")
        raise TypeError(
            f"{op_name}: {role} must be a {ndim}-D tensor {layout}, got "
            f"{variable.type.ndim}-D {variable.type} of shape {variable.type.shape}"
        )
    if variable.type.dtype not in dtypes:
        raise TypeError(
            f"{op_name}: {role} must be of dtype {' or '.join(dtypes)}, got "
            f"{variable.type.dtype}"
        )
    return variable


def common_dtype(*variables):
    """The variables cast to their common upcast dtype, and that dtype."""
    dtype = upcast(*(v.type.dtype for v in variables))
    return [v if v.type.dtype == dtype else pt.cast(v, dtype) for v in variables], dtype


def infer_shape_arguments(args):
    """``(node, input_shapes)`` of ``infer_shape``, called with a leading ``fgraph`` before
    PyTensor 3.3 and without it since (where a 4-argument signature is deprecated)."""
    return args[-2], args[-1]


@contextlib.contextmanager
def named_errors(node):
    """Prefix run-time shape errors with the output's name (layers name it after
    themselves), so a bad input names the layer it reached."""
    try:
        yield
    except ValueError as error:
        name = node.outputs[0].name
        if not name:
            raise
        raise ValueError(f"layer {name!r}: {error}") from None


def size_input(size, ndim, op_name):
    """An op's size input: a reference tensor of rank ``ndim + 2`` (its spatial shape gives
    the size, which keeps shapes static for JAX whatever the input size) or an integer
    vector of ``ndim`` spatial sizes (a constant one stays constant)."""
    variable = pt.as_tensor_variable(size)
    if variable.type.ndim == ndim + 2:
        return variable
    if variable.type.ndim != 1 or not variable.type.dtype.startswith(("int", "uint")):
        raise TypeError(
            f"{op_name}: the size input must be a {ndim + 2}-D reference tensor or an integer "
            f"vector of {ndim} spatial sizes, got {variable.type}")
    if variable.type.shape[0] not in (None, ndim):
        raise ValueError(
            f"{op_name}: the size vector must have {ndim} entries, got {variable.type.shape[0]}")
    if isinstance(variable, Constant):
        return pt.constant(np.asarray(variable.data, dtype="int64"))
    return pt.cast(variable, "int64")


def static_size(size, ndim):
    """The spatial size that a :func:`size_input` gives at graph-build time (None where
    unknown)."""
    if size.type.ndim == ndim + 2:
        return tuple(size.type.shape[2:])
    if isinstance(size, Constant):
        return tuple(int(v) for v in size.data)
    return (None,) * ndim


def run_time_size(value, ndim):
    """The spatial size that the run-time value of a :func:`size_input` gives."""
    if value.ndim == ndim + 2:
        return tuple(value.shape[2:])
    if value.shape != (ndim,):
        raise ValueError(f"the size vector must have {ndim} entries, got shape {value.shape}")
    return tuple(int(v) for v in value)


def symbolic_size(size, size_shape, ndim):
    """The spatial size of a :func:`size_input` for ``infer_shape`` (``size_shape`` is its
    shape there)."""
    if size.type.ndim == ndim + 2:
        return tuple(size_shape[2:])
    return tuple(size[i] for i in range(ndim))
