"""Theano 1.0.5's pooling ops (``theano.tensor.signal.pool``) for any number of spatial axes.

API
---
Functions (Theano's signatures)::

    pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode='max',
            ds=None, st=None, padding=None)
    pool_3d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0, 0), mode='max', ...)
    max_pool_2d_same_size(input, patch_size)

Pooling runs over the last 2 (3) axes of an input of that rank or more. Windows of ``ws``
elements every ``stride`` elements of the input padded with ``pad`` zeros on each side;
with ``ignore_border=False`` the partial windows at the end of each axis are kept (clipped
to the image). ``'max'`` takes the maximum over the window's *image* elements (the padding
never wins: Theano's C code, and its documentation, "max and sum always exclude the
padding"), ``'sum'`` the sum, ``'average_inc_pad'`` divides the sum by the size of the
window clipped to the padded image, ``'average_exc_pad'`` by the size of the window clipped
to the image itself. 1-D pooling is 2-D pooling with a ``(k, 1)`` window on a trailing
singleton axis, as Lasagne's ``Pool1DLayer`` does.

Ops
---
As in Theano, the ops take ``ignore_border``, ``mode`` and ``ndim`` (the number of pooled
axes) as properties and the window, stride and padding as integer-vector *inputs*:

==============================================  =========================================
op and inputs                                   output
==============================================  =========================================
``Pool(ignore_border, mode, ndim)``             the pooled ``z``
``(x, ws, stride, pad)``
``MaxPoolGrad(ignore_border, ndim)``            gradient with respect to ``x``: every
``(x, z, gz, ws, stride, pad)``                 input equal to its window's maximum
                                                gets the window's gradient (Theano's tie
                                                rule; PyTorch and JAX autodiff pick one)
``AveragePoolGrad(ignore_border, mode, ndim)``  gradient of the sum and average modes
``(x, gz, ws, stride, pad)``
``DownsampleFactorMaxGradGrad(ignore_border,    gradient of ``MaxPoolGrad`` with respect
mode, ndim)`` ``(x, z, ggx, ws, stride, pad)``  to ``gz`` (and max pooling's
                                                forward-mode derivative)
==============================================  =========================================

Ints give constant vectors: static output shapes, and the only form JAX accepts. Symbolic
windows (a vector, or a tuple holding symbolic scalars, as Lasagne's spatial pyramid
pooling computes from the input size) run on the C backend (CPU kernels in
:mod:`._pool_cpu`); JAX needs them at compile time (translations in :mod:`._jax.pool`).
Gradients are made of ops of this family, so every derivative order compiles everywhere.
"""

import warnings

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.op import Op
from pytensor.tensor.type import TensorType

from . import _pool_cpu
from ._backend import register_numba_perform
from ._common import as_float_tensor, infer_shape_arguments, int_tuple, named_errors
from .shapes import pool_output_length

__all__ = [
    "pool_2d",
    "pool_3d",
    "max_pool_2d_same_size",
    "Pool",
    "MaxPoolGrad",
    "AveragePoolGrad",
    "DownsampleFactorMaxGradGrad",
    "POOL_MODES",
]

#: The pooling modes, as Theano's ``Pool`` names them.
POOL_MODES = ("max", "sum", "average_inc_pad", "average_exc_pad")

# Other names Theano accepted: its CPU ``Pool`` turned 'max_deterministic' into 'max', and
# its GPU pooling op turned 'average' into 'average_inc_pad'.
_MODE_ALIASES = {"max_deterministic": "max", "average": "average_inc_pad"}

_GEOMETRY = ("ws", "stride", "pad")


def _canonical_mode(mode):
    """Map Theano's mode aliases to the four modes and reject anything else."""
    mode = _MODE_ALIASES.get(mode, mode)
    if mode not in POOL_MODES:
        raise ValueError(
            f"pooling mode must be one of {POOL_MODES} (or the Theano aliases "
            f"{tuple(_MODE_ALIASES)}), got {mode!r}"
        )
    return mode


