"""Where the time of the CPU convolution kernels goes, layer by layer on FCN-8's shapes.

Usage::

    python benchmarks/profile_conv_cpu.py [--size 224] [--batch 1] [--repeat 3] [--backward]

Each layer's kernel (forward; with ``--backward`` also the input and weight gradients) runs
``--repeat`` times with timers wrapped around the pieces of :mod:`fcn8_lasagne.ops._conv_cpu`
and :mod:`fcn8_lasagne.ops._winograd` (module attributes replaced for the run), and the
fastest call is reported:

* **wall**: the kernel call, and its GFLOP/s counted as a direct convolution;
* **GEMM**: thread-seconds inside ``gemm`` and the GFLOP/s of the products it actually did
  (Winograd's are fewer than the direct count), against one thread's ``sgemm`` on
  3072x3072 measured in this run;
* **transforms**: thread-seconds in Winograd's input, output and filter transforms (the
  compiled ones of :mod:`fcn8_lasagne.ops._winograd_c`, or with ``--numpy-transforms`` the
  NumPy ones);
* **pad/copy**: wall time of the padded copies (``pad_nd``, ``_pad_channels_last``) and of
  the patch matrices (``_unfold``), both partly threaded;
* **idle**: thread-seconds with no work: inside the ``parallel_for`` regions
  ``workers * wall - busy``, outside them (serial code in the calling thread) the other
  workers' share.

The wrappers cost about a microsecond a call (hundreds of calls per layer): the fastest call
here is a few percent slower than unprofiled. Numbers are shares; compare layers, not runs.
"""

import argparse
import collections
import threading
import time

import numpy as np

from _flops import conv_flops, fcn8_layers, simd_level
from fcn8_lasagne.ops import _conv_cpu, _threads, _winograd, _winograd_c
from fcn8_lasagne.ops._blas import blas_info, gemm, single_threaded_blas

_PHASES = ("gemm", "transforms", "pad", "unfold")


class Recorder:
    """Thread-safe sums of seconds per phase, and GEMM operations."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.seconds = collections.Counter()
        self.gemm_flops = 0.0
        self.region_wall = 0.0
        self.region_busy = 0.0

    def add(self, key, seconds, flops=0.0):
        with self.lock:
            self.seconds[key] += seconds
            self.gemm_flops += flops


RECORDER = Recorder()
_depth = threading.local()


def _timed(function, phase):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            RECORDER.add(phase, time.perf_counter() - start)

    return wrapper


def _timed_outer(function, phase):
    """Like :func:`_timed`, but only the outermost call of nested ones counts."""
    def wrapper(*args, **kwargs):
        if getattr(_depth, phase, 0):
            return function(*args, **kwargs)
        setattr(_depth, phase, 1)
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            setattr(_depth, phase, 0)
            RECORDER.add(phase, time.perf_counter() - start)

    return wrapper


def _timed_gemm(a, b, out, beta=0.0, trans_a=False, trans_b=False):
    inner = a.shape[0] if trans_a else a.shape[1]
    start = time.perf_counter()
    gemm(a, b, out, beta=beta, trans_a=trans_a, trans_b=trans_b)
    RECORDER.add("gemm", time.perf_counter() - start, 2.0 * out.size * inner)


_original_parallel_for = _threads.parallel_for


def _timed_parallel_for(tasks, body, make_state=None, flops=None):
    """``parallel_for`` that records its wall time and its task bodies' thread-seconds."""
    if getattr(_threads._in_worker, "active", False):
        return _original_parallel_for(tasks, body, make_state, flops)
    busy = [0.0]
    lock = threading.Lock()

    def timed_body(task, state):
        start = time.perf_counter()
        try:
            body(task, state)
        finally:
            with lock:
                busy[0] += time.perf_counter() - start

    start = time.perf_counter()
    result = _original_parallel_for(tasks, timed_body, make_state, flops)
    with RECORDER.lock:
        RECORDER.region_wall += time.perf_counter() - start
        RECORDER.region_busy += busy[0]
    return result


def install():
    """Replace the kernels' helpers by timed versions (for this process)."""
    for module in (_conv_cpu, _winograd):
        module.gemm = _timed_gemm
        module.parallel_for = _timed_parallel_for
    for name in ("_transform_input", "_transform_output", "_transform_output_grad",
                 "_filter_transform", "_kernel_transform"):
        setattr(_winograd, name, _timed(getattr(_winograd, name), "transforms"))
    for name in ("transform_input", "transform_output", "transform_output_grad"):
        setattr(_winograd_c, name, _timed(getattr(_winograd_c, name), "transforms"))
    for name in ("pad_nd", "_pad_channels_last"):
        setattr(_conv_cpu, name, _timed_outer(getattr(_conv_cpu, name), "pad"))
    _conv_cpu.pad_images = _timed_outer(_conv_cpu.pad_images, "pad")
    _conv_cpu._unfold = _timed_outer(_conv_cpu._unfold, "unfold")


def single_thread_sgemm(size=3072, repeat=3):
    """Best GFLOP/s of one thread's ``size``² float32 product."""
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    best = np.inf
    with single_threaded_blas():
        gemm(a, b, out)
        for _ in range(repeat):
            start = time.perf_counter()
            gemm(a, b, out)
            best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best / 1e9


