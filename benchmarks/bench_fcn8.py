"""FCN-8 speed and memory: this package against an independent PyTorch FCN-8, same weights.

Usage::

    python benchmarks/bench_fcn8.py                 # CPU: the full table (tens of minutes)
    python benchmarks/bench_fcn8.py --quick         # 224x224 only, a few minutes
    python benchmarks/bench_fcn8.py --device gpu    # JAX on CUDA against torch on CUDA
    python benchmarks/bench_fcn8.py --modes train --train-batches 2 --sizes 224

Cases are ``forward`` (the deterministic forward pass to the tutorial's
``probs_dimshuffle``) and ``train`` (one training step: the tutorial's clipped, void-masked
cross-entropy with dropout on, its gradient and an Adam update of all 42 parameters), for each
batch size and image size asked for. Each side of each case runs in a subprocess of its own
for compile time, memory and the check, so that its memory peak is clean and one side's
buffers never count against the other:

* **ours**: ``fcn8_lasagne.models.buildFCN8`` compiled with
  ``fcn8_lasagne.compile.function(device=...)`` (``--device cpu``: the C backend;
  ``jax``: JAX on its default device; ``gpu``: JAX on a GPU) and ``fcn8_lasagne.updates.adam``;
* **torch**: ``benchmarks/torch_fcn8.TorchFCN8`` (eager, ``inference_mode`` for the forward
  pass, ``torch.optim.Adam`` for training; on CUDA with ``--device gpu``).

Both load the same He-scaled random weights (generated from ``--seed`` in each process) and
the same images and labels. Before a case's timings are reported, the two sides' first
results are compared: the forward probabilities (max absolute difference), and for training
the deterministic loss at the initial weights (the timed steps use dropout, whose masks
differ between the libraries).

The timings come from a third subprocess that holds both sides and times their calls taking
turns (``--timing paired``, the default on the CPU): on a shared machine the load drifts over
minutes, pairs of calls see the same load, and the reported ratio is the median of the
per-pair ratios. On a GPU, or when both sides would not fit in memory together, each side is
timed in its own process (``--timing separate``).

``--timing in-process`` (the default with ``--device gpu``) runs every case in this one
process, both sides taking turns: no process starts, imports or CUDA/XLA initialisations per
case, which keeps a whole GPU table within minutes. Compile times and the check are measured
as above. Device memory: PyTorch's peak allocation during the timed calls (reset after the
first call, whose cuDNN benchmarking tries large workspaces); for ours XLA's memory analysis
of the compiled call (arguments, outputs and temporaries), since JAX's own peak cannot be
reset and counts the autotuner's trial workspaces.

Reported per case and side: the median of the timed calls (after one warm-up call) and the
ratio of the fastest calls, compile time (``function()`` plus the first call's excess over the
median; for PyTorch only that excess), the peak resident memory after the model is built and
loaded (``VmHWM`` reset at that point, so initialisation temporaries do not count) and on a
GPU the device's peak.
Cases whose predicted peak exceeds ``--max-memory-gb`` are skipped, with the prediction shown:
predictions scale the working memory measured at a smaller batch of the same case, or use a
rough count of activation bytes when nothing smaller was measured.

Throughput: each case's GFLOP counted as direct convolutions (``benchmarks/_flops.py``:
``2 B F C kh kw Hout Wout`` per convolution, three times per layer for a training step but
``conv1_1``'s input gradient) over each side's fastest call, beside the best GFLOP/s of a
3072x3072 ``sgemm`` through the BLAS our convolutions call, measured in the same process
after every pair of paired calls (on the CPU), and as percentages of it.

Last, one tutorial epoch is estimated from the measured steps — 547 training crops of
224x224 at batch 10 and 183 validation images of 288x384 at batch 1 — against the ~56 s per
epoch the tutorial reports on a Titan X.

The machine may be shared: the medians move with other load, so compare ratios from the
same run (``--rounds`` repeats the list) and repeat a run before trusting a small difference.
"""

import argparse
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy as np

