# Call 1: where the packed sweep's wall time goes. The 24-trial sweep with slaw run's defaults
# (5 per GPU under MPS, lone trials) twice on one machine (the second run finds the driver's
# JIT cache warm), with each trial's claim / start / finish times; then PyTorch's loop.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
run() { # TAG ARGS
  local tag=$1; shift
  SWEEP_TIMEOUT=170 SLAW_RUN_ARGS="$*" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > /tmp/$tag.out 2>&1
  mv $OUT/slaw-sweep.json $OUT/sweep-$tag.json; mv $OUT/slaw-sweep.log $OUT/sweep-$tag.log
  python3 -c "import json;d=json.load(open('$OUT/sweep-$tag.json'));print('$tag', round(d['wall_seconds'],1), d['completed'], d['with_curves'])"
}
run first
run second
du -sh ~/.nv/ComputeCache 2>/dev/null
"$SLAW" plan --json bench/sweep-gpu.yaml > /tmp/plan.json 2>/dev/null || /tmp/slaw-cuda plan --json bench/sweep-gpu.yaml > /tmp/plan.json
timeout -k 15 200 python3 bench/torch_sweep.py /tmp/plan.json --device cuda 2>/dev/null > $OUT/torch-sweep.json
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', round(d['wall_seconds'],1))"
rm -f $OUT/peak.json
