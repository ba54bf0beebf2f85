//! The Burn modules of the model families: an MLP and a Vision Transformer with the ViT-22B
//! switches (QK-norm, parallel blocks, no biases) here, the NFNet-style ConvNet in
//! [`crate::models::convnet`] and the autoregressive image model in [`crate::models::aim`], and the [`Model`]
//! enum over all of them.
//!
//! Every classifier maps a batch of examples, laid out as the trainer prepares them (flat
//! pixels for the MLP and the ConvNet, flattened patches for the ViT and AIM), to class logits;
//! AIM maps them to next-patch predictions.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub mod aim;
pub mod convnet;
pub mod stacked;

use crate::config::{Activation, InputShape, MlpConfig, ModelConfig, Pool, VitConfig};
use crate::models::aim::Aim;
use crate::models::convnet::ConvNet;
use crate::ops::{heads, layer_norm, softmax};

/// `layer` applied to every token of `x` `[batch, tokens, width]`, as a product batched over
/// chunks of whole examples of at most [`set_linear_chunk_rows`] rows.
///
/// Burn differentiates a batched `linear` by a batched product for the weight gradient,
/// `[chunks, d_in, d_out]`, then summed over the chunks. With one chunk per example (Burn's
/// layout for a 3-D input) that intermediate is large; with a single chunk the product's inner
/// dimension is `batch·tokens` long, which Burn's untuned CUDA matmul runs on few thread blocks.
/// Measured on an H100 (docs/PERFORMANCE.md): chunks of 256 rows take the medium ViT's step
/// from 61.2 to 50.3 ms; on the CPU (ndarray) they are slower, so the CPU keeps one example.
pub(crate) fn token_linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    chunked_linear(layer, x, linear_chunk_rows())
}

/// [`token_linear`] with chunks of at most `max_rows` rows.
fn chunked_linear<B: Backend>(layer: &Linear<B>, x: Tensor<B, 3>, max_rows: usize) -> Tensor<B, 3> {
    let [b, t, d] = x.dims();
    let k = examples_per_chunk(b, t, max_rows);
    // slaw's products take all rows at once (the chunks are a workaround for Burn's).
    if k == 1 || crate::ops::matmul::ours::<B>(mixed_precision()) {
        return linear(layer, x);
    }
    let y = linear(layer, x.reshape([b / k, k * t, d]));
    let width = y.dims()[2];
    y.reshape([b, t, width])
}

/// Whether this process computes the models' products in bf16 (`Precision::Bf16Mixed`).
static MIXED_PRECISION: AtomicBool = AtomicBool::new(false);

/// Sets whether this process's models compute their products (Linear layers, attention,
/// convolutions) in bf16 around f32 parameters and activations; the trainer sets it for the
/// trial's precision before building a model.
pub fn set_mixed_precision(on: bool) {
    MIXED_PRECISION.store(on, Ordering::Relaxed);
}

fn mixed_precision() -> bool {
    MIXED_PRECISION.load(Ordering::Relaxed)
}

/// `a · b`; under mixed precision the product of the operands rounded to bf16, returned in f32
/// (the gradients flow back through the same rounding, so the parameters' gradients are f32).
pub(crate) fn matmul<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
    crate::ops::matmul::matmul(a, b, mixed_precision())
}

/// `layer` applied to `x`; under mixed precision in bf16 (as PyTorch's autocast runs `linear`),
/// returned in f32.
pub(crate) fn linear<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    crate::ops::matmul::linear(layer, x, mixed_precision())
}

/// Rows per chunk of [`token_linear`] in this process (0: one example per chunk).
static LINEAR_CHUNK_ROWS: AtomicUsize = AtomicUsize::new(0);

/// The most rows per chunk of the token-wise Linear layers in this process.
pub(crate) fn linear_chunk_rows() -> usize {
    LINEAR_CHUNK_ROWS.load(Ordering::Relaxed)
}

/// Sets the most rows per chunk of the token-wise Linear layers for this process; the trainer
/// sets it for its backend before building a model.
pub fn set_linear_chunk_rows(rows: usize) {
    LINEAR_CHUNK_ROWS.store(rows, Ordering::Relaxed);
}

/// Examples per chunk: the largest divisor `k` of `batch` with `k · tokens ≤ max_rows`, at
/// least 1.
pub(crate) fn examples_per_chunk(batch: usize, tokens: usize, max_rows: usize) -> usize {
    (1..=batch)
        .rev()
        .find(|k| batch % k == 0 && k * tokens <= max_rows)
        .unwrap_or(1)
}

