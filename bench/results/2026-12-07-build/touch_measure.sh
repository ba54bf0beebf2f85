cd /work/main
export CARGO_TARGET_DIR=$HOME/.cache/slaw-target
unset CARGO_INCREMENTAL
t() { local name="$1"; shift; local s=$(date +%s.%N); "$@" > /tmp/bh/$name.log 2>&1; local rc=$?; echo "rc=$rc $name=$(echo "$(date +%s.%N) - $s" | bc)" >> /tmp/bh/times.txt; }
t after_warmup_incremental cargo test --release --locked --no-run
touch crates/slaw/src/fit/ols.rs
t after_touchfit_test_p_slaw cargo test --release --locked -p slaw fit::ols
touch crates/slaw/src/fit/ols.rs
t after_touchfit_test_all cargo test --release --locked fit::ols
touch crates/slaw-train/src/ops/softmax/mod.rs
t after_touchkernel_test_all cargo test --release --locked fit::ols
touch crates/slaw-train/src/ops/softmax/mod.rs
t after_touchkernel_test_p_train cargo test --release --locked -p slaw-train softmax
