//! The training loop of one trial: batches from a device-resident data set, AdamW or
//! SGD-Nesterov, warm-up + decay, global-norm or adaptive gradient clipping, periodic
//! evaluation, divergence detection. Classifiers train on cross-entropy and report validation
//! loss and accuracy; AIM trains on next-patch prediction and reports its validation
//! pre-training loss and a linear probe's accuracy. Progress leaves through the [`Reporter`] trait; nothing here knows about storage.
//!
//! The loop is generic over the Burn backend, but the public entry point [`train`] is not: it
//! picks the backend from a [`ComputeDevice`], so that crates calling it do not monomorphise
//! Burn (see DESIGN.md on compile times).

use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, Optimizer as _, Sgd, SgdConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{ModelConfig, Optimizer, Precision, TrialConfig};
use crate::models::aim::{loss_weights, prefix_mask, Aim};
use crate::models::Model;
use crate::train::adamw::{AdamWConfig, FusedAdamW};
pub(crate) use crate::train::batches::{BatchOrder, TrainBatches};
use crate::train::clipping::{
    adaptive_clip, global_norm_scale, scale_gradients, ClipScale, NormReduction,
};
use crate::train::data::{to_patches, Dataset, Examples};
use crate::train::schedule::learning_rate;

/// The trial vocabulary the loop reports in (defined in `slaw-core`, shared with the executors).
pub use slaw_core::{ComputeDevice, Evaluation, Outcome, Progress, Reporter, StartInfo, Summary};

/// Whether this build can run on CUDA devices.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Which of CubeCL's on-disk caches a CUDA process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelCache {
    /// Autotune results and compiled kernels (PTX).
    All,
    /// Autotune results only; kernels are compiled again by every process.
    AutotuneOnly,
}

/// Points CubeCL's autotune cache at `dir/autotune` and (with [`KernelCache::All`]) its
/// compiled-kernel (PTX) cache at `dir/ptx`, so that every trial, worker process and run on this
/// machine reuses the kernels tuned and compiled once per shape. Call before the first CUDA
/// trial of the process; returns false when the configuration was already fixed (then CubeCL's
/// defaults stay in use: the nearest `target/` or the user's cache directory for autotune, no
/// PTX cache) or when built without CUDA.
///
/// With [`KernelCache::All`], the CUDA driver's own cache of PTX compiled for this GPU (what it
/// would keep in `~/.nv/ComputeCache`) moves to `dir/sass`, up to 4 GiB, unless
/// `CUDA_CACHE_PATH` / `CUDA_CACHE_MAXSIZE` are set: a warm slaw cache then loads its kernels
/// without the driver compiling them again (4–6 s of the benchmark sweep on a fresh H100
/// machine). This sets those two variables in the process's environment, so call it before the
/// process starts threads (the driver reads them when CUDA initialises).
pub fn set_kernel_cache(dir: &std::path::Path, which: KernelCache) -> bool {
    #[cfg(feature = "cuda")]
    {
        use burn::cubecl::config::cache::CacheConfig;
        use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
        let (autotune, ptx) = (dir.join("autotune"), dir.join("ptx"));
        if std::fs::create_dir_all(&autotune).is_err() || std::fs::create_dir_all(&ptx).is_err() {
            return false;
        }
        if which == KernelCache::All && std::env::var_os("CUDA_CACHE_PATH").is_none() {
            let sass = dir.join("sass");
            if std::fs::create_dir_all(&sass).is_ok() {
                std::env::set_var("CUDA_CACHE_PATH", &sass);
                if std::env::var_os("CUDA_CACHE_MAXSIZE").is_none() {
                    std::env::set_var("CUDA_CACHE_MAXSIZE", "4294967296");
                }
            }
        }
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        config.autotune.cache = CacheConfig::File(autotune);
        if which == KernelCache::All {
            config.compilation.cache = Some(CacheConfig::File(ptx));
        }
        std::panic::catch_unwind(|| CubeClRuntimeConfig::set(config)).is_ok()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (dir, which);
        false
    }
}

