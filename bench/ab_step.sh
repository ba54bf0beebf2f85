#!/usr/bin/env bash
# Time per step of two or more builds of slaw side by side, on the same machine in the same call
# (lent machines differ by more than most changes do). Builds: gpu/slaw-cuda-TAG.xz for each TAG
# in BUILDS (default "base new"); CONFIGS picks from small, medium, vit-256, vit-64 (default
# "small vit-256"; large too); STEPS and WARMUP (default 200 and 40) set the steps timed and
# the steps before them; ROUNDS alternates the builds that many times; PyTorch f32 runs once per
# config unless TORCH=0. JSON lines, each with "build", go to $OUT/ab-step.jsonl.
# Each line also has "gpu_memory_mib": the most device memory nvidia-smi saw the run's process
# hold (sampled every 200 ms; context, caches and allocator pools included, the same measure
# for slaw and PyTorch), 0 where nvidia-smi reports none.
set -uo pipefail
source "$(dirname "$0")/common.sh"
for tag in ${BUILDS:-base new}; do
    [ -x "/tmp/slaw-$tag" ] || { xz -dc "gpu/slaw-cuda-$tag.xz" > "/tmp/slaw-$tag" && chmod +x "/tmp/slaw-$tag"; }
done
for cfg in ${CONFIGS:-small vit-256}; do
    for round in $(seq "${ROUNDS:-2}"); do
        for tag in ${BUILDS:-base new}; do
            measured timeout -k 15 300 "/tmp/slaw-$tag" bench --model vit ${ARGS[$cfg]} --steps "${STEPS:-200}" \
                --warmup "${WARMUP:-40}" --device cuda:0 --precision f32 \
                | sed "s/^{/{\"config\":\"$cfg\",\"build\":\"$tag\",\"round\":$round,/" | tee -a "$OUT/ab-step.jsonl"
        done
    done
    if [ "${TORCH:-1}" = 1 ]; then
        measured timeout -k 15 300 python3 bench/torch_step.py ${ARGS[$cfg]} --steps "${STEPS:-200}" --warmup "${WARMUP:-40}" \
            --mode f32 | sed "s/^{/{\"config\":\"$cfg\",\"build\":\"torch\",/" | tee -a "$OUT/ab-step.jsonl"
    fi
done
python3 - "$OUT/ab-step.jsonl" <<'EOF'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = collections.defaultdict(list)
for r in rows:
    by[(r["config"], r["build"])].append((r["ms_per_step"], r.get("gpu_memory_mib", 0)))
for (cfg, build), v in sorted(by.items()):
    print(f"{cfg:8} {build:8} ms/step " + " ".join(f"{x:.2f}" for x, _ in v)
          + "   GPU MiB " + " ".join(f"{m:.0f}" for _, m in v))
EOF
