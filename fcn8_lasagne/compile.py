"""One place that turns symbolic outputs into functions for a device.

``function(inputs, outputs, updates=None, device="cpu")`` is ``pytensor.function`` with the
mode that runs this project's ops fastest on the device:

* ``"cpu"`` — PyTensor's C virtual machine (``mode="CVM"``): the convolution and pooling ops
  run their BLAS kernels, the elementwise rest is compiled C.
* ``"jax"`` — PyTensor's JAX backend on JAX's default device (XLA; on a CUDA install of JAX
  that is the GPU, otherwise the CPU).
* ``"gpu"`` — the JAX backend, insisting on a GPU being present.

Any ``pytensor.function`` keyword (``givens``, ``on_unused_input``, …) passes through, and
``mode=`` overrides the choice.

JAX compiles for static shapes. The ops of this package keep their own shapes static, but
PyTensor's gradient and shape rewrites compute intermediate sizes by arithmetic that JAX
traces. So on the JAX devices the graph is specialised to the shapes of each call's inputs
(the inputs are wrapped in ``specify_shape``, which makes every inferred size a constant) and
one compiled function is kept per distinct input shape — what ``jax.jit`` does anyway.

Parameters and optimiser state are the same shared variables in every specialisation and
stay on the device between calls: before a call, a JAX function moves the host arrays of the
shared variables it reads to the device once, and keeps the updated values there, so a step
moves only its inputs and outputs. The old values of the variables a function updates are
donated to XLA, which writes the new values into their buffers instead of allocating new
ones (a training step of FCN-8 then needs no second copy of its 134M parameters and Adam
moments); so a JAX array taken with ``get_value(borrow=True)`` before a call is deleted by
it, while ``get_value()`` returns a copy that stays valid. That copy is a JAX array
(``numpy.asarray`` copies it to the host; ``layers.get_all_param_values`` returns NumPy
arrays), and a C-backend function compiled here brings such values back to the host before
it runs, so the devices can take turns on the same network. Random generators (dropout) are the exception:
PyTensor's JAX backend gives each compiled function its own copy of a generator, which
starts from the generator's state at compile time and then advances with every call.

Precision: on recent GPUs JAX computes float32 products (convolutions, ``dot``) in
TensorFloat-32 unless told otherwise. Functions compiled here use full float32 products by
default, as the tutorial's Theano did; ``precision='tf32'`` or ``'bf16'`` (or
:func:`set_matmul_precision` for every later function) trades accuracy for speed. The choice
holds for the function's whole lifetime; the CPU backend always computes in float32.
Sums of float32 values (the loss and metrics over all pixels) accumulate in float32 under
JAX without ``jax_enable_x64``, where the C backend, like Theano, accumulates them in
float64; see ``docs/faithfulness.md``.
"""

import functools
import sys
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import get_mode
from pytensor.graph.basic import Variable
from pytensor.graph.replace import clone_replace

from .ops.reduce import CPU_REWRITES
from .utils import collect_shared_vars

__all__ = ["DEVICES", "PRECISIONS", "function", "get_matmul_precision", "mode_for_device",
           "set_matmul_precision", "HostFunction", "ShapeSpecializedFunction"]

DEVICES = ("cpu", "jax", "gpu")
_CPU_MODE = "CVM"
#: Precision name → the value of JAX's ``default_matmul_precision`` that gives it.
PRECISIONS = {"float32": "float32", "tf32": "tensorfloat32", "bf16": "bfloat16"}
_default_precision = "float32"
# Warnings JAX's tracing gives for PyTensor graphs, about nothing the user can change:
# float32 sums declare a float64 accumulator (the C backend accumulates in float64, JAX
# without x64 in float32) and shape vectors are int64 (int32 in JAX).
_TRACE_WARNINGS = r"Explicitly requested dtype (float64|int64) requested in"
_RNG_COPY_WARNING = r"The RandomType SharedVariables .* will not be used in the compiled JAX"


