"""Output-shape formulas shared by the ops and the layers.

Every formula works on Python ints, returns ``None`` for an unknown (``None``) length, and
also accepts symbolic scalars so that layers can compute shapes of graphs whose spatial size
is only known at run time.
"""

import numpy as np

__all__ = [
    "grid_steps",
    "normalize_pad",
    "normalize_border_mode",
    "border_pads",
    "dilated_filter_size",
    "conv_output_length",
    "conv_input_length",
    "pool_output_length",
]


def dilated_filter_size(filter_size, dilation=1):
    """Extent of a kernel of ``filter_size`` taps spaced ``dilation`` apart:
    ``(filter_size - 1) * dilation + 1`` (Theano's "implicit dilated kernel shape")."""
    if filter_size is None:
        return None
    if dilation == 1:
        return filter_size
    return (filter_size - 1) * dilation + 1


def normalize_border_mode(border_mode, ndim):
    """Canonical form of Theano's ``border_mode`` for ``ndim`` spatial axes.

    Parameters
    ----------
    border_mode : {'valid', 'full', 'half', 'same'} or int or tuple of ints
        ``'same'`` is read as ``'half'``; ``'valid'``, an int and a tuple of ``ndim`` ints
        are explicit (symmetric) zero padding.
    ndim : int

    Returns
    -------
    'full' or 'half' or tuple of int
        The strings stay strings (their padding depends on the kernel); everything else
        becomes ``ndim`` non-negative ints.

    Raises
    ------
    ValueError
        For another string, a tuple of the wrong length, non-integer or negative entries.
    """
    if isinstance(border_mode, str):
        if border_mode == "same":
            return "half"
        if border_mode == "valid":
            return (0,) * ndim
        if border_mode in ("full", "half"):
            return border_mode
        raise ValueError(
            f"invalid border_mode {border_mode!r}: expected 'valid', 'full', 'half', an int "
            f"or a tuple of {ndim} ints"
        )
    entries = (border_mode,) * ndim if np.ndim(border_mode) == 0 else tuple(border_mode)
    if len(entries) != ndim or not all(
            isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))
            for p in entries):
        raise ValueError(
            f"invalid border_mode {border_mode!r}: expected 'valid', 'full', 'half', an int "
            f"or a tuple of {ndim} ints"
        )
    if min(entries) < 0:
        raise ValueError(f"border_mode must be >= 0, got {border_mode!r}")
    return tuple(int(p) for p in entries)


def border_pads(border_mode, filter_shape, dilation=None):
    """Zero padding per spatial axis of a normalised ``border_mode`` (see
    :func:`normalize_border_mode`) for kernels of ``filter_shape`` (ints or symbolic) and
    ``dilation``: ``'full'`` pads ``dilated - 1``, ``'half'`` pads ``dilated // 2``."""
    dilation = (1,) * len(filter_shape) if dilation is None else dilation
    if isinstance(border_mode, str):
        border_mode = (border_mode,) * len(filter_shape)
    return tuple(normalize_pad(p, k, d) for p, k, d in zip(border_mode, filter_shape, dilation))


def normalize_pad(pad, filter_size, dilation=1):
    """Turn a Lasagne/Theano padding spec for one axis into an integer.

    Parameters
    ----------
    pad : int or {'valid', 'full', 'same', 'half'}
        ``'valid'`` is 0, ``'full'`` is ``size - 1`` and ``'same'``/``'half'`` is
        ``size // 2``, where ``size`` is the dilated filter size
        (:func:`dilated_filter_size`).
    filter_size : int
    dilation : int, optional

    Returns
    -------
    int
    """
    if isinstance(pad, str):
        if pad == "valid":
            return 0
        filter_size = dilated_filter_size(filter_size, dilation)
        if pad == "full":
            return filter_size - 1
        if pad in ("same", "half"):
            return filter_size // 2
        raise ValueError(
            f"invalid padding {pad!r}: expected an int, 'valid', 'full', 'same' or 'half'"
        )
    return pad if hasattr(pad, "type") else int(pad)


def conv_output_length(input_length, filter_size, stride, pad=0, dilation=1):
    """Length of a convolution's output along one axis (Lasagne's and Theano's rule).

    ``input + 2 * pad - size + 1`` then ceil-divided by ``stride``, with ``size`` the
    dilated filter size ``(filter_size - 1) * dilation + 1``; that is Theano's
    ``(input + 2 * pad - size) // stride + 1`` whenever the padded input holds the kernel.
    ``'same'`` (``'half'``) padding gives ``ceil(input / stride)`` for odd filters. Lasagne's
    own function accepts the same pads except ``'half'`` (the ops' spelling of ``'same'``).
    """
    if input_length is None or filter_size is None:
        return None
    pad = normalize_pad(pad, filter_size, dilation)
    output_length = input_length + 2 * pad - dilated_filter_size(filter_size, dilation) + 1
    return (output_length + stride - 1) // stride


def conv_input_length(output_length, filter_size, stride, pad=0, dilation=1):
    """Smallest input length a strided convolution maps to ``output_length``.

    This is the output length of the transposed convolution (Lasagne's
    ``TransposedConv2DLayer``): ``(output - 1) * stride - 2 * pad + size``, with ``size``
    the dilated filter size (:func:`dilated_filter_size`).
    """
    if output_length is None or filter_size is None:
        return None
    pad = normalize_pad(pad, filter_size, dilation)
    return (output_length - 1) * stride - 2 * pad + dilated_filter_size(filter_size, dilation)


def pool_output_length(input_length, pool_size, stride, pad, ignore_border):
    """Length of a pooling output along one axis (Theano's ``Pool.out_shape`` rule).

    With ``ignore_border=True``: ``(input + 2 * pad - pool_size) // stride + 1`` (floor),
    and 0 when the padded input is smaller than the pool. With ``ignore_border=False``
    (``pad`` must be 0): partial windows at the end count, giving
    ``(input - 1) // stride + 1`` when ``stride >= pool_size`` and
    ``max(0, (input - pool_size + stride - 1) // stride) + 1`` otherwise. Any argument but
    ``ignore_border`` may be symbolic (Theano's ops took symbolic windows and strides).
    """
    if input_length is None or pool_size is None:
        return None
    import pytensor.tensor as pt

    def is_int(value):
        return isinstance(value, (int, np.integer))

    if ignore_border:
        output_length = input_length + 2 * pad - pool_size + 1
        output_length = (output_length + stride - 1) // stride
        if is_int(output_length):
            return max(int(output_length), 0)
        return pt.maximum(output_length, 0)
    if is_int(pad) and pad != 0:
        raise ValueError("padding requires ignore_border=True (as in Theano)")
    if is_int(stride) and is_int(pool_size):
        if stride >= pool_size:
            return (input_length + stride - 1) // stride
        output_length = (input_length - pool_size + stride - 1) // stride
        if is_int(output_length):
            return max(0, int(output_length)) + 1
        return pt.maximum(0, output_length) + 1
    return pt.switch(pt.ge(stride, pool_size), (input_length + stride - 1) // stride,
                     pt.maximum(0, (input_length - pool_size + stride - 1) // stride) + 1)


def grid_steps(spatial):
    """Element offsets of one step along each axis of a C-ordered grid of ``spatial``."""
    steps = [1] * len(spatial)
    for axis in range(len(spatial) - 2, -1, -1):
        steps[axis] = steps[axis + 1] * spatial[axis + 1]
    return steps
