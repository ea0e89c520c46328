"""1-D convolutions for channels-first sequences (Lasagne's ``lasagne.theano_extensions.conv``).

Theano only had 2-D and 3-D convolution ops, so Lasagne computed 1-D convolutions in several
ways; this module offers the same six, with Lasagne's names and signatures::

    conv1d_xx(input, filters, image_shape, filter_shape, border_mode='valid',
              subsample=(1,), filter_flip=True)

``input`` is ``(batch, channels, length)``, ``filters`` ``(filters, channels, length)``,
the result ``(batch, filters, output_length)``; ``filter_flip=True`` is a true convolution
(kernel reversed), False a cross-correlation; ``subsample`` is the stride.

* :func:`conv1d_mc0`, :func:`conv1d_mc1`: the 2-D op on a height (width) of 1; any
  ``border_mode`` and ``num_groups``. ``conv1d_mc0`` is :class:`Conv1DLayer`'s default.
* :func:`conv1d_sc`: the 2-D op on a single input channel whose rows are the channels.
* :func:`conv1d_unstrided`: a strided convolution folded into an unstrided one on
  ``stride`` times as many channels (filter length a multiple of the stride).
* :func:`conv1d_sd`, :func:`conv1d_md`: one dot product, or one per stride phase.

``conv1d_sc``, ``conv1d_unstrided``, ``conv1d_sd`` and ``conv1d_md`` compute valid
convolutions only (``RuntimeError`` otherwise, as Lasagne); the last three need the lengths
in ``image_shape`` and ``filter_shape``.

Difference from Lasagne: with ``filter_flip=False`` and more than one input channel
Lasagne's ``conv1d_sc`` paired channel ``c`` of the input with channel ``C - 1 - c`` of the
filters, and its ``conv1d_unstrided`` (stride > 1) reversed each stride phase of the
kernel; here every implementation computes the same cross-correlation (see
``docs/faithfulness.md``).
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.scalar import upcast

from ..ops import conv2d
from ..utils import int_types

__all__ = ["conv1d_sc", "conv1d_mc0", "conv1d_mc1", "conv1d_unstrided", "conv1d_sd",
           "conv1d_md"]


def _stride(subsample):
    """The single stride of a 1-D ``subsample`` (an int or a 1-tuple)."""
    if isinstance(subsample, int_types):
        return int(subsample)
    (stride,) = subsample
    return stride


def _require_valid(border_mode, name):
    if isinstance(border_mode, np.ndarray) or border_mode not in ("valid", 0, (0,)):
        raise RuntimeError(f"Unsupported border_mode for {name}: {border_mode}")


def _group_kwargs(num_groups):
    # a custom 2-D op without groups keeps working for the default of one group
    return {"num_groups": num_groups} if num_groups > 1 else {}


def _insert_axis(shape, axis):
    """``shape`` (or None) with a length-1 spatial axis inserted at ``axis``."""
    if shape is None:
        return None
    shape = tuple(shape)
    return shape[:axis] + (1,) + shape[axis:]


def _one_axis_border_mode(border_mode, axis):
    """A 1-D ``border_mode`` for the 2-D op that pads only the ``axis``-th spatial axis."""
    if isinstance(border_mode, tuple):
        (border_mode,) = border_mode
    if isinstance(border_mode, int_types):
        return (border_mode, 0) if axis == 0 else (0, border_mode)
    return border_mode


def conv1d_mc0(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
               subsample=(1,), filter_flip=True, num_groups=1):
    """1-D convolution as a 2-D one on images of height 1 (``(b, c, 1, length)``).

    Parameters
    ----------
    input : 3-D tensor, (batch, channels, length)
    filters : 3-D tensor, (filters, channels // num_groups, length)
    image_shape, filter_shape : tuple of 3 ints (or None entries), optional
        Shape hints.
    border_mode : 'valid', 'full', 'half', int or (int,)
    subsample : (int,)
    filter_flip : bool
    num_groups : int

    Returns
    -------
    3-D tensor, (batch, filters, output_length)
    """
    conved = conv2d(input.dimshuffle(0, 1, "x", 2), filters.dimshuffle(0, 1, "x", 2),
                    _insert_axis(image_shape, 2), _insert_axis(filter_shape, 2),
                    border_mode=_one_axis_border_mode(border_mode, 1),
                    subsample=(1, _stride(subsample)), filter_flip=filter_flip,
                    **_group_kwargs(num_groups))
    return conved[:, :, 0, :]


def conv1d_mc1(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
               subsample=(1,), filter_flip=True, num_groups=1):
    """1-D convolution as a 2-D one on images of width 1 (``(b, c, length, 1)``).

    Same arguments and result as :func:`conv1d_mc0`.
    """
    conved = conv2d(input.dimshuffle(0, 1, 2, "x"), filters.dimshuffle(0, 1, 2, "x"),
                    _insert_axis(image_shape, 3), _insert_axis(filter_shape, 3),
                    border_mode=_one_axis_border_mode(border_mode, 0),
                    subsample=(_stride(subsample), 1), filter_flip=filter_flip,
                    **_group_kwargs(num_groups))
    return conved[:, :, :, 0]


def conv1d_sc(input, filters, image_shape=None, filter_shape=None, border_mode="valid",
              subsample=(1,), filter_flip=True):
    """1-D convolution as a 2-D one over a single input channel whose rows are the channels.

    The valid 2-D convolution of the ``(b, 1, channels, length)`` image with the
    ``(filters, 1, channels, length)`` kernels has one output row: the sum over channels.

    Same arguments and result as :func:`conv1d_mc0` except that only valid convolutions
    are supported and there are no groups.

    Raises
    ------
    RuntimeError
        For a ``border_mode`` other than ``'valid'``, ``0`` or ``(0,)``.
    """
    _require_valid(border_mode, "conv1d_sc")
    image_shape_sc = None
    if image_shape is not None:
        image_shape_sc = (image_shape[0], 1, image_shape[1], image_shape[2])
    filter_shape_sc = None
    if filter_shape is not None:
        filter_shape_sc = (filter_shape[0], 1, filter_shape[1], filter_shape[2])
    filters_sc = filters.dimshuffle(0, "x", 1, 2)
    if filter_flip:
        # the 2-D op reverses the channel rows too: reverse them first so that input
        # channel c still meets filter channel c
        filters_sc = filters_sc[:, :, ::-1, :]
    conved = conv2d(input.dimshuffle(0, "x", 1, 2), filters_sc, image_shape_sc,
                    filter_shape_sc, border_mode="valid", subsample=(1, _stride(subsample)),
                    filter_flip=filter_flip)
    return conved[:, :, 0, :]


def _static_lengths(image_shape, filter_shape, name):
    """``(batch, channels, length)`` and ``(filters, channels, length)`` as given; the
    lengths and channel counts must be ints."""
    if image_shape is None or filter_shape is None:
        raise ValueError(f"{name} needs image_shape and filter_shape")
    image_shape, filter_shape = tuple(image_shape), tuple(filter_shape)
    for entry in image_shape[1:] + filter_shape:
        if not isinstance(entry, int_types):
            raise ValueError(f"{name} needs known channel counts and lengths, got "
                             f"image_shape={image_shape!r}, filter_shape={filter_shape!r}")
    return image_shape, filter_shape


def _require_stride_divides(filter_length, stride):
    if filter_length % stride > 0:
        raise RuntimeError(f"Filter length ({filter_length}) is not a multiple of the "
                           f"stride ({stride})")


def conv1d_unstrided(input, filters, image_shape, filter_shape, border_mode="valid",
                     subsample=(1,), filter_flip=True, implementation=conv1d_sc):
    """A strided 1-D convolution computed as an unstrided one on ``stride`` times as many
    channels.

    The input is cut to a multiple of the stride and each of its stride phases becomes a
    channel; so does each phase of the kernel, whose length must be a multiple of the
    stride. ``implementation`` (another function of this module) convolves the results.

    Raises
    ------
    RuntimeError
        For a kernel length that the stride does not divide, or a padded convolution.
    """
    image_shape, filter_shape = _static_lengths(image_shape, filter_shape, "conv1d_unstrided")
    batch_size, channels, length = image_shape
    num_filters, filter_channels, filter_length = filter_shape
    stride = _stride(subsample)
    _require_stride_divides(filter_length, stride)
    _require_valid(border_mode, "conv1d_unstrided")
    phases = length // stride
    taps = filter_length // stride

    # x[c, q * stride + r] becomes channel (c, r), position q
    folded_input = input[:, :, :phases * stride].reshape(
        (input.shape[0], channels, phases, stride)).dimshuffle(0, 1, 3, 2).reshape(
        (input.shape[0], channels * stride, phases))
    # the correlation kernel of the strided convolution, likewise folded: g[c, m * stride + r]
    # becomes channel (c, r), tap m
    correlation = filters[:, :, ::-1] if filter_flip else filters
    folded_filters = correlation.reshape((num_filters, filter_channels, taps, stride)) \
        .dimshuffle(0, 1, 3, 2).reshape((num_filters, filter_channels * stride, taps))
    if filter_flip:
        folded_filters = folded_filters[:, :, ::-1]  # the implementation reverses it again
    return implementation(folded_input, folded_filters,
                          (batch_size, channels * stride, phases),
                          (num_filters, filter_channels * stride, taps),
                          border_mode, subsample=(1,), filter_flip=filter_flip)


def conv1d_sd(input, filters, image_shape, filter_shape, border_mode="valid",
              subsample=(1,), filter_flip=True):
    """1-D convolution as a single dot product of all input windows with the filters.

    Raises
    ------
    RuntimeError
        For a padded convolution, or a kernel length that the stride does not divide (a
        restriction kept from Lasagne).
    """
    _require_valid(border_mode, "conv1d_sd")
    image_shape, filter_shape = _static_lengths(image_shape, filter_shape, "conv1d_sd")
    length = image_shape[2]
    filter_length = filter_shape[2]
    stride = _stride(subsample)
    _require_stride_divides(filter_length, stride)
    output_length = (length - filter_length) // stride + 1
    last = stride * (output_length - 1) + 1
    # windows[b, c, t, o] = x[b, c, o * stride + t]
    windows = pt.stack([input[:, :, t:t + last:stride] for t in range(filter_length)], axis=2)
    correlation = filters[:, :, ::-1] if filter_flip else filters
    conved = pt.tensordot(windows, correlation, axes=[[1, 2], [1, 2]])  # (b, o, filters)
    return conved.dimshuffle(0, 2, 1)


def conv1d_md(input, filters, image_shape, filter_shape, border_mode="valid",
              subsample=(1,), filter_flip=True):
    """1-D convolution as one dot product per kernel shift.

    Kernel-long, non-overlapping input windows starting at ``shift = k * stride`` give the
    outputs ``k, k + n, k + 2 n, ...`` with ``n = filter_length // stride``.

    Raises
    ------
    RuntimeError
        For a padded convolution, or a kernel length that the stride does not divide.
    """
    _require_valid(border_mode, "conv1d_md")
    image_shape, filter_shape = _static_lengths(image_shape, filter_shape, "conv1d_md")
    channels, length = image_shape[1:]
    num_filters, _, filter_length = filter_shape
    stride = _stride(subsample)
    _require_stride_divides(filter_length, stride)
    shifts = filter_length // stride
    output_length = (length - filter_length) // stride + 1
    correlation = filters[:, :, ::-1] if filter_flip else filters
    dtype = upcast(input.dtype, filters.dtype)
    conved = pt.zeros((input.shape[0], num_filters, output_length), dtype=dtype)
    for k in range(shifts):
        start = k * stride
        windows = (length - start) // filter_length
        if windows == 0:
            continue  # no output position starts at this shift
        blocks = input[:, :, start:start + windows * filter_length].reshape(
            (input.shape[0], channels, windows, filter_length))
        products = pt.tensordot(blocks, correlation, axes=[[1, 3], [1, 2]])  # (b, w, filters)
        conved = pt.set_subtensor(conved[:, :, k::shifts], products.dimshuffle(0, 2, 1))
    return conved
