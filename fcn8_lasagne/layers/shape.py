"""Layers that rearrange, reshape, slice or pad their input."""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .base import Layer

__all__ = [
    "ReshapeLayer",
    "reshape",
    "FlattenLayer",
    "flatten",
    "DimshuffleLayer",
    "dimshuffle",
    "SliceLayer",
    "PadLayer",
    "pad",
]


class ReshapeLayer(Layer):
    """Reshapes its input (C order).

    Parameters
    ----------
    incoming : Layer or tuple
    shape : tuple
        Entries are positive ints, ``[i]`` (the size of input axis ``i``), at most one
        ``-1`` (inferred) and symbolic scalars.

    Notes
    -----
    ``get_output_shape_for`` gives None for every size it cannot know: symbolic entries of
    ``shape``, ``[i]`` of an unknown or symbolic input size (as Lasagne) and a ``-1`` when
    an input size is symbolic (Lasagne multiplied the symbolic sizes and then failed its
    own size check).
    """

    def __init__(self, incoming, shape, **kwargs):
        super().__init__(incoming, **kwargs)
        shape = tuple(shape)
        for size in shape:
            if isinstance(size, (int, np.integer)):
                if size == 0 or size < -1:
                    raise ValueError("`shape` integers must be positive or -1")
            elif isinstance(size, list):
                if len(size) != 1 or not isinstance(size[0], int) or size[0] < 0:
                    raise ValueError(
                        "`shape` input references must be single-element lists of int >= 0")
            elif isinstance(size, Variable):
                if size.ndim != 0:
                    raise ValueError(
                        "A symbolic variable in a shape specification must be a scalar, "
                        f"but had {size.ndim} dimensions")
            else:
                raise ValueError("`shape` must be a tuple of int and/or [int]")
        if sum(isinstance(s, (int, np.integer)) and s == -1 for s in shape) > 1:
            raise ValueError("`shape` cannot contain multiple -1")
        self.shape = shape
        self.get_output_shape_for(self.input_shape)  # sanity check

    def get_output_shape_for(self, input_shape, **kwargs):
        output_shape = list(self.shape)
        masked_input_shape = list(input_shape)
        masked_output_shape = list(output_shape)
        for axis, size in enumerate(output_shape):
            if isinstance(size, list):
                if size[0] >= len(input_shape):
                    raise ValueError(
                        f"specification contains [{size[0]}], but input shape has "
                        f"{len(input_shape)} dimensions only")
                output_shape[axis] = input_shape[size[0]]
                masked_output_shape[axis] = input_shape[size[0]]
                if input_shape[size[0]] is None and masked_input_shape[size[0]] is None:
                    # an unknown size copied 1:1 does not matter for -1 inference
                    masked_input_shape[size[0]] = 1
                    masked_output_shape[axis] = 1
        for axis, size in enumerate(output_shape):
            if isinstance(size, Variable):
                output_shape[axis] = None
                masked_output_shape[axis] = None
        input_size = _known_size(masked_input_shape)
        output_size = _known_size(masked_output_shape)
        if -1 in output_shape:
            axis = output_shape.index(-1)
            if input_size is None or output_size is None:
                output_shape[axis] = None
                output_size = None
            else:
                output_size *= -1
                output_shape[axis] = input_size // output_size
                output_size *= output_shape[axis]
        if input_size is not None and output_size is not None and input_size != output_size:
            raise ValueError(
                f"{input_shape} cannot be reshaped to specification {self.shape}. "
                "The total size mismatches.")
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        output_shape = [input.shape[s[0]] if isinstance(s, list) else s for s in self.shape]
        return input.reshape(tuple(output_shape))


reshape = ReshapeLayer


def _known_size(shape):
    """The product of ``shape``, or None if a size is unknown (None or symbolic)."""
    if any(x is None or isinstance(x, Variable) for x in shape):
        return None
    return int(np.prod(shape))


