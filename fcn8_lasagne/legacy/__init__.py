"""Run unchanged Lasagne/Theano scripts on this package and PyTensor.

``python -m fcn8_lasagne.legacy SCRIPT.py [args]`` runs a script of the deeplearning.net
tutorials as written; in Python, :func:`install` makes the same names importable:

* ``import lasagne`` and ``lasagne.layers``, ``nonlinearities``, ``init``, ``objectives``,
  ``updates``, ``regularization``, ``utils``, ``random`` are this package's modules (the same
  objects: ``lasagne.layers is fcn8_lasagne.layers``); ``lasagne.layers.dnn`` gives the cuDNN
  layer names of Lasagne (``Conv2DDNNLayer`` is :class:`~fcn8_lasagne.layers.Conv2DLayer`);
* ``import theano`` and ``theano.tensor`` are thin shims over PyTensor: a name PyTensor has
  under Theano's name is PyTensor's; ``theano.function`` compiles with
  :func:`fcn8_lasagne.compile.function` (so this package's CPU rewrites apply);
  ``theano.tensor.nnet``, ``theano.tensor.signal.pool``, ``theano.sandbox.rng_mrg`` and
  ``theano.tensor.shared_randomstreams`` are written here on this package's ops;
* ``dataset_loaders`` (fvisin/dataset_loaders) and the 1-D tutorial's ``data_loader`` are
  adapters over :mod:`fcn8_lasagne.data`.

A Theano name the runner does not provide raises an ``AttributeError`` or ``ImportError``
saying "fcn8_lasagne.legacy does not provide theano.X". Nothing is served before
:func:`install`; importing :mod:`fcn8_lasagne` alone never makes ``import lasagne`` work.

While installed, ``bool()`` of a PyTensor tensor variable behaves as in Theano (true,
except for the result of a comparison), because the tutorials test ``if any(indices):``
on the symbolic output of ``nonzero()``; :func:`uninstall` restores PyTensor's behaviour.
"""

import sys
import warnings

from ._importer import ROOTS, LegacyFinder

__all__ = ["install", "uninstall", "is_installed", "set_device", "get_device",
           "apply_theano_flags", "DATA_DIR_ENV"]

#: The environment variable naming the data folder of the ``dataset_loaders`` adapters.
DATA_DIR_ENV = "FCN8_LEGACY_DATA_DIR"

_finder = None
_saved_bool = None
_device = "cpu"


def _theano_bool(self):
    """``bool(variable)`` as in Theano: true unless the variable is a comparison result."""
    owner = self.owner
    scalar_op = getattr(getattr(owner, "op", None), "scalar_op", None)
    if scalar_op is not None and type(scalar_op).__name__ in ("LT", "GT", "LE", "GE"):
        raise TypeError("Variables do not support boolean operations.")
    return True


def install():
    """Make ``lasagne``, ``theano``, ``dataset_loaders`` and ``data_loader`` importable.

    Idempotent. Returns the finder put first on ``sys.meta_path``.
    """
    global _finder, _saved_bool
    if _finder is None:
        _finder = LegacyFinder()
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    from pytensor.tensor.variable import _tensor_py_operators

    if _saved_bool is None:
        _saved_bool = _tensor_py_operators.__dict__["__bool__"]
        _tensor_py_operators.__bool__ = _theano_bool
    return _finder


def is_installed():
    """Whether :func:`install` is in effect."""
    return _finder is not None and _finder in sys.meta_path


def uninstall():
    """Undo :func:`install`: no ``lasagne``, ``theano``, ``dataset_loaders`` or
    ``data_loader`` module stays in ``sys.modules``, attributes the imports added to this
    package's modules (``fcn8_lasagne.layers.dnn``) are removed, and ``bool()`` of PyTensor
    variables raises again."""
    global _saved_bool
    if _finder is not None:
        while _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        for alias, module in _finder.served.items():
            parent_alias, _, child = alias.rpartition(".")
            parent = _finder.served.get(parent_alias)
            own_name = getattr(module, "__name__", None)
            if (parent is not None and not getattr(parent, "__legacy_shim__", False)
                    and parent.__dict__.get(child) is module
                    and own_name != f"{parent.__name__}.{child}"):
                delattr(parent, child)
        _finder.served.clear()
    for name in [name for name in sys.modules if name.partition(".")[0] in ROOTS]:
        del sys.modules[name]
    if _saved_bool is not None:
        from pytensor.tensor.variable import _tensor_py_operators

        _tensor_py_operators.__bool__ = _saved_bool
        _saved_bool = None


def set_device(device):
    """The device ``theano.function`` compiles for: 'cpu' (default), 'jax' or 'gpu'
    (see :func:`fcn8_lasagne.compile.function`)."""
    global _device
    from ..compile import DEVICES

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    _device = device


def get_device():
    """The device set by :func:`set_device` (or ``THEANO_FLAGS=device=...``)."""
    return _device


def apply_theano_flags(flags):
    """Apply the ``THEANO_FLAGS`` a tutorial was run with (``floatX``, ``device``, ``mode``).

    ``device=cpu`` compiles for the C backend, ``device=cuda*`` / ``gpu*`` for the GPU via
    JAX; ``floatX`` and ``mode`` set PyTensor's flags of the same name. Other flags are
    ignored with a warning.

    Parameters
    ----------
    flags : str or None
        ``'floatX=float32,device=cuda'``.
    """
    import pytensor

    for item in filter(None, (part.strip() for part in (flags or "").split(","))):
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key == "device":
            set_device("cpu" if value == "cpu" else "gpu" if value.startswith(("cuda", "gpu"))
                       else value)
        elif key in ("floatX", "mode"):
            setattr(pytensor.config, key, value)
        else:
            warnings.warn(f"THEANO_FLAGS: {key!r} is ignored by fcn8_lasagne.legacy",
                          UserWarning, stacklevel=2)
