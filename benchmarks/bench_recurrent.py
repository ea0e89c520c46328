"""Time an ``LSTMLayer`` against ``torch.nn.LSTM`` on the CPU, in one process.

Usage::

    python benchmarks/bench_recurrent.py [--batch 32] [--steps 50] [--inputs 64]
                                         [--units 128] [--repeat 20] [--variants fused,scan]
                                         [--torch-threads N]

For each variant (``fused``: the default ``LSTMLayer``, whose recurrence is one
:class:`~fcn8_lasagne.ops.recurrent.LSTMSequence` op (NumPy/BLAS time loop); ``scan``:
``pytensor.scan`` (``layers.recurrent.USE_FUSED_OPS = False``); ``unroll``:
``unroll_scan=True``; all with ``precompute_input=True`` and no peepholes so that PyTorch
computes the same thing; ``fused-noprecompute``, ``fused-peepholes``, ``scan-noprecompute``
and ``scan-peepholes`` for comparison; ``jax`` (the fused op's ``lax.scan``),
``jax-scan`` and ``jax-unroll``: the graphs compiled with ``device="jax"``;
``scan-numpy`` / ``unroll-numpy``: an experiment with the gate nonlinearities computed by
NumPy's vectorised ``tanh`` in a Python op inside ``scan``, to measure what PyTensor's
scalar C ``tanh``/``exp`` loops cost) it compiles (C mode,
``device="cpu"``, unless the name starts with ``jax``) a forward function and a
forward+backward function (the gradients of ``sum(output)`` with respect to all trainable
parameters and the input) and prints the best
of ``--repeat`` timed calls next to ``torch.nn.LSTM`` on the same arrays and weights, with
the ratio ours / torch. The outputs are checked against PyTorch's first. The machine may be
shared: minima are the numbers to compare.
"""

import argparse
import os
import platform
import subprocess
import time

import numpy as np
import pytensor

import fcn8_lasagne  # noqa: F401  (floatX=float32, mode=CVM)
from fcn8_lasagne import compile as fcompile
from fcn8_lasagne.layers import Gate, InputLayer, LSTMLayer, get_all_params, get_output
from fcn8_lasagne.layers import recurrent as recurrent_layers

GATES = ("ingate", "forgetgate", "cell", "outgate")  # torch's i, f, g, o


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


def best_time(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def build(variant, args):
    l_in = InputLayer((None, args.steps, args.inputs))
    layer = LSTMLayer(l_in, args.units, peepholes="peepholes" in variant,
                      unroll_scan="unroll" in variant,
                      precompute_input="noprecompute" not in variant,
                      **(_numpy_gates() if "numpy" in variant else {}))
    recurrent_layers.USE_FUSED_OPS = "scan" not in variant
    try:
        out = get_output(layer)
    finally:
        recurrent_layers.USE_FUSED_OPS = True
    params = get_all_params(layer, trainable=True)
    device = "jax" if variant.startswith("jax") else "cpu"
    start = time.perf_counter()
    forward = fcompile.function([l_in.input_var], out, device=device)
    grads = pytensor.grad(out.sum(), params + [l_in.input_var])
    backward = fcompile.function([l_in.input_var], [out] + grads, device=device)
    x = np.zeros((args.batch, args.steps, args.inputs), "float32")
    forward(x), backward(x)  # JAX compiles at the first call
    return layer, forward, backward, time.perf_counter() - start


def torch_lstm(layer, args):
    import torch

    model = torch.nn.LSTM(args.inputs, args.units, batch_first=True)
    values = {p.name: p.get_value() for p in layer.get_params()}
    with torch.no_grad():
        model.weight_ih_l0.copy_(torch.tensor(np.concatenate(
            [values[f"W_in_to_{g}"].T for g in GATES])))
        model.weight_hh_l0.copy_(torch.tensor(np.concatenate(
            [values[f"W_hid_to_{g}"].T for g in GATES])))
        model.bias_ih_l0.copy_(torch.tensor(np.concatenate([values[f"b_{g}"] for g in GATES])))
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
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--variants", default="fused,scan")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch.set_num_threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    print(f"machine: {machine()}; torch {torch.__version__} threads "
          f"{torch.get_num_threads()}; pytensor {pytensor.__version__}")
    print(f"LSTM batch {args.batch}, {args.steps} steps, {args.inputs} inputs, "
          f"{args.units} units, float32, best of {args.repeat}")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.steps, args.inputs)).astype("float32")
    xt = torch.tensor(x)
    header = f"{'variant':<20}{'compile s':>10}{'fwd ms':>9}{'torch':>8}{'ratio':>7}" \
             f"{'fwd+bwd ms':>12}{'torch':>8}{'ratio':>7}"
    print(header)
    for variant in args.variants.split(","):
        layer, forward, backward, compile_s = build(variant, args)
        model = torch_lstm(layer, args)
        if "peepholes" not in variant:
            with torch.no_grad():
                expected = model(xt)[0].numpy()
            error = np.abs(np.asarray(forward(x)) - expected).max()
            assert error < 1e-4, f"{variant}: differs from torch by {error}"

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

        ours_f = best_time(lambda: sync(forward(x)), args.repeat)
        torch_f = best_time(torch_forward, args.repeat)
        ours_b = best_time(lambda: sync(backward(x)), args.repeat)
        torch_b = best_time(torch_backward, args.repeat)
        print(f"{variant:<20}{compile_s:>10.1f}{1e3 * ours_f:>9.2f}{1e3 * torch_f:>8.2f}"
              f"{ours_f / torch_f:>7.2f}{1e3 * ours_b:>12.2f}{1e3 * torch_b:>8.2f}"
              f"{ours_b / torch_b:>7.2f}")


if __name__ == "__main__":
    main()
