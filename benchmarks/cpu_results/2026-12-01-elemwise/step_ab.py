"""A/B timing of the main job's training step (FCN-8, batch 1, 64x80, 2 classes, Adam).

python step_ab.py [--no-threaded]  -- the second compiles without the threaded_elemwise
rewrite. Prints the times of 8 steps after one warm-up call, their median and the peak RSS.
Run the two variants in alternating processes.
"""
import resource
import sys
import time

import numpy as np
import pytensor.tensor as T

import fcn8_lasagne.compile as compiling
from fcn8_lasagne.models import buildFCN8
from fcn8_lasagne.training import build_functions

if "--no-threaded" in sys.argv:
    cpu_mode = compiling.mode_for_device
    compiling.mode_for_device = lambda device: (
        cpu_mode(device).excluding("threaded_elemwise") if device == "cpu" else cpu_mode(device))
np.random.seed(1)
x, y = T.tensor4("x"), T.ivector("y")
net = buildFCN8(3, x, n_classes=2, trainable=True)
train_fn = build_functions(net["probs"], x, y, 2, [2]).train_fn
X = np.random.rand(1, 3, 64, 80).astype("float32")
Y = np.random.randint(0, 3, 64 * 80).astype("int32")
train_fn(X, Y)
times = []
for _ in range(8):
    start = time.perf_counter()
    train_fn(X, Y)
    times.append(time.perf_counter() - start)
print("no-threaded" if "--no-threaded" in sys.argv else "threaded   ",
      " ".join(f"{t:.3f}" for t in times), f"median {np.median(times):.3f}",
      f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
