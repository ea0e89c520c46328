"""Pooling and upscaling layers (Lasagne 0.2.dev1's ``lasagne.layers.pool``).

``Pool1DLayer`` / ``Pool2DLayer`` / ``Pool3DLayer`` (and the ``MaxPool*`` shortcuts) call
Theano's pooling (:mod:`fcn8_lasagne.ops.pool`; 1-D is 2-D pooling of a trailing
singleton axis, as in Lasagne), with ``ignore_border=True`` and ``mode='max'`` by default;
the max-pool gradient follows Theano: every input equal to its window's maximum receives
the gradient. ``Upscale*DLayer`` repeat or dilate by integer factors
(:mod:`fcn8_lasagne.ops.upscale`). ``GlobalPoolLayer``, ``FeaturePoolLayer``,
``FeatureWTALayer`` and ``SpatialPyramidPoolingLayer`` are Lasagne's graphs of PyTensor
reductions and pools. Errors for inputs of the wrong rank name the layer and the shape.
"""

import pytensor.tensor as T

from ..ops.pool import pool_2d, pool_3d
from ..ops.shapes import pool_output_length
from ..ops.upscale import upscale
from ..utils import as_tuple
from .base import Layer

__all__ = [
    "MaxPool1DLayer",
    "MaxPool2DLayer",
    "MaxPool3DLayer",
    "Pool1DLayer",
    "Pool2DLayer",
    "Pool3DLayer",
    "Upscale1DLayer",
    "Upscale2DLayer",
    "Upscale3DLayer",
    "FeaturePoolLayer",
    "FeatureWTALayer",
    "GlobalPoolLayer",
    "SpatialPyramidPoolingLayer",
    "pool_output_length",
    "pool_2d_nxn_regions",
]


def _label(layer):
    """How errors name a layer: its class and, if it has one, its name."""
    name = type(layer).__name__
    return f"{name} {layer.name!r}" if layer.name else name


def _check_rank(layer, n, what):
    if len(layer.input_shape) != n + 2:
        raise ValueError(
            f"{_label(layer)}: Tried to create a {n}D {what} layer with input shape "
            f"{layer.input_shape!r}. Expected {n + 2} input dimensions (batchsize, channels, "
            f"{n} spatial dimension{'s' if n > 1 else ''}).")


class _PoolNDLayer(Layer):
    """Arguments and output shape shared by :class:`Pool1DLayer`, :class:`Pool2DLayer` and
    :class:`Pool3DLayer` (``_n`` spatial axes)."""

    _n = 2

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True,
                 mode="max", **kwargs):
        super().__init__(incoming, **kwargs)
        _check_rank(self, self._n, "pooling")
        self.pool_size = as_tuple(pool_size, self._n)
        self.stride = self.pool_size if stride is None else as_tuple(stride, self._n)
        self.pad = as_tuple(pad, self._n)
        self.ignore_border = ignore_border
        self.mode = mode

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        for axis in range(self._n):
            output_shape[axis + 2] = pool_output_length(
                input_shape[axis + 2], pool_size=self.pool_size[axis],
                stride=self.stride[axis], pad=self.pad[axis],
                ignore_border=self.ignore_border)
        return tuple(output_shape)


class Pool1DLayer(_PoolNDLayer):
    """1-D pooling over the trailing axis of a 3-D input (Lasagne's ``Pool1DLayer``).

    Runs as 2-D pooling with a ``(pool_size, 1)`` window on the input with a trailing
    singleton axis, as Lasagne does.

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int or iterable of one int
    stride : int, iterable or None
        ``None`` means ``pool_size``.
    pad : int or iterable, default 0
        Must be smaller than ``pool_size``; needs ``ignore_border=True``.
    ignore_border : bool, default True
        ``True`` drops partial windows at the end (floor), ``False`` keeps them.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'} (also 'sum'), default 'max'
    """

    _n = 1

    def __init__(self, incoming, pool_size, stride=None, pad=0, ignore_border=True,
                 mode="max", **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)

    def get_output_for(self, input, **kwargs):
        pooled = pool_2d(T.shape_padright(input, 1), ws=(self.pool_size[0], 1),
                         stride=(self.stride[0], 1), ignore_border=self.ignore_border,
                         pad=(self.pad[0], 0), mode=self.mode)
        return pooled[:, :, :, 0]


