//! slaw: a scaling-law experiment orchestrator.
//!
//! A sweep file (YAML) names a data set, a model family with a size axis, epoch budgets,
//! learning rates and seeds. slaw expands the grid, trains every trial with its Burn trainer on
//! the CPU or GPUs (or runs the researcher's own training command for each), keeps every loss
//! curve in a database, and fits and plots the compute–loss laws.
//!
//! Modules, with dependencies pointing down this list:
//! - [`sweep::run`] and [`sweep::results`]: the run use case end to end (register, execute
//!   through an [`exec::Executor`], fits and figures at the end) and what readers draw and
//!   write; the command line calls these.
//! - [`plot`]: figures (plotters, PNG and SVG).
//! - [`analysis`]: which runs feed which fit; stored fits; predictions; back-tests.
//! - [`report`]: text tables, number formats and the HTML report.
//! - [`query`]: read-only SQL and exports as DataFrames (polars: CSV, JSON, Parquet).
//! - [`sweep`]: registering a sweep's grid, preflight checks, status summaries, the adaptive
//!   learning-rate search.
//! - [`exec`]: workers that claim and train trials; the local multi-process executor and the
//!   Slurm executor.
//! - [`store`]: the SQLite/PostgreSQL store, claiming and leasing.
//! - [`plan`]: grid expansion, trial keys, parameter and FLOP counts.
//! - [`job`]: what one trial runs (Burn configuration or command line), as stored.
//! - [`spec`]: the sweep file's schema, parsing and validation.
//! - [`fit`]: scaling-law statistics on observations (pure).
//!
//! The trial vocabulary (configurations, costs, keys, the trainer's reports) lives in
//! `slaw-core`; this crate never depends on Burn: executors train through
//! [`slaw_core::Trainer`], which the `slaw` binary implements with the `slaw-train` crate, and
//! the command line itself is the `slaw-cli` crate.

#![warn(missing_docs)]

/// What one trial runs, as stored (defined in `slaw-core`).
pub use slaw_core::job;

pub mod analysis;
pub mod exec;
pub mod fit;
pub mod plan;
pub mod plot;
pub mod query;
pub mod report;
pub mod spec;
pub mod store;
pub mod sweep;
