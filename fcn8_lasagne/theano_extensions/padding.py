"""Constant padding of a tensor (Lasagne's ``lasagne.theano_extensions.padding``)."""

import pytensor.tensor as pt

from ..utils import int_types

__all__ = ["pad"]


def pad(x, width, val=0, batch_ndim=1):
    """Pad a tensor with a constant value.

    Parameters
    ----------
    x : tensor
    width : int, iterable of int, or iterable of tuple
        Padding width. An int pads every axis after the first ``batch_ndim`` ones by that
        amount at both ends; an iterable of ints gives one symmetric width per padded axis;
        an iterable of ``(before, after)`` pairs gives both ends of each axis. An iterable
        shorter than the number of padded axes leaves the last axes unpadded.
    val : float
        The constant value used for padding.
    batch_ndim : int
        Dimensions before the value will not be padded.

    Returns
    -------
    tensor
        ``x`` inside a tensor of the padded shape filled with ``val``.
    """
    # static lengths where the type knows them: shape arithmetic then stays in Python,
    # which JAX needs (its allocations take static sizes)
    shape = [x.shape[axis] if length is None else length
             for axis, length in enumerate(x.type.shape)]
    padded_shape = list(shape)
    region = [slice(None)] * x.ndim
    widths = [width] * (x.ndim - batch_ndim) if isinstance(width, int_types) else width
    for offset, entry in enumerate(widths):
        axis = batch_ndim + offset
        try:
            before, after = entry
        except TypeError:
            before = after = entry
        padded_shape[axis] = shape[axis] + before + after
        region[axis] = slice(before, -after if after else None)
    if val:
        filled = pt.full(padded_shape, val, dtype=x.dtype)
    else:
        filled = pt.zeros(padded_shape, dtype=x.dtype)
    return pt.set_subtensor(filled[tuple(region)], x)