class Pool2DLayer(_PoolNDLayer):
    """2-D pooling over the last two axes of a 4-D input (Lasagne's ``Pool2DLayer``).

    With ``ignore_border=True`` (the default) the output length is
    ``floor((in + 2 * pad - pool_size) / stride) + 1`` — FCN-8's pools halve and round
    down, unlike Caffe, which rounds up. ``ignore_border=False`` keeps partial windows.

    Parameters
    ----------
    incoming : Layer or tuple
    pool_size : int or (int, int)
    stride : int, (int, int) or None
        ``None`` means ``pool_size`` (non-overlapping windows).
    pad : int or (int, int), default (0, 0)
    ignore_border : bool, default True
    mode : {'max', 'average_inc_pad', 'average_exc_pad'} (also 'sum'), default 'max'
        The max-pool gradient follows Theano: every input equal to its window's maximum
        receives the gradient.
    """

    _n = 2

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True,
                 mode="max", **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)

    def get_output_for(self, input, **kwargs):
        return pool_2d(input, ws=self.pool_size, stride=self.stride,
                       ignore_border=self.ignore_border, pad=self.pad, mode=self.mode)


class Pool3DLayer(_PoolNDLayer):
    """3-D pooling over the last three axes of a 5-D input (Lasagne's ``Pool3DLayer``).

    Parameters are those of :class:`Pool2DLayer` with three entries, ``pad=(0, 0, 0)``.
    """

    _n = 3

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0, 0), ignore_border=True,
                 mode="max", **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)

    def get_output_for(self, input, **kwargs):
        return pool_3d(input, ws=self.pool_size, stride=self.stride,
                       ignore_border=self.ignore_border, pad=self.pad, mode=self.mode)


