# Call 7: build "wait" (mps-stop + SLAW_CUDA_WAIT, the CUDA context's scheduling flag), warm
# kernel cache. The packed sweep with slaw run's defaults under bench/profile_sweep.sh (GPU
# utilisation, busy host cores) with the driver's default wait (auto: spin), blocking waits and
# yielding waits, alternated; then PyTorch's loop.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
prof() { # TAG WAIT
  local tag=$1 wait=$2
  if [ "$wait" = unset ]; then unset SLAW_CUDA_WAIT; else export SLAW_CUDA_WAIT=$wait; fi
  SWEEP_TIMEOUT=120 TAG=$tag bash bench/profile_sweep.sh > /dev/null 2>&1
  cat $OUT/profile-$tag.json >> $OUT/profiles.jsonl; tail -1 $OUT/profiles.jsonl | cut -c1-200
  grep -h -i 'warning' $OUT/slaw-$tag.log | head -3
  rm -f $OUT/profile-$tag.json $OUT/gpu-$tag.csv $OUT/top-$tag.txt $OUT/slaw-$tag.log
}
prof default-1 unset
prof block-1 block
prof yield-1 yield
prof default-2 unset
prof block-2 block
unset SLAW_CUDA_WAIT
$SLAW plan --json bench/sweep-gpu.yaml > /tmp/plan.json
timeout -k 15 150 python3 bench/torch_sweep.py /tmp/plan.json --device cuda 2>/dev/null > $OUT/torch-sweep.json
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', round(d['wall_seconds'],1))"
rm -f $OUT/peak.json
