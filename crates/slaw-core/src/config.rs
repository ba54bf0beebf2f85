//! The fully resolved configuration of one training trial.
//!
//! These types are what the trainer consumes and what `slaw`'s planner produces from a sweep
//! file. They hold values only (no defaults are filled in here), serialise to JSON for the
//! store, and everything in them except [`EvalConfig`] affects the trained weights: the trial
//! key is a hash of this struct without its `eval` part.

use serde::{Deserialize, Serialize};

/// Everything the trainer needs to run one trial, apart from where the data files live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrialConfig {
    /// The data set and its train/validation split.
    pub data: DataConfig,
    /// The model architecture at this trial's size.
    pub model: ModelConfig,
    /// Optimiser, learning rate, schedule and budget.
    pub optim: OptimConfig,
    /// Training budget in epochs of the training split (fractions allowed).
    pub epochs: f64,
    /// Examples per optimiser step.
    pub batch_size: usize,
    /// Seed for initialisation and data order.
    pub seed: u64,
    /// Numeric precision of parameters and activations.
    pub precision: Precision,
    /// When to evaluate on the validation split (does not change training).
    pub eval: EvalConfig,
}

/// A data set and the fixed, seeded split of it into training and validation examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataConfig {
    /// Fashion-MNIST (Xiao et al. 2017): 28×28 grey images of 10 clothing classes.
    FashionMnist {
        /// Which published split the examples come from.
        source: FashionSource,
        /// Examples held out for validation (taken from `source`).
        validation: usize,
        /// At most this many training examples (after the validation split); all if absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        train_limit: Option<usize>,
        /// Seed of the train/validation split (shared by all trials of a sweep).
        split_seed: u64,
    },
    /// A seeded teacher network labelling Gaussian "images": fast, learnable, for tests.
    Synthetic {
        /// Images are `side × side`, one channel.
        side: usize,
        /// Number of classes.
        classes: usize,
        /// Training examples.
        train: usize,
        /// Validation examples.
        validation: usize,
        /// Hidden width of the teacher.
        teacher_width: usize,
        /// Seed of the teacher and of the inputs.
        seed: u64,
    },
    /// The researcher's images (folder, CIFAR or NumPy), decoded into slaw's uint8 cache.
    Images {
        /// How they are stored.
        format: ImageFormat,
        /// SHA-256 of the decoded images and labels: a changed data set is a new trial.
        content_hash: String,
        /// Channels after conversion.
        channels: usize,
        /// Image rows after resizing.
        height: usize,
        /// Image columns after resizing.
        width: usize,
        /// Number of classes.
        classes: usize,
        /// Whether the sweep resizes (`image_size`) rather than keeping the stored size.
        resized: bool,
        /// Whether the sweep converts the channel count (`channels`) rather than keeping it.
        converted: bool,
        /// Whether undecodable images are left out (`skip_bad`).
        skip_bad: bool,
        /// Whether the validation examples are held out of the training files (the data set
        /// has no validation split of its own).
        held_out: bool,
        /// Training examples.
        train: usize,
        /// Validation examples (held out, or a seeded subset of the data set's own split).
        validation: usize,
        /// Seed of the split.
        split_seed: u64,
        /// Augmentation of training images.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        augment: Option<Augment>,
    },
}

/// How an image data set is stored on disk (`data.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// `train/<class>/*.{png,jpg,jpeg,webp}`, optionally `val/<class>/…`.
    Folder,
    /// CIFAR-10's or CIFAR-100's binary batches.
    Cifar,
    /// `x_train.npy`, `y_train.npy` (optionally `x_val.npy`, `y_val.npy`).
    Npy,
}

/// Random augmentation of training images, drawn per example and step on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Random crop after zero-padding every side by this many pixels (0: none).
    #[serde(default)]
    pub crop: usize,
    /// Random horizontal flip.
    #[serde(default)]
    pub flip: bool,
}

impl Augment {
    /// True when the augmentation changes anything.
    pub fn is_active(&self) -> bool {
        self.crop > 0 || self.flip
    }
}

