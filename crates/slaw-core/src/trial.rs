//! One trial of a sweep, resolved: its [`TrialSpec`] and its stable content key ([`TrialKey`]).
//!
//! The key is the first 16 hex digits of SHA-256 over the canonical JSON (keys sorted) of the
//! trial's resolved configuration without its evaluation cadence, prefixed by the trainer's
//! version ([`TRAINER_VERSION`]). It survives reordering of the YAML and changes with anything
//! that changes training. For a command trainer the configuration is what the program receives
//! (its arguments, environment and working directory) with the trial's budget, learning rate
//! and seed ([`COMMAND_VERSION`]).

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::TrialConfig;
use crate::job::{CommandJob, Job};

/// A trial's stable content key: 16 lower-case hex digits. It reads as that string (`Deref`
/// to `str`), and serialises as it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct TrialKey(String);

impl TrialKey {
    /// The key of `value` (canonical JSON) under the key scheme `version`.
    pub fn hash(version: &str, value: &Value) -> TrialKey {
        let mut canonical = String::from(version);
        canonical.push('\n');
        write_canonical(value, &mut canonical);
        let digest = Sha256::digest(canonical.as_bytes());
        TrialKey(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for TrialKey {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TrialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for TrialKey {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TrialKey {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for TrialKey {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl From<TrialKey> for String {
    fn from(key: TrialKey) -> String {
        key.0
    }
}

/// Changes when the trainer's semantics change, so that old results are not mistaken for new.
/// 2: GELU's gradient is the exact one (Burn 0.21's was its tanh approximation's; slaw's patched
/// CPU backend, `vendor/burn-ndarray`).
pub const TRAINER_VERSION: &str = "slaw-train/2";

/// The version prefix of command trials' keys (changes only if what they hash changes).
pub const COMMAND_VERSION: &str = "slaw-command/1";

/// One trial of a sweep, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialSpec {
    /// Stable content key.
    pub key: TrialKey,
    /// Name of the model size.
    pub size: String,
    /// Position of the size on the sweep's size axis.
    pub size_index: usize,
    /// Model family (`mlp`, `vit`; `command` for external trainers).
    pub family: String,
    /// Trainable parameters.
    pub params: u64,
    /// Parameters outside the embeddings.
    pub params_non_embedding: u64,
    /// Tokens per example (1 for the MLP).
    pub tokens_per_example: u64,
    /// Epoch budget.
    pub epochs: f64,
    /// Optimiser steps.
    pub steps: u64,
    /// Examples seen (steps × batch size).
    pub examples: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Training FLOPs per example (3 × forward).
    pub flops_per_example: u64,
    /// Training FLOPs of the whole trial.
    pub flops: f64,
    /// Claim order: 0 first. Largest trials first, so that they do not decide the sweep's end.
    pub priority: i64,
    /// What the worker runs.
    pub config: Job,
}

/// The stable content key of a trial configuration.
pub fn trial_key(config: &TrialConfig) -> TrialKey {
    let mut value = serde_json::to_value(config).expect("trial configs serialise");
    if let Value::Object(map) = &mut value {
        map.remove("eval");
    }
    TrialKey::hash(TRAINER_VERSION, &value)
}

/// The stable content key of a command trial: what the program receives (arguments,
/// environment, working directory) with the trial's budget, learning rate and seed. The size's
/// other fields and declared costs are not part of it: they change no training.
pub fn command_key(job: &CommandJob) -> TrialKey {
    let value = serde_json::json!({
        "command": job.command,
        "env": job.env,
        "workdir": job.workdir,
        "epochs": job.epochs,
        "lr": job.lr,
        "seed": job.seed,
    });
    TrialKey::hash(COMMAND_VERSION, &value)
}

/// The key of any trial.
pub fn job_key(job: &Job) -> TrialKey {
    match job {
        Job::Burn(c) => trial_key(c),
        Job::Command(c) => command_key(c),
    }
}

/// JSON with object keys sorted, whatever serde_json's map type.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}
