# Call 2: build "bytes" (vendored cubecl-cuda writes PTX as CBOR byte strings; the driver's JIT
# cache under the slaw kernel cache) with the benchmark's kernel cache converted to that format
# (gpu/kernel-cache.tar.xz). (1) How long the MPS control daemon takes to quit, and what is left
# in its pipe directory; (2) the packed sweep twice (the first run fills the driver's cache);
# (3) PyTorch's sequential loop. The kernel cache, with the driver's part, goes back in $OUT.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
echo "== MPS quit probe"
P=/tmp/mpsprobe; mkdir -p $P/pipe $P/log
export CUDA_MPS_PIPE_DIRECTORY=$P/pipe CUDA_MPS_LOG_DIRECTORY=$P/log
nvidia-cuda-mps-control -d; sleep 0.5; ls $P/pipe
t0=$(date +%s.%N)
timeout 120 $SLAW bench --model vit --width 32 --depth 1 --heads 2 --image 16 --batch 32 --steps 20 --warmup 5 --device cuda:0 | cut -c1-200
t1=$(date +%s.%N); echo "client (incl. cache load) $(python3 -c "print(round($t1-$t0,2))") s"
echo quit | nvidia-cuda-mps-control; t2=$(date +%s.%N); echo "quit returned after $(python3 -c "print(round($t2-$t1,2))") s"
for i in $(seq 1 60); do
  t=$(date +%s.%N); ctl=$(ls $P/pipe 2>/dev/null | tr '\n' ' '); procs=$(pgrep -c -f nvidia-cuda-mps)
  echo "$(python3 -c "print(round($t-$t2,2))") s: pipe [$ctl] mps processes $procs"
  [ "$procs" = 0 ] && [ ! -e $P/pipe/control ] && break
  sleep 0.25
done
tail -5 $P/log/control.log
unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
echo "== sweeps"
run() { # TAG ARGS
  local tag=$1; shift
  SWEEP_TIMEOUT=170 SLAW_RUN_ARGS="$*" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > /tmp/$tag.out 2>&1
  mv $OUT/slaw-sweep.json $OUT/sweep-$tag.json; mv $OUT/slaw-sweep.log $OUT/sweep-$tag.log
  python3 -c "import json;d=json.load(open('$OUT/sweep-$tag.json'));print('$tag', round(d['wall_seconds'],1), d['completed'], d['with_curves'])"
}
run first
run second
du -sh /tmp/kc-all/*
$SLAW plan --json bench/sweep-gpu.yaml > /tmp/plan.json
timeout -k 15 200 python3 bench/torch_sweep.py /tmp/plan.json --device cuda 2>/dev/null > $OUT/torch-sweep.json
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', round(d['wall_seconds'],1))"
tar -C /tmp -cf - kc-all | xz -3 -T8 > $OUT/kernel-cache.tar.xz; ls -la $OUT/kernel-cache.tar.xz
rm -f $OUT/peak.json
