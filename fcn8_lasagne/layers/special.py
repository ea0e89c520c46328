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


class BiasLayer(Layer):
    """Adds a learned bias, shared over ``shared_axes`` (default all but the second)."""

    def __init__(self, incoming, b=init.Constant(0), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        if shared_axes == "auto":
            shared_axes = (0,) + tuple(range(2, len(self.input_shape)))
        elif isinstance(shared_axes, int):
            shared_axes = (shared_axes,)
        self.shared_axes = shared_axes
        if b is None:
            self.b = None
        else:
            shape = [size for axis, size in enumerate(self.input_shape)
                     if axis not in self.shared_axes]
            if any(size is None for size in shape):
                raise ValueError("BiasLayer needs specified input sizes for all axes that "
                                 "biases are not shared over.")
            self.b = self.add_param(b, shape, "b", regularizable=False)

    def get_output_for(self, input, **kwargs):
        if self.b is None:
            return input
        bias_axes = iter(range(self.b.ndim))
        pattern = ["x" if axis in self.shared_axes else next(bias_axes)
                   for axis in range(input.ndim)]
        return input + self.b.dimshuffle(*pattern)


class ScaleLayer(Layer):
    """Multiplies by a learned scale, shared over ``shared_axes`` (default all but the second)."""

    def __init__(self, incoming, scales=init.Constant(1), shared_axes="auto", **kwargs):
        super().__init__(incoming, **kwargs)
        if shared_axes == "auto":
            shared_axes = (0,) + tuple(range(2, len(self.input_shape)))
        elif isinstance(shared_axes, int):
            shared_axes = (shared_axes,)
        self.shared_axes = shared_axes
        shape = [size for axis, size in enumerate(self.input_shape)
                 if axis not in self.shared_axes]
        if any(size is None for size in shape):
            raise ValueError("ScaleLayer needs specified input sizes for all axes that "
                             "scales are not shared over.")
        self.scales = self.add_param(scales, shape, "scales", regularizable=False)

    def get_output_for(self, input, **kwargs):
        axes = iter(range(self.scales.ndim))
        pattern = ["x" if axis in self.shared_axes else next(axes) for axis in range(input.ndim)]
        return input * self.scales.dimshuffle(*pattern)


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
