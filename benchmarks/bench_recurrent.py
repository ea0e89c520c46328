"""Time ``LSTMLayer`` and ``GRULayer`` against ``torch.nn.LSTM``/``torch.nn.GRU`` on the CPU.

Usage::

    python benchmarks/bench_recurrent.py [--cells lstm,gru] [--batch 32] [--steps 50]
                                         [--inputs 64] [--units 128] [--repeat 20]
                                         [--variants fused,scan] [--torch-threads N]
                                         [--settle 0] [--run 3]

For each cell and variant (``fused``: the default layer, whose recurrence is one
:class:`~fcn8_lasagne.ops.recurrent.LSTMSequence` / ``GRUSequence`` op, its C time loop;
``fused-numpy``: the same op's NumPy ``perform``, what runs without a C++ compiler and
what the fused LSTM ran before it had C code; ``scan``: ``pytensor.scan``
(``layers.recurrent.USE_FUSED_OPS = False``); ``unroll``: ``unroll_scan=True``; all with
``precompute_input=True`` and no peepholes so that PyTorch computes the same thing;
``fused-noprecompute``, ``fused-peepholes`` (LSTM only), ``scan-noprecompute`` and
``scan-peepholes`` for comparison; ``jax`` (the fused op's ``lax.scan``), ``jax-scan`` and
``jax-unroll``: the graphs compiled with ``device="jax"``; ``scan-numpy`` /
``unroll-numpy`` (LSTM only): an experiment with the gate nonlinearities computed by
NumPy's vectorised ``tanh`` in a Python op inside ``scan``, to measure what PyTensor's
scalar C ``tanh``/``exp`` loops cost) it compiles (C mode, ``device="cpu"``, unless the
name starts with ``jax``) a forward function and a forward+backward function (the
gradients of ``sum(output)`` with respect to all trainable parameters and the input) and
prints the best of ``--repeat`` calls next to PyTorch's on the same arrays and weights,
with the ratio ours / torch. The four functions of a row are called in turns
(``benchmarks/_timing.py``'s ``best_times``), so load spikes on a shared machine hit all
alike, each ``--run`` times in a row per turn: these calls take a few milliseconds, and the
first after another library's call shares the cores with that library's threads
(PyTorch's OpenMP workers spin-wait for a few milliseconds after each call) or waits for
its own sleeping ones, while a training loop calls one function back to back; the best
call counts. ``--settle`` adds a pause before each turn. The outputs are checked against
PyTorch's first.
"""

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pytensor
from pytensor.compile.mode import Mode
from pytensor.link.vm import VMLinker

import fcn8_lasagne  # noqa: F401  (floatX=float32, mode=CVM)
from fcn8_lasagne import compile as fcompile
from fcn8_lasagne.layers import (
    Gate,
    GRULayer,
    InputLayer,
    LSTMLayer,
    get_all_params,
    get_output,
)
from fcn8_lasagne.layers import recurrent as recurrent_layers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_times  # noqa: E402

GATES = ("ingate", "forgetgate", "cell", "outgate")  # torch's i, f, g, o
GRU_GATES = ("resetgate", "updategate", "hidden_update")  # torch's r, z, n
#: torch's z is 1 - Lasagne's u = sigmoid(-a_u): the update gate's weights change sign.
GRU_SIGNS = {"resetgate": 1, "updategate": -1, "hidden_update": 1}
#: The ops' NumPy ``perform`` instead of their C code (the ``fused-numpy`` variant).
NUMPY_KERNEL_MODE = Mode(linker=VMLinker(c_thunks=False, use_cloop=False),
                         optimizer="fast_run")


class _NumpyNonlinearity(pytensor.graph.op.Op):
    """Experiment: tanh or sigmoid computed by NumPy (vectorised) instead of PyTensor's
    scalar C loop; its gradient is an expression of the output."""

    __props__ = ("kind",)

    def __init__(self, kind):
        self.kind = kind

    def make_node(self, x):
        x = pytensor.tensor.as_tensor_variable(x)
        return pytensor.graph.basic.Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        (x,) = inputs
        if self.kind == "tanh":
            outputs[0][0] = np.tanh(x)
        else:  # sigmoid = (1 + tanh(x / 2)) / 2, vectorised
            y = np.tanh(x * x.dtype.type(0.5))
            y += 1
            y *= x.dtype.type(0.5)
            outputs[0][0] = y

    def grad(self, inputs, output_grads):
        y = self(inputs[0])
        derivative = 1 - y * y if self.kind == "tanh" else y * (1 - y)
        return [output_grads[0] * derivative]


def _numpy_gates():
    tanh, sigmoid = _NumpyNonlinearity("tanh"), _NumpyNonlinearity("sigmoid")
    return dict(ingate=Gate(nonlinearity=sigmoid), forgetgate=Gate(nonlinearity=sigmoid),
                outgate=Gate(nonlinearity=sigmoid),
                cell=Gate(W_cell=None, nonlinearity=tanh), nonlinearity=tanh)


