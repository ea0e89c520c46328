#!/usr/bin/env bash
# Issue 12's speed targets in one run (each forward and forward+backward <= 1.3x PyTorch):
# Conv1D, Conv3D, dilated and grouped Conv2D, Pool3D and the LSTM. Run from the repository
# root on a quiet machine; prints to stdout.
set -euo pipefail
date; uptime
python benchmarks/bench_conv_nd.py --rounds 2
python benchmarks/bench_pool_nd.py
python benchmarks/bench_recurrent.py --cells lstm --variants fused
date
