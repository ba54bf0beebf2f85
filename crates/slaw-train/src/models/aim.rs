//! The autoregressive image model (AIM; El-Nouby et al., "Scalable Pre-training of Large
//! Autoregressive Image Models", 2024), at small scale.
//!
//! Patches are read in raster order. A ViT trunk with **prefix attention** (the first `P`
//! patches attend to each other bidirectionally, every later patch causally) feeds an MLP
//! prediction head of residual blocks that regresses each next patch's pixels, normalised per
//! patch. The loss is the mean squared error over the non-prefix targets only. At evaluation
//! the pre-training loss is measured causally (`P = 1`) and the trunk's features, computed
//! with bidirectional attention and mean-pooled, feed a linear probe (see `probe`).

use burn::module::{Module, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::config::{AimConfig, InputShape};
use crate::models::{token_linear, Block};
use crate::ops::layer_norm;

/// The additive score for a query–key pair that must not attend.
const MASKED: f32 = -1e9;

/// The additive attention masks `[batch, 1, tokens, tokens]` (flattened) of prefix lengths
/// `prefixes`: query `i` may attend key `j` when `j ≤ i` or `j < P`.
pub fn prefix_mask(prefixes: &[usize], tokens: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(prefixes.len() * tokens * tokens);
    for &p in prefixes {
        for i in 0..tokens {
            out.extend((0..tokens).map(|j| if j <= i || j < p { 0.0 } else { MASKED }));
        }
    }
    out
}

/// The loss weights `[batch, tokens − 1]` (flattened): the prediction at position `i` targets
/// patch `i + 1` and counts when that patch lies outside the prefix (`i + 1 ≥ P`).
pub fn loss_weights(prefixes: &[usize], tokens: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(prefixes.len() * tokens.saturating_sub(1));
    for &p in prefixes {
        out.extend((0..tokens.saturating_sub(1)).map(|i| if i + 1 >= p { 1.0 } else { 0.0 }));
    }
    out
}

/// One residual block of the prediction head: `x + fc2(gelu(fc1(LN(x))))`.
#[derive(Module, Debug)]
pub struct HeadBlock<B: Backend> {
    norm: LayerNorm<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

impl<B: Backend> HeadBlock<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let h = token_linear(
            &self.fc2,
            gelu(token_linear(
                &self.fc1,
                layer_norm::forward(&self.norm, x.clone()),
            )),
        );
        x + h
    }
}

/// Trunk, prediction head and output layer.
#[derive(Module, Debug)]
pub struct Aim<B: Backend> {
    patch_embedding: Linear<B>,
    position_embedding: Param<Tensor<B, 3>>,
    blocks: Vec<Block<B>>,
    final_norm: LayerNorm<B>,
    head_blocks: Vec<HeadBlock<B>>,
    head_norm: LayerNorm<B>,
    output: Linear<B>,
    patches: usize,
    patch_dim: usize,
}

