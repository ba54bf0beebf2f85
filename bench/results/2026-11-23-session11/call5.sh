#!/usr/bin/env bash
# Call 5: GPU memory per step config (bench/ab_step.sh now samples nvidia-smi's per-process
# used memory): the heads build and PyTorch f32 on small, medium, vit-256 (100 steps) and large
# (40 steps), one round; times again as a third sample.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
source bench/common.sh
nvidia-smi --query-compute-apps=used_memory --format=csv,noheader,nounits -lms 200 & p=$!; sleep 1; kill $p
BUILDS="heads" CONFIGS="small medium vit-256" ROUNDS=1 STEPS=100 WARMUP=20 bash bench/ab_step.sh 2>&1 | grep -v '^{'
BUILDS="heads" CONFIGS="large" ROUNDS=1 STEPS=40 WARMUP=10 bash bench/ab_step.sh 2>&1 | grep -v '^{'
