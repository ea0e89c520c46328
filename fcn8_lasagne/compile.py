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
"""

import pytensor

__all__ = ["DEVICES", "function", "mode_for_device", "set_matmul_precision"]

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
    pytensor.compile.function.types.Function
    """
    if mode is None:
        mode = mode_for_device(device)
    return pytensor.function(inputs, outputs, updates=updates, mode=mode, **kwargs)
