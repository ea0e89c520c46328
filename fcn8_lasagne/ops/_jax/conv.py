"""JAX translations of :mod:`..conv`: ``lax.conv_general_dilated`` and its transposes.

The forward convolution is one ``conv_general_dilated`` (``rhs_dilation`` for the filter
dilation, ``feature_group_count`` for the groups); the transposed convolution and the
weight gradient are its linear transposes (``jax.linear_transpose``) with respect to the
input and to the filters, at the sizes the ops give statically.
"""

import jax
from jax import lax
from pytensor.graph.basic import Constant
from pytensor.link.jax.dispatch.basic import jax_funcify

from ..conv import Conv, ConvGradInputs, ConvGradWeights

_DIMENSION_NUMBERS = {
    1: ("NCH", "OIH", "NCH"),
    2: ("NCHW", "OIHW", "NCHW"),
    3: ("NCDHW", "OIDHW", "NCDHW"),
}


def _convolve(op, x, w):
    pads = op.pads(w.shape[2:])
    if op.filter_flip:
        w = w[(slice(None), slice(None)) + (slice(None, None, -1),) * op.ndim]
    return lax.conv_general_dilated(
        x, w, window_strides=op.subsample, padding=tuple((p, p) for p in pads),
        rhs_dilation=op.filter_dilation, dimension_numbers=_DIMENSION_NUMBERS[op.ndim],
        feature_group_count=op.num_groups,
    )


def _static_size(op, node, role):
    """The spatial size a JAX function needs from a vector size input, read at compile
    time."""
    size_input = node.inputs[2]
    if isinstance(size_input, Constant):
        return tuple(int(v) for v in size_input.data)
    raise NotImplementedError(
        f"{type(op).__name__}: JAX needs the {role} at compile time, but it is computed in "
        "the graph. Pass ints, None (the minimal size), or a reference tensor whose shape "
        "gives the size."
    )


@jax_funcify.register(Conv)
def jax_funcify_conv(op, node=None, **kwargs):
    def conv(x, w):
        return _convolve(op, x, w)

    return conv


@jax_funcify.register(ConvGradInputs)
def jax_funcify_conv_grad_inputs(op, node=None, **kwargs):
    vector_size = None
    if len(node.inputs) == 3 and node.inputs[2].type.ndim == 1:
        vector_size = _static_size(op, node, "input size")

    def conv_grad_inputs(output_grad, filters, *size):
        batch, channels = output_grad.shape[0], filters.shape[1] * op.num_groups
        minimal = op.minimal_input_spatial(output_grad.shape[2:], filters.shape[2:])
        if vector_size is not None:
            spatial = tuple(m if s < 0 else s for s, m in zip(vector_size, minimal))
        elif size:
            spatial = size[0].shape[2:]
        else:
            spatial = minimal
        input_struct = jax.ShapeDtypeStruct((batch, channels, *spatial), output_grad.dtype)
        transpose = jax.linear_transpose(lambda x: _convolve(op, x, filters), input_struct)
        return transpose(output_grad)[0]

    return conv_grad_inputs


@jax_funcify.register(ConvGradWeights)
def jax_funcify_conv_grad_weights(op, node=None, **kwargs):
    vector_size = None
    if node.inputs[2].type.ndim == 1:
        vector_size = _static_size(op, node, "filter size")

    def conv_grad_weights(x, output_grad, size):
        kernel = vector_size if vector_size is not None else size.shape[2:]
        filter_struct = jax.ShapeDtypeStruct(
            (output_grad.shape[1], x.shape[1] // op.num_groups, *kernel), x.dtype)
        transpose = jax.linear_transpose(lambda w: _convolve(op, x, w), filter_struct)
        return transpose(output_grad)[0]

    return conv_grad_weights
