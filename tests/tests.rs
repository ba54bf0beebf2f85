//! slaw's integration tests: one test binary (as ripgrep has), one module per area. Every test
//! runs the real `slaw` binary or the library on real files (SQLite; PostgreSQL and Slurm where
//! `scripts/start_services.sh` started them).
//!
//! - `cli`: validation errors and exit codes, the plan, real training runs, resume, divergence.
//! - `cluster`: PostgreSQL shared by many workers, the Slurm executor on a real cluster.
//! - `command`: external training commands (the protocol, limits, retries, process groups).
//! - `crash`: `kill -9` of a run and of workers, then resume.
//! - `fit_cli`: `slaw fit` / `predict` / `report` on planted and imported data.
//! - `fit_reference`: the fits against published scaling-law fits on public data.
//! - `results_cli`: `slaw query`, `export`, `show`, `plot`.
//! - `images`: `dataset: images` in every format, the cache, streaming, bad data sets.
//! - `hardening`: nothing lost, nothing written by a reader, no crash on hostile input.

mod common;

mod cli;
mod cluster;
mod command;
mod crash;
mod fit_cli;
mod fit_reference;
mod hardening;
mod images;
mod results_cli;
