#!/usr/bin/env bash
# The Lasagne op families against PyTorch on the CPU, in one run: Conv1D, Conv3D, dilated and
# grouped Conv2D (bench_conv_nd.py), Pool3D and upscaling (bench_pool_nd.py), the LSTM
# (bench_recurrent.py), and the sibling tutorials' training steps (bench_siblings.py).
# Usage: bash benchmarks/run_lasagne_benchmarks.sh [OUT_DIR]   (default benchmarks/cpu_results/DATE-lasagne)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/cpu_results/$(date -u +%F)-lasagne}
mkdir -p "$out"
{ date -u; lscpu | grep -E 'Model name|^CPU\(s\)'; grep -o 'avx512f' /proc/cpuinfo | head -1 || echo "no avx512f";
  uptime; } > "$out/machine.txt"
python benchmarks/bench_conv_nd.py --rounds 2 2>&1 | tee "$out/conv_nd.txt"
python benchmarks/bench_pool_nd.py --rounds 2 2>&1 | tee "$out/pool_nd.txt"
python benchmarks/bench_recurrent.py 2>&1 | tee "$out/recurrent.txt"
python benchmarks/bench_siblings.py 2>&1 | tee "$out/siblings.txt"
