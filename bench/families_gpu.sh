#!/usr/bin/env bash
# On the GPU machine (issues 6 and 7): the PyTorch command-trainer sweep through slaw, then small
# ConvNet and AIM sweeps on CUDA. Builds nothing: expects gpu/slaw-cuda.xz (see run_gpu.sh).
set -uo pipefail
OUT="${OUT:-/tmp/slaw-bench}"; mkdir -p "$OUT"
xz -dc gpu/slaw-cuda.xz > /tmp/slaw && chmod +x /tmp/slaw
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export SLAW_KERNEL_CACHE=/tmp/kc-all
[ -f gpu/kernel-cache.tar.xz ] && tar -C /tmp -xJf gpu/kernel-cache.tar.xz
log() { printf '\n### %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

log "PyTorch through slaw's command trainer"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
start=$(date +%s)
timeout "${TORCH_TIMEOUT:-280}" /tmp/slaw run sweeps/torch-command.yaml --db "$OUT/torch.db" --device cuda \
    --no-progress --no-fit > "$OUT/torch-command.log" 2>&1
echo "slaw run exit $? after $(( $(date +%s) - start )) s"
tail -12 "$OUT/torch-command.log"
/tmp/slaw fit --db "$OUT/torch.db" --sweep torch-mlp > "$OUT/torch-fit.txt" 2>&1; tail -40 "$OUT/torch-fit.txt"

for family in convnet aim; do
    log "$family on CUDA"
    start=$(date +%s)
    timeout "${FAMILY_TIMEOUT:-130}" /tmp/slaw run "bench/$family-gpu.yaml" --db "$OUT/families.db" \
        --device cuda:0 --no-progress --no-fit > "$OUT/$family-gpu.log" 2>&1
    echo "slaw run exit $? after $(( $(date +%s) - start )) s"
    grep -E "done|FAILED|diverged|interrupted" "$OUT/$family-gpu.log" | tail -8
done
