//! The sweep file as written: every section and field as serde reads it (every field optional
//! where a default exists, unknown keys rejected). [`super::resolve`] turns it into a
//! [`super::SweepSpec`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use slaw_core::config::{
    Activation, Augment, FashionSource, ImageFormat, Pool, Precision, Schedule, Spacing,
};

use super::slurm;
use super::Retries;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SweepFile {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    /// `burn` (the default); `command` files are read by [`command::CommandSweepFile`].
    #[serde(default)]
    #[allow(dead_code)]
    pub(super) trainer: Option<TrainerName>,
    pub(super) data: DataSection,
    pub(super) model: ModelSection,
    pub(super) train: TrainSection,
    #[serde(default)]
    pub(super) eval: Option<EvalSection>,
    #[serde(default)]
    pub(super) retries: Option<Retries>,
    #[serde(default)]
    pub(super) execution: Option<ExecutionSection>,
    #[serde(default)]
    pub(super) slurm: Option<slurm::SlurmSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExecutionSection {
    /// A count, or `auto`.
    pub(super) per_device: Option<serde_yaml::Value>,
    /// Trials trained as one stack: a count, or `auto`.
    pub(super) stack: Option<serde_yaml::Value>,
    /// Seconds (or `90s`, `15m`, `2h`) a command trial may run.
    pub(super) timeout: Option<serde_yaml::Value>,
    /// Seconds (or `90s`, `15m`, `2h`) a command trial may stay silent.
    pub(super) heartbeat_timeout: Option<serde_yaml::Value>,
}

/// Which program trains the trials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TrainerName {
    /// slaw's own Burn trainer.
    Burn,
    /// Any program, started once per trial (`command:`).
    Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum DatasetName {
    FashionMnist,
    Synthetic,
    Images,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DataSection {
    pub(super) dataset: DatasetName,
    // fashion-mnist
    pub(super) source: Option<FashionSource>,
    pub(super) path: Option<PathBuf>,
    pub(super) train_limit: Option<usize>,
    pub(super) split_seed: Option<u64>,
    // both
    pub(super) validation: Option<usize>,
    // synthetic
    pub(super) side: Option<usize>,
    pub(super) classes: Option<usize>,
    pub(super) train: Option<usize>,
    pub(super) teacher_width: Option<usize>,
    pub(super) seed: Option<u64>,
    // images (and path, validation, split_seed)
    pub(super) format: Option<ImageFormat>,
    pub(super) image_size: Option<usize>,
    pub(super) channels: Option<usize>,
    pub(super) augment: Option<Augment>,
    pub(super) skip_bad: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Family {
    #[default]
    Mlp,
    Vit,
    Convnet,
    Aim,
}

impl Family {
    pub(super) fn name(self) -> &'static str {
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
        pub(super) struct $name {
            $(pub(super) $extra: $ety,)*
            pub(super) width: Option<usize>,
            pub(super) depth: Option<usize>,
            pub(super) heads: Option<usize>,
            pub(super) mlp_dim: Option<usize>,
            pub(super) mlp_ratio: Option<f64>,
            pub(super) patch: Option<usize>,
            pub(super) pool: Option<Pool>,
            pub(super) qk_norm: Option<bool>,
            pub(super) parallel_block: Option<bool>,
            pub(super) bias: Option<bool>,
            pub(super) activation: Option<Activation>,
            pub(super) depths: Option<Vec<usize>>,
            pub(super) alpha: Option<f64>,
            pub(super) head_depth: Option<usize>,
        }

        impl $name {
            /// Names of the architecture fields written in the file.
            pub(super) fn written(&self) -> Vec<&'static str> {
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
pub(super) fn foreign_fields(family: Family) -> &'static [&'static str] {
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
pub(super) struct TrainSection {
    pub(super) epochs: Vec<f64>,
    pub(super) lr: LrSection,
    #[serde(default)]
    pub(super) seeds: Option<Vec<u64>>,
    pub(super) batch_size: usize,
    #[serde(default)]
    pub(super) optimizer: Option<OptimizerSection>,
    #[serde(default)]
    pub(super) weight_decay: Option<f64>,
    #[serde(default)]
    pub(super) warmup: Option<f64>,
    #[serde(default)]
    pub(super) schedule: Option<Schedule>,
    #[serde(default)]
    pub(super) grad_clip: Option<f64>,
    #[serde(default)]
    pub(super) agc: Option<f64>,
    #[serde(default)]
    pub(super) precision: Option<Precision>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LrSection {
    pub(super) values: Option<Vec<f64>>,
    pub(super) grid: Option<GridSection>,
    pub(super) adaptive: Option<AdaptiveSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdaptiveSection {
    pub(super) centre: f64,
    #[serde(default)]
    pub(super) below: Option<u32>,
    #[serde(default)]
    pub(super) above: Option<u32>,
    #[serde(default)]
    pub(super) factor: Option<f64>,
    #[serde(default)]
    pub(super) max_per_cell: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GridSection {
    pub(super) centre: f64,
    #[serde(default)]
    pub(super) below: u32,
    #[serde(default)]
    pub(super) above: u32,
    #[serde(default)]
    pub(super) factor: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum OptimizerName {
    AdamW,
    Sgd,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OptimizerSection {
    pub(super) name: OptimizerName,
    pub(super) beta1: Option<f64>,
    pub(super) beta2: Option<f64>,
    pub(super) eps: Option<f64>,
    pub(super) momentum: Option<f64>,
    pub(super) nesterov: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EvalSection {
    pub(super) points: Option<usize>,
    pub(super) spacing: Option<Spacing>,
    pub(super) max_examples: Option<usize>,
}
