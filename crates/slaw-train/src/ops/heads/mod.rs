//! The attention's head layout: the fused query–key–value projection `[batch, tokens,
//! 3·width]` split into queries, keys and values `[batch, heads, tokens, head_width]`, and the
//! heads' outputs merged back into `[batch, tokens, width]`; on slaw's f32 CUDA and CPU backends
//! as passes of slaw's own.
//!
//! Burn 0.21 composes the split from `chunk` (three slices) and a transposed view of each slice,
//! which the next operation copies: forward three copies; backward three more, and for the
//! slices three zero tensors of the projection's size, three `slice_assign`s into them and two
//! additions of that size. Here the split writes the three tensors in one operation forward, and
//! backward writes the projection's gradient from the three gradients in one pass. The merge is
//! a permutation both ways, one pass each. Both are pure copies: tests require equality with
//! Burn's composition, forward and backward.
//!
//! The split's outputs are three autodiff nodes over the projection. The keys' and the values'
//! nodes do nothing backward; the queries' node collects all three gradients and registers the
//! projection's once. That works because Burn runs the backward of every node after those of all
//! nodes that consume it (its tape runs by decreasing depth, and a consumer is deeper than what it
//! consumes), so the keys' and the values' gradients are complete when the three nodes' turn
//! comes. The three outputs must therefore all reach the loss, as they do in attention.
//!
//! Other backends and `SLAW_HEADS_KERNEL=0` (for benchmarks) use Burn's composition.
//!
//! - [`Passes`]: the two permutations of one backend, on its primitive tensors.
//! - `cuda`: one CubeCL kernel per pass, a warp per head row, as custom operations.
//! - `cpu`: loops over ndarray's buffers, rows on rayon's threads.

#[cfg(feature = "cuda")]
mod cuda;

mod cpu;

use std::fmt;
use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorMetadata};

use crate::ops::specialise::{is, primitive, tensor};

/// A backend with head permutations of its own.
trait Passes: Backend {
    /// `S` tensors `[b, h, t, dh]` from `x` `[b, t, S·h·dh]`: the `s`-th is the `s`-th part of
    /// `x`'s last axis, head by head.
    fn split_heads<const S: usize>(x: FloatTensor<Self>, heads: usize) -> [FloatTensor<Self>; S];
    /// The inverse of [`Passes::split_heads`]: `[b, t, S·h·dh]` from `S` tensors `[b, h, t, dh]`.
    fn merge_heads<const S: usize>(parts: [FloatTensor<Self>; S]) -> FloatTensor<Self>;
}

/// Queries, keys and values `[batch, heads, tokens, head_width]` from the fused projection
/// `qkv` `[batch, tokens, 3·heads·head_width]` (queries first).
pub(crate) fn split<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
    if enabled() {
        #[cfg(feature = "cuda")]
        {
            use crate::ops::foreach::cuda::Cuda;
            if is::<B, Autodiff<Cuda>>() {
                return tracked_split::<B, Cuda>(qkv, heads);
            }
            if is::<B, Cuda>() {
                return untracked_split::<B, Cuda>(qkv, heads);
            }
        }
        use crate::ops::cpu::Cpu;
        if is::<B, Autodiff<Cpu>>() {
            return tracked_split::<B, Cpu>(qkv, heads);
        }
        if is::<B, Cpu>() {
            return untracked_split::<B, Cpu>(qkv, heads);
        }
    }
    burns_split(qkv, heads)
}

/// The heads' outputs `y` `[batch, heads, tokens, head_width]` side by side:
/// `[batch, tokens, heads·head_width]`.
pub(crate) fn merge<B: Backend>(y: Tensor<B, 4>) -> Tensor<B, 3> {
    if enabled() {
        #[cfg(feature = "cuda")]
        {
            use crate::ops::foreach::cuda::Cuda;
            if is::<B, Autodiff<Cuda>>() {
                return tracked_merge::<B, Cuda>(y);
            }
            if is::<B, Cuda>() {
                return untracked_merge::<B, Cuda>(y);
            }
        }
        use crate::ops::cpu::Cpu;
        if is::<B, Autodiff<Cpu>>() {
            return tracked_merge::<B, Cpu>(y);
        }
        if is::<B, Cpu>() {
            return untracked_merge::<B, Cpu>(y);
        }
    }
    burns_merge(y)
}

