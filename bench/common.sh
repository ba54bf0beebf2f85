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
