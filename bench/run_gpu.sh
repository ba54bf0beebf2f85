#!/usr/bin/env bash
# The GPU measurements of docs/PERFORMANCE.md, run on the lent GPU machine through the `device`
# tool. Builds nothing: it expects the CUDA build of slaw, xz-compressed, at gpu/slaw-cuda.xz:
#   CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda
#   strip -o gpu/slaw-cuda target/release/slaw && xz -6 gpu/slaw-cuda 
# PART is one of: step, sweepstep, large, cpu, sweep (slaw --mps auto, then PyTorch), sweep-nomps
# (slaw --mps off), checks, cache, convnet, all. SLAW_RUN_ARGS adds arguments to the sweeps'
# `slaw run` (e.g. "--stack 1"). SLAW_RUNS / TORCH_RUNS (comma-separated, or
# none) narrow the step modes; SKIP_TORCH_SWEEP, SKIP_OOM, SKIP_BF16 leave parts out; PURE_BF16=1
# adds pure bf16 to the bf16 check. Results (JSON lines)
# go to $OUT (default /tmp/slaw-bench); bench/summarize.py turns them into the tables.
set -uo pipefail
part="${1:-all}"
# The CUDA binary travels xz-compressed (the device tool carries at most 64 MiB).
source "$(dirname "$0")/common.sh"
export PYTHONUNBUFFERED=1
log() { printf '\n### %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }

log "machine"
"$SLAW" --version
if [ -z "${SKIP_SMOKE:-}" ]; then
    timeout -k 15 300 "$SLAW" bench --model vit --width 32 --depth 1 --heads 2 --image 16 --batch 32 \
        --steps 60 --warmup 20 --device cuda:0 | tee "$OUT/smoke.json" || echo "SMOKE TEST FAILED"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
nproc
if [ ! -s "$OUT/peak.json" ]; then python3 bench/matmul_peak.py | tee "$OUT/peak.json"; fi
peak=$(python3 -c "import json;print(json.load(open('$OUT/peak.json'))['bf16_matmul_tflops']*1e12)")

step() { # NAME STEPS WARMUP ARGS...: one config through slaw and torch, with and without clipping
    local name=$1 steps=$2 warm=$3; shift 3
    local slaw_runs=("f32" "f32 --no-clip" ${SLAW_BF16:+"bf16"}) torch_runs=("f32" "f32 --no-clip" "bf16" "bf16-compile")
    # SLAW_RUNS / TORCH_RUNS (comma-separated) narrow the modes, e.g. for the large config.
    [ -n "${SLAW_RUNS:-}" ] && IFS=, read -ra slaw_runs <<< "$SLAW_RUNS"
    [ -n "${TORCH_RUNS:-}" ] && IFS=, read -ra torch_runs <<< "$TORCH_RUNS"
    [ "${TORCH_RUNS:-}" = none ] && torch_runs=()
    for run in "${slaw_runs[@]}"; do
        local p=${run%% *} extra=""
        [ "$run" != "$p" ] && extra=${run#* }
        timeout -k 15 "${STEP_TIMEOUT:-300}" "$SLAW" bench "$@" --steps "$steps" --warmup "$warm" --device cuda:0 \
            --precision "$p" $extra --peak-flops "$peak" | sed "s/^{/{\"config\":\"$name\",/" | tee -a "$OUT/step.jsonl"
    done
    for run in "${torch_runs[@]}"; do
        local m=${run%% *} extra=""
        [ "$run" != "$m" ] && extra=${run#* }
        timeout -k 15 "${STEP_TIMEOUT:-300}" python3 bench/torch_step.py "$@" --steps "$steps" --warmup "$warm" --mode "$m" $extra \
            --peak-flops "$peak" | sed "s/^{/{\"config\":\"$name\",/" | tee -a "$OUT/step.jsonl"
    done
}

if [ "$part" = step ] || [ "$part" = all ]; then
    log "per step: DESIGN.md's small and medium configs"
    step small 300 50 ${ARGS[small]}
    step medium 200 40 ${ARGS[medium]}
fi

if [ "$part" = sweepstep ]; then
    log "per step: the sweep benchmark's largest ViT (vit-256) and smallest (vit-64), alone on the GPU"
    step vit-256 200 40 ${ARGS[vit-256]}
    step vit-64 200 40 ${ARGS[vit-64]}
fi

if [ "$part" = large ] || [ "$part" = all ]; then
    log "per step: the large config"
    step large 60 20 --width 1024 --depth 12 --heads 16 --image 64 --patch 4 --batch 128
fi

if [ "$part" = cpu ] || [ "$part" = all ]; then
    log "CPU: the quickstart's largest model on 2 cores, slaw (ndarray) and torch"
    taskset -c 0,1 env RAYON_NUM_THREADS=2 "$SLAW" bench --model mlp --width 1024 --depth 2 \
        --image 28 --batch 128 --steps 150 --warmup 30 --device cpu \
        | sed 's/^{/{"config":"cpu-mlp1024",/' | tee -a "$OUT/cpu.jsonl"
    taskset -c 0,1 python3 bench/torch_step.py --model mlp --width 1024 --depth 2 --image 28 \
        --batch 128 --steps 150 --warmup 30 --device cpu --threads 2 \
        | sed 's/^{/{"config":"cpu-mlp1024",/' | tee -a "$OUT/cpu.jsonl"
fi

slaw_sweep() { # MODE TAG: the 24-trial grid through slaw, packed on one GPU, with --mps MODE
    local mode=$1 tag=$2
    log "sweep: 24 trials, slaw packed on one GPU, --mps $mode"
    rm -f /tmp/bench-sweep.db*
    start=$(date +%s.%N)
    # Each output line carries its time (Unix seconds), to see where the run's wall time goes.
    timeout -k 15 "${SWEEP_TIMEOUT:-480}" "$SLAW" run bench/sweep-gpu.yaml --db /tmp/bench-sweep.db \
        --device cuda:0 --mps "$mode" --no-progress --no-fit ${SLAW_RUN_ARGS:-} 2>&1 \
        | while IFS= read -r line; do printf '%s %s\n' "$(date +%s.%N)" "$line"; done > "$OUT/$tag.log"
    rc=${PIPESTATUS[0]}
    end=$(date +%s.%N)
    tail -15 "$OUT/$tag.log"
    python3 - "$start" "$end" "$rc" "$mode" <<'PY' | tee "$OUT/$tag.json"
import json, sqlite3, sys
start, end, rc, mode = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
db = sqlite3.connect("/tmp/bench-sweep.db")
# The timeline (seconds from the sweep's start): when each trial was claimed, started training
# and finished, by which worker, and when its first evaluation point came.
rows = db.execute("select key, size_name, epochs, lr, state, final_val_loss, wall_seconds, "
                  "(select count(*) from metrics m where m.trial_id = t.id), worker, "
                  "claimed_at - ?1, started_at - ?1, finished_at - ?1, "
                  "(select m.wall_seconds from metrics m where m.trial_id = t.id order by m.step limit 1) "
                  "from trials t order by claimed_at", (start,)).fetchall()
names = ["key", "size", "epochs", "lr", "state", "val_loss", "seconds", "points", "worker",
         "claimed", "started", "finished", "first_eval_seconds"]
print(json.dumps({"framework": "slaw", "mps": mode, "rc": rc, "wall_seconds": end - start, "trials": len(rows),
                  "completed": sum(r[4] == "completed" for r in rows),
                  "with_curves": sum(r[7] > 0 for r in rows),
                  "results": [dict(zip(names, r)) for r in rows]}))
PY
}

if [ "$part" = sweep-nomps ]; then
    slaw_sweep off slaw-sweep-nomps
fi

if [ "$part" = sweep ] || [ "$part" = all ]; then
    slaw_sweep "${SLAW_MPS:-auto}" slaw-sweep
    if [ -z "${SKIP_TORCH_SWEEP:-}" ]; then
        log "sweep: the same 24 trials, sequential PyTorch loop"
        "$SLAW" plan --json bench/sweep-gpu.yaml > /tmp/plan.json
        timeout -k 15 "${TORCH_TIMEOUT:-300}" python3 bench/torch_sweep.py /tmp/plan.json --device cuda \
            2>"$OUT/torch-sweep.log" | tee "$OUT/torch-sweep.json" | cut -c1-300
    fi
fi

if [ "$part" = cache ]; then
    log "kernel caches: the same two-trial sweep from a cold and a warm cache, and without caches"
    sed 's/precision: bf16/precision: f32/; s/name: bench-bf16/name: bench-f32/' bench/bf16-check.yaml > /tmp/f32-check.yaml
    rm -rf /tmp/kc-all /tmp/kc-tune
    for mode in all-cold all-warm autotune-only off; do
        case $mode in
            all-*) env="SLAW_KERNEL_CACHE=/tmp/kc-all" ;;
            autotune-only) env="SLAW_KERNEL_CACHE=/tmp/kc-tune SLAW_PTX_CACHE=off" ;;
            off) env="SLAW_KERNEL_CACHE=off" ;;
        esac
        rm -f /tmp/cache.db*
        start=$(date +%s.%N)
        timeout -k 15 "${CACHE_TIMEOUT:-120}" env $env "$SLAW" run /tmp/f32-check.yaml --db /tmp/cache.db \
            --device cuda:0 --no-progress --no-fit > "$OUT/cache-$mode.log" 2>&1
        rc=$?
        end=$(date +%s.%N)
        python3 - "$mode" "$start" "$end" "$rc" <<'PY' | tee -a "$OUT/cache.jsonl"
