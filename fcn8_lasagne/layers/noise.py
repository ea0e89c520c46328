"""Noise layers: :class:`DropoutLayer` (with its channel and location variants) and
:class:`GaussianNoiseLayer`."""

import numbers

import numpy as np
import pytensor
import pytensor.tensor as pt

from pytensor.graph.basic import Variable

from ..ops.fill import full_like
from ..random import get_rng
from ..utils import _set_default_update
from .base import Layer

__all__ = [
    "DropoutLayer",
    "dropout",
    "dropout_channels",
    "spatial_dropout",
    "dropout_locations",
    "GaussianNoiseLayer",
]


def _layer_generator():
    """A shared NumPy generator seeded from :func:`fcn8_lasagne.random.get_rng` (one draw,
    as Lasagne seeded its ``MRG_RandomStreams``)."""
    seed = get_rng().randint(1, 2147462579)
    return pytensor.shared(np.random.default_rng(seed))


def _draw(distribution, layer, *args, **kwargs):
    """Draw from ``distribution`` with ``layer._rng``, moving the generator on by a default
    update (so each call of a compiled function draws afresh)."""
    next_rng, values = distribution(*args, rng=layer._rng, return_next_rng=True, **kwargs)
    _set_default_update(layer._rng, next_rng)
    return values


def _as_dtype(value, dtype):
    """A Python number as a NumPy scalar of ``dtype``; a symbolic one cast to it."""
    if isinstance(value, Variable):
        return pt.cast(value, dtype)
    return np.asarray(value, dtype=dtype)


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
        self._rng = _layer_generator()
        self.p = p
        self.rescale = rescale
        self.shared_axes = tuple(shared_axes)

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or self.p == 0:
            return input
        retain_prob = 1 - self.p
        if self.rescale:
            # a float input keeps its dtype; an integer one is divided in floatX and so
            # upcast as Theano did
            rescale_dtype = (input.dtype if input.dtype.startswith("float")
                             else pytensor.config.floatX)
            input = input / _as_dtype(retain_prob, rescale_dtype)
        # the uniform values are in the input's dtype when it is a float (bit-compatible
        # with the masks drawn before), in floatX otherwise; the mask takes the input's dtype
        draw_dtype = input.dtype if input.dtype.startswith("float") else pytensor.config.floatX
        # The uniform values take their shape from an array of lower bounds rather than a
        # symbolic `size`, so that it stays static when compiled with JAX.
        shape_source = input
        if self.shared_axes:
            axes = {a if a >= 0 else a + input.ndim for a in self.shared_axes}
            shape_source = input[tuple(slice(0, 1) if a in axes else slice(None)
                                       for a in range(input.ndim))]
        lows = full_like(shape_source, 0, dtype=draw_dtype)
        if self.shared_axes:
            lows = pt.specify_broadcastable(lows, *sorted(axes))
        uniform = _draw(pt.random.uniform, self, lows, 1, dtype=draw_dtype)
        mask = pt.cast(pt.lt(uniform, _as_dtype(retain_prob, draw_dtype)), input.dtype)
        return input * mask


dropout = DropoutLayer


def dropout_channels(incoming, *args, **kwargs):
    """A :class:`DropoutLayer` that drops whole channels (feature maps).

    ``shared_axes`` is set to all axes from the third on, so one mask value per example and
    channel zeroes a map with probability ``p`` (Tompson et al., 2014). Other arguments are
    :class:`DropoutLayer`'s, except ``shared_axes``.

    Parameters
    ----------
    incoming : Layer or tuple
    *args, **kwargs
        Passed to :class:`DropoutLayer`.

    Returns
    -------
    DropoutLayer
    """
    ndim = len(getattr(incoming, "output_shape", incoming))
    kwargs["shared_axes"] = tuple(range(2, ndim))
    return DropoutLayer(incoming, *args, **kwargs)


spatial_dropout = dropout_channels


def dropout_locations(incoming, *args, **kwargs):
    """A :class:`DropoutLayer` that drops whole locations (pixels or voxels) across all
    channels: ``shared_axes=(1,)``. Other arguments are :class:`DropoutLayer`'s.

    Parameters
    ----------
    incoming : Layer or tuple
    *args, **kwargs
        Passed to :class:`DropoutLayer`.

    Returns
    -------
    DropoutLayer
    """
    kwargs["shared_axes"] = (1,)
    return DropoutLayer(incoming, *args, **kwargs)


class GaussianNoiseLayer(Layer):
    """Adds zero-mean Gaussian noise of standard deviation ``sigma`` to its input.

    Identity when ``deterministic=True`` or ``sigma == 0``; otherwise
    ``input + normal(0, sigma)`` of the input's shape, in floatX, drawn afresh at every call
    of the compiled function from a generator seeded from
    :func:`fcn8_lasagne.random.get_rng` when the layer is built (Lasagne drew from Theano's
    MRG generator: the same distribution, other numbers).

    Parameters
    ----------
    incoming : Layer or tuple
    sigma : float or symbolic scalar, default 0.1
    """

    def __init__(self, incoming, sigma=0.1, **kwargs):
        super().__init__(incoming, **kwargs)
        self._rng = _layer_generator()
        self.sigma = sigma

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or self.sigma == 0:
            return input
        dtype = pytensor.config.floatX
        noise = _draw(pt.random.normal, self, full_like(input, 0, dtype=dtype),
                      _as_dtype(self.sigma, dtype), dtype=dtype)
        return input + noise
