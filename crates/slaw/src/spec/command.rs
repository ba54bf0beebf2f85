//! Sweep files of external trainers (`trainer: command`): the command line as a list of
//! argument templates, environment variables from the same templates, free-form model sizes,
//! and the time limits of a trial.
//!
//! ```yaml
//! name: torch-mlp
//! trainer: command
//! command: ["python3", "train.py", "--width", "{model.width}", "--lr", "{lr}"]
//! env: {RUN_NAME: "{model.name}-{lr}"}
//! model:
//!   depth: 2                              # shared by every size, which may override it
//!   sizes: [{name: s, width: 64, params: 55050}, {name: m, width: 256}]
//! train:
//!   epochs: [1, 4]
//!   lr: {grid: {centre: 0.002, below: 1, above: 1}}
//!   batch_size: 128                       # optional: {batch_size}; examples = step × batch
//!   examples_per_epoch: 8000              # optional: planned examples and FLOPs
//! execution: {timeout: 30m, heartbeat_timeout: 5m}
//! ```
//!
//! Every template field must exist for every trial: a misspelt field is an error with its
//! line. So is an axis the command ignores (three learning rates that would run the same
//! command three times).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::template::{self, Template};
use super::{
    check_name, resolve_axes, resolve_per_device, ExecutionSection, Findings, LrSection, PerDevice,
    Retries, SweepSpec, Trainer, TrainerName,
};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommandSweepFile {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[allow(dead_code)]
    trainer: TrainerName,
    command: Yaml,
    #[serde(default)]
    env: Option<BTreeMap<String, Yaml>>,
    #[serde(default)]
    workdir: Option<PathBuf>,
    model: BTreeMap<String, Yaml>,
    train: CommandTrainSection,
    #[serde(default)]
    retries: Option<Retries>,
    #[serde(default)]
    execution: Option<ExecutionSection>,
    #[serde(default)]
    slurm: Option<super::slurm::SlurmSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandTrainSection {
    epochs: Vec<f64>,
    lr: LrSection,
    #[serde(default)]
    seeds: Option<Vec<u64>>,
    #[serde(default)]
    batch_size: Option<u64>,
    #[serde(default)]
    examples_per_epoch: Option<u64>,
}

/// The resolved settings of a command trainer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// The program and its arguments, as templates.
    pub command: Vec<String>,
    /// Environment variables for the program, values as templates.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the program (default: the worker's).
    #[serde(default)]
    pub workdir: Option<PathBuf>,
    /// The model-size axis.
    pub sizes: Vec<CommandSize>,
    /// Examples per step, when the sweep says (`{batch_size}`; examples = step × batch size
    /// for lines that do not report `examples`).
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Training examples per epoch, when the sweep says (planned examples and FLOPs,
    /// `{examples}`, `slaw predict --epochs`).
    #[serde(default)]
    pub examples_per_epoch: Option<u64>,
    /// Seconds a trial may run before it is killed and failed.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Seconds a trial may print nothing (stdout, stderr, `$SLAW_METRICS`) before it is killed
    /// and failed.
    #[serde(default)]
    pub heartbeat_timeout: Option<f64>,
}

/// One model size of a command sweep: named fields for the templates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandSize {
    /// The size's name.
    pub name: String,
    /// Every field (the model section's shared ones, overridden by the size's), `name`
    /// included: `{model.<field>}` in templates.
    pub fields: BTreeMap<String, Json>,
    /// Parameters, when the file declares them (else the script reports them).
    #[serde(default)]
    pub params: Option<u64>,
    /// Non-embedding parameters, when declared (default: `params`).
    #[serde(default)]
    pub params_non_embedding: Option<u64>,
    /// Training FLOPs per example, when declared (default: 6 × params).
    #[serde(default)]
    pub flops_per_example: Option<f64>,
}

