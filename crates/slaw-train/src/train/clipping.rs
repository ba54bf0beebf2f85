//! Gradient clipping, applied between the backward pass and the optimiser step, entirely on the
//! device (nothing is read back):
//!
//! - **global-norm clipping**: every gradient is scaled so that their joint L2 norm is at most
//!   a threshold;
//! - **adaptive gradient clipping** (AGC, Brock et al. 2021, the NFNet paper): each unit's
//!   gradient `G_i` is rescaled to `λ · max(‖W_i‖, ε) / ‖G_i‖ · G_i` when
//!   `‖G_i‖ / max(‖W_i‖, ε) > λ`. A unit is one output row of a layer: for Burn's layouts the
//!   norm runs over every axis but the first of a convolution kernel `[out, in, kh, kw]`, over
//!   the input axis of a linear weight `[in, out]`, and element-wise for vectors (biases,
//!   gains). The final classifier is excluded, as in NFNet.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

use crate::models::Model;
use crate::train::per_trial::PerTrial;

/// AGC's floor on the weight norm (NFNet's ε), so that zero-initialised parameters can move.
pub const AGC_EPS: f64 = 1e-3;

/// How [`clip_global_norm`] sums the squares of the gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormReduction {
    /// One square-and-sum of Burn's per gradient tensor, added up: no copies, but a temporary
    /// and two operations per tensor. No backend of slaw's takes it any more (the f32 CPU
    /// backend's one-pass sum under `Concatenated` is faster); kept for other backends.
    PerTensor,
    /// All gradients at once ([`crate::ops::foreach::sum_of_squares`]: a multi-tensor kernel on
    /// the f32 CUDA backend, one pass over each tensor where it lies on the f32 CPU backend, one
    /// reduction over the concatenated gradients elsewhere).
    Concatenated,
}

/// The factor `min(1, max_norm / ‖g‖)` of global-norm clipping, on the device, one per trial
/// of a stack (one for a lone trial), shaped for every rank so that applying it to a gradient
/// is a single multiplication, which burn-fusion can fuse into whatever consumes the gradient
/// next (the optimiser's update, [`crate::train::adamw::FusedAdamW`]).
pub type ClipScale<B> = PerTrial<B>;

/// Multiplies every parameter's gradient by the clipping factor.
struct GradScale<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    scale: &'a ClipScale<B::InnerBackend>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradScale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let scaled = g * self.scale.shaped::<D>();
            self.grads.register::<B::InnerBackend, D>(param.id, scaled);
        }
    }
}

/// The factor that scales the gradients to a global L2 norm of at most `max_norm`, computed
/// without reading anything back from the device; `None` when no parameter has a gradient.
/// Burn has no multi-tensor kernels; `how` picks the reduction that suits the backend.
pub fn global_norm_scale<B: AutodiffBackend>(
    model: &Model<B>,
    grads: &GradientsParams,
    max_norm: f64,
    how: NormReduction,
) -> Option<ClipScale<B::InnerBackend>> {
    stacked_norm_scale(model, grads, 1, max_norm, how)
}

/// Collects every gradient of a stack as `[trials, n]`, or the sum of its squares by trial.
struct TrialSquares<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    trials: usize,
    how: NormReduction,
    parts: Vec<Tensor<B::InnerBackend, 2>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for TrialSquares<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let per_trial = g.shape().num_elements() / self.trials;
            let rows = g.reshape([self.trials, per_trial]);
            self.parts.push(match self.how {
                NormReduction::PerTensor => rows.square().sum_dim(1),
                NormReduction::Concatenated => rows,
            });
        }
    }
}

/// Global-norm clipping of each trial of a stack on its own ([`crate::models::stacked`]): the factor
/// `min(1, max_norm / ‖g_i‖)` of trial `i`, where `g_i` is every gradient's slice `i` along its
/// first (trial) axis. `None` when no parameter has a gradient.
pub fn stacked_norm_scale<B: AutodiffBackend, M: Module<B>>(
    model: &M,
    grads: &GradientsParams,
    trials: usize,
    max_norm: f64,
    how: NormReduction,
) -> Option<ClipScale<B::InnerBackend>> {
    let mut squares = TrialSquares::<B> {
        grads,
        trials,
        how,
        parts: Vec::new(),
    };
    model.visit(&mut squares);
    let parts = squares.parts;
    let total = match how {
        NormReduction::PerTensor => parts
            .into_iter()
            .reduce(|a, b| a + b)
            .map(|t| t.reshape([trials])),
        NormReduction::Concatenated => crate::ops::foreach::sum_of_squares_by_row(parts),
    }?;
    let factor = total
        .sqrt()
        .clamp_min(max_norm)
        .recip()
        .mul_scalar(max_norm);
    Some(ClipScale::new(factor))
}

/// Scales the gradients so that their global L2 norm is at most `max_norm` (for optimisers
/// that do not take a [`ClipScale`] themselves).
pub fn clip_global_norm<B: AutodiffBackend>(
    model: &Model<B>,
    grads: &mut GradientsParams,
    max_norm: f64,
    how: NormReduction,
) {
    // No parameter has a gradient: nothing to clip.
    if let Some(scale) = global_norm_scale(model, grads, max_norm, how) {
        scale_gradients(model, grads, &scale);
    }
}

