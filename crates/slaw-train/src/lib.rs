//! slaw's Burn trainer: the model families, the data sets, the learning-rate schedules and the
//! training loop of one trial.
//!
//! This crate is the only part of slaw that depends on Burn. Its public entry point,
//! [`trainer::train`], is not generic, so the crates that call it never monomorphise Burn's
//! generics and rebuild quickly (see DESIGN.md, "Compile times").
//!
//! - [`adamw`]: AdamW with clipping folded into one fused update per parameter.
//! - `adamw_kernel` (CUDA builds): that update as one custom operation and kernel.
//! - `adamw_cpu`: that update as one loop in place on the CPU backend.
//! - [`aim`]: the autoregressive image model (prefix attention, next-patch prediction).
//! - [`clipping`]: global-norm and adaptive (NFNet) gradient clipping.
//! - [`config`]: the resolved configuration of one trial (what the planner produces).
//! - [`convnet`]: the normaliser-free ResNet (weight standardisation, α/β residuals).
//! - [`cost`]: analytical parameter and FLOP counts per layer.
//! - `custom_op` (CUDA builds): registering custom operations, the row kernels' launch shape.
//! - `cpu`: the arrays under the CPU backend's tensors, for one-pass loops.
//! - [`foreach`]: work over many tensors in few launches (the gradients' sum of squares).
//! - `layer_norm`: LayerNorm as the models call it (one pass each way on CUDA and the CPU).
//! - [`data`]: Fashion-MNIST IDX files, the synthetic teacher task, the fixed split.
//! - [`model`]: the Burn modules (MLP, ViT) and the enum over every family.
//! - [`per_trial`]: one scalar per trial of a stack (learning rates, clipping factors).
//! - [`probe`]: the linear probe that scores AIM's frozen features.
//! - [`schedule`]: warm-up and decay of the learning rate.
//! - [`stack`]: the training loop of several trials of one shape trained as one model.
//! - [`stacked`]: the ViT with a leading trial axis on every parameter.
//! - `softmax`: softmax over the last axis as the attention calls it (one pass each way on CUDA and the CPU).
//! - `specialise`: reaching one backend's faster path from generic code.
//! - [`trainer`]: the loop, the [`trainer::Reporter`] trait and the outcomes.

pub mod adamw;
mod adamw_cpu;
#[cfg(feature = "cuda")]
mod adamw_kernel;
pub mod aim;
pub mod clipping;
pub mod config;
pub mod convnet;
pub mod cost;
mod cpu;
#[cfg(feature = "cuda")]
mod custom_op;
pub mod data;
pub mod foreach;
mod heads;
mod layer_norm;
pub mod model;
pub mod per_trial;
pub mod probe;
pub mod schedule;
mod softmax;
mod specialise;
pub mod stack;
pub mod stacked;
pub mod trainer;
#[cfg(test)]
mod vendor_patches;

pub use config::TrialConfig;
pub use stack::{stackable, train_stack};
pub use trainer::{train, ComputeDevice, Outcome, Reporter};