impl CommandSpec {
    /// The template values of one trial: `lr`, `epochs`, `seed`, `sweep`, `batch_size` and
    /// `examples` (when the sweep sets them), and `model.<field>` for every field of the size.
    pub fn vars(
        &self,
        sweep: &str,
        size_index: usize,
        epochs: f64,
        lr: f64,
        seed: u64,
    ) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        vars.insert("sweep".to_string(), sweep.to_string());
        vars.insert("lr".to_string(), template::number(lr));
        vars.insert("epochs".to_string(), template::number(epochs));
        vars.insert("seed".to_string(), seed.to_string());
        if let Some(b) = self.batch_size {
            vars.insert("batch_size".to_string(), b.to_string());
        }
        if let Some(e) = self.planned_examples(epochs) {
            vars.insert("examples".to_string(), e.to_string());
        }
        if let Some(size) = self.sizes.get(size_index) {
            for (k, v) in &size.fields {
                vars.insert(format!("model.{k}"), template::scalar(v));
            }
        }
        vars
    }

    /// Optimiser steps planned for a budget, when the sweep gives examples per epoch and a
    /// batch size.
    pub fn planned_steps(&self, epochs: f64) -> Option<u64> {
        let (epe, batch) = (self.examples_per_epoch?, self.batch_size?);
        Some((((epochs * epe as f64) / batch as f64).ceil() as u64).max(1))
    }

    /// Examples planned for a budget, when the sweep gives examples per epoch (whole steps
    /// when it also gives a batch size).
    pub fn planned_examples(&self, epochs: f64) -> Option<u64> {
        match (self.planned_steps(epochs), self.batch_size) {
            (Some(steps), Some(batch)) => Some(steps * batch),
            _ => self
                .examples_per_epoch
                .map(|epe| (epochs * epe as f64).round() as u64),
        }
    }
}

/// A YAML scalar as JSON (strings, numbers, booleans); anything else is a problem at `path`.
fn scalar(v: &Yaml, path: &str, f: &mut Findings) -> Option<Json> {
    match v {
        Yaml::String(s) => Some(Json::String(s.clone())),
        Yaml::Bool(b) => Some(Json::Bool(*b)),
        Yaml::Number(n) => {
            if let Some(i) = n.as_u64() {
                Some(Json::from(i))
            } else if let Some(i) = n.as_i64() {
                Some(Json::from(i))
            } else {
                match n.as_f64().and_then(serde_json::Number::from_f64) {
                    Some(x) => Some(Json::Number(x)),
                    None => {
                        f.add(path, format!("{n} is not a finite number"));
                        None
                    }
                }
            }
        }
        Yaml::Tagged(t) => scalar(&t.value, path, f),
        Yaml::Null => {
            f.add(path, "has no value (give a string, number or boolean)");
            None
        }
        Yaml::Sequence(_) | Yaml::Mapping(_) => {
            f.add(
                path,
                "must be a string, number or boolean (templates take scalars)",
            );
            None
        }
    }
}

/// Field names become `{model.<name>}`: letters, digits, '_' and '-'.
fn valid_field(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
}

fn valid_env(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A positive whole number from a JSON scalar (`1e6` and `1000000.0` allowed).
fn whole(v: &Json) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|x| x.is_finite() && *x > 0.0 && x.fract() == 0.0 && *x < 1.8e19)
            .map(|x| x as u64)
    })
}

/// Seconds from `90`, `"90s"`, `"15m"`, `"2h"`.
fn duration(v: &Yaml, path: &str, f: &mut Findings) -> Option<f64> {
    let seconds = match v {
        Yaml::Number(n) => n.as_f64(),
        Yaml::String(s) => {
            let s = s.trim();
            let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
                Some(i) => (&s[..i], s[i..].trim()),
                None => (s, "s"),
            };
            let scale = match unit {
                "s" | "sec" => Some(1.0),
                "m" | "min" => Some(60.0),
                "h" => Some(3600.0),
                _ => None,
            };
            number
                .trim()
                .parse::<f64>()
                .ok()
                .zip(scale)
                .map(|(x, k)| x * k)
        }
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 => Some(s),
        _ => {
            f.add(
                path,
                "give a positive duration: seconds, or a number with s, m or h (90s, 15m, 2h)",
            );
            None
        }
    }
}