/// Multiplies every gradient of `model`'s parameters by the clipping factor.
pub fn scale_gradients<B: AutodiffBackend>(
    model: &Model<B>,
    grads: &mut GradientsParams,
    scale: &ClipScale<B::InnerBackend>,
) {
    model.visit(&mut GradScale::<B> { grads, scale });
}

/// The unit-wise L2 norms of a parameter or gradient, shaped to broadcast against it: over
/// dimensions `1..` of a 4-D kernel (and of 3-D tensors), over dimension 0 of a 2-D linear
/// weight, and the absolute value of a vector.
pub fn unitwise_norm<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    match D {
        0 | 1 => t.abs(),
        2 => t.square().sum_dim(0).sqrt(),
        _ => {
            let dims: Vec<usize> = (1..D).collect();
            t.square().sum_dims(&dims).sqrt()
        }
    }
}

/// One parameter's gradient after AGC with threshold `clip`.
pub fn adaptive_clip_tensor<B: Backend, const D: usize>(
    weight: Tensor<B, D>,
    grad: Tensor<B, D>,
    clip: f64,
) -> Tensor<B, D> {
    let max_norm = unitwise_norm(weight).clamp_min(AGC_EPS).mul_scalar(clip);
    let grad_norm = unitwise_norm(grad.clone()).clamp_min(1e-6);
    // min(1, max_norm / ‖G‖): 1 leaves a unit alone, less scales it down to the bound.
    let factor = (max_norm / grad_norm).clamp_max(1.0);
    grad * factor
}

/// Applies AGC to every parameter of `model` except `skip` (the classifier).
struct AdaptiveClip<'a> {
    grads: &'a mut GradientsParams,
    clip: f64,
    skip: &'a [ParamId],
}

impl<B: AutodiffBackend> ModuleVisitor<B> for AdaptiveClip<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.skip.contains(&param.id) {
            return;
        }
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            let w = param.val().inner();
            let clipped = adaptive_clip_tensor(w, g, self.clip);
            self.grads.register::<B::InnerBackend, D>(param.id, clipped);
        }
    }
}

