//! Grid expansion: a [`SweepSpec`] becomes an ordered list of [`TrialSpec`]s, each with a
//! stable content key, its parameter counts and its training FLOPs. Pure: no I/O.
//!
//! The key is the first 16 hex digits of SHA-256 over the canonical JSON (keys sorted) of the
//! trial's resolved configuration without its evaluation cadence, prefixed by the trainer's
//! version. It survives reordering of the YAML and changes with anything that changes training.
//! For a command trainer the configuration is what the program receives (its arguments,
//! environment and working directory) with the trial's budget, learning rate and seed.

use std::collections::BTreeMap;

use crate::spec::template::render_checked;
use crate::spec::{SweepSpec, Trainer};
use serde::Serialize;
use slaw_core::config::{ModelConfig, TrialConfig};
use slaw_core::cost::{model_cost, ModelCost};
use slaw_core::job::{CommandJob, Job};
pub use slaw_core::trial::{
    command_key, job_key, trial_key, TrialKey, TrialSpec, COMMAND_VERSION, TRAINER_VERSION,
};

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
    for size_index in 0..spec.size_count() {
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

/// Index of the size with the fewest parameters (the first of equals; sizes whose count is
/// not known before training come last).
pub fn smallest_size(spec: &SweepSpec) -> usize {
    (0..spec.size_count())
        .min_by_key(|&i| spec.size_params(i).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The trial of size `size_index` at `epochs`, `lr` and `seed`, with every other setting from
/// `spec`.
pub fn trial(spec: &SweepSpec, size_index: usize, epochs: f64, lr: f64, seed: u64) -> TrialSpec {
    match &spec.trainer {
        Trainer::Burn(b) => {
            let size = &b.sizes[size_index];
            let cost = model_cost(&size.model, &b.data.input_shape());
            let mut optim = b.optim.clone();
            optim.lr = lr;
            let config = TrialConfig {
                data: b.data.clone(),
                model: size.model.clone(),
                optim,
                epochs,
                batch_size: b.batch_size,
                seed,
                precision: b.precision,
                eval: b.eval.clone(),
            };
            trial_spec(&size.name, size_index, &cost, config)
        }
        Trainer::Command(c) => {
            let size = &c.sizes[size_index];
            let vars = c.vars(&spec.name, size_index, epochs, lr, seed);
            let job = CommandJob {
                command: c.command.iter().map(|t| render_checked(t, &vars)).collect(),
                env: c
                    .env
                    .iter()
                    .map(|(k, t)| (k.clone(), render_checked(t, &vars)))
                    .collect::<BTreeMap<_, _>>(),
                workdir: c.workdir.clone(),
                size: size.fields.clone(),
                epochs,
                lr,
                seed,
                batch_size: c.batch_size,
                params: size.params,
                params_non_embedding: size.params_non_embedding,
                flops_per_example: size.flops_per_example,
            };
            let params = size.params.unwrap_or(0);
            let flops_per_example = size
                .flops_per_example
                .unwrap_or(6.0 * params as f64)
                .round() as u64;
            let examples = c.planned_examples(epochs).unwrap_or(0);
            TrialSpec {
                key: command_key(&job),
                size: size.name.clone(),
                size_index,
                family: "command".to_string(),
                params,
                params_non_embedding: size.params_non_embedding.unwrap_or(params),
                tokens_per_example: 1,
                epochs,
                steps: c.planned_steps(epochs).unwrap_or(0),
                examples,
                lr,
                seed,
                flops_per_example,
                flops: flops_per_example as f64 * examples as f64,
                priority: 0,
                config: Job::Command(job),
            }
        }
    }
}

/// Whether a stored trial belongs to the sweep's grid: some size, budget, seed and learning
/// rate of `spec` (any lattice point for an adaptive search) reproduce its key.
pub fn is_member(spec: &SweepSpec, job: &Job) -> bool {
    let (epochs, lr, seed) = (job.epochs(), job.lr(), job.seed());
    let lr_ok = match &spec.adaptive {
        Some(a) => a.on_lattice(lr),
        None => spec.lrs.contains(&lr),
    };
    if !lr_ok || !spec.epochs.contains(&epochs) || !spec.seeds.contains(&seed) {
        return false;
    }
    let key = job_key(job);
    match (&spec.trainer, job) {
        (Trainer::Burn(b), Job::Burn(config)) => (0..b.sizes.len())
            .filter(|&i| b.sizes[i].model == config.model)
            .any(|i| trial(spec, i, epochs, lr, seed).key == key),
        (Trainer::Command(c), Job::Command(_)) => {
            (0..c.sizes.len()).any(|i| trial(spec, i, epochs, lr, seed).key == key)
        }
        _ => false,
    }
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
        config: Job::Burn(config),
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
        // A key must never change by accident: stored results would be run again. (It changes
        // on purpose with TRAINER_VERSION: b3cebbd64fcd31e6 under slaw-train/1.)
        let plan = expand(&parse(SWEEP, "p.yaml").unwrap());
        assert_eq!(plan.trials[0].key, job_key(&plan.trials[0].config));
        assert_eq!(plan.trials[0].key, "6d08c963d9f2ad06");
    }

    const COMMAND: &str = "\
name: c
trainer: command
command: [python3, t.py, '--width={model.width}', '{model.note}', --lr, '{lr}', '{epochs}']
env: {RUN: '{model.name}'}
model:
  note: 'a b; $(rm -rf ~) \"q\" | *'
  sizes: [{name: s, width: 8, params: 100}, {name: m, width: 32}]
train:
  epochs: [1, 2]
  lr: {values: [0.01, 0.1]}
  batch_size: 10
  examples_per_epoch: 95
";

    #[test]
    fn command_trials_fill_their_templates_verbatim() {
        let spec = parse(COMMAND, "c.yaml").unwrap();
        let plan = expand(&spec);
        assert_eq!(plan.trials.len(), 8);
        let t = &plan.trials[0];
        let job = t.config.command().unwrap();
        assert_eq!(
            job.command,
            vec![
                "python3",
                "t.py",
                "--width=8",
                r#"a b; $(rm -rf ~) "q" | *"#,
                "--lr",
                "0.01",
                "1"
            ]
        );
        assert_eq!(job.env["RUN"], "s");
        assert_eq!(
            (t.family.as_str(), t.params, t.steps, t.examples),
            ("command", 100, 10, 100)
        );
        assert_eq!(t.flops_per_example, 600);
        assert_eq!(t.flops, 600.0 * 100.0);
        // Size m declares nothing: its costs come from the script.
        let m = plan.trials.iter().find(|t| t.size == "m").unwrap();
        assert_eq!((m.params, m.flops), (0, 0.0));
        let keys: std::collections::HashSet<_> = plan.trials.iter().map(|t| &t.key).collect();
        assert_eq!(keys.len(), 8);
        assert!(plan.trials.iter().all(|t| is_member(&spec, &t.config)));
        // Stored and read back, a command trial keeps its key.
        let json = serde_json::to_string(&t.config).unwrap();
        let back: Job = serde_json::from_str(&json).unwrap();
        assert_eq!(job_key(&back), t.key);
        assert_eq!(
            t.key, "46ca5a9d6f8f4b19",
            "pinned: stored command trials keep their keys"
        );
        // A declared cost or an unused field changes no key; the command does.
        let same = expand(
            &parse(
                &COMMAND.replace("params: 100", "params: 200, extra: 1"),
                "c",
            )
            .unwrap(),
        );
        assert_eq!(same.trials[0].key, t.key);
        let other = expand(&parse(&COMMAND.replace("t.py", "u.py"), "c").unwrap());
        assert_ne!(other.trials[0].key, t.key);
    }
}