class MaxPool1DLayer(Pool1DLayer):
    """:class:`Pool1DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=0, ignore_border=True,
                 **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class MaxPool2DLayer(Pool2DLayer):
    """:class:`Pool2DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0), ignore_border=True,
                 **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class MaxPool3DLayer(Pool3DLayer):
    """:class:`Pool3DLayer` with ``mode='max'``."""

    def __init__(self, incoming, pool_size, stride=None, pad=(0, 0, 0), ignore_border=True,
                 **kwargs):
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class _UpscaleNDLayer(Layer):
    """Arguments and output shape shared by the ``Upscale*DLayer`` classes."""

    _n = 2

    def __init__(self, incoming, scale_factor, mode="repeat", **kwargs):
        super().__init__(incoming, **kwargs)
        self.scale_factor = as_tuple(scale_factor, self._n)
        if any(f < 1 for f in self.scale_factor):
            raise ValueError(f"Scale factor must be >= 1, not {self.scale_factor}")
        if mode not in {"repeat", "dilate"}:
            raise ValueError(f"Mode must be either 'repeat' or 'dilate', not {mode}")
        self.mode = mode
        _check_rank(self, self._n, "upscaling")

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        for axis, factor in enumerate(self.scale_factor, start=2):
            if output_shape[axis] is not None:
                output_shape[axis] *= factor
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        return upscale(input, self.scale_factor, self.mode)


class Upscale1DLayer(_UpscaleNDLayer):
    """1-D upscaling of the trailing axis of a 3-D input (Lasagne's ``Upscale1DLayer``).

    Parameters
    ----------
    incoming : Layer or tuple
    scale_factor : int or iterable of one int (>= 1)
    mode : {'repeat', 'dilate'}, default 'repeat'
        Repeat each value ``scale_factor`` times, or place the values at multiples of the
        factor with zeros between (and after the last one).

    Notes
    -----
    Unlike Lasagne, an input of another rank than 3 is refused when the layer is created.
    """

    _n = 1


class Upscale2DLayer(_UpscaleNDLayer):
    """2-D upscaling of the last two axes of a 4-D input (Lasagne's ``Upscale2DLayer``).

    Parameters are those of :class:`Upscale1DLayer` with an int or two ints. A
    ``'dilate'`` upscaling followed by a convolution is a transposed convolution
    (:class:`TransposedConv2DLayer`), which is cheaper.
    """

    _n = 2


class Upscale3DLayer(_UpscaleNDLayer):
    """3-D upscaling of the last three axes of a 5-D input (Lasagne's ``Upscale3DLayer``)."""

    _n = 3


class FeaturePoolLayer(Layer):
    """Pools groups of ``pool_size`` consecutive features along ``axis`` (maxout by default).

    Lasagne's ``FeaturePoolLayer(incoming, pool_size, axis=1, pool_function=T.max)``: the
    axis is reshaped to ``(n // pool_size, pool_size)`` and ``pool_function(...,
    axis=axis + 1)`` reduces the groups. The axis length must be a multiple of
    ``pool_size``.
    """

    def __init__(self, incoming, pool_size, axis=1, pool_function=T.max, **kwargs):
        super().__init__(incoming, **kwargs)
        self.pool_size = pool_size
        self.axis = axis
        self.pool_function = pool_function
        num_feature_maps = self.input_shape[self.axis]
        if num_feature_maps % self.pool_size != 0:
            raise ValueError(
                f"Number of input feature maps ({num_feature_maps}) is not a multiple of the "
                f"pool size (pool_size={self.pool_size})")

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        output_shape[self.axis] = input_shape[self.axis] // self.pool_size
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        shape = tuple(input.shape)
        groups = shape[:self.axis] + (shape[self.axis] // self.pool_size, self.pool_size) \
            + shape[self.axis + 1:]
        return self.pool_function(input.reshape(groups, ndim=input.ndim + 1),
                                  axis=self.axis + 1)


class FeatureWTALayer(Layer):
    """'Winner take all' across groups of ``pool_size`` features along ``axis``.

    Lasagne's ``FeatureWTALayer(incoming, pool_size, axis=1)``: every value but its group's
    first maximum (``argmax``) is set to zero; the output has the input's shape.
    """

    def __init__(self, incoming, pool_size, axis=1, **kwargs):
        super().__init__(incoming, **kwargs)
        self.pool_size = pool_size
        self.axis = axis
        num_feature_maps = self.input_shape[self.axis]
        if num_feature_maps % self.pool_size != 0:
            raise ValueError(
                f"Number of input feature maps ({num_feature_maps}) is not a multiple of the "
                f"region size (pool_size={self.pool_size})")

    def get_output_for(self, input, **kwargs):
        axis, ndim = self.axis, input.ndim
        shape = tuple(input.shape)
        groups = shape[:axis] + (shape[axis] // self.pool_size, self.pool_size) \
            + shape[axis + 1:]
        winners = T.argmax(input.reshape(groups, ndim=ndim + 1), axis=axis + 1,
                           keepdims=True)
        pattern = ("x",) * (axis + 1) + (0,) + ("x",) * (ndim - axis - 1)
        positions = T.arange(self.pool_size).dimshuffle(*pattern)
        mask = T.eq(winners, positions).reshape(input.shape, ndim=ndim)
        return input * mask


class GlobalPoolLayer(Layer):
    """Pools each feature map over all its trailing axes (Lasagne's ``GlobalPoolLayer``).

    ``pool_function(input.flatten(3), axis=2)``, the mean by default: the output has shape
    ``(batch, channels)``.
    """

    def __init__(self, incoming, pool_function=T.mean, **kwargs):
        super().__init__(incoming, **kwargs)
        self.pool_function = pool_function

    def get_output_shape_for(self, input_shape):
        return input_shape[:2]

    def get_output_for(self, input, **kwargs):
        return self.pool_function(input.flatten(3), axis=2)


def pool_2d_nxn_regions(inputs, output_size, mode="max"):
    """Pool a 4-D input into ``output_size`` x ``output_size`` bins (He et al.'s regions).

    Lasagne's helper of :class:`SpatialPyramidPoolingLayer` (``implementation='kaiming'``):
    bin ``(r, c)`` covers rows ``floor(r / n * h)`` to ``ceil((r + 1) / n * h)`` (and the
    same for columns), reduced by ``T.max`` (``mode='max'``) or ``T.mean`` (the average
    modes). Returns the list of the ``n * n`` bins, each ``(batch, channels, 1)``.
    """
    if mode == "max":
        reduce = T.max
    elif mode in ("average_inc_pad", "average_exc_pad"):
        reduce = T.mean
    else:
        raise ValueError(f"Mode must be either 'max', 'average_inc_pad' or "
                         f"'average_exc_pad'. Got '{mode}'")
    h, w = inputs.shape[2], inputs.shape[3]
    n = float(output_size)
    result = []
    for row in range(output_size):
        for col in range(output_size):
            start_h = T.floor(row / n * h).astype("int32")
            end_h = T.ceil((row + 1) / n * h).astype("int32")
            start_w = T.floor(col / n * w).astype("int32")
            end_w = T.ceil((col + 1) / n * w).astype("int32")
            region = inputs[:, :, start_h:end_h, start_w:end_w]
            result.append(reduce(region, axis=(2, 3)).dimshuffle(0, 1, "x"))
    return result


class SpatialPyramidPoolingLayer(Layer):
    """Spatial pyramid pooling: a fixed-size output from a 4-D input of any size.

    Lasagne's ``SpatialPyramidPoolingLayer(incoming, pool_dims=[4, 2, 1], mode='max',
    implementation='fast')``. Level ``n`` of ``pool_dims`` gives ``n * n`` features per
    channel; the output is ``(batch, channels, sum(n * n))``.

    * ``'fast'``: per level, :func:`pool_2d` with window ``ceil(size / n)`` and stride
      ``size // n`` (``ignore_border=True``, no padding), computed from the static size
      where known and symbolically otherwise (symbolic windows run on the C backend only).
      As in Lasagne this gives exactly ``n`` bins only for some sizes (multiples of ``n``,
      for example) and fails when a size is smaller than ``n``.
    * ``'kaiming'``: :func:`pool_2d_nxn_regions`, He et al.'s bins, for any size.
    """

    def __init__(self, incoming, pool_dims=[4, 2, 1], mode="max", implementation="fast",
                 **kwargs):
        super().__init__(incoming, **kwargs)
        if len(self.input_shape) != 4:
            raise ValueError(
                f"{_label(self)}: Tried to create a SPP layer with input shape "
                f"{self.input_shape!r}. Expected 4 input dimensions (batchsize, channels, 2 "
                "spatial dimensions).")
        self.mode = mode
        self.implementation = implementation
        self.pool_dims = pool_dims

    def get_output_for(self, input, **kwargs):
        input_size = tuple(symbolic if fixed is None else fixed
                           for fixed, symbolic in zip(self.input_shape[2:], input.shape[2:]))
        pooled = []
        for pool_dim in self.pool_dims:
            if self.implementation == "kaiming":
                pooled += pool_2d_nxn_regions(input, pool_dim, mode=self.mode)
            else:
                window = tuple((size + pool_dim - 1) // pool_dim for size in input_size)
                stride = tuple(size // pool_dim for size in input_size)
                level = pool_2d(input, ws=window, stride=stride, mode=self.mode, pad=None,
                                ignore_border=True)
                pooled.append(level.flatten(3))
        return T.concatenate(pooled, axis=2)

    def get_output_shape_for(self, input_shape):
        return (input_shape[0], input_shape[1], sum(p * p for p in self.pool_dims))
