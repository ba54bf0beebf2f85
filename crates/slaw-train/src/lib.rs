//! slaw's Burn trainer: the model families, the data sets, the learning-rate schedules and the
//! training loop of one trial.
//!
//! This crate is the only part of slaw that depends on Burn. Its public entry point,
//! [`train::trainer::train`], is not generic, so the crates that call it never monomorphise Burn's
//! generics and rebuild quickly (see DESIGN.md, "Compile times").
//!
//! The crate is in three folders:
//! - [`models`]: the Burn modules of every family (MLP, ViT, stacked ViT, ConvNet, AIM).
//! - [`train`](mod@train): the training loop, its optimisers, schedules, clipping and data.
//! - [`ops`]: slaw's own operations and kernels (`ops/<op>/{mod,cpu,cuda}.rs`).
//!
//! The trial vocabulary (configurations, costs, the reports of [`train::trainer::Reporter`])
//! is `slaw-core`'s; a change to the loop's semantics bumps `slaw_core::TRAINER_VERSION`
//! (re-exported here as [`TRAINER_VERSION`]), so that stored results are not mistaken for new.

pub mod models;
pub mod ops;
pub mod train;
#[cfg(test)]
mod vendor_patches;

pub use slaw_core::TRAINER_VERSION;
/// The trial vocabulary (configurations, costs) lives in `slaw-core`; re-exported so that paths
/// inside this crate read as before.
pub use slaw_core::{config, cost};

pub use config::TrialConfig;
pub use train::stack::{stackable, train_stack};
pub use train::trainer::{train, ComputeDevice, Outcome, Reporter};
