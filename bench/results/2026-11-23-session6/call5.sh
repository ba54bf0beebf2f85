# Call 5: the final build — the packed sweep as `slaw run` defaults it (5 per GPU, so `auto`
# keeps lone trials) and with one worker per GPU (`auto` stacks up to 4).
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
run() { # TAG ARGS
  local tag=$1; shift
  SWEEP_TIMEOUT=170 SLAW_RUN_ARGS="$*" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > /tmp/$tag.out 2>&1; mv $OUT/slaw-sweep.json $OUT/sweep-$tag.json
  grep -E "stacks of|per GPU" /tmp/$tag.out | head -3
  python3 -c "import json;d=json.load(open('$OUT/sweep-$tag.json'));print('$tag', round(d['wall_seconds'],1), d['completed'], d['with_curves'])"
}
run default
run pd1 --per-device 1
rm -f $OUT/peak.json $OUT/slaw-sweep.log