/// Errors that stop a trial before or outside training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration cannot run on this device or with this data.
    #[error("{0}")]
    Unsupported(String),
}

/// Trains `config` on `data` on `device`, reporting to `reporter`.
pub fn train(
    config: &TrialConfig,
    data: &Dataset,
    device: &ComputeDevice,
    reporter: &mut dyn Reporter,
) -> Result<Outcome, TrainError> {
    struct Lone<'a, 'r> {
        config: &'a TrialConfig,
        data: &'a Dataset,
        reporter: &'a mut (dyn Reporter + 'r),
    }
    impl OnBackend for Lone<'_, '_> {
        type Output = Outcome;
        fn run<B: AutodiffBackend>(
            self,
            device: &B::Device,
            backend: String,
            norm_reduction: NormReduction,
        ) -> Outcome {
            train_on::<B>(
                self.config,
                self.data,
                device,
                backend,
                norm_reduction,
                self.reporter,
            )
        }
    }
    on_backend(
        device,
        config.precision,
        Lone {
            config,
            data,
            reporter,
        },
    )
}

/// Training generic over the Burn backend, run by [`on_backend`] on the backend that a device
/// and a precision pick.
pub(crate) trait OnBackend {
    type Output;
    /// Runs on backend `B`, on `device` (named `backend` for reports), summing gradient norms
    /// as `norm_reduction` suits the backend.
    fn run<B: AutodiffBackend>(
        self,
        device: &B::Device,
        backend: String,
        norm_reduction: NormReduction,
    ) -> Self::Output;
}

/// Runs `work` on the backend of `device` and `precision`: ndarray (f32) on the CPU, CubeCL's
/// CUDA backend (f32 or bf16) on a GPU; an error for a combination this build cannot run.
pub(crate) fn on_backend<W: OnBackend>(
    device: &ComputeDevice,
    precision: Precision,
    work: W,
) -> Result<W::Output, TrainError> {
    crate::models::set_linear_chunk_rows(linear_chunk_rows(device));
    crate::models::set_mixed_precision(precision == Precision::Bf16Mixed);
    match (device, precision) {
        (ComputeDevice::Cpu, Precision::F32) => Ok(work.run::<Autodiff<NdArray<f32>>>(
            &Default::default(),
            "ndarray".into(),
            NormReduction::Concatenated,
        )),
        (ComputeDevice::Cpu, Precision::Bf16 | Precision::Bf16Mixed) => {
            Err(TrainError::Unsupported(format!(
                "precision {} needs a CUDA device (--device cuda); the CPU backend trains in f32",
                precision.name()
            )))
        }
        #[cfg(feature = "cuda")]
        (ComputeDevice::Cuda(i), precision) => {
            use burn::backend::cuda::{Cuda, CudaDevice};
            let dev = CudaDevice::new(*i);
            let name = format!("cuda:{i}");
            let reduction = NormReduction::Concatenated;
            Ok(match precision {
                // Mixed precision: f32 tensors, bf16 products (`crate::models::matmul`).
                Precision::F32 | Precision::Bf16Mixed => {
                    work.run::<Autodiff<Cuda<f32, i32>>>(&dev, name, reduction)
                }
                Precision::Bf16 => {
                    work.run::<Autodiff<Cuda<burn::tensor::bf16, i32>>>(&dev, name, reduction)
                }
            })
        }
        #[cfg(not(feature = "cuda"))]
        (ComputeDevice::Cuda(_), _) => Err(TrainError::Unsupported(
            "this slaw was built without CUDA; rebuild with `--features cuda`".into(),
        )),
    }
}

/// Most rows per chunk of the ViT's and AIM's token-wise Linear layers on `device`
/// (`crate::models::token_linear`): [`crate::train::options::TrainerOptions::linear_rows_cuda`]
/// on CUDA, one example per chunk on the CPU, where larger chunks measured slower.
pub(crate) fn linear_chunk_rows(device: &ComputeDevice) -> usize {
    match device {
        ComputeDevice::Cpu => 0,
        ComputeDevice::Cuda(_) => crate::train::options::options().linear_rows_cuda,
    }
}

