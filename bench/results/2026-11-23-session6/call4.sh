set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
run() { # TAG ARGS
  local tag=$1; shift
  SWEEP_TIMEOUT=150 SLAW_RUN_ARGS="$*" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > $OUT/$tag.out 2>&1; mv $OUT/slaw-sweep.json $OUT/sweep-$tag.json
  python3 -c "import json;d=json.load(open('$OUT/sweep-$tag.json'));print('$tag', round(d['wall_seconds'],1), d['completed'], d['with_curves'])"
}
run pd1-stack4 --per-device 1 --stack 4
run pd2-stack4 --per-device 2 --stack 4
run pdauto-stack1 --stack 1
source bench/common.sh
"$SLAW" plan --json bench/sweep-gpu.yaml > /tmp/plan.json
timeout 170 python3 bench/torch_sweep.py /tmp/plan.json --device cuda > $OUT/torch-sweep.json 2> /tmp/torch.log
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', round(d['wall_seconds'],1))"
rm -f $OUT/*.out $OUT/peak.json $OUT/slaw-sweep.log