def _geometry_input(value, ndim, name, minimum, op_name):
    """``ws``, ``stride`` or ``pad`` as an int64 vector of ``ndim`` entries: a constant for
    ints (checked here), a symbolic vector otherwise (checked at run time)."""
    if isinstance(value, Constant):
        value = value.data
    if isinstance(value, pt.Variable):
        if value.type.ndim != 1 or not value.type.dtype.startswith(("int", "uint")):
            raise TypeError(f"{op_name}: {name} must be ints or an integer vector, got "
                            f"{value.type}")
        if value.type.shape[0] not in (None, ndim):
            raise ValueError(f"{op_name}: {name} must have {ndim} entries, got "
                             f"{value.type.shape[0]}")
        return pt.cast(value, "int64")
    entries = (value,) * ndim if np.ndim(value) == 0 else tuple(value)
    if any(isinstance(entry, pt.Variable) for entry in entries):
        if len(entries) != ndim:
            raise ValueError(f"{op_name}: {name} must have {ndim} entries, got {value!r}")
        scalars = [pt.as_tensor_variable(entry) for entry in entries]
        for scalar in scalars:
            if scalar.type.ndim != 0 or not scalar.type.dtype.startswith(("int", "uint")):
                raise TypeError(f"{op_name}: {name} entries must be integer scalars, got "
                                f"{scalar.type}")
        return pt.stack([pt.cast(scalar, "int64") for scalar in scalars])
    return pt.constant(np.array(int_tuple(entries, ndim, name, minimum), dtype="int64"))


def _static(variable):
    """A geometry input's ints, or None when it is symbolic."""
    if isinstance(variable, Constant):
        return tuple(int(v) for v in variable.data)
    return None


def _check_geometry(ws, stride, pad, ignore_border, ndim, prefix):
    """Theano's rules on known ints: positive windows and strides, padding smaller than the
    window and only with ``ignore_border=True``."""
    for name, values, minimum in (("ws", ws, 1), ("stride", stride, 1), ("pad", pad, 0)):
        if values is None:
            continue
        if len(values) != ndim:
            raise ValueError(f"{prefix}{name} must have {ndim} entries, got {values}")
        if min(values) < minimum:
            raise ValueError(f"{prefix}{name} entries must be ints >= {minimum}, got {values}")
    if pad is not None and any(pad) and not ignore_border:
        raise ValueError(f"{prefix}padding {pad} requires ignore_border=True (as in Theano)")
    if pad is not None and ws is not None and any(p >= w for p, w in zip(pad, ws)):
        raise ValueError(f"{prefix}padding {pad} must be smaller than the pooling window "
                         f"{ws} (as in Theano)")