/// The two optimisers behind one `step`.
enum Optim<B: AutodiffBackend> {
    AdamW(FusedAdamW<B>),
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, Model<B>, B>),
}

impl<B: AutodiffBackend> Optim<B> {
    fn new(config: &TrialConfig) -> Self {
        let o = &config.optim;
        match o.optimizer {
            Optimizer::AdamW { beta1, beta2, eps } => Optim::AdamW(FusedAdamW::new(AdamWConfig {
                beta1,
                beta2,
                eps,
                weight_decay: o.weight_decay,
            })),
            Optimizer::Sgd { momentum, nesterov } => Optim::Sgd(
                SgdConfig::new()
                    .with_momentum(Some(MomentumConfig {
                        momentum,
                        dampening: 0.0,
                        nesterov,
                    }))
                    .with_weight_decay((o.weight_decay > 0.0).then_some(WeightDecayConfig {
                        penalty: o.weight_decay as f32,
                    }))
                    .init(),
            ),
        }
    }

    /// One update; `clip` scales the gradients first (inside AdamW's fused update).
    fn step(
        &mut self,
        lr: f64,
        model: Model<B>,
        mut grads: GradientsParams,
        clip: Option<&ClipScale<B::InnerBackend>>,
    ) -> Model<B> {
        match self {
            Optim::AdamW(o) => o.step(lr, model, grads, clip),
            Optim::Sgd(o) => {
                if let Some(scale) = clip {
                    scale_gradients(&model, &mut grads, scale);
                }
                o.step(lr, model, grads)
            }
        }
    }
}

/// Cross-entropy of `logits` against one-hot `targets`, averaged over the batch.
fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 2>) -> Tensor<B, 1> {
    (log_softmax(logits, 1) * targets).sum_dim(1).mean().neg()
}

/// The examples laid out as `model` consumes them.
pub(crate) fn model_inputs(examples: &Examples, data: &Dataset, model: &ModelConfig) -> Vec<f32> {
    match model {
        ModelConfig::Mlp(_) | ModelConfig::Convnet(_) => examples.pixels.clone(),
        ModelConfig::Vit(v) => to_patches(&examples.pixels, &data.shape, v.patch),
        ModelConfig::Aim(a) => to_patches(&examples.pixels, &data.shape, a.patch),
    }
}

pub(crate) fn one_hot(labels: &[u32], classes: usize) -> Vec<f32> {
    let mut out = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        out[i * classes + l as usize] = 1.0;
    }
    out
}

/// Mean cross-entropy and accuracy of `model` on `inputs`, computed on the host in f64 from
/// logits read back in chunks.
fn evaluate<B: Backend>(
    model: &Model<B>,
    inputs: &Tensor<B, 2>,
    labels: &[u32],
    classes: usize,
) -> (f64, f64) {
    const CHUNK: usize = 1000;
    let n = labels.len();
    let (mut loss, mut correct) = (0.0f64, 0usize);
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let logits = model.forward(inputs.clone().narrow(0, start, len));
        let (l, c) = score_logits(&host_values(logits), &labels[start..start + len], classes);
        loss += l;
        correct += c;
        start += len;
    }
    (loss / n as f64, correct as f64 / n as f64)
}

/// The summed cross-entropy (in f64, from a max-shifted log-sum-exp) and the number of correct
/// predictions of `logits` (`[labels.len(), classes]`, row-major) against `labels`.
pub(crate) fn score_logits(logits: &[f32], labels: &[u32], classes: usize) -> (f64, usize) {
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let lse = max
            + row
                .iter()
                .map(|&v| (v as f64 - max).exp())
                .sum::<f64>()
                .ln();
        loss += lse - row[label as usize] as f64;
        let argmax = row
            .iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, &v)| if v > b.1 { (i, v) } else { b },
            )
            .0;
        correct += usize::from(argmax == label as usize);
    }
    (loss, correct)
}

/// Training examples whose frozen features fit AIM's linear probe at each evaluation.
const PROBE_TRAIN_EXAMPLES: usize = 2000;

