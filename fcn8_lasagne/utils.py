"""
Small helpers shared by the library, with Lasagne's names (``lasagne.utils``).

.. autosummary::
    :nosignatures:

    floatX
    int_types
    shared_empty
    as_tuple
    unique
    inspect_kwargs
    compute_norms
    create_param
    one_hot
    as_theano_expression
    collect_shared_vars
    unroll_scan

The name :func:`as_theano_expression` is kept from Lasagne so that tutorial code
runs unchanged; it returns PyTensor variables.
"""

import inspect
import numbers
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable

__all__ = [
    "floatX",
    "int_types",
    "shared_empty",
    "as_tuple",
    "unique",
    "inspect_kwargs",
    "compute_norms",
    "create_param",
    "one_hot",
    "row_indices",
    "as_theano_expression",
    "collect_shared_vars",
    "host_value",
    "unroll_scan",
]

#: The types accepted as integers: Python ints and NumPy integer scalars.
int_types = (numbers.Integral, np.integer)


def floatX(arr):
    """Convert a number or array to an array of PyTensor's ``floatX`` dtype.

    Parameters
    ----------
    arr : array_like
        A number, list or NumPy array.

    Returns
    -------
    numpy.ndarray
        ``arr`` as an array of dtype ``pytensor.config.floatX`` (no copy if it
        already is one).
    """
    return np.asarray(arr, dtype=pytensor.config.floatX)


def shared_empty(dim=2, dtype=None):
    """Create a shared variable of `dim` dimensions holding zeros of shape ``(1,) * dim``.

    Parameters
    ----------
    dim : int, optional
        The number of dimensions (default 2).
    dtype : numpy dtype, optional
        Default: ``pytensor.config.floatX``.

    Returns
    -------
    SharedVariable
        Its dimensions are not broadcastable, so any value of `dim` dimensions can be set
        later (as Theano's ``shared`` of that array).
    """
    if dtype is None:
        dtype = pytensor.config.floatX
    return pytensor.shared(np.zeros((1,) * dim, dtype=dtype))


def as_tuple(x, N, t=None):
    """Coerce a value to a tuple of length `N`.

    Parameters
    ----------
    x : value or iterable
        A single value (repeated `N` times) or an iterable of `N` values.
    N : int
        The length of the tuple to return.
    t : type or tuple of types, optional
        If given, every element must be an instance of `t`.

    Returns
    -------
    tuple
        A tuple of length `N`.

    Raises
    ------
    TypeError
        If `t` is given and an element is not an instance of it.
    ValueError
        If `x` is an iterable whose length is not `N`.
    """
    try:
        values = tuple(x)
    except TypeError:
        values = (x,) * N

    if t is not None and not all(isinstance(value, t) for value in values):
        if t == int_types:
            expected_type = "int"
        elif isinstance(t, tuple):
            expected_type = " or ".join(typ.__name__ for typ in t)
        else:
            expected_type = t.__name__
        raise TypeError(
            "expected a single value or an iterable of {0}, got {1} instead".format(
                expected_type, x
            )
        )
    if len(values) != N:
        raise ValueError(
            "expected a single value or an iterable with length {0}, got {1} "
            "instead".format(N, x)
        )
    return values


def unique(items):
    """Return the items of a sequence without duplicates, in first-seen order.

    Parameters
    ----------
    items : iterable
        The items; they need not be hashable (PyTensor variables compare by
        identity).

    Returns
    -------
    list
        The first occurrence of each distinct item, in order.
    """
    kept = []
    for item in items:
        if item not in kept:
            kept.append(item)
    return kept


def inspect_kwargs(func):
    """The names of the arguments of `func` that have a default value, in order.

    Parameters
    ----------
    func : callable

    Returns
    -------
    list of str

    Raises
    ------
    TypeError
        If the signature of `func` cannot be inspected.
    """
    try:
        parameters = inspect.signature(func).parameters.values()
    except ValueError as error:  # builtins without a signature
        raise TypeError(str(error)) from error
    return [p.name for p in parameters if p.default is not p.empty]


def _default_norm_axes(ndim, norm_axes):
    """Axes summed over by :func:`compute_norms` and ``norm_constraint``."""
    if norm_axes is not None:
        return tuple(norm_axes)
    if ndim == 2:  # dense layer weights: one norm per output unit (column)
        return (0,)
    if ndim in (3, 4, 5):  # convolution filters: one norm per filter
        return tuple(range(1, ndim))
    raise ValueError(
        "Unsupported tensor dimensionality {}. Must specify `norm_axes`".format(ndim)
    )


