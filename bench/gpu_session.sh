#!/usr/bin/env bash
# Several parts of bench/run_gpu.sh in one device call (device time is scarce): the kernel cache
# carried in gpu/kernel-cache.tar.xz is unpacked first and the grown cache is packed into $OUT at
# the end, so the next call starts warm. Usage: bench/gpu_session.sh PART... (see run_gpu.sh);
# PEAK_TFLOPS skips re-measuring the bf16 matmul peak; BUDGET (seconds) stops starting new parts.
set -uo pipefail
OUT="${OUT:-/tmp/slaw-bench}"; mkdir -p "$OUT"
export OUT SKIP_SMOKE=1 SLAW_KERNEL_CACHE=/tmp/kc-all
if [ -f gpu/kernel-cache.tar.xz ] && [ ! -d /tmp/kc-all ]; then tar -C /tmp -xJf gpu/kernel-cache.tar.xz; fi
if [ -n "${PEAK_TFLOPS:-}" ]; then echo "{\"bf16_matmul_tflops\": $PEAK_TFLOPS, \"device\": \"$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1) (peak from an earlier call)\"}" > "$OUT/peak.json"; fi
start=$(date +%s)
for part in "$@"; do
    if [ $(( $(date +%s) - start )) -gt "${BUDGET:-100000}" ]; then echo "### skipped $part (budget)"; continue; fi
    case "$part" in
        mps) bash bench/mps_sweep.sh ;;   # the packed sweep under the CUDA MPS daemon
        mps[0-9]*) PER_DEVICE=${part#mps} TAG=$part bash bench/mps_sweep.sh ;;   # ... K per GPU
        kernels) bash bench/kernel_profile.sh ;;   # per-kernel GPU time per step (Nsight Compute)
        profile) bash bench/profile_sweep.sh ;;   # the packed sweep with GPU and CPU sampling
        profile[0-9]*) PER_DEVICE=${part#profile} TAG=$part bash bench/profile_sweep.sh ;;
        *) bash bench/run_gpu.sh "$part" ;;
    esac
    pkill -9 -f /tmp/slaw-cuda 2>/dev/null   # workers a timed-out part left compiling
done
du -sh /tmp/kc-all
tar -C /tmp -cf - kc-all | xz -T0 -6 > "$OUT/kernel-cache.tar.xz"; ls -la "$OUT/kernel-cache.tar.xz"