impl<B: Backend> Aim<B> {
    /// A freshly initialised model for images of `shape`.
    pub fn init(c: &AimConfig, shape: &InputShape, device: &B::Device) -> Self {
        let trunk = c.trunk();
        let patch_dim = c.patch * c.patch * shape.channels;
        let patches = c.patches(shape);
        let ln = || LayerNormConfig::new(c.width).with_bias(c.bias).init(device);
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).with_bias(c.bias).init(device);
        Aim {
            patch_embedding: linear(patch_dim, c.width),
            position_embedding: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([1, patches, c.width], device),
            blocks: (0..c.depth).map(|_| Block::init(&trunk, device)).collect(),
            final_norm: ln(),
            head_blocks: (0..c.head_depth)
                .map(|_| HeadBlock {
                    norm: ln(),
                    fc1: linear(c.width, c.mlp_dim),
                    fc2: linear(c.mlp_dim, c.width),
                })
                .collect(),
            head_norm: ln(),
            output: linear(c.width, patch_dim),
            patches,
            patch_dim,
        }
    }

    /// The layer that maps head features to pixels.
    pub fn output_layer(&self) -> &Linear<B> {
        &self.output
    }

    /// Patches in raster order.
    pub fn patches(&self) -> usize {
        self.patches
    }

    /// Trunk features `[batch, patches, width]` of flattened patches `[batch, patches·dim]`.
    fn trunk(&self, x: Tensor<B, 2>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let b = x.dims()[0];
        let x = x.reshape([b, self.patches, self.patch_dim]);
        let mut h = token_linear(&self.patch_embedding, x) + self.position_embedding.val();
        for block in &self.blocks {
            h = block.forward(h, mask.clone());
        }
        layer_norm::forward(&self.final_norm, h)
    }

    /// Mean-pooled trunk features `[batch, width]` with bidirectional attention (what the
    /// linear probe reads).
    pub fn features(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.trunk(x, None);
        let [b, _, d] = h.dims();
        h.mean_dim(1).reshape([b, d])
    }

    /// Per-example next-patch losses: the mean squared error of each prediction against the
    /// normalised next patch, `[batch, patches − 1]`, under the additive attention `mask`
    /// `[batch, 1, patches, patches]`.
    pub fn next_patch_errors(&self, x: Tensor<B, 2>, mask: Tensor<B, 4>) -> Tensor<B, 2> {
        let b = x.dims()[0];
        let t = self.patches;
        let mut h = self.trunk(x.clone(), Some(mask));
        for block in &self.head_blocks {
            h = block.forward(h);
        }
        let prediction =
            token_linear(&self.output, layer_norm::forward(&self.head_norm, h)).narrow(1, 0, t - 1);
        let target = x.reshape([b, t, self.patch_dim]).narrow(1, 1, t - 1);
        let centred = target.clone() - target.mean_dim(2);
        let std = centred.clone().square().mean_dim(2).add_scalar(1e-6).sqrt();
        let target = centred / std;
        (prediction - target)
            .square()
            .mean_dim(2)
            .reshape([b, t - 1])
    }

    /// The pre-training loss: next-patch errors averaged over the positions with weight 1.
    pub fn pretrain_loss(
        &self,
        x: Tensor<B, 2>,
        mask: Tensor<B, 4>,
        weights: Tensor<B, 2>,
    ) -> Tensor<B, 1> {
        let errors = self.next_patch_errors(x, mask);
        (errors * weights.clone()).sum() / weights.sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_mask_shape_and_values() {
        // Two examples of 4 tokens with prefixes 1 (causal) and 3.
        let m = prefix_mask(&[1, 3], 4);
        assert_eq!(m.len(), 2 * 4 * 4);
        let allowed = |e: usize, i: usize, j: usize| m[e * 16 + i * 4 + j] == 0.0;
        // P = 1: exactly the lower triangle with the diagonal.
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(allowed(0, i, j), j <= i, "causal ({i}, {j})");
            }
        }
        // P = 3: tokens 0..3 see each other; token 3 sees everything before it and itself.
        let rows: Vec<Vec<bool>> = (0..4)
            .map(|i| (0..4).map(|j| allowed(1, i, j)).collect())
            .collect();
        assert_eq!(
            rows,
            vec![
                vec![true, true, true, false],
                vec![true, true, true, false],
                vec![true, true, true, false],
                vec![true, true, true, true],
            ]
        );
        assert!(m.iter().all(|&v| v == 0.0 || v == MASKED));
    }

    #[test]
    fn loss_only_on_non_prefix_targets() {
        // 5 tokens: predictions at positions 0..4 target patches 1..5.
        assert_eq!(loss_weights(&[1], 5), vec![1., 1., 1., 1.]);
        // P = 3: patches 0, 1, 2 are the prefix; only the targets 3 and 4 count.
        assert_eq!(loss_weights(&[3], 5), vec![0., 0., 1., 1.]);
        assert_eq!(loss_weights(&[4], 5), vec![0., 0., 0., 1.]);
        assert_eq!(loss_weights(&[2, 4], 3).len(), 4);
    }
}
