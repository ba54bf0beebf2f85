//! Softmax over the last axis of scaled scores, `softmax(scale·x)`, as the attention calls it:
//! on slaw's f32 CUDA and CPU backends one forward and one backward pass of slaw's own, as one
//! autodiff node (the attention's `1/√head_width` taken into the passes rather than an
//! element-wise operation of its own each way).
//!
//! Burn 0.21 composes softmax from tensor operations: the row's maximum, the exponentials, the
//! row's sum and the division forward, and backward the gradients of those (two more reductions,
//! ~10 operations). Here the forward is one pass per row (`y = exp(s − max) / Σ exp(s − max)`
//! with `s = scale·x`) and the backward one (`dx = scale·y·(dy − Σ y·dy)`), keeping only the
//! output for the backward.
//! Tests compare both with Burn's composition and an f64 reference.
//!
//! Other backends, bf16, and `SLAW_SOFTMAX_KERNEL=0` (for benchmarks) use Burn's composition.
//!
//! - [`Passes`]: the two passes of one backend, on its primitive tensors.
//! - `cuda`: one CubeCL kernel per pass, one warp per row, as custom operations.
//! - `cpu`: loops over ndarray's buffers, rows on rayon's threads.

#[cfg(feature = "cuda")]
mod cuda;

mod cpu;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorPrimitive};

use crate::ops::specialise::{cast, is};

/// A backend with softmax passes of its own, over the last axis of tensors of any rank.
trait Passes: Backend {
    /// `exp(s − max) / Σ exp(s − max)` by row, `s = scale·x`.
    fn softmax_forward(x: FloatTensor<Self>, scale: f32) -> FloatTensor<Self>;
    /// `scale·y·(dy − Σ y·dy)` by row, from the forward's output `y`.
    fn softmax_backward(
        y: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self>;
}

/// Softmax of `scale·x` over its last axis.
pub(crate) fn last_axis<B: Backend, const D: usize>(x: Tensor<B, D>, scale: f32) -> Tensor<B, D> {
    if !enabled() {
        return burns(x, scale);
    }
    #[cfg(feature = "cuda")]
    {
        use crate::ops::foreach::cuda::Cuda;
        if is::<B, Autodiff<Cuda>>() {
            return tracked::<B, Cuda, D>(x, scale);
        }
        if is::<B, Cuda>() {
            return untracked::<B, Cuda, D>(x, scale);
        }
    }
    use crate::ops::cpu::Cpu;
    if is::<B, Autodiff<Cpu>>() {
        return tracked::<B, Cpu, D>(x, scale);
    }
    if is::<B, Cpu>() {
        return untracked::<B, Cpu, D>(x, scale);
    }
    burns(x, scale)
}

/// [`last_axis`] as Burn's tensor operations.
fn burns<B: Backend, const D: usize>(x: Tensor<B, D>, scale: f32) -> Tensor<B, D> {
    if scale == 1.0 {
        softmax(x, D - 1)
    } else {
        softmax(x.mul_scalar(scale), D - 1)
    }
}

/// Whether the passes here are on ([`crate::train::options::TrainerOptions::softmax_op`]; the binary
/// switches them off with `SLAW_SOFTMAX_KERNEL=0`).
fn enabled() -> bool {
    crate::train::options::options().softmax_op
}

fn untracked<B: Backend, P: Passes, const D: usize>(x: Tensor<B, D>, scale: f32) -> Tensor<B, D> {
    let x = cast::<_, Tensor<P, D>>(x).into_primitive().tensor();
    let y = P::softmax_forward(x, scale);
    cast(Tensor::<P, D>::from_primitive(TensorPrimitive::Float(y)))
}

fn tracked<B: Backend, P: Passes, const D: usize>(x: Tensor<B, D>, scale: f32) -> Tensor<B, D> {
    let x = cast::<_, Tensor<Autodiff<P>, D>>(x)
        .into_primitive()
        .tensor();
    let kind = <SoftmaxBackward as Backward<P, 1>>::prepare::<NoCheckpointing>(
        SoftmaxBackward,
        [x.node.clone()],
    )
    .compute_bound()
    .stateful();
    let y = match kind {
        OpsKind::Tracked(prep) => {
            let y = P::softmax_forward(x.primitive, scale);
            prep.finish((y.clone(), scale), y)
        }
        OpsKind::UnTracked(prep) => prep.finish(P::softmax_forward(x.primitive, scale)),
    };
    cast(Tensor::<Autodiff<P>, D>::from_primitive(
        TensorPrimitive::Float(y),
    ))
}

/// The autodiff node; its state is the output and the scale.
#[derive(Debug)]
struct SoftmaxBackward;

impl<P: Passes> Backward<P, 1> for SoftmaxBackward {
    type State = (FloatTensor<P>, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<P>(&ops.node);
        if let Some(parent) = &ops.parents[0] {
            let (y, scale) = ops.state;
            grads.register::<P>(parent.id, P::softmax_backward(y, dy, scale));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::tensor::activation::softmax;
    use burn::tensor::backend::{AutodiffBackend, Backend};
    use burn::tensor::{Distribution, Tensor};

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
    }

    /// Output and input gradient of the softmax of `scale·x` through [`super::last_axis`] and
    /// through Burn's softmax, and the f64 reference (empty for a transposed input):
    /// `[ours, Burn's, reference]`.
    fn ours_burns_reference<B: AutodiffBackend>(
        dims: [usize; 4],
        transposed: bool,
        scale: f32,
        device: &B::Device,
    ) -> [[Vec<f32>; 2]; 3] {
        let x0 = Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 3.0), device);
        // A masked key, as the prefix attention adds: a large negative score.
        let x0 = x0.slice_assign(
            [0..1, 0..1, 0..1, 0..1],
            Tensor::full([1, 1, 1, 1], -1e9, device),
        );
        let input = |x: Tensor<B, 4>| if transposed { x.swap_dims(2, 3) } else { x };
        let dy = Tensor::<B, 4>::random(
            input(x0.clone()).dims(),
            Distribution::Normal(0.0, 1.0),
            device,
        );
        let run = |ours: bool| -> [Vec<f32>; 2] {
            let x = x0.clone().detach().require_grad();
            let y = if ours {
                super::last_axis(input(x.clone()), scale)
            } else {
                softmax(input(x.clone()).mul_scalar(scale), 3)
            };
            let grads = (y.clone() * dy.clone()).sum().backward();
            [
                values(y.inner()),
                values(x.grad(&grads).expect("x has a gradient")),
            ]
        };
        let reference = if transposed {
            Default::default()
        } else {
            reference(&values(x0.clone()), &values(dy.clone()), dims[3], scale)
        };
        [run(true), run(false), reference]
    }

