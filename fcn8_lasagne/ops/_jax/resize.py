"""JAX translations of :mod:`..resize`: the interpolation matrices are NumPy constants built
at trace time from the (static) shapes, the resize two matrix products.

``jax.image.resize`` is not used: its ``'linear'`` method antialiases when it shrinks and
knows neither MXNet's corner alignment nor Theano's even-ratio shift.
"""

import jax.numpy as jnp
import numpy as np
from pytensor.graph.basic import Constant
from pytensor.link.jax.dispatch.basic import jax_funcify

from ..resize import (BilinearResize, BilinearResizeGrad, SamplingGrid, _UpsamplingReference,
                      resize_matrices)


def _resize(x, rows, columns):
    rows = jnp.asarray(rows, dtype=x.dtype)
    columns = jnp.asarray(columns, dtype=x.dtype)
    return jnp.matmul(jnp.matmul(rows, x), columns.T)


@jax_funcify.register(BilinearResize)
def jax_funcify_bilinear_resize(op, node=None, **kwargs):
    mode = op.mode
    vector_size = None
    size_input = node.inputs[1]
    if size_input.type.ndim == 1:
        if not isinstance(size_input, Constant):
            raise NotImplementedError(
                "BilinearResize: JAX needs the output size at compile time, but it is "
                "computed in the graph. Pass ints or a reference tensor whose shape gives "
                "the size.")
        vector_size = tuple(int(v) for v in size_input.data)

    def bilinear_resize(x, size):
        out_hw = vector_size if vector_size is not None else size.shape[2:]
        rows, columns = resize_matrices(x.shape[2:], out_hw, mode, np.dtype(x.dtype))
        return _resize(x, rows, columns)

    return bilinear_resize


@jax_funcify.register(BilinearResizeGrad)
def jax_funcify_bilinear_resize_grad(op, node=None, **kwargs):
    mode = op.mode

    def bilinear_resize_grad(output_grad, x):
        rows, columns = resize_matrices(x.shape[2:], output_grad.shape[2:], mode,
                                        np.dtype(output_grad.dtype), transposed=True)
        return _resize(output_grad, rows, columns)

    return bilinear_resize_grad


@jax_funcify.register(_UpsamplingReference)
def jax_funcify_upsampling_reference(op, node=None, **kwargs):
    def upsampling_reference(x):
        return jnp.empty(op.output_shape(x.shape), dtype=x.dtype)

    return upsampling_reference


@jax_funcify.register(SamplingGrid)
def jax_funcify_sampling_grid(op, node=None, **kwargs):
    def sampling_grid(reference):
        return jnp.asarray(op.grid(reference.shape[2:], np.dtype(reference.dtype)))

    return sampling_grid
