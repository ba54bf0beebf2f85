#!/usr/bin/env bash
# Call 1: host profile of lone training steps (build: main + --features host-profile).
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
for cfg in vit-256 small; do
    "$SLAW" bench ${ARGS[$cfg]} --steps 200 --warmup 30 --device cuda:0 | sed "s/^{/{\"config\":\"$cfg\",/" | tee -a "$OUT/plain-step.jsonl"
done
CONFIGS="vit-256 small medium" STEPS=300 bash bench/host_profile.sh 2>&1 | grep -v "^    [0-9. ]*%  \(std::\|_start\|__libc\|main\|tokio::\)" 
