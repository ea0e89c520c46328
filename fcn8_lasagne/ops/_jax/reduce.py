"""JAX translation of :mod:`..reduce` (XLA fuses the sum; no threads of ours)."""

import jax.numpy as jnp
from pytensor.link.jax.dispatch.basic import jax_funcify

from ..reduce import AxisSum


@jax_funcify.register(AxisSum)
def jax_funcify_axis_sum(op, node=None, **kwargs):
    others = tuple(a for a in range(node.inputs[0].type.ndim) if a != op.axis)

    def axis_sum(x):
        return jnp.sum(x, axis=others).astype(op.dtype)

    return axis_sum
