#!/usr/bin/env bash
# Call 8: the GPU tests on main's final code (custom_op's shared input/output handling), and the
# out-of-memory check of bench/run_gpu.sh (bench/oom.yaml: an oversized trial among small ones)
# with the mixed build.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
xz -dc gpu/slaw-cuda-mixed.xz > /tmp/slaw-mixed && chmod +x /tmp/slaw-mixed
export SLAW=/tmp/slaw-mixed
source bench/common.sh
timeout -k 10 150 bash bench/gpu_tests.sh 2>&1 | grep -E "^test |test result|panicked" | head -20
echo '{"bf16_matmul_tflops": 772, "device": "H100 (peak from an earlier call)"}' > "$OUT/peak.json"
SKIP_SMOKE=1 SKIP_BF16=1 OOM_TIMEOUT=150 timeout -k 10 170 bash bench/run_gpu.sh checks 2>&1 \
    | sed -n '/an oversized trial/,/kernel caches/p' | head -12
cp "$OUT/oom.log" "$OUT/oom-run.log" 2>/dev/null; rm -f "$OUT/peak.json" "$OUT/oom.log"
