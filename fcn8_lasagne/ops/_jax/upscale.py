"""JAX translations of :mod:`..upscale`: broadcast-and-reshape repeats, interior-padded
dilation, block sums and strided slices (all shapes static from the traced arrays)."""

import jax.numpy as jnp
import numpy as np
from jax import lax
from pytensor.link.jax.dispatch.basic import jax_funcify

from ..upscale import Upscale, UpscaleGrad


def _split(shape, ndim):
    return tuple(shape[:len(shape) - ndim]), tuple(shape[len(shape) - ndim:])


@jax_funcify.register(Upscale)
def jax_funcify_upscale(op, node=None, **kwargs):
    factors, ndim = op.scale_factor, op.ndim

    def upscale(x):
        lead, spatial = _split(x.shape, ndim)
        if op.mode == "repeat":
            # (..., n1, 1, n2, 1, ...) broadcast to (..., n1, f1, n2, f2, ...), then merged
            index = (Ellipsis,) + sum(((slice(None), None) for _ in spatial), ())
            blocks = lead + sum(((n, f) for n, f in zip(spatial, factors)), ())
            return jnp.broadcast_to(x[index], blocks).reshape(
                lead + tuple(n * f for n, f in zip(spatial, factors)))
        # f - 1 zeros between and after the values of each axis
        config = [(0, 0, 0)] * len(lead) + [(0, f - 1, f - 1) for f in factors]
        return lax.pad(x, np.zeros((), dtype=x.dtype), config)

    return upscale


@jax_funcify.register(UpscaleGrad)
def jax_funcify_upscale_grad(op, node=None, **kwargs):
    factors, ndim = op.scale_factor, op.ndim

    def upscale_grad(gz):
        lead, spatial = _split(gz.shape, ndim)
        if op.mode == "repeat":
            blocks = lead + sum(((n // f, f) for n, f in zip(spatial, factors)), ())
            return gz.reshape(blocks).sum(axis=tuple(len(lead) + 2 * i + 1
                                                     for i in range(ndim)))
        return gz[(Ellipsis,) + tuple(slice(None, None, f) for f in factors)]

    return upscale_grad
