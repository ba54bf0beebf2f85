//! The NFNet-style ConvNet: a normaliser-free ResNet (Brock et al., "Characterizing signal
//! propagation to close the performance gap in unnormalized ResNets", 2021, and "High-
//! performance large-scale image recognition without normalization", 2021).
//!
//! - Every convolution standardises its weights per output channel (scaled weight
//!   standardisation: `Ŵ = g · (W − μ) / (σ · √fan_in)` with a learned gain `g`).
//! - Residual blocks are pre-activation basic blocks `h + α · f(act(h) / β)`, where β is the
//!   expected standard deviation of `h` at initialisation: its square grows by α² per block and
//!   resets to 1 + α² after a transition block (one with a projection shortcut).
//! - Activations are multiplied by their variance-preserving gain γ (NFNet's constants).
//! - No batch norm anywhere; the trainer adds adaptive gradient clipping (see `clipping`).
//!
//! Convolutions are computed as explicit patches and one matrix product ([`conv2d_gemm`]), on
//! channels-last activations `[batch, height, width, channels]`. On CUDA this reuses the matmul
//! kernels every model needs: Burn's own convolutions autotune eight kernel families per shape
//! and direction, which kept a first training step compiling for minutes; on the CPU the
//! matrix product is also several times faster than ndarray's direct convolution.

use burn::module::{Module, Param};
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::backend::Backend;
use burn::tensor::ops::PadMode;
use burn::tensor::{Slice, Tensor};

use crate::config::{Activation, ConvNetConfig, InputShape};

/// γ of ReLU: `sqrt(2 / (1 − 1/π))`, the NFNet constant that keeps the second moment at 1.
pub const RELU_GAMMA: f64 = 1.713_958_859_443_664_6;
/// γ of GELU (NFNet's constant).
pub const GELU_GAMMA: f64 = 1.701_504_349_708_557_1;

/// Standardises convolution weights `[out, in, kh, kw]` per output channel:
/// `gain · (W − mean) / sqrt(max(var · fan_in, 1e-4))`, with the population variance over
/// `in × kh × kw` (NFNet's `WSConv2D`).
pub fn standardize<B: Backend>(weight: Tensor<B, 4>, gain: Tensor<B, 1>) -> Tensor<B, 4> {
    let [o, i, kh, kw] = weight.dims();
    let fan_in = i * kh * kw;
    let w = weight.reshape([o, fan_in]);
    let centred = w.clone() - w.mean_dim(1);
    let var = centred.clone().square().mean_dim(1);
    let scale = var.mul_scalar(fan_in as f64).clamp_min(1e-4).sqrt().recip() * gain.reshape([o, 1]);
    (centred * scale).reshape([o, i, kh, kw])
}

/// A 2-D convolution with scaled weight standardisation, a learned gain and a bias.
#[derive(Module, Debug)]
pub struct WsConv2d<B: Backend> {
    /// Raw weights `[out, in, k, k]`.
    pub weight: Param<Tensor<B, 4>>,
    /// Per-channel bias.
    pub bias: Param<Tensor<B, 1>>,
    /// Per-channel gain of the standardised weights.
    pub gain: Param<Tensor<B, 1>>,
    stride: usize,
    padding: usize,
}

impl<B: Backend> WsConv2d<B> {
    fn init(c_in: usize, c_out: usize, kernel: usize, stride: usize, device: &B::Device) -> Self {
        // Fan-in scaled like NFNet's raw weights: standardisation makes the output invariant
        // to their scale, but the scale sets the effective learning rate (∝ lr / ‖W‖²).
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 1.0 / ((c_in * kernel * kernel) as f64).sqrt(),
        };
        WsConv2d {
            weight: normal.init([c_out, c_in, kernel, kernel], device),
            bias: Initializer::Zeros.init([c_out], device),
            gain: Initializer::Ones.init([c_out], device),
            stride,
            padding: kernel / 2,
        }
    }

    /// The convolution of channels-last activations `[batch, h, w, c_in]`.
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let w = standardize(self.weight.val(), self.gain.val());
        conv2d_gemm(x, w, self.bias.val(), self.stride, self.padding)
    }
}

