"""``theano`` for unchanged scripts: PyTensor under Theano 1.0.5's names.

Served as ``theano`` by :func:`fcn8_lasagne.legacy.install`. ``function`` compiles with
:func:`fcn8_lasagne.compile.function`; ``shared``, ``clone`` and ``scan`` take Theano's
arguments; ``config``, ``grad``, ``printing``, ``gradient``, ``In``, ``Out`` and any other
name PyTensor has under Theano's name are PyTensor's. ``theano.tensor`` and
``theano.sandbox`` are shims of this package; other submodules (``theano.printing``,
``theano.ifelse``, ...) are PyTensor's modules of the same name.
"""

import warnings

import pytensor
from pytensor.graph.replace import clone_replace

from ... import compile as _compile
from .._errors import shim_getattr

__legacy_shim__ = True
__legacy_passthrough__ = "pytensor"
__version__ = "1.0.5"

config = pytensor.config
grad = pytensor.grad
gradient = pytensor.gradient
printing = pytensor.printing
In = pytensor.In
Out = pytensor.Out
Mode = pytensor.Mode
dprint = pytensor.dprint
pp = pytensor.printing.pp
debugprint = pytensor.printing.debugprint

from . import sandbox, tensor  # noqa: E402, F401  (the shim's submodules)

# Theano's mode names -> what fcn8_lasagne.compile.function is given. ``None`` and
# 'FAST_RUN' (Theano's default: C code, every rewrite) use the device's mode: the C VM with
# this package's CPU rewrites, or JAX.
_MODES = {None: None, "FAST_RUN": None, "DEBUG_MODE": "DebugMode"}


def function(inputs, outputs=None, mode=None, updates=None, givens=None,
             no_default_updates=False, accept_inplace=False, name=None, rebuild_strict=True,
             allow_input_downcast=None, profile=None, on_unused_input=None):
    """``theano.function``: compile ``outputs`` of ``inputs`` with
    :func:`fcn8_lasagne.compile.function`.

    Arguments and their order are Theano 1.0.5's. The device is
    :func:`fcn8_lasagne.legacy.get_device` ('cpu' unless ``THEANO_FLAGS=device=cuda`` or
    :func:`~fcn8_lasagne.legacy.set_device` chose another). ``mode=None`` or ``'FAST_RUN'``
    gives the device's mode; other modes (``'FAST_COMPILE'``, a PyTensor ``Mode``) pass
    through.

    Returns
    -------
    callable
        See :func:`fcn8_lasagne.compile.function`.
    """
    from .. import get_device

    options = {"givens": givens, "no_default_updates": no_default_updates,
               "accept_inplace": accept_inplace, "name": name,
               "rebuild_strict": rebuild_strict, "allow_input_downcast": allow_input_downcast,
               "profile": profile, "on_unused_input": on_unused_input}
    defaults = {"no_default_updates": False, "accept_inplace": False, "rebuild_strict": True}
    kwargs = {key: value for key, value in options.items()
              if value is not None and defaults.get(key, object()) != value}
    mode = _MODES.get(mode, mode) if isinstance(mode, str) or mode is None else mode
    return _compile.function(inputs, outputs, updates=updates, device=get_device(), mode=mode,
                             **kwargs)


def shared(value, name=None, strict=False, allow_downcast=None, broadcastable=None, **kwargs):
    """``theano.shared``: PyTensor's, also taking Theano's ``broadcastable`` pattern
    (``True`` entries become static length-1 axes)."""
    if broadcastable is not None and "shape" not in kwargs:
        kwargs["shape"] = tuple(1 if flag else None for flag in broadcastable)
    return pytensor.shared(value, name=name, strict=strict, allow_downcast=allow_downcast,
                           **kwargs)


def clone(output, replace=None, strict=True, share_inputs=True):
    """``theano.clone``: copy a graph, replacing variables (``replace``: dict or pairs).

    ``share_inputs=False`` also copies the graph's inputs (PyTensor's
    ``copy_inputs_over=False``); ``strict`` is PyTensor's ``rebuild_strict``.
    """
    return clone_replace(output, replace=replace, rebuild_strict=strict,
                         copy_inputs_over=share_inputs)


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient=-1, go_backwards=False, mode=None, name=None, profile=False,
         allow_gc=None, strict=False, return_list=False):
    """``theano.scan``: PyTensor's scan, returning ``(outputs, updates)`` as Theano's did."""
    from pytensor.scan.basic import scan as pytensor_scan

    with warnings.catch_warnings():  # PyTensor's coming signature change; Theano's is kept
        warnings.filterwarnings("ignore", message="Scan return signature will change",
                                category=DeprecationWarning)
        return pytensor_scan(fn, sequences=sequences, outputs_info=outputs_info,
                             non_sequences=non_sequences, n_steps=n_steps,
                             truncate_gradient=truncate_gradient, go_backwards=go_backwards,
                             mode=mode, name=name, profile=profile, allow_gc=allow_gc,
                             strict=strict, return_list=return_list, return_updates=True)


def _graph(name):
    def get():
        import pytensor.graph

        return getattr(pytensor.graph, name)
    return get


__getattr__ = shim_getattr(
    globals(), "theano", fallback=lambda: pytensor,
    renamed={name: _graph(name) for name in
             ("Op", "Apply", "Variable", "Constant", "Type", "FunctionGraph")})
