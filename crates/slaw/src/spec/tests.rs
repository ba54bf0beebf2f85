//! The sweep file's tests: parsing, validation messages with positions, defaults, limits.

use slaw_core::config::{Activation, Optimizer, Schedule};

use super::*;

const GOOD: &str = "\
name: demo
data:
  dataset: fashion-mnist
  validation: 2000
model:
  family: vit
  patch: 7
  depth: 2
  heads: 2
  qk_norm: true
  sizes:
    - {name: s, width: 32}
    - {name: m, width: 64, depth: 3}
train:
  epochs: [2, 0.5]
  lr:
    grid: {centre: 0.001, below: 1, above: 1}
  seeds: [0, 1]
  batch_size: 128
  optimizer: {name: adamw, beta2: 0.95}
  warmup: 0.05
  grad_clip: 1.0
";

fn problems(text: &str) -> Vec<Problem> {
    match parse(text, "x.yaml") {
        Err(SpecError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn a_good_sweep_resolves_every_default() {
    let s = parse(GOOD, "x.yaml").unwrap();
    assert_eq!(s.name, "demo");
    assert_eq!(s.epochs, vec![0.5, 2.0]);
    assert_eq!(s.lrs, vec![0.0005, 0.001, 0.002]);
    assert_eq!(s.seeds, vec![0, 1]);
    let b = s.burn().expect("slaw's trainer");
    assert_eq!(b.sizes.len(), 2);
    let ModelConfig::Vit(m) = &b.sizes[1].model else {
        panic!()
    };
    assert_eq!(
        (m.width, m.depth, m.heads, m.mlp_dim, m.patch),
        (64, 3, 2, 256, 7)
    );
    assert!(m.qk_norm && !m.parallel_block && m.bias);
    assert_eq!(
        b.optim.optimizer,
        Optimizer::AdamW {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8
        }
    );
    assert_eq!(b.optim.schedule, Schedule::Cosine);
    assert_eq!(s.retries, Retries::default());
    assert_eq!(b.eval.points, 8);
}

#[test]
fn burn_sweeps_store_as_before() {
    // Stored sweeps (spec_json) keep the trainer's fields at the top level, as before command
    // trainers existed, and read back.
    let s = parse(GOOD, "x.yaml").unwrap();
    let json = serde_json::to_value(&s).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "adaptive",
            "batch_size",
            "data",
            "data_path",
            "description",
            "epochs",
            "eval",
            "lrs",
            "name",
            "optim",
            "per_device",
            "precision",
            "retries",
            "seeds",
            "sizes",
            "stack"
        ]
    );
    let back: SweepSpec = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, s);
    // A sweep stored before stacks existed reads back with `auto`.
    let mut old = json;
    old.as_object_mut().unwrap().remove("stack");
    let back: SweepSpec = serde_json::from_value(old).unwrap();
    assert_eq!(back.stack, crate::spec::Stack::Auto);
}

#[test]
fn stack_takes_a_count_or_auto() {
    let with = |v: &str| format!("{GOOD}execution: {{stack: {v}}}\n");
    assert_eq!(
        parse(&with("3"), "x.yaml").unwrap().stack,
        crate::spec::Stack::Count(3)
    );
    assert_eq!(
        parse(&with("auto"), "x.yaml").unwrap().stack,
        crate::spec::Stack::Auto
    );
    for bad in ["0", "many", "-2"] {
        let p = problems(&with(bad));
        assert_eq!(p.len(), 1, "{bad}: {p:?}");
        assert_eq!(p[0].path, "execution.stack", "{bad}");
    }
}

#[test]
fn unknown_key_names_path_line_and_column() {
    let text = GOOD.replace("  grad_clip: 1.0", "  grad_clip: 1.0\n  gradclip: 2");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    let msg = p[0].to_string();
    assert!(
        msg.starts_with("x.yaml:23:3: train.gradclip: unknown field `gradclip`"),
        "{msg}"
    );
    assert!(msg.contains("unknown field `gradclip`"), "{msg}");
}

#[test]
fn wrong_type_names_the_path() {
    let text = GOOD.replace("batch_size: 128", "batch_size: many");
    let p = problems(&text);
    assert_eq!(p[0].path, "train.batch_size");
    assert_eq!(p[0].position.line, 19);
    assert!(p[0].message.contains("invalid type"), "{}", p[0].message);
}