BENCHMARK_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARK_DIR)
from _flops import fcn8_flops, sgemm_gflops, simd_level, SGEMM_SIZE  # noqa: E402
#: Marks the worker's result line on its standard output.
RESULT_MARKER = "BENCH_FCN8_RESULT "
VOID_LABEL = 2
LEARNING_RATE = 1e-4
#: The tutorial's epoch: Polyps912 training crops at batch 10, validation images at batch 1.
TRAINING_IMAGES, TRAINING_BATCH, TRAINING_SIZE = 547, 10, (224, 224)
VALIDATION_IMAGES, VALIDATION_SIZE = 183, (288, 384)
#: Seconds per epoch the tutorial reports (Titan X, ~3.5 h for 221 epochs).
PUBLISHED_EPOCH_SECONDS = 56.0
#: Largest forward difference accepted between the two sides' probabilities.
OUTPUT_TOLERANCE = 1e-4
#: Largest relative difference accepted between the two sides' deterministic losses.
LOSS_TOLERANCE = 1e-4
#: Both, when products round their inputs to TensorFloat-32 (10 mantissa bits).
TF32_TOLERANCE = 5e-3
#: Pause before each call of paired timing, so that the other side's threads go idle.
PAIR_PAUSE_SECONDS = 0.2
GIB = 1024 ** 3


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``mode`` ('forward' or 'train'), batch size and image size."""

    mode: str
    batch: int
    height: int
    width: int

    @property
    def label(self):
        return f"{self.mode} b{self.batch} {self.height}x{self.width}"


# ---------------------------------------------------------------------------------------
# data shared by both sides


def he_scaled_params(shapes, seed):
    """Float32 weights with He scaling (normal, std sqrt(2 / fan_in)) and small biases.

    Glorot's initialisation shrinks FCN-8's activations until the probabilities are nearly
    uniform, which would make the output comparison meaningless; these keep every layer
    alive. Drawn directly in float32 so that no float64 temporaries inflate the memory.
    """
    rng = np.random.default_rng(seed)
    values = []
    for shape in shapes:
        value = rng.standard_normal(shape, dtype=np.float32)
        if len(shape) == 1:
            value *= np.float32(0.1)
        else:
            value *= np.float32(np.sqrt(2.0 / np.prod(shape[1:])))
        values.append(value)
    return values


def images_and_labels(case, n_classes, seed):
    """Images uniform in [0, 1) and labels in 0 … n_classes (the last one void)."""
    rng = np.random.default_rng(seed + 1)
    images = rng.random((case.batch, 3, case.height, case.width), dtype=np.float32)
    labels = rng.integers(0, n_classes + 1, size=case.batch * case.height * case.width)
    return images, labels.astype(np.int32)


def fcn8_activation_elements(batch, height, width):
    """Elements of every convolution and pooling output of FCN-8's VGG body and fc layers.

    Used only to predict memory when no smaller case has been measured.
    """
    total = 0
    height, width = height + 198, width + 198  # conv1_1: pad 100, kernel 3
    for filters, count in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        total += count * filters * height * width
        height, width = height // 2, width // 2
        total += filters * height * width
    fc_height, fc_width = max(height - 6, 1), max(width - 6, 1)
    total += 2 * 4096 * fc_height * fc_width
    return batch * total


# ---------------------------------------------------------------------------------------
# memory of this process


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def resident_bytes():
    """Current resident set size (``VmRSS``)."""
    return _status_kib("VmRSS") * 1024


def peak_resident_bytes():
    """Peak resident set size since the last :func:`reset_peak` (``VmHWM``)."""
    return _status_kib("VmHWM") * 1024


def reset_peak():
    """Reset ``VmHWM`` to the current size (Linux ≥ 4.0); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def available_memory_bytes():
    """``MemAvailable`` of ``/proc/meminfo``."""
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return None


# ---------------------------------------------------------------------------------------
# workers: one side of one case in its own process, or both sides taking turns


@dataclass
class PreparedSide:
    """A side ready to be timed: ``call()`` runs one forward pass or training step.

    ``first`` is the first call's result (the probabilities, or the loss) and ``result`` the
    measurements so far (import, build, compile and first-call times, the check loss, the
    resident memory before compilation).
    """

    call: object
    first: object
    result: dict
    profile: object = None


def _timed_calls(call, repeat, budget_seconds, minimum=3):
    """Times of up to ``repeat`` calls (at least ``minimum``), stopping after the budget."""
    times = []
    while len(times) < repeat:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if len(times) >= minimum and sum(times) > budget_seconds:
            break
    return times


def _jax_blocker(device):
    """A function that waits for JAX's asynchronous results (a no-op for the C backend)."""
    if device == "cpu":
        return lambda values: values
    import jax

    return jax.block_until_ready


def prepare_ours(case, options):
    """Build and compile FCN-8 with this package and make its first call."""
    start = time.perf_counter()
    import pytensor.tensor as pt

    from fcn8_lasagne import layers
    from fcn8_lasagne.compile import function
    from fcn8_lasagne.metrics import crossentropy_metric
    from fcn8_lasagne.models import buildFCN8
    from fcn8_lasagne.updates import adam

    import_seconds = time.perf_counter() - start
    if options.device != "cpu":
        from fcn8_lasagne.compile import set_matmul_precision

        set_matmul_precision(options.precision)
    block = _jax_blocker(options.device)
    np.random.seed(options.seed)
    start = time.perf_counter()
    input_var, target_var = pt.tensor4("input_var"), pt.ivector("target_var")
    net = buildFCN8(3, input_var, n_classes=options.n_classes, trainable=True)
    params = layers.get_all_params(net["probs"], trainable=True)
    build_seconds = time.perf_counter() - start
    for param, value in zip(params, he_scaled_params([p.get_value().shape for p in params],
                                                      options.seed)):
        param.set_value(value)
    images, labels = images_and_labels(case, options.n_classes, options.seed)
    result = {"import_s": import_seconds, "build_s": build_seconds}

    if case.mode == "train":
        # the check first: the deterministic loss at the initial weights
        start = time.perf_counter()
        check_loss = crossentropy_metric(
            layers.get_output(net["probs"], deterministic=True), target_var, [VOID_LABEL])
        check_fn = function([input_var, target_var], check_loss, device=options.device)
        result["check_loss"] = float(np.asarray(check_fn(images, labels)))
        result["check_s"] = time.perf_counter() - start
        del check_fn
    start = time.perf_counter()
    if case.mode == "forward":
        output = layers.get_output(net["probs_dimshuffle"], deterministic=True)
        inputs, arguments, step_updates = [input_var], (images,), None
    else:
        output = crossentropy_metric(layers.get_output(net["probs"]), target_var, [VOID_LABEL])
        step_updates = adam(output, params, learning_rate=LEARNING_RATE)
        inputs, arguments = [input_var, target_var], (images, labels)
    result["graph_s"] = time.perf_counter() - start
    updated = [] if step_updates is None else list(step_updates)
    gc.collect()
    result["base_bytes"] = resident_bytes()
    result["peak_reset"] = reset_peak()

    start = time.perf_counter()
    profile = {"profile": True} if options.profile else {}
    compiled = function(inputs, output, updates=step_updates, device=options.device, **profile)
    result["function_s"] = time.perf_counter() - start

    def call():
        value = compiled(*arguments)
        block([value] + [variable.get_value(borrow=True) for variable in updated])
        return value

    start = time.perf_counter()
    first = call()
    result["first_call_s"] = time.perf_counter() - start
    first = np.asarray(first) if case.mode == "forward" else float(np.asarray(first))
    if options.device != "cpu":
        try:
            result["xla_call_bytes"] = _xla_call_bytes(compiled, arguments)
        except Exception as error:  # PyTensor internals: report, do not stop the benchmark
            result["xla_call_bytes_error"] = f"{type(error).__name__}: {error}"[:200]
    return PreparedSide(call, first, result, getattr(compiled, "profile", None))


