#!/usr/bin/env bash
# Where a training step's host time goes: `slaw bench --host-profile` (a build with
# `--features host-profile`, not stripped of its symbol table: `strip --strip-debug`) samples
# every thread while CONFIGS (default "vit-256 small") train alone on the GPU, then
# bench/host_profile_summary.py prints each thread's busy share and the crates and functions
# its samples fall in. Output: $OUT/host-CONFIG.svg (flame graph), .folded, .txt (summary).
set -uo pipefail
source "$(dirname "$0")/common.sh"
for cfg in ${CONFIGS:-vit-256 small}; do
    printf '\n### host profile: %s (%s)\n' "$cfg" "$(date -u +%H:%M:%S)"
    timeout -k 15 "${STEP_TIMEOUT:-300}" "$SLAW" bench ${ARGS[$cfg]} --steps "${STEPS:-300}" \
        --warmup "${WARMUP:-30}" --device cuda:0 --host-profile "$OUT/host-$cfg.svg" \
        | sed "s/^{/{\"config\":\"$cfg\",\"host_profile\":true,/" | tee -a "$OUT/host-step.jsonl"
    python3 bench/host_profile_summary.py "$OUT/host-$cfg.folded" | tee "$OUT/host-$cfg.txt"
done
