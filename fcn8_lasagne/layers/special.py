"""Layers applying an elementwise function or a learned bias/scale."""

from .. import init, nonlinearities
from .base import Layer

__all__ = ["NonlinearityLayer", "BiasLayer", "ScaleLayer", "ExpressionLayer"]


class NonlinearityLayer(Layer):
    """Applies ``nonlinearity`` to its input (``None`` means linear).

    FCN-8 uses it for the row softmax over ``(B·H·W, C)`` scores.
    """

    def __init__(self, incoming, nonlinearity=nonlinearities.rectify, **kwargs):
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity

    def get_output_for(self, input, **kwargs):
        return self.nonlinearity(input)


def _per_axis_parameter_shape(layer, shared_axes, kind):
    """Resolve ``shared_axes`` ('auto' = all but the second) and the parameter's shape."""
    if shared_axes == "auto":
        shared_axes = (0,) + tuple(range(2, len(layer.input_shape)))
    elif isinstance(shared_axes, int):
        shared_axes = (shared_axes,)
    shape = [size for axis, size in enumerate(layer.input_shape) if axis not in shared_axes]
    if any(size is None for size in shape):
        raise ValueError(f"{kind} needs specified input sizes for all axes that its "
                         "parameters are not shared over.")
    return shared_axes, shape


def _broadcast_pattern(shared_axes, ndim):
    axes = iter(range(ndim - len(shared_axes)))
    return ["x" if axis in shared_axes else next(axes) for axis in range(ndim)]


class BiasLayer(Layer):
    """Adds a learned bias, shared over ``shared_axes`` (default all but the second)."""

    def __init__(self, incoming, b=init.Constant(0), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes, shape = _per_axis_parameter_shape(self, shared_axes, "BiasLayer")
        self.b = None if b is None else self.add_param(b, shape, "b", regularizable=False)

    def get_output_for(self, input, **kwargs):
        if self.b is None:
            return input
        return input + self.b.dimshuffle(*_broadcast_pattern(self.shared_axes, input.ndim))


class ScaleLayer(Layer):
    """Multiplies by a learned scale, shared over ``shared_axes`` (default all but the second)."""

    def __init__(self, incoming, scales=init.Constant(1), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        self.shared_axes, shape = _per_axis_parameter_shape(self, shared_axes, "ScaleLayer")
        self.scales = self.add_param(scales, shape, "scales", regularizable=False)

    def get_output_for(self, input, **kwargs):
        return input * self.scales.dimshuffle(*_broadcast_pattern(self.shared_axes, input.ndim))


class ExpressionLayer(Layer):
    """Applies an arbitrary ``function(input)``; ``output_shape`` None (unchanged), a tuple,
    or a callable of the input shape."""

    def __init__(self, incoming, function, output_shape=None, **kwargs):
        super().__init__(incoming, **kwargs)
        self.function = function
        self._output_shape = output_shape

    def get_output_shape_for(self, input_shape):
        if self._output_shape is None:
            return input_shape
        if callable(self._output_shape):
            return tuple(self._output_shape(input_shape))
        return tuple(self._output_shape)

    def get_output_for(self, input, **kwargs):
        return self.function(input)