def kernel_calls(kind, x, w, stride, pad, backward):
    """``{name: callable}`` of one layer's kernels (as ``bench_ops.layer_functions``)."""
    strides, pads = (stride, stride), (pad, pad)
    if kind == "deconv":
        out_hw = tuple((n - 1) * stride - 2 * pad + k for n, k in zip(x.shape[2:], w.shape[2:]))
        return {"forward": lambda: _conv_cpu.conv2d_backward_input(x, w, out_hw, pads, strides,
                                                                    False)}
    calls = {"forward": lambda: _conv_cpu.conv2d_forward(x, w, pads, strides, False)}
    if backward:
        out = np.ascontiguousarray(_conv_cpu.conv2d_forward(x, w, pads, strides, False))
        calls["grad in"] = lambda: _conv_cpu.conv2d_backward_input(out, w, x.shape[2:], pads,
                                                                    strides, False)
        calls["grad w"] = lambda: _conv_cpu.conv2d_backward_weights(x, out, w.shape[2:], pads,
                                                                     strides, False)
    return calls


def profile_call(call, repeat):
    """The recorder's account of the fastest of ``repeat`` calls (after a warm-up)."""
    call()
    best = None
    for _ in range(repeat):
        RECORDER.reset()
        start = time.perf_counter()
        call()
        wall = time.perf_counter() - start
        if best is None or wall < best["wall"]:
            best = {"wall": wall, "seconds": dict(RECORDER.seconds),
                    "gemm_flops": RECORDER.gemm_flops, "region_wall": RECORDER.region_wall,
                    "region_busy": RECORDER.region_busy}
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--min-gflop", type=float, default=0.1,
                        help="skip layers of fewer GFLOP (the score layers)")
    parser.add_argument("--layers", help="comma-separated layer names (default: all)")
    parser.add_argument("--numpy-transforms", action="store_true",
                        help="the Winograd path with its NumPy transforms, not the compiled ones")
    args = parser.parse_args()
    workers = _threads.worker_count()
    one_thread = single_thread_sgemm()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; BLAS {blas_info()}; "
          f"{simd_level()}; one thread's sgemm 3072²: {one_thread:.1f} GFLOP/s; "
          f"workers {workers}")
    install()
    if args.numpy_transforms:
        _winograd._use_c_transforms = False
    header = ("layer", "kernel", "wall ms", "GF/s (direct)", "GEMM ms·thr", "GEMM GF/s/thr",
              "GEMM % of 1-thr sgemm", "transforms ms·thr", "pad ms", "unfold ms",
              "idle ms·thr", "other ms·thr")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    totals = collections.Counter()
    rng = np.random.default_rng(0)
    for name, kind, x_shape, w_shape, stride, pad in fcn8_layers(args.size):
        x = rng.standard_normal((args.batch,) + x_shape[1:]).astype(np.float32)
        w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
        flops = conv_flops(kind, x.shape, w_shape, stride, pad)
        if flops < args.min_gflop * 1e9 or (args.layers and name not in args.layers.split(",")):
            continue
        for kernel, call in kernel_calls(kind, x, w, stride, pad, args.backward).items():
            best = profile_call(call, args.repeat)
            wall, seconds = best["wall"], best["seconds"]
            gemm_s = seconds.get("gemm", 0.0)
            transform_s = seconds.get("transforms", 0.0)
            region_idle = max(0.0, workers * best["region_wall"] - best["region_busy"])
            serial_idle = (workers - 1) * max(0.0, wall - best["region_wall"])
            idle = region_idle + serial_idle
            other = max(0.0, workers * wall - idle - gemm_s - transform_s
                        - seconds.get("pad", 0.0) - seconds.get("unfold", 0.0))
            gemm_rate = best["gemm_flops"] / gemm_s / 1e9 if gemm_s else float("nan")
            for key, value in (("wall", wall), ("gemm", gemm_s), ("transforms", transform_s),
                               ("pad", seconds.get("pad", 0.0)),
                               ("unfold", seconds.get("unfold", 0.0)), ("idle", idle),
                               ("other", other), ("flops", flops)):
                totals[key] += value
            print(f"| {name} | {kernel} | {wall * 1e3:.1f} | {flops / wall / 1e9:.0f} | "
                  f"{gemm_s * 1e3:.1f} | {gemm_rate:.0f} | {100 * gemm_rate / one_thread:.0f}% | "
                  f"{transform_s * 1e3:.1f} | {seconds.get('pad', 0.0) * 1e3:.1f} | "
                  f"{seconds.get('unfold', 0.0) * 1e3:.1f} | {idle * 1e3:.1f} | "
                  f"{other * 1e3:.1f} |", flush=True)
    wall = totals["wall"]
    print(f"| **all** | | {wall * 1e3:.0f} | {totals['flops'] / wall / 1e9:.0f} | "
          f"{totals['gemm'] * 1e3:.0f} | | | {totals['transforms'] * 1e3:.0f} | "
          f"{totals['pad'] * 1e3:.0f} | {totals['unfold'] * 1e3:.0f} | "
          f"{totals['idle'] * 1e3:.0f} | {totals['other'] * 1e3:.0f} |")
    capacity = workers * wall
    print(f"# shares of the {workers} threads' time ({capacity * 1e3:.0f} ms·thr): GEMM "
          f"{100 * totals['gemm'] / capacity:.0f}%, transforms "
          f"{100 * totals['transforms'] / capacity:.0f}%, pad/unfold (wall) "
          f"{100 * (totals['pad'] + totals['unfold']) / capacity:.0f}%, idle "
          f"{100 * totals['idle'] / capacity:.0f}%, other "
          f"{100 * totals['other'] / capacity:.0f}%")


if __name__ == "__main__":
    main()