def compute_norms(array, norm_axes=None):
    """Compute the L2 norms of the incoming weight vectors of a weight array.

    Parameters
    ----------
    array : numpy.ndarray or PyTensor variable
        A weight or bias array, or a symbolic (or shared) tensor.
    norm_axes : sequence of int, optional
        The axes to sum over. By default ``(0,)`` for a 2-D (dense) array, all axes but
        the first for a 3-D, 4-D or 5-D (convolution) array, and none for a 1-D (bias)
        array, whose "norms" are then the absolute values of its elements.

    Returns
    -------
    numpy.ndarray or PyTensor variable
        The norms (NumPy for a NumPy array, symbolic for a variable), with the summed
        axes removed.

    Raises
    ------
    RuntimeError
        If `array` is neither a NumPy array nor a PyTensor variable (lists included).
    ValueError
        If `norm_axes` is omitted and `array` is not 1-D to 5-D.
    """
    if not isinstance(array, (Variable, np.ndarray)):
        raise RuntimeError(
            "Unsupported type {}. Only PyTensor variables and numpy arrays are "
            "supported".format(type(array))
        )
    if norm_axes is None and array.ndim == 1:
        sum_over = ()
    else:
        sum_over = _default_norm_axes(array.ndim, norm_axes)
    if isinstance(array, Variable):
        if not sum_over:
            return pt.abs(array)
        return pt.sqrt(pt.sum(array ** 2, axis=sum_over))
    if not sum_over:
        return abs(array)
    return np.sqrt(np.sum(array ** 2, axis=sum_over))


def create_param(spec, shape, name=None):
    """Create a parameter variable of the given shape from an initialisation spec.

    The one implementation behind :meth:`fcn8_lasagne.layers.Layer.add_param`.

    Parameters
    ----------
    spec : number, numpy.ndarray, PyTensor variable or callable
        A number or array becomes a shared variable holding it; a PyTensor expression or
        shared variable is returned as it is; a callable (e.g. an initialiser from
        :mod:`fcn8_lasagne.init`) is called with ``shape`` and its result is used as above.
    shape : iterable of int
        The parameter's shape (all sizes positive).
    name : str, optional
        Given to the variable unless it already has a name.

    Returns
    -------
    pytensor Variable

    Raises
    ------
    ValueError
        If `shape` has a non-positive size, or the array's shape (or the variable's number
        of dimensions) does not match it.
    TypeError
        If `spec` (or what the callable returned) is none of the above.

    Notes
    -----
    A shared variable created here from an array (or from what an initialiser returns) has
    a fully static shape, ``pytensor.shared(value, shape=value.shape)``: its dimensions of
    size 1 are broadcastable, as in Lasagne, and the others are fixed too. Gradients of
    this package's convolutions have static shapes, and PyTensor updates a variable in
    place (``W - lr * g`` written into ``W``'s buffer, likewise Adam's moments, which take
    their parameter's type) only when the update's type is the variable's own. The
    difference from Lasagne: ``set_value`` with an array of another shape raises
    ``TypeError``; values of the same shape are set as before. See
    ``docs/faithfulness.md``.
    """
    shape = tuple(shape)
    if any(d <= 0 for d in shape):
        raise ValueError(
            f"Cannot create param with a non-positive shape dimension. "
            f"Tried to create param with shape={shape!r}, name={name!r}"
        )
    err_prefix = f"cannot initialize parameter {name}: "
    from_callable = callable(spec)
    if from_callable:
        spec = spec(shape)
        err_prefix += "the callable returned "
    else:
        err_prefix += "the provided spec is "
    if isinstance(spec, numbers.Number) or (
        isinstance(spec, np.generic) and spec.dtype.kind in "biufc"
    ):
        spec = np.asarray(spec)
    if isinstance(spec, np.ndarray):
        if spec.shape != shape:
            raise ValueError(f"{err_prefix}an array of shape {spec.shape!r}, expected {shape!r}")
        spec = pytensor.shared(spec, name=name, shape=spec.shape)
    if isinstance(spec, Variable):
        if spec.ndim != len(shape):
            raise ValueError(
                f"{err_prefix}a variable with {spec.ndim} dimensions, expected {len(shape)}"
            )
        if not spec.name:
            spec.name = name
        return spec
    expected = ("a pytensor variable or a numpy array" if from_callable
                else "a pytensor variable, a numpy array, a number or a callable")
    raise TypeError(f"{err_prefix}a {type(spec).__name__}; expected {expected}")


