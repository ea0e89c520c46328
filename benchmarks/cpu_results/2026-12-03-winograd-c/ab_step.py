"""A/B in one process: FCN-8's forward pass (1x3x224x224) and Adam step (batch 2), with the
compiled Winograd transforms (and the 64-channel layer on that path) against the NumPy
transforms (``_winograd._use_c_transforms = False``, the rule and code as before), PyTorch
and a 3072x3072 sgemm taking turns call by call; best and median of N.

    python benchmarks/cpu_results/2026-12-03-winograd-c/ab_step.py [forward|train] [N]
"""

import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import bench_fcn8  # noqa: E402
from _flops import fcn8_flops, sgemm_gflops  # noqa: E402
from fcn8_lasagne.ops import _winograd  # noqa: E402

mode = sys.argv[1] if len(sys.argv) > 1 else "forward"
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 5
batch = 1 if mode == "forward" else 2
options = bench_fcn8.parse_arguments(["--repeat", str(repeat)])
case = bench_fcn8.Case(mode, batch, 224, 224)
ours = bench_fcn8.prepare_ours(case, options)
theirs = bench_fcn8.prepare_torch(case, options)
calls = {"C transforms": ours.call, "torch": theirs.call}


def numpy_transforms():
    _winograd._use_c_transforms = False
    try:
        ours.call()
    finally:
        _winograd._use_c_transforms = True


calls["NumPy transforms"] = numpy_transforms
for call in calls.values():
    call()
times = {name: [] for name in calls}
sgemm = []
names = list(calls)
for index in range(repeat):
    order = names if index % 2 == 0 else names[::-1]
    for name in order:
        time.sleep(0.2)
        start = time.perf_counter()
        calls[name]()
        times[name].append(time.perf_counter() - start)
    sgemm.append(sgemm_gflops(repeat=1))
flops = fcn8_flops(batch, 224, 224, options.n_classes, mode)
best_sgemm = max(sgemm)
print(f"{mode} b{batch} 224x224, {flops / 1e9:.1f} GFLOP (direct count); sgemm best "
      f"{best_sgemm:.1f} GFLOP/s; load {os.getloadavg()[0]:.1f}")
for name, values in times.items():
    rate = flops / min(values) / 1e9
    print(f"  {name:17s} best {min(values):.3f} s, median {statistics.median(values):.3f} s, "
          f"{rate:.1f} GFLOP/s = {100 * rate / best_sgemm:.0f}% of sgemm")
ratio = [c / n for c, n in zip(times["C transforms"], times["NumPy transforms"])]
print(f"  C / NumPy per round: median {statistics.median(ratio):.3f}, ratio of bests "
      f"{min(times['C transforms']) / min(times['NumPy transforms']):.3f}; ours (C) / torch "
      f"ratio of bests {min(times['C transforms']) / min(times['torch']):.3f}")
