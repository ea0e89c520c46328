"""``theano.tensor.signal.pool`` for unchanged scripts: ``pool_2d``, ``pool_3d``,
``max_pool_2d_same_size`` and the ``Pool`` op family of :mod:`fcn8_lasagne.ops.pool`
(Theano's arguments, including the deprecated ``ds``, ``st`` and ``padding``)."""

from .....ops.pool import (
    AveragePoolGrad,
    DownsampleFactorMaxGradGrad,
    MaxPoolGrad,
    Pool,
    max_pool_2d_same_size,
    pool_2d,
    pool_3d,
)
from ...._errors import shim_getattr

__legacy_shim__ = True

__all__ = ["pool_2d", "pool_3d", "max_pool_2d_same_size", "Pool", "MaxPoolGrad",
           "AveragePoolGrad", "DownsampleFactorMaxGradGrad"]

__getattr__ = shim_getattr(globals(), "theano.tensor.signal.pool")
