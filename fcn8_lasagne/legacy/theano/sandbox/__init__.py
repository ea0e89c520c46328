"""``theano.sandbox`` for unchanged scripts: only ``theano.sandbox.rng_mrg``.

(``theano.sandbox.cuda`` and the other GPU back ends are not provided: set
``THEANO_FLAGS=device=cuda`` or :func:`fcn8_lasagne.legacy.set_device` instead.)
"""

from ..._errors import shim_getattr
from . import rng_mrg  # noqa: F401  (the submodule)

__legacy_shim__ = True

__getattr__ = shim_getattr(globals(), "theano.sandbox")
