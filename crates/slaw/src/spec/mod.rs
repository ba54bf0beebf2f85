//! The sweep file: its YAML schema, parsing with unknown keys rejected, defaults, and validation
//! that names the YAML path, line and column of every problem.
//!
//! The output is a [`SweepSpec`]: every axis resolved (sizes, epoch budgets, learning rates,
//! seeds) and every default filled in, ready for `plan` to expand. This module knows nothing of
//! the database or of training. serde_yaml (deprecated upstream) is used only here.

mod bounds;
mod command;
mod file;
mod images;
mod locate;
mod resolve;
mod slurm;
pub mod template;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slaw_core::config::{DataConfig, EvalConfig, ModelConfig, OptimConfig, Precision};

pub use bounds::{Limits, DEFAULT_MAX_TRIALS, MAX_BYTES, MAX_DEPTH};
pub use command::{CommandSize, CommandSpec};
pub use images::{DataIdentity, DataOptions};
pub use locate::{Locator, Position};
pub use slurm::SlurmSpec;

// The file as written and its resolution, for this module, its parsers and tests.
use file::*;
use resolve::*;

/// One problem in a sweep file, with its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file as the user named it.
    pub file: String,
    /// Where the offending value (or key) starts.
    pub position: Position,
    /// The YAML path, e.g. `train.lr.values[2]`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.position.line, self.position.column, self.path, self.message
        )
    }
}

/// Why a sweep file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read but is not a valid sweep.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// The resolved sweep.
// ---------------------------------------------------------------------------------------------

/// How many times a trial that ended in each state is run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Retries after an error (crash, out of memory).
    #[serde(default = "default_failed_retries")]
    pub failed: u32,
    /// Retries after a NaN/inf loss. Off by default: with the same seed it diverges again.
    #[serde(default)]
    pub diverged: u32,
    /// Retries after an interruption that was not a clean Ctrl-C (killed worker, expired lease).
    #[serde(default = "default_interrupted_retries")]
    pub interrupted: u32,
}

fn default_failed_retries() -> u32 {
    2
}

fn default_interrupted_retries() -> u32 {
    3
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            failed: default_failed_retries(),
            diverged: 0,
            interrupted: default_interrupted_retries(),
        }
    }
}

/// The adaptive learning-rate search (`lr: {adaptive: ...}`): the smallest model runs the
/// coarse grid `centre · factor^k`, k = −below..=above, at every budget; every other cell starts
/// at the rate predicted by the law fitted so far and walks along the same lattice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveLr {
    /// Centre of the lattice.
    pub centre: f64,
    /// Ratio of neighbouring rates.
    pub factor: f64,
    /// Coarse-grid steps below the centre.
    pub below: u32,
    /// Coarse-grid steps above the centre.
    pub above: u32,
    /// At most this many rates per cell.
    pub max_per_cell: u32,
}

impl AdaptiveLr {
    /// The rate at lattice index `k`, computed exactly as the grid axis computes it.
    pub fn rate(&self, k: i32) -> f64 {
        self.centre * self.factor.powi(k)
    }

    /// The nearest lattice index of `lr`.
    pub fn index(&self, lr: f64) -> i32 {
        ((lr / self.centre).ln() / self.factor.ln()).round() as i32
    }

    /// Whether `lr` is (to rounding) a point of the lattice.
    pub fn on_lattice(&self, lr: f64) -> bool {
        let r = self.rate(self.index(lr));
        (lr - r).abs() <= 1e-12 * r
    }
}

/// One entry of the model-size axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSize {
    /// The name the sweep gives it.
    pub name: String,
    /// The architecture at this size.
    pub model: ModelConfig,
}

/// A validated sweep with every default resolved.
///
/// The axes (epochs, learning rates, seeds), retries and packing are common to every trainer;
/// the data set, architecture and optimiser of slaw's own trainer, or the command line of an
/// external one, are in [`Trainer`]. The JSON form (stored in `sweeps.spec_json`) keeps the
/// trainer's fields at the top level, so that sweeps stored before command trainers existed
/// still read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepSpec {
    /// Unique name of the sweep in the store.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// What trains the trials, with its settings.
    #[serde(flatten)]
    pub trainer: Trainer,
    /// The epoch-budget axis.
    pub epochs: Vec<f64>,
    /// The learning-rate axis, ascending (with `adaptive`: the smallest model's coarse grid).
    pub lrs: Vec<f64>,
    /// The adaptive search, when the sweep asks for one.
    #[serde(default)]
    pub adaptive: Option<AdaptiveLr>,
    /// The seed axis.
    pub seeds: Vec<u64>,
    /// Retry limits per final state.
    pub retries: Retries,
    /// Trials run at once on each GPU.
    #[serde(default)]
    pub per_device: PerDevice,
    /// At most this many trials of one shape train as one stacked model.
    #[serde(default)]
    pub stack: Stack,
    /// The job arrays of `slaw run --executor slurm` (`None`: the section is absent and the
    /// defaults apply; not written then, so stored sweeps keep their form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmSpec>,
}