#[test]
fn unknown_key_inside_a_grid() {
    let text = GOOD.replace(
        "{centre: 0.001, below: 1, above: 1}",
        "{centre: 0.001, below: 1, abov: 1}",
    );
    let p = problems(&text);
    assert!(p[0].path.starts_with("train.lr.grid"), "{}", p[0]);
    assert_eq!(p[0].position.line, 17);
}

#[test]
fn negative_lr_and_empty_axis_are_located() {
    let text = GOOD.replace(
        "    grid: {centre: 0.001, below: 1, above: 1}",
        "    values:\n      - 0.001\n      - -0.01",
    );
    let text = text.replace("seeds: [0, 1]", "seeds: []");
    let p = problems(&text);
    let lr = p.iter().find(|p| p.path == "train.lr.values[1]").unwrap();
    assert_eq!((lr.position.line, lr.position.column), (19, 9));
    assert!(lr.message.contains("positive"), "{}", lr.message);
    let seeds = p.iter().find(|p| p.path == "train.seeds").unwrap();
    assert!(seeds.message.contains("empty"));
    assert_eq!(seeds.position.line, 20);
}

#[test]
fn impossible_values_are_all_reported() {
    let text = GOOD
        .replace("epochs: [2, 0.5]", "epochs: [2, 0]")
        .replace("batch_size: 128", "batch_size: 9000")
        .replace(
            "{name: m, width: 64, depth: 3}",
            "{name: m, width: 66, depth: 3}",
        )
        .replace("patch: 7", "patch: 5");
    let p = problems(&text);
    let paths: Vec<&str> = p.iter().map(|p| p.path.as_str()).collect();
    assert!(paths.contains(&"train.epochs[1]"), "{paths:?}");
    assert!(paths.contains(&"train.batch_size"), "{paths:?}");
    assert!(paths.contains(&"model.sizes[1].heads") || paths.contains(&"model.sizes[1].patch"));
    let batch = p.iter().find(|p| p.path == "train.batch_size").unwrap();
    assert!(
        batch.message.contains("8000 training examples"),
        "{}",
        batch.message
    );
    assert_eq!(batch.position.line, 19);
}

#[test]
fn fields_of_another_family_are_rejected() {
    let text = GOOD.replace("  qk_norm: true", "  qk_norm: true\n  activation: relu");
    let p = problems(&text);
    assert_eq!(p[0].path, "model.activation");
    assert_eq!(p[0].position.line, 11);
}

#[test]
fn missing_width_is_reported_on_the_size() {
    let text = GOOD.replace("{name: s, width: 32}", "{name: s}");
    let p = problems(&text);
    assert_eq!(p[0].path, "model.sizes[0].width");
    assert_eq!(p[0].position.line, 12);
}

#[test]
fn missing_required_section() {
    let text = GOOD.replace("name: demo\n", "");
    let p = problems(&text);
    assert!(
        p[0].message.contains("missing field `name`"),
        "{}",
        p[0].message
    );
}

#[test]
fn yaml_syntax_errors_have_a_line() {
    let p = problems("name: a\ntrain: [1,\n");
    assert!(p[0].position.line >= 2, "{}", p[0]);
}

#[test]
fn lr_grid_is_geometric() {
    assert_eq!(lr_grid(1.0, 2, 1, 2.0), vec![0.25, 0.5, 1.0, 2.0]);
    let g = lr_grid(0.1, 1, 1, 10.0);
    assert!((g[0] - 0.01).abs() < 1e-15 && (g[2] - 1.0).abs() < 1e-12);
}