class _PoolingOp(Op):
    """Properties, argument checks and geometry plumbing shared by the pooling ops.

    Subclasses set ``_first_geometry``, the position of ``ws`` among their inputs.
    """

    __props__ = ("ignore_border", "mode", "ndim")
    _first_geometry = 1

    def __init__(self, ignore_border=False, mode="max", ndim=2):
        if not isinstance(ignore_border, (bool, np.bool_)):
            raise TypeError(f"ignore_border must be True or False, got {ignore_border!r}")
        if isinstance(ndim, (bool, np.bool_)) or not isinstance(ndim, (int, np.integer)) \
                or ndim < 1:
            raise ValueError(f"ndim (the number of pooled axes) must be an int >= 1, got "
                             f"{ndim!r}")
        self.ignore_border = bool(ignore_border)
        self.mode = _canonical_mode(mode)
        self.ndim = int(ndim)

    @property
    def _name(self):
        return type(self).__name__

    def _image(self, value, role):
        """``value`` as a float tensor with at least ``ndim`` axes."""
        variable = pt.as_tensor_variable(value)
        if variable.type.ndim < self.ndim:
            raise TypeError(
                f"{self._name}: {role} must have at least {self.ndim} dimensions (the pooled "
                f"axes are the last {self.ndim}), got {variable.type.ndim}-D {variable.type} "
                f"of shape {variable.type.shape}")
        return as_float_tensor(variable, variable.type.ndim, role, self._name)

    def _same_type(self, reference, **others):
        for role, variable in others.items():
            if variable.type.dtype != reference.type.dtype:
                raise TypeError(f"{self._name}: {role} must be of dtype "
                                f"{reference.type.dtype} (the input's), got "
                                f"{variable.type.dtype}")
            if variable.type.ndim != reference.type.ndim:
                raise TypeError(f"{self._name}: {role} must have {reference.type.ndim} "
                                f"dimensions (the input's), got {variable.type.ndim}")

    def _geometry_inputs(self, ws, stride, pad):
        """The three geometry inputs (``stride=None`` means ``ws``, ``pad=None`` zeros),
        checked where they are constant."""
        if ws is None:
            raise ValueError(f"{self._name}: you must provide a window size ws")
        ws = _geometry_input(ws, self.ndim, "ws", 1, self._name)
        stride = ws if stride is None else _geometry_input(stride, self.ndim, "stride", 1,
                                                            self._name)
        pad = _geometry_input(0 if pad is None else pad, self.ndim, "pad", 0, self._name)
        _check_geometry(_static(ws), _static(stride), _static(pad), self.ignore_border,
                        self.ndim, f"{self._name}: ")
        return [ws, stride, pad]

    def static_geometry(self, node):
        """``(ws, stride, pad)`` of an Apply node as int tuples, None for symbolic ones."""
        first = self._first_geometry
        return tuple(_static(v) for v in node.inputs[first:first + 3])

    def _run_time_geometry(self, values):
        ws, stride, pad = (tuple(int(v) for v in np.asarray(value).reshape(-1))
                           for value in values)
        _check_geometry(ws, stride, pad, self.ignore_border, self.ndim, "")
        return ws, stride, pad

    def _symbolic_geometry(self, node):
        """Ints where constant, symbolic scalars otherwise (for shape formulas)."""
        first = self._first_geometry
        geometry = []
        for variable in node.inputs[first:first + 3]:
            static = _static(variable)
            geometry.append(static if static is not None
                            else tuple(variable[i] for i in range(self.ndim)))
        return geometry

    def output_spatial(self, spatial, ws, stride, pad):
        """Pooled lengths of the last ``ndim`` axes (None where unknown)."""
        return tuple(pool_output_length(length, w, s, p, self.ignore_border)
                     for length, w, s, p in zip(spatial, ws, stride, pad))

    def connection_pattern(self, node):
        return [[True]] * self._first_geometry + [[False]] * 3


@register_numba_perform
class Pool(_PoolingOp):
    """Theano's ``Pool``: max, sum or average over windows of the last ``ndim`` axes.

    ``Pool(ignore_border=False, mode='max', ndim=2)(x, ws, stride=None, pad=None)``;
    ``ws``, ``stride`` and ``pad`` are ints, tuples of ``ndim`` ints or integer vectors;
    ``stride=None`` means ``ws``, ``pad=None`` no padding. See :func:`pool_2d`.
    """

    def make_node(self, x, ws, stride=None, pad=None):
        x = self._image(x, "the input")
        geometry = self._geometry_inputs(ws, stride, pad)
        static = [_static(v) for v in geometry]
        lead, spatial = x.type.shape[:-self.ndim], x.type.shape[-self.ndim:]
        if None in static:
            out_spatial = (None,) * self.ndim
        else:
            out_spatial = self.output_spatial(spatial, *static)
        out = TensorType(x.type.dtype, shape=lead + out_spatial)
        return Apply(self, [x, *geometry], [out()])

    def perform(self, node, inputs, outputs):
        x, *geometry = inputs
        with named_errors(node):
            ws, stride, pad = self._run_time_geometry(geometry)
            outputs[0][0] = _pool_cpu.pool_forward(x, ws, stride, pad, self.ignore_border,
                                                   self.mode)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        x_shape = shapes[0]
        geometry = self._symbolic_geometry(node)
        return [tuple(x_shape[:-self.ndim])
                + self.output_spatial(x_shape[-self.ndim:], *geometry)]

    def pullback(self, inputs, outputs, cotangents):
        x, *geometry = inputs
        (z,) = outputs
        (gz,) = cotangents
        if self.mode == "max":
            grad = MaxPoolGrad(self.ignore_border, ndim=self.ndim)(x, z, gz, *geometry)
        else:
            grad = AveragePoolGrad(self.ignore_border, self.mode, self.ndim)(x, gz, *geometry)
        return [grad] + [disconnected_type() for _ in geometry]

    def pushforward(self, inputs, outputs, tangents):
        x, *geometry = inputs
        (z,) = outputs
        dx = tangents[0]
        if dx is None or isinstance(dx.type, DisconnectedType):
            return [disconnected_type()]
        if self.mode == "max":
            grad_grad = DownsampleFactorMaxGradGrad(self.ignore_border, ndim=self.ndim)
            return [grad_grad(x, z, dx, *geometry)]
        return [self(dx, *geometry)]


