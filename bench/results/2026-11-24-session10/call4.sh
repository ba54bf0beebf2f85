#!/usr/bin/env bash
# Call 4: the GPU tests (LayerNorm, softmax, AdamW, foreach kernels), then time per step of main
# at the start (base), with the LayerNorm passes only (ln: the final build with
# SLAW_SOFTMAX_KERNEL=0) and with both (final), alternated, and PyTorch f32.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
source bench/common.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout -k 10 200 bash bench/gpu_tests.sh 2>&1 | grep -E "^test |test result|panicked|against" | head -40
xz -dc gpu/slaw-cuda-final.xz > /tmp/slaw-final && chmod +x /tmp/slaw-final
printf '#!/bin/sh\nSLAW_SOFTMAX_KERNEL=0 exec /tmp/slaw-final "$@"\n' > /tmp/slaw-ln && chmod +x /tmp/slaw-ln
BUILDS="base ln final" CONFIGS="small medium vit-256" ROUNDS=2 bash bench/ab_step.sh 2>&1 | grep -v '^{'
tar -C /tmp -cJf "$OUT/kernel-cache.tar.xz" slaw-kernels 2>/dev/null
