//! The sweep file: its YAML schema, parsing with unknown keys rejected, defaults, and validation
//! that names the YAML path, line and column of every problem.
//!
//! The output is a [`SweepSpec`]: every axis resolved (sizes, epoch budgets, learning rates,
//! seeds) and every default filled in, ready for `plan` to expand. This module knows nothing of
//! the database or of training. serde_yaml (deprecated upstream) is used only here.

mod bounds;
mod command;
mod locate;
mod slurm;
pub mod template;

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use slaw_train::config::{
    Activation, AimConfig, ConvNetConfig, DataConfig, EvalConfig, FashionSource, MlpConfig,
    ModelConfig, OptimConfig, Optimizer, Pool, Precision, Schedule, Spacing, VitConfig,
};

pub use bounds::{Limits, DEFAULT_MAX_TRIALS, MAX_BYTES, MAX_DEPTH};
pub use command::{CommandSize, CommandSpec};
pub use locate::{Locator, Position};
pub use slurm::SlurmSpec;

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
// The file as written (every field optional where a default exists; unknown keys rejected).
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// `burn` (the default); `command` files are read by [`command::CommandSweepFile`].
    #[serde(default)]
    #[allow(dead_code)]
    trainer: Option<TrainerName>,
    data: DataSection,
    model: ModelSection,
    train: TrainSection,
    #[serde(default)]
    eval: Option<EvalSection>,
    #[serde(default)]
    retries: Option<Retries>,
    #[serde(default)]
    execution: Option<ExecutionSection>,
    #[serde(default)]
    slurm: Option<slurm::SlurmSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionSection {
    /// A count, or `auto`.
    per_device: Option<serde_yaml::Value>,
    /// Trials trained as one stack: a count, or `auto`.
    stack: Option<serde_yaml::Value>,
    /// Seconds (or `90s`, `15m`, `2h`) a command trial may run.
    timeout: Option<serde_yaml::Value>,
    /// Seconds (or `90s`, `15m`, `2h`) a command trial may stay silent.
    heartbeat_timeout: Option<serde_yaml::Value>,
}

/// Which program trains the trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TrainerName {
    /// slaw's own Burn trainer.
    Burn,
    /// Any program, started once per trial (`command:`).
    Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum DatasetName {
    FashionMnist,
    Synthetic,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DataSection {
    dataset: DatasetName,
    // fashion-mnist
    source: Option<FashionSource>,
    path: Option<PathBuf>,
    train_limit: Option<usize>,
    split_seed: Option<u64>,
    // both
    validation: Option<usize>,
    // synthetic
    side: Option<usize>,
    classes: Option<usize>,
    train: Option<usize>,
    teacher_width: Option<usize>,
    seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Family {
    #[default]
    Mlp,
    Vit,
    Convnet,
    Aim,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Mlp => "mlp",
            Family::Vit => "vit",
            Family::Convnet => "convnet",
            Family::Aim => "aim",
        }
    }
}

/// Declares the architecture fields shared by `model:` (family-wide values) and each entry of
/// `model.sizes` (per-size values, which win).
macro_rules! arch_struct {
    ($name:ident { $($extra:ident : $ety:ty),* }) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($extra: $ety,)*
            width: Option<usize>,
            depth: Option<usize>,
            heads: Option<usize>,
            mlp_dim: Option<usize>,
            mlp_ratio: Option<f64>,
            patch: Option<usize>,
            pool: Option<Pool>,
            qk_norm: Option<bool>,
            parallel_block: Option<bool>,
            bias: Option<bool>,
            activation: Option<Activation>,
            depths: Option<Vec<usize>>,
            alpha: Option<f64>,
            head_depth: Option<usize>,
        }

        impl $name {
            /// Names of the architecture fields written in the file.
            fn written(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                arch_struct!(@push self out width depth heads mlp_dim mlp_ratio patch pool qk_norm
                             parallel_block bias activation depths alpha head_depth);
                out
            }
        }
    };
    (@push $self:ident $out:ident $($field:ident)*) => {
        $(if $self.$field.is_some() { $out.push(stringify!($field)); })*
    };
}

