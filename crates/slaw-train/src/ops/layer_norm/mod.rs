//! LayerNorm over the last axis, as slaw's models call it: Burn's `LayerNorm` module (its
//! parameters, records and initialisation) with, on slaw's f32 CUDA and CPU backends, a forward
//! and a backward pass of slaw's own, as one autodiff node.
//!
//! Burn 0.21 composes LayerNorm from tensor operations: two reductions and ~6 element-wise
//! operations forward; backward, the mean's and variance's gradients are reduced again, and the
//! scale's and shift's are reduced one broadcast axis at a time: ~30 operations per norm. On
//! CUDA each is work for burn-fusion's device thread and the reductions are ~8 kernels per norm
//! (Nsight Compute put the sweep's largest ViT's reductions at 4.8 of its 19.0 ms of GPU time
//! per step, docs/PERFORMANCE.md, eighth session); on the CPU each is a pass over memory into a
//! new allocation. Here the forward is one pass (each row's mean, variance and output; the mean
//! and reciprocal standard deviation are kept for the backward) and the backward is one pass
//! for the input's gradient and one column sum for the scale's and shift's. The arithmetic is
//! the textbook one: `y = (x − μ)·rstd·γ + β`, `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))` with
//! `g = dy·γ`, `dγ = Σ dy·x̂`, `dβ = Σ dy`. Tests compare both passes with Burn's composition
//! (the CPU's where CI runs them, CUDA's on the GPU machine).
//!
//! Other backends, bf16, and `SLAW_LAYER_NORM_KERNEL=0` (for benchmarks) use Burn's module.
//!
//! - [`Passes`]: the two passes of one backend, on its primitive tensors.
//! - `cuda`: the CUDA passes (custom operations of burn-fusion's stream, CubeCL kernels).
//! - `cpu`: the CPU passes (loops over ndarray's buffers, rows on rayon's threads).

#[cfg(feature = "cuda")]
mod cuda;

mod cpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::nn::LayerNorm;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::ops::specialise::{cast, is};

/// The ε of every LayerNorm slaw's models build (`LayerNormConfig`'s default; Burn keeps the
/// module's own private), which the passes here use. A test checks the default has not moved.
const EPSILON: f32 = 1e-5;

/// A backend with LayerNorm passes of its own, over the last axis of tensors of any rank.
trait Passes: Backend {
    /// The output, and each row's mean and reciprocal standard deviation (`[rows]`).
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
    ) -> [FloatTensor<Self>; 3];

    /// The gradients of the input, the scale and (when `has_beta`) the shift.
    fn layer_norm_backward(
        dy: FloatTensor<Self>,
        saved: Saved<Self>,
        has_beta: bool,
    ) -> [Option<FloatTensor<Self>>; 3];
}

/// What the backward needs: the input, the rows' means and reciprocal standard deviations,
/// and the scale.
#[derive(Debug, Clone)]
struct Saved<P: Backend> {
    x: FloatTensor<P>,
    mean: FloatTensor<P>,
    rstd: FloatTensor<P>,
    gamma: FloatTensor<P>,
}

/// `norm` applied to `x` over its last axis: `(x − mean) / √(var + ε) · γ + β`.
pub(crate) fn forward<B: Backend, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    if !enabled() {
        return norm.forward(x);
    }
    #[cfg(feature = "cuda")]
    {
        use crate::ops::foreach::cuda::Cuda;
        if is::<B, Autodiff<Cuda>>() {
            return tracked::<B, Cuda, D>(norm, x);
        }
        if is::<B, Cuda>() {
            return untracked::<B, Cuda, D>(norm, x);
        }
    }
    use crate::ops::cpu::Cpu;
    if is::<B, Autodiff<Cpu>>() {
        return tracked::<B, Cpu, D>(norm, x);
    }
    if is::<B, Cpu>() {
        return untracked::<B, Cpu, D>(norm, x);
    }
    norm.forward(x)
}

/// Whether the passes here are on ([`crate::train::options::TrainerOptions::layer_norm_op`]; the binary
/// switches them off with `SLAW_LAYER_NORM_KERNEL=0`).
fn enabled() -> bool {
    crate::train::options::options().layer_norm_op
}

