"""A/B timing of the compiled elementwise loops (``compiled_elemwise`` rewrite).

python ab.py MODEL [--off]   MODEL: unet (batch 5, 224x224, Adam step), fcn8 (forward,
1x3x224x224), fcn8-step (main-job step, 1x3x64x80), resnet (fcn_resnet50 SGD step, 2x3x240x240)

``--off`` compiles without the rewrite. Prints the times of the calls after one warm-up,
their median and the peak RSS. Run the two variants in alternating processes.
"""
import os
import resource
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))

import fcn8_lasagne.compile as compiling  # noqa: E402

OFF = "--off" in sys.argv
if OFF:
    cpu_mode = compiling.mode_for_device
    compiling.mode_for_device = lambda device: (
        cpu_mode(device).excluding("compiled_elemwise") if device == "cpu"
        else cpu_mode(device))


def unet():
    import bench_siblings as siblings

    case = siblings.CASES["unet"]
    step, _ = siblings.prepare_ours(case, siblings.ours_weights(case, 0))
    x, y = siblings.data(case, 0)
    return lambda: step(x, y.astype(np.int32)), 6


def fcn8_forward():
    import pytensor.tensor as pt

    from fcn8_lasagne.layers import get_output
    from fcn8_lasagne.models import buildFCN8

    x = pt.tensor4("x")
    net = buildFCN8(3, x, n_classes=21)
    forward = compiling.function([x], get_output(net["probs"], deterministic=True))
    image = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    return lambda: forward(image), 6


def fcn8_step():
    import pytensor.tensor as pt

    from fcn8_lasagne.models import buildFCN8
    from fcn8_lasagne.ops import memory
    from fcn8_lasagne.training import build_functions

    memory.turn_on()
    np.random.seed(1)
    x, y = pt.tensor4("x"), pt.ivector("y")
    net = buildFCN8(3, x, n_classes=2, trainable=True)
    train = build_functions(net["probs"], x, y, 2, [2]).train_fn
    image = np.random.rand(1, 3, 64, 80).astype("float32")
    labels = np.random.randint(0, 2, 64 * 80).astype("int32")
    return lambda: train(image, labels), 8


def resnet():
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax

    from fcn8_lasagne import updates
    from fcn8_lasagne.layers import get_all_params, get_output
    from fcn8_lasagne.models.fcn_resnet import buildFCNResNet
    from fcn8_lasagne.ops import memory

    memory.turn_on()
    x, y = pt.tensor4("x"), pt.itensor3("y")
    net = buildFCNResNet(3, x, 21, "resnet50", "torchvision")
    scores = get_output(net["out"])
    loss = -pt.mean(pt.take_along_axis(log_softmax(scores, axis=1), y[:, None], axis=1))
    params = get_all_params(net["out"], trainable=True)
    step = compiling.function([x, y], loss, updates=updates.momentum(
        loss, params, learning_rate=1e-3))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((2, 3, 240, 240), dtype=np.float32)
    labels = rng.integers(0, 21, (2, 240, 240)).astype(np.int32)
    return lambda: step(images, labels), 4


sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, ".."))
call, repeats = {"unet": unet, "fcn8": fcn8_forward, "fcn8-step": fcn8_step,
                 "resnet": resnet}[sys.argv[1]]()
call()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
print(f"{sys.argv[1]:9s} {'off' if OFF else 'on '}", " ".join(f"{t:.3f}" for t in times),
      f"median {np.median(times):.3f}",
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
