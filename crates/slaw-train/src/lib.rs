//! slaw's Burn trainer: the model families, the data sets, the learning-rate schedules and the
//! training loop of one trial.
//!
//! This crate is the only part of slaw that depends on Burn. Its public entry point,
//! [`trainer::train`], is not generic, so the crates that call it never monomorphise Burn's
//! generics and rebuild quickly (see DESIGN.md, "Compile times").
//!
//! - [`config`]: the resolved configuration of one trial (what the planner produces).
//! - [`cost`]: analytical parameter and FLOP counts per layer.
//! - [`data`]: Fashion-MNIST IDX files, the synthetic teacher task, the fixed split.
//! - [`model`]: the Burn modules (MLP, ViT).
//! - [`schedule`]: warm-up and decay of the learning rate.
//! - [`trainer`]: the loop, the [`trainer::Reporter`] trait and the outcomes.

pub mod config;
pub mod cost;
pub mod data;
pub mod model;
pub mod schedule;
pub mod trainer;

pub use config::TrialConfig;
pub use trainer::{train, ComputeDevice, Outcome, Reporter};
