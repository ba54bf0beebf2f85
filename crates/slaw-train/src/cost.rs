//! Analytical parameter and FLOP counts of the model families, layer by layer.
//!
//! Conventions (see DESIGN.md, "Scientific conventions"): a multiply-add is 2 FLOPs; only
//! matrix multiplications are counted (linear layers, attention scores and attention-weighted
//! values); training costs 3× the forward pass. Parameter counts here must equal what the Burn
//! modules report (`Module::num_params`); a test in `model` checks that for every family.

use serde::{Deserialize, Serialize};

use crate::config::{InputShape, MlpConfig, ModelConfig, Pool, VitConfig};

/// Parameters and FLOPs of one layer (or group of identical layers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerCost {
    /// What the layer is, e.g. `block.attn.qkv`.
    pub name: String,
    /// Trainable parameters.
    pub params: u64,
    /// Forward FLOPs per example.
    pub forward_flops: u64,
    /// Whether the parameters are embeddings (patch, position, class token).
    pub embedding: bool,
}

/// The cost of a model at one size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCost {
    /// All trainable parameters.
    pub params_total: u64,
    /// Parameters outside the embeddings (patch, position, class token).
    pub params_non_embedding: u64,
    /// Forward FLOPs per example.
    pub forward_flops_per_example: u64,
    /// Training FLOPs per example (3 × forward).
    pub train_flops_per_example: u64,
    /// Tokens per example (1 for the MLP).
    pub tokens_per_example: u64,
    /// The layers the totals are summed from.
    pub layers: Vec<LayerCost>,
}

impl ModelCost {
    fn from_layers(layers: Vec<LayerCost>, tokens_per_example: u64) -> Self {
        let params_total = layers.iter().map(|l| l.params).sum();
        let params_non_embedding = layers
            .iter()
            .filter(|l| !l.embedding)
            .map(|l| l.params)
            .sum();
        let forward: u64 = layers.iter().map(|l| l.forward_flops).sum();
        ModelCost {
            params_total,
            params_non_embedding,
            forward_flops_per_example: forward,
            train_flops_per_example: 3 * forward,
            tokens_per_example,
            layers,
        }
    }
}

fn layer(name: &str, params: u64, forward_flops: u64, embedding: bool) -> LayerCost {
    LayerCost {
        name: name.to_string(),
        params,
        forward_flops,
        embedding,
    }
}

/// A linear layer `d_in → d_out` applied to `rows` vectors per example.
fn linear(name: &str, d_in: u64, d_out: u64, bias: bool, rows: u64) -> LayerCost {
    layer(
        name,
        d_in * d_out + if bias { d_out } else { 0 },
        2 * rows * d_in * d_out,
        false,
    )
}

fn layer_norm(name: &str, d: u64, bias: bool) -> LayerCost {
    layer(name, d + if bias { d } else { 0 }, 0, false)
}

/// Parameter and FLOP counts of `model` on examples of `shape`.
pub fn model_cost(model: &ModelConfig, shape: &InputShape) -> ModelCost {
    match model {
        ModelConfig::Mlp(m) => mlp_cost(m, shape),
        ModelConfig::Vit(v) => vit_cost(v, shape),
    }
}

fn mlp_cost(m: &MlpConfig, shape: &InputShape) -> ModelCost {
    let (f, w, k) = (
        shape.features() as u64,
        m.width as u64,
        shape.classes as u64,
    );
    let mut layers = vec![linear("input", f, w, m.bias, 1)];
    for i in 1..m.depth {
        layers.push(linear(&format!("hidden.{i}"), w, w, m.bias, 1));
    }
    layers.push(linear("head", w, k, m.bias, 1));
    ModelCost::from_layers(layers, 1)
}

