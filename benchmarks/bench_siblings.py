"""The sibling tutorials' training steps: this package against the same networks in PyTorch.

Usage::

    python benchmarks/bench_siblings.py                  # both cases, a few minutes on 2 cores
    python benchmarks/bench_siblings.py --only fcn1d --rounds 5
    python benchmarks/bench_siblings.py --quick          # small sizes, to try the script

Cases (one Adam step each: forward in training mode, cross-entropy, gradient, update):

* ``unet``: ``build_UNet`` (base 64 filters, 1 input channel, 2 classes, ELU, batch norm),
  batch 5 of 224x224, as ``train_unet.py`` with its 224x224 crops and ``-batch_size 5 5 1``;
* ``fcn1d``: ``fcn1d.build_model`` (2 channels, 8 ``bn_relu_conv`` blocks of 64 filters of
  length 25, 7 classes), batch 1024 of 200 samples, as ``train_fcn1D.py``.

Ours is compiled with ``fcn8_lasagne.compile.function`` (the C backend) and
``fcn8_lasagne.updates.adam``; PyTorch runs the same architecture eagerly with
``torch.optim.Adam`` and the same initial weights (kernels flipped: Lasagne convolves,
PyTorch correlates), so the two first losses must agree before anything is timed. The steps
then take turns (ours, torch, ours, ...) after one warm-up step each, so that both sides of a
pair see the same load on a shared machine; the ratio reported is the median of the per-pair
ratios. Weight decay (``-penal_cst``) is left out on both sides.
"""

import argparse
import os
import platform
import statistics
import time

import numpy as np


def _he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


# ----------------------------------------------------------------------------- ours

def ours_unet(case):
    from fcn8_lasagne.models import build_UNet

    net = build_UNet(base_n_filters=case["base"])
    return net["input"].input_var, net["output_flattened"]


def ours_fcn1d(case):
    import pytensor.tensor as pt

    from fcn8_lasagne.models.fcn1d import build_model

    output, net = build_model(pt.tensor3("x"), n_classes=7, nb_in_channels=2,
                            filter_size=case["filter_size"], n_filters=case["filters"],
                            depth=case["depth"])
    return net["input"].input_var, output[0]


def prepare_ours(case, weights):
    import pytensor.tensor as pt

    from fcn8_lasagne import objectives, updates
    from fcn8_lasagne.compile import function
    from fcn8_lasagne.layers import get_all_params, get_output
    from fcn8_lasagne.ops import memory as _memory

    _memory.turn_on()  # as fcn8 train does
    x, top = ours_unet(case) if case["name"] == "unet" else ours_fcn1d(case)
    params = get_all_params(top, trainable=True)
    for param in params:
        param.set_value(weights[param.name])
    y = pt.ivector("y")
    loss = objectives.categorical_crossentropy(get_output(top), y).mean()
    start = time.perf_counter()
    step = function([x, y], loss, updates=updates.adam(loss, params, learning_rate=1e-4))
    return step, time.perf_counter() - start


def ours_weights(case, seed):
    """He-scaled random trainable weights by parameter name (beta 0, gamma 1)."""
    from fcn8_lasagne.layers import get_all_params

    _, top = ours_unet(case) if case["name"] == "unet" else ours_fcn1d(case)
    rng = np.random.default_rng(seed)
    weights = {}
    for param in get_all_params(top, trainable=True):
        shape = param.get_value().shape
        kind = param.name.rsplit(".", 1)[1]
        if kind == "W":
            fan_in = shape[1] * int(np.prod(shape[2:]))
            weights[param.name] = _he(rng, shape, fan_in)
        else:
            weights[param.name] = param.get_value()
    return weights


# ----------------------------------------------------------------------------- torch