/// A 2-D convolution of channels-last `x` `[batch, h, w, c_in]` with `weight`
/// `[c_out, c_in, k_h, k_w]` (Burn's layout), zero padding `padding` and stride `stride`, as an
/// im2col matrix product: the `k_h · k_w` shifted (and strided) views of the padded input are
/// stacked into `[batch · h_out · w_out, k_h · k_w · c_in]` and multiplied by the reordered
/// kernel. Returns `[batch, h_out, w_out, c_out]`.
pub fn conv2d_gemm<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
    stride: usize,
    padding: usize,
) -> Tensor<B, 4> {
    let [b, h, w, c] = x.dims();
    let [o, _, kh, kw] = weight.dims();
    let h_out = (h + 2 * padding - kh) / stride + 1;
    let w_out = (w + 2 * padding - kw) / stride + 1;
    let x = if padding > 0 {
        x.pad(
            [(padding, padding), (padding, padding), (0, 0)],
            PadMode::Constant(0.0),
        )
    } else {
        x
    };
    let window = |start: usize, n: usize| {
        Slice::with_step(
            start as isize,
            Some((start + (n - 1) * stride + 1) as isize),
            stride as isize,
        )
    };
    let mut views = Vec::with_capacity(kh * kw);
    for i in 0..kh {
        for j in 0..kw {
            views.push(x.clone().slice([
                Slice::from(0..b),
                window(i, h_out),
                window(j, w_out),
                Slice::from(0..c),
            ]));
        }
    }
    let rows = b * h_out * w_out;
    // A 1×1 kernel's single view needs no stacking copy.
    let cols = if views.len() == 1 {
        views.remove(0).reshape([rows, c])
    } else {
        Tensor::stack::<5>(views, 3).reshape([rows, kh * kw * c])
    };
    // [o, c, kh, kw] → [kh, kw, c, o], matching the column order (i, j, channel).
    let kernel = weight.permute([2, 3, 1, 0]).reshape([kh * kw * c, o]);
    let y = crate::models::matmul(cols, kernel) + bias.reshape([1, o]);
    y.reshape([b, h_out, w_out, o])
}

/// The scaled non-linearity `γ · act(x)`.
fn activate<B: Backend>(x: Tensor<B, 4>, relu_act: bool) -> Tensor<B, 4> {
    if relu_act {
        relu(x).mul_scalar(RELU_GAMMA)
    } else {
        gelu(x).mul_scalar(GELU_GAMMA)
    }
}

/// A pre-activation basic block: `h + α · conv(act(conv(act(h) / β)))`, with a 1×1 projection
/// of `act(h) / β` as the shortcut when the width or resolution changes.
#[derive(Module, Debug)]
pub struct NfBlock<B: Backend> {
    conv0: WsConv2d<B>,
    conv1: WsConv2d<B>,
    shortcut: Option<WsConv2d<B>>,
    alpha: f64,
    /// 1/β: the inverse of the expected standard deviation of the block's input.
    inv_beta: f64,
    relu: bool,
}

impl<B: Backend> NfBlock<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let out = activate(x.clone(), self.relu).mul_scalar(self.inv_beta);
        let shortcut = match &self.shortcut {
            Some(projection) => projection.forward(out.clone()),
            None => x,
        };
        let out = self.conv0.forward(out);
        let out = self.conv1.forward(activate(out, self.relu));
        out.mul_scalar(self.alpha) + shortcut
    }
}

/// The expected-variance bookkeeping of the blocks: `(inv_beta, has_projection)` per block, in
/// order, for a network whose stages have `depths` blocks.
pub fn block_scales(depths: &[usize], alpha: f64) -> Vec<(f64, bool)> {
    let mut out = Vec::new();
    let mut expected_var = 1.0;
    for (stage, &n) in depths.iter().enumerate() {
        for b in 0..n {
            // The first block of every stage after the first changes width and resolution.
            let projection = b == 0 && stage > 0;
            out.push((1.0 / f64::sqrt(expected_var), projection));
            expected_var = if projection {
                1.0 + alpha * alpha
            } else {
                expected_var + alpha * alpha
            };
        }
    }
    out
}

