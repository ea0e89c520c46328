"""Pooling layers."""

from ..ops import pool_2d, pool_output_length
from ..utils import as_tuple
from .base import Layer

__all__ = ["Pool2DLayer", "MaxPool2DLayer"]


class Pool2DLayer(Layer):
    """2-D pooling over the last two axes (Lasagne's defaults and Theano's CPU semantics).

    With ``ignore_border=True`` (the default) the output length is
    ``floor((in + 2 * pad - pool_size) / stride) + 1`` — FCN-8's pools halve and round down,
    unlike Caffe, which rounds up. ``ignore_border=False`` keeps partial windows at the end.

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int or (int, int)
    stride : int, (int, int) or None
        ``None`` means ``pool_size`` (non-overlapping windows).
    pad : int or (int, int), default (0, 0)
    ignore_border : bool, default True
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}
        The max-pool gradient follows Theano: every input equal to its window's maximum
        receives the gradient.
    """

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True,
                 mode="max", **kwargs):
        super().__init__(incoming, **kwargs)
        self.pool_size = as_tuple(pool_size, 2)
        if len(self.input_shape) != 4:
            raise ValueError(
                f"Tried to create a 2D pooling layer with input shape {self.input_shape!r}. "
                "Expected 4 input dimensions (batchsize, channels, 2 spatial dimensions)."
            )
        self.stride = self.pool_size if stride is None else as_tuple(stride, 2)
        self.pad = as_tuple(pad, 2)
        self.ignore_border = ignore_border
        self.mode = mode

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        for axis in (0, 1):
            output_shape[axis + 2] = pool_output_length(
                input_shape[axis + 2], pool_size=self.pool_size[axis], stride=self.stride[axis],
                pad=self.pad[axis], ignore_border=self.ignore_border)
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        return pool_2d(input, ws=self.pool_size, stride=self.stride,
                       ignore_border=self.ignore_border, pad=self.pad, mode=self.mode)


class MaxPool2DLayer(Pool2DLayer):
    """:class:`Pool2DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True,
                 **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)
