"""``theano.tensor.shared_randomstreams`` for unchanged scripts: ``RandomStreams``.

Theano's methods and argument order (``uniform(size, low, high, ndim, dtype)``, ...) over
PyTensor's random variables. Each variable drawn gets its own shared NumPy ``Generator``,
seeded from a ``RandomState(seed)`` as Theano seeded its ``RandomState`` s, and advanced by
the functions that use it (a default update). The streams are NumPy's PCG64, not Theano's
``RandomState`` streams: the same seed gives other numbers than under Theano.
"""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt

from ..._errors import not_provided_message

__legacy_shim__ = True

__all__ = ["RandomStreams"]


def _size(size):
    if size is None or isinstance(size, pytensor.graph.basic.Variable):
        return size
    if isinstance(size, (int, np.integer)):
        return (int(size),)
    return tuple(size)


class RandomStreams:
    """Theano's ``RandomStreams(seed=None)``: a factory of random variables.

    Parameters
    ----------
    seed : int or None
        Seeds the generators of the variables drawn from now on (``None``: fresh entropy).

    Attributes
    ----------
    state_updates : list of (SharedVariable, Variable)
        Each generator and its next state, in the order the variables were drawn.
    """

    _legacy_name = "theano.tensor.shared_randomstreams.RandomStreams"

    def __init__(self, seed=None):
        self.default_instance_seed = seed
        self.gen_seedgen = np.random.RandomState(seed)
        self.state_updates = []

    def updates(self):
        """The ``(generator, next state)`` pairs (Theano's ``updates()``)."""
        return list(self.state_updates)

    def seed(self, seed=None):
        """Re-seed every generator drawn so far, and the ones to come, from ``seed``."""
        self.gen_seedgen = np.random.RandomState(seed)
        for generator, _ in self.state_updates:
            generator.set_value(np.random.default_rng(self.gen_seedgen.randint(2 ** 30)),
                                borrow=True)

    def _draw(self, sampler, *args, **kwargs):
        generator = pytensor.shared(np.random.default_rng(self.gen_seedgen.randint(2 ** 30)))
        with warnings.catch_warnings():  # PyTensor's API changes, not the script's concern
            warnings.simplefilter("ignore", DeprecationWarning)
            next_state, value = sampler(*args, rng=generator, **kwargs).owner.outputs
            generator.default_update = next_state
        self.state_updates.append((generator, next_state))
        return value

    @staticmethod
    def _float_dtype(dtype):
        return pytensor.config.floatX if dtype is None else dtype

    def uniform(self, size=None, low=0.0, high=1.0, ndim=None, dtype=None):
        """Uniform values in ``[low, high)`` (dtype ``floatX`` unless given)."""
        return self._draw(pt.random.uniform, low, high, size=_size(size),
                          dtype=self._float_dtype(dtype))

    def normal(self, size=None, avg=0.0, std=1.0, ndim=None, dtype=None):
        """Normal values of mean ``avg`` and standard deviation ``std``."""
        return self._draw(pt.random.normal, avg, std, size=_size(size),
                          dtype=self._float_dtype(dtype))

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", prob=None):
        """Binomial counts of ``n`` trials of probability ``p`` (``prob``: Theano's old
        name of ``p``)."""
        if prob is not None:
            p = prob
        return pt.cast(self._draw(pt.random.binomial, n, p, size=_size(size)), dtype)

    def random_integers(self, size=None, low=0, high=1, ndim=None, dtype="int64"):
        """Integers uniform in ``[low, high]`` (both ends included)."""
        return pt.cast(self._draw(pt.random.integers, low, pt.as_tensor_variable(high) + 1,
                                  size=_size(size)), dtype)

    def multinomial(self, size=None, n=1, pvals=(0.5, 0.5), ndim=None, dtype="int64"):
        """Counts of ``n`` draws among the categories of probabilities ``pvals`` (last
        axis)."""
        return pt.cast(self._draw(pt.random.multinomial, n, pvals, size=_size(size)), dtype)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(not_provided_message(f"{self._legacy_name}.{name}"))
