"""Output-shape formulas shared by the ops and the layers.

Every formula works on Python ints, returns ``None`` for an unknown (``None``) length, and
also accepts symbolic scalars so that layers can compute shapes of graphs whose spatial size
is only known at run time.
"""

__all__ = [
    "normalize_pad",
    "conv_output_length",
    "conv_input_length",
    "pool_output_length",
]


def normalize_pad(pad, filter_size):
    """Turn a Lasagne/Theano padding spec for one axis into an integer.

    Parameters
    ----------
    pad : int or {'valid', 'full', 'same', 'half'}
        ``'valid'`` is 0, ``'full'`` is ``filter_size - 1`` and ``'same'``/``'half'`` is
        ``filter_size // 2``.
    filter_size : int

    Returns
    -------
    int
    """
    if pad == "valid":
        return 0
    if pad == "full":
        return filter_size - 1
    if pad in ("same", "half"):
        return filter_size // 2
    if isinstance(pad, str):
        raise ValueError(
            f"invalid padding {pad!r}: expected an int, 'valid', 'full', 'same' or 'half'"
        )
    return int(pad)


def conv_output_length(input_length, filter_size, stride, pad=0):
    """Length of a convolution's output along one axis (Lasagne's rule).

    ``input + 2 * pad - filter_size + 1`` then ceil-divided by ``stride``; ``'same'``
    padding gives ``ceil(input / stride)`` for odd filters.
    """
    if input_length is None:
        return None
    pad = normalize_pad(pad, filter_size)
    output_length = input_length + 2 * pad - filter_size + 1
    return (output_length + stride - 1) // stride


def conv_input_length(output_length, filter_size, stride, pad=0):
    """Smallest input length a strided convolution maps to ``output_length``.

    This is the output length of the transposed convolution (Lasagne's
    ``TransposedConv2DLayer``): ``(output - 1) * stride - 2 * pad + filter_size``.
    """
    if output_length is None:
        return None
    pad = normalize_pad(pad, filter_size)
    return (output_length - 1) * stride - 2 * pad + filter_size


def pool_output_length(input_length, pool_size, stride, pad, ignore_border):
    """Length of a pooling output along one axis (Theano's ``Pool.out_shape`` rule).

    With ``ignore_border=True``: ``(input + 2 * pad - pool_size) // stride + 1`` (floor),
    and 0 when the padded input is smaller than the pool. With ``ignore_border=False``
    (``pad`` must be 0): partial windows at the end count, giving
    ``(input - 1) // stride + 1`` when ``stride >= pool_size`` and
    ``max(0, (input - pool_size + stride - 1) // stride) + 1`` otherwise.
    """
    if input_length is None or pool_size is None:
        return None
    if ignore_border:
        output_length = input_length + 2 * pad - pool_size + 1
        output_length = (output_length + stride - 1) // stride
        if isinstance(output_length, int):
            output_length = max(output_length, 0)
        return output_length
    if pad != 0:
        raise ValueError("padding requires ignore_border=True (as in Theano)")
    if stride >= pool_size:
        return (input_length + stride - 1) // stride
    output_length = (input_length - pool_size + stride - 1) // stride
    if isinstance(output_length, int):
        return max(0, output_length) + 1
    import pytensor.tensor as pt

    return pt.maximum(0, output_length) + 1
