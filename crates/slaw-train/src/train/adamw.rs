//! AdamW whose update of one parameter is a single chain of element-wise operations, with the
//! global-norm clipping factor folded in.
//!
//! The arithmetic is Burn's `AdamW` (bias-corrected moments, decoupled weight decay), in the
//! same order, so that both give the same numbers. What differs is the order of the work:
//! Burn's optimiser receives gradients that clipping has already scaled, one multiplication
//! per parameter that runs as a kernel of its own (63 one-element launches per step on the
//! small ViT, `docs/PERFORMANCE.md`). Here the factor is one more input of the parameter's
//! update, so that burn-fusion fuses the scaling into the kernels of the update instead of
//! launching it alone (small ViT: 616 → 593 kernels per step; not every parameter's update ends
//! up as a single kernel).
//!
//! With one learning rate and clipping factor for all parameters (lone trials), the update of
//! each parameter is instead one pass over its elements, where the backend has one: one custom
//! operation and kernel on the f32 CUDA backend (`ops::adamw::cuda`: one operation instead of ~16
//! for burn-fusion's thread), one loop in place on the f32 CPU backend (`ops::adamw::cpu`: one pass
//! over memory instead of ~16, each with its own allocation). The arithmetic is the same.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorPrimitive};

use crate::models::Model;
use crate::train::clipping::ClipScale;
use crate::train::per_trial::PerTrial;

/// AdamW's hyper-parameters (PyTorch's names and meaning).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay: each step multiplies the parameters by `1 − lr · weight_decay`.
    pub weight_decay: f64,
}

/// Both moment estimates of one parameter, rank-erased.
struct Moments<B: Backend> {
    first: TensorPrimitive<B>,
    second: TensorPrimitive<B>,
}

/// AdamW with its state: the step count and the moments of every parameter updated so far.
pub struct FusedAdamW<B: AutodiffBackend> {
    config: AdamWConfig,
    steps: i32,
    moments: HashMap<ParamId, Moments<B::InnerBackend>>,
    /// Update each parameter (shared learning rate) in one pass where the backend has one
    /// (`ops::adamw::cuda`, `ops::adamw::cpu`) instead of ~16 tensor operations. On by default;
    /// `SLAW_ADAMW_KERNEL=0` turns it off (for benchmarks).
    one_pass: bool,
}

impl<B: AutodiffBackend> FusedAdamW<B> {
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            steps: 0,
            moments: HashMap::new(),
            one_pass: crate::train::options::options().adamw_op,
        }
    }

    /// Whether to update parameters in one pass where it applies (see the field).
    #[cfg(test)]
    pub(crate) fn with_one_pass(mut self, on: bool) -> Self {
        self.one_pass = on;
        self
    }

    /// One update of every parameter that has a gradient, at learning rate `lr`, each gradient
    /// first multiplied by `clip` when given.
    pub fn step(
        &mut self,
        lr: f64,
        model: Model<B>,
        grads: GradientsParams,
        clip: Option<&ClipScale<B::InnerBackend>>,
    ) -> Model<B> {
        self.step_module(Rate::Shared(lr), model, grads, clip)
    }

    /// [`FusedAdamW::step`] for any module, with one learning rate for every parameter or one
    /// per trial of a stack ([`crate::models::stacked`]: parameters whose first axis is the trial).
    pub fn step_module<M: Module<B>>(
        &mut self,
        lr: Rate<'_, B::InnerBackend>,
        model: M,
        mut grads: GradientsParams,
        clip: Option<&ClipScale<B::InnerBackend>>,
    ) -> M {
        self.steps += 1;
        let c = self.config;
        // The scalars of this step, computed as Burn's AdamW computes them (in f32, but for
        // the learning rate and the decay).
        let (beta1, beta2) = (c.beta1 as f32, c.beta2 as f32);
        let wd = f64::from(c.weight_decay as f32);
        let (shared_lr, per_trial) = match lr {
            Rate::Shared(lr) => (lr, None),
            Rate::PerTrial(rates) => {
                let decay = (wd != 0.0)
                    .then(|| PerTrial::new(rates.values().mul_scalar(-wd).add_scalar(1.0)));
                (0.0, Some((rates, decay)))
            }
        };
        let update = Update {
            lr: shared_lr,
            beta1: f64::from(beta1),
            beta2: f64::from(beta2),
            keep1: f64::from(1.0 - beta1),
            keep2: f64::from(1.0 - beta2),
            eps: f64::from(c.eps as f32),
            decay: 1.0 - shared_lr * wd,
            correction1: f64::from(1.0 - beta1.powi(self.steps)),
            correction2: f64::from(1.0 - beta2.powi(self.steps)),
        };
        let mut mapper = Mapper::<B> {
            update,
            per_trial: per_trial.as_ref().map(|(r, d)| (*r, d.as_ref())),
            grads: &mut grads,
            clip,
            moments: &mut self.moments,
            one_pass: if !self.one_pass {
                OnePass::None
            } else if crate::ops::cpu::is_cpu_f32::<B::InnerBackend>() {
                OnePass::Cpu
            } else if cuda_f32::<B::InnerBackend>() {
                OnePass::Cuda
            } else {
                OnePass::None
            },
        };
        model.map(&mut mapper)
    }
}