/// Reads every parameter of `module` once, in module order: Burn initialises a parameter
/// lazily, drawing its values from the backend's generator when it is first read.
pub(crate) fn materialize<B: Backend, M: Module<B>>(module: &M) {
    struct Touch;
    impl<B: Backend> burn::module::ModuleVisitor<B> for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// A model of any family. (One is built per trial, so the size of the enum does not matter.)
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Model<B: Backend> {
    /// Multi-layer perceptron.
    Mlp(Mlp<B>),
    /// Vision Transformer.
    Vit(Vit<B>),
    /// Normaliser-free ResNet.
    Convnet(ConvNet<B>),
    /// Autoregressive image model.
    Aim(Aim<B>),
}

impl<B: Backend> Model<B> {
    /// Builds a freshly initialised model (initialisation draws from the backend's seeded RNG).
    pub fn init(config: &ModelConfig, shape: &InputShape, device: &B::Device) -> Self {
        match config {
            ModelConfig::Mlp(c) => Model::Mlp(Mlp::init(c, shape, device)),
            ModelConfig::Vit(c) => Model::Vit(Vit::init(c, shape, device)),
            ModelConfig::Convnet(c) => Model::Convnet(ConvNet::init(c, shape, device)),
            ModelConfig::Aim(c) => Model::Aim(Aim::init(c, shape, device)),
        }
    }

    /// Class logits `[batch, classes]` of a batch `[batch, features]`; for AIM, which has no
    /// classifier, the trunk's mean-pooled features `[batch, width]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Model::Mlp(m) => m.forward(x),
            Model::Vit(v) => v.forward(x),
            Model::Convnet(c) => c.forward(x),
            Model::Aim(a) => a.features(x),
        }
    }

    /// The parameters of the final classifier or prediction layer, which adaptive gradient
    /// clipping leaves alone (NFNet).
    pub fn head_param_ids(&self) -> Vec<burn::module::ParamId> {
        let head = match self {
            Model::Mlp(m) => &m.head,
            Model::Vit(v) => &v.head,
            Model::Convnet(c) => &c.head,
            Model::Aim(a) => a.output_layer(),
        };
        std::iter::once(head.weight.id)
            .chain(head.bias.as_ref().map(|b| b.id))
            .collect()
    }
}

/// `depth` hidden layers of `width` units.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    hidden: Vec<Linear<B>>,
    head: Linear<B>,
    relu: bool,
}

impl<B: Backend> Mlp<B> {
    fn init(c: &MlpConfig, shape: &InputShape, device: &B::Device) -> Self {
        let mut hidden = Vec::with_capacity(c.depth);
        let mut d_in = shape.features();
        for _ in 0..c.depth {
            hidden.push(
                LinearConfig::new(d_in, c.width)
                    .with_bias(c.bias)
                    .init(device),
            );
            d_in = c.width;
        }
        Mlp {
            hidden,
            head: LinearConfig::new(c.width, shape.classes)
                .with_bias(c.bias)
                .init(device),
            relu: c.activation == Activation::Relu,
        }
    }

    fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        for layer in &self.hidden {
            x = linear(layer, x);
            x = if self.relu { relu(x) } else { gelu(x) };
        }
        linear(&self.head, x)
    }
}

/// Multi-head self-attention with optional LayerNorm on queries and keys.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub(crate) qkv: Linear<B>,
    pub(crate) out: Linear<B>,
    pub(crate) q_norm: Option<LayerNorm<B>>,
    pub(crate) k_norm: Option<LayerNorm<B>>,
    pub(crate) heads: usize,
}

impl<B: Backend> Attention<B> {
    pub(crate) fn init(c: &VitConfig, device: &B::Device) -> Self {
        let dh = c.width / c.heads;
        let norm = || {
            c.qk_norm
                .then(|| LayerNormConfig::new(dh).with_bias(c.bias).init(device))
        };
        Attention {
            qkv: LinearConfig::new(c.width, 3 * c.width)
                .with_bias(c.bias)
                .init(device),
            out: LinearConfig::new(c.width, c.width)
                .with_bias(c.bias)
                .init(device),
            q_norm: norm(),
            k_norm: norm(),
            heads: c.heads,
        }
    }

