"""Time the N-d convolution kernels (1-D, 3-D, dilated, grouped) against PyTorch.

Usage::

    python benchmarks/bench_conv_nd.py [--repeat 5] [--rounds 1] [--threads 2]
                                       [--only NAME ...] [--blas] [--settle 0.05]

For each case it prints the best of ``--repeat`` runs of the CPU kernels behind
``fcn8_lasagne.ops.conv`` (``forward``; ``fwd+bwd`` adds the input and weight gradients)
next to ``torch.nn.functional`` on the same float32 arrays (``fwd+bwd`` through autograd),
with ``torch.set_num_threads(--threads)``, and the ratio ours / torch. Calls alternate
between the two sides so that load spikes on a shared machine hit both alike: minima are
the numbers to compare. ``--rounds`` runs every case that many times over, keeping each
side's minimum across rounds, for machines whose load changes over minutes. ``--blas``
adds the BLAS kernels (the compiled direct kernels of ``ops._conv_c`` turned off) as a third
side, to compare the two on the same run.

Every timed call starts after a pause of ``--settle`` seconds: PyTorch's OpenMP threads
(libgomp) spin-wait for a few milliseconds after each of its calls (measured: 4-8 ms of CPU
time in the 50 ms after a grouped convolution), and without the pause that spinning shares
the cores with whichever call comes next, ours after PyTorch's.
"""

import argparse
import contextlib
import platform
import subprocess
import time

import numpy as np

from fcn8_lasagne.ops import _conv_c, _conv_cpu
from fcn8_lasagne.ops._blas import blas_info

from _timing import best_times


def cases():
    """``(name, input shape, filter shape, stride, pad, dilation, groups)``."""
    return [
        ("conv1d k25 same", (16, 64, 2000), (64, 64, 25), 1, 12, 1, 1),
        ("conv3d 32^3 k3", (2, 32, 32, 32, 32), (32, 32, 3, 3, 3), 1, 1, 1, 1),
        ("conv2d dil2", (2, 256, 64, 64), (256, 256, 3, 3), 1, 2, 2, 1),
        ("conv2d dil4", (2, 256, 64, 64), (256, 256, 3, 3), 1, 4, 4, 1),
        ("conv2d groups32", (2, 256, 64, 64), (256, 8, 3, 3), 1, 1, 1, 32),
    ]



@contextlib.contextmanager
def blas_kernels():
    """Run the convolutions on their BLAS kernels (no compiled direct kernels)."""
    saved = dict(_conv_c._state)
    _conv_c._state.update(loaded=True, library=None)
    try:
        yield
    finally:
        _conv_c._state.update(saved)


def case_functions(x, w, stride, pad, dilation, groups, torch, blas=False):
    n = x.ndim - 2
    strides, pads, dilations = (stride,) * n, (pad,) * n, (dilation,) * n
    out = np.ascontiguousarray(
        _conv_cpu.conv_forward(x, w, pads, strides, False, dilations, groups))
    gy = np.random.default_rng(1).standard_normal(out.shape).astype(x.dtype)

    def ours_forward():
        return _conv_cpu.conv_forward(x, w, pads, strides, False, dilations, groups)

    def ours_both():
        _conv_cpu.conv_forward(x, w, pads, strides, False, dilations, groups)
        _conv_cpu.conv_backward_input(gy, w, x.shape[2:], pads, strides, False, dilations,
                                      groups)
        _conv_cpu.conv_backward_weights(x, gy, w.shape[2:], pads, strides, False, dilations,
                                        groups)

    functions = {"ours fwd": ours_forward, "ours fwd+bwd": ours_both}
    if blas:
        def blas_forward():
            with blas_kernels():
                return ours_forward()

        def blas_both():
            with blas_kernels():
                ours_both()

        functions.update({"blas fwd": blas_forward, "blas fwd+bwd": blas_both})
    if torch is None:
        return functions
    import torch.nn.functional as F

    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[n]
    tx, tw, tgy = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)
    gx = tx.clone().requires_grad_(True)
    gw = tw.clone().requires_grad_(True)

    def torch_forward():
        with torch.no_grad():
            return conv(tx, tw, stride=stride, padding=pad, dilation=dilation, groups=groups)

    def torch_both():
        gx.grad = gw.grad = None
        conv(gx, gw, stride=stride, padding=pad, dilation=dilation, groups=groups).backward(tgy)

    # the check that both compute the same thing
    np.testing.assert_allclose(ours_forward(), torch_forward().numpy(), atol=2e-3, rtol=2e-3)
    functions.update({"torch fwd": torch_forward, "torch fwd+bwd": torch_both})
    return functions


def machine():
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines
                      if line.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    flags = open("/proc/cpuinfo").read() if platform.system() == "Linux" else ""
    vector = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    return f"{model} ({vector})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="substrings of the case names to run")
    parser.add_argument("--blas", action="store_true",
                        help="also time the BLAS kernels (compiled kernels off)")
    parser.add_argument("--settle", type=float, default=0.05,
                        help="seconds of pause before each timed call (default 0.05)")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    print(f"machine: {machine()}; {blas_info()}; date {time.strftime('%Y-%m-%d %H:%M %Z')}")
    library = _conv_c.library()
    print("compiled kernels: " + (f"{library.vector_bytes * 8}-bit vectors" if library
                                  else "none (BLAS kernels only)"))
    if torch is not None:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rng = np.random.default_rng(0)
    selected = [case for case in cases()
                if not args.only or any(part in case[0] for part in args.only)]
    prepared = {}
    for name, x_shape, w_shape, stride, pad, dilation, groups in selected:
        x = rng.standard_normal(x_shape).astype("float32")
        w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype("float32")
        prepared[name] = case_functions(x, w, stride, pad, dilation, groups, torch, args.blas)
    best = {name: {} for name in prepared}
    for _ in range(args.rounds):
        for name, functions in prepared.items():
            for key, value in best_times(functions, args.repeat, args.settle).items():
                best[name][key] = min(best[name].get(key, np.inf), value)
    blas_header = f"   {'blas fwd':>9s} {'ratio':>6s} {'blas f+b':>9s} {'ratio':>6s}" if (
        args.blas and torch is not None) else ""
    print(f"{'case':18s} {'ours fwd':>9s} {'torch':>9s} {'ratio':>6s}   "
          f"{'ours f+b':>9s} {'torch':>9s} {'ratio':>6s}" + blas_header)
    for name, times in best.items():
        row = f"{name:18s} {times['ours fwd'] * 1e3:8.1f}ms"
        if torch is not None:
            row += (f" {times['torch fwd'] * 1e3:8.1f}ms "
                    f"{times['ours fwd'] / times['torch fwd']:5.2f}x")
        row += f"   {times['ours fwd+bwd'] * 1e3:8.1f}ms"
        if torch is not None:
            row += (f" {times['torch fwd+bwd'] * 1e3:8.1f}ms "
                    f"{times['ours fwd+bwd'] / times['torch fwd+bwd']:5.2f}x")
            if args.blas:
                row += (f"   {times['blas fwd'] * 1e3:8.1f}ms "
                        f"{times['blas fwd'] / times['torch fwd']:5.2f}x"
                        f" {times['blas fwd+bwd'] * 1e3:8.1f}ms "
                        f"{times['blas fwd+bwd'] / times['torch fwd+bwd']:5.2f}x")
        print(row, flush=True)


if __name__ == "__main__":
    main()
