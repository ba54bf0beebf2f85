//! Training one trial (or a stack of trials) with Burn: the loop, its optimisers, schedules,
//! clipping and data.
//!
//! - [`trainer`]: the loop of one trial, the backend choice and the outcomes.
//! - [`stack`]: the loop of several trials of one shape trained as one model.
//! - [`adamw`]: AdamW with clipping folded into one fused update per parameter.
//! - [`clipping`]: global-norm and adaptive (NFNet) gradient clipping.
//! - [`options`]: the process-wide settings (slaw's own operations on or off, chunk sizes).
//! - [`schedule`]: warm-up and decay of the learning rate.
//! - [`data`]: Fashion-MNIST IDX files, the synthetic teacher task, the fixed split.
//! - [`per_trial`]: one scalar per trial of a stack (learning rates, clipping factors).
//! - [`probe`]: the linear probe that scores AIM's frozen features.

pub mod adamw;
pub mod augment;
pub mod batches;
pub mod clipping;
pub mod data;
pub mod data_bench;
pub mod images;
pub mod options;
pub mod per_trial;
pub mod probe;
pub mod schedule;
pub mod stack;
pub mod trainer;