@register_numba_perform
class MaxPoolGrad(_PoolingOp):
    """Theano's ``MaxPoolGrad``: gradient of max pooling with respect to its input.

    ``MaxPoolGrad(ignore_border, ndim=2)(x, z, gz, ws, stride=None, pad=None)`` with the
    pooled input ``x``, its max-pooled output ``z`` and the output gradient ``gz``. Every
    element of ``x`` equal to its window's maximum receives the window's gradient; an
    element in several windows sums their contributions. Ties are *not* broken.
    """

    _first_geometry = 3

    def __init__(self, ignore_border, ndim=2):
        super().__init__(ignore_border, "max", ndim)

    def make_node(self, x, maxout, gz, ws, stride=None, pad=None):
        x = self._image(x, "x")
        maxout = self._image(maxout, "the pooled output z")
        gz = self._image(gz, "the output gradient gz")
        self._same_type(x, z=maxout, gz=gz)
        return Apply(self, [x, maxout, gz, *self._geometry_inputs(ws, stride, pad)],
                     [x.type()])

    def perform(self, node, inputs, outputs):
        x, z, gz, *geometry = inputs
        with named_errors(node):
            ws, stride, pad = self._run_time_geometry(geometry)
            _check_pooled(self, x, ws, stride, pad, z=z, gz=gz)
            outputs[0][0] = _pool_cpu.max_pool_grad(x, z, gz, ws, stride, pad)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        return [shapes[0]]

    def pullback(self, inputs, outputs, cotangents):
        x, z, gz, *geometry = inputs
        (ggx,) = cotangents
        grad_grad = DownsampleFactorMaxGradGrad(self.ignore_border, ndim=self.ndim)
        # Piecewise constant in x and z: their gradient is zero wherever it exists.
        return ([pt.zeros_like(x), pt.zeros_like(z), grad_grad(x, z, ggx, *geometry)]
                + [disconnected_type() for _ in geometry])


@register_numba_perform
class AveragePoolGrad(_PoolingOp):
    """Theano's ``AveragePoolGrad``: gradient of sum and average pooling.

    ``AveragePoolGrad(ignore_border, mode='average_inc_pad', ndim=2)(x, gz, ws,
    stride=None, pad=None)``: each window's gradient is spread evenly over the window's
    image elements, divided by the forward pass's window size (not for ``'sum'``); ``x``
    only lends its shape. Unlike Theano, ``'average_exc_pad'`` with padding is supported.
    """

    _first_geometry = 2

    def __init__(self, ignore_border, mode="average_inc_pad", ndim=2):
        super().__init__(ignore_border, mode, ndim)
        if self.mode == "max":
            raise ValueError("AveragePoolGrad is for the sum and average modes; use "
                             "MaxPoolGrad")

    def make_node(self, x, gz, ws, stride=None, pad=None, dummy=None):
        x = self._image(x, "x")
        gz = self._image(gz, "the output gradient gz")
        self._same_type(x, gz=gz)
        return Apply(self, [x, gz, *self._geometry_inputs(ws, stride, pad)], [x.type()])

    def perform(self, node, inputs, outputs):
        x, gz, *geometry = inputs
        with named_errors(node):
            ws, stride, pad = self._run_time_geometry(geometry)
            _check_pooled(self, x, ws, stride, pad, gz=gz)
            outputs[0][0] = _pool_cpu.average_pool_grad(x.shape, gz, ws, stride, pad,
                                                        self.mode)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        return [shapes[0]]

    def pullback(self, inputs, outputs, cotangents):
        x, gz, *geometry = inputs
        (ggx,) = cotangents
        pool = Pool(self.ignore_border, self.mode, self.ndim)
        # Linear in gz, whose adjoint is the pooling itself; x only lends its shape.
        return ([pt.zeros_like(x), pool(ggx, *geometry)]
                + [disconnected_type() for _ in geometry])


