#!/usr/bin/env bash
# The 24-trial sweep (bench/sweep-gpu.yaml, --mps auto) through two or more builds of slaw in the
# same call, then once through the sequential PyTorch loop (TORCH=0 leaves it out). Builds:
# gpu/slaw-cuda-TAG.xz for each TAG in BUILDS (default "base new"). Results: $OUT/sweep-TAG.json
# and $OUT/torch-sweep.json (bench/summarize.py reads them like run_gpu.sh's).
set -uo pipefail
source "$(dirname "$0")/common.sh"
[ -s "$OUT/peak.json" ] || echo '{"bf16_matmul_tflops": 772, "device": "H100 (peak from an earlier call)"}' > "$OUT/peak.json"
for tag in ${BUILDS:-base new}; do
    [ -x "/tmp/slaw-$tag" ] || { xz -dc "gpu/slaw-cuda-$tag.xz" > "/tmp/slaw-$tag" && chmod +x "/tmp/slaw-$tag"; }
    SLAW="/tmp/slaw-$tag" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > "$OUT/sweep-$tag.out" 2>&1
    mv "$OUT/slaw-sweep.json" "$OUT/sweep-$tag.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], 'wall', round(d['wall_seconds'],1), 's', d['completed'], '/', d['trials'], 'completed,', d['with_curves'], 'with curves')" "$OUT/sweep-$tag.json" "$tag"
done
if [ "${TORCH:-1}" = 1 ]; then
    "/tmp/slaw-$tag" plan --json bench/sweep-gpu.yaml > /tmp/plan.json
    timeout -k 15 300 python3 bench/torch_sweep.py /tmp/plan.json --device cuda \
        2>"$OUT/torch-sweep.log" > "$OUT/torch-sweep.json"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('torch wall', round(d['wall_seconds'],1), 's')" "$OUT/torch-sweep.json"
fi
