#!/usr/bin/env bash
# Call 1: the GPU tests (heads, softmax with its scale, LayerNorm, AdamW, foreach kernels), then
# time per step of main at the start (final: 3edc17c, the tenth session's last build) and with
# the head passes and the softmax's scale (heads), alternated, and PyTorch f32.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
source bench/common.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout -k 10 200 bash bench/gpu_tests.sh 2>&1 | grep -E "^test |test result|panicked|against" | head -40
BUILDS="final heads" CONFIGS="small medium vit-256" ROUNDS=2 bash bench/ab_step.sh 2>&1 | grep -v '^{'
tar -C /tmp -cJf "$OUT/kernel-cache.tar.xz" slaw-kernels 2>/dev/null