/// The prefix-attention mask `[batch, 1, t, t]` and loss weights `[batch, t − 1]` of AIM.
fn prefix_tensors<B: AutodiffBackend>(
    prefixes: &[usize],
    t: usize,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 2>) {
    let b = prefixes.len();
    let mask = prefix_mask_tensor::<B>(prefixes, t, device);
    let weights = Tensor::<B, 2>::from_data(
        TensorData::new(loss_weights(prefixes, t), [b, t - 1]),
        device,
    );
    (mask, weights)
}

/// The additive prefix-attention mask `[batch, 1, t, t]` of `prefixes`, on `device`.
fn prefix_mask_tensor<B: Backend>(
    prefixes: &[usize],
    t: usize,
    device: &B::Device,
) -> Tensor<B, 4> {
    let b = prefixes.len();
    Tensor::from_data(
        TensorData::new(prefix_mask(prefixes, t), [b, 1, t, t]),
        device,
    )
}

/// Reads a device tensor back as `f32` values.
pub(crate) fn host_values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap_or_default()
}

/// AIM's evaluation: the causal (`P = 1`) next-patch loss on the validation inputs, and the
/// validation accuracy of a linear probe fitted on the frozen, mean-pooled trunk features of
/// `probe_x`.
fn evaluate_aim<B: Backend>(
    aim: &Aim<B>,
    val_x: &Tensor<B, 2>,
    val_labels: &[u32],
    probe_x: Tensor<B, 2>,
    probe_labels: &[u32],
    classes: usize,
) -> (f64, f64) {
    const CHUNK: usize = 500;
    let device = val_x.device();
    let t = aim.patches();
    let features = |x: &Tensor<B, 2>| -> Vec<f32> {
        let n = x.dims()[0];
        (0..n)
            .step_by(CHUNK)
            .flat_map(|start| {
                let len = CHUNK.min(n - start);
                host_values(aim.features(x.clone().narrow(0, start, len)))
            })
            .collect()
    };
    let n = val_labels.len();
    let loss: f64 = (0..n)
        .step_by(CHUNK)
        .map(|start| {
            let len = CHUNK.min(n - start);
            let mask = prefix_mask_tensor::<B>(&vec![1; len], t, &device);
            let errors = aim.next_patch_errors(val_x.clone().narrow(0, start, len), mask);
            host_values(errors).iter().map(|&e| e as f64).sum::<f64>()
        })
        .sum();
    let loss = loss / (n * (t - 1)).max(1) as f64;
    let val_features = features(val_x);
    let accuracy = crate::train::probe::linear_probe(
        &features(&probe_x),
        probe_labels,
        &val_features,
        val_labels,
        val_features.len() / n.max(1),
        classes,
    );
    (loss, accuracy)
}

/// The steps a trial's training loop takes, the same for a lone trial and a stack: how many,
/// after which to evaluate, how often to read the training loss back, and the batch size.
pub(crate) struct StepPlan {
    pub(crate) total_steps: u64,
    pub(crate) eval_steps: Vec<u64>,
    /// Every 10 to 50 steps, about 100 times a trial (each read waits for the device).
    pub(crate) readback: u64,
    pub(crate) batch: usize,
}

impl StepPlan {
    pub(crate) fn of(config: &TrialConfig) -> Self {
        let total_steps = config.total_steps();
        Self {
            total_steps,
            eval_steps: config.eval.steps(total_steps),
            readback: (total_steps / 100).clamp(10, 50),
            batch: config.batch_size,
        }
    }
}

/// A trial's examples on the device, laid out as its model consumes them.
pub(crate) struct DeviceData<'a, B: Backend> {
    /// Training inputs `[examples, features]`.
    pub(crate) train_x: Tensor<B, 2>,
    /// One-hot training targets `[examples, classes]`.
    pub(crate) train_y: Tensor<B, 2>,
    /// Validation inputs, at most `eval.max_examples` of them.
    pub(crate) val_x: Tensor<B, 2>,
    /// Their labels.
    pub(crate) val_labels: &'a [u32],
}

