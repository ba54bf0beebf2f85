//! The Burn modules of the model families: an MLP and a Vision Transformer with the ViT-22B
//! switches (QK-norm, parallel blocks, no biases) here, the NFNet-style ConvNet in
//! [`crate::convnet`] and the autoregressive image model in [`crate::aim`], and the [`Model`]
//! enum over all of them.
//!
//! Every classifier maps a batch of examples, laid out as the trainer prepares them (flat
//! pixels for the MLP and the ConvNet, flattened patches for the ViT and AIM), to class logits;
//! AIM maps them to next-patch predictions.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::aim::Aim;
use crate::config::{Activation, InputShape, MlpConfig, ModelConfig, Pool, VitConfig};
use crate::convnet::ConvNet;

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
            x = layer.forward(x);
            x = if self.relu { relu(x) } else { gelu(x) };
        }
        self.head.forward(x)
    }
}

/// Multi-head self-attention with optional LayerNorm on queries and keys.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    qkv: Linear<B>,
    out: Linear<B>,
    q_norm: Option<LayerNorm<B>>,
    k_norm: Option<LayerNorm<B>>,
    heads: usize,
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
        let [b, t, d] = x.dims();
        let (h, dh) = (self.heads, d / self.heads);
        let mut qkv = self.qkv.forward(x).chunk(3, 2).into_iter();
        let mut split_heads = || {
            qkv.next()
                .expect("qkv has three chunks")
                .reshape([b, t, h, dh])
                .swap_dims(1, 2)
        };
        let (mut q, mut k, v) = (split_heads(), split_heads(), split_heads());
        if let Some(n) = &self.q_norm {
            q = n.forward(q);
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(k);
        }
        let mut scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (dh as f64).sqrt());
        if let Some(mask) = mask {
            scores = scores + mask;
        }
        let attn = softmax(scores, 3);
        let y = attn.matmul(v).swap_dims(1, 2).reshape([b, t, d]);
        self.out.forward(y)
    }
}

/// One pre-norm transformer block, sequential or parallel (ViT-22B).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    norm1: LayerNorm<B>,
    attn: Attention<B>,
    norm2: Option<LayerNorm<B>>,
    fc1: Linear<B>,
    fc2: Linear<B>,
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
        self.fc2.forward(gelu(self.fc1.forward(x)))
    }

    /// The block over `x` `[batch, tokens, width]`, with an optional additive attention mask.
    pub(crate) fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        match &self.norm2 {
            // x + Attn(LN(x)) + MLP(LN(x)): one norm feeds both branches.
            None => {
                let n = self.norm1.forward(x.clone());
                x + self.attn.forward(n.clone(), mask) + self.mlp(n)
            }
            Some(norm2) => {
                let x = x.clone() + self.attn.forward(self.norm1.forward(x), mask);
                x.clone() + self.mlp(norm2.forward(x))
            }
        }
    }
}

/// Vision Transformer over patches flattened by [`crate::data::to_patches`].
#[derive(Module, Debug)]
pub struct Vit<B: Backend> {
    patch_embedding: Linear<B>,
    class_token: Option<Param<Tensor<B, 3>>>,
    position_embedding: Param<Tensor<B, 3>>,
    blocks: Vec<Block<B>>,
    final_norm: LayerNorm<B>,
    head: Linear<B>,
    patches: usize,
    patch_dim: usize,
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
        let mut x = self.patch_embedding.forward(x);
        if let Some(cls) = &self.class_token {
            let d = cls.dims()[2];
            x = Tensor::cat(vec![cls.val().expand([b, 1, d]), x], 1);
        }
        x = x + self.position_embedding.val();
        for block in &self.blocks {
            x = block.forward(x, None);
        }
        let x = self.final_norm.forward(x);
        let [_, t, d] = x.dims();
        let pooled: Tensor<B, 2> = match self.class_token {
            Some(_) => x.narrow(1, 0, 1).reshape([b, d]),
            None => x.mean_dim(1).reshape([b, d]),
        };
        debug_assert!(t >= 1);
        self.head.forward(pooled)
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
