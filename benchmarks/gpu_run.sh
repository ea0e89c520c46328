#!/usr/bin/env bash
# The GPU checks of the "GPU and speed" issue in one go, for a session lent a CUDA machine.
#
#   bash benchmarks/gpu_run.sh            # every step, from the repository root (or anywhere)
#   bash benchmarks/gpu_run.sh tests profile tf32      # only these steps (after the machine)
#
# Needs JAX with CUDA (pip install -e ".[gpu]") and a CUDA build of torch for the PyTorch
# column. Wheels in .whl/ (e.g. pytensor for a machine without a package index) are
# installed to /tmp/site first. Everything goes to $OUT (the device tool's returned folder)
# or benchmarks/gpu_results/; each step has a timeout and writes as it goes, so a cut-off
# run keeps what it measured. In order of importance:
#   1. the machine: nvidia-smi, versions, JAX devices, torch CUDA; meanwhile the synthetic
#      tutorial-sized dataset (547/183 images of 288x384) is generated in the background;
#   2. bench_fcn8.py at full float32 (the tutorial's numerics), every case in one process:
#      forward 224x224 and 500x500 (batch 1, 10), the 288x384 validation image, Adam steps
#      at 224x224 (batch 2, 10);
#   3. one real tutorial epoch, twice: `fcn8 train --device gpu` on the synthetic data with
#      the tutorial's crops (224x224), batches (10 / 1) and flips; the second epoch is the
#      steady-state time (the first includes compilation);
#   4. TF32 (PyTorch's cuDNN default, JAX's default on Ampere and later): forward and Adam
#      step at batch 10, 224x224, the validation image, and the epoch estimate;
#   5. tests/test_jax_mode.py with JAX on the GPU against the C backend (FCN-8 layer by
#      layer, all 42 gradients, an Adam step, dropout), two workers sharing the GPU;
#   6. profile: gpu_profile.py on the float32 forward pass at batch 10 (each side's kernels
#      and their GPU times, XLA's convolutions and layout copies).
# Steps by name: bench, epoch, tf32, tests, profile. Everything printed goes to gpu_run.log,
# the measurements to bench_*.json, the profile to profile/.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-benchmarks/gpu_results}"
mkdir -p "$RESULTS"
exec > >(tee -a "$RESULTS/gpu_run.log") 2>&1
PYTHON="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=2  # XLA's warnings (autotuning, timers) off; errors stay
# JAX and torch share the GPU in one process: allocate on demand, not 75% up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export FCN8_LASAGNE_CACHE=/tmp/fcn8_cache
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
# PyTensor's C backend needs Python's headers; without them it runs the Python code paths
if ! "$PYTHON" -c "import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))"; then
  export PYTENSOR_FLAGS="cxx="
  echo "no Python.h: PYTENSOR_FLAGS=cxx= (the C backend runs its Python code)"
fi

STEPS="${*:-bench epoch tf32 tests profile}"
wants() { [[ " $STEPS " == *" $1 "* ]]; }

# the tutorial-sized synthetic data, for step 3 (single-threaded, ~20-30 s)
DATA_PID=
if wants epoch; then
  nice "$PYTHON" -c "from fcn8_lasagne.data import ensure_synthetic_polyps as e; print(e(None, 547, 183, 1, (288, 384)))" &
  DATA_PID=$!
fi

# 1. the machine
date -u
nvidia-smi || echo "nvidia-smi not found"
echo "PYTENSOR_FLAGS=${PYTENSOR_FLAGS:-}"
"$PYTHON" - <<'PYTHON_END'
import importlib.metadata as metadata
import sys
print("python", sys.version.split()[0], sys.executable)
for package in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "torch",
                "pytensor", "numpy", "scipy"):
    try:
        print(package, metadata.version(package))
    except metadata.PackageNotFoundError:
        print(package, "not installed")
try:
    import jax
    print("jax devices:", jax.devices())
except Exception as error:  # report, do not stop: the checks below say what is missing
    print("jax:", error)
try:
    import torch
    print("torch cuda:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except ImportError as error:
    print("torch:", error)
PYTHON_END

if ! "$PYTHON" -c "import sys, jax; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)"; then
  echo "JAX sees no GPU: install fcn8_lasagne[gpu] first; nothing else was run."
  exit 2
fi

# 2. speed at full float32, both sides in one process
wants bench && timeout 190 "$PYTHON" benchmarks/bench_fcn8.py --device gpu --precision float32 \
  --forward-sizes 224 500 --train-sizes 224 --forward-batches 1 10 --train-batches 2 10 \
  --repeat 20 --budget 3 --json "$RESULTS/bench_gpu_float32.json"

# 3. the tutorial epoch, for real
[[ -n "$DATA_PID" ]] && wait "$DATA_PID"
wants epoch && timeout 100 "$PYTHON" -m fcn8_lasagne.cli train -dataset synthetic \
  --synthetic-images 547 183 1 --synthetic-size 288 384 -batch_size 10 1 1 \
  -data_augmentation '{"crop_size": [224, 224], "horizontal_flip": true, "fill_mode": "constant"}' \
  -num_epochs 2 --seed 0 --device gpu --savepath /tmp/epoch_run --no-progress

# 4. TF32 on both sides
wants tf32 && timeout 80 "$PYTHON" benchmarks/bench_fcn8.py --device gpu --precision tf32 \
  --forward-sizes 224 --train-sizes 224 --forward-batches 10 --train-batches 10 \
  --repeat 20 --budget 3 --json "$RESULTS/bench_gpu_tf32.json"

# 5. correctness on the GPU (device='jax' is the GPU when JAX has one)
wants tests && XLA_PYTHON_CLIENT_MEM_FRACTION=0.45 timeout 100 "$PYTHON" -m pytest -q \
  -p no:cacheprovider -n 2 -W ignore::DeprecationWarning tests/test_jax_mode.py 2>&1 | tail -n 15

# 6. where the float32 forward time goes (kernels of both sides, XLA's chosen convolutions)
wants profile && XLA_FLAGS="--xla_dump_to=/tmp/xla_dump --xla_dump_hlo_as_text" \
  timeout 90 "$PYTHON" benchmarks/gpu_profile.py --mode forward --batch 10 \
  --precision float32 --out "$RESULTS/profile"

echo "results in $RESULTS"
