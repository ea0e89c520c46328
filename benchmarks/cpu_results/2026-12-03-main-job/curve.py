"""Learning curve of the full FCN-8 on the synthetic data: val (and test) polyp IoU every K steps.
usage (from the repository root): python curve.py TAG --lr 1e-4 --seed 1 --steps 200 --every 25 --size 64 80 --ntrain 48 --batch 1"""
import argparse, os, sys, time, json
import numpy as np
ap = argparse.ArgumentParser()
ap.add_argument("tag"); ap.add_argument("--lr", type=float, default=1e-4); ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--steps", type=int, default=200); ap.add_argument("--every", type=int, default=25)
ap.add_argument("--size", type=int, nargs=2, default=(64, 80)); ap.add_argument("--ntrain", type=int, default=48)
ap.add_argument("--batch", type=int, default=1); ap.add_argument("--nval", type=int, default=12)
ap.add_argument("--test", action="store_true")
a = ap.parse_args()
import pytensor.tensor as T
from fcn8_lasagne.data import Augmentation, BatchIterator, load_dataset
from fcn8_lasagne.models import buildFCN8
from fcn8_lasagne.training import build_functions, run_validation
from fcn8_lasagne.metrics import jaccard_from_totals
def cpu():
    t = os.times(); return t.user + t.system
opts = dict(n_train=a.ntrain, n_valid=a.nval, n_test=12, image_size=tuple(a.size), seed=0)
sets = [load_dataset("synthetic", None, s, **opts) for s in ("train", "valid", "test")]
np.random.seed(a.seed)
aug = Augmentation.from_tutorial_dict({"horizontal_flip": True}, void_label=sets[0].void_label)
tr = BatchIterator(sets[0], a.batch, shuffle=True, seed=a.seed, augmentation=aug)
va = BatchIterator(sets[1], 4); te = BatchIterator(sets[2], 4)
x, y = T.tensor4("x"), T.ivector("y")
net = buildFCN8(3, x, n_classes=2, trainable=True, void_labels=[2])
fns = build_functions(net["probs"], x, y, 2, [2], learning_rate=a.lr)
out = open(f"curve_{a.tag}.txt", "a")  # in the current folder
def log(s):
    print(s, flush=True); out.write(s + "\n"); out.flush()
log(f"# {vars(a)}")
step = 0; losses = []; tw = tc = 0.0
while step < a.steps:
    for X, Y in tr:
        s = time.perf_counter(); c = cpu()
        losses.append(float(fns.train_fn(X, Y.reshape(-1))))
        tw += time.perf_counter() - s; tc += cpu() - c
        step += 1
        if step % a.every == 0 or step == a.steps:
            cv, av, jt = run_validation(fns.val_fn, va, 2)
            pc, mj = jaccard_from_totals(jt)
            extra = ""
            if a.test:
                ct, at, jt2 = run_validation(fns.val_fn, te, 2); pc2, mj2 = jaccard_from_totals(jt2)
                extra = f" test polyp {pc2[1]:.3f} mean {mj2:.3f}"
            log(f"step {step} train {np.mean(losses[-a.every:]):.3f} val loss {cv:.3f} polyp {pc[1]:.3f} mean {mj:.3f}{extra} | step wall {tw/step:.2f} cpu {tc/step:.2f} load {os.getloadavg()[0]:.1f}")
        if step >= a.steps:
            break