/// The two published Fashion-MNIST splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FashionSource {
    /// The 10 000-image `t10k` split, vendored into slaw so that it runs anywhere.
    T10k,
    /// The 60 000-image `train` split, read from disk.
    Train,
}

/// Shape of the examples a data set yields: images and classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputShape {
    /// Colour channels.
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
    /// Number of target classes.
    pub classes: usize,
}

impl InputShape {
    /// Pixels per example (channels × height × width).
    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }
}

impl DataConfig {
    /// The example shape, known without reading any data.
    pub fn input_shape(&self) -> InputShape {
        match self {
            DataConfig::FashionMnist { .. } => InputShape {
                channels: 1,
                height: 28,
                width: 28,
                classes: 10,
            },
            DataConfig::Synthetic { side, classes, .. } => InputShape {
                channels: 1,
                height: *side,
                width: *side,
                classes: *classes,
            },
            DataConfig::Images {
                channels,
                height,
                width,
                classes,
                ..
            } => InputShape {
                channels: *channels,
                height: *height,
                width: *width,
                classes: *classes,
            },
        }
    }

    /// Number of training examples after the split, known without reading any data.
    pub fn train_examples(&self) -> usize {
        match self {
            DataConfig::FashionMnist {
                source,
                validation,
                train_limit,
                ..
            } => {
                let total: usize = match source {
                    FashionSource::T10k => 10_000,
                    FashionSource::Train => 60_000,
                };
                let n = total.saturating_sub(*validation);
                train_limit.map_or(n, |l| l.min(n))
            }
            DataConfig::Synthetic { train, .. } | DataConfig::Images { train, .. } => *train,
        }
    }

    /// Number of validation examples.
    pub fn validation_examples(&self) -> usize {
        match self {
            DataConfig::FashionMnist { validation, .. } => *validation,
            DataConfig::Synthetic { validation, .. } | DataConfig::Images { validation, .. } => {
                *validation
            }
        }
    }
}

/// A model architecture at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelConfig {
    /// A multi-layer perceptron on flattened pixels.
    Mlp(MlpConfig),
    /// A Vision Transformer on non-overlapping patches.
    Vit(VitConfig),
    /// A normaliser-free residual ConvNet (NF-ResNet / NFNet).
    Convnet(ConvNetConfig),
    /// An autoregressive image model (AIM): a ViT trunk predicting the next patch.
    Aim(AimConfig),
}

impl ModelConfig {
    /// Whether the model is trained to classify (MLP, ViT, ConvNet) rather than to predict
    /// pixels (AIM, whose reported accuracy is a linear probe's).
    pub fn is_classifier(&self) -> bool {
        !matches!(self, ModelConfig::Aim(_))
    }
}

/// A normaliser-free ResNet (Brock et al. 2021): pre-activation basic blocks of two 3×3
/// weight-standardised convolutions, residual branches scaled by `alpha` and their inputs by
/// 1/β (the expected standard deviation of the signal), no normalisation layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvNetConfig {
    /// Channels of the stem and the first stage; every later stage doubles them.
    pub width: usize,
    /// Residual blocks per stage; the first stage keeps the resolution, each later one halves
    /// it (NFNet's F0 → F1 → F3 → F7 grow these counts).
    pub depths: Vec<usize>,
    /// Residual branch scale α (NFNet: 0.2).
    pub alpha: f64,
    /// The non-linearity (scaled by its variance-preserving gain γ).
    pub activation: Activation,
}

impl ConvNetConfig {
    /// Output channels of stage `i`.
    pub fn stage_width(&self, i: usize) -> usize {
        self.width << i
    }
}