def mode_for_device(device):
    """The PyTensor mode used for ``device`` (one of :data:`DEVICES`).

    On the CPU: the C virtual machine with this package's CPU rewrites
    (:data:`fcn8_lasagne.ops.reduce.CPU_REWRITES`, e.g. threaded bias-gradient sums).
    """
    if device == "cpu":
        return get_mode(_CPU_MODE).including(CPU_REWRITES)
    if device in ("jax", "gpu"):
        try:
            import jax
        except ImportError as error:
            raise RuntimeError(
                f"device={device!r} needs JAX: pip install 'fcn8_lasagne[jax]' (CPU) or "
                "'fcn8_lasagne[gpu]' (CUDA)") from error
        if device == "gpu" and not any(d.platform == "gpu" for d in jax.devices()):
            raise RuntimeError(
                "device='gpu' but JAX sees no GPU (devices: "
                f"{[str(d) for d in jax.devices()]}); install 'fcn8_lasagne[gpu]' on a CUDA "
                "machine, or use device='jax' or 'cpu'")
        from . import ops  # noqa: F401  (registers the JAX dispatch of our ops)

        return "JAX"
    raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")


def _check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(
            f"unknown precision {precision!r}; expected one of {sorted(PRECISIONS)}")
    return precision


def set_matmul_precision(precision):
    """Set the product precision of the JAX functions compiled from now on.

    Parameters
    ----------
    precision : {'float32', 'tf32', 'bf16'} or None
        ``'float32'`` (the default; ``None`` means the same) computes convolutions and
        matrix products in full float32, the tutorial's numerics. ``'tf32'`` allows
        TensorFloat-32 tensor cores (Ampere and later GPUs: inputs rounded to 10 mantissa
        bits, float32 accumulation; JAX's own default on those GPUs); ``'bf16'`` rounds the
        inputs of products to bfloat16, accumulating in float32. Functions already compiled
        keep their precision; CPU (C backend) functions are always float32.
    """
    global _default_precision
    _default_precision = _check_precision("float32" if precision is None else precision)


def get_matmul_precision():
    """The precision that :func:`function` gives JAX functions by default."""
    return _default_precision


def _shared_storages(compiled):
    """The storage cells of the shared variables a compiled function reads (and updates)."""
    return [container.storage
            for spec, container in zip(compiled.maker.inputs, compiled.input_storage)
            if spec.shared]


class HostFunction:
    """A C-backend function that first brings device-resident shared values to the host.

    Behaves as the wrapped :class:`pytensor.compile.Function` (its attributes, ``maker``,
    ``profile``, … are the wrapped function's). Before each call, any shared variable it
    reads whose value a JAX function left on the device is copied back to a NumPy array;
    until JAX is imported this costs one dictionary look-up per call.

    Parameters
    ----------
    compiled : pytensor.compile.Function
    """

    def __init__(self, compiled):
        self.function = compiled
        self._storages = _shared_storages(compiled)

    def __call__(self, *args, **kwargs):
        jax = sys.modules.get("jax")
        if jax is not None:
            for cell in self._storages:
                if isinstance(cell[0], jax.Array):
                    cell[0] = np.array(cell[0])
        return self.function(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.function, name)


@functools.cache
def _donating_jax_mode():
    """PyTensor's JAX mode with a linker that donates the buffers of updated variables (one
    mode for all functions, as PyTensor's own ``"JAX"`` mode shares its linker)."""
    from pytensor.compile.mode import Mode
    from pytensor.link.jax.linker import JAXLinker
    from pytensor.tensor.type import TensorType

    class DonatingJAXLinker(JAXLinker):
        """A ``JAXLinker`` whose ``jax.jit`` donates the inputs that the function updates
        (shared tensors; random generators are copied by the linker anyway)."""

        def jit_compile(self, fn):
            import jax

            updated = sorted((self.fgraph.update_mapping or {}).values())
            donated = tuple(index for index in updated
                            if isinstance(self.fgraph.inputs[index].type, TensorType))
            if self.scalar_shape_inputs or not donated:
                return super().jit_compile(fn)
            return jax.jit(fn, donate_argnums=donated)

    jax_mode = get_mode("JAX")
    return Mode(linker=DonatingJAXLinker(), optimizer=jax_mode.provided_optimizer)


def _update_pairs(updates):
    if updates is None:
        return []
    return list(updates.items()) if hasattr(updates, "items") else list(updates)