class FlattenLayer(Layer):
    """Flattens the trailing axes so the output has ``outdim`` dimensions."""

    def __init__(self, incoming, outdim=2, **kwargs):
        super().__init__(incoming, **kwargs)
        self.outdim = outdim
        if outdim < 1:
            raise ValueError("Dim must be >0, was %i" % outdim)

    def get_output_shape_for(self, input_shape):
        to_flatten = input_shape[self.outdim - 1:]
        flattened = None if any(s is None for s in to_flatten) else int(np.prod(to_flatten))
        return input_shape[:self.outdim - 1] + (flattened,)

    def get_output_for(self, input, **kwargs):
        return input.flatten(self.outdim)


flatten = FlattenLayer


class DimshuffleLayer(Layer):
    """Permutes axes and inserts broadcastable ones.

    Parameters
    ----------
    incoming : Layer or tuple
    pattern : tuple
        Input axis indices and ``'x'`` for new axes of size 1, e.g. ``(0, 2, 3, 1)``.
    """

    def __init__(self, incoming, pattern, **kwargs):
        super().__init__(incoming, **kwargs)
        used_dims = set()
        for p in pattern:
            if isinstance(p, int):
                if p in used_dims:
                    raise ValueError(f"pattern contains dimension {p} more than once")
                used_dims.add(p)
            elif p != "x":
                raise ValueError(
                    f"pattern should only contain dimension indices or 'x', not {p}")
        self.pattern = pattern
        self.get_output_shape_for(self.input_shape)  # sanity check

    def get_output_shape_for(self, input_shape):
        output_shape = []
        dims_used = [False] * len(input_shape)
        for p in self.pattern:
            if isinstance(p, int):
                if p < 0 or p >= len(input_shape):
                    raise ValueError(
                        f"pattern contains {p}, but input shape has {len(input_shape)} "
                        "dimensions only")
                output_shape.append(input_shape[p])
                dims_used[p] = True
            else:
                output_shape.append(1)
        for axis, (size, used) in enumerate(zip(input_shape, dims_used)):
            if not used and size != 1 and size is not None:
                raise ValueError(
                    f"pattern attempted to collapse dimension {axis} of size {size}; "
                    "dimensions with size != 1/None are not broadcastable and cannot be "
                    "collapsed")
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        return input.dimshuffle(self.pattern)


dimshuffle = DimshuffleLayer


class SliceLayer(Layer):
    """Slices the input along one axis.

    Parameters
    ----------
    incoming : Layer or tuple
    indices : int or slice
        An int removes the axis.
    axis : int, default -1
    """

    def __init__(self, incoming, indices, axis=-1, **kwargs):
        super().__init__(incoming, **kwargs)
        self.slice = indices
        self.axis = axis

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        if isinstance(self.slice, int):
            del output_shape[self.axis]
        elif input_shape[self.axis] is not None:
            output_shape[self.axis] = len(range(*self.slice.indices(input_shape[self.axis])))
        else:
            output_shape[self.axis] = None
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        axis = self.axis if self.axis >= 0 else self.axis + input.ndim
        return input[(slice(None),) * axis + (self.slice,)]


class PadLayer(Layer):
    """Pads the trailing axes with a constant.

    Parameters
    ----------
    incoming : Layer or tuple
    width : int, or list of int or (before, after) pairs
        Padding of the trailing ``len(width)`` axes (an int pads ``batch_ndim:``).
    val : float, default 0
    batch_ndim : int, default 2
        Leading axes never padded.
    """

    def __init__(self, incoming, width, val=0, batch_ndim=2, **kwargs):
        super().__init__(incoming, **kwargs)
        self.width = width
        self.val = val
        self.batch_ndim = batch_ndim

    def _widths(self, ndim):
        width = self.width
        if isinstance(width, int):
            width = [width] * (ndim - self.batch_ndim)
        return [(w, w) if isinstance(w, int) else tuple(w) for w in width]

    def get_output_shape_for(self, input_shape):
        output_shape = list(input_shape)
        widths = self._widths(len(input_shape))
        for k, (before, after) in enumerate(widths):
            axis = len(input_shape) - len(widths) + k
            if output_shape[axis] is not None:
                output_shape[axis] += before + after
        return tuple(output_shape)

    def get_output_for(self, input, **kwargs):
        widths = self._widths(input.ndim)
        leading = input.ndim - len(widths)
        pad_width = [(0, 0)] * leading + list(widths)
        return pt.pad(input, pad_width, mode="constant", constant_values=self.val)


pad = PadLayer
