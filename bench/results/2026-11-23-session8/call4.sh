#!/usr/bin/env bash
# Call 4: the packed 24-trial sweep (slaw run defaults) with both changes, without them, with
# both again, then the sequential PyTorch loop, in one call.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
source bench/variants.sh
BUILDS="${BUILDS:-both ops both2}" bash bench/ab_sweep.sh
