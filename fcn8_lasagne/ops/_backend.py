"""Backend registration shared by the package's ops.

PyTensor compiles a graph with one of several linkers: the C VM (``mode="CVM"``) runs an
``Op``'s Python ``perform``; Numba (the default mode in PyTensor 3) and JAX need a
translation of every ``Op``, looked up in ``numba_funcify`` / ``jax_funcify``. An ``Op``
without a Numba translation still runs (Numba falls back to object mode) but warns each
time a function is compiled; one without a JAX translation cannot be compiled with JAX.

Each ``Op`` class carries ``@register_numba_perform``; its JAX translation is registered in
:mod:`fcn8_lasagne.ops._jax` (one module per op family, as PyTensor's
``link/jax/dispatch``), which :func:`load_jax_translations` imports when PyTensor loads its
JAX dispatch, the first time a function is compiled for JAX. So importing the ops imports
neither Numba's dispatch nor JAX (about 0.8 s together), and JAX's ``jax_enable_x64``, which
PyTensor sets from ``floatX`` when it loads its JAX dispatch, follows the ``floatX`` of that
first compilation, as without this package.
"""

import importlib.abc
import importlib.util
import sys
import threading

__all__ = ["register_numba_perform", "load_jax_translations"]

_NUMBA_DISPATCH = "pytensor.link.numba.dispatch.basic"
_JAX_DISPATCH = "pytensor.link.jax.dispatch.basic"


class _AfterImport(importlib.abc.MetaPathFinder):
    """Import hook that runs callbacks right after given modules have been executed."""

    def __init__(self):
        self.callbacks = {}
        self._resolving = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.callbacks or getattr(self._resolving, "name", None) == fullname:
            return None
        self._resolving.name = fullname
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._resolving.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            for callback in self.callbacks.pop(fullname, []):
                callback(module)

        spec.loader.exec_module = exec_module
        return spec


_HOOK = _AfterImport()


def _when_imported(module_name, callback):
    """Call ``callback(module)`` now if ``module_name`` is loaded, else once it is."""
    module = sys.modules.get(module_name)
    if module is not None:
        callback(module)
        return
    _HOOK.callbacks.setdefault(module_name, []).append(callback)
    if _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def _numba_object_mode_function(op, node):
    """A Numba function that calls ``op.perform`` in object mode (no copy of the arrays)."""
    import numba

    dispatch = sys.modules[_NUMBA_DISPATCH]
    output_types = [dispatch.get_numba_type(output.type) for output in node.outputs]
    single = len(output_types) == 1
    return_type = output_types[0] if single else numba.types.Tuple(output_types)

    def run_perform(inputs):
        storage = [[None] for _ in output_types]
        op.perform(node, list(inputs), storage)
        results = tuple(cell[0] for cell in storage)
        return results[0] if single else results

    @dispatch.numba_njit
    def call_perform(*inputs):
        with numba.objmode(result=return_type):
            result = run_perform(inputs)
        return result

    return call_perform


def register_numba_perform(op_class):
    """Let Numba-compiled graphs run ``op_class.perform`` without a warning.

    The generated function leaves compiled code for the ``Op``'s ``perform`` through
    ``numba.objmode``: the arrays are passed without copies and the call itself costs tens
    of microseconds, so this suits ops whose ``perform`` does its own heavy lifting (BLAS,
    vectorised NumPy). Graphs that contain such an ``Op`` are not written to Numba's
    on-disk cache.

    Parameters
    ----------
    op_class : type
        A subclass of ``pytensor.graph.op.Op``.

    Returns
    -------
    type
        ``op_class`` itself, so that this can be used as a class decorator.
    """

    def register(dispatch):
        dispatch.numba_funcify.register(op_class)(
            lambda op, node=None, **kwargs: _numba_object_mode_function(op, node))

    if importlib.util.find_spec("numba") is not None:
        _when_imported(_NUMBA_DISPATCH, register)
    return op_class


def load_jax_translations():
    """Import :mod:`fcn8_lasagne.ops._jax` (every ``Op``'s JAX translation) as soon as
    PyTensor loads its JAX dispatch, and not before."""
    _when_imported(_JAX_DISPATCH,
                   lambda dispatch: importlib.import_module("fcn8_lasagne.ops._jax"))
