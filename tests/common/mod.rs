//! Helpers shared by the integration tests: running the real `slaw` binary on sweep files in a
//! temporary directory, and reading its real SQLite store.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use slaw::store::{Store, TrialRow};

pub fn slaw() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slaw"));
    cmd.env_remove("SLAW_DB");
    cmd
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write sweep");
        p
    }

    pub fn db(&self) -> String {
        self.path("slaw.db").display().to_string()
    }

    /// `slaw <args> --db <sandbox db>` with plain output.
    pub fn run(&self, args: &[&str]) -> Output {
        slaw()
            .args(args)
            .arg("--db")
            .arg(self.db())
            .current_dir(self.dir.path())
            .output()
            .expect("run slaw")
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.db()).await.expect("open store")
    }

    pub async fn trials(&self, sweep: &str) -> Vec<TrialRow> {
        let store = self.store().await;
        let s = store.sweep(sweep).await.expect("sweep");
        let t = store.trials(s.id).await.expect("trials");
        store.close().await;
        t
    }

    /// Events of every trial of `sweep`, by trial key.
    pub async fn events(&self, sweep: &str) -> Vec<(String, Vec<String>)> {
        let store = self.store().await;
        let s = store.sweep(sweep).await.expect("sweep");
        let mut out = Vec::new();
        for t in store.trials(s.id).await.expect("trials") {
            let ev = store.events(t.id).await.expect("events");
            out.push((t.key.clone(), ev.into_iter().map(|e| e.event).collect()));
        }
        store.close().await;
        out
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A synthetic sweep whose trials take a fraction of a second each.
pub fn synthetic_sweep(name: &str, lrs: &str, steps_per_trial_epochs: &str) -> String {
    format!(
        "name: {name}
data: {{dataset: synthetic, side: 6, classes: 3, train: 512, validation: 128, teacher_width: 16, seed: 1}}
model:
  family: mlp
  depth: 1
  sizes: [{{name: a, width: 8}}, {{name: b, width: 24}}]
train:
  epochs: {steps_per_trial_epochs}
  lr: {{values: {lrs}}}
  batch_size: 32
  grad_clip: 1.0
eval: {{points: 3}}
retries: {{failed: 1, diverged: 0, interrupted: 3}}
"
    )
}
