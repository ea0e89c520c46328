"""The random number generator shared by initialisers and other sampling code.

As in Lasagne, it is NumPy's global ``np.random`` module until :func:`set_rng` replaces it,
so ``np.random.seed(n)`` makes parameter initialisation reproducible exactly as it did in the
tutorial. Dropout masks are drawn by PyTensor's random graph instead and are seeded from
this generator when a layer is built.
"""

import numpy as np

__all__ = ["get_rng", "set_rng"]

_rng = np.random


def get_rng():
    """Return the current random number generator (``np.random`` by default)."""
    return _rng


def set_rng(new_rng):
    """Replace the random number generator.

    Parameters
    ----------
    new_rng : numpy.random.RandomState or numpy.random module
        Anything with NumPy's ``RandomState`` sampling methods.
    """
    global _rng
    _rng = new_rng