/// Adaptive gradient clipping of every parameter but the model's head.
pub fn adaptive_clip<B: AutodiffBackend>(model: &Model<B>, grads: &mut GradientsParams, clip: f64)
where
    Model<B>: AutodiffModule<B>,
{
    let skip = model.head_param_ids();
    model.visit(&mut AdaptiveClip {
        grads,
        clip,
        skip: &skip,
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{Activation, InputShape, MlpConfig, ModelConfig};
    use burn::backend::{Autodiff, NdArray};
    use burn::module::Module;
    use burn::tensor::TensorData;

    type Inner = NdArray<f32>;

    fn t2(v: Vec<f32>, shape: [usize; 2]) -> Tensor<Inner, 2> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    fn values<const D: usize>(t: Tensor<Inner, D>) -> Vec<f32> {
        t.into_data().to_vec().unwrap()
    }

    /// A linear weight `[in = 2, out = 2]`: unit 0 is the column (3, 4) with norm 5, unit 1
    /// the column (0, 0), whose norm is floored at ε = 1e-3.
    #[test]
    fn agc_matches_hand_values_on_a_linear_weight() {
        let w = t2(vec![3., 0., 4., 0.], [2, 2]);
        assert_eq!(values(unitwise_norm(w.clone())), vec![5., 0.]);
        // Gradient columns (6, 8) (norm 10) and (0.003, 0.004) (norm 0.005).
        let g = t2(vec![6., 0.003, 8., 0.004], [2, 2]);
        // λ = 0.1: unit 0 may have norm 0.5 → scaled by 0.05 to (0.3, 0.4); unit 1 may have
        // 0.1 · 1e-3 = 1e-4 → scaled by 0.02 to (6e-5, 8e-5).
        let out = values(adaptive_clip_tensor(w.clone(), g.clone(), 0.1));
        let want = [0.3, 6e-5, 0.4, 8e-5];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-7, "{out:?}");
        }
        // λ = 10: unit 0 may have norm 50, so it is left alone; unit 1 is bound at 0.01 and
        // its gradient (norm 0.005) is left alone too.
        assert_eq!(values(adaptive_clip_tensor(w, g.clone(), 10.0)), values(g));
    }

    /// A kernel `[out = 2, in = 1, 1, 2]`: units are output filters; vectors clip element-wise.
    #[test]
    fn agc_units_of_kernels_and_vectors() {
        let device = Default::default();
        let w = Tensor::<Inner, 4>::from_data(
            TensorData::new(vec![1f32, 0., 0., 2.], [2, 1, 1, 2]),
            &device,
        );
        let g = Tensor::<Inner, 4>::from_data(
            TensorData::new(vec![0f32, 1., 0.1, 0.], [2, 1, 1, 2]),
            &device,
        );
        // ‖W_0‖ = 1, ‖G_0‖ = 1 → bound 0.5 at λ = 0.5 → G_0 halves; ‖W_1‖ = 2, ‖G_1‖ = 0.1 → kept.
        let out: Vec<f32> = adaptive_clip_tensor(w, g, 0.5)
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(out, vec![0., 0.5, 0.1, 0.]);
        let b = Tensor::<Inner, 1>::from_data(TensorData::new(vec![2f32, -0.5], [2]), &device);
        let gb = Tensor::<Inner, 1>::from_data(TensorData::new(vec![-4f32, 0.01], [2]), &device);
        // |b| = (2, 0.5), λ = 1: −4 is cut to −2, 0.01 is kept.
        let out: Vec<f32> = adaptive_clip_tensor(b, gb, 1.0)
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(out, vec![-2., 0.01]);
    }

    /// A 2-layer MLP of width 8 on 4×4 single-channel inputs with 3 classes (6 parameters),
    /// for tests of clipping and optimisers.
    pub(crate) fn tiny_mlp() -> (InputShape, ModelConfig) {
        let shape = InputShape {
            channels: 1,
            height: 4,
            width: 4,
            classes: 3,
        };
        let config = ModelConfig::Mlp(MlpConfig {
            width: 8,
            depth: 2,
            activation: Activation::Relu,
            bias: true,
        });
        (shape, config)
    }

    /// Through a model: the head's gradient is untouched, every other unit obeys the bound.
    #[test]
    fn agc_on_a_model_spares_the_head() {
        type B = Autodiff<NdArray<f32>>;
        let device = Default::default();
        let (shape, config) = tiny_mlp();
        let model = Model::<B>::init(&config, &shape, &device);
        let grads_of = || {
            let x = Tensor::<B, 2>::ones([4, 16], &device).mul_scalar(100.0);
            GradientsParams::from_grads(model.forward(x).powi_scalar(2).sum().backward(), &model)
        };
        let grads = grads_of();
        let head = model.head_param_ids();
        assert_eq!(head.len(), 2);
        let mut clipped = grads_of();
        adaptive_clip(&model, &mut clipped, 0.01);
        struct Check<'a> {
            before: &'a GradientsParams,
            after: &'a GradientsParams,
            head: &'a [ParamId],
            checked: usize,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Check<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let before = self.before.get::<B::InnerBackend, D>(param.id).unwrap();
                let after = self.after.get::<B::InnerBackend, D>(param.id).unwrap();
                if self.head.contains(&param.id) {
                    assert_eq!(before.into_data(), after.into_data());
                } else {
                    let bound = unitwise_norm(param.val().inner())
                        .clamp_min(AGC_EPS)
                        .mul_scalar(0.01);
                    let excess: Vec<f32> = (unitwise_norm(after) - bound.mul_scalar(1.0001))
                        .max()
                        .into_data()
                        .convert::<f32>()
                        .to_vec()
                        .unwrap();
                    let excess = excess[0];
                    assert!(excess <= 0.0, "a unit exceeds its bound by {excess}");
                }
                self.checked += 1;
            }
        }
        let mut check = Check {
            before: &grads,
            after: &clipped,
            head: &head,
            checked: 0,
        };
        model.visit(&mut check);
        assert_eq!(check.checked, 6);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        type B = Autodiff<NdArray<f32>>;
        let device = Default::default();
        let (shape, config) = tiny_mlp();
        let model = Model::<B>::init(&config, &shape, &device);
        let grads_of = || {
            let x = Tensor::<B, 2>::ones([4, shape.features()], &device).mul_scalar(10.0);
            GradientsParams::from_grads(model.forward(x).powi_scalar(2).sum().backward(), &model)
        };
        // Computed on the host, tensor by tensor, independently of the clipping code.
        struct HostSquares<'a> {
            grads: &'a GradientsParams,
            total: f64,
            tensors: usize,
        }
        impl ModuleVisitor<B> for HostSquares<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                if let Some(g) = self.grads.get::<Inner, D>(param.id) {
                    let v: Vec<f32> = g.into_data().to_vec().unwrap();
                    self.total += v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
                    self.tensors += 1;
                }
            }
        }
        let norm = |grads: &GradientsParams| {
            let mut sq = HostSquares {
                grads,
                total: 0.0,
                tensors: 0,
            };
            model.visit(&mut sq);
            assert!(sq.tensors >= 4, "{} gradients", sq.tensors);
            sq.total.sqrt()
        };
        let before = norm(&grads_of());
        assert!(before > 0.5, "{before}");
        for how in [NormReduction::PerTensor, NormReduction::Concatenated] {
            let mut grads = grads_of();
            assert!((norm(&grads) - before).abs() < 1e-6 * before, "{how:?}");
            clip_global_norm(&model, &mut grads, 0.5, how);
            let after = norm(&grads);
            assert!((after - 0.5).abs() < 1e-3, "{how:?}: {after}");
            // A norm already below the threshold is left alone.
            clip_global_norm(&model, &mut grads, 10.0, how);
            assert!((norm(&grads) - 0.5).abs() < 1e-3, "{how:?}");
        }
    }
}
