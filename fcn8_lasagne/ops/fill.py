"""``full_like(x, value)`` that keeps its shape static under JAX.

PyTensor rewrites ``zeros_like(x) + value`` into an ``Alloc`` whose shape is computed from
``x``'s inferred shape — arithmetic that JAX traces, so the shape is no longer static and the
graph fails to compile when the spatial size is unknown. This ``Op`` is opaque to those
rewrites and reads the shape from ``x`` itself, at run time or at JAX trace time.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from ._backend import register_numba_perform

__all__ = ["FullLike", "full_like"]


class FullLike(Op):
    """An array shaped like ``x`` filled with ``value`` (no gradient flows to ``x``)."""

    __props__ = ("value", "dtype")

    def __init__(self, value, dtype):
        self.value = float(value)
        self.dtype = dtype

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [pt.tensor(dtype=self.dtype, shape=x.type.shape)])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = np.full(inputs[0].shape, self.value, dtype=self.dtype)

    def infer_shape(self, *args):
        # (fgraph, node, shapes) before PyTensor 3.3, (node, shapes) since
        node, shapes = args[-2:]
        return [shapes[0]]

    def connection_pattern(self, node):
        return [[False]]

    def pullback(self, inputs, outputs, output_grads):
        return [disconnected_type()]


def full_like(x, value, dtype=None):
    """A tensor of ``x``'s shape filled with ``value`` (dtype defaults to ``x``'s)."""
    x = pt.as_tensor_variable(x)
    return FullLike(value, dtype or x.dtype)(x)


register_numba_perform(FullLike)