/// The whole network: stem, stages of blocks, global average pooling, linear classifier.
#[derive(Module, Debug)]
pub struct ConvNet<B: Backend> {
    stem: WsConv2d<B>,
    blocks: Vec<NfBlock<B>>,
    /// The classifier (excluded from adaptive gradient clipping, as in NFNet).
    pub head: Linear<B>,
    relu: bool,
    channels: usize,
    height: usize,
    width: usize,
}

impl<B: Backend> ConvNet<B> {
    /// A freshly initialised network for images of `shape`.
    pub fn init(c: &ConvNetConfig, shape: &InputShape, device: &B::Device) -> Self {
        let relu = c.activation == Activation::Relu;
        let scales = block_scales(&c.depths, c.alpha);
        let mut blocks = Vec::with_capacity(scales.len());
        let mut c_in = c.width;
        let mut k = 0;
        for (stage, &n) in c.depths.iter().enumerate() {
            let c_out = c.stage_width(stage);
            for b in 0..n {
                let (inv_beta, projection) = scales[k];
                k += 1;
                let stride = if b == 0 && stage > 0 { 2 } else { 1 };
                blocks.push(NfBlock {
                    conv0: WsConv2d::init(c_in, c_out, 3, stride, device),
                    conv1: WsConv2d::init(c_out, c_out, 3, 1, device),
                    shortcut: projection.then(|| WsConv2d::init(c_in, c_out, 1, stride, device)),
                    alpha: c.alpha,
                    inv_beta,
                    relu,
                });
                c_in = c_out;
            }
        }
        ConvNet {
            stem: WsConv2d::init(shape.channels, c.width, 3, 1, device),
            blocks,
            head: LinearConfig::new(c_in, shape.classes).init(device),
            relu,
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
        }
    }