/// Every sweep file in `sweeps/` is valid; those on image data sets are checked against
/// generated data sets in the format (and at the path, moved to a temporary folder) they name.
#[test]
fn shipped_sweeps_are_valid() {
    use slaw_data::synth::Planted;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps");
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits {
        data: DataOptions {
            cache: Some(tmp.path().join("cache")),
            progress: None,
        },
        ..Limits::default()
    };
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let mut text = std::fs::read_to_string(&path).unwrap();
        if text.contains("dataset: images") {
            let line = text
                .lines()
                .find(|l| l.trim_start().starts_with("path:"))
                .unwrap();
            let named = line
                .trim_start()
                .trim_start_matches("path:")
                .trim()
                .to_string();
            let data = tmp.path().join(&named);
            let (train, val) = (
                Planted::generate(2000, 32, 1),
                Planted::generate(500, 32, 2),
            );
            if text.contains("format: cifar") {
                train.write_cifar(&data, Some(&val)).unwrap();
            } else if text.contains("format: npy") {
                train.write_npy(&data, "train").unwrap();
            } else {
                train.write_folder(&data, "train", "png").unwrap();
            }
            text = text.replace(line, &format!("  path: {}", data.display()));
        }
        parse_with(&text, &path.display().to_string(), &limits)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn a_slurm_section_resolves_and_is_checked_with_positions() {
    let good = format!(
        "{GOOD}slurm:\n  partition: gpu\n  time: \"2:00:00\"\n  cpus: 8\n  mem: 32G\n  \
         gpus_per_trial: 1\n  max_parallel: 16\n  trials_per_task: 4\n  \
         sbatch_args: [--account=proj, --qos=high]\n  setup: [module load cuda]\n"
    );
    let s = parse(&good, "x.yaml").unwrap();
    let slurm = s.slurm.clone().unwrap();
    assert_eq!(slurm.partition.as_deref(), Some("gpu"));
    assert_eq!(slurm.time.as_deref(), Some("2:00:00"));
    assert_eq!((slurm.cpus, slurm.gpus_per_trial), (8, 1));
    assert_eq!(slurm.mem.as_deref(), Some("32G"));
    assert_eq!(
        (slurm.max_parallel, slurm.trials_per_task, slurm.resubmit),
        (Some(16), 4, 2)
    );
    assert_eq!(slurm.sbatch_args, vec!["--account=proj", "--qos=high"]);
    assert_eq!(slurm.setup, vec!["module load cuda"]);
    // The section does not change the trials.
    assert_eq!(
        crate::plan::expand(&s).trials[0].key,
        crate::plan::expand(&parse(GOOD, "x.yaml").unwrap()).trials[0].key
    );
    // Stored specs without the section still read.
    let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
    json.as_object_mut().unwrap().remove("slurm");
    let back: SweepSpec = serde_json::from_value(json).unwrap();
    assert_eq!(back.slurm, None);
    assert_eq!(parse(GOOD, "x.yaml").unwrap().slurm, None);

    let lines = GOOD.lines().count();
    let bad = format!(
        "{GOOD}slurm:\n  time: 2h\n  mem: lots\n  cpus: 0\n  gpus_per_trial: 2\n  \
         sbatch_args: [--qos=high, --array=0-3, account]\n"
    );
    let p = problems(&bad);
    let text: Vec<String> = p.iter().map(ToString::to_string).collect();
    let expect = [
        format!(
            "x.yaml:{}:9: slurm.time: \"2h\" is not a Slurm time limit",
            lines + 2
        ),
        format!(
            "x.yaml:{}:8: slurm.mem: \"lots\" is not a Slurm memory size",
            lines + 3
        ),
        format!("x.yaml:{}:9: slurm.cpus: must be at least 1", lines + 4),
        format!(
            "x.yaml:{}:19: slurm.gpus_per_trial: slaw trains a trial on one device",
            lines + 5
        ),
        format!(
            "x.yaml:{}:29: slurm.sbatch_args[1]: --array is set by slaw",
            lines + 6
        ),
        format!(
            "x.yaml:{}:42: slurm.sbatch_args[2]: \"account\" is not an option",
            lines + 6
        ),
    ];
    for e in &expect {
        assert!(
            text.iter().any(|t| t.starts_with(e.as_str())),
            "{e}\nnot in {text:#?}"
        );
    }
    assert_eq!(p.len(), expect.len(), "{text:#?}");
    // Unknown keys are rejected with their position.
    let p = problems(&format!("{GOOD}slurm:\n  partiton: gpu\n"));
    assert!(
        p[0].to_string().starts_with(&format!(
            "x.yaml:{}:3: slurm.partiton: unknown field `partiton`",
            lines + 2
        )),
        "{}",
        p[0]
    );
}

const CONVNET: &str = "\
name: nf
data:
  dataset: fashion-mnist
  validation: 2000
model:
  family: convnet
  sizes:
    - {name: f0, width: 8, depths: [1, 2]}
    - {name: f1, width: 8, depths: [2, 4], alpha: 0.1, activation: gelu}
train:
  epochs: [1]
  lr: {values: [0.4]}
  batch_size: 64
  optimizer: {name: sgd, momentum: 0.9, nesterov: true}
  agc: 0.16
";

#[test]
fn convnet_sizes_and_agc_resolve() {
    let s = parse(CONVNET, "x.yaml").unwrap();
    let ModelConfig::Convnet(f0) = &s.burn().unwrap().sizes[0].model else {
        panic!()
    };
    assert_eq!(f0.depths, vec![1, 2]);
    assert_eq!((f0.alpha, f0.activation), (0.2, Activation::Relu));
    let ModelConfig::Convnet(f1) = &s.burn().unwrap().sizes[1].model else {
        panic!()
    };
    assert_eq!((f1.alpha, f1.activation), (0.1, Activation::Gelu));
    assert_eq!(s.burn().unwrap().optim.agc, Some(0.16));
}

#[test]
fn convnet_settings_of_other_families_are_errors_with_lines() {
    let text = CONVNET.replace(
        "{name: f0, width: 8, depths: [1, 2]}",
        "{name: f0, width: 8, heads: 2}",
    );
    let msgs: Vec<String> = problems(&text).iter().map(|p| p.to_string()).collect();
    assert!(
        msgs.iter().any(|m| m.starts_with("x.yaml:8:")
            && m.contains("model.sizes[0].heads: not a setting of the convnet family")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("model.sizes[0].depths: missing")),
        "{msgs:?}"
    );
    let text = CONVNET.replace("depths: [1, 2]}", "depths: [1, 0]}");
    let msgs: Vec<String> = problems(&text).iter().map(|p| p.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("model.sizes[0].depths[1]: every stage needs at least one block")),
        "{msgs:?}"
    );
    let text = CONVNET.replace("agc: 0.16", "agc: -1");
    let msgs: Vec<String> = problems(&text).iter().map(|p| p.to_string()).collect();
    assert!(msgs.iter().any(|m| m.contains("train.agc")), "{msgs:?}");
}

