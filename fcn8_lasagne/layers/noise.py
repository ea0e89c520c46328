"""Noise layers: :class:`DropoutLayer`."""

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..random import get_rng
from .base import Layer

__all__ = ["DropoutLayer", "dropout"]


class DropoutLayer(Layer):
    """Sets input values to zero with probability ``p`` (and rescales the rest).

    Identity when ``deterministic=True`` or ``p == 0``; otherwise
    ``x / (1 - p) * mask`` with a Bernoulli(``1 - p``) mask drawn afresh at every call of the
    compiled function. The mask generator is a shared PyTensor random generator seeded from
    :func:`fcn8_lasagne.random.get_rng` when the layer is built (so ``np.random.seed`` makes
    runs repeatable) and advanced through its default update.

    Parameters
    ----------
    incoming : Layer or tuple
    p : float, default 0.5
        Probability of dropping a value.
    rescale : bool, default True
        Divide the kept values by ``1 - p``.
    shared_axes : tuple of int, default ()
        Axes along which one mask value is shared (e.g. ``(2, 3)`` drops whole maps).
    """

    def __init__(self, incoming, p=0.5, rescale=True, shared_axes=(), **kwargs):
        super().__init__(incoming, **kwargs)
        seed = get_rng().randint(1, 2147462579)
        self._rng = pytensor.shared(np.random.default_rng(seed))
        self.p = p
        self.rescale = rescale
        self.shared_axes = tuple(shared_axes)

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or self.p == 0:
            return input
        retain_prob = 1 - self.p
        if self.rescale:
            input = input / np.asarray(retain_prob, dtype=input.dtype)
        mask_shape = self.input_shape
        if any(s is None for s in mask_shape):
            mask_shape = tuple(input.shape[axis] for axis in range(input.ndim))
        if self.shared_axes:
            shared_axes = {a if a >= 0 else a + input.ndim for a in self.shared_axes}
            mask_shape = tuple(1 if a in shared_axes else s for a, s in enumerate(mask_shape))
        next_rng, mask = pt.random.bernoulli(retain_prob, size=mask_shape,
                                             rng=self._rng).owner.outputs
        self._rng.default_update = next_rng
        mask = pt.cast(mask, input.dtype)
        if self.shared_axes:
            mask = pt.specify_broadcastable(
                mask, *[a for a, s in enumerate(mask_shape) if isinstance(s, int) and s == 1])
        return input * mask


dropout = DropoutLayer
