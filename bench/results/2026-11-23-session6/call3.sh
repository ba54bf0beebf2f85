set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
timeout 100 bash bench/gpu_tests.sh 2>&1 | grep -E "^test |test result|panicked|assert" | head -20
SWEEP_TIMEOUT=170 SLAW_RUN_ARGS="--stack 1" SKIP_SMOKE=1 SKIP_TORCH_SWEEP=1 bash bench/run_gpu.sh sweep > $OUT/stack1.out 2>&1; mv $OUT/slaw-sweep.json $OUT/sweep-stack1.json
python3 -c "import json;d=json.load(open('$OUT/sweep-stack1.json'));print('stack1', d['wall_seconds'], d['completed'], d['with_curves'])"
SWEEP_TIMEOUT=170 TORCH_TIMEOUT=170 SKIP_SMOKE=1 bash bench/run_gpu.sh sweep > $OUT/stackauto.out 2>&1; cp $OUT/slaw-sweep.json $OUT/sweep-stackauto.json
python3 -c "import json;d=json.load(open('$OUT/sweep-stackauto.json'));print('stackauto', d['wall_seconds'], d['completed'], d['with_curves'])"
python3 -c "import json;d=json.load(open('$OUT/torch-sweep.json'));print('torch', d['wall_seconds'])"
grep -iE "stack|per GPU|workers" $OUT/stackauto.out | head -5
tar -C /tmp -cJf $OUT/kernel-cache.tar.xz kc-all
