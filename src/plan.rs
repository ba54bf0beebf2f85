//! Grid expansion: a [`SweepSpec`] becomes an ordered list of [`TrialSpec`]s, each with a
//! stable content key, its parameter counts and its training FLOPs. Pure: no I/O.
//!
//! The key is the first 16 hex digits of SHA-256 over the canonical JSON (keys sorted) of the
//! trial's resolved configuration without its evaluation cadence, prefixed by the trainer's
//! version. It survives reordering of the YAML and changes with anything that changes training.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use slaw_train::config::{ModelConfig, TrialConfig};
use slaw_train::cost::{model_cost, ModelCost};

use crate::spec::SweepSpec;

/// Changes when the trainer's semantics change, so that old results are not mistaken for new.
pub const TRAINER_VERSION: &str = "slaw-train/1";

/// One trial of a sweep, fully resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialSpec {
    /// Stable content key.
    pub key: String,
    /// Name of the model size.
    pub size: String,
    /// Position of the size on the sweep's size axis.
    pub size_index: usize,
    /// Model family (`mlp`, `vit`).
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
    /// The configuration the trainer receives.
    pub config: TrialConfig,
}

/// Totals over a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanTotals {
    /// Number of trials.
    pub trials: usize,
    /// Examples over all trials.
    pub examples: u64,
    /// Training FLOPs over all trials.
    pub flops: f64,
}

/// An expanded sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The sweep's name.
    pub sweep: String,
    /// Trials in grid order: size, epochs, learning rate, seed.
    pub trials: Vec<TrialSpec>,
    /// Totals.
    pub totals: PlanTotals,
}

fn family(model: &ModelConfig) -> &'static str {
    match model {
        ModelConfig::Mlp(_) => "mlp",
        ModelConfig::Vit(_) => "vit",
        ModelConfig::Convnet(_) => "convnet",
        ModelConfig::Aim(_) => "aim",
    }
}

/// Expands the grid size × epochs × learning rate × seed. For an adaptive learning-rate
/// search only the first cells are planned: the smallest model at every budget on the coarse
/// grid; `sweep::adaptive` adds the rest as results arrive.
pub fn expand(spec: &SweepSpec) -> Plan {
    let smallest = smallest_size(spec);
    let mut trials = Vec::new();
    for size_index in 0..spec.sizes.len() {
        if spec.adaptive.is_some() && size_index != smallest {
            continue;
        }
        for &epochs in &spec.epochs {
            for &lr in &spec.lrs {
                for &seed in &spec.seeds {
                    trials.push(trial(spec, size_index, epochs, lr, seed));
                }
            }
        }
    }
    assign_priorities(&mut trials);
    Plan::new(spec, trials)
}

impl Plan {
    /// A plan of `trials`, with totals.
    pub fn new(spec: &SweepSpec, trials: Vec<TrialSpec>) -> Plan {
        let totals = PlanTotals {
            trials: trials.len(),
            examples: trials.iter().map(|t| t.examples).sum(),
            flops: trials.iter().map(|t| t.flops).sum(),
        };
        Plan {
            sweep: spec.name.clone(),
            trials,
            totals,
        }
    }
}

/// Index of the size with the fewest parameters (the first of equals).
pub fn smallest_size(spec: &SweepSpec) -> usize {
    let shape = spec.data.input_shape();
    (0..spec.sizes.len())
        .min_by_key(|&i| model_cost(&spec.sizes[i].model, &shape).params_total)
        .unwrap_or(0)
}

/// The trial of size `size_index` at `epochs`, `lr` and `seed`, with every other setting from
/// `spec`.
pub fn trial(spec: &SweepSpec, size_index: usize, epochs: f64, lr: f64, seed: u64) -> TrialSpec {
    let size = &spec.sizes[size_index];
    let cost = model_cost(&size.model, &spec.data.input_shape());
    let mut optim = spec.optim.clone();
    optim.lr = lr;
    let config = TrialConfig {
        data: spec.data.clone(),
        model: size.model.clone(),
        optim,
        epochs,
        batch_size: spec.batch_size,
        seed,
        precision: spec.precision,
        eval: spec.eval.clone(),
    };
    trial_spec(&size.name, size_index, &cost, config)
}

/// Whether a stored trial belongs to the sweep's grid: some size, budget, seed and learning
/// rate of `spec` (any lattice point for an adaptive search) reproduce its key.
pub fn is_member(spec: &SweepSpec, config: &TrialConfig) -> bool {
    let lr = config.optim.lr;
    let lr_ok = match &spec.adaptive {
        Some(a) => a.on_lattice(lr),
        None => spec.lrs.contains(&lr),
    };
    if !lr_ok || !spec.epochs.contains(&config.epochs) || !spec.seeds.contains(&config.seed) {
        return false;
    }
    let key = trial_key(config);
    (0..spec.sizes.len())
        .filter(|&i| spec.sizes[i].model == config.model)
        .any(|i| trial(spec, i, config.epochs, lr, config.seed).key == key)
}

/// A trial of `config`, whose model has `cost`.
pub fn trial_spec(
    size: &str,
    size_index: usize,
    cost: &ModelCost,
    config: TrialConfig,
) -> TrialSpec {
    let steps = config.total_steps();
    let examples = config.examples_seen();
    TrialSpec {
        key: trial_key(&config),
        size: size.to_string(),
        size_index,
        family: family(&config.model).to_string(),
        params: cost.params_total,
        params_non_embedding: cost.params_non_embedding,
        tokens_per_example: cost.tokens_per_example,
        epochs: config.epochs,
        steps,
        examples,
        lr: config.optim.lr,
        seed: config.seed,
        flops_per_example: cost.train_flops_per_example,
        flops: cost.train_flops_per_example as f64 * examples as f64,
        priority: 0,
        config,
    }
}

