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
one compiled function is kept per distinct input shape — what ``jax.jit`` does anyway. Shared
variables (parameters, optimiser state, random generators) are the same in every
specialisation.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.graph.replace import clone_replace

from .utils import collect_shared_vars

__all__ = ["DEVICES", "function", "mode_for_device", "set_matmul_precision",
           "ShapeSpecializedFunction"]

DEVICES = ("cpu", "jax", "gpu")
_CPU_MODE = "CVM"


def mode_for_device(device):
    """The PyTensor mode used for ``device`` (one of :data:`DEVICES`)."""
    if device == "cpu":
        return _CPU_MODE
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


def set_matmul_precision(precision):
    """Choose JAX's matmul/convolution precision on the GPU.

    Parameters
    ----------
    precision : {None, 'float32', 'tf32', 'bf16'}
        ``None``/``'float32'`` keeps full float32 (the default, and the tutorial's
        numerics); ``'tf32'`` allows TensorFloat-32 on Ampere and later; ``'bf16'`` computes
        products in bfloat16 with float32 accumulation.
    """
    import jax

    values = {None: "highest", "float32": "highest", "tf32": "tensorfloat32",
              "bf16": "bfloat16"}
    if precision not in values:
        raise ValueError(f"unknown precision {precision!r}; expected one of {list(values)}")
    jax.config.update("jax_default_matmul_precision", values[precision])


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
    """

    def __init__(self, inputs, outputs, updates=None, mode="JAX", **kwargs):
        self.inputs = list(inputs)
        self.outputs = outputs
        self.updates = _update_pairs(updates)
        self.mode = mode
        self.kwargs = kwargs
        self._compiled = {}

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
        cloned = clone_replace(outputs + [value for _, value in updates],
                                        replace=replace)
        new_outputs, new_values = cloned[:len(outputs)], cloned[len(outputs):]
        new_updates = [(variable, value) for (variable, _), value in zip(updates, new_values)]
        result = new_outputs[0] if single else (None if self.outputs is None else new_outputs)
        return pytensor.function(self.inputs, result, updates=new_updates, mode=self.mode,
                                 **self.kwargs)

    def __call__(self, *args):
        shapes = tuple(np.shape(arg) if hasattr(var, "ndim") else None
                       for var, arg in zip(self.inputs, args))
        compiled = self._compiled.get(shapes)
        if compiled is None:
            compiled = self._compiled[shapes] = self._specialize(shapes)
        return compiled(*args)


def function(inputs, outputs=None, updates=None, device="cpu", mode=None, **kwargs):
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
    **kwargs
        Passed to :func:`pytensor.function`.

    Returns
    -------
    pytensor.compile.function.types.Function or ShapeSpecializedFunction
        Called like the tutorial's Theano functions.
    """
    if mode is None:
        mode = mode_for_device(device)
    if mode == "JAX":
        return ShapeSpecializedFunction(inputs, outputs, updates=updates, mode=mode, **kwargs)
    return pytensor.function(inputs, outputs, updates=updates, mode=mode, **kwargs)
