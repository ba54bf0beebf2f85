//! From the file as written to the resolved sweep: every axis and section checked and
//! resolved, defaults filled in, each problem recorded with its YAML path ([`Findings`]).

use std::collections::HashSet;
use std::path::PathBuf;

use slaw_core::config::{
    Activation, AimConfig, ConvNetConfig, DataConfig, EvalConfig, FashionSource, MlpConfig,
    ModelConfig, OptimConfig, Optimizer, Pool, Precision, Schedule, Spacing, VitConfig,
};

use super::file::{
    foreign_fields, DataSection, DatasetName, ExecutionSection, Family, LrSection, ModelSection,
    OptimizerName, OptimizerSection, SweepFile,
};
use super::images::{resolve_images, DataIdentity, DataOptions};
use super::slurm;
use super::{AdaptiveLr, BurnSpec, ModelSize, PerDevice, Stack, SweepSpec, Trainer};

/// Problems found during validation, before positions are attached.
#[derive(Default)]
pub(super) struct Findings(pub(super) Vec<(String, String)>);

impl Findings {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    pub(super) fn unit(&mut self, path: &str, value: f64) {
        if !(0.0..1.0).contains(&value) {
            self.add(path, format!("must be in [0, 1), got {value}"));
        }
    }

    pub(super) fn positive(&mut self, path: &str, value: f64, what: &str) {
        if !(value.is_finite() && value > 0.0) {
            self.add(
                path,
                format!("{what} must be a positive number, got {value}"),
            );
        }
    }
}

/// The longest sweep name (it names a directory of results).
pub(super) const MAX_NAME_CHARS: usize = 100;

/// The sweep name is used in paths and SQL filters: a restricted alphabet and length.
pub(super) fn check_name(name: &str, f: &mut Findings) {
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
pub(super) struct Axes {
    pub(super) epochs: Vec<f64>,
    pub(super) lrs: Option<Vec<f64>>,
    pub(super) adaptive: Option<AdaptiveLr>,
    pub(super) seeds: Vec<u64>,
}

pub(super) fn resolve_axes(
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

pub(super) fn resolve(
    raw: SweepFile,
    options: &DataOptions,
    f: &mut Findings,
) -> Option<SweepSpec> {
    check_name(&raw.name, f);
    let (data, data_path, data_identity) = resolve_data(&raw.data, options, f)?;
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
            data_identity,
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

pub(super) fn resolve_per_device(e: Option<&ExecutionSection>, f: &mut Findings) -> PerDevice {
    count_or_auto(
        e.and_then(|e| e.per_device.as_ref()),
        "execution.per_device",
        f,
    )
}

pub(super) fn resolve_stack(e: Option<&ExecutionSection>, f: &mut Findings) -> Stack {
    count_or_auto(e.and_then(|e| e.stack.as_ref()), "execution.stack", f)
}

/// A setting written as a count or `auto` (parsed by `T`'s `FromStr`); absent: the default, an
/// unreadable value: a problem at `path` and the default.
pub(super) fn count_or_auto<T: Default + std::str::FromStr<Err = String>>(
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
pub(super) fn dedup_sorted(values: &[f64], path: &str, f: &mut Findings) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.windows(2).any(|w| w[0] == w[1]) {
        f.add(path, "a value appears twice");
    }
    v.dedup();
    v
}

/// The data set's configuration, the path it is read from and (for images) its identity;
/// `None` when an image data set cannot be read (the findings say why).
pub(super) fn resolve_data(
    d: &DataSection,
    options: &DataOptions,
    f: &mut Findings,
) -> Option<(DataConfig, Option<PathBuf>, Option<Box<DataIdentity>>)> {
    if !matches!(d.dataset, DatasetName::Images) {
        for (field, present) in [
            ("format", d.format.is_some()),
            ("image_size", d.image_size.is_some()),
            ("channels", d.channels.is_some()),
            ("augment", d.augment.is_some()),
            ("skip_bad", d.skip_bad.is_some()),
        ] {
            if present {
                f.add(
                    format!("data.{field}"),
                    "a setting of the images data set (dataset: images)",
                );
            }
        }
    }
    let mut not_for = |field: &str, present: bool, dataset: &str| {
        if present {
            f.add(
                format!("data.{field}"),
                format!("not a setting of the {dataset} data set"),
            );
        }
    };
    match d.dataset {
        DatasetName::Images => {
            let (config, path, identity) = resolve_images(d, options, f)?;
            Some((config, Some(path), Some(Box::new(identity))))
        }
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
            Some((
                DataConfig::FashionMnist {
                    source,
                    validation,
                    train_limit: d.train_limit,
                    split_seed: d.split_seed.unwrap_or(0),
                },
                d.path.clone(),
                None,
            ))
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
            Some((cfg, None, None))
        }
    }
}

pub(super) fn resolve_model(
    m: &ModelSection,
    data: &DataConfig,
    f: &mut Findings,
) -> Option<Vec<ModelSize>> {
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

pub(super) fn resolve_lr(
    lr: &LrSection,
    f: &mut Findings,
) -> Option<(Vec<f64>, Option<AdaptiveLr>)> {
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
pub(super) const MAX_GRID_RATES: u64 = 1_000;

/// `centre · factor^k` for k in −below..=above, ascending.
pub fn lr_grid(centre: f64, below: u32, above: u32, factor: f64) -> Vec<f64> {
    (-(below as i32)..=above as i32)
        .map(|k| centre * factor.powi(k))
        .collect()
}

pub(super) fn resolve_optimizer(
    o: Option<&OptimizerSection>,
    f: &mut Findings,
) -> Option<Optimizer> {
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
