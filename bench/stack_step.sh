#!/usr/bin/env bash
# Time per step of stacked trials (`slaw bench --stack S`: S trials of one ViT trained as one
# model) for the sweep benchmark's four ViT sizes, against the lone trial and PyTorch's lone
# trial. SIZES picks from vit-64 vit-128 vit-192 vit-256 (default all), STACKS the stack sizes
# (default "1 3"), TORCH=0 leaves PyTorch out, VARIANTS the settings of SLAW_STACK_ROWS to try
# for stacks (default: the lone trial's chunking; e.g. "default 100000" adds one plain batched
# product per layer). Uses $SLAW (gpu/slaw-cuda.xz). JSON lines go to
# $OUT/stack-step.jsonl; the summary prints milliseconds per trial-step (stack time / S).
set -uo pipefail
source "$(dirname "$0")/common.sh"
for size in ${SIZES:-vit-64 vit-128 vit-192 vit-256}; do
    for s in ${STACKS:-1 3}; do
        for v in ${VARIANTS:-default}; do
            [ "$s" = 1 ] && [ "$v" != default ] && continue
            rows=(); [ "$v" != default ] && rows=(env SLAW_STACK_ROWS="$v")
            timeout -k 15 300 "${rows[@]}" "$SLAW" bench --model vit ${ARGS[$size]} --steps "${STEPS:-160}" \
                --warmup 40 --device cuda:0 --precision f32 --stack "$s" \
                | sed "s/^{/{\"config\":\"$size\",\"variant\":\"$v\",/" | tee -a "$OUT/stack-step.jsonl"
        done
    done
    if [ "${TORCH:-1}" = 1 ]; then
        timeout -k 15 300 python3 bench/torch_step.py ${ARGS[$size]} --steps "${STEPS:-160}" --warmup 40 \
            --mode f32 | sed "s/^{/{\"config\":\"$size\",\"stack\":1,/" | tee -a "$OUT/stack-step.jsonl"
    fi
done
python3 - "$OUT/stack-step.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for r in rows:
    s = r.get("stack", 1)
    fw = "torch" if "torch" in r.get("framework", "") else "slaw"
    v = r.get("variant", "")
    print(f"{r['config']:8} {fw:6} stack {s} {v:8}: {r['ms_per_step']:7.2f} ms/step, {r['ms_per_step']/s:6.2f} ms per trial-step")
PY