/// The learning rate of one step.
pub enum Rate<'a, B: Backend> {
    /// One rate for every parameter.
    Shared(f64),
    /// One rate per trial of a stack.
    PerTrial(&'a PerTrial<B>),
}

#[cfg(feature = "cuda")]
use crate::ops::foreach::cuda::is_cuda_f32 as cuda_f32;

/// Whether `B` is slaw's f32 CUDA backend: never in a build without CUDA.
#[cfg(not(feature = "cuda"))]
#[allow(clippy::extra_unused_type_parameters)] // the CUDA build's signature
fn cuda_f32<B: Backend>() -> bool {
    false
}

/// Where a lone trial's parameters are updated in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnePass {
    /// Nowhere: the tensor operations of [`Update::apply`].
    None,
    /// `ops::adamw::cuda` (the f32 CUDA backend).
    Cuda,
    /// `ops::adamw::cpu` (the f32 ndarray backend).
    Cpu,
}

/// The scalars of one step in f32, as the one-pass updates take them (see [`Update`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scalars {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub keep1: f32,
    pub keep2: f32,
    pub eps: f32,
    pub decay: f32,
    pub correction1: f32,
    pub correction2: f32,
}

/// The scalars of one step (`lr` and `decay` unused with per-trial rates).
#[derive(Debug, Clone, Copy)]
struct Update {
    lr: f64,
    beta1: f64,
    beta2: f64,
    /// `1 − β1` and `1 − β2`.
    keep1: f64,
    keep2: f64,
    eps: f64,
    /// `1 − lr · weight_decay`.
    decay: f64,
    /// `1 − β1^t` and `1 − β2^t`.
    correction1: f64,
    correction2: f64,
}

impl Update {
    /// These scalars in f32 (as the tensor operations apply them to f32 tensors).
    fn in_f32(&self) -> Scalars {
        Scalars {
            lr: self.lr as f32,
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            keep1: self.keep1 as f32,
            keep2: self.keep2 as f32,
            eps: self.eps as f32,
            decay: self.decay as f32,
            correction1: self.correction1 as f32,
            correction2: self.correction2 as f32,
        }
    }

    /// The new parameter and moments from the old ones and the (unclipped) gradient.
    fn apply<Bk: Backend, const D: usize>(
        &self,
        param: Tensor<Bk, D>,
        grad: Tensor<Bk, D>,
        moments: Option<MomentPair<Bk, D>>,
        per_trial: Option<PerTrialRates<'_, Bk>>,
    ) -> (Tensor<Bk, D>, Tensor<Bk, D>, Tensor<Bk, D>) {
        let (first, second) = match moments {
            Some((m, v)) => (
                m.mul_scalar(self.beta1)
                    .add(grad.clone().mul_scalar(self.keep1)),
                v.mul_scalar(self.beta2)
                    .add(grad.square().mul_scalar(self.keep2)),
            ),
            // The first step starts from zero moments: `0 · β + x` is `x`.
            None => (
                grad.clone().mul_scalar(self.keep1),
                grad.square().mul_scalar(self.keep2),
            ),
        };
        let delta = first.clone().div_scalar(self.correction1).div(
            second
                .clone()
                .div_scalar(self.correction2)
                .sqrt()
                .add_scalar(self.eps),
        );
        let updated = match per_trial {
            None => {
                let decayed = if self.decay == 1.0 {
                    param
                } else {
                    param.mul_scalar(self.decay)
                };
                decayed - delta.mul_scalar(self.lr)
            }
            Some((rates, decay)) => {
                let decayed = match decay {
                    Some(d) => param * d.shaped::<D>(),
                    None => param,
                };
                decayed - delta * rates.shaped::<D>()
            }
        };
        (updated, first, second)
    }
}

