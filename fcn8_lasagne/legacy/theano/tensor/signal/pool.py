"""``theano.tensor.signal.pool`` for unchanged scripts: ``pool_2d`` and
``max_pool_2d_same_size`` of :mod:`fcn8_lasagne.ops.pool` (Theano's arguments, including
the deprecated ``ds``, ``st`` and ``padding``)."""

from .....ops.pool import max_pool_2d_same_size, pool_2d
from ...._errors import shim_getattr

__legacy_shim__ = True

__all__ = ["pool_2d", "max_pool_2d_same_size"]

__getattr__ = shim_getattr(globals(), "theano.tensor.signal.pool")
