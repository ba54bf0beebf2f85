#!/usr/bin/env bash
# Call 2: the packed 24-trial sweep through the heads build and main at the start (final), then
# the sequential PyTorch loop; final validation losses compared per trial.
set -uo pipefail
export OUT="${OUT:-/tmp/slaw-bench}"
tar -C /tmp -xJf gpu/kernel-cache.tar.xz; export SLAW_KERNEL_CACHE=/tmp/slaw-kernels
source bench/common.sh
BUILDS="heads final" bash bench/ab_sweep.sh
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def losses(f, key="results"):
    d = json.load(open(f))
    return {(r["size"], r["epochs"], r["lr"]): r.get("val_loss") for r in d.get(key, d.get("trials", []))}
t = losses(f"{out}/torch-sweep.json")
runs = {tag: losses(f"{out}/sweep-{tag}.json") for tag in ["heads", "final"]}
def compare(name, s, ref):
    d = [abs(v - ref[k]) for k, v in s.items() if v is not None and ref.get(k) is not None]
    print(f"{name}: {len(d)} trials, mean |dval| {sum(d)/len(d):.4f}, max {max(d):.4f}")
for tag, s in runs.items():
    compare(f"{tag} vs PyTorch", s, t)
compare("heads vs final", runs["heads"], runs["final"])
PY
rm -f "$OUT"/*.out "$OUT/peak.json" "$OUT/slaw-sweep.log" "$OUT/torch-sweep.log"
