//! The products as autodiff operations on any backend with a [`Products`] implementation
//! (slaw's CUDA backend): the Linear layer's node (input, weight and bias gradients) and the
//! batched product's node, each keeping its operands as the products read them.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{FloatDType, Shape, Tensor, TensorMetadata};

use crate::ops::specialise::{primitive, tensor};

/// A backend with a product of its own.
pub(super) trait Products: Backend {
    /// `op(a) · op(b)` (+ `bias` on every row) in f32: `a` `[.., m, k]` (`[.., k, m]` when
    /// `ta`), `b` `[.., k, n]` (`[.., n, k]` when `tb`), equal leading axes; operands f32 or
    /// bf16 (both the same), `bias` f32 `[n]`.
    fn product(
        a: FloatTensor<Self>,
        ta: bool,
        b: FloatTensor<Self>,
        tb: bool,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self>;
}

/// `t` as a product reads it: rounded to bf16 under mixed precision.
pub(super) fn operand<P: Backend>(t: FloatTensor<P>, mixed: bool) -> FloatTensor<P> {
    if mixed {
        P::float_cast(t, FloatDType::BF16)
    } else {
        t
    }
}

/// `t` `[.., w]` as `[rows, w]`.
fn rows<P: Backend>(t: FloatTensor<P>) -> FloatTensor<P> {
    let shape = t.shape();
    let w = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / w.max(1);
    P::float_reshape(t, Shape::new([rows, w]))
}

/// `t` `[rows, w]` with the leading axes of `like` `[.., _]`.
fn unrows<P: Backend>(t: FloatTensor<P>, like: &Shape) -> FloatTensor<P> {
    let mut dims = like.to_vec();
    let last = dims.len() - 1;
    dims[last] = t.shape()[1];
    P::float_reshape(t, Shape::from(dims))
}

pub(super) fn untracked_linear<B: Backend, P: Products, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    mixed: bool,
) -> Tensor<B, D> {
    let x = primitive::<B, P, D>(x);
    let shape = x.shape();
    let w = operand::<P>(primitive::<B, P, 2>(layer.weight.val()), mixed);
    let bias = layer.bias.as_ref().map(|b| primitive::<B, P, 1>(b.val()));
    let y = P::product(operand::<P>(rows::<P>(x), mixed), false, w, false, bias);
    tensor::<B, P, D>(unrows::<P>(y, &shape))
}

/// What a Linear node keeps: the input and the weight as the product read them, the input's
/// shape, the precision.
#[derive(Debug, Clone)]
struct LinearSaved<P: Backend> {
    x: FloatTensor<P>,
    w: FloatTensor<P>,
    shape: Shape,
    mixed: bool,
}

pub(super) fn tracked_linear<B: Backend, P: Products, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    mixed: bool,
) -> Tensor<B, D> {
    let x = primitive::<B, Autodiff<P>, D>(x);
    let w = primitive::<B, Autodiff<P>, 2>(layer.weight.val());
    let bias = layer
        .bias
        .as_ref()
        .map(|b| primitive::<B, Autodiff<P>, 1>(b.val()));
    let shape = x.primitive.shape();
    let xo = operand::<P>(rows::<P>(x.primitive.clone()), mixed);
    let wo = operand::<P>(w.primitive.clone(), mixed);
    let saved = LinearSaved {
        x: xo.clone(),
        w: wo.clone(),
        shape: shape.clone(),
        mixed,
    };
    let y = match bias {
        Some(bias) => {
            let y = P::product(xo, false, wo, false, Some(bias.primitive.clone()));
            linear_node([&x, &w, &bias], saved, unrows::<P>(y, &shape))
        }
        None => {
            let y = P::product(xo, false, wo, false, None);
            linear_node([&x, &w], saved, unrows::<P>(y, &shape))
        }
    };
    tensor::<B, Autodiff<P>, D>(y)
}

/// The Linear node of output `y` over `parents` (input, weight and, when `N` is 3, bias); the
/// state is kept only when something upstream needs a gradient.
fn linear_node<P: Products, const N: usize>(
    parents: [&FloatTensor<Autodiff<P>>; N],
    saved: LinearSaved<P>,
    y: FloatTensor<P>,
) -> FloatTensor<Autodiff<P>> {
    let nodes = parents.map(|t| t.node.clone());
    let kind =
        <LinearBackward as Backward<P, N>>::prepare::<NoCheckpointing>(LinearBackward, nodes)
            .compute_bound()
            .stateful();
    match kind {
        OpsKind::Tracked(prep) => prep.finish(saved, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// A Linear layer's node: parents the input, the weight and, when `N` is 3, the bias.
#[derive(Debug)]
struct LinearBackward;

impl<P: Products, const N: usize> Backward<P, N> for LinearBackward {
    type State = LinearSaved<P>;

    fn backward(self, ops: Ops<LinearSaved<P>, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let dy = rows::<P>(grads.consume::<P>(&ops.node));
        let dyo = operand::<P>(dy.clone(), s.mixed);
        if let Some(parent) = &ops.parents[0] {
            let dx = P::product(dyo.clone(), false, s.w, true, None);
            grads.register::<P>(parent.id, unrows::<P>(dx, &s.shape));
        }
        if let Some(parent) = &ops.parents[1] {
            grads.register::<P>(parent.id, P::product(s.x, true, dyo, false, None));
        }
        if let Some(Some(parent)) = ops.parents.get(2) {
            let n = dy.shape()[1];
            let db = P::float_reshape(P::float_sum_dim(dy, 0), Shape::new([n]));
            grads.register::<P>(parent.id, db);
        }
    }
}

/// What a product's node keeps: both operands as the product read them, the precision.
#[derive(Debug, Clone)]
struct MatmulSaved<P: Backend> {
    a: FloatTensor<P>,
    b: FloatTensor<P>,
    mixed: bool,
}

pub(super) fn tracked_matmul<B: Backend, P: Products, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    mixed: bool,
) -> Tensor<B, D> {
    let (a, b) = (
        primitive::<B, Autodiff<P>, D>(a),
        primitive::<B, Autodiff<P>, D>(b),
    );
    let kind = <MatmulBackward as Backward<P, 2>>::prepare::<NoCheckpointing>(
        MatmulBackward,
        [a.node.clone(), b.node.clone()],
    )
    .compute_bound()
    .stateful();
    let (ao, bo) = (
        operand::<P>(a.primitive, mixed),
        operand::<P>(b.primitive, mixed),
    );
    let y = P::product(ao.clone(), false, bo.clone(), false, None);
    let y = match kind {
        OpsKind::Tracked(prep) => prep.finish(
            MatmulSaved {
                a: ao,
                b: bo,
                mixed,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    tensor::<B, Autodiff<P>, D>(y)
}

/// A product's node: `dA = dC · Bᵀ`, `dB = Aᵀ · dC`.
#[derive(Debug)]
struct MatmulBackward;

impl<P: Products> Backward<P, 2> for MatmulBackward {
    type State = MatmulSaved<P>;

    fn backward(self, ops: Ops<MatmulSaved<P>, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let s = ops.state;
        let dc = operand::<P>(grads.consume::<P>(&ops.node), s.mixed);
        if let Some(parent) = &ops.parents[0] {
            grads.register::<P>(parent.id, P::product(dc.clone(), false, s.b, true, None));
        }
        if let Some(parent) = &ops.parents[1] {
            grads.register::<P>(parent.id, P::product(s.a, true, dc, false, None));
        }
    }
}
