#!/usr/bin/env bash
# The GPU checks of the "GPU and speed" issue in one go, for a session lent a CUDA machine.
#
#   bash benchmarks/gpu_run.sh            # from the repository root (or anywhere)
#
# Installs nothing: it needs JAX with CUDA (pip install -e ".[gpu]") and, for the PyTorch
# column, a CUDA build of torch already present. It writes everything under $OUT (the device
# tool's returned folder) or benchmarks/gpu_results/, and fits in about 10 minutes:
#   1. the machine: nvidia-smi, JAX devices, torch CUDA;
#   2. tests/test_jax_mode.py: FCN-8 with device='jax' (the GPU) against the C backend,
#      layer by layer, all 42 gradients, an Adam step, dropout (full float32 products);
#   3. bench_fcn8.py --device gpu at full float32 (the tutorial's numerics): forward at
#      224 and 500 (batch 1, 10), the 288x384 validation image, Adam steps at 224 (batch 2,
#      10) and the tutorial-epoch estimate; then the batch-10 forward pass at TF32 (PyTorch's
#      cuDNN default, JAX's default on Ampere and later).
# Every step has a timeout; the benchmark writes its JSON after each case, so a cut-off run
# keeps what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-benchmarks/gpu_results}"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1

{
  date -u
  nvidia-smi || echo "nvidia-smi not found"
  python - <<'EOF'
import importlib.metadata as metadata
for package in ("jax", "jaxlib", "jax-cuda12-plugin", "torch", "pytensor", "numpy"):
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
EOF
} 2>&1 | tee "$RESULTS/machine.txt"

if ! python -c "import sys, jax; sys.exit(0 if any(d.platform == 'gpu' for d in jax.devices()) else 1)"; then
  echo "JAX sees no GPU: install fcn8_lasagne[gpu] (jax[cuda12]) first; nothing else was run." \
    | tee "$RESULTS/ABORTED.txt"
  exit 2
fi

# 2. correctness on the GPU (device='jax' is the GPU when JAX has one)
timeout 180 python -m pytest -q -p no:cacheprovider tests/test_jax_mode.py 2>&1 \
  | tail -n 30 | tee "$RESULTS/test_jax_mode.txt"

# 3. speed: full float32 on both sides; budgets keep each case under a minute
timeout 330 python benchmarks/bench_fcn8.py --device gpu --precision float32 \
  --forward-sizes 224 500 --train-sizes 224 --forward-batches 1 10 --train-batches 2 10 \
  --repeat 20 --budget 5 \
  --json "$RESULTS/bench_gpu_float32.json" 2>&1 | tee "$RESULTS/bench_gpu_float32.txt"

timeout 90 python benchmarks/bench_fcn8.py --device gpu --precision tf32 --modes forward \
  --sizes 224 --forward-batches 10 --no-epoch --repeat 20 --budget 5 \
  --json "$RESULTS/bench_gpu_tf32.json" 2>&1 | tee "$RESULTS/bench_gpu_tf32.txt"

echo "results in $RESULTS"
