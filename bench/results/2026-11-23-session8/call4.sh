#!/usr/bin/env bash
# Call 4: the packed 24-trial sweep (slaw run defaults) with both changes, without them (ops),
# with the AdamW kernel only, with both again, then the sequential PyTorch loop; then the ring's
# effect per step on vit-256 (adamw vs both). bench/variants.sh makes the wrappers.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
source bench/variants.sh
BUILDS="both ops adamw both2" bash bench/ab_sweep.sh
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
runs = {t: json.load(open(f"{out}/sweep-{t}.json")) for t in ["both", "ops", "adamw", "both2"]}
loss = {t: {r["key"]: r["val_loss"] for r in d["results"]} for t, d in runs.items()}
for a, b in [("both", "both2"), ("both", "adamw"), ("both", "ops")]:
    keys = loss[a].keys() & loss[b].keys()
    same = sum(loss[a][k] == loss[b][k] for k in keys)
    diff = max((abs(loss[a][k] - loss[b][k]) for k in keys if loss[a][k] is not None and loss[b][k] is not None), default=None)
    print(f"{a} vs {b}: {same}/{len(keys)} final losses bit-identical, max |diff| {diff}")
PY
BUILDS="adamw both" CONFIGS="vit-256 small" ROUNDS=2 TORCH=0 bash bench/ab_step.sh 2>&1 | grep -v '^{'
