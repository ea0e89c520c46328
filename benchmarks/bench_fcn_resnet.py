"""torchvision's fcn_resnet50 on the CPU: this package against torchvision, same weights.

Usage::

    python benchmarks/bench_fcn_resnet.py              # forward b1/b4 520x520, SGD step b2 480x480
    python benchmarks/bench_fcn_resnet.py --quick      # small sizes, to try the script
    python benchmarks/bench_fcn_resnet.py --only step --repeat 5

Cases:

* ``forward``: eval mode, both score maps (``out`` and ``aux``, as torchvision's eval forward
  returns both), batch 1 and 4 of 520x520 (torchvision's evaluation size);
* ``step``: one SGD step of the training recipe: train-mode batch norm, dropout 0.1, loss
  ``CE(out) + 0.5 CE(aux)`` with ``ignore_index=255``, momentum 0.9, weight decay 1e-4 on
  every parameter, batch 2 of 480x480 (the crop size).

**ours**: ``buildFCNResNet(3, x, 21, 'resnet50', 'torchvision')`` compiled with
``fcn8_lasagne.compile.function`` (the C backend), ``updates.momentum`` on the gradients
plus ``weight_decay * param`` (torch's SGD rule; equal for a constant learning rate).
**torch**: ``torchvision.models.segmentation.fcn_resnet50(weights=None,
weights_backbone=None, aux_loss=True)``, eager, ``torch.optim.SGD``. Both get the same
random weights (a seeded torchvision model with non-trivial batch-norm statistics, written
to a ``.npz`` that our side loads with ``load_fcn_resnet`` without importing torch) and the
same images and labels.

Each case runs three subprocesses:

* **timing**: both sides in one process; before timing, the first eval outputs must agree
  (``out``, to 1e-4 of its largest value) and the first step's losses to 2 % (the dropout
  masks differ); then ``benchmarks/_timing.best_times`` calls them in turns, best of
  ``--repeat``, so that a shared machine's load hits both alike;
* **memory**, one per side: build, load, one warm-up call and one more; reported are the
  process's lifetime peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``:
  imports, build, compilation and calls) and the working peak of the calls (``VmHWM`` reset
  after the warm-up call, minus the resident size at the reset: what the second call adds
  on top of weights, compiled code and the buffers kept between calls).

The first line gives the machine (``lscpu``'s model name, AVX-512 or not), the date, the load
average and the versions.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

BENCHMARK_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARK_DIR)
sys.path.insert(1, os.path.dirname(BENCHMARK_DIR))

from bench_fcn8 import reset_peak  # noqa: E402

RESULT_MARKER = "BENCH_FCN_RESNET_RESULT "
N_CLASSES = 21
IGNORE_INDEX = 255
AUX_WEIGHT = 0.5
LEARNING_RATE = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4
#: Largest difference of the first eval outputs, relative to their largest value.
OUTPUT_TOLERANCE = 1e-4
#: Largest relative difference of the first step's losses (dropout masks differ).
LOSS_TOLERANCE = 2e-2
MIB = 1024 ** 2

CASES = [("forward", 1, 520), ("forward", 4, 520), ("step", 2, 480)]
QUICK_CASES = [("forward", 1, 96), ("forward", 2, 96), ("step", 2, 64)]


# ---------------------------------------------------------------------------------------
# shared inputs (written once by the parent)


def write_inputs(directory, cases, seed):
    """The torchvision model's random state dict and each case's images and labels."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, aux_loss=True, num_classes=N_CLASSES)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    np.savez(os.path.join(directory, "weights.npz"), **state)
    rng = np.random.default_rng(seed + 1)
    for mode, batch, size in cases:
        images = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        labels = rng.integers(0, N_CLASSES, (batch, size, size)).astype(np.int32)
        labels[rng.random(labels.shape) < 0.1] = IGNORE_INDEX
        np.savez(os.path.join(directory, f"data_{mode}_{batch}_{size}.npz"),
                 images=images, labels=labels)