/// The trainer of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Trainer {
    /// slaw's Burn trainer.
    Burn(BurnSpec),
    /// An external program, started once per trial (`trainer: command`).
    Command(CommandSpec),
}

/// The settings of slaw's Burn trainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnSpec {
    /// The data set and split.
    pub data: DataConfig,
    /// Directory of the Fashion-MNIST train split or of the images, when the sweep names one.
    #[serde(default)]
    pub data_path: Option<PathBuf>,
    /// What the images data set is (the label map among it); `None` for the built-in ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_identity: Option<Box<DataIdentity>>,
    /// The model-size axis, in the order written.
    pub sizes: Vec<ModelSize>,
    /// Examples per step.
    pub batch_size: usize,
    /// Optimiser and schedule; `lr` is set per trial.
    pub optim: OptimConfig,
    /// Numeric precision.
    pub precision: Precision,
    /// Evaluation cadence.
    pub eval: EvalConfig,
}

impl SweepSpec {
    /// The Burn trainer's settings, for sweeps it trains.
    pub fn burn(&self) -> Option<&BurnSpec> {
        match &self.trainer {
            Trainer::Burn(b) => Some(b),
            Trainer::Command(_) => None,
        }
    }

    /// The command trainer's settings, for `trainer: command` sweeps.
    pub fn command(&self) -> Option<&CommandSpec> {
        match &self.trainer {
            Trainer::Command(c) => Some(c),
            Trainer::Burn(_) => None,
        }
    }

    /// Number of model sizes.
    pub fn size_count(&self) -> usize {
        match &self.trainer {
            Trainer::Burn(b) => b.sizes.len(),
            Trainer::Command(c) => c.sizes.len(),
        }
    }

    /// How many trials the grid expands to (with `adaptive`: its first, coarse grid on the
    /// smallest size), counted without building it.
    pub fn trial_count(&self) -> u128 {
        let sizes = if self.adaptive.is_some() {
            self.size_count().min(1)
        } else {
            self.size_count()
        };
        [sizes, self.epochs.len(), self.lrs.len(), self.seeds.len()]
            .iter()
            .map(|n| *n as u128)
            .product()
    }

    /// Name of the size at `index`.
    pub fn size_name(&self, index: usize) -> &str {
        match &self.trainer {
            Trainer::Burn(b) => b.sizes.get(index).map_or("", |s| s.name.as_str()),
            Trainer::Command(c) => c.sizes.get(index).map_or("", |s| s.name.as_str()),
        }
    }

    /// Parameters of the size at `index`: counted for slaw's models, as declared in the file
    /// for command trainers (`None` when the script reports them).
    pub fn size_params(&self, index: usize) -> Option<u64> {
        match &self.trainer {
            Trainer::Burn(b) => b
                .sizes
                .get(index)
                .map(|s| slaw_core::cost::model_cost(&s.model, &b.data.input_shape()).params_total),
            Trainer::Command(c) => c.sizes.get(index).and_then(|s| s.params),
        }
    }

    /// Training examples in one epoch, when known (a command sweep may not say).
    pub fn examples_per_epoch(&self) -> Option<f64> {
        match &self.trainer {
            Trainer::Burn(b) => Some(b.data.train_examples() as f64),
            Trainer::Command(c) => c.examples_per_epoch.map(|e| e as f64),
        }
    }

    /// What the validation loss measures, for figures: cross-entropy for slaw's classifiers,
    /// the next-patch error for AIM; `None` for command trainers (their own loss).
    pub fn loss_name(&self) -> Option<&'static str> {
        let b = self.burn()?;
        let aim = b
            .sizes
            .iter()
            .filter(|s| matches!(s.model, ModelConfig::Aim(_)))
            .count();
        match aim {
            0 => Some("cross-entropy, nats"),
            n if n == b.sizes.len() => Some("next-patch MSE, normalised pixels"),
            _ => None,
        }
    }

    /// Where slaw's trainer reads the Fashion-MNIST train split from, when the file says.
    pub fn data_path(&self) -> Option<&Path> {
        self.burn().and_then(|b| b.data_path.as_deref())
    }
}

/// How many trials of one shape (ViT, same size, data, batch, step count and optimiser;
/// learning rate, schedule and seed may differ) a worker trains as one stacked model
/// (`slaw-train`'s `stack`): each trial's numbers are those it reaches alone, and a step costs
/// about one trial's kernel launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// At most this many (1: every trial alone).
    Count(u32),
    /// [`Stack::AUTO_CUDA`] where a worker has a GPU to itself (one trial per GPU, workers
    /// started by hand or by Slurm), 1 where trials share a GPU and on the CPU.
    #[default]
    Auto,
}

impl Stack {
    /// The largest stack `auto` builds on a GPU of its own.
    pub const AUTO_CUDA: usize = 4;

