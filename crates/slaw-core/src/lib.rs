//! slaw's trial vocabulary, shared by the orchestrator (`slaw`), the Burn trainer
//! (`slaw-train`) and the binary (`slaw-cli`): what one trial is and what it reports.
//!
//! This crate is light on purpose (serde, SHA-256): no Burn, no database, no plotting, no async
//! runtime, so that every layer above can depend on it and it rebuilds in seconds.
//!
//! - [`config`]: the resolved configuration of one trial of slaw's trainer.
//! - [`cost`]: analytical parameter and FLOP counts per layer.
//! - [`job`]: what one trial runs (trainer configuration or command line), as stored.
//! - [`trial`]: a resolved trial of a sweep ([`TrialSpec`]) and its content key ([`TrialKey`]).
//! - [`device`]: where a trial runs.
//! - [`report`]: what a trainer reports while training and how a trial ended.
//! - [`trainer`]: the [`Trainer`] trait through which the executors train trials.

#![warn(missing_docs)]

pub mod config;
pub mod cost;
pub mod device;
pub mod job;
pub mod report;
pub mod trainer;
pub mod trial;

pub use config::TrialConfig;
pub use device::ComputeDevice;
pub use report::{Evaluation, Outcome, Progress, Reporter, StartInfo, Summary};
pub use trainer::{Trainer, TrainerError};
pub use trial::{TrialKey, TrialSpec, TRAINER_VERSION};
