#!/usr/bin/env bash
# Call 4: time per step of DESIGN.md's large config (width 1024, depth 12, 16 heads, 64×64
# images, patch 4, batch 128) through main at the start (final) and the heads build, and
# PyTorch f32; then the packed 24-trial sweep once more through the heads build and PyTorch's
# sequential loop (a second sample of the ratio).
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
source bench/common.sh
BUILDS="final heads" CONFIGS=large ROUNDS=1 STEPS=40 WARMUP=10 bash bench/ab_step.sh 2>&1 | grep -v '^{'
BUILDS="heads" bash bench/ab_sweep.sh
rm -f "$OUT"/*.out "$OUT/peak.json" "$OUT/slaw-sweep.log" "$OUT/torch-sweep.log"
