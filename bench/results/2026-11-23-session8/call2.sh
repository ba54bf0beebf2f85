#!/usr/bin/env bash
# Call 2: the AdamW kernel — GPU tests, per-step A/B (SLAW_ADAMW_KERNEL=0 "ops" vs the kernel),
# PyTorch once per config, and a host profile of vit-256 with the kernel.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
printf '#!/bin/sh\nSLAW_ADAMW_KERNEL=0 exec /tmp/slaw-cuda "$@"\n' > /tmp/slaw-ops; chmod +x /tmp/slaw-ops
ln -sf /tmp/slaw-cuda /tmp/slaw-kernel
bash bench/gpu_tests.sh 2>&1 | tail -15
BUILDS="ops kernel" CONFIGS="vit-256 small medium" ROUNDS=2 bash bench/ab_step.sh 2>&1 | grep -v '^{'
CONFIGS=vit-256 STEPS=300 bash bench/host_profile.sh > /dev/null 2>&1
grep -E "^== thread|submit_inner|Server::start$" "$OUT/host-vit-256.txt" | head -20
