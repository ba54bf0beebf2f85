//! Several trials of one ViT shape trained as one model ("horizontally fused" trials, Wang et
//! al., HFTA, MLSys 2021): every parameter gains a leading trial axis, `[trials, …]`, and every
//! layer runs once for all trials, as a product batched over that axis. The trials stay
//! independent: no operation mixes values of two trials, so each trial's numbers are the
//! numbers it would have trained to alone (up to the order of floating-point sums), while a
//! step launches the kernels of one trial, not of `trials`.
//!
//! A stack is built from the trials' own freshly initialised models ([`StackedVit::stack`]),
//! so that each trial starts from the weights its seed gives it alone. Activations are laid out
//! `[trials, examples · tokens, width]`; attention folds the trials into its batch axis.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, Linear};
use burn::tensor::activation::{gelu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::models::{examples_per_chunk, linear_chunk_rows, Attention, Block, Vit};

/// The most rows per chunk of a stacked Linear layer: the lone trial's setting, unless
/// [`crate::train::options::TrainerOptions::stack_rows`] says otherwise (for benchmarks; a
/// large value gives one chunk, a plain batched product over the trials).
fn stack_chunk_rows() -> usize {
    crate::train::options::options()
        .stack_rows
        .unwrap_or_else(linear_chunk_rows)
}

/// Burn's LayerNorm epsilon, which every norm of the ViT keeps (`LayerNormConfig`'s default).
const LAYER_NORM_EPS: f64 = 1e-5;

/// Stacks `[a, b, …]` of equal shapes into a new parameter `[trials, a, b, …]`.
fn stack_values<B: Backend, const D: usize, const D2: usize>(
    values: Vec<Tensor<B, D>>,
) -> Param<Tensor<B, D2>> {
    Param::from_tensor(Tensor::stack::<D2>(values, 0).detach())
}

/// A Linear layer per trial: weight `[trials, d_in, d_out]`, bias `[trials, 1, d_out]`.
#[derive(Module, Debug)]
pub struct StackedLinear<B: Backend> {
    weight: Param<Tensor<B, 3>>,
    bias: Option<Param<Tensor<B, 3>>>,
}

/// The vectors `[n]` that `pick` finds in each of `items` as one parameter
/// `[trials, 1, n]`, or `None` where the first item has none (stacked trials share one shape).
fn stack_vectors<B: Backend, T>(
    items: &[&T],
    pick: impl Fn(&T) -> Option<&Param<Tensor<B, 1>>>,
) -> Option<Param<Tensor<B, 3>>> {
    pick(items[0])?;
    Some(stack_values(
        items
            .iter()
            .map(|item| {
                let v = pick(item).expect("stacked trials share one shape");
                v.val().unsqueeze_dim::<2>(0)
            })
            .collect(),
    ))
}

impl<B: Backend> StackedLinear<B> {
    fn stack(layers: &[&Linear<B>]) -> Self {
        Self {
            weight: stack_values(layers.iter().map(|l| l.weight.val()).collect()),
            bias: stack_vectors(layers, |l| l.bias.as_ref()),
        }
    }

    /// The layer on `x` `[trials, examples · tokens, d_in]`, batched over chunks of whole
    /// examples as the lone trial's `token_linear` chunks them (Burn's weight gradient is a
    /// product over each chunk's rows, summed over the chunks).
    fn forward(&self, x: Tensor<B, 3>, tokens: usize) -> Tensor<B, 3> {
        let [trials, rows, d_in] = x.dims();
        let examples = rows / tokens;
        let per_chunk = examples_per_chunk(examples, tokens, stack_chunk_rows());
        let chunks = examples / per_chunk;
        if chunks == 1 {
            let y = x.matmul(self.weight.val());
            return match &self.bias {
                Some(b) => y + b.val(),
                None => y,
            };
        }
        let y = x
            .reshape([trials, chunks, per_chunk * tokens, d_in])
            .matmul(self.weight.val().unsqueeze_dim::<4>(1));
        let y = match &self.bias {
            Some(b) => y + b.val().unsqueeze_dim::<4>(1),
            None => y,
        };
        let d_out = y.dims()[3];
        y.reshape([trials, rows, d_out])
    }
}

/// A LayerNorm per trial over the last axis: gain and bias `[trials, 1, width]`. The
/// arithmetic is Burn's default `layer_norm` (biased variance, ε inside the square root).
#[derive(Module, Debug)]
pub struct StackedLayerNorm<B: Backend> {
    gamma: Param<Tensor<B, 3>>,
    beta: Option<Param<Tensor<B, 3>>>,
}

impl<B: Backend> StackedLayerNorm<B> {
    fn stack(norms: &[&LayerNorm<B>]) -> Self {
        Self {
            gamma: stack_vectors(norms, |n| Some(&n.gamma)).expect("a norm has a gain"),
            beta: stack_vectors(norms, |n| n.beta.as_ref()),
        }
    }

    /// Normalises `x` `[trials, rows, width]` over its last axis.
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let mean = x.clone().mean_dim(2);
        let centered = x - mean;
        let var = (centered.clone() * centered.clone()).mean_dim(2);
        let normalized = centered / var.add_scalar(LAYER_NORM_EPS).sqrt();
        let scaled = normalized * self.gamma.val();
        match &self.beta {
            Some(b) => scaled + b.val(),
            None => scaled,
        }
    }
}

