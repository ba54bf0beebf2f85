# Call 4: build "mps-stop" (as call 3), warm kernel cache. The packed sweep's throughput knobs
# now that a run has no start-up or shut-down overhead: slaw run's defaults (5 per GPU, lone
# trials), 6 per GPU, stacks of up to 2 and 3 at 5 per GPU, 3 per GPU with stacks of 3; then
# PyTorch's loop on the same machine.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
run() { # TAG ARGS
  local tag=$1; shift
  SWEEP_TIMEOUT=120 SLAW_RUN_ARGS="$*" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > /tmp/$tag.out 2>&1
  mv $OUT/slaw-sweep.json $OUT/sweep-$tag.json; rm -f $OUT/slaw-sweep.log
  python3 -c "import json;d=json.load(open('$OUT/sweep-$tag.json'));print('$tag', round(d['wall_seconds'],1), d['completed'], d['with_curves'])"
}
run default
run pd6 --per-device 6
run stack2 --stack 2
run stack3 --stack 3
run pd3-stack3 --per-device 3 --stack 3
$SLAW plan --json bench/sweep-gpu.yaml > /tmp/plan.json
timeout -k 15 200 python3 bench/torch_sweep.py /tmp/plan.json --device cuda 2>/dev/null > $OUT/torch-sweep.json
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', round(d['wall_seconds'],1))"
rm -f $OUT/peak.json
