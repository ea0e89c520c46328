"""Which GPU kernels each side of one FCN-8 case runs, and for how long.

Usage::

    python benchmarks/gpu_profile.py --out DIR                 # forward, batch 10, 224x224
    python benchmarks/gpu_profile.py --mode train --precision tf32 --out DIR

Both sides are prepared as in ``bench_fcn8.py`` (same weights, same images, compiled and
warmed up), then each runs ``--calls`` calls under ``torch.profiler``. CUPTI traces every
CUDA kernel of the process, so the profile of ours shows the kernels XLA launches (cuDNN
convolutions, XLA fusions) as PyTorch's shows its own. Written to ``DIR``:

* ``kernels_ours.txt``, ``kernels_torch.txt``: the kernels by total GPU time (top rows of
  ``key_averages()``), and the wall time of the calls;
* ``xla_convolutions.txt`` (when ``XLA_FLAGS`` has ``--xla_dump_to``): the convolution
  calls and filter reversals in XLA's optimised programs, with their shapes, layouts and
  chosen algorithms, and how many layout copies each program makes.

``--device jax`` runs the same on the CPU (CPU activity only): a check of the script itself.
"""

import argparse
import glob
import os
import re
import sys
import time

BENCHMARK_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCHMARK_DIR)

import bench_fcn8  # noqa: E402  (the benchmark's preparation of both sides)


def _profile_calls(call, calls, on_gpu):
    import torch

    activities = [torch.profiler.ProfilerActivity.CPU]
    if on_gpu:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    call()  # once more outside the profiler: nothing left to compile or tune
    start = time.perf_counter()
    with torch.profiler.profile(activities=activities) as profiler:
        for _ in range(calls):
            call()
    seconds = (time.perf_counter() - start) / calls
    sort_by = "cuda_time_total" if on_gpu else "cpu_time_total"
    return seconds, profiler.key_averages().table(sort_by=sort_by, row_limit=30,
                                                  max_name_column_width=90)


def _xla_convolutions(dump_dir):
    """Convolution custom calls of the optimised XLA programs in ``dump_dir``."""
    lines = []
    for path in sorted(glob.glob(os.path.join(dump_dir, "*after_optimizations.txt"))):
        with open(path) as program:
            text = program.read().splitlines()
        found = [line.strip() for line in text
                 if re.search(r"custom_call_target=\"__cudnn\$conv|convolution\(|reverse\(", line)]
        copies = sum(1 for line in text if re.search(r"= \S+ (copy|transpose)\(", line))
        if found:
            lines.append(f"== {os.path.basename(path)}: {len(found)} convolutions and "
                         f"reverses, {copies} copies/transposes (layout changes)")
            lines.extend(found)
    return "\n".join(lines) if lines else "no optimised XLA programs with convolutions found"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("gpu", "jax"), default="gpu")
    parser.add_argument("--mode", choices=("forward", "train"), default="forward")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--precision", choices=("float32", "tf32"), default="float32")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    options = bench_fcn8.parse_arguments(["--device", args.device, "--precision",
                                          args.precision])
    case = bench_fcn8.Case(args.mode, args.batch, *args.size)
    on_gpu = args.device == "gpu"
    for side in ("ours", "torch"):
        prepared = bench_fcn8.PREPARE[side](case, options)
        if prepared is None:
            print(f"{side}: no CUDA device for torch; skipped")
            continue
        seconds, table = _profile_calls(prepared.call, args.calls, on_gpu)
        header = (f"{side}: {case.label}, precision {args.precision}, {args.calls} calls, "
                  f"{seconds * 1e3:.2f} ms a call under the profiler\n")
        with open(os.path.join(args.out, f"kernels_{side}.txt"), "w") as output:
            output.write(header + table + "\n")
        print(header + table, flush=True)
        del prepared
    dump = re.search(r"--xla_dump_to=(\S+)", os.environ.get("XLA_FLAGS", ""))
    if dump:
        with open(os.path.join(args.out, "xla_convolutions.txt"), "w") as output:
            output.write(_xla_convolutions(dump.group(1)) + "\n")


if __name__ == "__main__":
    main()
