//! Tests of slaw's patches to Burn's CPU backend (`vendor/burn-ndarray`, see
//! `vendor/README.md`): the vendored crate is outside the workspace, so its changed behaviour is
//! checked here, where CI runs. Matrix products whose operands are transposed views must equal
//! the products of contiguous copies; GELU and its gradient must equal their definitions.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor, TensorData, Tolerance};

type Cpu = NdArray<f32>;

/// `t` rebuilt from its values: the same tensor in standard (row-major) layout.
fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    let device = t.device();
    Tensor::from_data(t.into_data(), &device)
}

fn random<const D: usize>(shape: [usize; D]) -> Tensor<Cpu, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

fn assert_close<const D: usize>(got: Tensor<Cpu, D>, want: Tensor<Cpu, D>) {
    assert_eq!(got.dims(), want.dims());
    got.into_data()
        .assert_approx_eq::<f32>(&want.into_data(), Tolerance::absolute(1e-5));
}

#[test]
fn products_with_transposed_operands_equal_products_of_copies() {
    // A Linear layer's backward: `grad · Wᵀ` and `xᵀ · grad`.
    let (w, grad, x) = (random([7, 5]), random([4, 5]), random([4, 7]));
    let product = grad.clone().matmul(w.clone().transpose());
    assert_close(product, grad.clone().matmul(contiguous(w.transpose())));
    let product = x.clone().transpose().matmul(grad.clone());
    assert_close(product, contiguous(x.transpose()).matmul(grad));
    // Attention's scores: `q · kᵀ` with batch and head axes.
    let (q, k) = (random([2, 3, 4, 6]), random([2, 3, 5, 6]));
    let scores = q.clone().matmul(k.clone().swap_dims(2, 3));
    assert_close(scores, q.matmul(contiguous(k.swap_dims(2, 3))));
    // Batch axes in swapped order cannot be viewed as one axis: the copy path.
    let (a, b) = (random([3, 2, 4, 6]), random([2, 3, 6, 5]));
    let product = a.clone().swap_dims(0, 1).matmul(b.clone());
    assert_close(product, contiguous(a.swap_dims(0, 1)).matmul(b));
}

/// `(x, gelu(x), gelu'(x))` from the definitions in f64 (Python's `math.erf`).
const GELU: [(f64, f64, f64); 9] = [
    (-6.0, -5.919525869479969e-09, -3.546870945402639e-08),
    (-3.0, -0.00404969409489031, -0.01194564720418392),
    (-1.5, -0.10021080190328713, -0.12746919222997954),
    (-0.5, -0.15426876936299344, 0.13250487534383712),
    (0.0, 0.0, 0.5),
    (0.25, 0.14967658142073093, 0.695373354883636),
    (1.0, 0.8413447460685429, 1.0833154705876864),
    (2.5, 2.4844758366855597, 1.037611085908145),
    (5.0, 4.999998566742141, 1.000007146946002),
];

/// GELU and the gradient of `sum(gelu(x) · w)` (so `w · gelu'(x)`) on backend `B`.
fn gelu_and_gradient<B: burn::tensor::backend::AutodiffBackend>() -> (Vec<f64>, Vec<f64>) {
    let device = Default::default();
    let x: Vec<f64> = GELU.iter().map(|p| p.0).collect();
    let x = Tensor::<B, 1>::from_data(TensorData::from(x.as_slice()), &device).require_grad();
    let weights = Tensor::<B, 1>::from_data(TensorData::from([2.0f64; 9].as_slice()), &device);
    let y = burn::tensor::activation::gelu(x.clone());
    let grads = (y.clone() * weights).sum().backward();
    let grad = x.grad(&grads).expect("x requires its gradient");
    let values = |d: TensorData| d.convert::<f64>().to_vec::<f64>().expect("f64 values");
    (values(y.into_data()), values(grad.into_data()))
}

#[test]
fn gelu_and_its_gradient_equal_the_exact_definitions() {
    let check = |(y, g): (Vec<f64>, Vec<f64>), tolerance: f64| {
        for (i, &(x, want_y, want_g)) in GELU.iter().enumerate() {
            assert!(
                (y[i] - want_y).abs() <= tolerance,
                "gelu({x}) = {}, not {want_y}",
                y[i]
            );
            // The gradient of the exact GELU, not of its tanh approximation (upstream's
            // backward: 1.0830 instead of 1.0833 at 1, −0.0116 instead of −0.0119 at −3).
            let want_g = 2.0 * want_g;
            assert!(
                (g[i] - want_g).abs() <= tolerance,
                "gelu'({x}) = {}, not {want_g}",
                g[i] / 2.0
            );
        }
    };
    // f32 only: slaw trains in f32 on the CPU, and Burn 0.21 keeps one default float type per
    // ndarray device for the whole process, so an `NdArray<f64>` tensor made after any f32
    // one (other tests run in this process) holds f32 values.
    check(gelu_and_gradient::<Autodiff<NdArray<f32>>>(), 2e-6);
}

/// Large tensors take the parallel loops: the same values as small pieces of them.
#[test]
fn gelu_of_a_large_tensor_equals_gelu_of_its_pieces() {
    type Ad = Autodiff<Cpu>;
    let n = 3 * (1 << 15) + 5;
    let device = Default::default();
    let x: Tensor<Ad, 1> = Tensor::random([n], Distribution::Normal(0.0, 2.0), &device);
    let whole = |x: Tensor<Ad, 1>| {
        let x = x.require_grad();
        let y = burn::tensor::activation::gelu(x.clone());
        let grads = y.clone().mul_scalar(3.0).sum().backward();
        (y.inner(), x.grad(&grads).expect("x requires its gradient"))
    };
    let (y, g) = whole(x.clone());
    let pieces: Vec<_> = x.split(1 << 12, 0).into_iter().map(whole).collect();
    let joined = |i: usize| -> Tensor<Cpu, 1> {
        Tensor::cat(
            pieces
                .iter()
                .map(|p| if i == 0 { p.0.clone() } else { p.1.clone() })
                .collect(),
            0,
        )
    };
    assert_eq!(y.into_data(), joined(0).into_data());
    assert_eq!(g.into_data(), joined(1).into_data());
}