impl<'a, B: Backend> DeviceData<'a, B> {
    /// The trial's examples on `device`. Training inputs stay in image layout (for
    /// [`crate::train::augment`]) when the data set augments, and are left on the host (an
    /// empty tensor) when it streams.
    pub(crate) fn load(config: &TrialConfig, data: &'a Dataset, device: &B::Device) -> Self {
        let (features, classes) = (data.shape.features(), data.shape.classes);
        let n_train = if data.streamed.is_some() {
            0
        } else {
            data.train.len()
        };
        let inputs = if Dataset::augment(&config.data).is_some() {
            data.train.pixels.clone()
        } else {
            model_inputs(&data.train, data, &config.model)
        };
        let train_x = Tensor::from_data(TensorData::new(inputs, [n_train, features]), device);
        let train_y = Tensor::from_data(
            TensorData::new(
                one_hot(&data.train.labels[..n_train], classes),
                [n_train, classes],
            ),
            device,
        );
        let n_val = config
            .eval
            .max_examples
            .map_or(data.validation.len(), |m| m.min(data.validation.len()));
        let mut val_inputs = model_inputs(&data.validation, data, &config.model);
        val_inputs.truncate(n_val * features);
        let val_x = Tensor::from_data(TensorData::new(val_inputs, [n_val, features]), device);
        Self {
            train_x,
            train_y,
            val_x,
            val_labels: &data.validation.labels[..n_val],
        }
    }
}

/// A freshly initialised model of `config` drawn from `seed`. Burn draws a parameter's initial
/// values when it is first read, from one process-wide generator: every parameter is read here,
/// under a lock, so that a trial's initial weights depend on its seed alone, whatever else
/// runs in the process (tests, the trials of a stack).
pub(crate) fn init_model<B: Backend>(
    config: &ModelConfig,
    shape: &crate::config::InputShape,
    seed: u64,
    device: &B::Device,
) -> Model<B> {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, seed);
    let model = Model::<B>::init(config, shape, device);
    crate::models::materialize(&model);
    model
}