/// Whether the passes here are on ([`crate::train::options::TrainerOptions::heads_op`]; the binary
/// switches them off with `SLAW_HEADS_KERNEL=0`).
fn enabled() -> bool {
    crate::train::options::options().heads_op
}

/// [`split`] as Burn's tensor operations.
fn burns_split<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
    let [b, t, w] = qkv.dims();
    let dh = w / 3 / heads;
    let mut parts = qkv
        .chunk(3, 2)
        .into_iter()
        .map(|p| p.reshape([b, t, heads, dh]).swap_dims(1, 2));
    let mut next = || parts.next().expect("qkv has three chunks");
    [next(), next(), next()]
}

/// [`merge`] as Burn's tensor operations.
fn burns_merge<B: Backend>(y: Tensor<B, 4>) -> Tensor<B, 3> {
    let [b, h, t, dh] = y.dims();
    y.swap_dims(1, 2).reshape([b, t, h * dh])
}

fn untracked_split<B: Backend, P: Passes>(qkv: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
    P::split_heads::<3>(primitive::<B, P, 3>(qkv), heads).map(tensor::<B, P, 4>)
}

fn untracked_merge<B: Backend, P: Passes>(y: Tensor<B, 4>) -> Tensor<B, 3> {
    tensor::<B, P, 3>(P::merge_heads([primitive::<B, P, 4>(y)]))
}

/// The split on `Autodiff<P>` (which `B` is): the keys' and values' nodes first, then the
/// queries' node, which knows them.
fn tracked_split<B: Backend, P: Passes>(qkv: Tensor<B, 3>, heads: usize) -> [Tensor<B, 4>; 3] {
    let x = primitive::<B, Autodiff<P>, 3>(qkv);
    let [q, k, v] = P::split_heads::<3>(x.primitive, heads);
    let passive = |part| {
        <Collected as Backward<P, 1>>::prepare::<NoCheckpointing>(Collected, [x.node.clone()])
            .compute_bound()
            .stateless(part)
    };
    let (k, v) = (passive(k), passive(v));
    // Burn does not name its node type outside its crate: a closure holds each node.
    let gradient_of = |t: &FloatTensor<Autodiff<P>>| {
        let node = t.node.clone();
        Gradient(Arc::new(move |grads: &mut Gradients| {
            grads.consume::<P>(&node)
        }))
    };
    let kind = <SplitBackward as Backward<P, 1>>::prepare::<NoCheckpointing>(
        SplitBackward,
        [x.node.clone()],
    )
    .compute_bound()
    .stateful();
    let q = match kind {
        OpsKind::Tracked(prep) => prep.finish([gradient_of(&k), gradient_of(&v)], q),
        OpsKind::UnTracked(prep) => prep.finish(q),
    };
    [q, k, v].map(tensor::<B, Autodiff<P>, 4>)
}

/// The merge on `Autodiff<P>` (which `B` is), one node.
fn tracked_merge<B: Backend, P: Passes>(y: Tensor<B, 4>) -> Tensor<B, 3> {
    let y = primitive::<B, Autodiff<P>, 4>(y);
    let out = <MergeBackward as Backward<P, 1>>::prepare::<NoCheckpointing>(
        MergeBackward,
        [y.node.clone()],
    )
    .compute_bound()
    .stateful();
    let heads = y.primitive.shape()[1];
    let out = match out {
        OpsKind::Tracked(prep) => prep.finish(heads, P::merge_heads([y.primitive])),
        OpsKind::UnTracked(prep) => prep.finish(P::merge_heads([y.primitive])),
    };
    tensor::<B, Autodiff<P>, 3>(out)
}

/// The node of the keys or the values: its gradient is collected by the queries' node.
#[derive(Debug)]
struct Collected;

impl<P: Passes> Backward<P, 1> for Collected {
    type State = ();

    fn backward(self, _: Ops<(), 1>, _: &mut Gradients, _: &mut Checkpointer) {}
}

/// Takes a gradient out of the gradients.
type Take<P> = dyn Fn(&mut Gradients) -> FloatTensor<P> + Send + Sync;

/// Takes the gradient of one node out of the gradients.
#[derive(Clone)]
struct Gradient<P: Backend>(Arc<Take<P>>);

impl<P: Backend> fmt::Debug for Gradient<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Gradient")
    }
}

/// The queries' node; its state takes the keys' and the values' gradients.
#[derive(Debug)]
struct SplitBackward;