/// An autoregressive image model (El-Nouby et al. 2024): patches in raster order, a ViT trunk
/// with prefix-causal attention, and an MLP head of `head_depth` residual blocks that predicts
/// each next patch's normalised pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AimConfig {
    /// Side of the square patches.
    pub patch: usize,
    /// Trunk width d.
    pub width: usize,
    /// Trunk blocks.
    pub depth: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden width of the MLPs (trunk and head).
    pub mlp_dim: usize,
    /// Residual MLP blocks of the prediction head.
    pub head_depth: usize,
    /// LayerNorm on queries and keys.
    pub qk_norm: bool,
    /// Biases in linear layers and LayerNorms.
    pub bias: bool,
}

impl AimConfig {
    /// Patches per image (the sequence length).
    pub fn patches(&self, shape: &InputShape) -> usize {
        (shape.height / self.patch) * (shape.width / self.patch)
    }

    /// The trunk as a ViT configuration (mean pooling, sequential blocks, no class token).
    pub fn trunk(&self) -> VitConfig {
        VitConfig {
            patch: self.patch,
            width: self.width,
            depth: self.depth,
            heads: self.heads,
            mlp_dim: self.mlp_dim,
            pool: Pool::Mean,
            qk_norm: self.qk_norm,
            parallel_block: false,
            bias: self.bias,
        }
    }
}

/// Multi-layer perceptron: `depth` hidden layers of `width` units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Units per hidden layer.
    pub width: usize,
    /// Number of hidden layers (≥ 1).
    pub depth: usize,
    /// Non-linearity between layers.
    pub activation: Activation,
    /// Whether linear layers have biases.
    pub bias: bool,
}

/// Vision Transformer with the ViT-22B switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitConfig {
    /// Side of the square, non-overlapping patches (must divide the image side).
    pub patch: usize,
    /// Embedding width d.
    pub width: usize,
    /// Number of transformer blocks.
    pub depth: usize,
    /// Attention heads (must divide `width`).
    pub heads: usize,
    /// Hidden width of the MLP sub-block.
    pub mlp_dim: usize,
    /// How the sequence is reduced to one vector for the classifier.
    pub pool: Pool,
    /// LayerNorm on queries and keys (ViT-22B).
    pub qk_norm: bool,
    /// Attention and MLP in parallel from one LayerNorm (ViT-22B).
    pub parallel_block: bool,
    /// Biases in linear layers and LayerNorms (ViT-22B drops them).
    pub bias: bool,
}

impl VitConfig {
    /// Number of patches an image of `shape` is cut into.
    pub fn patches(&self, shape: &InputShape) -> usize {
        (shape.height / self.patch) * (shape.width / self.patch)
    }

    /// Sequence length: patches plus the class token when pooling with it.
    pub fn tokens(&self, shape: &InputShape) -> usize {
        self.patches(shape) + usize::from(self.pool == Pool::Cls)
    }
}

/// Reduction of a token sequence to one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// A learned class token prepended to the sequence.
    Cls,
    /// Mean over all tokens.
    Mean,
}

/// Element-wise non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Gaussian error linear unit.
    Gelu,
    /// Rectified linear unit.
    Relu,
}

/// Optimiser and learning-rate schedule of one trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimConfig {
    /// The optimiser.
    pub optimizer: Optimizer,
    /// Peak learning rate (reached after warm-up).
    pub lr: f64,
    /// Weight decay (decoupled for AdamW, an L2 penalty for SGD).
    pub weight_decay: f64,
    /// Fraction of the trial's steps spent in linear warm-up from 0.
    pub warmup: f64,
    /// Decay after warm-up.
    pub schedule: Schedule,
    /// Clip the global gradient norm to this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clip: Option<f64>,
    /// Adaptive gradient clipping (NFNet): clip each unit's gradient to this fraction of its
    /// weight norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agc: Option<f64>,
}

/// The optimisers slaw's trainer supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum Optimizer {
    /// Adam with decoupled weight decay.
    AdamW {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator epsilon.
        eps: f64,
    },
    /// Stochastic gradient descent with (Nesterov) momentum.
    Sgd {
        /// Momentum coefficient.
        momentum: f64,
        /// Nesterov's variant.
        nesterov: bool,
    },
}