@register_numba_perform
class DownsampleFactorMaxGradGrad(_PoolingOp):
    """Theano's ``DownsampleFactorMaxGradGrad``: :class:`MaxPoolGrad` differentiated in gz.

    ``DownsampleFactorMaxGradGrad(ignore_border, mode='max', ndim=2)(x, z, ggx, ws,
    stride=None, pad=None)``: shaped like ``z``, for every window the sum of ``ggx`` (shaped
    like ``x``) over the window's elements equal to its maximum.
    """

    _first_geometry = 3

    def __init__(self, ignore_border, mode="max", ndim=2):
        super().__init__(ignore_border, mode, ndim)
        if self.mode != "max":
            raise ValueError("DownsampleFactorMaxGradGrad is for mode='max'")

    def make_node(self, x, maxout, gz, ws, stride=None, pad=None):
        x = self._image(x, "x")
        maxout = self._image(maxout, "the pooled output z")
        ggx = self._image(gz, "ggx")
        self._same_type(x, z=maxout, ggx=ggx)
        return Apply(self, [x, maxout, ggx, *self._geometry_inputs(ws, stride, pad)],
                     [maxout.type()])

    def perform(self, node, inputs, outputs):
        x, z, ggx, *geometry = inputs
        with named_errors(node):
            ws, stride, pad = self._run_time_geometry(geometry)
            _check_pooled(self, x, ws, stride, pad, z=z)
            if ggx.shape != x.shape:
                raise ValueError(f"{self._name}: ggx has shape {ggx.shape}, the input "
                                 f"{x.shape}")
            outputs[0][0] = _pool_cpu.max_pool_grad_grad(x, z, ggx, ws, stride, pad)

    def infer_shape(self, *args):
        node, shapes = infer_shape_arguments(args)
        return [shapes[1]]

    def pullback(self, inputs, outputs, cotangents):
        x, z, ggx, *geometry = inputs
        (gggz,) = cotangents
        grad = MaxPoolGrad(self.ignore_border, ndim=self.ndim)
        # Linear in ggx; its adjoint is MaxPoolGrad.
        return ([pt.zeros_like(x), pt.zeros_like(z), grad(x, z, gggz, *geometry)]
                + [disconnected_type() for _ in geometry])


def _check_pooled(op, x, ws, stride, pad, **pooled):
    """Run-time check that each array of ``pooled`` has the shape pooling ``x`` gives."""
    ndim = op.ndim
    expected = x.shape[:-ndim] + _pool_cpu.output_spatial(x.shape[-ndim:], ws, stride, pad,
                                                          op.ignore_border)
    for role, array in pooled.items():
        if array.shape != expected:
            raise ValueError(f"{op._name}: {role} has shape {array.shape}, but pooling the "
                             f"input of shape {x.shape} gives {expected}")


# --------------------------------------------------------------------------------------
# Public functions (Theano's)
# --------------------------------------------------------------------------------------


def _renamed_argument(new_value, old_value, new_name, old_name, default=None):
    """Theano 1.0's handling of its deprecated ``ds``/``st``/``padding`` names."""
    if old_value is None:
        return new_value
    new_value_unset = new_value is None or (
        default is not None and not isinstance(new_value, pt.Variable)
        and np.ndim(new_value) == np.ndim(default)
        and np.all(np.asarray(new_value) == np.asarray(default))
    )
    if not new_value_unset:
        raise ValueError(
            f"You can't provide a value to both {new_name!r} and {old_name!r}. "
            f"Please provide a value only to {new_name!r}."
        )
    warnings.warn(
        f"DEPRECATION: the {old_name!r} parameter is replaced by {new_name!r}.",
        DeprecationWarning,
        stacklevel=4,
    )
    return old_value