    /// Self-attention over `x` `[batch, tokens, width]`; `mask`, broadcast to
    /// `[batch, heads, tokens, tokens]`, is added to the scores (0 where a query may attend a
    /// key, a large negative number where it may not).
    pub(crate) fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let (h, dh) = (self.heads, x.dims()[2] / self.heads);
        let [mut q, mut k, v] = heads::split(token_linear(&self.qkv, x), h);
        if let Some(n) = &self.q_norm {
            q = layer_norm::forward(n, q);
        }
        if let Some(n) = &self.k_norm {
            k = layer_norm::forward(n, k);
        }
        let scores = matmul(q, k.swap_dims(2, 3));
        let scale = (dh as f32).sqrt().recip();
        let attn = match mask {
            Some(mask) => softmax::last_axis(scores.mul_scalar(scale) + mask, 1.0),
            None => softmax::last_axis(scores, scale),
        };
        token_linear(&self.out, heads::merge(matmul(attn, v)))
    }
}

/// One pre-norm transformer block, sequential or parallel (ViT-22B).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub(crate) norm1: LayerNorm<B>,
    pub(crate) attn: Attention<B>,
    pub(crate) norm2: Option<LayerNorm<B>>,
    pub(crate) fc1: Linear<B>,
    pub(crate) fc2: Linear<B>,
}

impl<B: Backend> Block<B> {
    pub(crate) fn init(c: &VitConfig, device: &B::Device) -> Self {
        let ln = || LayerNormConfig::new(c.width).with_bias(c.bias).init(device);
        Block {
            norm1: ln(),
            attn: Attention::init(c, device),
            norm2: (!c.parallel_block).then(ln),
            fc1: LinearConfig::new(c.width, c.mlp_dim)
                .with_bias(c.bias)
                .init(device),
            fc2: LinearConfig::new(c.mlp_dim, c.width)
                .with_bias(c.bias)
                .init(device),
        }
    }

    fn mlp(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        token_linear(&self.fc2, gelu(token_linear(&self.fc1, x)))
    }

    /// The block over `x` `[batch, tokens, width]`, with an optional additive attention mask.
    pub(crate) fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        match &self.norm2 {
            // x + Attn(LN(x)) + MLP(LN(x)): one norm feeds both branches.
            None => {
                let n = layer_norm::forward(&self.norm1, x.clone());
                x + self.attn.forward(n.clone(), mask) + self.mlp(n)
            }
            Some(norm2) => {
                let x = x.clone() + self.attn.forward(layer_norm::forward(&self.norm1, x), mask);
                x.clone() + self.mlp(layer_norm::forward(norm2, x))
            }
        }
    }
}

/// Vision Transformer over patches flattened by [`crate::train::data::to_patches`].
#[derive(Module, Debug)]
pub struct Vit<B: Backend> {
    pub(crate) patch_embedding: Linear<B>,
    pub(crate) class_token: Option<Param<Tensor<B, 3>>>,
    pub(crate) position_embedding: Param<Tensor<B, 3>>,
    pub(crate) blocks: Vec<Block<B>>,
    pub(crate) final_norm: LayerNorm<B>,
    pub(crate) head: Linear<B>,
    pub(crate) patches: usize,
    pub(crate) patch_dim: usize,
}

impl<B: Backend> Vit<B> {
    fn init(c: &VitConfig, shape: &InputShape, device: &B::Device) -> Self {
        let normal = burn::nn::Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let patch_dim = c.patch * c.patch * shape.channels;
        Vit {
            patch_embedding: LinearConfig::new(patch_dim, c.width)
                .with_bias(c.bias)
                .init(device),
            class_token: (c.pool == Pool::Cls).then(|| normal.init([1, 1, c.width], device)),
            position_embedding: normal.init([1, c.tokens(shape), c.width], device),
            blocks: (0..c.depth).map(|_| Block::init(c, device)).collect(),
            final_norm: LayerNormConfig::new(c.width).with_bias(c.bias).init(device),
            head: LinearConfig::new(c.width, shape.classes)
                .with_bias(c.bias)
                .init(device),
            patches: c.patches(shape),
            patch_dim,
        }
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let b = x.dims()[0];
        let x = x.reshape([b, self.patches, self.patch_dim]);
        let mut x = token_linear(&self.patch_embedding, x);
        if let Some(cls) = &self.class_token {
            let d = cls.dims()[2];
            x = Tensor::cat(vec![cls.val().expand([b, 1, d]), x], 1);
        }
        x = x + self.position_embedding.val();
        for block in &self.blocks {
            x = block.forward(x, None);
        }
        let x = layer_norm::forward(&self.final_norm, x);
        let [_, t, d] = x.dims();
        let pooled: Tensor<B, 2> = match self.class_token {
            Some(_) => x.narrow(1, 0, 1).reshape([b, d]),
            None => x.mean_dim(1).reshape([b, d]),
        };
        debug_assert!(t >= 1);
        linear(&self.head, pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AimConfig, ConvNetConfig, VitConfig};
    use crate::cost::model_cost;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    const FASHION: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    };