/// Multi-head self-attention per trial.
#[derive(Module, Debug)]
pub struct StackedAttention<B: Backend> {
    qkv: StackedLinear<B>,
    out: StackedLinear<B>,
    q_norm: Option<StackedLayerNorm<B>>,
    k_norm: Option<StackedLayerNorm<B>>,
    heads: usize,
}

impl<B: Backend> StackedAttention<B> {
    fn stack(layers: &[&Attention<B>]) -> Self {
        let norm = |pick: fn(&Attention<B>) -> Option<&LayerNorm<B>>| {
            pick(layers[0]).is_some().then(|| {
                let norms: Vec<&LayerNorm<B>> = layers
                    .iter()
                    .map(|a| pick(a).expect("stacked trials share one shape"))
                    .collect();
                StackedLayerNorm::stack(&norms)
            })
        };
        Self {
            qkv: StackedLinear::stack(&layers.iter().map(|a| &a.qkv).collect::<Vec<_>>()),
            out: StackedLinear::stack(&layers.iter().map(|a| &a.out).collect::<Vec<_>>()),
            q_norm: norm(|a| a.q_norm.as_ref()),
            k_norm: norm(|a| a.k_norm.as_ref()),
            heads: layers[0].heads,
        }
    }

    /// Self-attention over `x` `[trials, examples · tokens, width]`.
    fn forward(&self, x: Tensor<B, 3>, tokens: usize) -> Tensor<B, 3> {
        let [trials, rows, d] = x.dims();
        let examples = rows / tokens;
        let (h, dh) = (self.heads, d / self.heads);
        let mut qkv = self.qkv.forward(x, tokens).chunk(3, 2).into_iter();
        let mut next = || qkv.next().expect("qkv has three chunks");
        let split_heads = |t: Tensor<B, 3>, norm: &Option<StackedLayerNorm<B>>| {
            let t = match norm {
                // The norm runs over each head's features, per trial.
                Some(n) => n
                    .forward(t.reshape([trials, rows * h, dh]))
                    .reshape([trials, rows, d]),
                None => t,
            };
            t.reshape([trials * examples, tokens, h, dh])
                .swap_dims(1, 2)
        };
        let q = split_heads(next(), &self.q_norm);
        let k = split_heads(next(), &self.k_norm);
        let v = split_heads(next(), &None);
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (dh as f64).sqrt());
        let attn = softmax(scores, 3);
        let y = attn.matmul(v).swap_dims(1, 2).reshape([trials, rows, d]);
        self.out.forward(y, tokens)
    }
}

/// One pre-norm transformer block per trial, sequential or parallel.
#[derive(Module, Debug)]
pub struct StackedBlock<B: Backend> {
    norm1: StackedLayerNorm<B>,
    attn: StackedAttention<B>,
    norm2: Option<StackedLayerNorm<B>>,
    fc1: StackedLinear<B>,
    fc2: StackedLinear<B>,
}

