"""Time the convolution kernels on FCN-8's layer shapes, against PyTorch when installed.

Usage::

    python benchmarks/bench_ops.py [--size 224] [--batch 1] [--repeat 7] [--backward]
                                   [--direct] [--network]

Per layer it prints the best of ``--repeat`` runs of the CPU kernels behind the ops
(forward; with ``--backward`` also the input and weight gradients) next to
``torch.nn.functional`` on the same arrays. ``--direct`` adds our kernels with the
Winograd path turned off (``set_winograd(False)``) and the ratio Winograd / direct.
``--network`` compiles FCN-8's forward pass (``fcn8_lasagne.models.buildFCN8``) with
``compile.function(device='cpu')`` and in PyTensor's C VM, Numba and JAX modes and
reports compile and run times. Throughput is GFLOP/s counted as direct convolutions
(``_flops.py`` states the count) beside the best GFLOP/s of a 3072x3072 ``sgemm`` measured
between the layers. The machine may be shared: minima
are the numbers to compare.
"""

import argparse
import time

import numpy as np

from _flops import conv_flops, fcn8_flops, fcn8_layers, sgemm_gflops, simd_level, SGEMM_SIZE
from _timing import best_times
from fcn8_lasagne.ops import _conv_cpu, set_winograd
from fcn8_lasagne.ops._blas import blas_info


def _without_winograd(function):
    def direct():
        previous = set_winograd(False)
        try:
            return function()
        finally:
            set_winograd(previous)

    return direct


def layer_functions(kind, x, w, stride, pad, backward, torch, direct=False):
    """Callables timing one layer: ours, ours without Winograd when ``direct``, and, when
    ``torch`` is given, PyTorch's."""
    strides, pads = (stride, stride), (pad, pad)
    functions = {}
    if kind == "conv":
        functions["ours"] = lambda: _conv_cpu.conv2d_forward(x, w, pads, strides, False)
    else:
        out_hw = tuple((n - 1) * stride - 2 * pad + k for n, k in zip(x.shape[2:], w.shape[2:]))
        functions["ours"] = lambda: _conv_cpu.conv2d_backward_input(
            x, w, out_hw, pads, strides, False)
    if backward and kind == "conv":
        out = np.ascontiguousarray(_conv_cpu.conv2d_forward(x, w, pads, strides, False))
        functions["ours grad in"] = lambda: _conv_cpu.conv2d_backward_input(
            out, w, x.shape[2:], pads, strides, False)
        functions["ours grad w"] = lambda: _conv_cpu.conv2d_backward_weights(
            x, out, w.shape[2:], pads, strides, False)
    if direct:
        for name, function in list(functions.items()):
            functions[name.replace("ours", "direct")] = _without_winograd(function)
    if torch is None:
        return functions
    import torch.nn.functional as F

    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    if kind == "conv":
        functions["torch"] = lambda: F.conv2d(tx, tw, stride=stride, padding=pad)
    else:
        functions["torch"] = lambda: F.conv_transpose2d(tx, tw, stride=stride, padding=pad)
    if backward and kind == "conv":
        tout = torch.from_numpy(out)
        functions["torch grad in"] = lambda: torch.nn.grad.conv2d_input(
            x.shape, tw, tout, stride=stride, padding=pad)
        functions["torch grad w"] = lambda: torch.nn.grad.conv2d_weight(
            tx, w.shape, tout, stride=stride, padding=pad)
    return functions


