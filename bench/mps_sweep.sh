#!/usr/bin/env bash
# The packed sweep again, with the CUDA Multi-Process Service running (MPS=0: without), so that
# the packed workers' kernels run concurrently instead of time-sliced between contexts. The
# daemon lives in /tmp and is stopped at the end; no GPU setting is changed. TAG names the
# result files (slaw-$TAG.json), so that cold- and warm-cache passes can be kept apart.
set -uo pipefail
source "$(dirname "$0")/common.sh"
TAG="${TAG:-mps}"
if [ "${MPS:-1}" = 1 ]; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d; then echo "MPS daemon started"; else echo "MPS not available"; exit 1; fi
fi
rm -f /tmp/bench-mps.db*
start=$(date +%s.%N)
timeout -k 15 "${SWEEP_TIMEOUT:-300}" "$SLAW" run bench/sweep-gpu.yaml --db /tmp/bench-mps.db --device cuda:0 \
    --no-progress --no-fit ${PER_DEVICE:+--per-device $PER_DEVICE} > "$OUT/slaw-$TAG.log" 2>&1
rc=$?
end=$(date +%s.%N)
[ "${MPS:-1}" = 1 ] && echo quit | nvidia-cuda-mps-control
tail -12 "$OUT/slaw-$TAG.log"
python3 - "$start" "$end" "$rc" "$TAG" <<'PY' | tee "$OUT/slaw-$TAG.json"
import json, sqlite3, sys
start, end, rc, tag = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = sqlite3.connect("/tmp/bench-mps.db").execute(
    "select key, size_name, epochs, lr, state, final_val_loss, wall_seconds from trials").fetchall()
print(json.dumps({"framework": "slaw", "pass": tag, "rc": rc, "wall_seconds": end - start, "trials": len(rows),
                  "completed": sum(r[4] == "completed" for r in rows),
                  "trial_seconds": sorted(round(r[6] or 0, 1) for r in rows)}))
PY
