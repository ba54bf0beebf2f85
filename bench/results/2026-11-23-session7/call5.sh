# Call 5: build "mps-stop" (as calls 3-4), warm kernel cache. The two best knobs of call 4 and
# their combination, alternated (the defaults and the combination twice): slaw run's defaults (5 per GPU, lone trials), 6 per
# GPU, stacks of up to 3 at 5 per GPU, 6 per GPU with stacks of up to 3; then PyTorch's loop.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
run() { # TAG ARGS
  local tag=$1; shift
  SWEEP_TIMEOUT=100 SLAW_RUN_ARGS="$*" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > /tmp/$tag.out 2>&1
  python3 -c "import json;d=json.load(open('$OUT/slaw-sweep.json'));print(json.dumps({'run':'$tag','wall_seconds':d['wall_seconds'],'completed':d['completed'],'with_curves':d['with_curves'],'results':d['results']}))" >> $OUT/sweeps.jsonl
  rm -f $OUT/slaw-sweep.json $OUT/slaw-sweep.log
  tail -1 $OUT/sweeps.jsonl | cut -c1-90
}
run default-1
run pd6-stack3-1 --per-device 6 --stack 3
run pd6-1 --per-device 6
run stack3-1 --stack 3
run default-2
run pd6-stack3-2 --per-device 6 --stack 3
$SLAW plan --json bench/sweep-gpu.yaml > /tmp/plan.json
timeout -k 15 150 python3 bench/torch_sweep.py /tmp/plan.json --device cuda 2>/dev/null > $OUT/torch-sweep.json
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', round(d['wall_seconds'],1))"
rm -f $OUT/peak.json