fn vit_cost(v: &VitConfig, shape: &InputShape) -> ModelCost {
    let d = v.width as u64;
    let m = v.mlp_dim as u64;
    let patches = v.patches(shape) as u64;
    let t = v.tokens(shape) as u64;
    let patch_dim = (v.patch * v.patch * shape.channels) as u64;
    let dh = d / v.heads as u64;
    let b = v.bias;

    let mut patch = linear("patch_embedding", patch_dim, d, b, patches);
    patch.embedding = true;
    let mut layers = vec![patch];
    if v.pool == Pool::Cls {
        layers.push(layer("class_token", d, 0, true));
    }
    layers.push(layer("position_embedding", t * d, 0, true));
    for i in 0..v.depth {
        let p = format!("block.{i}");
        layers.push(layer_norm(&format!("{p}.norm1"), d, b));
        layers.push(linear(&format!("{p}.attn.qkv"), d, 3 * d, b, t));
        if v.qk_norm {
            layers.push(layer_norm(&format!("{p}.attn.q_norm"), dh, b));
            layers.push(layer_norm(&format!("{p}.attn.k_norm"), dh, b));
        }
        // QKᵀ: t × t scores of length-dh dot products per head; softmax(QKᵀ)·V likewise.
        layers.push(layer(&format!("{p}.attn.scores"), 0, 2 * t * t * d, false));
        layers.push(layer(&format!("{p}.attn.values"), 0, 2 * t * t * d, false));
        layers.push(linear(&format!("{p}.attn.out"), d, d, b, t));
        if !v.parallel_block {
            layers.push(layer_norm(&format!("{p}.norm2"), d, b));
        }
        layers.push(linear(&format!("{p}.mlp.fc1"), d, m, b, t));
        layers.push(linear(&format!("{p}.mlp.fc2"), m, d, b, t));
    }
    layers.push(layer_norm("final_norm", d, b));
    layers.push(linear("head", d, shape.classes as u64, b, 1));
    ModelCost::from_layers(layers, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Activation;

    const FASHION: InputShape = InputShape {
        channels: 1,
        height: 28,
        width: 28,
        classes: 10,
    };

    #[test]
    fn mlp_counts_by_hand() {
        let m = MlpConfig {
            width: 100,
            depth: 2,
            activation: Activation::Relu,
            bias: true,
        };
        let c = mlp_cost(&m, &FASHION);
        // 784·100+100 + 100·100+100 + 100·10+10
        assert_eq!(c.params_total, 78_500 + 10_100 + 1_010);
        assert_eq!(c.params_non_embedding, c.params_total);
        assert_eq!(c.forward_flops_per_example, 2 * (78_400 + 10_000 + 1_000));
        assert_eq!(c.train_flops_per_example, 6 * (78_400 + 10_000 + 1_000));
    }

    fn vit(pool: Pool, qk_norm: bool, parallel: bool, bias: bool) -> VitConfig {
        VitConfig {
            patch: 7,
            width: 64,
            depth: 3,
            heads: 4,
            mlp_dim: 256,
            pool,
            qk_norm,
            parallel_block: parallel,
            bias,
        }
    }

    #[test]
    fn vit_counts_by_hand() {
        // 28/7 = 4 → 16 patches, 17 tokens with the class token.
        let v = vit(Pool::Cls, false, false, true);
        let c = vit_cost(&v, &FASHION);
        let (d, m, t, l) = (64u64, 256u64, 17u64, 3u64);
        let patch = 49 * d + d;
        let embed = patch + d + t * d;
        let block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d);
        let head = 2 * d + d * 10 + 10;
        assert_eq!(c.params_total, embed + l * block + head);
        assert_eq!(c.params_non_embedding, l * block + head);
        let fwd_block = 2 * t * (3 * d * d + d * d + 2 * d * m) + 4 * t * t * d;
        assert_eq!(
            c.forward_flops_per_example,
            2 * 16 * 49 * d + l * fwd_block + 2 * d * 10
        );
    }

    #[test]
    fn vit_switches_change_params_as_expected() {
        let base = vit_cost(&vit(Pool::Mean, false, false, true), &FASHION);
        let qk = vit_cost(&vit(Pool::Mean, true, false, true), &FASHION);
        // two LayerNorms of head size 16 with bias, per block
        assert_eq!(qk.params_total - base.params_total, 3 * 2 * 2 * 16);
        let par = vit_cost(&vit(Pool::Mean, false, true, true), &FASHION);
        assert_eq!(base.params_total - par.params_total, 3 * 2 * 64);
        let nobias = vit_cost(&vit(Pool::Mean, false, false, false), &FASHION);
        assert!(nobias.params_total < base.params_total);
        // Mean pooling has no class token and one token fewer.
        let cls = vit_cost(&vit(Pool::Cls, false, false, true), &FASHION);
        assert_eq!(cls.params_total - base.params_total, 64 + 64);
        assert_eq!(cls.tokens_per_example, 17);
        assert_eq!(base.tokens_per_example, 16);
    }

    /// Kaplan et al.'s C ≈ 6·N·D (D in tokens) holds for the ViT up to the attention term.
    #[test]
    fn vit_train_flops_agree_with_6nd_within_the_attention_term() {
        let v = VitConfig {
            patch: 4,
            width: 64,
            depth: 4,
            heads: 4,
            mlp_dim: 256,
            pool: Pool::Mean,
            qk_norm: false,
            parallel_block: false,
            bias: false,
        };
        let c = vit_cost(&v, &FASHION);
        let t = c.tokens_per_example as f64;
        let examples = 1.0e6;
        let train = c.train_flops_per_example as f64 * examples;
        let six_nd = 6.0 * c.params_non_embedding as f64 * t * examples;
        let attention = 3.0 * 4.0 * (v.depth as f64) * t * t * v.width as f64 * examples;
        let residual = (train - six_nd - attention).abs() / train;
        // What is left is the patch embedding and the head (counted differently by 6ND),
        // and the LayerNorm parameters that do no matmul: under 2 % here.
        assert!(residual < 0.02, "residual {residual}");
        // Without the attention term the two differ by more than the residual.
        assert!((train - six_nd).abs() / train > 0.05);
    }
}
