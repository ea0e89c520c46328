"""Steps per second of a data-parallel Adam step (``compile.function(..., devices=N)``) on
1, 2 and 4 simulated CPU devices, against today's one-device JAX function.

Usage::

    python benchmarks/bench_data_parallel.py [--devices 1 2 4] [--batch 8] [--size 64 64]
                                             [--width 32] [--steps 10]

Each case runs in its own interpreter (``tests/sharding_worker.py bench``) started with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``: the net is the tests' FCN-like net
(conv → pool → conv → transposed conv → per-pixel softmax, the tutorial's loss and Adam)
at ``--width`` channels, the global batch is ``--batch`` in every case. Printed per case:
the compile-and-first-step time, the median and fastest step, steps/s (from the median),
its ratio to the one-device (``devices=None``) run's, and the same ratio from the fastest
steps (the number to read on a shared machine).

Simulated CPU devices share the machine's cores (XLA's CPU client runs each device's
computation on the same thread pool), so on a small machine the ratio measures the cost of
partitioning and of the all-reduces, not scaling.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "sharding_worker.py"


def run_case(devices, options):
    env = dict(os.environ)
    flags = [flag for flag in env.get("XLA_FLAGS", "").split()
             if not flag.startswith("--xla_force_host_platform_device_count")]
    flags.append(f"--xla_force_host_platform_device_count={max(devices, 1)}")
    env["XLA_FLAGS"] = " ".join(flags)
    env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, str(WORKER), "bench", "--devices", str(devices),
               "--batch", str(options.batch), "--size", *map(str, options.size),
               "--width", str(options.width), "--steps", str(options.steps)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=options.timeout)
    if done.returncode:
        raise RuntimeError(f"devices={devices} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, nargs=2, default=[64, 64])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", help="also write the results to this file")
    options = parser.parse_args(argv)

    results = [run_case(0, options)] + [run_case(n, options) for n in options.devices]
    base = results[0]["steps_per_s"]
    print(f"global batch {options.batch}, {options.size[0]}x{options.size[1]}, "
          f"width {options.width}, {options.steps} timed steps per case")
    print("| devices | compile + first step s | median step s | min step s | steps/s | "
          "ratio to one device | min ratio |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        name = "None (one device)" if not result["devices"] else str(result["devices"])
        print(f"| {name} | {result['compile_s']:.1f} | {result['median_s']:.4f} | "
              f"{result['min_s']:.4f} | {result['steps_per_s']:.2f} | "
              f"{result['steps_per_s'] / base:.2f} | "
              f"{results[0]['min_s'] / result['min_s']:.2f} |")
    if options.json:
        Path(options.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