class ShapeSpecializedFunction:
    """A function compiled once per distinct shape of its inputs (for JAX).

    Parameters
    ----------
    inputs, outputs, updates, mode, **kwargs
        As for :func:`pytensor.function`.
    precision : {'float32', 'tf32', 'bf16'}
        The precision of products (see :func:`set_matmul_precision`); every call runs
        under it, so that JAX's tracing and its cache of compiled code both see it.
    """

    def __init__(self, inputs, outputs, updates=None, mode="JAX", precision="float32",
                 **kwargs):
        self.inputs = list(inputs)
        self.outputs = outputs
        self.updates = _update_pairs(updates)
        self.mode = mode
        self.precision = _check_precision(precision)
        self.kwargs = kwargs
        self._compiled = {}
        self._storages = {}

    def _specialize(self, shapes):
        single = isinstance(self.outputs, Variable)
        outputs = [] if self.outputs is None else (
            [self.outputs] if single else list(self.outputs))
        updates = list(self.updates)
        updated = {variable for variable, _ in updates}
        # random generators advance through default updates: clone them with the graph
        for variable in collect_shared_vars(outputs + [value for _, value in updates]):
            default = getattr(variable, "default_update", None)
            if default is not None and variable not in updated:
                updates.append((variable, default))
        replace = {variable: pt.specify_shape(variable, shape)
                   for variable, shape in zip(self.inputs, shapes)
                   if shape is not None and variable.ndim == len(shape)}
        cloned = clone_replace(outputs + [value for _, value in updates], replace=replace)
        new_outputs, new_values = cloned[:len(outputs)], cloned[len(outputs):]
        new_updates = [(variable, value) for (variable, _), value in zip(updates, new_values)]
        result = new_outputs[0] if single else (None if self.outputs is None else new_outputs)
        mode = _donating_jax_mode() if self.mode == "JAX" else self.mode
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_RNG_COPY_WARNING, category=UserWarning)
            return pytensor.function(self.inputs, result, updates=new_updates, mode=mode,
                                     **self.kwargs)

    def __call__(self, *args):
        import jax

        shapes = tuple(np.shape(arg) if hasattr(var, "ndim") else None
                       for var, arg in zip(self.inputs, args))
        compiled = self._compiled.get(shapes)
        first_call = compiled is None
        if first_call:
            compiled = self._compiled[shapes] = self._specialize(shapes)
            self._storages[shapes] = _shared_storages(compiled)
        # host values (new, or set with set_value) go to the device once and stay there
        for cell in self._storages[shapes]:
            if isinstance(cell[0], np.ndarray):
                cell[0] = jax.device_put(cell[0])
        with jax.default_matmul_precision(PRECISIONS[self.precision]):
            if not first_call:
                return compiled(*args)
            with warnings.catch_warnings():  # the first call traces the graph
                warnings.filterwarnings("ignore", message=_TRACE_WARNINGS, category=UserWarning)
                return compiled(*args)


def function(inputs, outputs=None, updates=None, device="cpu", mode=None, precision=None,
             **kwargs):
    """Compile ``outputs`` of ``inputs`` (and ``updates``) for ``device``.

    Parameters
    ----------
    inputs : list of Variable
    outputs : Variable or list of Variable, optional
    updates : dict or list of pairs, optional
        Shared variable → new value, applied after each call (e.g. from
        :func:`fcn8_lasagne.updates.adam`).
    device : {'cpu', 'jax', 'gpu'}, default 'cpu'
    mode : str or pytensor Mode, optional
        Overrides the device's mode.
    precision : {'float32', 'tf32', 'bf16'}, optional
        Product precision of a JAX function (default :func:`get_matmul_precision`, which
        is ``'float32'`` unless :func:`set_matmul_precision` changed it). The C backend
        computes in float32 only.
    **kwargs
        Passed to :func:`pytensor.function`.

    Returns
    -------
    HostFunction or ShapeSpecializedFunction
        Called like the tutorial's Theano functions: a :class:`HostFunction` wrapping
        PyTensor's function on the CPU, a :class:`ShapeSpecializedFunction` on JAX.

    Raises
    ------
    ValueError
        For an unknown device or precision, or a reduced precision on the C backend.
    """
    if mode is None:
        mode = mode_for_device(device)
    if mode == "JAX":
        precision = _default_precision if precision is None else precision
        return ShapeSpecializedFunction(inputs, outputs, updates=updates, mode=mode,
                                        precision=precision, **kwargs)
    if precision not in (None, "float32"):
        _check_precision(precision)
        raise ValueError(f"precision={precision!r} needs a JAX device ('jax' or 'gpu'); "
                         f"the C backend ({mode}) computes in float32")
    return HostFunction(pytensor.function(inputs, outputs, updates=updates, mode=mode,
                                          **kwargs))