def _pool_nd(ndim, function_name, input, ws, ignore_border, stride, pad, mode, ds, st,
             padding):
    ws = _renamed_argument(ws, ds, "ws", "ds")
    stride = _renamed_argument(stride, st, "stride", "st")
    pad = _renamed_argument(pad, padding, "pad", "padding", default=(0,) * ndim)
    if ws is None:
        raise ValueError("You must provide a value for the window size ws.")
    input = pt.as_tensor_variable(input)
    if input.type.ndim < ndim:
        raise NotImplementedError(f"{function_name} requires a dimension >= {ndim}, got a "
                                  f"{input.type.ndim}-D input ({input.type})")
    if ignore_border is None:
        warnings.warn(
            f"{function_name}() got ignore_border=None, which means ignore_border=False as "
            "in Theano 1.0 (whose default was meant to become True); pass ignore_border "
            "explicitly.",
            UserWarning,
            stacklevel=3,
        )
        ignore_border = False
    return Pool(ignore_border, mode, ndim)(input, ws, stride, pad)


def pool_2d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0), mode="max",
            ds=None, st=None, padding=None):
    """Downscale the input by pooling windows over its last two axes (Theano's ``pool_2d``).

    Parameters
    ----------
    input : tensor of 2 or more dimensions
        Images; pooling runs over the last two axes.
    ws : int, pair of ints or integer vector of 2 entries
        Window size (rows, columns); ``(2, 2)`` halves each axis.
    ignore_border : bool, optional
        ``True``: a (5, 5) input with ``ws=(2, 2)`` gives a (2, 2) output; ``False``: (3, 3),
        the partial windows at the end being kept. ``None`` warns and means ``False``, as in
        Theano 1.0 (Lasagne always passes it explicitly).
    stride : int, pair of ints or integer vector, optional
        Distance between windows; ``None`` means ``ws``.
    pad : int, pair of ints, integer vector or None
        Zeros added on both sides of each axis; needs ``ignore_border=True`` and must be
        smaller than ``ws``. ``None`` means no padding.
    mode : {'max', 'sum', 'average_inc_pad', 'average_exc_pad'}
        ``'max'`` and ``'sum'`` ignore the padding; the averages divide by the window size
        including (``'average_inc_pad'``) or excluding (``'average_exc_pad'``) the padding.
        Theano's aliases ``'max_deterministic'`` (CPU op) and ``'average'`` (GPU op, meaning
        ``'average_inc_pad'``) are accepted.
    ds, st, padding
        *Deprecated* Theano names of ``ws``, ``stride`` and ``pad``.

    Returns
    -------
    TensorVariable
        The pooled tensor, of the input's rank and dtype.

    Notes
    -----
    Symbolic ``ws``, ``stride`` or ``pad`` (vectors, or tuples holding symbolic scalars)
    are accepted as in Theano and run on the C backend; JAX needs them constant.
    """
    return _pool_nd(2, "pool_2d", input, ws, ignore_border, stride, pad, mode, ds, st,
                    padding)


def pool_3d(input, ws=None, ignore_border=None, stride=None, pad=(0, 0, 0), mode="max",
            ds=None, st=None, padding=None):
    """Downscale the input by pooling windows over its last three axes (Theano's
    ``pool_3d``).

    The arguments are those of :func:`pool_2d` with three entries per tuple (depth, rows,
    columns); the input needs 3 or more dimensions.
    """
    return _pool_nd(3, "pool_3d", input, ws, ignore_border, stride, pad, mode, ds, st,
                    padding)


def max_pool_2d_same_size(input, patch_size):
    """Zero every element of non-overlapping patches that is not its patch's maximum.

    Theano's ``max_pool_2d_same_size``: the output has the input's shape; every element
    equal to its ``patch_size`` patch's maximum is kept (ties included).
    """
    z = Pool(True)(input, patch_size)
    return MaxPoolGrad(True)(input, z, z, patch_size)
