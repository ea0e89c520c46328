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

Several devices (data parallelism, JAX's own sharding; not in the original):
``function(..., device='jax' or 'gpu', devices=N)`` returns a :class:`ShardedFunction`. A
one-axis ``Mesh`` named ``'batch'`` spans the first ``N`` devices (or a given list); the
batch inputs (``batch_inputs``, by default every input of rank ≥ 1) are split along axis 0
(``NamedSharding(mesh, P('batch'))``), every other input and every shared variable
(parameters, Adam's state) is replicated (``P()``) and stays on the devices between calls.
The graph jit'ed is the one-device graph at the global shapes; XLA's partitioner runs each
device on its slice and inserts the all-reduces, so losses, metrics and updated parameters
are those of one device with the same global batch, up to the order of float additions.
Each batch input needs a multiple of ``N`` rows (``ValueError`` otherwise). FCN-8's labels,
flattened batch-major to ``(B·H·W,)``, then split at image boundaries whenever ``B`` is a
multiple of ``N``: each device holds the labels of its own images. On the CPU, simulate
devices with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` set before JAX starts.

Several processes (hosts): :func:`initialize_distributed` (``jax.distributed.initialize``)
in every process first; a function with ``devices='all'`` then spans every process's
devices, each process passes its own consecutive slice of the global batch (process 0 the
first), and every process receives the outputs whole. Only process 0 writes files
(:func:`is_writer`).
"""

import functools
import socket
import sys
import time
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import get_mode
from pytensor.graph.basic import Variable
from pytensor.graph.replace import clone_replace

from .ops import memory as _memory
from .ops.reduce import CPU_REWRITES
from .utils import collect_shared_vars

__all__ = ["DEVICES", "PRECISIONS", "function", "get_matmul_precision", "mode_for_device",
           "set_matmul_precision", "HostFunction", "ShapeSpecializedFunction",
           "ShardedFunction", "initialize_distributed", "is_writer", "process_index"]

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
    until JAX is imported this costs one dictionary look-up per call. Where it is turned
    on (training loops, ``FCN8_LASAGNE_CACHING_ALLOCATOR=1``), calls run with
    :mod:`fcn8_lasagne.ops.memory`'s caching allocator as NumPy's allocator in the calling
    thread (a step reuses the large blocks of the previous one instead of mapping and
    zeroing fresh pages).

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
        _memory.install()
        return self.function(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.function, name)


@functools.cache
def _jax_linkers():
    """The JAX linker classes of this module (built on first use: PyTensor's JAX linker
    imports JAX)."""
    from pytensor.link.jax.linker import JAXLinker
    from pytensor.tensor.type import TensorType

    class DonatingJAXLinker(JAXLinker):
        """A ``JAXLinker`` whose ``jax.jit`` donates the inputs that the function updates
        (shared tensors; random generators are copied by the linker anyway)."""

        def _donated(self):
            updated = sorted((self.fgraph.update_mapping or {}).values())
            return tuple(index for index in updated
                         if isinstance(self.fgraph.inputs[index].type, TensorType))

        def jit_compile(self, fn):
            import jax

            donated = self._donated()
            if self.scalar_shape_inputs or not donated:
                return super().jit_compile(fn)
            return jax.jit(fn, donate_argnums=donated)

    class ShardingJAXLinker(DonatingJAXLinker):
        """A ``DonatingJAXLinker`` for a device mesh: the jit'ed function constrains the new
        values of updated variables to ``replicated`` (and, with ``replicate_outputs``, the
        outputs too); the inputs arrive already placed (see :class:`ShardedFunction`), so
        XLA's partitioner follows their shardings and inserts the all-reduces."""

        def __init__(self, replicated, replicate_outputs, *args, **kwargs):
            self.replicated = replicated
            self.replicate_outputs = replicate_outputs
            super().__init__(*args, **kwargs)

        def accept(self, fgraph, no_recycling=None, profile=None):
            if self.fgraph is not None and self.fgraph is not fgraph:
                fresh = type(self)(self.replicated, self.replicate_outputs,
                                   allow_gc=self.allow_gc)
                return fresh.accept(fgraph, no_recycling, profile)
            return super().accept(fgraph, no_recycling, profile)

        def jit_compile(self, fn):
            import jax

            updates = set((self.fgraph.update_mapping or {}).keys())
            constrained = tuple(self.replicate_outputs or index in updates
                                for index in range(len(self.fgraph.outputs)))
            replicated = self.replicated

            def placed(*args):
                outputs = fn(*args)
                return type(outputs)(
                    jax.lax.with_sharding_constraint(value, replicated) if keep else value
                    for value, keep in zip(outputs, constrained))

            functools.update_wrapper(placed, fn)
            static = self.scalar_shape_inputs
            jitted = jax.jit(placed, static_argnums=static,
                             donate_argnums=tuple(i for i in self._donated()
                                                  if i not in static))
            if not static:
                return jitted

            def with_int_shapes(*args, static=frozenset(static)):
                return jitted(*(int(arg) if i in static else arg
                                for i, arg in enumerate(args)))

            return with_int_shapes

    return DonatingJAXLinker, ShardingJAXLinker


@functools.cache
def _donating_jax_mode():
    """PyTensor's JAX mode with a linker that donates the buffers of updated variables (one
    mode for all functions, as PyTensor's own ``"JAX"`` mode shares its linker)."""
    from pytensor.compile.mode import Mode

    return Mode(linker=_jax_linkers()[0](), optimizer=get_mode("JAX").provided_optimizer)


def _sharding_jax_mode(replicated, replicate_outputs):
    """A JAX mode whose linker keeps updated values (and maybe outputs) ``replicated``."""
    from pytensor.compile.mode import Mode

    linker = _jax_linkers()[1](replicated, replicate_outputs)
    return Mode(linker=linker, optimizer=get_mode("JAX").provided_optimizer)


def _default_device():
    """The device a one-device JAX function runs on (JAX's default device)."""
    import jax

    device = jax.config.jax_default_device
    if isinstance(device, str):
        return jax.devices(device)[0]
    return device if device is not None else jax.devices()[0]


def _update_pairs(updates):
    if updates is None:
        return []
    return list(updates.items()) if hasattr(updates, "items") else list(updates)


def _merge_aliased_shared(outputs, updates):
    """``outputs`` and ``updates`` with every shared variable that shares its storage with
    another one of the graph replaced by that one.

    Lasagne's ``BatchNormLayer`` updates its running averages through clones of ``mean``
    and ``inv_std`` that share their containers (``theano.clone(share_inputs=False)``).
    PyTensor does not know that two such variables alias: the C backend then updated the
    buffer in place before the deterministic output read it, and JAX cannot be handed one
    buffer twice when it is donated. With one variable per storage (the clones' default
    updates made explicit) every output reads the values from before the call, as Theano's
    functions did.
    """
    single = isinstance(outputs, Variable)
    output_list = [] if outputs is None else ([outputs] if single else list(outputs))
    pairs = _update_pairs(updates)
    shared = collect_shared_vars(output_list + [value for _, value in pairs])
    # the representative of a storage: a variable without a default update where possible
    shared.sort(key=lambda variable: getattr(variable, "default_update", None) is not None)
    representative, aliases = {}, {}
    for variable in shared:
        first = representative.setdefault(id(variable.container), variable)
        if first is not variable:
            aliases[variable] = first
    if not aliases:
        return outputs, updates
    updated = {variable for variable, _ in pairs}
    pairs += [(alias, alias.default_update) for alias in aliases
              if getattr(alias, "default_update", None) is not None and alias not in updated]
    cloned = clone_replace(output_list + [value for _, value in pairs], replace=aliases)
    new_pairs = [(aliases.get(variable, variable), value)
                 for (variable, _), value in zip(pairs, cloned[len(output_list):])]
    targets = [variable for variable, _ in new_pairs]
    twice = {variable.name or str(variable) for variable in targets if targets.count(variable) > 1}
    if twice:
        raise ValueError(f"two updates of the same storage ({', '.join(sorted(twice))}): "
                         "shared variables that share a container are updated twice")
    new_outputs = cloned[:len(output_list)]
    result = new_outputs[0] if single else (None if outputs is None else new_outputs)
    return result, new_pairs



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
        mode = self._jax_mode() if self.mode == "JAX" else self.mode
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_RNG_COPY_WARNING, category=UserWarning)
            return pytensor.function(self.inputs, result, updates=new_updates, mode=mode,
                                     **self.kwargs)

    def _jax_mode(self):
        return _donating_jax_mode()

    def _compile(self, shapes):
        return self._specialize(shapes)

    def _prepare(self, args):
        """The shapes that select the specialisation, and the arguments to pass."""
        shapes = tuple(np.shape(arg) if hasattr(var, "ndim") else None
                       for var, arg in zip(self.inputs, args))
        return shapes, args

    def _place_shared(self, cells):
        """Put the values of shared variables where the compiled function reads them."""
        import jax

        # host values (new, or set with set_value) go to the device once and stay there;
        # values a multi-device function left spread over several devices come back to one
        device = None
        for cell in cells:
            value = cell[0]
            if isinstance(value, jax.Array) and value.committed:
                if (isinstance(value.sharding, jax.sharding.SingleDeviceSharding)
                        or len(value.sharding.device_set) == 1):
                    continue
                value = np.asarray(value)  # left on several devices by a ShardedFunction
            # committed to the device, as the values the step returns are (with a random
            # generator's state among them, uncommitted inputs make the second call
            # compile the step again)
            device = device or _default_device()
            cell[0] = jax.tree_util.tree_map(
                lambda leaf: leaf if isinstance(leaf, jax.Array) and leaf.committed
                else jax.device_put(leaf, device), value)

    def __call__(self, *args):
        import jax

        shapes, args = self._prepare(args)
        compiled = self._compiled.get(shapes)
        first_call = compiled is None
        if first_call:
            compiled = self._compiled[shapes] = self._compile(shapes)
            self._storages[shapes] = _shared_storages(compiled)
        self._place_shared(self._storages[shapes])
        with jax.default_matmul_precision(PRECISIONS[self.precision]):
            if not first_call:
                return compiled(*args)
            with warnings.catch_warnings():  # the first call traces the graph
                warnings.filterwarnings("ignore", message=_TRACE_WARNINGS, category=UserWarning)
                return compiled(*args)


def _resolve_devices(devices, device):
    """The list of JAX devices meant by ``devices`` (an int, a list of devices or 'all')."""
    import jax

    platform = "gpu" if device == "gpu" else None
    present = jax.devices(platform) if platform else jax.devices()
    kind = present[0].platform if present else (platform or "jax")
    if isinstance(devices, str):
        if devices != "all":
            raise ValueError(f"devices={devices!r}: expected an int, a list of JAX devices, "
                             "'all' or None")
        return list(present)
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        count = int(devices)
        if count < 1:
            raise ValueError(f"devices={count}: need at least one device")
        if count > len(present):
            hint = ("; on the CPU, set XLA_FLAGS=--xla_force_host_platform_device_count="
                    f"{count} in the environment before JAX starts to simulate {count} "
                    "devices" if kind == "cpu" else "")
            raise ValueError(f"devices={count} but JAX sees {len(present)} {kind} "
                             f"device(s){hint}")
        return list(present[:count])
    try:
        chosen = list(devices)
    except TypeError:
        raise ValueError(f"devices={devices!r}: expected an int, a list of JAX devices, "
                         "'all' or None") from None
    if not chosen:
        raise ValueError("devices=[]: need at least one device")
    if not all(isinstance(d, jax.Device) for d in chosen):
        raise ValueError(f"devices={devices!r}: the list must hold JAX devices "
                         "(from jax.devices())")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"devices={devices!r}: a device is listed twice")
    return chosen


class ShardedFunction(ShapeSpecializedFunction):
    """A :class:`ShapeSpecializedFunction` run data-parallel over several JAX devices.

    A one-axis :class:`jax.sharding.Mesh` named ``'batch'`` spans ``devices``. Each call
    splits the batch inputs along their first axis over it
    (``NamedSharding(mesh, P('batch'))``, equal consecutive slices in device order) and
    keeps every other input and every shared variable replicated (``P()``) on all the
    devices, where the shared values stay between calls. The graph jit'ed is the one a
    single device runs, for the global shapes: XLA's partitioner (GSPMD) computes the
    per-device slices and inserts the all-reduces of gradients and sums, so the results are
    a one-device run's with the same global batch, up to the order of float additions.

    With several JAX processes (:func:`initialize_distributed`), each process passes its own
    consecutive slice of the global batch (the same size on every process); the global
    batch is the processes' slices in process order, the outputs are replicated and every
    process receives them whole.

    Parameters
    ----------
    inputs, outputs, updates, mode, precision, **kwargs
        As for :class:`ShapeSpecializedFunction`.
    devices : list of jax.Device
    batch_inputs : list of Variable, optional
        The inputs split along axis 0 (default: every input of rank ≥ 1).
    """

    def __init__(self, inputs, outputs, updates=None, mode="JAX", precision="float32",
                 devices=None, batch_inputs=None, **kwargs):
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        super().__init__(inputs, outputs, updates=updates, mode=mode, precision=precision,
                         **kwargs)
        self.devices = list(devices)
        self.mesh = Mesh(np.array(self.devices, dtype=object), ("batch",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.batch_sharding = NamedSharding(self.mesh, PartitionSpec("batch"))
        self.multi_process = jax.process_count() > 1
        if batch_inputs is None:
            batch_inputs = [var for var in self.inputs if getattr(var, "ndim", 0) >= 1]
        batch = []
        for var in batch_inputs:
            matches = [i for i, inp in enumerate(self.inputs) if inp is var]
            if not matches:
                raise ValueError(f"batch input {var} is not one of the function's inputs")
            if getattr(var, "ndim", 0) < 1:
                raise ValueError(f"batch input {var} has no axis to split (rank 0)")
            batch.extend(matches)
        self.batch_indices = frozenset(batch)
        local = [d for d in self.devices if d.process_index == jax.process_index()]
        if self.multi_process and not local:
            raise ValueError(f"process {jax.process_index()} has none of the devices "
                             f"{self.devices}; every process needs at least one")
        self.local_count = len(local)
        self._allow_downcast = kwargs.get("allow_input_downcast")

    def _jax_mode(self):
        return _sharding_jax_mode(self.replicated, replicate_outputs=self.multi_process)

    def _prepare(self, args):
        import jax

        if len(args) != len(self.inputs):
            raise TypeError(f"the function takes {len(self.inputs)} inputs, "
                            f"{len(args)} given")
        shapes, placed = [], []
        for index, (var, arg) in enumerate(zip(self.inputs, args)):
            value = var.type.filter(np.asarray(arg) if isinstance(arg, jax.Array) else arg,
                                    allow_downcast=self._allow_downcast)
            if index not in self.batch_indices:
                shapes.append(np.shape(value))
                placed.append(self._put(value, self.replicated))
                continue
            rows = value.shape[0]
            split = self.local_count if self.multi_process else len(self.devices)
            if rows % split:
                where = (f"this process's slice of input {var} has {rows} rows"
                         if self.multi_process else f"input {var} has a batch of {rows}")
                raise ValueError(
                    f"{where}, not divisible by the {split} devices it is split over "
                    "(a data-parallel step needs equal slices: choose a batch size that "
                    f"is a multiple of {split})")
            if self.multi_process:
                global_shape = (rows * jax.process_count(),) + value.shape[1:]
                placed.append(jax.make_array_from_process_local_data(
                    self.batch_sharding, value, global_shape))
            else:
                global_shape = value.shape
                placed.append(jax.device_put(value, self.batch_sharding))
            shapes.append(global_shape)
        return tuple(shapes), placed

    def _put(self, value, sharding):
        import jax

        if self.multi_process:
            return jax.make_array_from_process_local_data(sharding, np.asarray(value))
        return jax.device_put(value, sharding)

    def _place_shared(self, cells):
        import jax

        for cell in cells:
            value = cell[0]
            if isinstance(value, dict):  # a random generator's state, as JAX holds it
                # every leaf (Python and NumPy scalars too) on the mesh before the first
                # call, as the state the step returns is: else the second call retraces
                cell[0] = jax.tree_util.tree_map(self._replicate_leaf, value)
            else:
                cell[0] = self._replicate(value)

    def _replicate_leaf(self, leaf):
        import jax

        if isinstance(leaf, jax.Array):
            return self._replicate(leaf)
        if self.multi_process:
            return self._put(np.asarray(leaf), self.replicated)
        return jax.device_put(leaf, self.replicated)  # keeps Python scalars weakly typed

    def _replicate(self, value):
        """``value`` replicated on the mesh (arrays only; other values as they are)."""
        import jax

        replicated = self.replicated
        if isinstance(value, jax.Array):
            sharding = value.sharding
            if value.committed and (sharding == replicated
                                    or sharding.is_equivalent_to(replicated, value.ndim)):
                return value  # (a mesh of one device may name its one slice P('batch'))
            if self.multi_process:
                return self._put(np.asarray(value), replicated)
            return jax.device_put(value, replicated)
        if isinstance(value, np.ndarray):
            return self._put(value, replicated)
        return value

    def _compile(self, shapes):
        compiled = self._specialize(shapes)
        compiled.trust_input = True  # _prepare filters and places the inputs
        return compiled


def function(inputs, outputs=None, updates=None, device="cpu", mode=None, precision=None,
             devices=None, batch_inputs=None, **kwargs):
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
    devices : int, list of jax.Device or 'all', optional
        Run data-parallel over several devices of a JAX device (``'jax'`` or ``'gpu'``):
        an int ``N`` takes the first ``N`` of ``jax.devices()`` (of the GPUs for
        ``device='gpu'``), ``'all'`` all of them. ``None`` (the default) runs on one device.
        See :class:`ShardedFunction`.
    batch_inputs : list of Variable, optional
        With ``devices``: the inputs whose first axis is the batch, split over the devices
        (default: every input of rank ≥ 1). Each must have a multiple of the number of
        devices rows; a label vector flattened batch-major, ``(B·H·W,)``, splits at image
        boundaries when ``B`` does.
    **kwargs
        Passed to :func:`pytensor.function`.

    Returns
    -------
    HostFunction, ShapeSpecializedFunction or ShardedFunction
        Called like the tutorial's Theano functions: a :class:`HostFunction` wrapping
        PyTensor's function on the CPU, a :class:`ShapeSpecializedFunction` on JAX, a
        :class:`ShardedFunction` on several JAX devices.

    Raises
    ------
    ValueError
        For an unknown device or precision, a reduced precision on the C backend,
        ``devices`` on the C backend or more devices than JAX sees.
    """
    if devices is not None and device == "cpu" and mode is None:
        raise ValueError("devices= needs a JAX device: device='jax' or 'gpu' (the C "
                         "backend, device='cpu', runs on one CPU)")
    if batch_inputs is not None and devices is None:
        raise ValueError("batch_inputs= applies only with devices=")
    if mode is None:
        mode = mode_for_device(device)
    outputs, updates = _merge_aliased_shared(outputs, updates)
    if mode == "JAX":
        precision = _default_precision if precision is None else precision
        if devices is not None:
            return ShardedFunction(inputs, outputs, updates=updates, mode=mode,
                                   precision=precision,
                                   devices=_resolve_devices(devices, device),
                                   batch_inputs=batch_inputs, **kwargs)
        return ShapeSpecializedFunction(inputs, outputs, updates=updates, mode=mode,
                                        precision=precision, **kwargs)
    if devices is not None:
        raise ValueError(f"devices= needs the JAX backend; mode={mode!r} is not 'JAX'")
    if precision not in (None, "float32"):
        _check_precision(precision)
        raise ValueError(f"precision={precision!r} needs a JAX device ('jax' or 'gpu'); "
                         f"the C backend ({mode}) computes in float32")
    return HostFunction(pytensor.function(inputs, outputs, updates=updates, mode=mode,
                                          **kwargs))


def initialize_distributed(coordinator, num_processes, process_id, timeout_s=60,
                           local_device_ids=None):
    """Join a multi-process JAX run (``jax.distributed.initialize``); call before any JAX
    computation, in every process.

    Afterwards ``jax.devices()`` lists the devices of all processes, and a
    :func:`function` compiled with ``devices=`` spanning them takes each process's slice of
    the batch. Only the process for which :func:`is_writer` is true should write files.

    Parameters
    ----------
    coordinator : str
        ``host:port`` of process 0, which runs the coordination service there.
    num_processes : int
    process_id : int
        This process's rank, ``0 <= process_id < num_processes``.
    timeout_s : float, default 60
        How long to wait for the coordinator (and, on process 0, for every process).
    local_device_ids : int or list of int, optional
        The local devices this process uses (default: all of them).

    Raises
    ------
    ValueError
        For a malformed address, count or rank.
    RuntimeError
        On a process other than 0, when nothing answers at ``coordinator`` within
        ``timeout_s``.

    Notes
    -----
    When the coordinator answers but not every process joins within ``timeout_s``, JAX
    itself ends the waiting processes (``DEADLINE_EXCEEDED`` on stderr, exit status 134):
    it raises no Python exception there, so the run stops, but without this function's
    message. A process that already joined is ended the same way when another dies
    (after JAX's heartbeat timeout).
    """
    host, _, port = str(coordinator).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordinator={coordinator!r}: expected 'host:port'")
    if int(num_processes) < 1:
        raise ValueError(f"num_processes={num_processes}: need at least 1")
    if not 0 <= int(process_id) < int(num_processes):
        raise ValueError(f"process_id={process_id}: expected 0 <= process_id < "
                         f"{num_processes}")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s={timeout_s}: must be positive")
    deadline = time.monotonic() + timeout_s
    if int(process_id) != 0:
        # JAX aborts the process (no Python exception) when the coordinator never answers:
        # find out first, within the time allowed
        _wait_for_coordinator(host.strip("[]"), int(port), deadline, coordinator,
                              process_id, num_processes, timeout_s)
    import jax

    remaining = max(1, int(np.ceil(deadline - time.monotonic())))
    jax.distributed.initialize(
        coordinator_address=str(coordinator), num_processes=int(num_processes),
        process_id=int(process_id), local_device_ids=local_device_ids,
        initialization_timeout=remaining)


def _wait_for_coordinator(host, port, deadline, coordinator, process_id, num_processes,
                          timeout_s):
    """Return once a TCP connection to ``host:port`` succeeds; RuntimeError at
    ``deadline``."""
    error = None
    while True:
        try:
            with socket.create_connection((host, port),
                                          timeout=max(0.1, deadline - time.monotonic())):
                return
        except OSError as failure:
            error = failure
        if time.monotonic() + 0.2 >= deadline:
            break
        time.sleep(0.2)
    raise RuntimeError(
        f"process {process_id} of {num_processes}: the coordinator {coordinator} did not "
        f"answer within {timeout_s} s ({error}); start process 0 there first, with the "
        "same num_processes, and check the address and port")


def process_index():
    """This process's rank in a multi-process JAX run (0 without one, and before JAX is
    imported)."""
    jax = sys.modules.get("jax")
    return 0 if jax is None else int(jax.process_index())


def is_writer():
    """Whether this process writes files: process 0 only (always true in a one-process
    run)."""
    return process_index() == 0