/// The first and second moments of one parameter.
type MomentPair<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>);

/// Per-trial learning rates and, with weight decay, the per-trial factors `1 − lr · decay`.
type PerTrialRates<'a, B> = (&'a PerTrial<B>, Option<&'a PerTrial<B>>);

struct Mapper<'a, B: AutodiffBackend> {
    update: Update,
    per_trial: Option<PerTrialRates<'a, B::InnerBackend>>,
    grads: &'a mut GradientsParams,
    clip: Option<&'a ClipScale<B::InnerBackend>>,
    moments: &'a mut HashMap<ParamId, Moments<B::InnerBackend>>,
    /// Where lone trials' parameters are updated in one pass.
    one_pass: OnePass,
}

impl<B: AutodiffBackend> Mapper<'_, B> {
    /// The new parameter and moments: in one pass where the backend has one (one learning
    /// rate and clipping factor), [`Update::apply`] otherwise.
    fn update<const D: usize>(
        &self,
        param: Tensor<B::InnerBackend, D>,
        grad: Tensor<B::InnerBackend, D>,
        moments: Option<MomentPair<B::InnerBackend, D>>,
    ) -> [Tensor<B::InnerBackend, D>; 3] {
        // The one-pass updates take one learning rate and one clipping factor (a lone trial's).
        let lone = self.per_trial.is_none() && self.clip.is_none_or(|c| c.trials() == 1);
        if lone && self.one_pass != OnePass::None {
            let factor = self.clip.map(|c| c.values());
            let scalars = self.update.in_f32();
            return match self.one_pass {
                OnePass::Cpu => {
                    crate::ops::adamw::cpu::update(param, grad, moments, factor, scalars)
                }
                #[cfg(feature = "cuda")]
                OnePass::Cuda => {
                    crate::ops::adamw::cuda::update(param, grad, moments, factor, scalars)
                }
                _ => unreachable!("{:?} is not a one-pass update in this build", self.one_pass),
            };
        }
        let grad = match self.clip {
            Some(clip) => grad * clip.shaped::<D>(),
            None => grad,
        };
        let (updated, first, second) = self.update.apply(param, grad, moments, self.per_trial);
        [updated, first, second]
    }
}