fn resolve_sizes(model: &BTreeMap<String, Yaml>, f: &mut Findings) -> Option<Vec<CommandSize>> {
    let mut shared = BTreeMap::new();
    for (k, v) in model.iter().filter(|(k, _)| k.as_str() != "sizes") {
        let path = format!("model.{k}");
        if k == "name" {
            f.add(path, "every size has its own name: set it on the sizes");
            continue;
        }
        if !valid_field(k) {
            f.add(path, "field names use letters, digits, '_' and '-'");
            continue;
        }
        if let Some(v) = scalar(v, &path, f) {
            shared.insert(k.clone(), v);
        }
    }
    let sizes = match model.get("sizes") {
        Some(Yaml::Sequence(items)) if !items.is_empty() => items,
        Some(Yaml::Sequence(_)) => {
            f.add("model.sizes", "the model-size axis is empty");
            return None;
        }
        Some(_) => {
            f.add(
                "model.sizes",
                "must be a list of sizes, e.g. [{name: s, width: 64}]",
            );
            return None;
        }
        None => {
            f.add(
                "model.sizes",
                "missing: the model-size axis, e.g. sizes: [{name: s, width: 64}]",
            );
            return None;
        }
    };
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, item) in sizes.iter().enumerate() {
        let p = format!("model.sizes[{i}]");
        let Yaml::Mapping(map) = item else {
            f.add(
                p,
                "a size is a mapping of fields, e.g. {name: s, width: 64}",
            );
            continue;
        };
        let mut fields = shared.clone();
        for (k, v) in map {
            let Some(k) = k.as_str() else {
                f.add(&p, "field names must be strings");
                continue;
            };
            let path = format!("{p}.{k}");
            if !valid_field(k) {
                f.add(path, "field names use letters, digits, '_' and '-'");
                continue;
            }
            if let Some(v) = scalar(v, &path, f) {
                fields.insert(k.to_string(), v);
            }
        }
        let name = match fields.get("name") {
            Some(Json::String(s)) if !s.is_empty() => s.clone(),
            Some(Json::Number(n)) => n.to_string(),
            Some(_) => {
                f.add(format!("{p}.name"), "a size's name is a non-empty string");
                continue;
            }
            None => {
                f.add(format!("{p}.name"), "missing: every size needs a name");
                continue;
            }
        };
        fields.insert("name".to_string(), Json::String(name.clone()));
        if let Some(j) = names.insert(name.clone(), i) {
            f.add(
                format!("{p}.name"),
                format!("the size name {name:?} is used twice (also model.sizes[{j}])"),
            );
        }
        let mut whole_field = |field: &str| -> Option<u64> {
            let v = fields.get(field)?;
            let n = whole(v).filter(|n| *n > 0);
            if n.is_none() {
                f.add(
                    format!("{p}.{field}"),
                    format!("must be a positive whole number, got {v}"),
                );
            }
            n
        };
        let params = whole_field("params");
        let params_non_embedding = whole_field("params_non_embedding");
        let flops_per_example = match fields.get("flops_per_example") {
            None => None,
            Some(v) => match v.as_f64().filter(|x| x.is_finite() && *x > 0.0) {
                Some(x) => Some(x),
                None => {
                    f.add(
                        format!("{p}.flops_per_example"),
                        format!("must be a positive number, got {v}"),
                    );
                    None
                }
            },
        };
        out.push(CommandSize {
            name,
            fields,
            params,
            params_non_embedding,
            flops_per_example,
        });
    }
    Some(out)
}

/// A template with its place in the file.
struct Placed {
    path: String,
    template: Template,
}

