"""The ``sys.meta_path`` finder that serves ``lasagne``, ``theano`` and the data loaders.

Every module it serves is an *alias*: the import of ``lasagne.layers`` puts the module object
``fcn8_lasagne.layers`` itself into ``sys.modules['lasagne.layers']``, so that the two names
share one module (its classes, its registries, its state). Where Theano's names differ from
PyTensor's, the alias is a thin shim module of this package (``theano.tensor.nnet`` is
``fcn8_lasagne.legacy.theano.tensor.nnet``).

How a name is resolved:

1. :data:`OVERRIDES` (``lasagne.layers.dnn``);
2. a root name of :data:`ROOTS` is its shim package;
3. ``parent.child``: when the parent is a shim, its own submodule ``child`` if it has one,
   else ``<__legacy_passthrough__>.child`` when the shim declares a passthrough package
   (``theano`` -> ``pytensor``, ``theano.tensor`` -> ``pytensor.tensor``, ``lasagne`` ->
   ``fcn8_lasagne`` for Lasagne's own module names); when the parent is an alias of a real
   module (``lasagne.layers`` is ``fcn8_lasagne.layers``), that module's ``child``;
4. anything else raises ``ModuleNotFoundError`` saying that ``fcn8_lasagne.legacy`` does not
   provide the module.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

from ._errors import not_provided_message

__all__ = ["ROOTS", "OVERRIDES", "LegacyFinder"]

#: Top-level names served, and the shim package each one is.
ROOTS = {
    "theano": "fcn8_lasagne.legacy.theano",
    "lasagne": "fcn8_lasagne.legacy.lasagne",
    "dataset_loaders": "fcn8_lasagne.legacy.dataset_loaders",
    "data_loader": "fcn8_lasagne.legacy.data_loader",
}

#: Names served by a shim although their parent is a real module of this package.
OVERRIDES = {
    "lasagne.layers.dnn": "fcn8_lasagne.legacy.lasagne.layers_dnn",
}


def _module_exists(name):
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _target_name(fullname):
    """The real module that ``fullname`` is an alias of (raises when there is none)."""
    if fullname in OVERRIDES:
        return OVERRIDES[fullname]
    root, _, rest = fullname.partition(".")
    if not rest:
        return ROOTS[root]
    parent_name, _, child = fullname.rpartition(".")
    parent = sys.modules.get(parent_name) or importlib.import_module(parent_name)
    candidates = []
    if getattr(parent, "__legacy_shim__", False):
        candidates.append(f"{parent.__name__}.{child}")
        passthrough = getattr(parent, "__legacy_passthrough__", None)
        allowed = getattr(parent, "__legacy_passthrough_names__", None)
        if passthrough and (allowed is None or child in allowed):
            candidates.append(f"{passthrough}.{child}")
    else:
        candidates.append(f"{parent.__name__}.{child}")
    for candidate in candidates:
        if _module_exists(candidate):
            return candidate
    raise ModuleNotFoundError(not_provided_message(fullname, kind="module"), name=fullname)


def _refuse_missing_shim_submodule(fullname):
    """``from theano.tensor.signal import downsample`` imports the shim's own submodule
    ``fcn8_lasagne.legacy.theano.tensor.signal.downsample``: when the shim has no such
    submodule (nor its passthrough package), raise the error naming the Theano module,
    under that name, so that the import system does not replace it by a generic one."""
    parent_name, _, child = fullname.rpartition(".")
    parent = sys.modules.get(parent_name)
    legacy_name = getattr(parent, "__legacy_name__", None)
    if legacy_name is None or not getattr(parent, "__legacy_shim__", False):
        return
    if importlib.machinery.PathFinder.find_spec(fullname, getattr(parent, "__path__", None)):
        return
    passthrough = getattr(parent, "__legacy_passthrough__", None)
    if passthrough and _module_exists(f"{passthrough}.{child}"):
        return
    legacy_fullname = f"{legacy_name}.{child}"
    raise ModuleNotFoundError(not_provided_message(legacy_fullname, kind="module"),
                              name=legacy_fullname)


class _AliasLoader(importlib.abc.Loader):
    """Returns an already-imported module for an alias name, leaving the module as it was.

    The import system writes the alias spec into ``module.__spec__`` between
    ``create_module`` and ``exec_module``; ``exec_module`` puts the module's own spec back.
    """

    def __init__(self, module):
        self.module = module
        self.own_spec = module.__dict__.get("__spec__")

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        if self.own_spec is not None:
            module.__spec__ = self.own_spec


class LegacyFinder(importlib.abc.MetaPathFinder):
    """Serves the names under :data:`ROOTS` as aliases; records what it served."""

    def __init__(self):
        #: alias name -> module object served, in the order of the imports
        self.served = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname.partition(".")[0] not in ROOTS:
            _refuse_missing_shim_submodule(fullname)
            return None
        module = importlib.import_module(_target_name(fullname))
        self.served[fullname] = module
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(module), is_package=hasattr(module, "__path__"))
