"""JAX translation of :mod:`..fill`: the shape is read from the traced array, so it stays
static."""

import jax.numpy as jnp
from pytensor.link.jax.dispatch.basic import jax_funcify

from ..fill import FullLike


@jax_funcify.register(FullLike)
def jax_funcify_full_like(op, node=None, **kwargs):
    def full_like(x):
        return jnp.full(x.shape, op.value, dtype=op.dtype)

    return full_like
