"""``theano.tensor.signal`` for unchanged scripts: only ``theano.tensor.signal.pool``.

(PyTensor's own ``pytensor.tensor.signal`` is a different module: 1-D and 2-D signal
convolutions, not Theano's pooling.)
"""

from ...._errors import shim_getattr
from . import pool  # noqa: F401  (the submodule)

__legacy_shim__ = True

__getattr__ = shim_getattr(globals(), "theano.tensor.signal")
