#!/usr/bin/env bash
# Issue 25's data-path benchmark on the lent GPU machine: a generated 1.28 M-image cache of
# 64×64×3 (ImageNet-64's size, 15 GiB) streamed as a trial streams it (mapped cache → gather and
# normalise on a host thread → upload → random crop and flip → patches on the GPU), against the
# large ViT's training step in the same call. Builds nothing: gpu/slaw-cuda.xz (bench/run_gpu.sh).
# JSON lines go to $OUT (default /tmp/slaw-bench).
set -uo pipefail
source "$(dirname "$0")/common.sh"
printf '\n### data path: %s images (%s)\n' "${IMAGES:-1280000}" "$(date -u +%H:%M:%S)"
timeout -k 15 400 "$SLAW" bench-data --images "${IMAGES:-1280000}" --side 64 --batch 128 \
    --batches 400 --device cuda:0 --cache /tmp/slaw-data-cache | tee "$OUT/data-path.json"
printf '\n### the large ViT step, bf16-mixed (%s)\n' "$(date -u +%H:%M:%S)"
measured timeout -k 15 300 "$SLAW" bench --model vit ${ARGS[large]} --steps 25 --warmup 10 \
    --device cuda:0 --precision bf16-mixed | tee "$OUT/data-path-step.json"
python3 - "$OUT/data-path.json" "$OUT/data-path-step.json" <<'PY'
import json, sys
d = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
s = json.loads([l for l in open(sys.argv[2]) if l.startswith("{")][-1])
step = 128 / (s["ms_per_step"] / 1000)
print(f'host thread {d["host_examples_per_second"]:.0f} ex/s, data path on the GPU '
      f'{d["data_path_examples_per_second"]:.0f} ex/s, large ViT step {step:.0f} ex/s: '
      f'the data path is {d["data_path_examples_per_second"] / step:.1f}x the step')
PY