impl<B: Backend> StackedBlock<B> {
    fn stack(blocks: &[&Block<B>]) -> Self {
        let each = |f: fn(&Block<B>) -> &LayerNorm<B>| -> Vec<&LayerNorm<B>> {
            blocks.iter().map(|b| f(b)).collect()
        };
        Self {
            norm1: StackedLayerNorm::stack(&each(|b| &b.norm1)),
            attn: StackedAttention::stack(&blocks.iter().map(|b| &b.attn).collect::<Vec<_>>()),
            norm2: blocks[0].norm2.is_some().then(|| {
                StackedLayerNorm::stack(&each(|b| {
                    b.norm2.as_ref().expect("stacked trials share one shape")
                }))
            }),
            fc1: StackedLinear::stack(&blocks.iter().map(|b| &b.fc1).collect::<Vec<_>>()),
            fc2: StackedLinear::stack(&blocks.iter().map(|b| &b.fc2).collect::<Vec<_>>()),
        }
    }

    fn mlp(&self, x: Tensor<B, 3>, tokens: usize) -> Tensor<B, 3> {
        self.fc2.forward(gelu(self.fc1.forward(x, tokens)), tokens)
    }

    fn forward(&self, x: Tensor<B, 3>, tokens: usize) -> Tensor<B, 3> {
        match &self.norm2 {
            None => {
                let n = self.norm1.forward(x.clone());
                x + self.attn.forward(n.clone(), tokens) + self.mlp(n, tokens)
            }
            Some(norm2) => {
                let x = x.clone() + self.attn.forward(self.norm1.forward(x), tokens);
                x.clone() + self.mlp(norm2.forward(x), tokens)
            }
        }
    }
}

/// Vision Transformers of one shape, one per trial.
#[derive(Module, Debug)]
pub struct StackedVit<B: Backend> {
    patch_embedding: StackedLinear<B>,
    class_token: Option<Param<Tensor<B, 3>>>,
    position_embedding: Param<Tensor<B, 3>>,
    blocks: Vec<StackedBlock<B>>,
    final_norm: StackedLayerNorm<B>,
    head: StackedLinear<B>,
    patches: usize,
    patch_dim: usize,
}

impl<B: Backend> StackedVit<B> {
    /// The trials' models as one stack, in the order given. All must have one shape (one
    /// [`crate::config::VitConfig`]).
    pub fn stack(models: &[&Vit<B>]) -> Self {
        let first = models[0];
        let cat = |values: Vec<Tensor<B, 3>>| Param::from_tensor(Tensor::cat(values, 0).detach());
        Self {
            patch_embedding: StackedLinear::stack(
                &models
                    .iter()
                    .map(|m| &m.patch_embedding)
                    .collect::<Vec<_>>(),
            ),
            class_token: first.class_token.as_ref().map(|_| {
                cat(models
                    .iter()
                    .map(|m| {
                        let c = m.class_token.as_ref();
                        c.expect("stacked trials share one shape").val()
                    })
                    .collect())
            }),
            position_embedding: cat(models.iter().map(|m| m.position_embedding.val()).collect()),
            blocks: (0..first.blocks.len())
                .map(|i| {
                    StackedBlock::stack(&models.iter().map(|m| &m.blocks[i]).collect::<Vec<_>>())
                })
                .collect(),
            final_norm: StackedLayerNorm::stack(
                &models.iter().map(|m| &m.final_norm).collect::<Vec<_>>(),
            ),
            head: StackedLinear::stack(&models.iter().map(|m| &m.head).collect::<Vec<_>>()),
            patches: first.patches,
            patch_dim: first.patch_dim,
        }
    }

    /// How many trials.
    pub fn trials(&self) -> usize {
        self.position_embedding.dims()[0]
    }

