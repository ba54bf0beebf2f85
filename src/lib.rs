//! slaw: a scaling-law experiment orchestrator.
//!
//! A sweep file (YAML) names a data set, a model family with a size axis, epoch budgets,
//! learning rates and seeds. slaw expands the grid, trains every trial with its Burn trainer on
//! the CPU or GPUs (or runs the researcher's own training command for each), keeps every loss
//! curve in a database, and fits and plots the compute–loss laws.
//!
//! Modules, with dependencies pointing down this list:
//! - [`cli`]: the `slaw` command line.
//! - [`plot`]: figures (plotters, PNG and SVG).
//! - [`analysis`]: which runs feed which fit; stored fits; predictions; back-tests.
//! - [`report`]: text tables, number formats and the HTML report.
//! - [`query`]: read-only SQL and exports as DataFrames (polars: CSV, JSON, Parquet).
//! - [`exec`]: workers that claim and train trials; the local multi-process executor and the
//!   Slurm executor.
//! - [`sweep`]: registering a sweep's grid, preflight checks, status summaries.
//! - [`store`]: the SQLite/PostgreSQL store, claiming and leasing.
//! - [`plan`]: grid expansion, trial keys, parameter and FLOP counts.
//! - [`job`]: what one trial runs (Burn configuration or command line), as stored.
//! - [`spec`]: the sweep file's schema, parsing and validation.
//! - [`fit`]: scaling-law statistics on observations (pure).
//!
//! The trainer itself lives in the `slaw-train` crate.

pub mod analysis;
pub mod cli;
pub mod exec;
pub mod fit;
pub mod job;
pub mod plan;
pub mod plot;
pub mod query;
pub mod report;
pub mod spec;
pub mod store;
pub mod sweep;