/// Largest total FLOPs first; ties keep grid order.
fn assign_priorities(trials: &mut [TrialSpec]) {
    let mut order: Vec<usize> = (0..trials.len()).collect();
    order.sort_by(|&a, &b| trials[b].flops.total_cmp(&trials[a].flops).then(a.cmp(&b)));
    for (rank, i) in order.into_iter().enumerate() {
        trials[i].priority = rank as i64;
    }
}

/// The stable content key of a trial configuration.
pub fn trial_key(config: &TrialConfig) -> String {
    let mut value = serde_json::to_value(config).expect("trial configs serialise");
    if let Value::Object(map) = &mut value {
        map.remove("eval");
    }
    let mut canonical = String::from(TRAINER_VERSION);
    canonical.push('\n');
    write_canonical(&value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    const SWEEP: &str = "\
name: p
data: {dataset: fashion-mnist, validation: 2000}
model:
  family: mlp
  depth: 2
  sizes: [{name: a, width: 16}, {name: b, width: 64}]
train:
  epochs: [1, 2]
  lr: {values: [0.001, 0.003, 0.01]}
  seeds: [0, 1]
  batch_size: 100
";

    #[test]
    fn expands_the_full_grid_in_order() {
        let plan = expand(&parse(SWEEP, "p.yaml").unwrap());
        assert_eq!(plan.trials.len(), 2 * 2 * 3 * 2);
        let t = &plan.trials[0];
        assert_eq!(
            (t.size.as_str(), t.epochs, t.lr, t.seed),
            ("a", 1.0, 0.001, 0)
        );
        let last = plan.trials.last().unwrap();
        assert_eq!(
            (last.size.as_str(), last.epochs, last.lr, last.seed),
            ("b", 2.0, 0.01, 1)
        );
        // 8000 training examples / 100 per batch = 80 steps an epoch.
        assert_eq!(t.steps, 80);
        assert_eq!(t.examples, 8000);
        assert_eq!(last.steps, 160);
        let keys: std::collections::HashSet<_> = plan.trials.iter().map(|t| &t.key).collect();
        assert_eq!(keys.len(), plan.trials.len());
        assert_eq!(plan.totals.examples, 12 * 8000 + 12 * 16000);
    }

    #[test]
    fn flops_and_priorities() {
        let plan = expand(&parse(SWEEP, "p.yaml").unwrap());
        let t = &plan.trials[0];
        // MLP 784-16-16-10: forward 2·(784·16 + 16·16 + 16·10) per example.
        assert_eq!(t.flops_per_example, 6 * (784 * 16 + 256 + 160));
        assert_eq!(t.flops, t.flops_per_example as f64 * 8000.0);
        // The largest trial (size b, 2 epochs) is claimed first.
        let first = plan.trials.iter().find(|t| t.priority == 0).unwrap();
        assert_eq!((first.size.as_str(), first.epochs), ("b", 2.0));
        let smallest = plan.trials.iter().max_by_key(|t| t.priority).unwrap();
        assert_eq!((smallest.size.as_str(), smallest.epochs), ("a", 1.0));
    }

    #[test]
    fn keys_survive_reordering_and_cadence_but_not_training_changes() {
        let base = expand(&parse(SWEEP, "p.yaml").unwrap());
        let reordered = SWEEP
            .replace("[0.001, 0.003, 0.01]", "[0.01, 0.001, 0.003]")
            .replace("epochs: [1, 2]", "epochs: [2, 1]")
            .replace(
                "  depth: 2\n  sizes: [{name: a, width: 16}, {name: b, width: 64}]",
                "  sizes: [{name: b, width: 64, depth: 2}, {name: a, depth: 2, width: 16}]",
            )
            .replace("name: p\n", "name: p\neval: {points: 3, spacing: linear}\n");
        let other = expand(&parse(&reordered, "p.yaml").unwrap());
        let mut a: Vec<_> = base.trials.iter().map(|t| t.key.clone()).collect();
        let mut b: Vec<_> = other.trials.iter().map(|t| t.key.clone()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        // Renaming a size changes nothing that trains.
        let renamed = expand(&parse(&SWEEP.replace("name: a,", "name: tiny,"), "p.yaml").unwrap());
        assert_eq!(renamed.trials[0].key, base.trials[0].key);
        // Anything that affects training changes every key.
        for change in [
            SWEEP.replace("batch_size: 100", "batch_size: 50"),
            SWEEP.replace("validation: 2000", "validation: 1000"),
            SWEEP.replace("  depth: 2", "  depth: 3"),
            SWEEP.replace("batch_size: 100", "batch_size: 100\n  weight_decay: 0.1"),
        ] {
            let changed = expand(&parse(&change, "p.yaml").unwrap());
            for (x, y) in base.trials.iter().zip(&changed.trials) {
                assert_ne!(x.key, y.key, "{change}");
            }
        }
    }

    #[test]
    fn a_key_is_pinned() {
        // A key must never change by accident: stored results would be run again.
        let plan = expand(&parse(SWEEP, "p.yaml").unwrap());
        assert_eq!(plan.trials[0].key, trial_key(&plan.trials[0].config));
        assert_eq!(plan.trials[0].key, "b3cebbd64fcd31e6");
    }
}
