# Call 8: build "wait" (as call 7), warm kernel cache. Which threads of a packed worker use the
# CPU: the sweep with slaw run's defaults, and per-thread CPU (top -H) of the worker processes
# 20 s and 35 s into the run.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
rm -f /tmp/t.db*
timeout 120 $SLAW run bench/sweep-gpu.yaml --db /tmp/t.db --device cuda:0 --no-progress --no-fit > /tmp/run.log 2>&1 &
for at in 20 35; do
  sleep $((at == 20 ? 20 : 15))
  pids=$(pgrep -f 'slaw-cuda worker' | tr '\n' ',' | sed 's/,$//')
  echo "== $at s: workers $pids"
  top -H -b -n 2 -d 2 -w 250 -p "$pids" | awk '/^top -/{n++} n==2' | sed -n '7,60p' | tee -a $OUT/threads.txt
  echo "-- all processes" | tee -a $OUT/threads.txt
  top -b -n 2 -d 2 -w 250 | awk '/^top -/{n++} n==2' | sed -n '7,25p' | tee -a $OUT/threads.txt
done
wait
tail -3 /tmp/run.log
