#!/usr/bin/env bash
# Time per training step on the CPU: slaw (Burn's ndarray backend) against PyTorch CPU, the same
# model, batch, optimiser and clipping, on the same THREADS cores (taskset), alternated ROUNDS
# times so that both see the same machine state. Runs on any machine with a release build of
# slaw and a Python with torch (PYTHON); builds nothing.
#
#   bench/cpu_step.sh [SLAW_BINARY...]      (default: target/release/slaw; several: an A/B)
#
# CONFIGS (default "mlp-1024 mlp-256 mlp-64 vit-64"): the quickstart's largest, a middle and a
# small MLP (d 1024 / 256 / 64, 2 layers, batch 128, 28×28) and the sweep benchmark's smallest
# ViT. Output: JSON lines in $OUT/cpu-step.jsonl and a table of medians on stdout.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/slaw-bench}"; mkdir -p "$OUT"
PYTHON="${PYTHON:-python3}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-2}"
STEPS="${STEPS:-150}"
WARMUP="${WARMUP:-30}"
BINARIES=("$@"); [ ${#BINARIES[@]} -gt 0 ] || BINARIES=(target/release/slaw)
declare -A ARGS=(
    [mlp-1024]="--model mlp --width 1024 --depth 2 --image 28 --batch 128"
    [mlp-256]="--model mlp --width 256 --depth 2 --image 28 --batch 128"
    [mlp-64]="--model mlp --width 64 --depth 2 --image 28 --batch 128"
    [vit-64]="--width 64 --depth 2 --heads 2 --image 28 --patch 4 --batch 128"
)
PIN=(); command -v taskset >/dev/null && PIN=(taskset -c "0-$((THREADS - 1))")
export RAYON_NUM_THREADS="$THREADS" MATMUL_NUM_THREADS="$THREADS"
: > "$OUT/cpu-step.jsonl"
for round in $(seq "$ROUNDS"); do
    for cfg in ${CONFIGS:-mlp-1024 mlp-256 mlp-64 vit-64}; do
        for bin in "${BINARIES[@]}"; do
            "${PIN[@]}" "$bin" bench ${ARGS[$cfg]} --steps "$STEPS" --warmup "$WARMUP" --device cpu \
                | sed "s|^{|{\"config\":\"$cfg\",\"round\":$round,\"binary\":\"$bin\",|" \
                | tee -a "$OUT/cpu-step.jsonl"
        done
        "${PIN[@]}" "$PYTHON" bench/torch_step.py ${ARGS[$cfg]} --steps "$STEPS" --warmup "$WARMUP" \
            --device cpu --threads "$THREADS" \
            | sed "s|^{|{\"config\":\"$cfg\",\"round\":$round,\"binary\":\"torch\",|" \
            | tee -a "$OUT/cpu-step.jsonl"
    done
done
"$PYTHON" - "$OUT/cpu-step.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["config"], r["binary"]), []).append(r["ms_per_step"])
configs = list(dict.fromkeys(r["config"] for r in rows))
binaries = list(dict.fromkeys(r["binary"] for r in rows))
print("\n| config | " + " | ".join(binaries) + " | " + " | ".join(f"{b} / torch" for b in binaries if b != "torch") + " |")
print("|---" * (1 + 2 * len(binaries) - 1) + "|")
for c in configs:
    med = {b: statistics.median(by[(c, b)]) for b in binaries if (c, b) in by}
    cells = [" / ".join(f"{v:.2f}" for v in by.get((c, b), [])) + " ms" for b in binaries]
    ratios = [f"{med[b] / med['torch']:.2f}×" for b in binaries if b != "torch" and b in med and "torch" in med]
    print(f"| {c} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
PY
