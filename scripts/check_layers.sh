#!/usr/bin/env bash
# The crates' boundaries, checked on their dependency trees (CI runs this; it builds nothing):
#   slaw-core   (the trial vocabulary)   no Burn, sqlx, polars, plotters or tokio
#   slaw-data   (image data sets)        no Burn, sqlx, polars, plotters or tokio
#   slaw        (the orchestrator)       no Burn or CubeCL
#   slaw-train  (the Burn trainer)       no sqlx, polars or plotters
# A crate that gains a forbidden dependency, directly or through another crate, fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."

failed=0
forbid() {
    local crate="$1" pattern="$2" tree found
    # Normal dependencies only, every feature on (the cuda build must hold the line too).
    tree="$(cargo tree ${CARGO_TREE_FLAGS---locked} -p "$crate" --all-features -e normal \
        --prefix none --format '{p}')"
    found="$(printf '%s\n' "$tree" | awk '{print $1}' | sort -u | grep -E "^($pattern)$" || true)"
    if [ -n "$found" ]; then
        echo "FAIL: $crate depends on $(echo "$found" | tr '\n' ' ')" >&2
        failed=1
    else
        echo "ok: $crate has none of: ${pattern//|/, }"
    fi
}

forbid slaw-core 'burn.*|cubecl.*|sqlx.*|polars.*|plotters.*|tokio'
forbid slaw-data 'burn.*|cubecl.*|sqlx.*|polars.*|plotters.*|tokio'
forbid slaw 'burn.*|cubecl.*'
forbid slaw-train 'sqlx.*|polars.*|plotters.*'
exit "$failed"
