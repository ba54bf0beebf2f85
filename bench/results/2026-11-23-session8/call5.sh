#!/usr/bin/env bash
# Call 5: what bounds the packed sweep with both changes (GPU utilisation and busy host cores,
# bench/profile_sweep.sh), and the kernels of a vit-256 step (Nsight Compute).
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
TAG=both bash bench/profile_sweep.sh
CONFIGS=vit-256 FRAMEWORKS=slaw SKIP_STEPS=16 bash bench/kernel_profile.sh 2>&1 | tail -30
rm -rf "$OUT/ncu" "$OUT/top-both.txt" "$OUT/gpu-both.csv"
