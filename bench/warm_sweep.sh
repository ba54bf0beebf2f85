#!/usr/bin/env bash
# The packed sweep from a cold kernel cache and then twice from the warm one (without and with
# MPS), so that docs/PERFORMANCE.md can separate one-off kernel compilation from steady-state
# throughput. A kernel cache made by an earlier call may travel in gpu/kernel-cache.tar.xz.
set -uo pipefail
OUT="${OUT:-/tmp/slaw-bench}"; mkdir -p "$OUT"
export SLAW_KERNEL_CACHE=/tmp/kc-all
[ -f gpu/kernel-cache.tar.xz ] && tar -C /tmp -xJf gpu/kernel-cache.tar.xz
du -sh "$SLAW_KERNEL_CACHE" 2>/dev/null
MPS=1 TAG=first SWEEP_TIMEOUT="${FIRST_TIMEOUT:-280}" bash bench/mps_sweep.sh
MPS=0 TAG=warm SWEEP_TIMEOUT=150 bash bench/mps_sweep.sh
MPS=1 TAG=warm-mps SWEEP_TIMEOUT=150 bash bench/mps_sweep.sh
tar -C /tmp -cJf "$OUT/kernel-cache.tar.xz" kc-all