pub(super) fn resolve(raw: CommandSweepFile, f: &mut Findings) -> Option<SweepSpec> {
    check_name(&raw.name, f);
    let t = &raw.train;
    let axes = resolve_axes(&t.epochs, &t.lr, t.seeds.as_ref(), f);
    if t.batch_size == Some(0) {
        f.add("train.batch_size", "the batch size must be at least 1");
    }
    if t.examples_per_epoch == Some(0) {
        f.add("train.examples_per_epoch", "must be at least 1");
    }

    let mut command = Vec::new();
    match &raw.command {
        Yaml::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                if let Some(v) = scalar(v, &format!("command[{i}]"), f) {
                    command.push(template::scalar(&v));
                }
            }
            if items.is_empty() {
                f.add(
                    "command",
                    "the command is empty: give the program and its arguments",
                );
            } else if command.first().is_some_and(|p| p.trim().is_empty()) {
                f.add("command[0]", "the program's name is empty");
            }
        }
        Yaml::String(_) => f.add(
            "command",
            "give the command as a list of arguments (it runs without a shell), e.g. \
             [\"python3\", \"train.py\", \"--lr\", \"{lr}\"]",
        ),
        _ => f.add(
            "command",
            "must be a list of arguments, e.g. [\"python3\", \"train.py\", \"--lr\", \"{lr}\"]",
        ),
    }
    let mut env = BTreeMap::new();
    for (k, v) in raw.env.iter().flatten() {
        let path = format!("env.{k}");
        if !valid_env(k) {
            f.add(
                path,
                "environment variable names use letters, digits and '_', not starting with a digit",
            );
            continue;
        }
        if k.starts_with("SLAW_") {
            f.add(
                path,
                "SLAW_ variables are set by slaw for every trial (SLAW_METRICS, SLAW_TRIAL_KEY, ...)",
            );
            continue;
        }
        if let Some(v) = scalar(v, &path, f) {
            env.insert(k.clone(), template::scalar(&v));
        }
    }
    let sizes = resolve_sizes(&raw.model, f);

    let execution = raw.execution.as_ref();
    let timeout = execution
        .and_then(|e| e.timeout.as_ref())
        .and_then(|v| duration(v, "execution.timeout", f));
    let heartbeat_timeout = execution
        .and_then(|e| e.heartbeat_timeout.as_ref())
        .and_then(|v| duration(v, "execution.heartbeat_timeout", f));
    let per_device = resolve_per_device(execution, f);
    if per_device == PerDevice::Auto {
        f.add(
            "execution.per_device",
            "auto estimates the memory of slaw's own models; give a count for a command trainer",
        );
    }

    if execution.is_some_and(|e| e.stack.is_some()) {
        f.add(
            "execution.stack",
            "stacks train slaw's own ViTs as one model; a command trainer runs each trial alone",
        );
    }

    let spec = CommandSpec {
        command,
        env,
        workdir: raw.workdir,
        sizes: sizes?,
        batch_size: t.batch_size,
        examples_per_epoch: t.examples_per_epoch,
        timeout,
        heartbeat_timeout,
    };
    if axes.adaptive.is_some() {
        if let Some(i) = spec.sizes.iter().position(|s| s.params.is_none()) {
            f.add(
                format!("model.sizes[{i}]"),
                "an adaptive learning-rate search orders sizes by parameters before training: \
                 declare params on every size",
            );
        }
        if spec.examples_per_epoch.is_none() {
            f.add(
                "train.lr.adaptive",
                "an adaptive learning-rate search needs train.examples_per_epoch",
            );
        }
    }
    check_templates(&raw.name, &spec, &axes, f);
    Some(SweepSpec {
        name: raw.name,
        description: raw.description,
        trainer: Trainer::Command(spec),
        epochs: axes.epochs,
        lrs: axes.lrs?,
        adaptive: axes.adaptive,
        seeds: axes.seeds,
        retries: raw.retries.unwrap_or_default(),
        per_device,
        stack: super::Stack::Count(1),
        slurm: super::slurm::resolve(raw.slurm.as_ref(), f),
    })
}