def _set_default_update(variable, update):
    """Give a shared variable its default update (applied whenever a function reads it).

    Lasagne's dropout masks and batch-norm averages rely on default updates. PyTensor 3
    deprecates setting them but still applies them; the deprecation warning is not the
    user's concern, so it is silenced here, and only here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Setting default_update is deprecated",
                                DeprecationWarning)
        variable.default_update = update


def one_hot(x, m=None):
    """One-hot encode a vector of integers.

    Parameters
    ----------
    x : integer vector (symbolic)
        Class indices in ``0 .. m - 1``.
    m : int or symbolic int scalar, optional
        The number of classes; defaults to ``max(x) + 1``.

    Returns
    -------
    symbolic matrix
        ``(len(x), m)`` matrix of dtype ``floatX`` with a single 1 per row.
    """
    x = pt.as_tensor_variable(x)
    if m is None:
        m = pt.cast(pt.max(x) + 1, "int32")
    return pt.eye(m)[pt.cast(x, "int32")]


def row_indices(n_rows):
    """``arange(n_rows)`` as int64, for picking one entry per row (``x[rows, targets]``).

    The start is an explicit int64 constant: PyTensor's JAX backend otherwise evaluates
    ``stop - start`` with an int8 start and overflows past 127 rows under NumPy 2.
    """
    return pt.arange(pt.constant(0, dtype="int64"), n_rows)


def as_theano_expression(input):
    """Wrap a value as a PyTensor constant unless it is a PyTensor variable.

    Parameters
    ----------
    input : PyTensor variable, NumPy array or Python number

    Returns
    -------
    pytensor.graph.basic.Variable
        `input` itself, or a constant holding it.

    Raises
    ------
    TypeError
        If `input` cannot be turned into a constant.
    """
    if isinstance(input, Variable):
        return input
    try:
        return pt.constant(input)
    except Exception as error:
        raise TypeError(
            "Input of type %s is not a PyTensor expression and cannot be wrapped "
            "as a PyTensor constant (original exception: %s)" % (type(input), error)
        ) from error


def host_value(variable):
    """A NumPy copy of a shared variable's value.

    Like ``variable.get_value()``, but also a NumPy array (not a JAX array) when a JAX
    function keeps the value on its device (see :mod:`fcn8_lasagne.compile`).
    """
    return np.array(variable.get_value(borrow=True))


def collect_shared_vars(expressions):
    """Return the shared variables an expression or expressions depend on.

    Parameters
    ----------
    expressions : PyTensor variable or iterable of variables

    Returns
    -------
    list of SharedVariable
        Every shared variable in the graphs of `expressions`, once each, in
        the order of a left-to-right depth-first walk: for a list of shared
        variables, that list itself (without repeats).

    Raises
    ------
    TypeError
        If an element is not a PyTensor variable.
    """
    if isinstance(expressions, Variable):
        expressions = [expressions]
    expressions = list(expressions)
    for expression in expressions:
        if not isinstance(expression, Variable):
            raise TypeError("expected PyTensor variables, got %r" % (expression,))

    found = []
    visited = set()
    to_visit = expressions[::-1]
    while to_visit:
        variable = to_visit.pop()
        if variable in visited:
            continue
        visited.add(variable)
        if isinstance(variable, SharedVariable):
            found.append(variable)
        elif variable.owner is not None:
            to_visit.extend(variable.owner.inputs[::-1])
    return found


def unroll_scan(fn, sequences, outputs_info, non_sequences, n_steps, go_backwards=False):
    """Unroll a recurrence into ``n_steps`` copies of ``fn`` (Lasagne's ``unroll_scan``).

    The arguments are ``pytensor.scan``'s, and so is the order in which ``fn`` receives
    them: one slice of each sequence, the previous values of the outputs, the non-sequences.
    ``truncate_gradient`` is not supported (the graph is explicit).

    Parameters
    ----------
    fn : callable
        The step; returns one variable or a list/tuple of them (one per output).
    sequences : TensorVariable or list of TensorVariable
        Iterated over their first axis.
    outputs_info : list of TensorVariable
        The initial value of each recurrent output.
    non_sequences : list of TensorVariable
        Passed unchanged to every step.
    n_steps : int
        Number of steps (a Python int).
    go_backwards : bool
        Visit ``sequences[n_steps - 1]`` first and ``sequences[0]`` last.

    Returns
    -------
    list of TensorVariable
        For each output, its values stacked along a new first axis in the order the steps
        ran (as ``scan``: with ``go_backwards`` the first entry is the last position's).
    """
    if not isinstance(sequences, (list, tuple)):
        sequences = [sequences]
    steps = range(n_steps)
    if go_backwards:
        steps = steps[::-1]
    per_step = []
    previous = list(outputs_info)
    for i in steps:
        out = fn(*([s[i] for s in sequences] + previous + list(non_sequences)))
        out = [out] if isinstance(out, Variable) else list(out)
        per_step.append(out)
        previous = out
    return [pt.stack([outs[k] for outs in per_step]) for k in range(len(per_step[0]))]
