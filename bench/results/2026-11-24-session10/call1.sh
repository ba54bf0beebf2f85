#!/usr/bin/env bash
# Call 1: the GPU tests (the new LayerNorm kernels against Burn's composition, the AdamW kernel
# through the shared helper, foreach), then time per step of main at the start (base) and with
# the LayerNorm kernels (new), alternated, and PyTorch f32; the kernel cache goes back in $OUT.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
source bench/common.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout -k 10 150 bash bench/gpu_tests.sh 2>&1 | grep -E "^test |test result|panicked|assert" | head -40
BUILDS="base new" CONFIGS="small medium vit-256" ROUNDS=2 bash bench/ab_step.sh 2>&1 | grep -v '^{'
tar -C /tmp -cJf "$OUT/kernel-cache.tar.xz" slaw-kernels 2>/dev/null
ls -la "$OUT"
