//! Hardening (issue 21): nothing lost, nothing written by a reader, no crash or hang on hostile
//! input. Every test runs the real `slaw` binary on a real SQLite file (and, where the service
//! runs, a real PostgreSQL server), with real processes for command trainers.
//!
//! - `readers`: `slaw query` cannot write on either database, has a time limit and caps, refuses
//!   an output that is the database; read commands never create or migrate a database and
//!   name a file that is not one at once.
//! - `storage`: a database file deleted, made read-only or on a full disk under a running sweep
//!   stops the run with an error and keeps what was committed.
//! - `sweep_files`: deep or large files, huge grids, long values, and thousands of mutated sweep
//!   files: exit code 2, no crash, no hang.
//! - `commands`: no process of a command trainer outlives its trial; a flood of points is stored
//!   and not timed out; oversized metrics are capped.
//! - `conventions`: closed pipes, exit codes, escapes on a terminal, output directories,
//!   progress without costs, error texts, completions and `--version`.

mod commands;
mod conventions;
mod readers;
mod storage;
mod sweep_files;

use std::path::PathBuf;

use crate::common::{repo, slaw, text, Sandbox};

/// The fixture command trainer (python3 only).
pub fn trainer() -> String {
    repo()
        .join("tests/fixtures/command/trainer.py")
        .display()
        .to_string()
}

/// A command sweep named `name` whose sizes run the fixture trainer with `args` (each size's
/// `mode` and `sleep` fill `{model.mode}` and `{model.sleep}`), `extra` appended as YAML.
pub fn command_sweep(name: &str, sizes: &str, extra: &str) -> String {
    format!(
        "name: {name}
trainer: command
command: [python3, {}, --mode, '{{model.mode}}', --width, '{{model.width}}', --lr, '{{lr}}',
          --steps, '{{model.steps}}', --sleep, '{{model.sleep}}']
model:
  sizes: {sizes}
train: {{epochs: [1], lr: {{values: [0.01]}}}}
retries: {{failed: 0, interrupted: 0}}
{extra}",
        trainer()
    )
}

/// A database in `sb` with one finished two-trial command sweep named `quick`.
pub fn quick_db(sb: &Sandbox) -> PathBuf {
    let file = sb.write(
        "quick.yaml",
        &command_sweep(
            "quick",
            "[{name: a, mode: normal, width: 8, steps: 3, sleep: 0}, \
              {name: b, mode: normal, width: 16, steps: 3, sleep: 0}]",
            "",
        ),
    );
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress", "--no-fit"]);
    assert!(out.status.success(), "{}", text(&out));
    sb.path("slaw.db")
}

/// `slaw <args>` in `sb`'s directory (no `--db` added).
pub fn slaw_in(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    slaw()
        .args(args)
        .current_dir(sb.dir.path())
        .output()
        .expect("run slaw")
}
