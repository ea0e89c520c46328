"""``theano.sandbox.rng_mrg`` for unchanged scripts: ``MRG_RandomStreams``.

Theano's ``MRG_RandomStreams(seed=12345)`` with its methods and arguments (``uniform``,
``binomial`` for ``n=1`` as ``uniform < p``, ``normal``, ``multinomial`` for ``n=1``)
over PyTensor's random variables. The numbers come from NumPy's PCG64, not from Theano's
MRG31k3p generator, so a seed gives other (equally distributed) numbers than under Theano;
``nstreams`` is accepted and ignored.
"""

import pytensor.tensor as pt

from ..._errors import not_provided_message
from ..tensor.shared_randomstreams import RandomStreams

__legacy_shim__ = True

__all__ = ["MRG_RandomStreams"]


class MRG_RandomStreams(RandomStreams):  # noqa: N801  (Theano's name)
    """Theano's ``MRG_RandomStreams``.

    Parameters
    ----------
    seed : int
        Seeds the generators of the variables drawn (Theano's default 12345).
    """

    _legacy_name = "theano.sandbox.rng_mrg.MRG_RandomStreams"

    def __init__(self, seed=12345):
        super().__init__(seed)

    def uniform(self, size, low=0.0, high=1.0, ndim=None, dtype=None, nstreams=None,
                **kwargs):
        """Uniform values in ``[low, high)``, of shape ``size`` (dtype ``floatX`` unless
        given)."""
        return super().uniform(size, low, high, ndim=ndim, dtype=dtype)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", nstreams=None,
                 **kwargs):
        """``uniform(size) < p`` cast to ``dtype``; only ``n=1``, as in Theano."""
        if n != 1:
            raise NotImplementedError("MRG_RandomStreams.binomial with n > 1")
        p = pt.as_tensor_variable(p)
        uniform = super().uniform(size, 0.0, 1.0)
        return pt.cast(pt.lt(uniform, p), dtype)

    def normal(self, size, avg=0.0, std=1.0, ndim=None, dtype=None, nstreams=None,
               truncate=False, **kwargs):
        """Normal values of mean ``avg`` and standard deviation ``std``."""
        if truncate:
            raise NotImplementedError(not_provided_message(
                f"{self._legacy_name}.normal with truncate=True", kind="argument"))
        return super().normal(size, avg, std, ndim=ndim, dtype=dtype)

    def multinomial(self, size=None, n=1, pvals=None, ndim=None, dtype="int64",
                    nstreams=None, **kwargs):
        """One-hot rows (``n=1``): row ``i`` picks one category with the probabilities
        ``pvals[i]``."""
        if pvals is None:
            raise TypeError("You have to specify pvals")
        return super().multinomial(None, n, pvals, dtype=dtype)