def _xla_call_bytes(compiled, arguments):
    """XLA's account of one call's device memory: arguments + outputs + temporaries - aliases.

    JAX's ``peak_bytes_in_use`` cannot be reset and counts the scratch space that XLA's
    autotuner tries at compile time (tens of GB on an H100), so it says little about a call.
    This compiles the function's XLA program once more (same shapes, same precision) and
    reads its memory analysis: the weights, optimiser state, inputs, outputs and the largest
    set of live temporaries.
    """
    import jax

    from fcn8_lasagne.compile import PRECISIONS

    (specialised,) = compiled._compiled.values()
    thunk = specialised.vm  # PyTensor's JAX thunk: the jitted function and its input cells
    user_values = iter(arguments)
    values = [cell[0] if cell[0] is not None else next(user_values) for cell in thunk.inputs]
    with jax.default_matmul_precision(PRECISIONS[compiled.precision]):
        stats = thunk.jit_fn.lower(*values).compile().memory_analysis()
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes
            + stats.temp_size_in_bytes - stats.alias_size_in_bytes)


def _jax_device_memory(result):
    """Ours' device memory: XLA's account of a call, else JAX's peak since process start."""
    import jax

    device = jax.devices()[0]
    memory = {"jax_device": str(device)}
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        memory["jax_peak_since_start_bytes"] = stats["peak_bytes_in_use"]
    if "xla_call_bytes" in result:
        memory["device_peak_bytes"] = result["xla_call_bytes"]
        memory["device_peak_note"] = "XLA memory analysis of one call"
    elif "jax_peak_since_start_bytes" in memory:
        memory["device_peak_bytes"] = memory["jax_peak_since_start_bytes"]
        memory["device_peak_note"] = "JAX peak since process start (autotuning included)"
    return memory


def prepare_torch(case, options):
    """Build the PyTorch FCN-8, load the weights and make its first call (None: no CUDA)."""
    start = time.perf_counter()
    import torch

    sys.path.insert(0, BENCHMARK_DIR)
    from torch_fcn8 import TorchFCN8, lasagne_param_shapes, load_lasagne_params, tutorial_loss

    import_seconds = time.perf_counter() - start
    on_gpu = options.device == "gpu"
    if on_gpu and not torch.cuda.is_available():
        return None
    device = torch.device("cuda" if on_gpu else "cpu")
    # PyTorch lets cuDNN convolutions use TF32 by default; match the requested precision
    torch.backends.cuda.matmul.allow_tf32 = options.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = options.precision == "tf32"
    # let cuDNN time its algorithms for these shapes (in the first call), as XLA autotunes
    torch.backends.cudnn.benchmark = on_gpu
    synchronize = torch.cuda.synchronize if on_gpu else (lambda: None)
    torch.manual_seed(options.seed)
    start = time.perf_counter()
    model = TorchFCN8(n_classes=options.n_classes)
    build_seconds = time.perf_counter() - start
    load_lasagne_params(model, he_scaled_params(lasagne_param_shapes(model), options.seed))
    model.to(device)
    images, labels = images_and_labels(case, options.n_classes, options.seed)
    images, labels = torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device)
    result = {"import_s": import_seconds, "build_s": build_seconds, "graph_s": 0.0,
              "function_s": 0.0, "threads": torch.get_num_threads()}

    if case.mode == "forward":
        model.eval()

        def call():
            with torch.inference_mode():
                value = model(images)
            synchronize()
            return value
    else:
        model.eval()
        with torch.no_grad():
            result["check_loss"] = float(
                tutorial_loss(model.pixel_probabilities(images), labels, VOID_LABEL))
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)

        def call():
            optimizer.zero_grad(set_to_none=True)
            loss = tutorial_loss(model.pixel_probabilities(images), labels, VOID_LABEL)
            loss.backward()
            optimizer.step()
            synchronize()
            return loss.detach()

    gc.collect()
    result["base_bytes"] = resident_bytes()
    result["peak_reset"] = reset_peak()
    start = time.perf_counter()
    first = call()
    result["first_call_s"] = time.perf_counter() - start
    if on_gpu:
        # the first call's cuDNN benchmarking tries algorithms with large workspaces: the
        # peak that counts is that of the timed calls
        torch.cuda.reset_peak_memory_stats()
    first = first.cpu().numpy() if case.mode == "forward" else float(first)
    return PreparedSide(call, first, result)


