# usage: edit_measure.sh ROOT TAG FITFILE KERNELFILE
ROOT=$1; TAG=$2; FIT=$3; KER=$4
cd $ROOT
export CARGO_TARGET_DIR=$HOME/.cache/slaw-target
export CARGO_INCREMENTAL=0
t() { local name="$1"; shift; local s=$(date +%s.%N); "$@" > /tmp/bh/$name.log 2>&1; local rc=$?; echo "rc=$rc $name=$(echo "$(date +%s.%N) - $s" | bc)" >> /tmp/bh/times.txt; }
n=0
edit() { n=$((n+1)); printf '\n#[allow(dead_code)]\nfn edit_probe_%s_%s() -> u64 {\n    %s\n}\n' "$TAG" "$n" "$n" >> "$1"; }
# warm-ups (feature sets per package selection are built once)
cargo test --release --locked -p slaw fit::ols > /dev/null 2>&1
cargo test --release --locked -p slaw-train softmax > /dev/null 2>&1
cargo test --release --locked fit::ols > /dev/null 2>&1
edit $FIT; t ${TAG}_editfit_test_p_slaw cargo test --release --locked -p slaw fit::ols
edit $FIT; t ${TAG}_editfit_test_all cargo test --release --locked fit::ols
edit $KER; t ${TAG}_editkernel_test_all cargo test --release --locked fit::ols
edit $KER; t ${TAG}_editkernel_test_p_train cargo test --release --locked -p slaw-train softmax
git checkout -- $FIT $KER