/// Learning-rate decay after warm-up; the schedule's length is the trial's own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine decay to zero at the last step.
    Cosine,
    /// Linear decay to zero at the last step.
    Linear,
    /// Constant after warm-up.
    Constant,
}

/// Numeric precision of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere.
    F32,
    /// bfloat16 parameters and activations (CUDA only).
    Bf16,
    /// Mixed precision, as PyTorch's bf16 autocast: f32 parameters, gradients, optimiser
    /// state and activations, with each Linear layer's, attention's and convolution's product
    /// computed in bfloat16 (CUDA only).
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
}

impl Precision {
    /// Every precision, in the order the help texts list them.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::Bf16Mixed];

    /// The precision named `name` (as [`Precision::name`] gives it), if any.
    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The name a sweep's YAML and the command line use.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Bf16Mixed => "bf16-mixed",
        }
    }
}

/// Evaluation cadence: when validation loss and accuracy are measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Number of evaluation points over the trial, the last one at the final step.
    pub points: usize,
    /// How the points are spaced in steps.
    pub spacing: Spacing,
    /// Evaluate on at most this many validation examples (all if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_examples: Option<usize>,
}

/// Spacing of evaluation points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Evenly spaced in steps.
    Linear,
    /// Evenly spaced in log(steps): dense early, as a log-log loss curve wants.
    Log,
}

impl TrialConfig {
    /// Optimiser steps of this trial: ⌈epochs × training examples / batch size⌉.
    pub fn total_steps(&self) -> u64 {
        let examples = self.epochs * self.data.train_examples() as f64;
        ((examples / self.batch_size as f64).ceil() as u64).max(1)
    }

    /// Examples the trial sees: steps × batch size.
    pub fn examples_seen(&self) -> u64 {
        self.total_steps() * self.batch_size as u64
    }
}

impl EvalConfig {
    /// The steps (1-based, increasing, unique) after which the trainer evaluates.
    pub fn steps(&self, total_steps: u64) -> Vec<u64> {
        let n = self.points.max(1);
        let mut steps: Vec<u64> = (1..=n)
            .map(|i| {
                let frac = i as f64 / n as f64;
                match self.spacing {
                    Spacing::Linear => (frac * total_steps as f64).round() as u64,
                    Spacing::Log => (total_steps as f64).powf(frac).round() as u64,
                }
            })
            .map(|s| s.clamp(1, total_steps))
            .collect();
        steps.push(total_steps);
        steps.sort_unstable();
        steps.dedup();
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_names_are_the_serialised_ones() {
        for p in Precision::ALL {
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.name()));
            assert_eq!(serde_json::from_str::<Precision>(&json).unwrap(), p);
            assert_eq!(Precision::from_name(p.name()), Some(p));
        }
        assert_eq!(Precision::from_name("bf16mixed"), None);
        assert!(serde_json::from_str::<Precision>("\"bf16mixed\"").is_err());
    }

    #[test]
    fn eval_steps_end_at_the_last_step_and_are_unique() {
        let eval = EvalConfig {
            points: 5,
            spacing: Spacing::Log,
            max_examples: None,
        };
        let steps = eval.steps(1000);
        assert_eq!(*steps.last().unwrap(), 1000);
        assert!(steps.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(steps, vec![4, 16, 63, 251, 1000]);
        let lin = EvalConfig {
            points: 4,
            spacing: Spacing::Linear,
            max_examples: None,
        };
        assert_eq!(lin.steps(10), vec![3, 5, 8, 10]);
        assert_eq!(lin.steps(2), vec![1, 2]);
    }

    #[test]
    fn fashion_split_sizes() {
        let d = DataConfig::FashionMnist {
            source: FashionSource::T10k,
            validation: 2000,
            train_limit: None,
            split_seed: 0,
        };
        assert_eq!(d.train_examples(), 8000);
        let limited = DataConfig::FashionMnist {
            source: FashionSource::Train,
            validation: 10_000,
            train_limit: Some(5000),
            split_seed: 0,
        };
        assert_eq!(limited.train_examples(), 5000);
    }
}