/// The forward alone, on `P` (which `B` is).
fn untracked<B: Backend, P: Passes, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let prim = |t: Tensor<B, 1>| cast::<_, Tensor<P, 1>>(t).into_primitive().tensor();
    let gamma = prim(norm.gamma.val());
    let beta = norm.beta.as_ref().map(|b| prim(b.val()));
    let x = cast::<_, Tensor<P, D>>(x).into_primitive().tensor();
    let [y, _, _] = P::layer_norm_forward(x, gamma, beta);
    cast(Tensor::<P, D>::from_primitive(TensorPrimitive::Float(y)))
}

/// The forward as one autodiff node, on `Autodiff<P>` (which `B` is).
fn tracked<B: Backend, P: Passes, const D: usize>(
    norm: &LayerNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    type Ad<P> = Autodiff<P>;
    let prim = |t: Tensor<B, 1>| cast::<_, Tensor<Ad<P>, 1>>(t).into_primitive().tensor();
    let gamma = prim(norm.gamma.val());
    let beta = norm.beta.as_ref().map(|b| prim(b.val()));
    let x = cast::<_, Tensor<Ad<P>, D>>(x).into_primitive().tensor();
    let y = match beta {
        Some(beta) => {
            let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
            let kind = <LayerNormBackward as Backward<P, 3>>::prepare::<NoCheckpointing>(
                LayerNormBackward,
                nodes,
            )
            .compute_bound()
            .stateful();
            node(kind, x.primitive, gamma.primitive, Some(beta.primitive))
        }
        None => {
            let nodes = [x.node.clone(), gamma.node.clone()];
            let kind = <LayerNormBackward as Backward<P, 2>>::prepare::<NoCheckpointing>(
                LayerNormBackward,
                nodes,
            )
            .compute_bound()
            .stateful();
            node(kind, x.primitive, gamma.primitive, None)
        }
    };
    cast(Tensor::<Ad<P>, D>::from_primitive(TensorPrimitive::Float(
        y,
    )))
}

/// The autodiff node: parents `x`, `γ` and, when `N` is 3, `β`.
#[derive(Debug)]
struct LayerNormBackward;

impl<P: Passes, const N: usize> Backward<P, N> for LayerNormBackward {
    type State = Saved<P>;

    fn backward(self, ops: Ops<Saved<P>, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<P>(&ops.node);
        let of_parents = P::layer_norm_backward(dy, ops.state, N == 3);
        for (parent, grad) in ops.parents.iter().zip(of_parents) {
            if let (Some(parent), Some(grad)) = (parent, grad) {
                grads.register::<P>(parent.id, grad);
            }
        }
    }
}