def read_inputs(directory, mode, batch, size):
    with np.load(os.path.join(directory, "weights.npz")) as archive:
        state = {key: archive[key] for key in archive.files}
    with np.load(os.path.join(directory, f"data_{mode}_{batch}_{size}.npz")) as archive:
        return state, archive["images"], archive["labels"]


# ---------------------------------------------------------------------------------------
# the two sides: each returns call() -> eval outputs or the step's loss


def prepare_ours(mode, state, images, labels):
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax

    from fcn8_lasagne import updates
    from fcn8_lasagne.compile import function
    from fcn8_lasagne.layers import get_all_params, get_output
    from fcn8_lasagne.models.fcn_resnet import buildFCNResNet, fcn_resnet_output_layers
    from fcn8_lasagne.weights.fcn_resnet import load_fcn_resnet
    from fcn8_lasagne.ops import memory as _memory

    _memory.turn_on()  # as fcn8 train does

    x = pt.tensor4("x")
    net = buildFCNResNet(3, x, N_CLASSES, "resnet50", "torchvision")
    load_fcn_resnet(net, state)
    start = time.perf_counter()
    if mode == "forward":
        outputs = get_output([net["out"], net["aux"]], deterministic=True)
        f = function([x], outputs)
        compile_s = time.perf_counter() - start
        return (lambda: f(images)), compile_s

    y = pt.itensor3("y")

    def cross_entropy(scores):
        flat = scores.dimshuffle(0, 2, 3, 1).reshape((-1, N_CLASSES))
        target = y.flatten()
        valid = pt.neq(target, IGNORE_INDEX)
        picked = log_softmax(flat, axis=1)[pt.arange(target.shape[0]),
                                           pt.switch(valid, target, 0)]
        return -(picked * valid).sum() / valid.sum()

    out, aux = get_output([net["out"], net["aux"]])
    loss = cross_entropy(out) + AUX_WEIGHT * cross_entropy(aux)
    params = get_all_params(fcn_resnet_output_layers(net), trainable=True)
    grads = [g + WEIGHT_DECAY * p for g, p in zip(pytensor.grad(loss, params), params)]
    step = function([x, y], loss,
                    updates=updates.momentum(grads, params, LEARNING_RATE, MOMENTUM))
    compile_s = time.perf_counter() - start
    return (lambda: float(step(images, labels))), compile_s


def prepare_torch(mode, state, images, labels):
    import torch
    import torch.nn.functional as F
    import torchvision

    model = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, aux_loss=True, num_classes=N_CLASSES)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    x = torch.from_numpy(images)
    if mode == "forward":
        model.eval()

        def forward():
            with torch.inference_mode():
                result = model(x)
                return [result["out"].numpy(), result["aux"].numpy()]

        return forward, 0.0

    model.train()
    y = torch.from_numpy(labels.astype(np.int64))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)

    def step():
        optimizer.zero_grad(set_to_none=True)
        result = model(x)
        loss = (F.cross_entropy(result["out"], y, ignore_index=IGNORE_INDEX)
                + AUX_WEIGHT * F.cross_entropy(result["aux"], y, ignore_index=IGNORE_INDEX))
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step, 0.0


PREPARE = {"ours": prepare_ours, "torch": prepare_torch}


# ---------------------------------------------------------------------------------------
# workers


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_worker(side, mode, batch, size, directory):
    state, images, labels = read_inputs(directory, mode, batch, size)
    call, compile_s = PREPARE[side](mode, state, images, labels)
    del state
    call()
    resident = _status_kib("VmRSS") * 1024
    reset = reset_peak()
    call()
    result = {"maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
              "resident_between_calls": resident, "compile_s": compile_s}
    if reset:
        result["working_peak"] = _status_kib("VmHWM") * 1024 - resident
    return result


def _relative_error(ours, theirs):
    return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