    /// The softmax of `scale·x` and its input gradient in f64 on the host, rows of `width`.
    fn reference(x: &[f32], dy: &[f32], width: usize, scale: f32) -> [Vec<f32>; 2] {
        let (mut y, mut dx) = (Vec::new(), Vec::new());
        let scale = f64::from(scale);
        for (row, d) in x.chunks(width).zip(dy.chunks(width)) {
            let row: Vec<f64> = row.iter().map(|&v| scale * f64::from(v)).collect();
            let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
            let e: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let p: Vec<f64> = e.iter().map(|v| v / sum).collect();
            let dot: f64 = p.iter().zip(d).map(|(p, &d)| p * f64::from(d)).sum();
            y.extend(p.iter().map(|&v| v as f32));
            dx.extend(
                p.iter()
                    .zip(d)
                    .map(|(p, &d)| (scale * p * (f64::from(d) - dot)) as f32),
            );
        }
        [y, dx]
    }

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

    fn check<B: AutodiffBackend>(device: &B::Device) {
        // Ours against f64 within 10⁻⁵ of the scale; Burn's composition is further from f64 (up
        // to ~6·10⁻⁴ of the scale on the CPU), hence the looser bound against it.
        // The sweep's attention rows (49 keys), medium's (64), a transposed input, a width past
        // one warp's lanes several times, more rows than one grid axis holds.
        // Scales: the attention's 1/√32 and 1/√64, 1, and one above 1.
        let cases = [
            ([4, 8, 49, 49], false, 32f32.sqrt().recip()),
            ([2, 6, 64, 64], false, 1.0),
            ([2, 3, 17, 5], true, 0.125),
            ([1, 2, 3, 1000], false, 1.0),
            ([1, 1, 300_000, 3], false, 2.5),
        ];
        for (dims, transposed, scale) in cases {
            let [ours, burns, reference] =
                ours_burns_reference::<B>(dims, transposed, scale, device);
            for (k, what) in ["y", "dx"].iter().enumerate() {
                let what = format!("{dims:?} {what}");
                if !transposed {
                    assert_close(&format!("{what}, f64"), &ours[k], &reference[k], 1e-5);
                }
                assert_close(&format!("{what}, Burn's"), &ours[k], &burns[k], 2e-3);
            }
        }
    }

    #[test]
    fn the_cpu_passes_equal_burns_softmax() {
        check::<Autodiff<crate::ops::cpu::Cpu>>(&Default::default());
        let device = Default::default();
        let x =
            Tensor::<crate::ops::cpu::Cpu, 3>::random([4, 7, 33], Distribution::Default, &device);
        assert_close(
            "without autodiff",
            &values(super::last_axis(x.clone(), 1.0)),
            &values(softmax(x, 2)),
            1e-6,
        );
    }

    /// On the GPU (run by bench/gpu_tests.sh).
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn kernels_equal_burns_softmax_on_cuda() {
        type C = burn::backend::Cuda<f32, i32>;
        let device = burn::backend::cuda::CudaDevice::new(0);
        check::<Autodiff<C>>(&device);
        let x = Tensor::<C, 3>::random([4, 7, 33], Distribution::Default, &device);
        assert_close(
            "without autodiff",
            &values(super::last_axis(x.clone(), 1.0)),
            &values(softmax(x, 2)),
            1e-6,
        );
    }
}