impl<B: AutodiffBackend> ModuleMapper<B> for Mapper<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let moments = self.moments.remove(&id).map(|m| {
            (
                Tensor::from_primitive(m.first),
                Tensor::from_primitive(m.second),
            )
        });
        let require_grad = tensor.is_require_grad();
        let [updated, first, second] = self.update(tensor.inner(), grad, moments);
        self.moments.insert(
            id,
            Moments {
                first: first.into_primitive(),
                second: second.into_primitive(),
            },
        );
        let mut updated = Tensor::from_inner(updated);
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::train::clipping::tests::tiny_mlp;
    use crate::train::clipping::{clip_global_norm, global_norm_scale, NormReduction};
    use burn::backend::{Autodiff, NdArray};
    use burn::module::ModuleVisitor;
    use burn::optim::{AdamWConfig as BurnAdamW, Optimizer};

    type B = Autodiff<NdArray<f32>>;

    /// Every parameter's values, in visiting order (also used by `ops::adamw::cuda`'s GPU test).
    pub(crate) fn parameters<Bk: AutodiffBackend>(model: &Model<Bk>) -> Vec<Vec<f32>> {
        struct Collect(Vec<Vec<f32>>);
        impl<Bk: AutodiffBackend> ModuleVisitor<Bk> for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
                self.0
                    .push(param.val().into_data().convert::<f32>().to_vec().unwrap());
            }
        }
        let mut c = Collect(Vec::new());
        model.visit(&mut c);
        c.0
    }

    /// Five steps with clipping active (a large input makes large gradients) and weight decay:
    /// the fused optimiser ends where clipping followed by Burn's AdamW ends.
    #[test]
    fn same_parameters_as_clipping_then_burns_adamw() {
        let device = Default::default();
        let (shape, config) = tiny_mlp();
        let start = Model::<B>::init(&config, &shape, &device);
        // Burn initialises parameters lazily, and each clone of an uninitialised parameter
        // draws its own values: read them once so that both copies start equal.
        let initial = parameters(&start);
        let (mut reference, mut fused) = (start.clone(), start.clone());
        let hyper = AdamWConfig {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut burn_adamw = BurnAdamW::new()
            .with_beta_1(hyper.beta1 as f32)
            .with_beta_2(hyper.beta2 as f32)
            .with_epsilon(hyper.eps as f32)
            .with_weight_decay(hyper.weight_decay as f32)
            .init::<B, Model<B>>();
        let mut ours = FusedAdamW::<B>::new(hyper);
        let grads_of = |model: &Model<B>, step: usize| {
            let x =
                Tensor::<B, 2>::ones([4, shape.features()], &device).mul_scalar(3.0 + step as f64);
            GradientsParams::from_grads(model.forward(x).powi_scalar(2).sum().backward(), model)
        };
        for step in 0..5 {
            let lr = 0.01 * (step + 1) as f64;
            let mut grads = grads_of(&reference, step);
            clip_global_norm(&reference, &mut grads, 1.0, NormReduction::PerTensor);
            reference = burn_adamw.step(lr, reference, grads);

            let grads = grads_of(&fused, step);
            let scale = global_norm_scale(&fused, &grads, 1.0, NormReduction::PerTensor);
            assert!(scale.is_some());
            fused = ours.step(lr, fused, grads, scale.as_ref());
        }
        let (want, got) = (parameters(&reference), parameters(&fused));
        assert_eq!(want.len(), 6);
        let moved: f32 = initial
            .iter()
            .flatten()
            .zip(got.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(moved > 0.01, "the parameters barely moved ({moved})");
        for (w, g) in want.iter().zip(&got) {
            for (a, b) in w.iter().zip(g) {
                assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    /// The one-pass update of `Bk` (`ops::adamw::cuda`, `ops::adamw::cpu`) against the tensor-operation
    /// update, step by step, with clipping active (large inputs), weight decay and a changing
    /// learning rate: every parameter within `tolerance` (relative) at every step, so that a
    /// failure names the first step and parameter that differ. Both models start as clones of
    /// one model, which must come out unchanged (the in-place loop copies shared buffers).
    pub(crate) fn one_pass_equals_tensor_ops<Bk: AutodiffBackend>(
        device: &Bk::Device,
        tolerance: f32,
    ) {
        use crate::config::{Activation, InputShape, MlpConfig, ModelConfig};

        let shape = InputShape {
            channels: 1,
            height: 8,
            width: 8,
            classes: 3,
        };
        // Width 32: a `[32, 3]` head, whose rows CubeCL pitches (see `ops::adamw::cuda`).
        let config = ModelConfig::Mlp(MlpConfig {
            width: 32,
            depth: 3,
            activation: Activation::Relu,
            bias: true,
        });
        let start = crate::train::trainer::init_model::<Bk>(&config, &shape, 7, device);
        let initial = parameters(&start);
        let hyper = AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
        };
        let mut tensor_ops = FusedAdamW::<Bk>::new(hyper).with_one_pass(false);
        let mut one_pass = FusedAdamW::<Bk>::new(hyper).with_one_pass(true);
        let (mut a, mut b) = (start.clone(), start.clone());
        for step in 0..6 {
            // Step 3 without clipping: the one-pass path without a factor.
            let clip = step != 3;
            let x =
                Tensor::<Bk, 2>::ones([16, shape.features()], device).mul_scalar(2.0 + step as f64);
            let grads = |m: &Model<Bk>| {
                GradientsParams::from_grads(m.forward(x.clone()).powi_scalar(2).sum().backward(), m)
            };
            let (ga, gb) = (grads(&a), grads(&b));
            let sa = global_norm_scale(&a, &ga, 1.0, NormReduction::Concatenated).filter(|_| clip);
            let sb = global_norm_scale(&b, &gb, 1.0, NormReduction::Concatenated).filter(|_| clip);
            let lr = 1e-2 * (1.0 + step as f64);
            a = tensor_ops.step(lr, a, ga, sa.as_ref());
            b = one_pass.step(lr, b, gb, sb.as_ref());
            for (k, (want, got)) in parameters(&a).iter().zip(&parameters(&b)).enumerate() {
                for (x, y) in want.iter().zip(got) {
                    assert!(
                        (x - y).abs() <= tolerance * x.abs().max(1.0),
                        "step {step}, parameter {k}: {x} (tensor operations) vs {y} (one pass)"
                    );
                }
            }
        }
        let moved = initial
            .iter()
            .flatten()
            .zip(parameters(&b).iter().flatten())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(moved > 0.01, "the parameters barely moved ({moved})");
        assert_eq!(
            parameters(&start),
            initial,
            "the update wrote into a shared buffer"
        );
    }
}
