#!/usr/bin/env bash
# Call 2: the packed 24-trial sweep (bench/sweep-gpu.yaml, defaults) through main at the start
# (base) and with the LayerNorm passes (new), then the sequential PyTorch loop; final validation
# losses compared per trial with PyTorch's and between the builds.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
source bench/common.sh
BUILDS="new base" bash bench/ab_sweep.sh
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def losses(f, key="results"):
    d = json.load(open(f))
    return {(r["size"], r["epochs"], r["lr"]): r.get("val_loss") for r in d.get(key, d.get("trials", []))}
t = losses(f"{out}/torch-sweep.json")
for tag in ["new", "base"]:
    s = losses(f"{out}/sweep-{tag}.json")
    d = [abs(v - t[k]) for k, v in s.items() if v is not None and t.get(k) is not None]
    print(f"{tag} vs PyTorch: {len(d)} trials, mean |dval| {sum(d)/len(d):.4f}, max {max(d):.4f}")
a, b = losses(f"{out}/sweep-new.json"), losses(f"{out}/sweep-base.json")
d = [abs(v - b[k]) for k, v in a.items() if v is not None and b.get(k) is not None]
print(f"new vs base: {len(d)} trials, mean |dval| {sum(d)/len(d):.4f}, max {max(d):.4f}")
PY
rm -f "$OUT"/*.out "$OUT/peak.json" "$OUT/slaw-sweep.log" "$OUT/torch-sweep.log"
ls -la "$OUT"
