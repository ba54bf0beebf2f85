//! Helpers shared by the integration tests: running the real `slaw` binary on sweep files in a
//! temporary directory, and reading its real SQLite store.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use slaw::store::{Store, TrialRow};

pub fn slaw() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slaw"));
    cmd.env_remove("SLAW_DB");
    cmd.env_remove("SLAW_CACHE");
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

    /// Starts `slaw <args> --db <sandbox db>` in the background with `envs` set, its output
    /// discarded.
    pub fn spawn(&self, args: &[&str], envs: &[(&str, &Path)]) -> Child {
        slaw()
            .args(args)
            .arg("--db")
            .arg(self.db())
            .envs(envs.iter().copied())
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slaw")
    }

    /// Polls the store until `pred(completed, running)` holds for `sweep`; after `timeout`,
    /// fails with every trial's state and the process list.
    pub async fn wait_for(
        &self,
        sweep: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(usize, usize) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.path("slaw.db").exists() {
                let store = self.store().await;
                if let Ok(s) = store.sweep(sweep).await {
                    let c = store.counts(s.id).await.unwrap();
                    store.close().await;
                    if pred(c.completed, c.running) {
                        return;
                    }
                } else {
                    store.close().await;
                }
            }
            if Instant::now() > deadline {
                let trials = self.trials(sweep).await;
                let ps = Command::new("ps").arg("-ef").output().unwrap();
                panic!(
                    "timed out waiting for {what}: {:#?}\n{}",
                    trials
                        .iter()
                        .map(|t| (
                            t.key.clone(),
                            t.state,
                            t.attempts,
                            t.worker.clone(),
                            t.error.clone()
                        ))
                        .collect::<Vec<_>>(),
                    String::from_utf8_lossy(&ps.stdout)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
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

/// SIGKILL to a child the test started, then reaps it.
#[allow(unsafe_code)]
pub fn kill9(child: &mut Child) {
    // SAFETY: a signal to a process this test spawned and has not reaped yet.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
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
