"""``theano.tensor`` for unchanged scripts: ``pytensor.tensor`` plus Theano's submodules.

Any name ``pytensor.tensor`` has (``set_subtensor``, ``tensor4``, ``ivector``, ``argmax``,
``zeros``, ``stack``, ...) is PyTensor's. Written here: ``nnet``, ``signal`` (only
``signal.pool``), ``shared_randomstreams`` and the Theano names PyTensor renamed
(``abs_``, ``inv``, ``addbroadcast``). Other submodules (``theano.tensor.extra_ops``, ...)
are PyTensor's modules of the same name.
"""

import pytensor.tensor as _pt

from ..._errors import shim_getattr

__legacy_shim__ = True
__legacy_passthrough__ = "pytensor.tensor"

from . import nnet, shared_randomstreams, signal  # noqa: E402


def abs_(a):
    """Theano's ``abs_``: element-wise absolute value (PyTensor's ``abs``)."""
    return _pt.abs(a)


def inv(a):
    """Theano's ``inv``: element-wise ``1 / a`` (PyTensor's ``reciprocal``)."""
    return _pt.reciprocal(a)


def addbroadcast(x, *axes):
    """Theano's ``addbroadcast``: declare ``axes`` of length 1 (``specify_broadcastable``)."""
    return _pt.specify_broadcastable(x, *axes)


__getattr__ = shim_getattr(globals(), "theano.tensor", fallback=lambda: _pt)