def bench_layers(size, repeat, backward, batch=1, direct=False):
    try:
        import torch
    except ImportError:
        torch = None
    else:
        print("torch threads:", torch.get_num_threads())
    rng = np.random.default_rng(0)
    columns = ["ours", "torch"]
    if backward:
        columns += ["ours grad in", "torch grad in", "ours grad w", "torch grad w"]
    if direct:
        columns += [c.replace("ours", "direct") for c in columns if c.startswith("ours")]
    print(f"{'layer':12s}" + "".join(f"{c:>15s}" for c in columns) + "   ratio (ms)"
          + ("   winograd/direct" if direct else "")
          + f"{'GFLOP':>9s}{'ours GF/s':>11s}{'torch GF/s':>11s}{'ours %sgemm':>12s}")
    totals = dict.fromkeys(columns, 0.0)
    total_flops = 0.0
    # one sgemm call between layers: its best shares the layers' load
    sgemm = sgemm_gflops(repeat=1)
    for name, kind, x_shape, w_shape, stride, pad in fcn8_layers(size):
        x = rng.standard_normal((batch,) + x_shape[1:]).astype(np.float32)
        w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
        with _no_grad(torch):
            best = best_times(layer_functions(kind, x, w, stride, pad, backward, torch, direct),
                              repeat)
        sgemm = max(sgemm, sgemm_gflops(repeat=1))
        flops = conv_flops(kind, x.shape, w_shape, stride, pad)
        total_flops += flops
        for column in columns:
            totals[column] += best.get(column, 0.0)
        print(f"{name:12s}" + "".join(f"{best.get(c, np.nan) * 1e3:15.2f}" for c in columns)
              + _ratios(best, direct) + _throughput(flops, best, sgemm), flush=True)
    print(f"{'total':12s}" + "".join(f"{totals[c] * 1e3:15.2f}" for c in columns)
          + _ratios(totals, direct) + _throughput(total_flops, totals, sgemm))
    print(f"sgemm {SGEMM_SIZE}x{SGEMM_SIZE} (best between the layers): {sgemm:.1f} GFLOP/s; "
          f"GFLOP counted as direct convolutions (forward pass; each gradient the same)")
    return sgemm


def _throughput(flops, times, sgemm):
    """GFLOP, ours and torch's forward GFLOP/s, ours as a percentage of ``sgemm``."""
    ours = flops / times["ours"] / 1e9 if times.get("ours") else np.nan
    theirs = flops / times["torch"] / 1e9 if times.get("torch") else np.nan
    return f"{flops / 1e9:9.2f}{ours:11.1f}{theirs:11.1f}{100 * ours / sgemm:11.0f}%"


def _ratios(times, direct):
    """Ours / torch (forward), then, with ``direct``, the sum of our three kernels'
    times over the same sum without Winograd."""
    text = f"   {times['ours'] / times['torch'] if times.get('torch') else np.nan:5.2f}"
    if direct:
        ours = sum(t for name, t in times.items() if name.startswith("ours"))
        plain = sum(t for name, t in times.items() if name.startswith("direct"))
        text += f"   {ours / plain:17.2f}"
    return text


def _no_grad(torch):
    import contextlib

    return contextlib.nullcontext() if torch is None else torch.no_grad()


def _center_crop(tensor, height, width):
    top, left = (tensor.shape[2] - height) // 2, (tensor.shape[3] - width) // 2
    return tensor[:, :, top:top + height, left:left + width]


