"""Backend registration shared by the package's ops.

PyTensor compiles a graph with one of several linkers: the C VM (``mode="CVM"``) runs an
``Op``'s Python ``perform``; Numba (the default mode in PyTensor 3) and JAX need a
translation of every ``Op``, looked up in ``numba_funcify`` / ``jax_funcify``. An ``Op``
without a Numba translation still runs (Numba falls back to object mode) but warns each
time a function is compiled; one without a JAX translation cannot be compiled with JAX.

Use the two decorators on each ``Op`` class::

    @register_numba_perform
    @register_jax(make_jax_function)
    class MyOp(Op):
        ...

Each registration is skipped silently when its backend is not installed.
"""

import importlib.util

__all__ = ["register_numba_perform", "register_jax"]


def _numba_dispatch():
    if importlib.util.find_spec("numba") is None:
        return None
    try:
        from pytensor.link.numba.dispatch import basic
    except ImportError:
        return None
    return basic


#: (op, node) pairs that Numba-compiled code calls back into, by integer key. Numba
#: serialises whatever an object-mode block closes over into the compiled module; closing
#: over the Apply node would embed the whole graph, shared weights included (gigabytes for
#: FCN-8), so the block sees only this key.
_PERFORM_TARGETS = {}


def _run_perform(key, inputs):
    op, node, n_outputs = _PERFORM_TARGETS[key]
    storage = [[None] for _ in range(n_outputs)]
    op.perform(node, list(inputs), storage)
    results = tuple(cell[0] for cell in storage)
    return results[0] if n_outputs == 1 else results


def _numba_object_mode_function(op, node):
    """A Numba function that calls ``op.perform`` in object mode (no copy of the arrays)."""
    import numba

    dispatch = _numba_dispatch()
    output_types = [dispatch.get_numba_type(output.type) for output in node.outputs]
    return_type = output_types[0] if len(output_types) == 1 else numba.types.Tuple(output_types)
    key = len(_PERFORM_TARGETS)
    _PERFORM_TARGETS[key] = (op, node, len(output_types))

    @dispatch.numba_njit
    def call_perform(*inputs):
        with numba.objmode(result=return_type):
            result = _run_perform(key, inputs)
        return result

    return call_perform


def register_numba_perform(op_class):
    """Let Numba-compiled graphs run ``op_class.perform`` without a warning.

    The generated function leaves compiled code for the ``Op``'s ``perform`` through
    ``numba.objmode``: the arrays are passed without copies, the call itself costs tens of
    microseconds, so this suits ops whose ``perform`` does its own heavy lifting (BLAS,
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
    dispatch = _numba_dispatch()
    if dispatch is not None:
        dispatch.numba_funcify.register(op_class)(
            lambda op, node=None, **kwargs: _numba_object_mode_function(op, node)
        )
    return op_class


def register_jax(make_function):
    """Class decorator: translate an ``Op`` to JAX with ``make_function(op, node)``.

    ``make_function`` receives the ``Op`` instance and its ``Apply`` node (so it can read
    constant inputs) and returns a function of the node's inputs that uses ``jax``.

    Parameters
    ----------
    make_function : callable

    Returns
    -------
    callable
        The class decorator.
    """

    def decorator(op_class):
        if importlib.util.find_spec("jax") is not None:
            try:
                from pytensor.link.jax.dispatch import jax_funcify
            except ImportError:
                return op_class
            jax_funcify.register(op_class)(
                lambda op, node=None, **kwargs: make_function(op, node)
            )
        return op_class

    return decorator
