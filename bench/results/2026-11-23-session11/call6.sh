#!/usr/bin/env bash
# Call 6: mixed precision (bf16-mixed: f32 tensors, bf16 products). The GPU tests (with the
# mixed-precision test), the bf16 check of bench/run_gpu.sh (bench/bf16-check.yaml as f32 and
# as bf16-mixed, two seeds each; within 3 %?), and time per step of medium in f32 and
# bf16-mixed against PyTorch f32 and bf16 autocast.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
xz -dc gpu/slaw-cuda-mixed.xz > /tmp/slaw-mixed && chmod +x /tmp/slaw-mixed
export SLAW=/tmp/slaw-mixed
source bench/common.sh
timeout -k 10 150 bash bench/gpu_tests.sh 2>&1 | grep -E "^test |test result|panicked|differ|against" | head -40
echo '{"bf16_matmul_tflops": 772, "device": "H100 (peak from an earlier call)"}' > "$OUT/peak.json"
SKIP_SMOKE=1 SKIP_OOM=1 BF16_TIMEOUT=150 timeout -k 10 330 bash bench/run_gpu.sh checks 2>&1 | grep -v "^/tmp/slaw-kernels" | tail -8
for p in f32 bf16-mixed; do
    timeout -k 10 90 "$SLAW" bench --model vit ${ARGS[medium]} --steps 100 --warmup 20 --device cuda:0 \
        --precision "$p" | sed "s/^{/{\"config\":\"medium\",/" | tee -a "$OUT/mixed-step.jsonl"
done
for m in f32 bf16; do
    timeout -k 10 90 python3 bench/torch_step.py ${ARGS[medium]} --steps 100 --warmup 20 --mode "$m" \
        | sed "s/^{/{\"config\":\"medium\",/" | tee -a "$OUT/mixed-step.jsonl"
done
rm -f "$OUT/peak.json"