def torch_fcn8(torch, n_classes=21):
    """FCN-8's forward pass in PyTorch (random weights), for timing only."""
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)

    def weights(*shape):
        return torch.randn(*shape, generator=generator) / np.sqrt(np.prod(shape[1:]))

    body = []
    channels = 3
    for block, (filters, count) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        layers = []
        for index in range(count):
            layers.append((weights(filters, channels, 3, 3), 100 if block == index == 0 else 1))
            channels = filters
        body.append(layers)
    fc6, fc7 = weights(4096, 512, 7, 7), weights(4096, 4096, 1, 1)
    score_fr, score_pool4 = weights(n_classes, 4096, 1, 1), weights(n_classes, 512, 1, 1)
    score_pool3 = weights(n_classes, 256, 1, 1)
    score2, score4 = weights(n_classes, n_classes, 4, 4), weights(n_classes, n_classes, 4, 4)
    upsample = weights(n_classes, n_classes, 16, 16)

    def forward(x):
        h, pools = x, []
        for layers in body:
            for w, pad in layers:
                h = F.relu(F.conv2d(h, w, padding=pad))
            h = F.max_pool2d(h, 2)
            pools.append(h)
        h = F.relu(F.conv2d(F.relu(F.conv2d(h, fc6)), fc7))
        h = F.conv_transpose2d(F.relu(F.conv2d(h, score_fr)), score2, stride=2)
        skip = F.relu(F.conv2d(pools[3], score_pool4))
        size = min(h.shape[2], skip.shape[2]), min(h.shape[3], skip.shape[3])
        h = _center_crop(h, *size) + _center_crop(skip, *size)
        h = F.conv_transpose2d(h, score4, stride=2)
        skip = F.relu(F.conv2d(pools[2], score_pool3))
        size = min(h.shape[2], skip.shape[2]), min(h.shape[3], skip.shape[3])
        h = F.conv_transpose2d(_center_crop(h, *size) + _center_crop(skip, *size), upsample,
                               stride=8)
        return torch.softmax(_center_crop(h, *x.shape[2:]), dim=1)

    return forward


def bench_network(size, repeat, modes, sgemm=None):
    import resource

    import pytensor
    import pytensor.tensor as pt

    from fcn8_lasagne.layers import get_output
    from fcn8_lasagne.models import buildFCN8

    x = pt.tensor4("x", dtype="float32")
    net = buildFCN8(3, x, n_classes=21)
    output = get_output(net["probs_dimshuffle"] if isinstance(net, dict) else net[0],
                        deterministic=True)
    image = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    functions = {}
    for mode in modes:
        start = time.perf_counter()
        if mode == "cpu":  # what users get: this package's CPU mode and rewrites
            from fcn8_lasagne.compile import function as compile_function

            function = compile_function([x], output, device="cpu")
        else:
            function = pytensor.function([x], output, mode=None if mode == "NUMBA" else mode)
        compiled = time.perf_counter() - start
        start = time.perf_counter()
        function(image)
        first = time.perf_counter() - start
        print(f"FCN-8 {size}x{size} mode={mode}: compile {compiled:.2f} s, first call "
              f"{first:.2f} s", flush=True)
        functions[mode] = lambda function=function: np.asarray(function(image))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        forward, tensor = torch_fcn8(torch), torch.from_numpy(image)

        def run_torch():
            with torch.no_grad():
                forward(tensor)

        functions["torch"] = run_torch
    best = best_times(functions, repeat)
    print("best of", repeat, {mode: round(seconds, 3) for mode, seconds in best.items()})
    sgemm = max(sgemm or 0.0, sgemm_gflops(repeat=3))
    flops = fcn8_flops(1, size, size, n_classes=21)
    print(f"forward pass {flops / 1e9:.1f} GFLOP (direct convolutions); sgemm {sgemm:.1f} "
          "GFLOP/s; " + ", ".join(
              f"{mode} {flops / seconds / 1e9:.1f} GFLOP/s ({100 * flops / seconds / 1e9 / sgemm:.0f}%"
              " of sgemm)" for mode, seconds in best.items()))
    print(f"peak RSS {peak:.0f} MiB (weights, compiled functions and their first calls)")


def _cpu_model():
    import subprocess

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in lscpu.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--direct", action="store_true",
                        help="also time our kernels without the Winograd path")
    parser.add_argument("--network", action="store_true")
    parser.add_argument("--modes", default="cpu,CVM,NUMBA,JAX",
                        help="cpu: fcn8_lasagne.compile.function(device='cpu'); others: "
                             "pytensor.function(mode=...)")
    args = parser.parse_args()
    print("BLAS:", blas_info(), "CPU:", _cpu_model(), simd_level(),
          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    sgemm = bench_layers(args.size, args.repeat, args.backward, args.batch, args.direct)
    if args.network:
        bench_network(args.size, args.repeat, args.modes.split(","), sgemm)


if __name__ == "__main__":
    main()