import json, sqlite3, sys
mode, start, end, rc = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = sqlite3.connect("/tmp/cache.db").execute(
    "select state, final_val_loss, wall_seconds from trials").fetchall()
print(json.dumps({"mode": mode, "rc": rc, "wall_seconds": round(end - start, 1), "trials": rows}))
PY
    done
    du -sh /tmp/kc-all/* /tmp/kc-tune/* 2>/dev/null
    tar -C /tmp -cJf "$OUT/kernel-cache.tar.xz" kc-all 2>/dev/null && ls -la "$OUT/kernel-cache.tar.xz"
fi

if [ "$part" = checks ] || [ "$part" = all ]; then
    if [ -z "${SKIP_OOM:-}" ]; then
        log "an oversized trial fails alone"
        rm -f /tmp/oom.db*
        timeout -k 15 "${OOM_TIMEOUT:-240}" "$SLAW" run bench/oom.yaml --db /tmp/oom.db --device cuda:0 --no-progress --no-fit > "$OUT/oom.log" 2>&1
        echo "slaw run exit code $?"
        sqlite3 /tmp/oom.db "select size_name, lr, state, substr(error, 1, 160) from trials order by size_name" 2>/dev/null \
            || python3 -c "import sqlite3;[print(r) for r in sqlite3.connect('/tmp/oom.db').execute('select size_name, lr, state, substr(error,1,160) from trials order by size_name')]"
    fi
    if [ -z "${SKIP_BF16:-}" ]; then
    log "bf16-mixed trains to a loss close to f32 (pure bf16 for the record)"
    rm -f /tmp/bf16.db*
    sed 's/precision: bf16-mixed/precision: f32/; s/name: bench-bf16/name: bench-f32/' bench/bf16-check.yaml > /tmp/f32-check.yaml
    sed 's/precision: bf16-mixed/precision: bf16/; s/name: bench-bf16/name: bench-bf16-pure/' bench/bf16-check.yaml > /tmp/pure-check.yaml
    : > "$OUT/bf16.log"
    # PURE_BF16=1 adds pure bf16 (slow: Burn's untuned bf16 products).
    yamls=(/tmp/f32-check.yaml bench/bf16-check.yaml)
    [ -n "${PURE_BF16:-}" ] && yamls+=(/tmp/pure-check.yaml)
    for yaml in "${yamls[@]}"; do
        timeout -k 15 "${BF16_TIMEOUT:-240}" "$SLAW" run "$yaml" --db /tmp/bf16.db --device cuda:0 --no-progress --no-fit >> "$OUT/bf16.log" 2>&1
    done
    python3 - <<'PY' | tee "$OUT/bf16.json"
import json, sqlite3
db = sqlite3.connect("/tmp/bf16.db")
rows = db.execute("select s.name, t.seed, t.final_val_loss, t.wall_seconds from trials t join sweeps s on s.id = t.sweep_id where t.state = 'completed'").fetchall()
by = lambda name: {r[1]: r[2] for r in rows if r[0] == name}
f32, mixed, pure = by("bench-f32"), by("bench-bf16"), by("bench-bf16-pure")
gap = lambda other: {s: (other[s] - f32[s]) / f32[s] for s in f32 if s in other}
gaps = gap(mixed)
ok = len(gaps) == 2 and all(abs(g) < 0.03 for g in gaps.values())
print(json.dumps({"f32": f32, "bf16_mixed": mixed, "bf16_pure": pure, "relative_gap_mixed": gaps,
                  "relative_gap_pure": gap(pure), "mixed_within_3_percent": ok, "rows": rows}))
PY
    fi
    log "kernel caches (autotune, PTX)"
    find "$SLAW_KERNEL_CACHE" -maxdepth 2 | head; du -sh "$SLAW_KERNEL_CACHE"/* 2>/dev/null
fi

if [ "$part" = convnet ]; then
    log "ConvNet (NF-ResNet, im2col convolutions) on CUDA: bench/convnet-gpu.yaml"
    rm -f /tmp/convnet.db*
    start=$(date +%s.%N)
    timeout -k 15 "${CONVNET_TIMEOUT:-240}" "$SLAW" run bench/convnet-gpu.yaml --db /tmp/convnet.db \
        --device cuda:0 --no-progress --no-fit > "$OUT/convnet.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    tail -6 "$OUT/convnet.log"
    python3 - "$start" "$end" "$rc" <<'PY' | tee "$OUT/convnet.json"
import json, sqlite3, sys
start, end, rc = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
db = sqlite3.connect("/tmp/convnet.db")
rows = db.execute("select size_name, lr, state, steps, final_val_loss, final_val_accuracy, wall_seconds, "
                  "(select count(*) from metrics m where m.trial_id = t.id), substr(error, 1, 200) "
                  "from trials t order by size_name, lr").fetchall()
keys = ["size", "lr", "state", "steps", "val_loss", "val_accuracy", "seconds", "points", "error"]
print(json.dumps({"rc": rc, "wall_seconds": round(end - start, 1),
                  "trials": [dict(zip(keys, r)) for r in rows]}))
PY
fi

log "summary"
python3 bench/summarize.py "$OUT"
