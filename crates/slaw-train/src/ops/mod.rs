//! slaw's own operations where Burn's are slow: each is an autodiff operation with a CPU path
//! (one loop over the arrays under burn-ndarray's tensors) and a CUDA path (a CubeCL kernel
//! registered in burn-fusion's stream), in `ops/<op>/{mod,cpu,cuda}.rs`.
//!
//! - [`adamw`]: the fused AdamW update (one pass per parameter).
//! - [`foreach`]: work over many tensors in few launches (the gradients' sum of squares).
//! - `heads`: the attention's split into heads and back.
//! - `layer_norm`: LayerNorm (one pass each way).
//! - `matmul`: the models' matrix products (cuBLASLt on CUDA), the Linear layer's backward.
//! - `softmax`: softmax over the last axis (one pass each way).
//! - `custom_op` (CUDA builds): registering custom operations, the row kernels' launch shape.
//! - `cpu`: the arrays under the CPU backend's tensors, for one-pass loops.
//! - `specialise`: reaching one backend's faster path from generic code.

pub mod adamw;
pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod custom_op;
pub mod foreach;
pub(crate) mod heads;
pub(crate) mod layer_norm;
pub(crate) mod matmul;
pub(crate) mod softmax;
pub(crate) mod specialise;
