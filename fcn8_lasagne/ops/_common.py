"""Argument checks and small helpers shared by every op family of :mod:`fcn8_lasagne.ops`.

One home for what each op would otherwise write again: integer tuples (strides, windows,
dilations), the float-tensor-of-rank-N check, dtype upcasting, PyTensor's ``infer_shape``
signature across versions, and run-time errors that name the layer. The output-length
formulas live in :mod:`.shapes`.
"""

import contextlib

import numpy as np
import pytensor.tensor as pt
from pytensor.scalar import upcast

__all__ = [
    "FLOAT_DTYPES",
    "int_tuple",
    "as_float_tensor",
    "common_dtype",
    "infer_shape_arguments",
    "named_errors",
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