    #[test]
    fn chunks_hold_whole_examples_up_to_the_row_limit() {
        assert_eq!(examples_per_chunk(256, 64, 256), 4);
        assert_eq!(examples_per_chunk(128, 49, 256), 4); // 5 does not divide 128
        assert_eq!(examples_per_chunk(37, 49, 256), 1);
        assert_eq!(examples_per_chunk(256, 64, 0), 1);
        assert_eq!(examples_per_chunk(8, 16, 1 << 20), 8);
    }

    #[test]
    fn chunked_linear_equals_the_plain_layer_with_its_gradients() {
        use burn::backend::{Autodiff, NdArray};
        type B = Autodiff<NdArray<f32>>;
        let device = Default::default();
        <B as Backend>::seed(&device, 7);
        let layer = LinearConfig::new(6, 5).init::<B>(&device);
        let input = Tensor::<B, 3>::random(
            [8, 3, 6],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        // Reference: Burn's layer on the 3-D input, one example per batch entry.
        let plain = layer.forward(input.clone());
        let grads = plain.clone().powi_scalar(2).sum().backward();
        let (w_plain, b_plain) = (
            layer.weight.grad(&grads).unwrap(),
            layer.bias.as_ref().unwrap().grad(&grads).unwrap(),
        );
        let x_plain = input.grad(&grads).unwrap();
        for rows in [6, 12, 24] {
            let input = input.clone().detach().require_grad();
            let chunked = chunked_linear(&layer, input.clone(), rows);
            chunked
                .clone()
                .into_data()
                .assert_approx_eq::<f32>(&plain.clone().into_data(), Default::default());
            let grads = chunked.powi_scalar(2).sum().backward();
            let close = |a: Tensor<NdArray<f32>, 2>, b: Tensor<NdArray<f32>, 2>| {
                a.into_data()
                    .assert_approx_eq::<f32>(&b.into_data(), Default::default())
            };
            close(layer.weight.grad(&grads).unwrap(), w_plain.clone());
            close(
                layer
                    .bias
                    .as_ref()
                    .unwrap()
                    .grad(&grads)
                    .unwrap()
                    .unsqueeze(),
                b_plain.clone().unsqueeze(),
            );
            input
                .grad(&grads)
                .unwrap()
                .into_data()
                .assert_approx_eq::<f32>(&x_plain.clone().into_data(), Default::default());
        }
    }
    fn configs() -> Vec<ModelConfig> {
        let mut out = vec![
            ModelConfig::Mlp(MlpConfig {
                width: 48,
                depth: 3,
                activation: Activation::Gelu,
                bias: true,
            }),
            ModelConfig::Mlp(MlpConfig {
                width: 16,
                depth: 1,
                activation: Activation::Relu,
                bias: false,
            }),
        ];
        for (pool, qk_norm, parallel_block, bias) in [
            (Pool::Cls, false, false, true),
            (Pool::Mean, true, false, true),
            (Pool::Cls, true, true, false),
            (Pool::Mean, false, true, false),
        ] {
            out.push(ModelConfig::Vit(VitConfig {
                patch: 7,
                width: 32,
                depth: 2,
                heads: 4,
                mlp_dim: 64,
                pool,
                qk_norm,
                parallel_block,
                bias,
            }));
        }
        for (depths, activation) in [
            (vec![1, 1], Activation::Relu),
            (vec![1, 2, 1], Activation::Gelu),
        ] {
            out.push(ModelConfig::Convnet(ConvNetConfig {
                width: 4,
                depths,
                alpha: 0.2,
                activation,
            }));
        }
        for (head_depth, qk_norm, bias) in [(1, false, true), (2, true, false)] {
            out.push(ModelConfig::Aim(AimConfig {
                patch: 7,
                width: 32,
                depth: 2,
                heads: 4,
                mlp_dim: 64,
                head_depth,
                qk_norm,
                bias,
            }));
        }
        out
    }

    /// The analytical counts that `slaw plan` shows are the Burn modules' own counts.
    #[test]
    fn analytical_params_equal_burn_module_params() {
        let device = Default::default();
        for config in configs() {
            let model = Model::<B>::init(&config, &FASHION, &device);
            let cost = model_cost(&config, &FASHION);
            assert_eq!(model.num_params() as u64, cost.params_total, "{config:?}");
        }
    }

    /// Colour and any image side (the patch dividing it): every family's stem takes C channels,
    /// the token count follows the side, and the analytical parameter counts still equal the
    /// modules' own; the FLOPs follow the token count.
    #[test]
    fn colour_and_other_sides_follow_in_counts_and_shapes() {
        let device = Default::default();
        let colour = [
            InputShape {
                channels: 3,
                height: 14,
                width: 21,
                classes: 6,
            },
            InputShape {
                channels: 3,
                height: 35,
                width: 28,
                classes: 100,
            },
        ];
        for config in configs() {
            for shape in &colour {
                let model = Model::<B>::init(&config, shape, &device);
                let cost = model_cost(&config, shape);
                assert_eq!(
                    model.num_params() as u64,
                    cost.params_total,
                    "{config:?} {shape:?}"
                );
                let x = Tensor::<B, 2>::zeros([2, shape.features()], &device);
                let want = match &config {
                    ModelConfig::Aim(a) => [2, a.width],
                    _ => [2, shape.classes],
                };
                assert_eq!(model.forward(x).dims(), want, "{config:?} {shape:?}");
            }
            if matches!(config, ModelConfig::Vit(_) | ModelConfig::Aim(_)) {
                // 6 and 20 patches of 7×7 against Fashion-MNIST's 16.
                let flops = |s: &InputShape| model_cost(&config, s).train_flops_per_example;
                assert!(flops(&colour[0]) < flops(&FASHION), "{config:?}");
                assert!(flops(&colour[1]) > flops(&FASHION), "{config:?}");
            }
        }
    }

    /// Under mixed precision every model's products run in bf16: the logits move by bf16's
    /// rounding and no more, and the parameters' gradients are f32. (Sets the process-wide
    /// switch; the GPU tests run on one thread.)
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn mixed_precision_rounds_products_to_bf16_with_f32_gradients_on_cuda() {
        use burn::backend::Autodiff;
        use burn::tensor::backend::AutodiffBackend;
        use burn::tensor::{DType, Distribution};
        type C = Autodiff<burn::backend::Cuda<f32, i32>>;
        let device = burn::backend::cuda::CudaDevice::new(0);
        for config in configs() {
            let model = Model::<C>::init(&config, &FASHION, &device);
            let x = Tensor::<C, 2>::random([4, 784], Distribution::Default, &device);
            super::set_mixed_precision(false);
            let full = model.forward(x.clone());
            super::set_mixed_precision(true);
            let mixed = model.forward(x);
            let grads = mixed.clone().powi_scalar(2).mean().backward();
            super::set_mixed_precision(false);
            let values = |t: Tensor<C, 2>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
            let (full, mixed) = (values(full), values(mixed.clone()));
            let scale = full.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let diff = full
                .iter()
                .zip(&mixed)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                diff > 0.0 && diff < 0.05 * scale,
                "{config:?}: logits differ by {diff} (scale {scale})"
            );
            let mut checked = 0;
            struct Dtypes<'a>(&'a <C as AutodiffBackend>::Gradients, &'a mut usize);
            impl burn::module::ModuleVisitor<C> for Dtypes<'_> {
                fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<C, D>>) {
                    if let Some(g) = param.grad(self.0) {
                        assert_eq!(g.dtype(), DType::F32);
                        *self.1 += 1;
                    }
                }
            }
            model.visit(&mut Dtypes(&grads, &mut checked));
            assert!(checked > 0, "{config:?}: no parameter has a gradient");
        }
    }

    #[test]
    fn forward_shapes() {
        let device = Default::default();
        for config in configs() {
            let model = Model::<B>::init(&config, &FASHION, &device);
            let x = Tensor::<B, 2>::zeros([3, 784], &device);
            let want = match &config {
                ModelConfig::Aim(a) => [3, a.width],
                _ => [3, 10],
            };
            assert_eq!(model.forward(x).dims(), want, "{config:?}");
        }
    }
}
