"""Noise layers: :class:`DropoutLayer`."""

import numbers

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..ops.fill import full_like
from ..random import get_rng
from .base import Layer

__all__ = ["DropoutLayer", "dropout"]


class DropoutLayer(Layer):
    """Sets input values to zero with probability ``p`` (and rescales the rest).

    Identity when ``deterministic=True`` or ``p == 0``; otherwise
    ``x / (1 - p) * mask`` with a Bernoulli(``1 - p``) mask drawn afresh at every call of the
    compiled function, as ``uniform(0, 1) < 1 - p`` (how Theano's MRG generator drew
    Lasagne's masks, and four times faster than NumPy's binomial draws). The mask generator
    is a shared PyTensor random generator seeded from :func:`fcn8_lasagne.random.get_rng`
    when the layer is built (so ``np.random.seed`` makes runs repeatable) and advanced
    through its default update. The masks have Theano's distribution but not its bits
    (``docs/faithfulness.md``).

    Parameters
    ----------
    incoming : Layer or tuple
    p : float, default 0.5
        Probability of dropping a value, in [0, 1) (1 would divide by zero when
        rescaling); a symbolic scalar is taken as is, as in Lasagne.
    rescale : bool, default True
        Divide the kept values by ``1 - p``.
    shared_axes : tuple of int, default ()
        Axes along which one mask value is shared (e.g. ``(2, 3)`` drops whole maps).
    """

    def __init__(self, incoming, p=0.5, rescale=True, shared_axes=(), **kwargs):
        super().__init__(incoming, **kwargs)
        if isinstance(p, bool) or (isinstance(p, numbers.Real) and not 0 <= p < 1):
            which = f"DropoutLayer {self.name!r}" if self.name else "DropoutLayer"
            raise ValueError(f"{which}: p (the drop probability) must be a number in [0, 1), "
                             f"got {p!r}")
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
        # The uniform values take their shape from an array of lower bounds rather than a
        # symbolic `size`, so that it stays static when compiled with JAX.
        shape_source = input
        if self.shared_axes:
            axes = {a if a >= 0 else a + input.ndim for a in self.shared_axes}
            shape_source = input[tuple(slice(0, 1) if a in axes else slice(None)
                                       for a in range(input.ndim))]
        lows = full_like(shape_source, 0)
        if self.shared_axes:
            lows = pt.specify_broadcastable(lows, *sorted(axes))
        next_rng, uniform = pt.random.uniform(lows, 1, rng=self._rng,
                                              dtype=input.dtype).owner.outputs
        self._rng.default_update = next_rng
        mask = pt.cast(pt.lt(uniform, np.asarray(retain_prob, dtype=input.dtype)), input.dtype)
        return input * mask


dropout = DropoutLayer