fn train_on<B: AutodiffBackend>(
    config: &TrialConfig,
    data: &Dataset,
    device: &B::Device,
    backend: String,
    norm_reduction: NormReduction,
    reporter: &mut dyn Reporter,
) -> Outcome {
    let classes = data.shape.classes;
    let mut model = init_model::<B>(&config.model, &data.shape, config.seed, device);
    let mut optim = Optim::<B>::new(config);

    let DeviceData {
        train_x,
        train_y,
        val_x,
        val_labels,
    } = DeviceData::<B::InnerBackend>::load(config, data, device);
    let (n_train, n_val) = (data.train.len(), val_labels.len());

    let StepPlan {
        total_steps,
        eval_steps,
        readback,
        batch,
    } = StepPlan::of(config);
    reporter.started(&StartInfo {
        params: model.num_params() as u64,
        total_steps,
        train_examples: n_train,
        validation_examples: n_val,
        backend,
    });

    let mut batches = TrainBatches::<B::InnerBackend>::new(config, data, batch);
    let mut prefix_rng =
        ChaCha8Rng::seed_from_u64(config.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0xa1a1);

    let start = Instant::now();
    let mut summary = Summary::default();
    let mut pending_loss: Option<Tensor<B::InnerBackend, 1>> = None;
    let (mut pending_steps, mut window_sum, mut window_steps) = (0u64, 0.0f64, 0u64);
    let mut next_eval = 0usize;
    let mut lr = 0.0;

    for step in 0..total_steps {
        if reporter.should_stop() {
            summary.steps = step;
            summary.examples = step * batch as u64;
            summary.wall_seconds = start.elapsed().as_secs_f64();
            return Outcome::Stopped(summary);
        }
        let (x, y) = batches.next(&train_x, &train_y, device);
        let x = Tensor::<B, 2>::from_inner(x);
        let loss = match &model {
            Model::Aim(aim) => {
                // AIM: a prefix length per example, uniform in 1..patches (the paper's
                // prefix attention); its own generator leaves the data order untouched.
                let t = aim.patches();
                let prefixes: Vec<usize> = (0..batch)
                    .map(|_| prefix_rng.random_range(1..t.max(2)))
                    .collect();
                let (mask, weights) = prefix_tensors::<B>(&prefixes, t, device);
                aim.pretrain_loss(x, mask, weights)
            }
            _ => cross_entropy(model.forward(x), Tensor::<B, 2>::from_inner(y)),
        };
        let detached = loss.clone().inner();
        pending_loss = Some(match pending_loss.take() {
            Some(p) => p + detached,
            None => detached,
        });
        pending_steps += 1;
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        if let Some(clip) = config.optim.agc {
            adaptive_clip(&model, &mut grads, clip);
        }
        let clip = config
            .optim
            .grad_clip
            .and_then(|max_norm| global_norm_scale(&model, &grads, max_norm, norm_reduction));
        lr = learning_rate(&config.optim, step, total_steps);
        model = optim.step(lr, model, grads, clip.as_ref());

        let done = step + 1;
        let is_eval = eval_steps.get(next_eval) == Some(&done);
        if done % readback == 0 || done == total_steps || is_eval {
            let sum = pending_loss.take().map_or(0.0, |t| {
                t.into_data()
                    .convert::<f64>()
                    .to_vec::<f64>()
                    .map_or(f64::NAN, |v| v[0])
            });
            let mean = sum / pending_steps as f64;
            window_sum += sum;
            window_steps += pending_steps;
            pending_steps = 0;
            summary.steps = done;
            summary.examples = done * batch as u64;
            summary.wall_seconds = start.elapsed().as_secs_f64();
            reporter.progress(&Progress {
                step: done,
                total_steps,
                examples: summary.examples,
                train_loss: mean,
                lr,
                wall_seconds: summary.wall_seconds,
            });
            if !mean.is_finite() {
                summary.train_loss = Some(mean);
                return Outcome::Diverged(summary);
            }
        }
        if is_eval {
            next_eval += 1;
            let train_loss = window_sum / window_steps.max(1) as f64;
            window_sum = 0.0;
            window_steps = 0;
            let valid = model.valid();
            let (val_loss, val_accuracy) = match &valid {
                Model::Aim(aim) => {
                    let probe_n = n_train.min(PROBE_TRAIN_EXAMPLES);
                    evaluate_aim(
                        aim,
                        &val_x,
                        val_labels,
                        batches.first(data, &train_x, probe_n, device),
                        &data.train.labels[..probe_n],
                        classes,
                    )
                }
                _ => evaluate(&valid, &val_x, val_labels, classes),
            };
            summary.wall_seconds = start.elapsed().as_secs_f64();
            summary.train_loss = Some(train_loss);
            summary.val_loss = Some(val_loss);
            summary.val_accuracy = Some(val_accuracy);
            reporter.evaluated(&Evaluation {
                step: done,
                examples: summary.examples,
                lr,
                train_loss,
                val_loss,
                val_accuracy,
                wall_seconds: summary.wall_seconds,
            });
            if !val_loss.is_finite() {
                return Outcome::Diverged(summary);
            }
            summary.best_val_loss =
                Some(summary.best_val_loss.map_or(val_loss, |b| b.min(val_loss)));
        }
    }
    let _ = lr;
    summary.wall_seconds = start.elapsed().as_secs_f64();
    Outcome::Completed(summary)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::*;

    pub(crate) fn tiny(lr: f64, optimizer: Optimizer, model: ModelConfig) -> TrialConfig {
        TrialConfig {
            data: DataConfig::Synthetic {
                side: 8,
                classes: 4,
                train: 512,
                validation: 256,
                teacher_width: 16,
                seed: 1,
            },
            model,
            optim: OptimConfig {
                optimizer,
                lr,
                weight_decay: 0.0,
                warmup: 0.1,
                schedule: Schedule::Cosine,
                grad_clip: Some(1.0),
                agc: None,
            },
            epochs: 4.0,
            batch_size: 32,
            seed: 0,
            precision: Precision::F32,
            eval: EvalConfig {
                points: 4,
                spacing: Spacing::Linear,
                max_examples: None,
            },
        }
    }

    pub(crate) fn mlp() -> ModelConfig {
        ModelConfig::Mlp(MlpConfig {
            width: 32,
            depth: 2,
            activation: Activation::Gelu,
            bias: true,
        })
    }

    /// 1000 training and 500 validation images of the vendored Fashion-MNIST t10k split.
    fn fashion_subset() -> DataConfig {
        DataConfig::FashionMnist {
            source: FashionSource::T10k,
            validation: 500,
            train_limit: Some(1000),
            split_seed: 0,
        }
    }

    #[derive(Default)]
    pub(crate) struct Record {
        pub(crate) start: Option<StartInfo>,
        pub(crate) evals: Vec<Evaluation>,
        pub(crate) progress: Vec<Progress>,
        pub(crate) stop_after: Option<u64>,
        asked: u64,
    }

    impl Reporter for Record {
        fn started(&mut self, info: &StartInfo) {
            self.start = Some(info.clone());
        }
        fn progress(&mut self, p: &Progress) {
            self.progress.push(p.clone());
        }
        fn evaluated(&mut self, e: &Evaluation) {
            self.evals.push(e.clone());
        }
        fn should_stop(&mut self) -> bool {
            self.asked += 1;
            self.stop_after.is_some_and(|s| self.asked > s)
        }
    }

    pub(crate) fn data_for(config: &TrialConfig) -> Dataset {
        crate::train::data::load(&config.data, &crate::train::data::DataPlaces::default()).unwrap()
    }

    #[test]
    fn loss_decreases_on_a_learnable_task() {
        for optimizer in [
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
        ] {
            let lr = if matches!(optimizer, Optimizer::Sgd { .. }) {
                0.1
            } else {
                3e-3
            };
            let config = tiny(lr, optimizer, mlp());
            let data = data_for(&config);
            let mut rec = Record::default();
            let outcome = train(&config, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
            let Outcome::Completed(summary) = outcome else {
                panic!("{outcome:?}")
            };
            assert_eq!(summary.steps, 64);
            assert_eq!(rec.evals.len(), 4);
            let first = rec.progress.first().unwrap().train_loss;
            let last_val = rec.evals.last().unwrap().val_loss;
            assert!(first > 1.2, "initial loss {first} should be near ln 4");
            assert!(
                last_val < 0.9 * first,
                "val loss {last_val} vs initial {first}"
            );
            assert!(rec.evals.last().unwrap().val_accuracy > 0.4);
            assert_eq!(
                rec.start.unwrap().params,
                crate::cost::model_cost(&config.model, &data.shape).params_total
            );
        }
    }

    #[test]
    fn vit_trains_on_the_cpu() {
        let config = tiny(
            3e-3,
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            ModelConfig::Vit(VitConfig {
                patch: 4,
                width: 16,
                depth: 1,
                heads: 2,
                mlp_dim: 32,
                pool: Pool::Cls,
                qk_norm: true,
                parallel_block: true,
                bias: false,
            }),
        );
        let data = data_for(&config);
        let mut rec = Record::default();
        let outcome = train(&config, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        let first = rec.progress.first().unwrap().train_loss;
        let last = rec.evals.last().unwrap().val_loss;
        assert!(last < first, "{last} !< {first}");
    }

    /// The NFNet-style ConvNet with SGD-Nesterov and adaptive gradient clipping learns to
    /// classify real images (the synthetic teacher keys on pixel positions, which global
    /// pooling discards).
    #[test]
    fn convnet_with_agc_trains_on_the_cpu() {
        // NF-ResNets want large learning rates (0.1 and 0.02 barely move in 62 steps).
        let mut config = tiny(
            0.5,
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            ModelConfig::Convnet(ConvNetConfig {
                width: 8,
                depths: vec![1, 1],
                alpha: 0.2,
                activation: Activation::Relu,
            }),
        );
        config.optim.grad_clip = None;
        config.optim.agc = Some(0.16);
        config.data = fashion_subset();
        config.epochs = 2.0;
        let data = data_for(&config);
        let mut rec = Record::default();
        let outcome = train(&config, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        let first = rec.progress.first().unwrap().train_loss;
        let last = rec.evals.last().unwrap().val_loss;
        assert!(last < 0.9 * first, "{last} !< 0.9 × {first}");
        assert_eq!(
            rec.start.unwrap().params,
            crate::cost::model_cost(&config.model, &data.shape).params_total
        );
    }

    /// AIM on real images: the next-patch loss falls, and the probe on its frozen features
    /// classifies far above chance (10 %).
    #[test]
    fn aim_trains_and_is_probed_on_the_cpu() {
        let mut config = tiny(
            2e-3,
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
            },
            ModelConfig::Aim(AimConfig {
                patch: 7,
                width: 32,
                depth: 2,
                heads: 4,
                mlp_dim: 64,
                head_depth: 2,
                qk_norm: false,
                bias: true,
            }),
        );
        config.data = fashion_subset();
        config.epochs = 3.0;
        config.eval.points = 3;
        let data = data_for(&config);
        let mut rec = Record::default();
        let outcome = train(&config, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        let first = rec.progress.first().unwrap().train_loss;
        let last = rec.evals.last().unwrap();
        assert!(
            last.val_loss < 0.9 * first,
            "{} !< 0.9 × {first}",
            last.val_loss
        );
        assert!(
            last.val_accuracy > 0.3,
            "probe accuracy {}",
            last.val_accuracy
        );
    }

    #[test]
    fn a_nan_in_the_data_ends_the_trial_as_diverged() {
        let config = tiny(
            1e-3,
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            mlp(),
        );
        let mut data = data_for(&config);
        for p in data.train.pixels.iter_mut() {
            *p = f32::NAN;
        }
        let mut rec = Record::default();
        let outcome = train(&config, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
        let Outcome::Diverged(summary) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(summary.steps < 64);
        assert!(summary.train_loss.unwrap().is_nan());
    }

    /// A learning rate that overflows f32 within a few steps: the loss becomes inf or NaN.
    /// (At 1e12 the loss stays finite, ~1e34, since the exact GELU gradient does not overflow:
    /// only non-finite losses count as diverged.)
    #[test]
    fn an_absurd_learning_rate_diverges() {
        let config = tiny(
            1e30,
            Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            mlp(),
        );
        let data = data_for(&config);
        let outcome = train(&config, &data, &ComputeDevice::Cpu, &mut Record::default()).unwrap();
        assert!(matches!(outcome, Outcome::Diverged(_)), "{outcome:?}");
    }

    #[test]
    fn stop_requests_end_the_trial() {
        let config = tiny(
            1e-3,
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            mlp(),
        );
        let data = data_for(&config);
        let mut rec = Record {
            stop_after: Some(10),
            ..Default::default()
        };
        let outcome = train(&config, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
        let Outcome::Stopped(summary) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(summary.steps, 10);
    }

    #[test]
    fn same_seed_same_curve() {
        let config = tiny(
            1e-3,
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            mlp(),
        );
        let data = data_for(&config);
        let run = || {
            let mut rec = Record::default();
            train(&config, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
            rec.evals.iter().map(|e| e.val_loss).collect::<Vec<_>>()
        };
        // Same initialisation and data order, even with other tests training in parallel; the
        // CPU backend's parallel reductions may sum in a different order, so the curves agree
        // to float precision rather than bit for bit.
        for (a, b) in run().iter().zip(run()) {
            assert!((a - b).abs() < 1e-6 * a.abs(), "{a} vs {b}");
        }
        // A different seed gives a different curve.
        let mut other = config.clone();
        other.seed = 1;
        let mut rec = Record::default();
        train(&other, &data, &ComputeDevice::Cpu, &mut rec).unwrap();
        assert!((rec.evals[0].val_loss - run()[0]).abs() > 1e-4);
    }
}
