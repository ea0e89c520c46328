"""JAX translations of :mod:`..crop`: static slices computed from the traced shapes."""

import jax.numpy as jnp
from pytensor.link.jax.dispatch.basic import jax_funcify

from ..crop import AutoCrop, AutoCropGrad, crop_slices


@jax_funcify.register(AutoCrop)
def jax_funcify_auto_crop(op, node=None, **kwargs):
    modes = op.modes

    def auto_crop(x, *others):
        return x[crop_slices(modes, [x.shape] + [other.shape for other in others])]

    return auto_crop


@jax_funcify.register(AutoCropGrad)
def jax_funcify_auto_crop_grad(op, node=None, **kwargs):
    modes = op.modes

    def auto_crop_grad(gz, x, *others):
        slices = crop_slices(modes, [x.shape] + [other.shape for other in others])
        return jnp.zeros(x.shape, dtype=gz.dtype).at[slices].set(gz)

    return auto_crop_grad
