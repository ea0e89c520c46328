"""Time FCN-8 train steps (batch B, HxW) and a val step; args: sizes like 64x80 32x40 ; env BATCH, REPS."""
import os, sys, time
import numpy as np
def cpu():
    t = os.times(); return t.user + t.system
t0 = time.perf_counter()
import pytensor.tensor as T
import fcn8_lasagne.compile as compiling
from fcn8_lasagne.models import buildFCN8
from fcn8_lasagne.training import build_functions
from fcn8_lasagne.ops._blas import blas_info
tag = os.environ.get("TAG", "native")
print(tag, "import", round(time.perf_counter() - t0, 1), blas_info(), flush=True)
np.random.seed(1)
x, y = T.tensor4("x"), T.ivector("y")
net = buildFCN8(3, x, n_classes=2, trainable=True)
t0 = time.perf_counter(); c0 = cpu()
fns = build_functions(net["probs"], x, y, 2, [2])
print(tag, "compile wall", round(time.perf_counter() - t0, 1), "cpu", round(cpu() - c0, 1), flush=True)
B = int(os.environ.get("BATCH", "1"))
reps = int(os.environ.get("REPS", "5"))
for size in sys.argv[1:]:
    h, w = map(int, size.split("x"))
    X = np.random.rand(B, 3, h, w).astype("float32")
    Y = np.random.randint(0, 3, B * h * w).astype("int32")
    fns.train_fn(X, Y)
    times, cpus = [], []
    for _ in range(reps):
        s = time.perf_counter(); c = cpu(); fns.train_fn(X, Y)
        times.append(time.perf_counter() - s); cpus.append(cpu() - c)
    X4 = np.random.rand(4, 3, h, w).astype("float32"); Y4 = np.random.randint(0, 3, 4 * h * w).astype("int32")
    fns.val_fn(X4, Y4)
    s = time.perf_counter(); c = cpu(); fns.val_fn(X4, Y4); v = time.perf_counter() - s; vc = cpu() - c
    print(f"{tag} {size} B={B} train wall min {min(times):.3f} med {np.median(times):.3f} cpu med {np.median(cpus):.3f} min {min(cpus):.3f}| val b4 wall {v:.3f} cpu {vc:.3f} load {os.getloadavg()[0]:.2f}", flush=True)
