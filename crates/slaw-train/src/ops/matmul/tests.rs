//! slaw's products against Burn's composition, forward and backward, on the shapes the model
//! families use (run on the GPU machine by bench/gpu_tests.sh; the CPU build has no such path).

use burn::backend::Autodiff;
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Distribution, Int, Tensor};

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Weights of the loss `Σ y·w`, different for every element so that a gradient in the wrong
/// place shows.
fn loss_weights<B: Backend, const D: usize>(like: &Tensor<B, D>) -> Tensor<B, D> {
    let dims = like.dims();
    let n: usize = dims.iter().product();
    Tensor::<B, 1, Int>::arange(0..n as i64, &like.device())
        .float()
        .reshape(dims)
        .sin()
}

/// `|ours − reference| ≤ tol · max|reference|` element by element.
fn assert_close(ours: &[f32], reference: &[f32], tol: f32, what: &str) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    let scale = reference.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        assert!(
            (a - b).abs() <= tol * scale,
            "{what}[{i}]: {a} against {b} (scale {scale})"
        );
    }
}

/// The output and the gradients of the input, weight and bias of a Linear layer
/// `[d_in → d_out]` on `x`, through slaw's product (`ours`) or Burn's composition.
fn linear_run<B: AutodiffBackend, const D: usize>(
    layer: &Linear<B>,
    x0: &Tensor<B, D>,
    mixed: bool,
    ours: bool,
) -> Vec<Vec<f32>> {
    use crate::ops::foreach::cuda::Cuda;
    let x = x0.clone().detach().require_grad();
    let y = if ours {
        super::node::tracked_linear::<B, Cuda, D>(layer, x.clone(), mixed)
    } else {
        super::burns_linear(layer, x.clone(), mixed)
    };
    let grads = (y.clone() * loss_weights(&y)).sum().backward();
    let mut out = vec![
        values(y.inner()),
        values(x.grad(&grads).expect("x has a gradient")),
        values(layer.weight.val().grad(&grads).expect("W has a gradient")),
    ];
    if let Some(b) = &layer.bias {
        out.push(values(b.val().grad(&grads).expect("b has a gradient")));
    }
    out
}

fn linear_case<B: AutodiffBackend, const D: usize>(
    dims: [usize; D],
    d_out: usize,
    bias: bool,
    device: &B::Device,
) {
    let d_in = dims[D - 1];
    let mut layer = LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .init::<B>(device);
    if bias {
        // A bias away from zero, so that its use shows.
        let b = Tensor::<B, 1>::random([d_out], Distribution::Normal(0.0, 1.0), device);
        layer.bias = Some(Param::from_tensor(b));
    }
    let x = Tensor::<B, D>::random(dims, Distribution::Normal(0.0, 1.0), device);
    for (mixed, tol) in [(true, 2e-2), (false, 1e-4)] {
        let ours = linear_run(&layer, &x, mixed, true);
        let burns = linear_run(&layer, &x, mixed, false);
        for (k, what) in ["y", "dx", "dW", "db"].iter().take(ours.len()).enumerate() {
            let what = format!("linear {dims:?}→{d_out} bias {bias} mixed {mixed}: {what}");
            assert_close(&ours[k], &burns[k], tol, &what);
        }
    }
}

/// `a · b` (with `b` given transposed when `tb`, as the attention's `q · kᵀ`) and the gradients
/// of both, through slaw's product or Burn's.
fn matmul_run<B: AutodiffBackend>(
    a0: &Tensor<B, 4>,
    b0: &Tensor<B, 4>,
    tb: bool,
    mixed: bool,
    ours: bool,
) -> Vec<Vec<f32>> {
    use crate::ops::foreach::cuda::Cuda;
    let (a, b) = (
        a0.clone().detach().require_grad(),
        b0.clone().detach().require_grad(),
    );
    let rhs = if tb {
        b.clone().swap_dims(2, 3)
    } else {
        b.clone()
    };
    let y = if ours {
        super::node::tracked_matmul::<B, Cuda, 4>(a.clone(), rhs, mixed)
    } else {
        super::burns_matmul(a.clone(), rhs, mixed)
    };
    let grads = (y.clone() * loss_weights(&y)).sum().backward();
    vec![
        values(y.inner()),
        values(a.grad(&grads).expect("a has a gradient")),
        values(b.grad(&grads).expect("b has a gradient")),
    ]
}

fn check<B: AutodiffBackend>(device: &B::Device) {
    // MLP layers and heads (2-D), the ViT's and AIM's token-wise layers with and without biases
    // (3-D), odd widths (a 10-class head, 27 = 3·3·3 im2col columns of the ConvNet).
    linear_case::<B, 2>([64, 784], 256, true, device);
    linear_case::<B, 2>([32, 256], 10, true, device);
    linear_case::<B, 2>([392, 27], 16, true, device);
    linear_case::<B, 3>([4, 65, 128], 384, true, device);
    linear_case::<B, 3>([3, 17, 96], 96, false, device);
    linear_case::<B, 3>([2, 64, 48], 200, true, device);
    // The attention's products: scores `q · kᵀ` and the output `p · v`.
    let (b, h, t, dh) = (4, 4, 65, 32);
    let rand =
        |dims: [usize; 4]| Tensor::<B, 4>::random(dims, Distribution::Normal(0.0, 1.0), device);
    let (q, k, p) = (rand([b, h, t, dh]), rand([b, h, t, dh]), rand([b, h, t, t]));
    for (mixed, tol) in [(true, 2e-2), (false, 1e-4)] {
        for (what, lhs, rhs, tb) in [("q·kᵀ", &q, &k, true), ("p·v", &p, &k, false)] {
            let ours = matmul_run(lhs, rhs, tb, mixed, true);
            let burns = matmul_run(lhs, rhs, tb, mixed, false);
            for (i, part) in ["y", "da", "db"].iter().enumerate() {
                assert_close(
                    &ours[i],
                    &burns[i],
                    tol,
                    &format!("{what} mixed {mixed}: {part}"),
                );
            }
        }
    }
    // Without autodiff.
    let layer = LinearConfig::new(24, 8).init::<B::InnerBackend>(device);
    let x = Tensor::<B::InnerBackend, 2>::random([5, 24], Distribution::Default, device);
    let ours = super::node::untracked_linear::<_, crate::ops::foreach::cuda::Cuda, 2>(
        &layer,
        x.clone(),
        true,
    );
    assert_close(
        &values(ours),
        &values(super::burns_linear(&layer, x, true)),
        2e-2,
        "untracked",
    );
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn products_equal_burns_composition_on_cuda() {
    type C = burn::backend::Cuda<f32, i32>;
    assert!(
        super::cuda::library_loads(),
        "libcublasLt loads on the GPU machine"
    );
    check::<Autodiff<C>>(&burn::backend::cuda::CudaDevice::new(0));
}
