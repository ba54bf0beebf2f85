# Sourced by the bench scripts that run on the GPU machine: the result folder ($OUT), the CUDA
# build of slaw unpacked from gpu/slaw-cuda.xz ($SLAW), the CUDA libraries and the kernel cache.
OUT="${OUT:-/tmp/slaw-bench}"; mkdir -p "$OUT"
SLAW="${SLAW:-/tmp/slaw-cuda}"
# Scripts that bring their own builds (ab_step.sh, ab_sweep.sh) carry no gpu/slaw-cuda.xz.
[ -x "$SLAW" ] || [ ! -f gpu/slaw-cuda.xz ] || { xz -dc gpu/slaw-cuda.xz > /tmp/slaw-cuda && chmod +x /tmp/slaw-cuda; }
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export SLAW_KERNEL_CACHE="${SLAW_KERNEL_CACHE:-/tmp/slaw-kernels}"
# The benchmark ViTs (arguments of `slaw bench` and bench/torch_step.py): DESIGN.md's small and
# medium configs, the four sizes of the sweep benchmark (bench/sweep-gpu.yaml) and DESIGN.md's
# large config.
declare -A ARGS=(
    [small]="--width 128 --depth 4 --heads 4 --image 32 --patch 4 --batch 256"
    [medium]="--width 384 --depth 6 --heads 6 --image 32 --patch 4 --batch 256"
    [vit-64]="--width 64 --depth 2 --heads 2 --image 28 --patch 4 --batch 128"
    [vit-128]="--width 128 --depth 4 --heads 4 --image 28 --patch 4 --batch 128"
    [vit-192]="--width 192 --depth 6 --heads 6 --image 28 --patch 4 --batch 128"
    [vit-256]="--width 256 --depth 8 --heads 8 --image 28 --patch 4 --batch 128"
    [large]="--width 1024 --depth 12 --heads 16 --image 64 --patch 4 --batch 128"
)
# measured COMMAND...: runs COMMAND and prints its JSON lines, each with "gpu_memory_mib": the peak
# of nvidia-smi's per-process used memory during the run (sampled every 200 ms; context, caches
# and allocator pools included, the same measure for slaw and PyTorch; 0 where none is reported).
measured() {
    local log out peak sampler
    log=$(mktemp)
    nvidia-smi --query-compute-apps=used_memory --format=csv,noheader,nounits -lms 200 > "$log" 2>/dev/null &
    sampler=$!
    out=$("$@")
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
    peak=$(awk '$1 + 0 > m { m = $1 + 0 } END { print m + 0 }' "$log")
    rm -f "$log"
    printf '%s\n' "$out" | grep '^{' | sed "s/^{/{\"gpu_memory_mib\":$peak,/"
}
