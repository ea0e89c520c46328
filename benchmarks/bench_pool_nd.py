"""Time the N-d pooling and upscaling kernels against PyTorch.

Usage::

    python benchmarks/bench_pool_nd.py [--repeat 10] [--rounds 1] [--threads 2]
                                       [--only NAME ...]

For each case it prints the best of ``--repeat`` runs of the CPU kernels behind
``fcn8_lasagne.ops.pool`` / ``ops.upscale`` (``fwd``; ``fwd+bwd`` adds the input
gradient) next to ``torch.nn.functional`` on the same float32 arrays (``fwd+bwd`` through
autograd), with ``torch.set_num_threads(--threads)``, and the ratio ours / torch. Calls
alternate between the two sides so that load spikes hit both alike; ``--rounds`` repeats
every case, keeping each side's minimum.

The max-pool gradients differ by design: PyTorch routes each window's gradient to one
argmax, ours (Theano's ``MaxPoolGrad``) to every element equal to the maximum. The inputs
are continuous random values, so windows have no ties and both compute the same numbers
(checked). The upscaling cases also time Lasagne's own graph (``T.extra_ops.repeat`` per
axis, compiled by PyTensor's C backend) to show what the op replaces.
"""

import argparse
import platform
import subprocess
import time

import numpy as np

from _timing import best_times
from fcn8_lasagne.ops import _pool_cpu
from fcn8_lasagne.ops.upscale import Upscale, UpscaleGrad

TIES_NOTE = ("note: torch's max-pool gradient goes to one argmax per window, ours (Theano's "
             "rule) to every tied maximum; the inputs have no ties, so both agree")


def cases():
    """``(name, kind, input shape, window or factor, mode)``."""
    return [
        ("pool3d 2^3 max", "pool", (2, 64, 64, 64, 64), (2, 2, 2), "max"),
        ("pool3d 2^3 avg", "pool", (2, 64, 64, 64, 64), (2, 2, 2), "average_inc_pad"),
        ("pool2d 2x2 max (FCN-8 pool1)", "pool", (1, 64, 262, 278), (2, 2), "max"),
        ("pool1d 4 max", "pool", (16, 64, 4000), (4,), "max"),
        ("upscale2d x2 repeat", "upscale", (2, 64, 128, 128), (2, 2), "repeat"),
        ("upscale3d x2 repeat", "upscale", (2, 32, 32, 32, 32), (2, 2, 2), "repeat"),
    ]