/// Every field of every template exists for every trial; every axis with more than one value
/// changes the command; no two sizes run the same command.
fn check_templates(name: &str, spec: &CommandSpec, axes: &super::Axes, f: &mut Findings) {
    let mut placed = Vec::new();
    for (i, text) in spec.command.iter().enumerate() {
        let path = format!("command[{i}]");
        match Template::parse(text) {
            Ok(template) => placed.push(Placed { path, template }),
            Err(e) => f.add(path, e),
        }
    }
    for (k, text) in &spec.env {
        let path = format!("env.{k}");
        match Template::parse(text) {
            Ok(template) => placed.push(Placed { path, template }),
            Err(e) => f.add(path, e),
        }
    }
    if spec.sizes.is_empty() || placed.len() < spec.command.len() + spec.env.len() {
        // Without every template, which fields the command uses is not known.
        return;
    }
    let mut used: HashMap<String, bool> = HashMap::new();
    let base = spec.vars(name, 0, 1.0, 1.0, 0);
    for p in &placed {
        for field in p.template.fields() {
            used.insert(field.to_string(), true);
            if let Some(key) = field.strip_prefix("model.") {
                let missing: Vec<&str> = spec
                    .sizes
                    .iter()
                    .filter(|s| !s.fields.contains_key(key))
                    .map(|s| s.name.as_str())
                    .collect();
                if missing.len() == spec.sizes.len() {
                    let mut known: Vec<&str> = spec
                        .sizes
                        .iter()
                        .flat_map(|s| s.fields.keys().map(String::as_str))
                        .collect();
                    known.sort_unstable();
                    known.dedup();
                    f.add(
                        &p.path,
                        format!(
                            "unknown field {{{field}}}: the sizes have {}",
                            known
                                .iter()
                                .map(|k| format!("{{model.{k}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                } else if !missing.is_empty() {
                    f.add(
                        &p.path,
                        format!(
                            "{{{field}}}: size{} {} ha{} no field {key} (set it on the size or on model)",
                            if missing.len() == 1 { "" } else { "s" },
                            missing.join(", "),
                            if missing.len() == 1 { "s" } else { "ve" },
                        ),
                    );
                }
            } else if !base.contains_key(field) {
                let hint = match field {
                    "batch_size" => " ({batch_size} needs train.batch_size)".to_string(),
                    "examples" => " ({examples} needs train.examples_per_epoch)".to_string(),
                    _ => String::new(),
                };
                let mut known: Vec<String> = base
                    .keys()
                    .filter(|k| !k.starts_with("model."))
                    .map(|k| format!("{{{k}}}"))
                    .collect();
                known.push("{model.<field of the sizes>}".into());
                f.add(
                    &p.path,
                    format!(
                        "unknown field {{{field}}}{hint}: known fields are {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let uses = |field: &str| used.contains_key(field);
    let several_lrs = axes.lrs.as_ref().is_some_and(|l| l.len() > 1) || axes.adaptive.is_some();
    if several_lrs && !uses("lr") {
        f.add(
            "train.lr",
            "the command never uses {lr}: every learning rate would run the same command",
        );
    }
    if axes.epochs.len() > 1 && !uses("epochs") && !uses("examples") {
        f.add(
            "train.epochs",
            "the command uses neither {epochs} nor {examples}: every budget would run the same command",
        );
    }
    if axes.seeds.len() > 1 && !uses("seed") {
        f.add(
            "train.seeds",
            "the command never uses {seed}: every seed would run the same command",
        );
    }
    // Sizes must differ in what the command receives.
    let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
    for i in 0..spec.sizes.len() {
        let vars = spec.vars(name, i, 1.0, 1.0, 0);
        let rendered: Vec<String> = placed
            .iter()
            .map(|p| p.template.render(&vars).unwrap_or_default())
            .collect();
        if let Some(j) = seen.insert(rendered, i) {
            f.add(
                format!("model.sizes[{i}]"),
                format!(
                    "runs the same command as size {:?}: the templates use none of the fields in which they differ",
                    spec.sizes[j].name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Problem, SpecError};
    use super::*;

    pub(crate) const GOOD: &str = "\
name: cmd
trainer: command
command: [python3, train.py, --width, '{model.width}', --lr, '{lr}', --epochs, '{epochs}', --seed, '{seed}']
env:
  RUN: '{model.name}-{lr}'
  THREADS: 2
model:
  depth: 2
  sizes:
    - {name: s, width: 64, params: 1000}
    - {name: m, width: 256, depth: 3, flops_per_example: 1.5e4}
train:
  epochs: [1, 2]
  lr: {values: [0.001, 0.01]}
  seeds: [0, 1]
  batch_size: 32
  examples_per_epoch: 1000
execution: {timeout: 15m, heartbeat_timeout: 90, per_device: 2}
";

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text, "c.yaml") {
            Err(SpecError::Invalid(p)) => p,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_command_sweep_resolves() {
        let s = parse(GOOD, "c.yaml").unwrap();
        let c = s.command().expect("a command sweep");
        assert_eq!(c.command[3], "{model.width}");
        assert_eq!(c.env["THREADS"], "2");
        assert_eq!(c.sizes.len(), 2);
        assert_eq!(c.sizes[0].fields["depth"], serde_json::json!(2));
        assert_eq!(c.sizes[1].fields["depth"], serde_json::json!(3));
        assert_eq!(c.sizes[0].params, Some(1000));
        assert_eq!(c.sizes[1].flops_per_example, Some(1.5e4));
        assert_eq!((c.timeout, c.heartbeat_timeout), (Some(900.0), Some(90.0)));
        assert_eq!(s.per_device, PerDevice::Count(2));
        assert_eq!(c.planned_steps(1.0), Some(32));
        assert_eq!(c.planned_examples(2.0), Some(63 * 32));
        let vars = c.vars("cmd", 1, 2.0, 0.01, 1);
        assert_eq!(vars["model.width"], "256");
        assert_eq!(vars["model.name"], "m");
        assert_eq!(vars["lr"], "0.01");
        assert_eq!(vars["epochs"], "2");
        // Stored and read back.
        let json = serde_json::to_string(&s).unwrap();
        let back: SweepSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn an_unknown_template_field_is_located() {
        let text = GOOD.replace("'{model.width}'", "'{model.widht}'");
        let p = problems(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "command[3]");
        assert_eq!(p[0].position.line, 3);
        assert!(
            p[0].message.contains("unknown field {model.widht}"),
            "{}",
            p[0]
        );
        assert!(p[0].message.contains("{model.width}"), "{}", p[0]);
        let text = GOOD.replace("RUN: '{model.name}-{lr}'", "RUN: '{nme}'");
        let p = problems(&text);
        assert_eq!(p[0].path, "env.RUN");
        assert_eq!((p[0].position.line, p[0].position.column), (5, 8));
        assert!(p[0].message.contains("unknown field {nme}"), "{}", p[0]);
    }

    #[test]
    fn a_field_some_sizes_lack_is_reported_with_their_names() {
        let text = GOOD.replace(", '{seed}']", ", '{seed}', '{model.flops_per_example}']");
        let p = problems(&text);
        assert_eq!(p[0].path, "command[10]");
        assert!(p[0].message.contains("size s has no field"), "{}", p[0]);
    }

    #[test]
    fn ignored_axes_and_identical_sizes_are_errors() {
        let text = GOOD
            .replace(", --lr, '{lr}'", "")
            .replace("RUN: '{model.name}-{lr}'", "RUN: x")
            .replace("width: 256", "width: 64")
            .replace(", depth: 3", "");
        let p = problems(&text);
        let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"train.lr"), "{p:?}");
        assert!(paths.contains(&"model.sizes[1]"), "{p:?}");
    }

    #[test]
    fn malformed_commands_and_environments() {
        let p = problems(&GOOD.replace(
            "command: [python3,",
            "command: 'python3 train.py'\nx: [python3,",
        ));
        assert!(p[0].message.contains("unknown field `x`"), "{p:?}");
        let p = problems(&GOOD.replace("THREADS: 2", "SLAW_METRICS: /tmp/x"));
        assert_eq!(p[0].path, "env.SLAW_METRICS");
        let p = problems(&GOOD.replace("'{model.width}'", "'{model.width'"));
        assert!(p[0].message.contains("not closed"), "{p:?}");
        assert_eq!(
            p.len(),
            1,
            "no guesses from a template that does not parse: {p:?}"
        );
        let p = problems(&GOOD.replace("timeout: 15m", "timeout: soon"));
        assert_eq!(p[0].path, "execution.timeout");
        let p = problems(&GOOD.replace("per_device: 2", "per_device: auto"));
        assert_eq!(p[0].path, "execution.per_device");
        let p = problems(&GOOD.replace(
            "  batch_size: 32\n",
            "  batch_size: 32\n  optimizer: adamw\n",
        ));
        assert!(p[0].message.contains("unknown field `optimizer`"), "{p:?}");
        let p = problems(&GOOD.replace("params: 1000", "params: -3"));
        assert_eq!(p[0].path, "model.sizes[0].params");
    }

    #[test]
    fn burn_sweeps_reject_command_settings() {
        let burn = "\
name: b
data: {dataset: synthetic}
model: {family: mlp, depth: 1, sizes: [{name: a, width: 4}]}
train: {epochs: [1], lr: {values: [0.1]}, batch_size: 8}
execution: {timeout: 10}
";
        let p = problems(burn);
        assert_eq!(p[0].path, "execution.timeout");
        let p = problems(&burn.replace("execution: {timeout: 10}", "trainer: pytorch"));
        assert!(p[0].message.contains("unknown variant `pytorch`"), "{p:?}");
        assert!(parse(
            &burn.replace("execution: {timeout: 10}", "trainer: burn"),
            "b"
        )
        .is_ok());
    }
}