    /// Class logits `[batch, classes]` of flat pixels `[batch, c·h·w]` (channels first).
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let b = x.dims()[0];
        let image = x
            .reshape([b, self.channels, self.height, self.width])
            .permute([0, 2, 3, 1]);
        let mut h = self.stem.forward(image);
        for block in &self.blocks {
            h = block.forward(h);
        }
        let h = activate(h, self.relu);
        let [_, _, _, c] = h.dims();
        let pooled = h.mean_dims(&[1, 2]).reshape([b, c]);
        crate::models::linear(&self.head, pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::TensorData;

    type B = NdArray<f32>;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    /// Hand-computed: W = [1, 2, 3, 4] has mean 2.5, population variance 1.25 and fan-in 4,
    /// so Ŵ = gain · (W − 2.5) / √5; a constant filter has zero variance and becomes 0 (the
    /// 1e-4 floor keeps the division finite).
    #[test]
    fn weight_standardisation_matches_hand_values() {
        let device = Default::default();
        let w = Tensor::<B, 4>::from_data(
            TensorData::new(vec![1f32, 2., 3., 4., 5., 5., 5., 5.], [2, 1, 2, 2]),
            &device,
        );
        let gain = Tensor::<B, 1>::from_data(TensorData::new(vec![2f32, 1.], [2]), &device);
        let out: Vec<f32> = standardize(w, gain).into_data().to_vec().unwrap();
        let s = 2.0 / 5f32.sqrt();
        close(
            &out,
            &[-1.5 * s, -0.5 * s, 0.5 * s, 1.5 * s, 0., 0., 0., 0.],
        );
    }

    /// With unit gain the standardised filters have zero mean and variance 1/fan_in.
    #[test]
    fn standardised_filters_have_unit_fan_in_variance() {
        let device = Default::default();
        B::seed(&device, 3);
        let conv = WsConv2d::<B>::init(4, 6, 3, 1, &device);
        let w: Vec<f32> = standardize(conv.weight.val(), conv.gain.val())
            .into_data()
            .to_vec()
            .unwrap();
        for filter in w.chunks(36) {
            let mean = filter.iter().sum::<f32>() / 36.0;
            let var = filter.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 36.0;
            assert!(mean.abs() < 1e-5, "{mean}");
            assert!((var * 36.0 - 1.0).abs() < 1e-3, "{var}");
        }
    }

    /// β² grows by α² per block and resets to 1 + α² after each transition (NF-ResNet).
    #[test]
    fn expected_variance_bookkeeping() {
        let alpha: f64 = 0.2;
        let s = block_scales(&[2, 2], alpha);
        let a2 = alpha * alpha;
        let want = [
            (1.0, false),
            (1.0 / (1.0 + a2).sqrt(), false),
            (1.0 / (1.0 + 2.0 * a2).sqrt(), true),
            (1.0 / (1.0 + a2).sqrt(), false),
        ];
        assert_eq!(s.len(), want.len());
        for ((got, gp), (w, wp)) in s.iter().zip(want) {
            assert!((got - w).abs() < 1e-12 && *gp == wp, "{s:?}");
        }
    }

    /// At initialisation the signal keeps a unit-order scale through the blocks (what the
    /// normaliser-free design is for): the mean square of the last stage's output stays
    /// within a factor of a few of its expected value 1 + α² · (blocks in the last stage).
    #[test]
    fn signal_propagation_at_initialisation() {
        let device = Default::default();
        B::seed(&device, 7);
        let config = ConvNetConfig {
            width: 8,
            depths: vec![2, 2, 2],
            alpha: 0.2,
            activation: Activation::Relu,
        };
        let shape = InputShape {
            channels: 1,
            height: 16,
            width: 16,
            classes: 10,
        };
        let net = ConvNet::<B>::init(&config, &shape, &device);
        let x = Tensor::<B, 4>::random(
            [16, 16, 16, 1],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let mut h = net.stem.forward(x);
        for block in &net.blocks {
            h = block.forward(h);
        }
        let ms: f32 = h.square().mean().into_scalar();
        assert!(ms > 0.3 && ms < 5.0, "mean square {ms}");
    }

    /// The im2col convolution equals Burn's `conv2d` (values and both gradients) for the
    /// kernel sizes, strides and odd resolutions the network uses.
    #[test]
    fn gemm_convolution_matches_burn_conv2d() {
        use burn::backend::Autodiff;
        use burn::tensor::module::conv2d;
        use burn::tensor::ops::ConvOptions;
        use burn::tensor::Distribution;
        type A = Autodiff<B>;
        let device = Default::default();
        A::seed(&device, 11);
        for (k, stride, size) in [(3, 1, 7), (3, 2, 7), (3, 2, 8), (1, 2, 7), (1, 1, 6)] {
            let pad = k / 2;
            let x =
                Tensor::<A, 4>::random([2, 3, size, size], Distribution::Normal(0., 1.), &device)
                    .require_grad();
            let w = Tensor::<A, 4>::random([5, 3, k, k], Distribution::Normal(0., 1.), &device)
                .require_grad();
            let bias = Tensor::<A, 1>::random([5], Distribution::Normal(0., 1.), &device);
            let reference = conv2d(
                x.clone(),
                w.clone(),
                Some(bias.clone()),
                ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1),
            );
            let ours = conv2d_gemm(
                x.clone().permute([0, 2, 3, 1]),
                w.clone(),
                bias,
                stride,
                pad,
            )
            .permute([0, 3, 1, 2]);
            assert_eq!(
                ours.dims(),
                reference.dims(),
                "k {k} stride {stride} size {size}"
            );
            // A fixed random projection makes the gradients depend on every output.
            let probe =
                Tensor::<A, 4>::random(reference.dims(), Distribution::Normal(0., 1.), &device);
            let g_ref = (reference.clone() * probe.clone()).sum().backward();
            let g_ours = (ours.clone() * probe).sum().backward();
            let vals = |t: Tensor<B, 4>| -> Vec<f32> { t.into_data().to_vec().unwrap() };
            let close4 = |a: Vec<f32>, b: Vec<f32>| {
                assert_eq!(a.len(), b.len());
                for (p, q) in a.iter().zip(&b) {
                    assert!(
                        (p - q).abs() < 1e-4 * (1.0 + q.abs()),
                        "k {k} stride {stride}: {p} vs {q}"
                    );
                }
            };
            close4(vals(ours.inner()), vals(reference.inner()));
            close4(
                vals(x.grad(&g_ours).unwrap()),
                vals(x.grad(&g_ref).unwrap()),
            );
            close4(
                vals(w.grad(&g_ours).unwrap()),
                vals(w.grad(&g_ref).unwrap()),
            );
        }
    }
}