/// The forward of a node with `N` parents (3 with a shift, 2 without); the state is kept only
/// when something upstream needs a gradient.
fn node<P: Passes, const N: usize>(
    kind: OpsKind<LayerNormBackward, P, Saved<P>, NoCheckpointing, N>,
    x: FloatTensor<P>,
    gamma: FloatTensor<P>,
    beta: Option<FloatTensor<P>>,
) -> FloatTensor<Autodiff<P>> {
    match kind {
        OpsKind::Tracked(prep) => {
            let [y, mean, rstd] = P::layer_norm_forward(x.clone(), gamma.clone(), beta);
            let saved = Saved {
                x,
                mean,
                rstd,
                gamma,
            };
            prep.finish(saved, y)
        }
        OpsKind::UnTracked(prep) => {
            let [y, _, _] = P::layer_norm_forward(x, gamma, beta);
            prep.finish(y)
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::module::Param;
    use burn::nn::LayerNormConfig;
    use burn::tensor::backend::Backend;
    use burn::tensor::{Distribution, Tensor};

    #[test]
    fn the_kernels_epsilon_is_the_modules_default() {
        let config = LayerNormConfig::new(8);
        assert!((config.epsilon - f64::from(super::EPSILON)).abs() < 1e-12);
    }

    /// The output and the gradients of the input, scale and shift through
    /// [`super::forward`], and through Burn's module, for the same input and upstream
    /// gradient: `[ours, Burn's, the f64 reference]` (the reference empty for a transposed
    /// input), each `[y, dx, dγ, dβ]` flattened.
    fn ours_and_burns<B: burn::tensor::backend::AutodiffBackend>(
        dims: [usize; 4],
        transposed: bool,
        bias: bool,
        device: &B::Device,
    ) -> [[Vec<f32>; 4]; 3] {
        let width = if transposed { dims[2] } else { dims[3] };
        let mut norm = LayerNormConfig::new(width)
            .with_bias(bias)
            .init::<B>(device);
        // Scale and shift away from 1 and 0, so that their use is checked.
        let param = |d| Param::from_tensor(Tensor::<B, 1>::random([width], d, device));
        norm.gamma = param(Distribution::Uniform(0.5, 1.5));
        if bias {
            norm.beta = Some(param(Distribution::Normal(0.0, 1.0)));
        }
        let x0 = Tensor::<B, 4>::random(dims, Distribution::Normal(0.5, 2.0), device);
        let up = || {
            let x = x0.clone().detach().require_grad();
            let input = if transposed {
                x.clone().swap_dims(2, 3)
            } else {
                x.clone()
            };
            (x, input)
        };
        let weights = Tensor::<B, 4>::random(up().1.dims(), Distribution::Normal(0.0, 1.0), device);
        let run = |ours: bool| -> [Vec<f32>; 4] {
            let (x, input) = up();
            let y = if ours {
                super::forward(&norm, input)
            } else {
                norm.forward(input)
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let flat = |t: Tensor<B::InnerBackend, 1>| {
                t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
            };
            let n = |t: Tensor<B::InnerBackend, 4>| {
                let count = t.shape().num_elements();
                flat(t.reshape([count]))
            };
            [
                n(y.inner()),
                n(x.grad(&grads).expect("x has a gradient")),
                flat(norm.gamma.grad(&grads).expect("γ has a gradient")),
                norm.beta
                    .as_ref()
                    .map(|b| flat(b.grad(&grads).expect("β has a gradient")))
                    .unwrap_or_default(),
            ]
        };
        let data = |t: Tensor<B, 4>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        let reference = (!transposed).then(|| {
            let beta = norm
                .beta
                .as_ref()
                .map(|b| data(b.val().reshape([1, 1, 1, width])));
            reference(
                &data(x0.clone()),
                &data(norm.gamma.val().reshape([1, 1, 1, width])),
                beta.as_deref(),
                &data(weights.clone()),
                width,
            )
        });
        [run(true), run(false), reference.unwrap_or_default()]
    }

    /// The textbook LayerNorm and its gradients in f64 on the host, for rows of `width` of `x`
    /// and the upstream gradient `dy`: `[y, dx, dγ, dβ]` (`dβ` empty without a shift).
    fn reference(
        x: &[f32],
        gamma: &[f32],
        beta: Option<&[f32]>,
        dy: &[f32],
        width: usize,
    ) -> [Vec<f32>; 4] {
        let w = width as f64;
        let (mut y, mut dx) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        let (mut dgamma, mut dbeta) = (vec![0f64; width], vec![0f64; width]);
        for r in 0..x.len() / width {
            let row: Vec<f64> = x[r * width..(r + 1) * width]
                .iter()
                .map(|&v| v.into())
                .collect();
            let d: Vec<f64> = dy[r * width..(r + 1) * width]
                .iter()
                .map(|&v| v.into())
                .collect();
            let mu = row.iter().sum::<f64>() / w;
            let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / w;
            let rstd = 1.0 / (var + f64::from(super::EPSILON)).sqrt();
            let xhat: Vec<f64> = row.iter().map(|v| (v - mu) * rstd).collect();
            let g: Vec<f64> = (0..width).map(|j| d[j] * f64::from(gamma[j])).collect();
            let mean_g = g.iter().sum::<f64>() / w;
            let mean_gx = (0..width).map(|j| g[j] * xhat[j]).sum::<f64>() / w;
            for j in 0..width {
                let shift = beta.map_or(0.0, |b| f64::from(b[j]));
                y[r * width + j] = (xhat[j] * f64::from(gamma[j]) + shift) as f32;
                dx[r * width + j] = (rstd * (g[j] - mean_g - xhat[j] * mean_gx)) as f32;
                dgamma[j] += d[j] * xhat[j];
                dbeta[j] += d[j];
            }
        }
        let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
        [
            y,
            dx,
            f32s(dgamma),
            if beta.is_some() {
                f32s(dbeta)
            } else {
                Vec::new()
            },
        ]
    }

    /// `a` equals `b` within `tol` times `b`'s largest magnitude, element by element.
    fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * scale && x.is_finite(),
                "{what}[{i}]: {x} against {y} (scale {scale})"
            );
        }
    }

    /// Ours against the f64 reference within `tol`, and against Burn's composition within
    /// `tol_burn` (Burn's own f32 rounding is the larger: 2·10⁻⁴ of the scale on the CPU).
    fn check<B: burn::tensor::backend::AutodiffBackend>(
        device: &B::Device,
        tol: f32,
        tol_burn: f32,
    ) {
        // The sweep's ViT rows; a transposed input (the attention's query norm); no shift; a
        // width not a multiple of 4 (pitched rows); more rows than one grid axis holds.
        let cases = [
            ([4, 2, 49, 256], false, true),
            ([2, 4, 32, 17], true, true),
            ([3, 5, 7, 64], false, false),
            ([2, 3, 10, 6], false, true),
            ([1, 2, 150_000, 3], false, true),
            ([2, 1, 5, 1000], false, true),
        ];
        for (dims, transposed, bias) in cases {
            let [ours, burns, reference] = ours_and_burns::<B>(dims, transposed, bias, device);
            for (k, what) in ["y", "dx", "dgamma", "dbeta"].iter().enumerate() {
                let what = format!("{dims:?} {what}");
                if !transposed {
                    assert_close(&format!("{what}, f64"), &ours[k], &reference[k], tol);
                }
                assert_close(&format!("{what}, Burn's"), &ours[k], &burns[k], tol_burn);
            }
        }
    }

    #[test]
    fn the_cpu_passes_equal_burns_layer_norm() {
        check::<Autodiff<crate::ops::cpu::Cpu>>(&Default::default(), 5e-5, 5e-4);
        untracked_check::<crate::ops::cpu::Cpu>(&Default::default(), 5e-5);
    }

    /// Other backends (here ndarray with i32 indices, a type of its own) use Burn's module
    /// itself. (Not f64: Burn 0.21 keeps one float type per ndarray device and process, and
    /// the tests share the process.)
    #[test]
    fn other_backends_use_burns_layer_norm() {
        type B = Autodiff<burn::backend::NdArray<f32, i32>>;
        let device = Default::default();
        let [ours, burns, _] = ours_and_burns::<B>([2, 3, 4, 8], true, true, &device);
        assert_eq!(ours, burns);
    }

    /// The forward without autodiff (validation) against Burn's module.
    fn untracked_check<B: Backend>(device: &B::Device, tol: f32) {
        let norm = LayerNormConfig::new(96).init::<B>(device);
        let x = Tensor::<B, 3>::random([8, 49, 96], Distribution::Normal(0.0, 3.0), device);
        let ours = super::forward(&norm, x.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let burns = norm.forward(x).into_data().to_vec::<f32>().unwrap();
        assert_close("forward without autodiff", &ours, &burns, tol);
    }

    /// The kernels against Burn's composition on the GPU (run by bench/gpu_tests.sh).
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn kernels_equal_burns_layer_norm_on_cuda() {
        type C = Autodiff<burn::backend::Cuda<f32, i32>>;
        let device = burn::backend::cuda::CudaDevice::new(0);
        check::<C>(&device, 5e-5, 5e-4);
        untracked_check::<burn::backend::Cuda<f32, i32>>(&device, 2e-4);
    }
}