PREPARE = {"ours": prepare_ours, "torch": prepare_torch}


def _finish(result):
    """Median and compile time (``function()`` plus the first call's excess) of a side."""
    result["median_s"] = statistics.median(result["times"])
    excess = max(result["first_call_s"] - result["median_s"], 0.0)
    result["compile_s"] = result["function_s"] + excess
    return result


def run_alone(side, case, options):
    """One side in this process: compile, memory and (unless paired) the timed calls."""
    prepared = PREPARE[side](case, options)
    if prepared is None:
        return {"unavailable": "torch has no CUDA device"}
    result = prepared.result
    if case.mode == "forward":
        np.save(os.path.join(options.output_dir, f"{side}.npy"), prepared.first)
    else:
        result["first_loss"] = prepared.first
    result["times"] = _timed_calls(prepared.call, options.repeat, options.budget)
    result["peak_bytes"] = peak_resident_bytes()
    if options.device == "cpu":  # the throughput reference, right after the timed calls
        result["sgemm_gflops"] = sgemm_gflops(repeat=3)
    if side == "ours" and options.device != "cpu":
        result.update(_jax_device_memory(result))
    if side == "torch" and options.device == "gpu":
        import torch

        result["device_peak_bytes"] = torch.cuda.max_memory_allocated()
    if prepared.profile is not None:
        os.makedirs(options.profile, exist_ok=True)
        name = f"{case.mode}_b{case.batch}_{case.height}x{case.width}_{options.device}.txt"
        with open(os.path.join(options.profile, name), "w") as summary:
            prepared.profile.summary(file=summary)
    return _finish(result)


def run_paired(case, options):
    """Both sides in this process, calls taking turns: timings that share the same load.

    On a shared machine the load drifts over minutes; alternating single calls (the first
    side alternating too, with a short pause between calls so that idle worker threads stop
    spinning) exposes both sides to the same conditions, and the median of the per-pair
    ratios is then the robust comparison.
    """
    sides = {side: PREPARE[side](case, options) for side in ("torch", "ours")}
    if sides["torch"] is None:
        return {"unavailable": "torch has no CUDA device"}
    times = _alternate_calls(sides, options)
    return {"ours_times": times["ours"], "torch_times": times["torch"],
            "pair_ratios": _pair_ratios(times), "sgemm_gflops": times.get("sgemm")}


def run_case_in_process(case, options):
    """Both sides of ``case`` in this process: compile, check and paired timings."""
    row = {"case": asdict(case), "label": case.label, "timing": "in-process",
           "gflop": case_gflop(case, options)}
    sides = {}
    for side in ("torch", "ours"):
        try:
            sides[side] = PREPARE[side](case, options)
        except Exception as error:  # report the failure in the table and go on
            sides[side] = None
            row[side] = {"error": f"{type(error).__name__}: {error}"[:300]}
        else:
            if sides[side] is None:
                row[side] = {"unavailable": "torch has no CUDA device"}
    if all(sides.values()):
        row["check"] = check_first_results(
            case, options, [sides[side].first for side in ("ours", "torch")],
            [sides[side].result for side in ("ours", "torch")])
        turns = _alternate_calls(sides, options)
        for side in ("ours", "torch"):
            result = sides[side].result
            result["times"] = turns[side]
            if case.mode == "train":
                result["first_loss"] = sides[side].first
            row[side] = _finish(result)
        row["pair_ratios"] = _pair_ratios(turns)
        if turns.get("sgemm"):
            row["sgemm_gflops"] = max(turns["sgemm"])
        if options.device != "cpu":
            row["ours"].update(_jax_device_memory(row["ours"]))
        if options.device == "gpu":
            import torch

            row["torch"]["device_peak_bytes"] = torch.cuda.max_memory_allocated()
    del sides
    gc.collect()
    _add_ratios(row)
    return row


def _pair_ratios(times):
    """Ours / torch for each pair of alternated calls."""
    return [ours / theirs for ours, theirs in zip(times["ours"], times["torch"])]


def _alternate_calls(sides, options):
    """Times of the two sides' calls taking turns (the first side alternating too).

    On the CPU each pair is followed by one ``sgemm`` of the throughput reference
    (``_flops.sgemm_gflops``), so that its best shares the pairs' load: ``times['sgemm']``
    holds those GFLOP/s.
    """
    times = {"ours": [], "torch": []}
    if options.device == "cpu":
        times["sgemm"] = [sgemm_gflops(repeat=1)]
    spent = 0.0
    for index in range(options.repeat):
        order = ("ours", "torch") if index % 2 == 0 else ("torch", "ours")
        for side in order:
            if options.device == "cpu":
                time.sleep(PAIR_PAUSE_SECONDS)
            start = time.perf_counter()
            sides[side].call()
            times[side].append(time.perf_counter() - start)
            spent += times[side][-1]
        if options.device == "cpu":
            times["sgemm"].append(sgemm_gflops(repeat=1))
        if index + 1 >= 3 and spent > 2 * options.budget:
            break
    return times


