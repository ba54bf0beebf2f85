#!/usr/bin/env bash
# The tests that need a CUDA GPU (marked #[ignore] so that CI, which has none, skips them), run on
# the lent GPU machine from a test binary built on the CPU machine:
#   CUDARC_CUDA_VERSION=13000 cargo test --release -p slaw-train --features cuda --no-run
#   strip -o gpu/slaw-train-tests target/release/deps/slaw_train-<hash> && xz -6 gpu/slaw-train-tests
# Usage (on the GPU machine): bash bench/gpu_tests.sh [FILTER]
set -uo pipefail
source "$(dirname "$0")/common.sh"
xz -dc gpu/slaw-train-tests.xz > /tmp/slaw-train-tests && chmod +x /tmp/slaw-train-tests
/tmp/slaw-train-tests --ignored --test-threads 1 "$@" 2>&1 | tee "$OUT/gpu-tests.txt"
