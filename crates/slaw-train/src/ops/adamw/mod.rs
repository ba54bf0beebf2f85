//! The fused AdamW update of one parameter (the optimiser itself is [`crate::train::adamw`]):
//! one loop in place on the CPU backend (`cpu`) and one custom operation and kernel on CUDA
//! (`cuda`).

pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