def timing_worker(mode, batch, size, directory, repeat):
    from _timing import best_times

    state, images, labels = read_inputs(directory, mode, batch, size)
    sides = {name: PREPARE[name](mode, state, images, labels) for name in ("ours", "torch")}
    del state
    calls = {name: call for name, (call, _) in sides.items()}
    first = {name: call() for name, call in calls.items()}
    if mode == "forward":
        error = _relative_error(first["ours"][0], first["torch"][0])
        passed = error <= OUTPUT_TOLERANCE
        check = f"out differs by {error:.1e} of its largest value"
    else:
        error = abs(first["ours"] - first["torch"]) / abs(first["torch"])
        passed = error <= LOSS_TOLERANCE
        check = f"first losses {first['ours']:.5f} / {first['torch']:.5f}"
    if not passed:
        check = "CHECK FAILED: " + check
    best = best_times(calls, repeat)
    return {"ours_s": best["ours"], "torch_s": best["torch"],
            "compile_s": sides["ours"][1], "check": check}


def worker_main(options):
    mode, batch, size = options.case
    if options.worker == "timing":
        result = timing_worker(mode, batch, size, options.directory, options.repeat)
    else:
        result = memory_worker(options.worker, mode, batch, size, options.directory)
    print(RESULT_MARKER + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------
# the parent


def run_worker(worker, case, directory, repeat):
    command = [sys.executable, os.path.abspath(__file__), "--worker", worker,
               "--case", *map(str, case), "--directory", directory, "--repeat", str(repeat)]
    finished = subprocess.run(command, capture_output=True, text=True)
    for line in finished.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = (finished.stderr or finished.stdout).strip().splitlines()[-3:]
    raise SystemExit(f"{worker} worker of {case} failed ({finished.returncode}): "
                     + " / ".join(tail))


def machine_line():
    import pytensor
    import torch
    import torchvision

    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                     if line.startswith("Model name:"))
    except (OSError, StopIteration):
        pass
    with open("/proc/cpuinfo") as cpuinfo:
        flags = cpuinfo.read()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{model} ({os.cpu_count()} CPUs, {simd}), {now}, load average "
            f"{os.getloadavg()[0]:.1f}; torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), torchvision {torchvision.__version__}, "
            f"pytensor {pytensor.__version__}, Python {platform.python_version()}")


def _label(case):
    mode, batch, size = case
    return f"{mode} b{batch} {size}x{size}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", choices=("forward", "step"), action="append")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timed calls a side (best of; default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="timings only")
    parser.add_argument("--worker", choices=("timing", "ours", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--case", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--directory", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        options.case = (options.case[0], int(options.case[1]), int(options.case[2]))
        return worker_main(options)
    cases = [c for c in (QUICK_CASES if options.quick else CASES)
             if not options.only or c[0] in options.only]
    print(machine_line(), flush=True)
    print(f"{'case':22s} {'ours':>9s} {'torch':>9s} {'ratio':>6s}   {'peak RSS':>17s} "
          f"{'ratio':>6s}   {'working peak':>17s} {'ratio':>6s}   check", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_fcn_resnet_") as directory:
        write_inputs(directory, cases, options.seed)
        for case in cases:
            timing = run_worker("timing", case, directory, options.repeat)
            line = (f"{_label(case):22s} {timing['ours_s']:8.3f}s {timing['torch_s']:8.3f}s "
                    f"{timing['ours_s'] / timing['torch_s']:5.2f}x")
            print(line, end="", flush=True)  # the memory runs take minutes more
            line = ""
            if not options.no_memory:
                memory = {side: run_worker(side, case, directory, 0)
                          for side in ("ours", "torch")}
                for key in ("maxrss", "working_peak"):
                    if all(key in memory[side] for side in memory):
                        ours, theirs = memory["ours"][key], memory["torch"][key]
                        line += (f"   {ours / MIB:7.0f}/{theirs / MIB:7.0f}MiB "
                                 f"{ours / theirs:5.2f}x")
                    else:
                        line += f"   {'-':>17s} {'-':>6s}"
            print(f"{line}   {timing['check']}; ours compiled in {timing['compile_s']:.0f} s",
                  flush=True)


if __name__ == "__main__":
    main()
