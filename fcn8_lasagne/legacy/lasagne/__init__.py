"""``lasagne`` for unchanged scripts: this package's Lasagne-compatible modules.

Served as ``lasagne`` by :func:`fcn8_lasagne.legacy.install`. Its submodules are this
package's modules themselves (``lasagne.layers is fcn8_lasagne.layers``), so every layer,
initialiser or update added to this package is at once ``lasagne.layers.X`` (or
``lasagne.init.X``, ...). ``lasagne.layers.dnn`` is :mod:`.layers_dnn`.
"""

from ... import init, layers, nonlinearities, objectives, random, regularization, updates, utils
from ... import theano_extensions
from .._errors import shim_getattr

__legacy_shim__ = True
__legacy_passthrough__ = "fcn8_lasagne"
#: Lasagne's own modules; other modules of fcn8_lasagne are not served under ``lasagne``.
__legacy_passthrough_names__ = ("layers", "nonlinearities", "init", "objectives", "updates",
                                "regularization", "utils", "random", "theano_extensions")
__version__ = "0.2.dev1"

__all__ = list(__legacy_passthrough_names__)

__getattr__ = shim_getattr(globals(), "lasagne")
