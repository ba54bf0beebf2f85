# Call 9: build "spin" (call 7's build with the vendored cubecl-common reading CUBECL_SERVER_SPIN,
# the spin budget of CubeCL's device threads, default 8192), warm kernel cache. Each packed
# worker keeps three threads busy (call 8): the trainer and two CubeCL device threads that spin
# between batches of work. The packed sweep (profile_sweep.sh: GPU utilisation, busy cores) with
# the default budget and with 0 (yield at once), at 5, 6 and 8 per GPU; then one lone step
# benchmark (vit-64, host-bound) with each budget.
set -u
tar -C /tmp -xJf gpu/kernel-cache.tar.xz 2>/dev/null; export SLAW_KERNEL_CACHE=/tmp/kc-all
source bench/common.sh
prof() { # TAG SPIN PER_DEVICE
  local tag=$1 spin=$2 pd=$3
  if [ "$spin" = unset ]; then unset CUBECL_SERVER_SPIN; else export CUBECL_SERVER_SPIN=$spin; fi
  SWEEP_TIMEOUT=110 TAG=$tag PER_DEVICE=$pd bash bench/profile_sweep.sh > /dev/null 2>&1
  cat $OUT/profile-$tag.json >> $OUT/profiles.jsonl; tail -1 $OUT/profiles.jsonl | cut -c1-200
  rm -f $OUT/profile-$tag.json $OUT/gpu-$tag.csv $OUT/top-$tag.txt $OUT/slaw-$tag.log
}
prof default-pd5 unset 5
prof spin0-pd5 0 5
prof spin0-pd8 0 8
prof spin0-pd6 0 6
prof default-pd5-b unset 5
prof spin0-pd5-b 0 5
for spin in unset 0 unset 0; do
  if [ "$spin" = unset ]; then unset CUBECL_SERVER_SPIN; else export CUBECL_SERVER_SPIN=$spin; fi
  timeout 60 $SLAW bench ${ARGS[vit-64]} --steps 150 --warmup 30 --device cuda:0 | sed "s/^{/{\"spin\":\"$spin\",/" | tee -a $OUT/step.jsonl | cut -c1-160
done
rm -f $OUT/peak.json
