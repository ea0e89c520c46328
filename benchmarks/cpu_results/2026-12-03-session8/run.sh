#!/bin/bash
# quiet measurements, session 8
cd /work/main
OUT=benchmarks/cpu_results/2026-12-03-session8
date -u > $OUT/started.txt; uptime >> $OUT/started.txt
python benchmarks/bench_conv_nd.py --only dil groups --rounds 3 > $OUT/bench_conv_nd.txt 2>&1
python benchmarks/bench_recurrent.py --cells lstm,gru --variants fused,fused-peepholes --repeat 60 > $OUT/bench_recurrent.txt 2>&1
python benchmarks/bench_siblings.py > $OUT/bench_siblings.txt 2>&1
python benchmarks/bench_fcn_resnet.py --only step > $OUT/bench_fcn_resnet_step.txt 2>&1

python benchmarks/bench_fcn8.py --sizes 224 --forward-batches 1 --train-batches 1 --repeat 5 --budget 40 --no-epoch > $OUT/bench_fcn8.txt 2>&1

date -u >> $OUT/started.txt
