#!/usr/bin/env bash
# Call 3: every kernel of a medium and a vit-256 step with the LayerNorm passes (new), Nsight
# Compute, for the GPU time per step and its split by kernel family.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
xz -dc gpu/slaw-cuda-new.xz > /tmp/slaw-new && chmod +x /tmp/slaw-new
export SLAW=/tmp/slaw-new
source bench/common.sh
CONFIGS="vit-256 medium" FRAMEWORKS=slaw SKIP_STEPS=14 bash bench/kernel_profile.sh 2>&1 | tail -60 | tee "$OUT/kernels.txt"
rm -rf "$OUT/ncu"