    /// Class logits `[trials, examples, classes]` of each trial's batch `x`
    /// `[trials, examples, patches · patch_dim]`.
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [trials, b, _] = x.dims();
        let x = x.reshape([trials, b * self.patches, self.patch_dim]);
        let x = self.patch_embedding.forward(x, self.patches);
        let d = x.dims()[2];
        let mut x: Tensor<B, 4> = x.reshape([trials, b, self.patches, d]);
        if let Some(cls) = &self.class_token {
            let cls = cls.val().unsqueeze_dim::<4>(1).expand([trials, b, 1, d]);
            x = Tensor::cat(vec![cls, x], 2);
        }
        let tokens = x.dims()[2];
        let x = x + self.position_embedding.val().unsqueeze_dim::<4>(1);
        let mut x = x.reshape([trials, b * tokens, d]);
        for block in &self.blocks {
            x = block.forward(x, tokens);
        }
        let x: Tensor<B, 4> = self.final_norm.forward(x).reshape([trials, b, tokens, d]);
        let pooled = match self.class_token {
            Some(_) => x.narrow(2, 0, 1),
            None => x.mean_dim(2),
        }
        .reshape([trials, b, d]);
        self.head.forward(pooled, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{InputShape, ModelConfig, Pool, VitConfig};
    use crate::models::Model;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Distribution;

    type B = Autodiff<NdArray<f32>>;

    const SHAPE: InputShape = InputShape {
        channels: 1,
        height: 14,
        width: 14,
        classes: 5,
    };

    fn vit(seed: u64, pool: Pool, qk_norm: bool, parallel_block: bool, bias: bool) -> Vit<B> {
        let device = Default::default();
        <B as Backend>::seed(&device, seed);
        let config = ModelConfig::Vit(VitConfig {
            patch: 7,
            width: 16,
            depth: 2,
            heads: 2,
            mlp_dim: 32,
            pool,
            qk_norm,
            parallel_block,
            bias,
        });
        match Model::<B>::init(&config, &SHAPE, &device) {
            Model::Vit(v) => v,
            _ => unreachable!("a ViT configuration builds a ViT"),
        }
    }

    /// Each trial's slice of the stack's logits is its own model's logits, and each trial's
    /// gradients are its own model's, for every switch of the ViT.
    #[test]
    fn each_trial_computes_what_its_own_model_computes() {
        let device = Default::default();
        for (pool, qk_norm, parallel, bias) in [
            (Pool::Mean, false, false, true),
            (Pool::Cls, true, true, false),
        ] {
            let models: Vec<Vit<B>> = (0..3)
                .map(|s| vit(10 + s, pool, qk_norm, parallel, bias))
                .collect();
            let stack = StackedVit::stack(&models.iter().collect::<Vec<_>>());
            assert_eq!(stack.trials(), 3);
            let x = Tensor::<B, 3>::random([3, 4, 196], Distribution::Normal(0.0, 1.0), &device);
            let logits = stack.forward(x.clone());
            assert_eq!(logits.dims(), [3, 4, 5]);
            // A loss that weighs each trial differently: gradients must not leak across.
            let weights = Tensor::<B, 3>::from_floats([[[1.0]], [[2.0]], [[-0.5]]], &device);
            let grads = (logits.clone().powi_scalar(2) * weights).sum().backward();
            let head_grad = stack.head.weight.grad(&grads).unwrap();
            for (i, model) in models.iter().enumerate() {
                let xi = x.clone().narrow(0, i, 1).reshape([4, 196]);
                let alone = Model::Vit(model.clone()).forward(xi);
                let got = logits.clone().narrow(0, i, 1).reshape([4, 5]);
                got.into_data()
                    .assert_approx_eq::<f32>(&alone.clone().into_data(), Default::default());
                let w = [1.0, 2.0, -0.5][i];
                let grads_alone = alone.powi_scalar(2).mul_scalar(w).sum().backward();
                let want = model.head.weight.grad(&grads_alone).unwrap();
                head_grad
                    .clone()
                    .narrow(0, i, 1)
                    .reshape(want.dims())
                    .into_data()
                    .assert_approx_eq::<f32>(&want.into_data(), Default::default());
            }
        }
    }
}