def pool_functions(x, ws, mode, torch):
    zeros = (0,) * len(ws)
    z = _pool_cpu.pool_forward(x, ws, ws, zeros, True, mode)
    gz = np.random.default_rng(1).standard_normal(z.shape).astype(x.dtype)

    def forward():
        return _pool_cpu.pool_forward(x, ws, ws, zeros, True, mode)

    def both():
        out = _pool_cpu.pool_forward(x, ws, ws, zeros, True, mode)
        if mode == "max":
            return _pool_cpu.max_pool_grad(x, out, gz, ws, ws, zeros)
        return _pool_cpu.average_pool_grad(x.shape, gz, ws, ws, zeros, mode)

    functions = {"ours fwd": forward, "ours fwd+bwd": both}
    if torch is None:
        return functions, None
    import torch.nn.functional as F

    n = len(ws)
    if mode == "max":
        pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]
    else:
        pool = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[n]
    tx, tgz = torch.from_numpy(x), torch.from_numpy(gz)
    leaf = tx.clone().requires_grad_(True)

    def torch_forward():
        with torch.no_grad():
            return pool(tx, ws)

    def torch_both():
        leaf.grad = None
        pool(leaf, ws).backward(tgz)
        return leaf.grad

    def check():
        np.testing.assert_allclose(torch_forward().numpy(), forward(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(torch_both().numpy(), both(), rtol=1e-5, atol=1e-6)

    functions.update({"torch fwd": torch_forward, "torch fwd+bwd": torch_both})
    return functions, check


def upscale_functions(x, factor, mode, torch):
    import pytensor
    import pytensor.tensor as pt

    up, down = Upscale(factor, mode), UpscaleGrad(factor, mode)
    y_shape = x.shape[:2] + tuple(n * f for n, f in zip(x.shape[2:], factor))
    gy = np.random.default_rng(1).standard_normal(y_shape).astype(x.dtype)

    def run(op, value):
        node = op.make_node(pt.as_tensor_variable(value))
        storage = [[None]]
        op.perform(node, [value], storage)
        return storage[0][0]

    up_node = up.make_node(pt.tensor(dtype=x.dtype, shape=(None,) * x.ndim))
    down_node = down.make_node(pt.tensor(dtype=x.dtype, shape=(None,) * x.ndim))

    def forward():
        storage = [[None]]
        up.perform(up_node, [x], storage)
        return storage[0][0]

    def both():
        storage = [[None]]
        up.perform(up_node, [x], storage)
        down.perform(down_node, [gy], storage)
        return storage[0][0]

    # Lasagne's graph: T.extra_ops.repeat per axis, last axis first
    vx, vg = pt.tensor(dtype=x.dtype, shape=(None,) * x.ndim), pt.tensor(
        dtype=x.dtype, shape=(None,) * x.ndim)
    repeated = vx
    for axis in reversed(range(len(factor))):
        repeated = pt.repeat(repeated, factor[axis], axis=axis + 2)
    lasagne_forward = pytensor.function([vx], repeated, mode="CVM")
    lasagne_both = pytensor.function([vx, vg], pytensor.grad(None, vx,
                                                             known_grads={repeated: vg}),
                                     mode="CVM")
    functions = {"ours fwd": forward, "ours fwd+bwd": both,
                 "lasagne graph fwd": lambda: lasagne_forward(x),
                 "lasagne graph fwd+bwd": lambda: (lasagne_forward(x), lasagne_both(x, gy))}
    np.testing.assert_array_equal(forward(), lasagne_forward(x))
    np.testing.assert_allclose(run(down, gy), lasagne_both(x, gy), rtol=1e-5, atol=1e-5)
    if torch is None:
        return functions, None
    import torch.nn.functional as F

    tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
    leaf = tx.clone().requires_grad_(True)

    def torch_forward():
        with torch.no_grad():
            return F.interpolate(tx, scale_factor=factor, mode="nearest")

    def torch_both():
        leaf.grad = None
        F.interpolate(leaf, scale_factor=factor, mode="nearest").backward(tgy)
        return leaf.grad

    def check():
        np.testing.assert_array_equal(torch_forward().numpy(), forward())
        np.testing.assert_allclose(torch_both().numpy(), run(down, gy), rtol=1e-5, atol=1e-5)

    functions.update({"torch fwd": torch_forward, "torch fwd+bwd": torch_both})
    return functions, check


def machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        lscpu = ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    flags = next((line for line in lscpu.splitlines() if line.startswith("Flags")), "")
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model} ({simd})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    print(f"machine: {machine()}; torch threads: {args.threads}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(TIES_NOTE)
    rng = np.random.default_rng(0)
    print(f"{'case':32s} {'ours fwd':>9s} {'torch':>9s} {'ratio':>6s}  "
          f"{'ours f+b':>9s} {'torch':>9s} {'ratio':>6s}  other")
    for name, kind, shape, window, mode in cases():
        if args.only and not any(word in name for word in args.only):
            continue
        x = rng.standard_normal(shape, dtype=np.float32)
        make = pool_functions if kind == "pool" else upscale_functions
        functions, check = make(x, window, mode, torch)
        if check is not None:
            check()
        best = dict.fromkeys(functions, np.inf)
        for _ in range(args.rounds):
            for key, value in best_times(functions, args.repeat).items():
                best[key] = min(best[key], value)
        ours_f, ours_b = best["ours fwd"], best["ours fwd+bwd"]
        torch_f, torch_b = best.get("torch fwd", np.nan), best.get("torch fwd+bwd", np.nan)
        other = ""
        if "lasagne graph fwd" in best:
            other = (f"Lasagne's repeat graph {best['lasagne graph fwd'] * 1e3:.1f} / "
                     f"{best['lasagne graph fwd+bwd'] * 1e3:.1f} ms")
        print(f"{name:32s} {ours_f * 1e3:7.1f}ms {torch_f * 1e3:7.1f}ms {ours_f / torch_f:5.2f}x"
              f"  {ours_b * 1e3:7.1f}ms {torch_b * 1e3:7.1f}ms {ours_b / torch_b:5.2f}x  {other}")


if __name__ == "__main__":
    main()
