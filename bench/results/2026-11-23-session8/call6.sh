#!/usr/bin/env bash
# Call 6: the packed sweep with the defaults (both changes) and the sequential PyTorch loop,
# with the final losses compared trial by trial; then the ring's effect on vit-256 per step
# (adamw vs both, 3 rounds).
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
source bench/variants.sh
BUILDS="both" bash bench/ab_sweep.sh
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/sweep-both.json"))
t = json.load(open(f"{out}/torch-sweep.json"))
tl = {(r["size"], r["epochs"], r["lr"]): r.get("val_loss") for r in t.get("results", t.get("trials", []))}
d = [abs(r["val_loss"] - tl[(r["size"], r["epochs"], r["lr"])]) for r in s["results"]
     if tl.get((r["size"], r["epochs"], r["lr"])) is not None and r["val_loss"] is not None]
print(f"slaw vs PyTorch: {len(d)} trials, mean |dval| {sum(d)/len(d):.4f}, max {max(d):.4f}")
PY
rm -f "$OUT"/*.out "$OUT/peak.json" "$OUT/slaw-sweep.log"
BUILDS="adamw both" CONFIGS="vit-256" ROUNDS=3 TORCH=0 bash bench/ab_step.sh 2>&1 | grep -v '^{'