#[test]
fn aim_sizes_resolve_and_need_two_patches() {
    let text = GOOD
        .replace("family: vit", "family: aim\n  head_depth: 3")
        .replace("  qk_norm: true\n", "");
    let s = parse(&text, "x.yaml").unwrap();
    // Figures label AIM's loss as what it is; classifiers' as cross-entropy.
    assert_eq!(s.loss_name(), Some("next-patch MSE, normalised pixels"));
    assert_eq!(
        parse(GOOD, "x.yaml").unwrap().loss_name(),
        Some("cross-entropy, nats")
    );
    let ModelConfig::Aim(a) = &s.burn().unwrap().sizes[1].model else {
        panic!()
    };
    assert_eq!(
        (a.width, a.depth, a.heads, a.head_depth, a.patch),
        (64, 3, 2, 3, 7)
    );
    let msgs: Vec<String> = problems(&text.replace("patch: 7", "patch: 28"))
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("at least two patches")),
        "{msgs:?}"
    );
    // Pooling is a classifier's setting.
    let msgs: Vec<String> = problems(&text.replace("head_depth: 3", "head_depth: 3\n  pool: mean"))
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("model.pool: not a setting of the aim family")),
        "{msgs:?}"
    );
}

#[test]
fn mixed_precision_parses_and_the_cpu_refuses_it() {
    let text = GOOD.replace(
        "  grad_clip: 1.0\n",
        "  grad_clip: 1.0\n  precision: bf16-mixed\n",
    );
    let s = parse(&text, "x.yaml").unwrap();
    assert_eq!(s.burn().unwrap().precision, Precision::Bf16Mixed);
    let err = crate::sweep::preflight(&s, &[slaw_core::ComputeDevice::Cpu], false).unwrap_err();
    assert!(
        err.to_string().contains("bf16-mixed needs --device cuda"),
        "{err}"
    );
    let f32 = parse(GOOD, "x.yaml").unwrap();
    assert!(crate::sweep::preflight(&f32, &[slaw_core::ComputeDevice::Cpu], false).is_ok());
}
