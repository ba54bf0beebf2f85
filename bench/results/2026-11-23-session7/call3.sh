# Call 3: build "mps-stop" (call 2's build, and stopping MPS no longer waits 10 s for its pipe)
# with the kernel cache returned by call 2 (PTX as byte strings plus the driver's SASS in sass/).
# The packed sweep twice, PyTorch's loop; then two runs with an empty driver cache (CUDA_CACHE_PATH
# fresh) to see what the driver's JIT costs on a machine's first run, with the driver's default
# size limit (256 MiB) and with slaw's 4 GiB.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
run() { # TAG ARGS
  local tag=$1; shift
  SWEEP_TIMEOUT=150 SLAW_RUN_ARGS="$*" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > /tmp/$tag.out 2>&1
  mv $OUT/slaw-sweep.json $OUT/sweep-$tag.json; mv $OUT/slaw-sweep.log $OUT/sweep-$tag.log
  python3 -c "import json;d=json.load(open('$OUT/sweep-$tag.json'));print('$tag', round(d['wall_seconds'],1), d['completed'], d['with_curves'])"
}
run warm1
run warm2
$SLAW plan --json bench/sweep-gpu.yaml > /tmp/plan.json
timeout -k 15 200 python3 bench/torch_sweep.py /tmp/plan.json --device cuda 2>/dev/null > $OUT/torch-sweep.json
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', round(d['wall_seconds'],1))"
CUDA_CACHE_PATH=/tmp/nv-a CUDA_CACHE_MAXSIZE=268435456 run coldjit-256m
CUDA_CACHE_PATH=/tmp/nv-b CUDA_CACHE_MAXSIZE=4294967296 run coldjit-4g
du -sh /tmp/nv-a /tmp/nv-b /tmp/kc-all/*
rm -f $OUT/peak.json
