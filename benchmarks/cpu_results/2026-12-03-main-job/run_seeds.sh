#!/usr/bin/env bash
# The main job's seed spread: `fcn8 train -dataset synthetic` (its defaults, time budget
# included) with --seed 1..5, each run's wall time (start-up and the test included) and its
# FINAL MODEL line. Run on a quiet machine from the repository root:
#   benchmarks/cpu_results/2026-12-03-main-job/run_seeds.sh [OUT_DIR] [SEEDS...]
# AVX2=1 in the environment emulates a machine without AVX-512 on an AVX-512 one (OpenBLAS's
# Haswell kernels, NumPy's AVX-512 paths off, PyTensor's and our C code built for Haswell
# in a compile cache of their own).
set -euo pipefail
out=${1:-/tmp/main_job_seeds}
shift || true
seeds=${*:-1 2 3 4 5}
mkdir -p "$out"
if [[ "${AVX2:-0}" == 1 ]]; then
    export OPENBLAS_CORETYPE=Haswell
    export NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR"
    # g++ as on a machine without AVX-512 (PyTensor's C code and our kernels, built with
    # -march=native, both go through config.cxx): -march becomes haswell, -mavx512* go
    cat > "$out/gxx-haswell" <<'WRAPPER'
#!/usr/bin/env bash
args=()
for a in "$@"; do
  case "$a" in
    -march=*) args+=("-march=haswell") ;;
    -mtune=*) args+=("-mtune=haswell") ;;
    -mavx512*|-mamx*|-mavxvnni*|-mavx10*) ;;
    *) args+=("$a") ;;
  esac
done
exec g++ "${args[@]}"
WRAPPER
    chmod +x "$out/gxx-haswell"
    export PYTENSOR_FLAGS="cxx=$out/gxx-haswell,gcc__cxxflags=-march=haswell,compiledir=$out/pytensor-avx2"
fi
for seed in $seeds; do
    start=$(date +%s.%N)
    fcn8 train -dataset synthetic --seed "$seed" --savepath "$out/seed$seed" --overwrite \
        --no-progress > "$out/seed$seed.log" 2>&1
    end=$(date +%s.%N)
    printf 'seed %s: %.0f s wall; %s\n' "$seed" "$(echo "$end - $start" | bc)" \
        "$(grep -E '^FINAL MODEL' "$out/seed$seed.log")" | tee -a "$out/summary.txt"
done
