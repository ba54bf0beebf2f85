#!/usr/bin/env bash
# SLAW_EXTRA adds arguments to `slaw bench` (e.g. "--stack 3").
# Where a training step's GPU time goes: every kernel of `slaw bench` and of bench/torch_step.py
# timed by Nsight Compute (gpu__time_duration, clocks left alone), for CONFIGS (default: small;
# slaw under ncu takes ~8 s per profiled step, so give medium a call of its own). Each config runs
# twice, with STEPS_A and STEPS_B timed steps after the same warm-up; bench/kernel_summary.py
# takes the difference, so that compilation and warm-up kernels drop out, and prints the kernels
# per step, the GPU time per step and its split by kernel family.
# The wall time per step under ncu means nothing (ncu serialises every launch); the sum of kernel
# times against the unprofiled step time says whether a step is bound by the GPU or by the host.
set -uo pipefail
source "$(dirname "$0")/common.sh"
NCU="${NCU:-$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)}"
# slaw bench needs more than warm-up + 20 timed steps.
A="${STEPS_A:-22}"; B="${STEPS_B:-25}"; W="${WARMUP:-1}"
# SKIP_STEPS=N: ncu lets the first N steps' kernels (an estimate per config, below) run unprofiled
# (--launch-skip), so that a large config's run profiles a few steps only; both runs skip the
# same number, so the difference still holds exactly STEPS_B − STEPS_A steps.
declare -A KERNELS_PER_STEP=([small]=620 [medium]=900 [vit-256]=1180 [vit-64]=340)
mkdir -p "$OUT/ncu"
profile() { # FRAMEWORK CONFIG STEPS COMMAND...: one program under ncu, its log kept beside the CSV
    local fw=$1 cfg=$2 steps=$3; shift 3
    local skip=()
    [ "$fw" = slaw ] && [ -n "${SKIP_STEPS:-}" ] && skip=(--launch-skip $((SKIP_STEPS * ${KERNELS_PER_STEP[$cfg]})))
    timeout -k 15 "${NCU_TIMEOUT:-240}" "$NCU" --clock-control none --metrics gpu__time_duration.sum \
        "${skip[@]}" --csv --print-units base --log-file "$OUT/ncu/$fw-$cfg-$steps.csv" "$@" \
        > "$OUT/ncu/$fw-$cfg-$steps.log" 2>&1 \
        || { echo "ncu $fw $cfg $steps failed"; tail -5 "$OUT/ncu/$fw-$cfg-$steps.log"; }
}
FRAMEWORKS="${FRAMEWORKS:-slaw torch}"
for cfg in ${CONFIGS:-small}; do
    for steps in "$A" "$B"; do
        case " $FRAMEWORKS " in *" slaw "*)
            profile slaw "$cfg" "$steps" "$SLAW" bench --model vit ${ARGS[$cfg]} --steps "$steps" \
                --warmup "$W" --device cuda:0 ${SLAW_EXTRA:-} ;; esac
        case " $FRAMEWORKS " in *" torch "*)
            profile torch "$cfg" "$steps" python3 bench/torch_step.py ${ARGS[$cfg]} --steps "$steps" \
                --warmup "$W" --mode f32 ;; esac
    done
    for fw in $FRAMEWORKS; do
        python3 bench/kernel_summary.py "$OUT/ncu/$fw-$cfg-$A.csv" "$OUT/ncu/$fw-$cfg-$B.csv" $((B - A)) \
            --label "$fw $cfg" | tee -a "$OUT/kernels.txt"
    done
done
