# Sourced by the bench scripts that run on the GPU machine: the result folder ($OUT), the CUDA
# build of slaw unpacked from gpu/slaw-cuda.xz ($SLAW), the CUDA libraries and the kernel cache.
OUT="${OUT:-/tmp/slaw-bench}"; mkdir -p "$OUT"
SLAW="${SLAW:-/tmp/slaw-cuda}"
# Scripts that bring their own builds (ab_step.sh, ab_sweep.sh) carry no gpu/slaw-cuda.xz.
[ -x "$SLAW" ] || [ ! -f gpu/slaw-cuda.xz ] || { xz -dc gpu/slaw-cuda.xz > /tmp/slaw-cuda && chmod +x /tmp/slaw-cuda; }
export LD_LIBRARY_PATH="/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
export SLAW_KERNEL_CACHE="${SLAW_KERNEL_CACHE:-/tmp/slaw-kernels}"
