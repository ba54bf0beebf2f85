#!/usr/bin/env bash
# Where the packed sweep's time goes: runs bench/sweep-gpu.yaml packed (PER_DEVICE, default auto)
# while sampling GPU utilisation (nvidia-smi, every 500 ms) and per-process CPU use (top, every
# 5 s); prints the mean GPU utilisation, the mean busy CPU cores and the worker processes' share.
set -uo pipefail
source "$(dirname "$0")/common.sh"
TAG="${TAG:-profile}"
rm -f /tmp/bench-profile.db*
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits -lms 500 \
    > "$OUT/gpu-$TAG.csv" &
smi=$!
(while sleep 5; do top -b -n 1 -w 200 | head -40; echo "=== $(date +%s)"; done) > "$OUT/top-$TAG.txt" &
tops=$!
start=$(date +%s.%N)
timeout -k 15 "${SWEEP_TIMEOUT:-240}" "$SLAW" run bench/sweep-gpu.yaml --db /tmp/bench-profile.db \
    --device cuda:0 --no-progress --no-fit ${PER_DEVICE:+--per-device $PER_DEVICE} > "$OUT/slaw-$TAG.log" 2>&1
rc=$?
end=$(date +%s.%N)
kill $smi $tops 2>/dev/null
python3 - "$OUT" "$TAG" "$start" "$end" "$rc" <<'PY' | tee "$OUT/profile-$TAG.json"
import json, re, sys
out, tag, start, end, rc = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
util = [float(l.split(",")[1]) for l in open(f"{out}/gpu-{tag}.csv") if l.count(",") >= 2]
busy, workers, snaps = [], [], 0
for block in open(f"{out}/top-{tag}.txt").read().split("=== "):
    m = re.search(r"%Cpu\(s\):\s*([\d.]+) us,\s*([\d.]+) sy", block)
    if not m:
        continue
    snaps += 1
    busy.append((float(m[1]) + float(m[2])) / 100 * 16)
    w = [float(l.split()[8]) for l in block.splitlines() if "slaw-cuda" in l and len(l.split()) > 11]
    workers.append(w)
mean = lambda v: sum(v) / len(v) if v else float("nan")
print(json.dumps({"pass": tag, "rc": rc, "wall_seconds": round(end - start, 1),
                  "gpu_util_mean_percent": round(mean(util), 1), "gpu_util_samples": len(util),
                  "busy_cores_mean": round(mean(busy), 2),
                  "slaw_processes_mean": round(mean([len(w) for w in workers]), 1),
                  "cpu_percent_per_slaw_process_mean": round(mean([x for w in workers for x in w]), 1),
                  "top_snapshots": snaps}))
PY