/// Architecture fields each family does not have.
fn foreign_fields(family: Family) -> &'static [&'static str] {
    match family {
        Family::Mlp => &[
            "heads",
            "mlp_dim",
            "mlp_ratio",
            "patch",
            "pool",
            "qk_norm",
            "parallel_block",
            "depths",
            "alpha",
            "head_depth",
        ],
        Family::Vit => &["activation", "depths", "alpha", "head_depth"],
        Family::Convnet => &[
            "depth",
            "heads",
            "mlp_dim",
            "mlp_ratio",
            "patch",
            "pool",
            "qk_norm",
            "parallel_block",
            "bias",
            "head_depth",
        ],
        Family::Aim => &["activation", "depths", "alpha", "pool", "parallel_block"],
    }
}

arch_struct!(ModelSection { family: Family, sizes: Vec<SizeSection> });
arch_struct!(SizeSection { name: String });

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainSection {
    epochs: Vec<f64>,
    lr: LrSection,
    #[serde(default)]
    seeds: Option<Vec<u64>>,
    batch_size: usize,
    #[serde(default)]
    optimizer: Option<OptimizerSection>,
    #[serde(default)]
    weight_decay: Option<f64>,
    #[serde(default)]
    warmup: Option<f64>,
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    grad_clip: Option<f64>,
    #[serde(default)]
    agc: Option<f64>,
    #[serde(default)]
    precision: Option<Precision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LrSection {
    values: Option<Vec<f64>>,
    grid: Option<GridSection>,
    adaptive: Option<AdaptiveSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AdaptiveSection {
    centre: f64,
    #[serde(default)]
    below: Option<u32>,
    #[serde(default)]
    above: Option<u32>,
    #[serde(default)]
    factor: Option<f64>,
    #[serde(default)]
    max_per_cell: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GridSection {
    centre: f64,
    #[serde(default)]
    below: u32,
    #[serde(default)]
    above: u32,
    #[serde(default)]
    factor: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OptimizerName {
    AdamW,
    Sgd,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptimizerSection {
    name: OptimizerName,
    beta1: Option<f64>,
    beta2: Option<f64>,
    eps: Option<f64>,
    momentum: Option<f64>,
    nesterov: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvalSection {
    points: Option<usize>,
    spacing: Option<Spacing>,
    max_examples: Option<usize>,
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
    /// Directory of the Fashion-MNIST train split, when the sweep names one.
    #[serde(default)]
    pub data_path: Option<PathBuf>,
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
            Trainer::Burn(b) => b.sizes.get(index).map(|s| {
                slaw_train::cost::model_cost(&s.model, &b.data.input_shape()).params_total
            }),
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
/// (`slaw_train::stack`): each trial's numbers are those it reaches alone, and a step costs
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

/// Problems found during validation, before positions are attached.
#[derive(Default)]
struct Findings(Vec<(String, String)>);

impl Findings {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    fn unit(&mut self, path: &str, value: f64) {
        if !(0.0..1.0).contains(&value) {
            self.add(path, format!("must be in [0, 1), got {value}"));
        }
    }

    fn positive(&mut self, path: &str, value: f64, what: &str) {
        if !(value.is_finite() && value > 0.0) {
            self.add(
                path,
                format!("{what} must be a positive number, got {value}"),
            );
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
        resolve(raw, &mut findings)
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

/// The longest sweep name (it names a directory of results).
const MAX_NAME_CHARS: usize = 100;

/// The sweep name is used in paths and SQL filters: a restricted alphabet and length.
fn check_name(name: &str, f: &mut Findings) {
    if name.chars().count() > MAX_NAME_CHARS {
        f.add(
            "name",
            format!(
                "a sweep name has at most {MAX_NAME_CHARS} characters (it names directories), \
                 got {}",
                name.chars().count()
            ),
        );
        return;
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        f.add(
            "name",
            format!("sweep names use letters, digits, '-', '_' and '.', got {name:?}"),
        );
    }
}

/// The axes every trainer shares: epoch budgets, learning rates (or an adaptive search), seeds.
struct Axes {
    epochs: Vec<f64>,
    lrs: Option<Vec<f64>>,
    adaptive: Option<AdaptiveLr>,
    seeds: Vec<u64>,
}

fn resolve_axes(
    epochs: &[f64],
    lr: &LrSection,
    seeds: Option<&Vec<u64>>,
    f: &mut Findings,
) -> Axes {
    if epochs.is_empty() {
        f.add("train.epochs", "the epoch-budget axis is empty");
    }
    for (i, e) in epochs.iter().enumerate() {
        f.positive(&format!("train.epochs[{i}]"), *e, "an epoch budget");
    }
    let epochs = dedup_sorted(epochs, "train.epochs", f);
    let (lrs, adaptive) = match resolve_lr(lr, f) {
        Some((l, a)) => (Some(l), a),
        None => (None, None),
    };
    let seeds = seeds.cloned().unwrap_or_else(|| vec![0]);
    if seeds.is_empty() {
        f.add("train.seeds", "the seed axis is empty");
    }
    if seeds.iter().collect::<HashSet<_>>().len() != seeds.len() {
        f.add("train.seeds", "a seed appears twice");
    }
    Axes {
        epochs,
        lrs,
        adaptive,
        seeds,
    }
}

fn resolve(raw: SweepFile, f: &mut Findings) -> Option<SweepSpec> {
    check_name(&raw.name, f);
    let (data, data_path) = resolve_data(&raw.data, f);
    let sizes = resolve_model(&raw.model, &data, f);
    let t = &raw.train;
    let axes = resolve_axes(&t.epochs, &t.lr, t.seeds.as_ref(), f);
    if let Some(e) = &raw.execution {
        for (field, present) in [
            ("timeout", e.timeout.is_some()),
            ("heartbeat_timeout", e.heartbeat_timeout.is_some()),
        ] {
            if present {
                f.add(
                    format!("execution.{field}"),
                    "a setting of command trainers (trainer: command)",
                );
            }
        }
    }
    if t.batch_size == 0 {
        f.add("train.batch_size", "the batch size must be at least 1");
    } else if t.batch_size > data.train_examples() {
        f.add(
            "train.batch_size",
            format!(
                "a batch of {} is larger than the {} training examples",
                t.batch_size,
                data.train_examples()
            ),
        );
    }
    let optimizer = resolve_optimizer(t.optimizer.as_ref(), f);
    let weight_decay = t.weight_decay.unwrap_or(0.0);
    if !(weight_decay.is_finite() && weight_decay >= 0.0) {
        f.add(
            "train.weight_decay",
            format!("must be ≥ 0, got {weight_decay}"),
        );
    }
    let warmup = t.warmup.unwrap_or(0.0);
    if !(0.0..1.0).contains(&warmup) {
        f.add(
            "train.warmup",
            format!("the warm-up is a fraction of the budget in [0, 1), got {warmup}"),
        );
    }
    if let Some(c) = t.agc {
        f.positive("train.agc", c, "the adaptive clipping threshold");
    }
    if let Some(c) = t.grad_clip {
        f.positive("train.grad_clip", c, "the gradient-norm clip");
    }
    let eval = match &raw.eval {
        None => EvalConfig {
            points: 8,
            spacing: Spacing::Log,
            max_examples: None,
        },
        Some(e) => EvalConfig {
            points: e.points.unwrap_or(8),
            spacing: e.spacing.unwrap_or(Spacing::Log),
            max_examples: e.max_examples,
        },
    };
    if eval.points == 0 {
        f.add("eval.points", "at least one evaluation point is needed");
    }
    if eval.max_examples == Some(0) {
        f.add("eval.max_examples", "must be at least 1");
    }

    Some(SweepSpec {
        name: raw.name,
        description: raw.description,
        trainer: Trainer::Burn(BurnSpec {
            data,
            data_path,
            sizes: sizes?,
            batch_size: t.batch_size,
            optim: OptimConfig {
                optimizer: optimizer?,
                lr: 0.0,
                weight_decay,
                warmup,
                schedule: t.schedule.unwrap_or(Schedule::Cosine),
                grad_clip: t.grad_clip,
                agc: t.agc,
            },
            precision: t.precision.unwrap_or(Precision::F32),
            eval,
        }),
        epochs: axes.epochs,
        lrs: axes.lrs?,
        adaptive: axes.adaptive,
        seeds: axes.seeds,
        retries: raw.retries.unwrap_or_default(),
        per_device: resolve_per_device(raw.execution.as_ref(), f),
        stack: resolve_stack(raw.execution.as_ref(), f),
        slurm: slurm::resolve(raw.slurm.as_ref(), f),
    })
}

fn resolve_per_device(e: Option<&ExecutionSection>, f: &mut Findings) -> PerDevice {
    count_or_auto(
        e.and_then(|e| e.per_device.as_ref()),
        "execution.per_device",
        f,
    )
}

fn resolve_stack(e: Option<&ExecutionSection>, f: &mut Findings) -> Stack {
    count_or_auto(e.and_then(|e| e.stack.as_ref()), "execution.stack", f)
}

/// A setting written as a count or `auto` (parsed by `T`'s `FromStr`); absent: the default, an
/// unreadable value: a problem at `path` and the default.
fn count_or_auto<T: Default + std::str::FromStr<Err = String>>(
    value: Option<&serde_yaml::Value>,
    path: &str,
    f: &mut Findings,
) -> T {
    let Some(v) = value else {
        return T::default();
    };
    let text = match v {
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::String(s) => s.clone(),
        _ => String::from("?"),
    };
    text.parse().unwrap_or_else(|e: String| {
        f.add(path, e);
        T::default()
    })
}

/// Sorted copy of an axis; a value written twice is a problem.
fn dedup_sorted(values: &[f64], path: &str, f: &mut Findings) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.windows(2).any(|w| w[0] == w[1]) {
        f.add(path, "a value appears twice");
    }
    v.dedup();
    v
}

fn resolve_data(d: &DataSection, f: &mut Findings) -> (DataConfig, Option<PathBuf>) {
    let mut not_for = |field: &str, present: bool, dataset: &str| {
        if present {
            f.add(
                format!("data.{field}"),
                format!("not a setting of the {dataset} data set"),
            );
        }
    };
    match d.dataset {
        DatasetName::FashionMnist => {
            not_for("side", d.side.is_some(), "fashion-mnist");
            not_for("classes", d.classes.is_some(), "fashion-mnist");
            not_for("train", d.train.is_some(), "fashion-mnist");
            not_for("teacher_width", d.teacher_width.is_some(), "fashion-mnist");
            not_for("seed", d.seed.is_some(), "fashion-mnist (use split_seed)");
            let source = d.source.unwrap_or(FashionSource::T10k);
            let total = match source {
                FashionSource::T10k => 10_000,
                FashionSource::Train => 60_000,
            };
            let validation = d.validation.unwrap_or(total / 5);
            if validation == 0 || validation >= total {
                f.add(
                    "data.validation",
                    format!(
                        "hold out between 1 and {} of the {total} examples, got {validation}",
                        total - 1
                    ),
                );
            }
            if d.train_limit == Some(0) {
                f.add("data.train_limit", "must be at least 1");
            }
            (
                DataConfig::FashionMnist {
                    source,
                    validation,
                    train_limit: d.train_limit,
                    split_seed: d.split_seed.unwrap_or(0),
                },
                d.path.clone(),
            )
        }
        DatasetName::Synthetic => {
            not_for("source", d.source.is_some(), "synthetic");
            not_for("path", d.path.is_some(), "synthetic");
            not_for("train_limit", d.train_limit.is_some(), "synthetic");
            not_for("split_seed", d.split_seed.is_some(), "synthetic (use seed)");
            let cfg = DataConfig::Synthetic {
                side: d.side.unwrap_or(8),
                classes: d.classes.unwrap_or(4),
                train: d.train.unwrap_or(2048),
                validation: d.validation.unwrap_or(512),
                teacher_width: d.teacher_width.unwrap_or(32),
                seed: d.seed.unwrap_or(0),
            };
            if let DataConfig::Synthetic {
                side,
                classes,
                train,
                validation,
                teacher_width,
                ..
            } = &cfg
            {
                for (field, v, min) in [
                    ("side", *side, 1),
                    ("classes", *classes, 2),
                    ("train", *train, 1),
                    ("validation", *validation, 1),
                    ("teacher_width", *teacher_width, 1),
                ] {
                    if v < min {
                        f.add(format!("data.{field}"), format!("must be at least {min}"));
                    }
                }
            }
            (cfg, None)
        }
    }
}

fn resolve_model(m: &ModelSection, data: &DataConfig, f: &mut Findings) -> Option<Vec<ModelSize>> {
    if m.sizes.is_empty() {
        f.add("model.sizes", "the model-size axis is empty");
        return None;
    }
    let mut names = HashSet::new();
    let shape = data.input_shape();
    let family_name = m.family.name();
    let foreign = foreign_fields(m.family);
    for field in m.written().into_iter().filter(|f| foreign.contains(f)) {
        f.add(
            format!("model.{field}"),
            format!("not a setting of the {family_name} family"),
        );
    }
    let mut out = Vec::new();
    for (i, s) in m.sizes.iter().enumerate() {
        let p = format!("model.sizes[{i}]");
        for field in s.written().into_iter().filter(|f| foreign.contains(f)) {
            f.add(
                format!("{p}.{field}"),
                format!("not a setting of the {family_name} family"),
            );
        }
        if s.name.is_empty() {
            f.add(format!("{p}.name"), "a size needs a name");
        } else if !names.insert(s.name.clone()) {
            f.add(
                format!("{p}.name"),
                format!("the size name {:?} is used twice", s.name),
            );
        }
        let mut need = |field: &str, v: Option<usize>, min: usize| -> usize {
            match v {
                None => {
                    f.add(
                        format!("{p}.{field}"),
                        format!("missing: set {field} on the size or on model"),
                    );
                    0
                }
                Some(v) if v < min => {
                    f.add(
                        format!("{p}.{field}"),
                        format!("must be at least {min}, got {v}"),
                    );
                    v
                }
                Some(v) => v,
            }
        };
        let width = need("width", s.width.or(m.width), 1);
        let bias = s.bias.or(m.bias).unwrap_or(true);
        let model = match m.family {
            Family::Mlp => ModelConfig::Mlp(MlpConfig {
                width,
                depth: need("depth", s.depth.or(m.depth), 1),
                activation: s.activation.or(m.activation).unwrap_or(Activation::Gelu),
                bias,
            }),
            Family::Vit | Family::Aim => {
                let depth = need("depth", s.depth.or(m.depth), 1);
                let patch = need("patch", s.patch.or(m.patch), 1);
                let heads = need("heads", s.heads.or(m.heads), 1);
                let head_depth = match m.family {
                    Family::Aim => need("head_depth", s.head_depth.or(m.head_depth).or(Some(2)), 1),
                    _ => 0,
                };
                if patch > 0 && (shape.height % patch != 0 || shape.width % patch != 0) {
                    f.add(
                        format!("{p}.patch"),
                        format!(
                            "a patch of {patch} does not tile {}×{} images",
                            shape.height, shape.width
                        ),
                    );
                } else if m.family == Family::Aim
                    && patch > 0
                    && (shape.height / patch) * (shape.width / patch) < 2
                {
                    f.add(
                        format!("{p}.patch"),
                        "AIM needs at least two patches per image to predict the next one",
                    );
                }
                if heads > 0 && width % heads != 0 {
                    f.add(
                        format!("{p}.heads"),
                        format!("{heads} heads do not divide the width {width}"),
                    );
                }
                let mlp_dim = match (s.mlp_dim.or(m.mlp_dim), s.mlp_ratio.or(m.mlp_ratio)) {
                    (Some(d), _) => d,
                    (None, Some(r)) if r.is_finite() && r > 0.0 => {
                        ((r * width as f64).round() as usize).max(1)
                    }
                    (None, Some(r)) => {
                        f.add(
                            format!("{p}.mlp_ratio"),
                            format!("must be positive, got {r}"),
                        );
                        1
                    }
                    (None, None) => 4 * width,
                };
                let qk_norm = s.qk_norm.or(m.qk_norm).unwrap_or(false);
                if m.family == Family::Aim {
                    ModelConfig::Aim(AimConfig {
                        patch,
                        width,
                        depth,
                        heads,
                        mlp_dim,
                        head_depth,
                        qk_norm,
                        bias,
                    })
                } else {
                    ModelConfig::Vit(VitConfig {
                        patch,
                        width,
                        depth,
                        heads,
                        mlp_dim,
                        pool: s.pool.or(m.pool).unwrap_or(Pool::Cls),
                        qk_norm,
                        parallel_block: s.parallel_block.or(m.parallel_block).unwrap_or(false),
                        bias,
                    })
                }
            }
            Family::Convnet => {
                let depths = s.depths.clone().or_else(|| m.depths.clone());
                let depths = match depths {
                    None => {
                        f.add(
                            format!("{p}.depths"),
                            "missing: set depths (blocks per stage, e.g. [1, 2, 6, 3]) on the size or on model",
                        );
                        vec![1]
                    }
                    Some(d) if d.is_empty() => {
                        f.add(format!("{p}.depths"), "needs at least one stage");
                        vec![1]
                    }
                    Some(d) => {
                        if let Some(i) = d.iter().position(|&n| n == 0) {
                            f.add(
                                format!("{p}.depths[{i}]"),
                                "every stage needs at least one block",
                            );
                        }
                        if d.len() > 6 {
                            f.add(
                                format!("{p}.depths"),
                                format!(
                                    "{} stages halve {}×{} images below one pixel",
                                    d.len(),
                                    shape.height,
                                    shape.width
                                ),
                            );
                        }
                        d
                    }
                };
                let alpha = s.alpha.or(m.alpha).unwrap_or(0.2);
                f.positive(&format!("{p}.alpha"), alpha, "the residual scale alpha");
                ModelConfig::Convnet(ConvNetConfig {
                    width,
                    depths,
                    alpha,
                    activation: s.activation.or(m.activation).unwrap_or(Activation::Relu),
                })
            }
        };
        out.push(ModelSize {
            name: s.name.clone(),
            model,
        });
    }
    Some(out)
}

fn resolve_lr(lr: &LrSection, f: &mut Findings) -> Option<(Vec<f64>, Option<AdaptiveLr>)> {
    let given = [
        lr.values.is_some(),
        lr.grid.is_some(),
        lr.adaptive.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            f.add(
                "train.lr",
                "give the learning-rate axis as values: [...], grid: {centre, below, above, factor} \
                 or adaptive: {centre, below, above, factor}",
            );
            return None;
        }
        1 => {}
        _ => {
            f.add("train.lr", "give one of values, grid or adaptive");
            return None;
        }
    }
    if let Some(values) = &lr.values {
        if values.is_empty() {
            f.add("train.lr.values", "the learning-rate axis is empty");
        }
        for (i, v) in values.iter().enumerate() {
            f.positive(&format!("train.lr.values[{i}]"), *v, "a learning rate");
        }
        return Some((dedup_sorted(values, "train.lr.values", f), None));
    }
    let (path, centre, below, above, factor) = match (&lr.grid, &lr.adaptive) {
        (Some(g), _) => ("train.lr.grid", g.centre, g.below, g.above, g.factor),
        (_, Some(a)) => (
            "train.lr.adaptive",
            a.centre,
            a.below.unwrap_or(2),
            a.above.unwrap_or(2),
            a.factor,
        ),
        _ => return None,
    };
    let factor = factor.unwrap_or(2.0);
    f.positive(
        &format!("{path}.centre"),
        centre,
        "the centre learning rate",
    );
    if !(factor.is_finite() && factor > 1.0) {
        f.add(
            format!("{path}.factor"),
            format!("the grid factor must be greater than 1, got {factor}"),
        );
        return None;
    }
    let steps = u64::from(below) + u64::from(above) + 1;
    if steps > MAX_GRID_RATES {
        f.add(
            path,
            format!(
                "below + above + 1 = {steps} learning rates; a grid may have at most \
                 {MAX_GRID_RATES}"
            ),
        );
        return None;
    }
    let grid = lr_grid(centre, below, above, factor);
    if let Some(bad) = grid.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
        f.add(
            path,
            format!(
                "the grid reaches a learning rate of {bad} (centre {centre} × factor {factor} to \
                 the power −{below}…{above}); choose a smaller factor or fewer steps"
            ),
        );
        return None;
    }
    let adaptive = lr.adaptive.as_ref().map(|a| AdaptiveLr {
        centre,
        factor,
        below,
        above,
        max_per_cell: a.max_per_cell.unwrap_or(12),
    });
    if let Some(a) = &adaptive {
        if (a.max_per_cell as usize) < 3 {
            f.add(
                "train.lr.adaptive.max_per_cell",
                "an adaptive cell needs at least 3 rates to bracket its optimum",
            );
        }
    }
    Some((grid, adaptive))
}

/// The most learning rates a `grid` or `adaptive` section may span.
const MAX_GRID_RATES: u64 = 1_000;

/// `centre · factor^k` for k in −below..=above, ascending.
pub fn lr_grid(centre: f64, below: u32, above: u32, factor: f64) -> Vec<f64> {
    (-(below as i32)..=above as i32)
        .map(|k| centre * factor.powi(k))
        .collect()
}

fn resolve_optimizer(o: Option<&OptimizerSection>, f: &mut Findings) -> Option<Optimizer> {
    let Some(o) = o else {
        return Some(Optimizer::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        });
    };
    match o.name {
        OptimizerName::AdamW => {
            for (field, present) in [
                ("momentum", o.momentum.is_some()),
                ("nesterov", o.nesterov.is_some()),
            ] {
                if present {
                    f.add(format!("train.optimizer.{field}"), "not a setting of adamw");
                }
            }
            let (beta1, beta2, eps) = (
                o.beta1.unwrap_or(0.9),
                o.beta2.unwrap_or(0.999),
                o.eps.unwrap_or(1e-8),
            );
            f.unit("train.optimizer.beta1", beta1);
            f.unit("train.optimizer.beta2", beta2);
            f.positive("train.optimizer.eps", eps, "epsilon");
            Some(Optimizer::AdamW { beta1, beta2, eps })
        }
        OptimizerName::Sgd => {
            for (field, present) in [
                ("beta1", o.beta1.is_some()),
                ("beta2", o.beta2.is_some()),
                ("eps", o.eps.is_some()),
            ] {
                if present {
                    f.add(format!("train.optimizer.{field}"), "not a setting of sgd");
                }
            }
            let momentum = o.momentum.unwrap_or(0.9);
            f.unit("train.optimizer.momentum", momentum);
            Some(Optimizer::Sgd {
                momentum,
                nesterov: o.nesterov.unwrap_or(true),
            })
        }
    }
}

#[cfg(test)]
mod tests;