def build(cell, variant, args):
    l_in = InputLayer((None, args.steps, args.inputs))
    numpy_gates = "numpy" in variant and "fused" not in variant
    common = dict(unroll_scan="unroll" in variant,
                  precompute_input="noprecompute" not in variant)
    if cell == "lstm":
        layer = LSTMLayer(l_in, args.units, peepholes="peepholes" in variant,
                          **(_numpy_gates() if numpy_gates else {}), **common)
    else:
        layer = GRULayer(l_in, args.units, **common)
    recurrent_layers.USE_FUSED_OPS = "scan" not in variant
    try:
        out = get_output(layer)
    finally:
        recurrent_layers.USE_FUSED_OPS = True
    params = get_all_params(layer, trainable=True)
    device = "jax" if variant.startswith("jax") else "cpu"
    mode = NUMPY_KERNEL_MODE if variant == "fused-numpy" else None
    start = time.perf_counter()
    forward = fcompile.function([l_in.input_var], out, device=device, mode=mode)
    grads = pytensor.grad(out.sum(), params + [l_in.input_var])
    backward = fcompile.function([l_in.input_var], [out] + grads, device=device, mode=mode)
    x = np.zeros((args.batch, args.steps, args.inputs), "float32")
    forward(x), backward(x)  # JAX compiles at the first call
    return layer, forward, backward, time.perf_counter() - start


def torch_model(cell, layer, args):
    """``torch.nn.LSTM``/``GRU`` with the layer's weights (zero hidden biases)."""
    import torch

    values = {p.name: p.get_value() for p in layer.get_params()}
    if cell == "lstm":
        model = torch.nn.LSTM(args.inputs, args.units, batch_first=True)
        gates, signs = GATES, dict.fromkeys(GATES, 1)
    else:
        model = torch.nn.GRU(args.inputs, args.units, batch_first=True)
        gates, signs = GRU_GATES, GRU_SIGNS
    with torch.no_grad():
        model.weight_ih_l0.copy_(torch.tensor(np.concatenate(
            [signs[g] * values[f"W_in_to_{g}"].T for g in gates])))
        model.weight_hh_l0.copy_(torch.tensor(np.concatenate(
            [signs[g] * values[f"W_hid_to_{g}"].T for g in gates])))
        model.bias_ih_l0.copy_(torch.tensor(np.concatenate(
            [signs[g] * values[f"b_{g}"] for g in gates])))
        model.bias_hh_l0.zero_()
    return model


def machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        lscpu = ""
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines()
                  if line.startswith("Model name")), platform.processor())
    flags = next((line for line in lscpu.splitlines() if line.startswith("Flags")), "")
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model}, {os.cpu_count()} CPUs, {simd}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--variants", default="fused,scan")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads (0: torch's default)")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds of pause before each turn (default 0)")
    parser.add_argument("--run", type=int, default=3,
                        help="calls in a row per function and turn (default 3)")
    args = parser.parse_args()

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    print(f"machine: {machine()}; torch {torch.__version__} threads "
          f"{torch.get_num_threads()}; pytensor {pytensor.__version__}; "
          f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"batch {args.batch}, {args.steps} steps, {args.inputs} inputs, "
          f"{args.units} units, float32, best of {args.repeat} turns x {args.run} calls (interleaved)")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.steps, args.inputs)).astype("float32")
    xt = torch.tensor(x)
    header = f"{'cell':<5}{'variant':<20}{'compile s':>10}{'fwd ms':>9}{'torch':>8}" \
             f"{'ratio':>7}{'fwd+bwd ms':>12}{'torch':>8}{'ratio':>7}"
    print(header)
    for cell in args.cells.split(","):
        for variant in args.variants.split(","):
            if cell == "gru" and ("peepholes" in variant
                                  or ("numpy" in variant and "fused" not in variant)):
                continue  # LSTM-only variants
            layer, forward, backward, compile_s = build(cell, variant, args)
            model = torch_model(cell, layer, args)
            if "peepholes" not in variant:
                with torch.no_grad():
                    expected = model(xt)[0].numpy()
                error = np.abs(np.asarray(forward(x)) - expected).max()
                assert error < 1e-4, f"{cell} {variant}: differs from torch by {error}"

            def torch_forward():
                with torch.no_grad():
                    model(xt)

            xg = xt.clone().requires_grad_(True)

            def torch_backward():
                model.zero_grad()
                xg.grad = None
                model(xg)[0].sum().backward()

            def sync(result):  # JAX returns before the values are computed
                for value in result if isinstance(result, list) else [result]:
                    getattr(value, "block_until_ready", lambda: None)()

            best = best_times({"ours_f": lambda: sync(forward(x)),
                               "torch_f": torch_forward,
                               "ours_b": lambda: sync(backward(x)),
                               "torch_b": torch_backward}, args.repeat, args.settle, args.run)
            ours_f, torch_f = best["ours_f"], best["torch_f"]
            ours_b, torch_b = best["ours_b"], best["torch_b"]
            print(f"{cell:<5}{variant:<20}{compile_s:>10.1f}{1e3 * ours_f:>9.2f}"
                  f"{1e3 * torch_f:>8.2f}{ours_f / torch_f:>7.2f}{1e3 * ours_b:>12.2f}"
                  f"{1e3 * torch_b:>8.2f}{ours_b / torch_b:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