def torch_unet(case, weights):
    import torch
    from torch import nn

    base = case["base"]

    class Block(nn.Module):
        def __init__(self, layer, bn_channels, name):
            super().__init__()
            self.layer = layer
            self.bn = nn.BatchNorm2d(bn_channels, eps=1e-4, momentum=0.1)
            with torch.no_grad():
                w = torch.from_numpy(weights[f"{name}.W"][:, :, ::-1, ::-1].copy())
                self.layer.weight.copy_(w)
                self.bn.bias.copy_(torch.from_numpy(weights[f"{name}_bn.beta"]))
                self.bn.weight.copy_(torch.from_numpy(weights[f"{name}_bn.gamma"]))

        def forward(self, x):
            return nn.functional.elu(self.bn(self.layer(x)))

    def conv(name, n_in, n_out):
        return Block(nn.Conv2d(n_in, n_out, 3, padding=1, bias=False), n_out, name)

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.down = nn.ModuleList()
            n_in = 1
            for block in range(1, 5):
                n_out = base * 2 ** (block - 1)
                self.down.append(nn.Sequential(conv(f"contr_{block}_1", n_in, n_out),
                                               conv(f"contr_{block}_2", n_out, n_out)))
                n_in = n_out
            self.bottom = nn.Sequential(conv("encode_1", n_in, base * 16),
                                        conv("encode_2", base * 16, base * 16))
            self.ups, self.expands = nn.ModuleList(), nn.ModuleList()
            n_in = base * 16
            for level in range(1, 5):
                n_up = base * 2 ** (5 - level)
                self.ups.append(Block(nn.ConvTranspose2d(n_in, n_up, 2, stride=2, bias=False),
                                      n_up, f"upscale{level}"))
                n_skip = n_up // 2
                self.expands.append(nn.Sequential(
                    conv(f"expand_{level}_1", n_up + n_skip, n_up // 2),
                    conv(f"expand_{level}_2", n_up // 2, n_up // 2)))
                n_in = n_up // 2
            self.out = nn.Conv2d(base, 2, 1)
            with torch.no_grad():
                self.out.weight.copy_(torch.from_numpy(weights["output_segmentation.W"]))
                self.out.bias.copy_(torch.from_numpy(weights["output_segmentation.b"]))

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottom(x)
            for up, expand, skip in zip(self.ups, self.expands, reversed(skips)):
                x = expand(torch.cat([up(x), skip], dim=1))
            scores = self.out(x)
            return scores.permute(0, 2, 3, 1).reshape(-1, scores.shape[1])

    return UNet()


def torch_fcn1d(case, weights):
    import torch
    from torch import nn

    class FCN1D(nn.Module):
        def __init__(self):
            super().__init__()
            self.bns, self.convs = nn.ModuleList(), nn.ModuleList()
            n_in = 2
            k = case["filter_size"]
            for d in range(case["depth"]):
                bn = nn.BatchNorm1d(n_in, eps=1e-4, momentum=0.1)
                conv = nn.Conv1d(n_in, case["filters"], k, padding=k // 2)
                with torch.no_grad():
                    bn.bias.copy_(torch.from_numpy(weights[f"bn{d}.beta"]))
                    bn.weight.copy_(torch.from_numpy(weights[f"bn{d}.gamma"]))
                    conv.weight.copy_(torch.from_numpy(weights[f"conv{d}.W"][:, :, ::-1].copy()))
                    conv.bias.copy_(torch.from_numpy(weights[f"conv{d}.b"]))
                self.bns.append(bn)
                self.convs.append(conv)
                n_in = case["filters"]
            self.final = nn.Conv1d(n_in, 7, 1)
            with torch.no_grad():
                self.final.weight.copy_(torch.from_numpy(weights["final_conv.W"]))
                self.final.bias.copy_(torch.from_numpy(weights["final_conv.b"]))

        def forward(self, x):
            for bn, conv in zip(self.bns, self.convs):
                x = conv(torch.relu(bn(x)))
            scores = torch.relu(self.final(x))  # final_conv keeps Conv1DLayer's ReLU
            return scores.permute(0, 2, 1).reshape(-1, 7)

    return FCN1D()


def prepare_torch(case, weights):
    import torch

    model = torch_unet(case, weights) if case["name"] == "unet" else torch_fcn1d(case, weights)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


# ----------------------------------------------------------------------------- timing

CASES = {
    "unet": {"name": "unet", "base": 64, "batch": 5, "size": 224},
    "fcn1d": {"name": "fcn1d", "filters": 64, "filter_size": 25, "depth": 8, "batch": 1024},
}
QUICK = {
    "unet": {"name": "unet", "base": 8, "batch": 2, "size": 64},
    "fcn1d": {"name": "fcn1d", "filters": 16, "filter_size": 25, "depth": 4, "batch": 128},
}


def data(case, seed):
    rng = np.random.default_rng(seed + 1)
    if case["name"] == "unet":
        x = rng.random((case["batch"], 1, case["size"], case["size"]), dtype=np.float32)
        y = rng.integers(0, 2, case["batch"] * case["size"] ** 2)
    else:
        x = rng.standard_normal((case["batch"], 2, 200)).astype(np.float32)
        y = rng.integers(0, 7, case["batch"] * 200)
    return x, y.astype(np.int32)


def run_case(case, rounds, seed):
    import torch

    weights = ours_weights(case, seed)
    ours, compile_s = prepare_ours(case, weights)
    theirs = prepare_torch(case, weights)
    x, y = data(case, seed)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    start = time.perf_counter()
    first_ours = float(ours(x, y))
    first_call = time.perf_counter() - start
    first_torch = theirs(tx, ty)
    if not np.isclose(first_ours, first_torch, rtol=1e-3):
        raise SystemExit(f"{case['name']}: first losses differ: ours {first_ours}, "
                         f"torch {first_torch}")
    times = {"ours": [], "torch": []}
    for _ in range(rounds):
        for side, call in (("ours", lambda: ours(x, y)), ("torch", lambda: theirs(tx, ty))):
            time.sleep(0.2)
            start = time.perf_counter()
            call()
            times[side].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(times["ours"], times["torch"])]
    return {"case": case, "compile_s": compile_s, "first_call_s": first_call,
            "loss": (first_ours, first_torch), "ours_s": statistics.median(times["ours"]),
            "torch_s": statistics.median(times["torch"]), "ratio": statistics.median(ratios),
            "ratios": ratios}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    import pytensor
    import torch

    torch.manual_seed(options.seed)
    cases = QUICK if options.quick else CASES
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), platform.processor())
    flags = open("/proc/cpuinfo").read()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    print(f"{model} ({os.cpu_count()} CPUs, {simd}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), pytensor {pytensor.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for name in options.only or sorted(CASES):
        result = run_case(cases[name], options.rounds, options.seed)
        print(f"{name:6s} {result['case']}: compile {result['compile_s']:.1f} s "
              f"(first call {result['first_call_s']:.1f} s), first losses "
              f"{result['loss'][0]:.6f} / {result['loss'][1]:.6f}; step ours "
              f"{result['ours_s']:.3f} s, torch {result['torch_s']:.3f} s, ours/torch "
              f"{result['ratio']:.2f}x (pairs {', '.join(f'{r:.2f}' for r in result['ratios'])})",
              flush=True)


if __name__ == "__main__":
    main()
