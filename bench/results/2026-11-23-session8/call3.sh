#!/usr/bin/env bash
# Call 3: the packed 24-trial sweep (slaw run defaults) with the AdamW kernel and without
# (SLAW_ADAMW_KERNEL=0), then the sequential PyTorch loop, all in one call.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
printf '#!/bin/sh\nSLAW_ADAMW_KERNEL=0 exec /tmp/slaw-cuda "$@"\n' > /tmp/slaw-ops; chmod +x /tmp/slaw-ops
ln -sf /tmp/slaw-cuda /tmp/slaw-kernel
ln -sf /tmp/slaw-cuda /tmp/slaw-kernel2
BUILDS="${BUILDS:-kernel ops kernel2}" bash bench/ab_sweep.sh
