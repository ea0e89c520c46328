"""Integer upscaling of the last axes: Lasagne's ``Upscale1DLayer`` / ``2D`` / ``3D`` modes.

``upscale(input, scale_factor, mode='repeat')`` with one factor per upscaled (trailing)
axis:

* ``'repeat'``: every value repeated ``f`` times along each axis (Lasagne's
  ``T.extra_ops.repeat`` per axis; nearest-neighbour upsampling);
* ``'dilate'``: values placed at multiples of the factor, zeros between and after
  (Lasagne's ``set_subtensor(zeros[..., ::f], input)``).

Both are linear; :class:`UpscaleGrad` is their adjoint (block sums for ``'repeat'``, which
is sum pooling with window and stride ``f``; a strided pick for ``'dilate'``), and each op
is the other's gradient. Output lengths are ``length * f``, static whenever the input's
are, so JAX compiles one program per input size (translations in :mod:`._jax.upscale`).
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.tensor.type import TensorType

from . import _pool_cpu
from ._backend import register_numba_perform
from ._common import as_float_tensor, infer_shape_arguments, int_tuple, named_errors

__all__ = ["upscale", "Upscale", "UpscaleGrad", "UPSCALE_MODES"]

#: Lasagne's upscaling modes.
UPSCALE_MODES = ("repeat", "dilate")


class _UpscaleOp(Op):
    __props__ = ("scale_factor", "mode")

    def __init__(self, scale_factor, mode="repeat"):
        scale_factor = (scale_factor,) if np.ndim(scale_factor) == 0 else scale_factor
        self.scale_factor = int_tuple(scale_factor, len(scale_factor), "scale_factor", 1)
        if mode not in UPSCALE_MODES:
            raise ValueError(f"Mode must be either 'repeat' or 'dilate', not {mode}")
        self.mode = mode

    @property
    def ndim(self):
        return len(self.scale_factor)

    def _input(self, value, role):
        variable = pt.as_tensor_variable(value)
        name = type(self).__name__
        if variable.type.ndim < self.ndim:
            raise TypeError(f"{name}: {role} must have at least {self.ndim} dimensions (one "
                            f"per scale factor {self.scale_factor}), got {variable.type}")
        return as_float_tensor(variable, variable.type.ndim, role, name)

    def _lead(self, shape):
        return tuple(shape[:len(shape) - self.ndim]), tuple(shape[len(shape) - self.ndim:])


@register_numba_perform
class Upscale(_UpscaleOp):
    """``Upscale(scale_factor, mode)(x)``: the last ``len(scale_factor)`` axes of ``x``
    upscaled by the factors (see the module docstring)."""

    def make_node(self, x):
        x = self._input(x, "the input")
        lead, spatial = self._lead(x.type.shape)
        out_spatial = tuple(None if n is None else n * f
                            for n, f in zip(spatial, self.scale_factor))
        return Apply(self, [x], [TensorType(x.type.dtype, shape=lead + out_spatial)()])

    def perform(self, node, inputs, outputs):
        (x,) = inputs
        lead, spatial = self._lead(x.shape)
        out_spatial = tuple(n * f for n, f in zip(spatial, self.scale_factor))
        if self.mode == "repeat":
            outputs[0][0] = _pool_cpu.upscale_repeat(x, self.scale_factor)
        else:
            out = np.zeros(lead + out_spatial, dtype=x.dtype)
            out[(Ellipsis,) + tuple(slice(None, None, f) for f in self.scale_factor)] = x
            outputs[0][0] = out

    def infer_shape(self, *args):
        node, (x_shape,) = infer_shape_arguments(args)
        lead, spatial = self._lead(tuple(x_shape))
        return [lead + tuple(n * f for n, f in zip(spatial, self.scale_factor))]

    def pullback(self, inputs, outputs, cotangents):
        return [UpscaleGrad(self.scale_factor, self.mode)(cotangents[0])]

    def pushforward(self, inputs, outputs, tangents):
        if tangents[0] is None or isinstance(tangents[0].type, DisconnectedType):
            return [disconnected_type()]
        return [self(tangents[0])]


@register_numba_perform
class UpscaleGrad(_UpscaleOp):
    """``UpscaleGrad(scale_factor, mode)(gz)``: the adjoint of :class:`Upscale`, from an
    upscaled gradient (lengths multiples of the factors) to the input's size."""

    def make_node(self, gz):
        gz = self._input(gz, "the output gradient")
        lead, spatial = self._lead(gz.type.shape)
        for n, f in zip(spatial, self.scale_factor):
            if n is not None and n % f:
                raise ValueError(f"UpscaleGrad: the gradient's lengths {spatial} must be "
                                 f"multiples of the scale factor {self.scale_factor}")
        in_spatial = tuple(None if n is None else n // f
                           for n, f in zip(spatial, self.scale_factor))
        return Apply(self, [gz], [TensorType(gz.type.dtype, shape=lead + in_spatial)()])

    def perform(self, node, inputs, outputs):
        (gz,) = inputs
        lead, spatial = self._lead(gz.shape)
        with named_errors(node):
            if any(n % f for n, f in zip(spatial, self.scale_factor)):
                raise ValueError(f"UpscaleGrad: the gradient's lengths {spatial} must be "
                                 f"multiples of the scale factor {self.scale_factor}")
        factor = self.scale_factor
        if self.mode == "repeat":
            # the sum over each f1 x f2 x ... block: sum pooling with window = stride = f
            outputs[0][0] = _pool_cpu.pool_forward(gz, factor, factor, (0,) * self.ndim,
                                                   True, "sum")
        else:
            outputs[0][0] = np.ascontiguousarray(
                gz[(Ellipsis,) + tuple(slice(None, None, f) for f in factor)])

    def infer_shape(self, *args):
        node, (gz_shape,) = infer_shape_arguments(args)
        lead, spatial = self._lead(tuple(gz_shape))
        return [lead + tuple(n // f for n, f in zip(spatial, self.scale_factor))]

    def pullback(self, inputs, outputs, cotangents):
        return [Upscale(self.scale_factor, self.mode)(cotangents[0])]

    def pushforward(self, inputs, outputs, tangents):
        if tangents[0] is None or isinstance(tangents[0].type, DisconnectedType):
            return [disconnected_type()]
        return [self(tangents[0])]


def upscale(input, scale_factor, mode="repeat"):
    """Upscale the last ``len(scale_factor)`` axes of ``input`` by integer factors.

    Parameters
    ----------
    input : tensor
    scale_factor : int or tuple of int
        One factor (>= 1) per upscaled trailing axis; an int upscales the last axis only.
    mode : {'repeat', 'dilate'}
        Repeat each value, or place it at multiples of the factor with zeros between.

    Returns
    -------
    TensorVariable
        ``input`` itself when every factor is 1, as Lasagne's layers.
    """
    op = Upscale(scale_factor, mode)
    if all(f == 1 for f in op.scale_factor):
        return pt.as_tensor_variable(input)
    return op(input)
