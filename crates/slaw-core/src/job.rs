//! What a worker runs for one trial, as stored in `trials.config_json`: the configuration of
//! slaw's Burn trainer, or the resolved command line of an external trainer.
//!
//! A Burn trial is stored as its `TrialConfig` JSON exactly as before command trainers existed
//! (so stored trials and their keys are unchanged); a command trial is a JSON object with
//! `"trainer": "command"`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::TrialConfig;
use serde::{Deserialize, Serialize};

/// One trial's work.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// Train with slaw's Burn trainer.
    Burn(TrialConfig),
    /// Run an external program.
    Command(CommandJob),
}

/// An external program, fully resolved for one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandJob {
    /// The program and its arguments, templates filled in.
    pub command: Vec<String>,
    /// Environment variables set for the program (besides slaw's `SLAW_*`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the worker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<PathBuf>,
    /// The size's fields, as the sweep file gives them (`name` included).
    pub size: BTreeMap<String, serde_json::Value>,
    /// Epoch budget.
    pub epochs: f64,
    /// Peak learning rate.
    pub lr: f64,
    /// Seed.
    pub seed: u64,
    /// Examples per step, when the sweep says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u64>,
    /// Parameters declared in the sweep file (the script may report them instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<u64>,
    /// Non-embedding parameters declared in the sweep file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_non_embedding: Option<u64>,
    /// Training FLOPs per example declared in the sweep file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flops_per_example: Option<f64>,
}

const COMMAND_TAG: &str = "command";

impl Job {
    /// The Burn configuration, for Burn trials.
    pub fn burn(&self) -> Option<&TrialConfig> {
        match self {
            Job::Burn(c) => Some(c),
            Job::Command(_) => None,
        }
    }

    /// The command, for command trials.
    pub fn command(&self) -> Option<&CommandJob> {
        match self {
            Job::Command(c) => Some(c),
            Job::Burn(_) => None,
        }
    }

    /// The trial's epoch budget.
    pub fn epochs(&self) -> f64 {
        match self {
            Job::Burn(c) => c.epochs,
            Job::Command(c) => c.epochs,
        }
    }

    /// The trial's peak learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Job::Burn(c) => c.optim.lr,
            Job::Command(c) => c.lr,
        }
    }

    /// Examples per step, when known.
    pub fn batch_size(&self) -> Option<u64> {
        match self {
            Job::Burn(c) => Some(c.batch_size as u64),
            Job::Command(c) => c.batch_size,
        }
    }

    /// The trial's seed.
    pub fn seed(&self) -> u64 {
        match self {
            Job::Burn(c) => c.seed,
            Job::Command(c) => c.seed,
        }
    }
}

impl CommandJob {
    /// The command line as a shell would show it (for messages; it never runs through one).
    pub fn display(&self) -> String {
        self.command
            .iter()
            .map(|a| {
                let plain = !a.is_empty()
                    && a.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
                if plain {
                    a.clone()
                } else {
                    format!("'{}'", a.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Serialize for Job {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Job::Burn(c) => c.serialize(serializer),
            Job::Command(c) => {
                let mut value = serde_json::to_value(c).map_err(serde::ser::Error::custom)?;
                if let serde_json::Value::Object(map) = &mut value {
                    map.insert("trainer".into(), COMMAND_TAG.into());
                }
                value.serialize(serializer)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Job {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        let command = value
            .get("trainer")
            .is_some_and(|t| t.as_str() == Some(COMMAND_TAG));
        if command {
            if let serde_json::Value::Object(map) = &mut value {
                map.remove("trainer");
            }
            serde_json::from_value(value)
                .map(Job::Command)
                .map_err(serde::de::Error::custom)
        } else {
            serde_json::from_value(value)
                .map(Job::Burn)
                .map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> CommandJob {
        CommandJob {
            command: vec!["python3".into(), "t.py".into(), "a b; $(x)".into()],
            env: BTreeMap::from([("K".to_string(), "v".to_string())]),
            workdir: None,
            size: BTreeMap::from([("name".to_string(), serde_json::json!("s"))]),
            epochs: 1.0,
            lr: 0.01,
            seed: 0,
            batch_size: Some(32),
            params: None,
            params_non_embedding: None,
            flops_per_example: None,
        }
    }

    #[test]
    fn command_jobs_round_trip_with_their_tag() {
        let j = Job::Command(job());
        let text = serde_json::to_string(&j).unwrap();
        assert!(text.contains("\"trainer\":\"command\""), "{text}");
        let back: Job = serde_json::from_str(&text).unwrap();
        assert_eq!(back, j);
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        assert_eq!(job().display(), "python3 t.py 'a b; $(x)'");
    }
}