def worker_main(options):
    """Entry point of a worker process: print one result line."""
    case = Case(options.mode, options.batch, options.height, options.width)
    if options.worker == "paired":
        result = run_paired(case, options)
    else:
        result = run_alone(options.worker, case, options)
    print(RESULT_MARKER + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------
# the parent: cases, subprocesses, checks, table


def run_side(side, case, options, output_dir, repeat=None):
    """Run ``side`` ('ours', 'torch' or 'paired') of ``case`` in a subprocess.

    Returns its result dict, or one with an ``error``.
    """
    repeat = options.repeat if repeat is None else repeat
    command = [sys.executable, os.path.abspath(__file__), "--worker", side,
               "--mode", case.mode, "--batch", str(case.batch), "--height", str(case.height),
               "--width", str(case.width), "--device", options.device,
               "--repeat", str(repeat), "--budget", str(options.budget),
               "--n-classes", str(options.n_classes), "--seed", str(options.seed),
               "--precision", options.precision,
               # the profiler only in ours' own process: it would slow the paired calls
               *(["--profile", os.path.abspath(options.profile)]
                 if options.profile and side == "ours" else []),
               "--output-dir", output_dir]
    start = time.perf_counter()
    try:
        finished = subprocess.run(command, capture_output=True, text=True,
                                  timeout=options.worker_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {options.worker_timeout} s"}
    wall = time.perf_counter() - start
    for line in finished.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
            result["process_wall_s"] = wall
            return result
    tail = (finished.stderr or finished.stdout).strip().splitlines()[-5:]
    return {"error": f"exit status {finished.returncode}: " + " / ".join(tail)}


def build_cases(options):
    """The cases to run, smallest first within each mode and size (for memory predictions)."""
    forward_sizes = [_parse_size(size) for size in options.forward_sizes or options.sizes]
    train_sizes = [_parse_size(size) for size in options.train_sizes or options.sizes]
    cases = []
    if "forward" in options.modes:
        cases += [Case("forward", batch, *size) for size in forward_sizes
                  for batch in sorted(options.forward_batches)]
        if options.epoch:
            validation = Case("forward", 1, *VALIDATION_SIZE)
            if validation not in cases:
                cases.append(validation)
    if "train" in options.modes:
        cases += [Case("train", batch, *size) for size in train_sizes
                  for batch in sorted(options.train_batches)]
    return cases


def _parse_size(text):
    parts = str(text).lower().split("x")
    return (int(parts[0]), int(parts[-1]))


def predict_peak(case, side, measured):
    """Predicted peak resident bytes of one side of ``case``, and how it was predicted."""
    same = [(other, result) for other, result in measured.items()
            if other[1] == side and other[0].mode == case.mode
            and (other[0].height, other[0].width) == (case.height, case.width)
            and "peak_bytes" in result]
    if same:
        (smaller, _), result = max(same, key=lambda item: item[0][0].batch)
        per_image = (result["peak_bytes"] - result["base_bytes"]) / smaller.batch
        return result["base_bytes"] + per_image * case.batch, f"scaled from b{smaller.batch}"
    n_params = 134.3e6
    # weights (+ gradients and two Adam moments when training), 1 GiB of libraries, and a
    # rough count of activation copies: 2 for inference, 6 for a training step
    weights = 4 * n_params * (4 if case.mode == "train" else 1)
    copies = 6 if case.mode == "train" else 2
    activations = 4 * copies * fcn8_activation_elements(case.batch, case.height, case.width)
    return GIB + weights + activations, "rough count"


def _tolerance(case, options):
    """The largest difference of the two sides' first results that counts as agreement."""
    if options.precision == "tf32":
        return TF32_TOLERANCE
    return OUTPUT_TOLERANCE if case.mode == "forward" else LOSS_TOLERANCE


def check_first_results(case, options, outputs, results):
    """Compare the two sides' first results: ``{'difference', 'what', 'agree'}``.

    ``outputs`` are the (ours, torch) forward outputs (used in forward mode), ``results``
    the sides' result dicts (their ``check_loss`` in training mode).
    """
    if case.mode == "forward":
        ours_output, torch_output = outputs
        if ours_output.shape != torch_output.shape:
            difference = float("inf")
            what = f"shapes {ours_output.shape} vs {torch_output.shape}"
        else:
            difference = float(np.abs(ours_output.astype(np.float64) - torch_output).max())
            what = "max |probs difference|"
    else:
        ours_loss, torch_loss = (result["check_loss"] for result in results)
        difference = abs(ours_loss - torch_loss) / abs(torch_loss)
        what = "relative loss difference"
    return {"difference": difference, "what": what,
            "agree": bool(difference <= _tolerance(case, options))}


def run_case(case, options, measured, order=("torch", "ours")):
    """Both sides of one case, in ``order``; a row of results for the table."""
    row = {"case": asdict(case), "label": case.label, "gflop": case_gflop(case, options)}
    limit = options.max_memory_gb * GIB
    predictions = {side: predict_peak(case, side, measured)
                   for side in ("ours", "torch")}
    row["predicted_peak_gb"] = {side: round(value / GIB, 2)
                                for side, (value, _) in predictions.items()}
    if any(value > limit for value, _ in predictions.values()):
        row["skipped"] = (
            "predicted peak " + ", ".join(f"{side} {value / GIB:.1f} GB ({how})"
                                          for side, (value, how) in predictions.items())
            + f" exceeds --max-memory-gb {options.max_memory_gb:.1f}")
        return row
    # taking turns holds both sides in one process: only when both fit together
    paired = (options.timing == "paired"
              and sum(value for value, _ in predictions.values()) <= limit)
    row["timing"] = "paired" if paired else "separate"
    with tempfile.TemporaryDirectory(prefix="bench_fcn8_") as output_dir:
        # alone: compile time, memory and the outputs to check (and, unpaired, the timings)
        for side in order:
            alone_repeat = (3 if options.profile else 1) if paired else None
            result = run_side(side, case, options, output_dir, repeat=alone_repeat)
            row[side] = result
            measured[(case, side)] = result
        ours, theirs = row["ours"], row["torch"]
        if "times" in ours and "times" in theirs:
            outputs = ([np.load(os.path.join(output_dir, f"{side}.npy"))
                        for side in ("ours", "torch")] if case.mode == "forward" else None)
            row["check"] = check_first_results(case, options, outputs, (ours, theirs))
            if paired:
                turns = run_side("paired", case, options, output_dir)
                if "pair_ratios" in turns:
                    for side in ("ours", "torch"):
                        row[side]["alone_times"] = row[side]["times"]
                        row[side]["times"] = turns[f"{side}_times"]
                        row[side]["median_s"] = statistics.median(row[side]["times"])
                    row["pair_ratios"] = turns["pair_ratios"]
                    if turns.get("sgemm_gflops"):
                        row["sgemm_gflops"] = max(turns["sgemm_gflops"])
                else:
                    row["paired_error"] = turns.get("error") or turns.get("unavailable")
    if "sgemm_gflops" not in row:
        alone = [row[side].get("sgemm_gflops") for side in ("ours", "torch")
                 if isinstance(row.get(side), dict)]
        if any(alone):
            row["sgemm_gflops"] = max(value for value in alone if value)
    _add_ratios(row)
    return row


def case_gflop(case, options):
    """GFLOP of one call of ``case``, counted as direct convolutions (``_flops.py``)."""
    return fcn8_flops(case.batch, case.height, case.width, options.n_classes, case.mode) / 1e9


def _add_ratios(row):
    """Time ratios (median of per-pair ratios when paired), ratio of minima, peak ratio."""
    ours, theirs = row.get("ours", {}), row.get("torch", {})
    if "times" in ours and "times" in theirs:
        if row.get("pair_ratios"):
            row["time_ratio"] = statistics.median(row["pair_ratios"])
        else:
            row["time_ratio"] = ours["median_s"] / theirs["median_s"]
        row["min_ratio"] = min(ours["times"]) / min(theirs["times"])
        key = "peak_bytes" if "peak_bytes" in ours else "device_peak_bytes"
        if key in ours and key in theirs:
            row["peak_ratio"] = ours[key] / theirs[key]
    # throughput of the fastest calls, counted as direct convolutions
    for side, result in (("ours", ours), ("torch", theirs)):
        if "times" in result and row.get("gflop"):
            row[f"{side}_gflops"] = row["gflop"] / min(result["times"])
            if row.get("sgemm_gflops"):
                row[f"{side}_of_sgemm"] = row[f"{side}_gflops"] / row["sgemm_gflops"]


def merge_rounds(rounds):
    """One row from the same case's rows of several rounds.

    Each side's timed calls are pooled (median and minimum over all of them); compile time
    is the smallest of the rounds, peak memory the largest, and the check the worst.
    """
    row = {key: value for key, value in rounds[0].items()
           if key not in ("ours", "torch", "check", "pair_ratios")}
    if "skipped" in row:
        return row
    row["rounds"] = rounds
    for side in ("ours", "torch"):
        results = [one[side] for one in rounds if "times" in one.get(side, {})]
        if not results:
            row[side] = rounds[0][side]
            continue
        merged = dict(results[0])
        merged["times"] = [t for result in results for t in result["times"]]
        merged["median_s"] = statistics.median(merged["times"])
        merged["compile_s"] = min(result["compile_s"] for result in results)
        for key in ("peak_bytes", "device_peak_bytes"):
            if key in merged:
                merged[key] = max(result[key] for result in results)
        row[side] = merged
    sgemm = [one["sgemm_gflops"] for one in rounds if one.get("sgemm_gflops")]
    if sgemm:
        row["sgemm_gflops"] = max(sgemm)
    pair_ratios = [ratio for one in rounds for ratio in one.get("pair_ratios", [])]
    if pair_ratios:
        row["pair_ratios"] = pair_ratios
    checks = [one["check"] for one in rounds if "check" in one]
    if checks:
        row["check"] = max(checks, key=lambda check: check["difference"])
    _add_ratios(row)
    return row


def machine_description():
    """CPU model, cores, memory, library versions and thread settings."""
    description = {"date": datetime.date.today().isoformat(),
                   "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M"),
                   "python": platform.python_version(),
                   "platform": platform.platform(), "cores": os.cpu_count(),
                   "simd": simd_level()}
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                description["cpu"] = line.split(":", 1)[1].strip()
    except OSError:
        pass
    with open("/proc/meminfo") as meminfo:
        description["memory_gb"] = round(int(meminfo.readline().split()[1]) / 1024 ** 2, 1)
    versions = {}
    for package in ("numpy", "pytensor", "jax", "jaxlib", "torch"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    description["versions"] = versions
    try:
        from fcn8_lasagne.ops._blas import blas_info

        description["blas"] = blas_info()
    except (ImportError, AttributeError):
        pass
    description["environment"] = {name: os.environ[name] for name in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
        if name in os.environ}
    return description


def _gb(value):
    return "-" if value is None else f"{value / GIB:.2f}"


def _seconds(value):
    return "-" if value is None else f"{value:.3f}"


def print_table(rows, device):
    """The results as a Markdown table (one side's numbers still shown when the other failed)."""
    gpu = device == "gpu"
    memory_key = "device_peak_bytes" if gpu else "peak_bytes"
    header = ["case", "ours s", "torch s", "ratio", "ratio of minima", "ours compile s",
              "torch 1st-call s", "ours peak GB", "torch peak GB", "peak ratio", "check"]
    if gpu:
        header[7:9] = ["ours dev GB", "torch dev GB"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        if "skipped" in row:
            print(f"| {row['label']} | skipped: {row['skipped']} |" + " |" * (len(header) - 2))
            continue
        ours, theirs = row.get("ours", {}), row.get("torch", {})
        peaks = ours.get(memory_key), theirs.get(memory_key)
        check = row.get("check")
        if check is None:
            failures = [f"{side}: {result.get('error') or result.get('unavailable')}"
                        for side, result in (("ours", ours), ("torch", theirs))
                        if "times" not in result]
            check_cell = "; ".join(failures).replace("|", "/")  # keep the Markdown table
        else:
            check_cell = f"{'ok' if check['agree'] else 'DIFFER'} {check['difference']:.1e}"
        cells = [row["label"], _seconds(ours.get("median_s")), _seconds(theirs.get("median_s")),
                 f"{row['time_ratio']:.2f}" if "time_ratio" in row else "-",
                 f"{row['min_ratio']:.2f}" if "min_ratio" in row else "-",
                 f"{ours['compile_s']:.1f}" if "compile_s" in ours else "-",
                 f"{theirs['compile_s']:.1f}" if "compile_s" in theirs else "-",
                 _gb(peaks[0]), _gb(peaks[1]),
                 f"{peaks[0] / peaks[1]:.2f}" if all(peaks) else "-", check_cell]
        print("| " + " | ".join(cells) + " |")


def print_throughput(rows):
    """GFLOP/s of the fastest calls (direct-convolution count) beside the run's sgemm."""
    print(f"| case | GFLOP (direct conv.) | ours GFLOP/s | torch GFLOP/s | sgemm GFLOP/s "
          f"({SGEMM_SIZE}², best in run) | ours % of sgemm | torch % of sgemm | "
          "ours speed / torch's |")
    print("|" + "---|" * 8)
    for row in rows:
        if "ours_gflops" not in row and "torch_gflops" not in row:
            continue

        def cell(key, scale=1.0, form="{:.1f}"):
            return form.format(row[key] * scale) if key in row else "-"

        speed = (f"{row['ours_gflops'] / row['torch_gflops']:.2f}"
                 if "ours_gflops" in row and "torch_gflops" in row else "-")
        print(f"| {row['label']} | {row['gflop']:.1f} | {cell('ours_gflops')} | "
              f"{cell('torch_gflops')} | {cell('sgemm_gflops')} | "
              f"{cell('ours_of_sgemm', 100, '{:.0f}%')} | {cell('torch_of_sgemm', 100, '{:.0f}%')} "
              f"| {speed} |")


def epoch_estimate(rows):
    """Seconds of one tutorial epoch per side, from the measured (or scaled) cases.

    Returns
    -------
    dict
        Side → ``{'seconds', 'training_step'}`` for each side with the cases it needs.
    """
    estimate = {}
    for side in ("ours", "torch"):
        medians = {(row["case"]["mode"], row["case"]["batch"], row["case"]["height"],
                    row["case"]["width"]): row[side]["median_s"]
                   for row in rows if "median_s" in row.get(side, {})}
        validation = medians.get(("forward", 1) + VALIDATION_SIZE)
        training_batches = [key[1] for key in medians
                            if key[0] == "train" and key[2:] == TRAINING_SIZE]
        if validation is None or not training_batches:
            continue
        batch = TRAINING_BATCH if TRAINING_BATCH in training_batches else max(training_batches)
        step = medians[("train", batch) + TRAINING_SIZE] * TRAINING_BATCH / batch
        how = ("measured at batch 10" if batch == TRAINING_BATCH
               else f"batch {batch} scaled to 10")
        seconds = TRAINING_IMAGES / TRAINING_BATCH * step + VALIDATION_IMAGES * validation
        estimate[side] = {"seconds": seconds, "training_step": how}
    return estimate


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "jax", "gpu"), default="cpu",
                        help="ours: fcn8_lasagne.compile device; torch runs on CUDA for gpu")
    parser.add_argument("--modes", nargs="+", choices=("forward", "train"),
                        default=["forward", "train"])
    parser.add_argument("--sizes", nargs="+", default=["224", "500"],
                        help="image sizes: 224 or HxW (e.g. 288x384)")
    parser.add_argument("--forward-sizes", nargs="+", help="forward sizes (default --sizes)")
    parser.add_argument("--train-sizes", nargs="+", help="training sizes (default --sizes)")
    parser.add_argument("--forward-batches", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--train-batches", nargs="+", type=int, default=[1, 2, 10])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per case (max)")
    parser.add_argument("--timing", choices=("paired", "separate", "in-process"),
                        default=None,
                        help="paired (default on cpu/jax): both sides in one process taking "
                             "turns call by call, compile time and memory from one process "
                             "per side; separate: each side's own process; in-process "
                             "(default on gpu): every case in this process")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the whole case list this many times, alternating which "
                             "side goes first; timings are pooled (for a shared machine)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds of timed calls per side after which (and 3 calls) to stop")
    parser.add_argument("--precision", choices=("float32", "tf32"), default="float32",
                        help="GPU matmul/convolution precision on both sides (JAX and "
                             "PyTorch otherwise default to TF32 for some operations)")
    parser.add_argument("--n-classes", type=int, default=2, help="2: the polyp data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-epoch", dest="epoch", action="store_false",
                        help="skip the 288x384 validation case and the epoch estimate")
    parser.add_argument("--max-memory-gb", type=float, default=None,
                        help="skip cases predicted to exceed it (default 80%% of MemAvailable)")
    parser.add_argument("--worker-timeout", type=float, default=3600.0)
    parser.add_argument("--quick", action="store_true",
                        help="224x224 only: forward batch 1, train batch 2, 3 calls")
    parser.add_argument("--json", help="also write every measurement to this file")
    parser.add_argument("--profile", metavar="DIR",
                        help="compile ours with pytensor's profiler in its own process (not "
                             "in the paired timing) and write each case's per-op summary to "
                             "DIR (the C backend)")
    # worker-only arguments
    parser.add_argument("--worker", choices=("ours", "torch", "paired"), help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output-dir", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.quick:
        options.sizes, options.forward_batches, options.train_batches = ["224"], [1], [2]
        options.forward_sizes = options.train_sizes = None
        options.repeat = 3
    if options.timing is None:
        options.timing = "in-process" if options.device == "gpu" else "paired"
    if options.max_memory_gb is None:
        options.max_memory_gb = 0.8 * available_memory_bytes() / GIB
    return options


def main(argv=None):
    options = parse_arguments(argv)
    if options.worker:
        worker_main(options)
        return
    machine = machine_description()
    print(f"# FCN-8 benchmark, device {options.device}, {machine['date']} {machine['utc']} UTC")
    print(f"# {machine.get('cpu', '?')} ({machine.get('simd')}), {machine['cores']} cores, "
          f"{machine['memory_gb']} GB; "
          f"versions {machine['versions']}; memory limit {options.max_memory_gb:.1f} GB")
    print(f"# our BLAS {machine.get('blas')}; environment {machine['environment']}; "
          f"timing {options.timing}")
    cases = build_cases(options)
    by_case, measured = {case: [] for case in cases}, {}
    for round_index in range(options.rounds):
        # alternate which side runs first, so that slow drifts of the load even out
        order = ("torch", "ours") if round_index % 2 == 0 else ("ours", "torch")
        for case in cases:
            if by_case[case] and "skipped" in by_case[case][0]:
                continue
            if options.timing == "in-process":
                row = run_case_in_process(case, options)
            else:
                row = run_case(case, options, measured, order)
            by_case[case].append(row)
            prefix = f"# round {round_index + 1}, " if options.rounds > 1 else "# "
            print(f"{prefix}{case.label}: {_summary(row)}", flush=True)
            if options.json:  # after every case, so that an interrupted run keeps its results
                rows = [merge_rounds(done) for done in by_case.values() if done]
                _write_json(options.json, machine, options, rows, None)
    rows = [merge_rounds(done) for done in by_case.values() if done]
    print()
    print_table(rows, options.device)
    print()
    print_throughput(rows)
    estimate = epoch_estimate(rows) if options.epoch else None
    if estimate:
        print()
        for side, values in estimate.items():
            print(f"tutorial epoch, {side}: {values['seconds']:.0f} s "
                  f"({values['seconds'] / PUBLISHED_EPOCH_SECONDS:.1f}x the published "
                  f"{PUBLISHED_EPOCH_SECONDS:.0f} s on a Titan X; training step "
                  f"{values['training_step']})")
    if options.json:
        _write_json(options.json, machine, options, rows, estimate)


def _summary(row):
    """One line on a finished case, printed as soon as it is measured."""
    if "skipped" in row:
        return "skipped: " + row["skipped"]
    parts = []
    for side in ("ours", "torch"):
        result = row[side]
        parts.append(f"{side} " + (f"{result['median_s']:.3f} s" if "median_s" in result
                                   else str(result.get("error") or result.get("unavailable"))))
    if "time_ratio" in row:
        peak = f"{row['peak_ratio']:.2f}" if "peak_ratio" in row else "-"
        parts.append(f"ratio {row['time_ratio']:.2f} ({row.get('timing')}), "
                     f"ratio of minima {row['min_ratio']:.2f}, peak ratio {peak}, "
                     f"check {row['check']['difference']:.1e}")
    if "ours_gflops" in row:
        parts.append(f"{row['gflop']:.0f} GFLOP: ours {row['ours_gflops']:.0f} GFLOP/s"
                     + (f", torch {row['torch_gflops']:.0f}" if "torch_gflops" in row else "")
                     + (f", sgemm {row['sgemm_gflops']:.0f}" if "sgemm_gflops" in row else ""))
    return ", ".join(parts)


def _write_json(path, machine, options, rows, estimate):
    with open(path, "w") as output:
        json.dump({"machine": machine, "options": vars(options), "rows": rows,
                   "epoch_estimate": estimate}, output, indent=1, default=str)


if __name__ == "__main__":
    main()
