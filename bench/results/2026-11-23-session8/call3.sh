#!/usr/bin/env bash
# Call 3: GPU tests (AdamW kernel, foreach), per-step A/B of the AdamW kernel and the metadata
# ring (bench/variants.sh) on vit-256, small and medium with PyTorch once per config, and a
# host profile of vit-256 with both changes.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
source bench/variants.sh
bash bench/gpu_tests.sh 2>&1 | tail -6
BUILDS="ops adamw ring both" CONFIGS="vit-256 small medium" ROUNDS=2 bash bench/ab_step.sh 2>&1 | grep -v '^{'
SLAW=/tmp/slaw-both CONFIGS=vit-256 STEPS=300 bash bench/host_profile.sh > /dev/null 2>&1
grep -E "^== thread|submit_inner$|Server::start$|create_with_data|MemoryManagement::reserve$" "$OUT/host-vit-256.txt" | head -24
