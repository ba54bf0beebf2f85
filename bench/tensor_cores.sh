#!/usr/bin/env bash
# Issue 24's measurements on the lent GPU machine: bf16-mixed products through cuBLASLt
# (SLAW_CUBLAS=1) against Burn's products (SLAW_CUBLAS=0, the same build) and PyTorch, in one call. Builds nothing:
# gpu/slaw-cuda.xz (see bench/run_gpu.sh) and, for `tests`, gpu/slaw-train-tests.xz (see
# bench/gpu_tests.sh). PARTS (default "tests checks step sweep") picks what runs, in this order:
#   tests   every GPU test of slaw-train (the products against Burn's composition among them)
#   checks  bench/bf16-check.yaml in f32 and bf16-mixed: final validation losses within 1 %
#   step    ms per step and peak GPU memory of CONFIGS (default "medium large small"): slaw
#           bf16-mixed with cuBLASLt, with Burn's products (SLAW_CUBLAS=0), f32, and on medium f32
#           with cuBLASLt (SLAW_CUBLAS_F32=1); PyTorch f32, bf16 autocast, its fused attention
#           (medium, large) and torch.compile (large)
#   sweep   bench/sweep-gpu.yaml in bf16-mixed, packed, then PyTorch's sequential loop in bf16
# JSON lines go to $OUT (default /tmp/slaw-bench); every timing line has "gpu_memory_mib", the
# peak nvidia-smi saw the process hold (sampled every 200 ms, the same measure for both).
set -uo pipefail
source "$(dirname "$0")/common.sh"
export PYTHONUNBUFFERED=1
log() { printf '\n### %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
parts=" ${PARTS:-tests checks step sweep} "

log "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
ls /usr/local/cuda/lib64/libcublasLt.so* 2>/dev/null | head -2
if [ ! -s "$OUT/peak.json" ]; then python3 bench/matmul_peak.py | tee "$OUT/peak.json"; fi
peak=$(python3 -c "import json;print(json.load(open('$OUT/peak.json'))['bf16_matmul_tflops']*1e12)")

if [[ $parts == *" tests "* ]]; then
    log "GPU tests"
    xz -dc gpu/slaw-train-tests.xz > /tmp/slaw-train-tests && chmod +x /tmp/slaw-train-tests
    timeout -k 15 "${TESTS_TIMEOUT:-180}" /tmp/slaw-train-tests --ignored --test-threads 1 2>&1 \
        | tee "$OUT/gpu-tests.txt" | grep -E "^test |test result|panicked|FAILED" | head -40
fi

if [[ $parts == *" checks "* ]]; then
    log "bf16-mixed trains to a loss within 1 % of f32 (bench/bf16-check.yaml)"
    rm -f /tmp/bf16.db*
    sed 's/precision: bf16-mixed/precision: f32/; s/name: bench-bf16/name: bench-f32/' bench/bf16-check.yaml > /tmp/f32-check.yaml
    for yaml in /tmp/f32-check.yaml bench/bf16-check.yaml; do
        SLAW_CUBLAS=1 timeout -k 15 240 "$SLAW" run "$yaml" --db /tmp/bf16.db --device cuda:0 --no-progress --no-fit >> "$OUT/bf16.log" 2>&1
    done
    python3 - <<'PY' | tee "$OUT/bf16.json"
import json, sqlite3
db = sqlite3.connect("/tmp/bf16.db")
rows = db.execute("select s.name, t.seed, t.final_val_loss, t.wall_seconds from trials t join sweeps s on s.id = t.sweep_id where t.state = 'completed'").fetchall()
by = lambda name: {r[1]: r[2] for r in rows if r[0] == name}
f32, mixed = by("bench-f32"), by("bench-bf16")
gaps = {s: (mixed[s] - f32[s]) / f32[s] for s in f32 if s in mixed}
ok = len(gaps) == 2 and all(abs(g) < 0.01 for g in gaps.values())
print(json.dumps({"f32": f32, "bf16_mixed": mixed, "relative_gap": gaps, "within_1_percent": ok, "rows": rows}))
PY
fi

if [[ $parts == *" step "* ]]; then
    for cfg in ${CONFIGS:-medium large small}; do
        log "per step: $cfg"
        steps=200; warm=40
        [ "$cfg" = small ] && { steps=150; warm=30; }
        [ "$cfg" = large ] && { steps=${LARGE_STEPS:-25}; warm=10; }
        # label|environment|precision; f32 through cuBLASLt on medium only (the f32 question).
        runs=("bf16-mixed cublas|SLAW_CUBLAS=1|bf16-mixed" "bf16-mixed burn|SLAW_CUBLAS=0|bf16-mixed" "f32 burn||f32")
        [ "$cfg" = medium ] && runs+=("f32 cublas|SLAW_CUBLAS_F32=1|f32")
        # QUICK=1: bf16-mixed only (a short call when GPU time is scarce).
        [ -n "${QUICK:-}" ] && runs=("${runs[@]:0:2}")
        for r in "${runs[@]}"; do
            IFS='|' read -r label env precision <<< "$r"
            measured timeout -k 15 300 env $env "$SLAW" bench --model vit ${ARGS[$cfg]} --steps "$steps" \
                --warmup "$warm" --device cuda:0 --precision "$precision" --peak-flops "$peak" \
                | sed "s/^{/{\"config\":\"$cfg\",\"run\":\"slaw $label\",/" | tee -a "$OUT/step.jsonl"
        done
        # "bf16-sdpa": PyTorch's fused attention, what a fused attention would save.
        modes="f32 bf16"
        [ "$cfg" = medium ] && modes="f32 bf16 bf16-sdpa"
        [ "$cfg" = large ] && modes="f32 bf16 bf16-sdpa ${LARGE_COMPILE-bf16-compile}"
        [ -n "${QUICK:-}" ] && modes="bf16 bf16-sdpa"
        for m in $modes; do
            extra=""
            [ "$m" = bf16-sdpa ] && extra="--attention sdpa"
            measured timeout -k 15 300 python3 bench/torch_step.py ${ARGS[$cfg]} --steps "$steps" \
                --warmup "$warm" --mode "${m%-sdpa}" $extra --peak-flops "$peak" \
                | sed "s/^{/{\"config\":\"$cfg\",\"run\":\"torch $m\",/" | tee -a "$OUT/step.jsonl"
        done
    done
    python3 - "$OUT/step.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ref = {(r["config"]): r["ms_per_step"] for r in rows if r["run"] == "torch bf16"}
for r in rows:
    ratio = r["ms_per_step"] / ref[r["config"]] if r["config"] in ref else float("nan")
    mfu = r.get("mfu") or 0
    print(f'{r["config"]:7} {r["run"]:20} {r["ms_per_step"]:9.2f} ms  {ratio:5.2f}x torch-bf16  '
          f'MFU {100 * mfu:5.1f} %  {r.get("gpu_memory_mib", 0):7.0f} MiB')
EOF
fi

if [[ $parts == *" sweep "* ]]; then
    log "sweep: 24 trials in bf16-mixed, slaw packed on one GPU"
    sed 's/^  grad_clip: 1.0$/  grad_clip: 1.0\n  precision: bf16-mixed/; s/name: bench-sweep-gpu/name: bench-sweep-gpu-bf16/' \
        bench/sweep-gpu.yaml > /tmp/sweep-bf16.yaml
    grep -q "precision: bf16-mixed" /tmp/sweep-bf16.yaml || echo "SWEEP YAML NOT IN BF16"
    rm -f /tmp/bench-sweep.db*
    start=$(date +%s.%N)
    SLAW_CUBLAS=1 timeout -k 15 480 "$SLAW" run /tmp/sweep-bf16.yaml --db /tmp/bench-sweep.db --device cuda:0 \
        --mps auto --no-progress --no-fit > "$OUT/slaw-sweep.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    tail -4 "$OUT/slaw-sweep.log"
    python3 - "$start" "$end" "$rc" <<'PY' | tee "$OUT/slaw-sweep.json"
import json, sqlite3, sys
start, end, rc = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect("/tmp/bench-sweep.db")
rows = db.execute("select key, size_name, epochs, lr, state, final_val_loss, wall_seconds from trials").fetchall()
print(json.dumps({"framework": "slaw", "precision": "bf16-mixed", "rc": rc, "wall_seconds": end - start,
                  "trials": len(rows), "completed": sum(r[4] == "completed" for r in rows),
                  "results": [dict(zip(["key", "size", "epochs", "lr", "state", "val_loss", "seconds"], r)) for r in rows]}))
PY
    log "sweep: the same 24 trials, PyTorch's sequential loop under autocast(bf16)"
    "$SLAW" plan --json /tmp/sweep-bf16.yaml > /tmp/plan.json
    timeout -k 15 "${TORCH_TIMEOUT:-300}" python3 bench/torch_sweep.py /tmp/plan.json --device cuda \
        --precision bf16-mixed 2>"$OUT/torch-sweep.log" | tee "$OUT/torch-sweep.json" | cut -c1-200
    python3 - "$OUT/slaw-sweep.json" "$OUT/torch-sweep.json" <<'PY'
import json, sys
s, t = (json.load(open(p)) for p in sys.argv[1:3])
print(f'sweep bf16-mixed: slaw {s["wall_seconds"]:.1f} s ({s["completed"]}/{s["trials"]} completed), '
      f'torch loop {t["wall_seconds"]:.1f} s: {s["wall_seconds"] / t["wall_seconds"]:.2f}x')
PY
fi
