#!/usr/bin/env bash
# Call 3: every kernel of a medium and a vit-256 step with the head passes (heads), Nsight
# Compute, for the GPU time per step and its split by kernel family (against the tenth
# session's call 3; fewer steps skipped than then: a step has fewer kernels now).
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
xz -dc gpu/slaw-cuda-heads.xz > /tmp/slaw-heads && chmod +x /tmp/slaw-heads
export SLAW=/tmp/slaw-heads
source bench/common.sh
CONFIGS="vit-256 medium" FRAMEWORKS=slaw SKIP_STEPS=10 bash bench/kernel_profile.sh 2>&1 | tail -60 | tee "$OUT/kernels.txt"
rm -rf "$OUT/ncu"