impl<P: Passes> Backward<P, 1> for SplitBackward {
    type State = [Gradient<P>; 2];

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dq = grads.consume::<P>(&ops.node);
        let [k, v] = ops.state;
        let (dk, dv) = ((k.0)(grads), (v.0)(grads));
        if let Some(parent) = &ops.parents[0] {
            grads.register::<P>(parent.id, P::merge_heads([dq, dk, dv]));
        }
    }
}

/// The merge's node; its state is the number of heads.
#[derive(Debug)]
struct MergeBackward;

impl<P: Passes> Backward<P, 1> for MergeBackward {
    type State = usize;

    fn backward(self, ops: Ops<usize, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<P>(&ops.node);
        if let Some(parent) = &ops.parents[0] {
            let [dx] = P::split_heads::<1>(dy, ops.state);
            grads.register::<P>(parent.id, dx);
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::tensor::backend::{AutodiffBackend, Backend};
    use burn::tensor::{Distribution, Int, Tensor};

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
    }

    /// Queries, keys, values, the merged output of an attention-like use of all three, and the
    /// projection's gradient, through the passes here (`ours`) or Burn's composition.
    fn attention_like<B: AutodiffBackend>(
        qkv0: &Tensor<B, 3>,
        heads: usize,
        ours: bool,
    ) -> [Vec<f32>; 5] {
        let qkv = qkv0.clone().detach().require_grad();
        let [q, k, v] = if ours {
            super::split(qkv.clone(), heads)
        } else {
            super::burns_split(qkv.clone(), heads)
        };
        // Every part weighs differently in the loss, so that a gradient sent to the wrong part
        // or the wrong place shows.
        let scores = q.clone().matmul(k.clone().swap_dims(2, 3));
        let y = scores.matmul(v.clone()) + q.clone().mul_scalar(3.0);
        let merged = if ours {
            super::merge(y)
        } else {
            super::burns_merge(y)
        };
        let [b, t, d] = merged.dims();
        let weights = Tensor::<B, 1, Int>::arange(0..(b * t * d) as i64, &merged.device())
            .float()
            .reshape([b, t, d])
            .sin();
        let grads = (merged.clone() * weights).sum().backward();
        [
            values(q.inner()),
            values(k.inner()),
            values(v.inner()),
            values(merged.inner()),
            values(qkv.grad(&grads).expect("qkv has a gradient")),
        ]
    }

    fn check<B: AutodiffBackend>(device: &B::Device) {
        // The sweep's heads (width 256, 8 heads of 32), heads narrower than a warp, heads
        // wider than a warp and not a multiple of it.
        for (dims, heads) in [
            ([4, 49, 3 * 256], 8),
            ([2, 5, 3 * 32], 4),
            ([3, 7, 3 * 150], 2),
        ] {
            let qkv = Tensor::<B, 3>::random(dims, Distribution::Normal(0.0, 1.0), device);
            let ours = attention_like(&qkv, heads, true);
            let burns = attention_like(&qkv, heads, false);
            for (k, what) in ["q", "k", "v", "merged", "dqkv"].iter().enumerate() {
                // Copies are exact; the products after them run on the same data either way.
                assert_eq!(ours[k].len(), burns[k].len(), "{dims:?} {what}: lengths");
                let scale = burns[k].iter().fold(1f32, |m, v| m.max(v.abs()));
                for (i, (a, b)) in ours[k].iter().zip(&burns[k]).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale,
                        "{dims:?} {what}[{i}]: {a} against Burn's {b}"
                    );
                }
            }
        }
        // Without autodiff.
        let qkv = Tensor::<B::InnerBackend, 3>::random([2, 3, 24], Distribution::Default, device);
        let ours = super::split(qkv.clone(), 2);
        let burns = super::burns_split(qkv, 2);
        for (a, b) in ours.iter().zip(&burns) {
            assert_eq!(values(a.clone()), values(b.clone()));
        }
        let [q, _, _] = ours;
        assert_eq!(
            values(super::merge(q.clone())),
            values(super::burns_merge(q))
        );
    }

    #[test]
    fn the_cpu_passes_equal_burns_composition() {
        check::<Autodiff<crate::ops::cpu::Cpu>>(&Default::default());
    }

    /// On the GPU (run by bench/gpu_tests.sh).
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn kernels_equal_burns_composition_on_cuda() {
        type C = burn::backend::Cuda<f32, i32>;
        check::<Autodiff<C>>(&burn::backend::cuda::CudaDevice::new(0));
    }
}