    /// The largest stack of a worker that has its device to itself (`cuda`: a GPU).
    pub fn limit(self, cuda: bool) -> usize {
        match self {
            Stack::Count(n) => n.max(1) as usize,
            Stack::Auto if cuda => Self::AUTO_CUDA,
            Stack::Auto => 1,
        }
    }
}

impl std::fmt::Display for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stack::Count(n) => write!(f, "{n}"),
            Stack::Auto => write!(f, "auto"),
        }
    }
}

impl std::str::FromStr for Stack {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Stack::Auto);
        }
        match s.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(Stack::Count(n)),
            _ => Err(format!(
                "{s:?}: give a count of at least 1 (1: no stacks), or auto"
            )),
        }
    }
}

/// How many trials share one GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PerDevice {
    /// This many.
    Count(u32),
    /// As many as fit, from an estimate of each trial's memory.
    Auto,
}

impl Default for PerDevice {
    fn default() -> Self {
        PerDevice::Count(1)
    }
}

impl std::str::FromStr for PerDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(PerDevice::Auto);
        }
        match s.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(PerDevice::Count(n)),
            _ => Err(format!("{s:?}: give a count of at least 1, or auto")),
        }
    }
}

/// Reads and validates the sweep file at `path` under the default [`Limits`].
pub fn load(path: &Path) -> Result<(SweepSpec, String), SpecError> {
    load_with(path, &Limits::default())
}

/// Reads and validates the sweep file at `path` under `limits`. At most [`MAX_BYTES`] + 1 bytes
/// are read: a larger file is refused, not loaded.
pub fn load_with(path: &Path, limits: &Limits) -> Result<(SweepSpec, String), SpecError> {
    use std::io::Read;
    let io = |source| SpecError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        ))
    })?;
    let spec = parse_with(&text, &path.display().to_string(), limits)?;
    Ok((spec, text))
}

/// Parses and validates a sweep from `text` under the default [`Limits`]; `file` names it in
/// error messages.
pub fn parse(text: &str, file: &str) -> Result<SweepSpec, SpecError> {
    parse_with(text, file, &Limits::default())
}

/// Parses and validates a sweep from `text` under `limits`.
pub fn parse_with(text: &str, file: &str, limits: &Limits) -> Result<SweepSpec, SpecError> {
    bounds::check_shape(text, file)?;
    let problem = |position: Position, path: String, message: String| Problem {
        file: file.to_string(),
        position,
        path,
        message: bounds::clip(&message),
    };
    let mut findings = Findings::default();
    let spec = if is_command_file(text) {
        let raw: command::CommandSweepFile = deserialize(text, file)?;
        command::resolve(raw, &mut findings)
    } else {
        let raw: SweepFile = deserialize(text, file)?;
        resolve(raw, &limits.data, &mut findings)
    };
    if findings.0.is_empty() {
        if let Some(spec) = spec {
            let count = spec.trial_count();
            if count <= u128::from(limits.max_trials) {
                return Ok(spec);
            }
            findings.add(
                "train",
                format!(
                    "the sweep expands to {count} trials ({} sizes × {} budgets × {} learning \
                     rates × {} seeds); slaw plans at most {} per sweep unless --max-trials \
                     raises it",
                    spec.size_count(),
                    spec.epochs.len(),
                    spec.lrs.len(),
                    spec.seeds.len(),
                    limits.max_trials
                ),
            );
        }
    }
    let locator = Locator::new(text);
    Err(SpecError::Invalid(
        findings
            .0
            .into_iter()
            .map(|(path, message)| problem(locator.value(&path), path, message))
            .collect(),
    ))
}

/// Whether the file says `trainer: command` (its schema differs from slaw's own trainer's).
fn is_command_file(text: &str) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(default)]
        trainer: Option<serde_yaml::Value>,
    }
    serde_yaml::from_str::<Probe>(text)
        .ok()
        .and_then(|p| p.trainer)
        .is_some_and(|t| t.as_str() == Some("command"))
}

/// The file as written, or its first schema error with path and position.
fn deserialize<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, SpecError> {
    serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(text)).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let locator = Locator::new(text);
        let position = inner
            .location()
            .map(|l| Position {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or_else(|| locator.value(&path));
        let message = bounds::clip(&strip_path(&strip_location(&inner.to_string()), &path));
        let path = if path == "." {
            "(top level)".to_string()
        } else {
            path
        };
        SpecError::Invalid(vec![Problem {
            file: file.to_string(),
            position,
            path,
            message,
        }])
    })
}

/// serde_yaml starts its messages with the path of the enclosing mapping, which is reported
/// apart (more precisely, from serde_path_to_error).
fn strip_path(message: &str, path: &str) -> String {
    match message.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') && path.starts_with(head) => rest.to_string(),
        _ => message.to_string(),
    }
}

/// serde_yaml appends " at line L column C" to its messages; the position is reported apart.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests;
