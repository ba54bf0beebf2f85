//! Analytical parameter and FLOP counts of the model families, layer by layer.
//!
//! Conventions (see DESIGN.md, "Scientific conventions"): a multiply-add is 2 FLOPs; only
//! matrix multiplications are counted (linear layers, attention scores and attention-weighted
//! values); training costs 3× the forward pass. Parameter counts here must equal what the Burn
//! modules report (`Module::num_params`); a test in `model` checks that for every family.

use serde::{Deserialize, Serialize};

use crate::config::{
    AimConfig, ConvNetConfig, InputShape, MlpConfig, ModelConfig, Pool, VitConfig,
};

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
        ModelConfig::Convnet(c) => convnet_cost(c, shape),
        ModelConfig::Aim(a) => aim_cost(a, shape),
    }
}

/// A weight-standardised `k × k` convolution `c_in → c_out` (weights, bias, gain) producing an
/// `h × w` map: 2 · k² · c_in · c_out FLOPs per output pixel.
fn ws_conv(name: &str, c_in: u64, c_out: u64, k: u64, h: u64, w: u64) -> LayerCost {
    layer(
        name,
        k * k * c_in * c_out + 2 * c_out,
        2 * k * k * c_in * c_out * h * w,
        false,
    )
}

/// Output side of a stride-2 convolution with "same" padding.
fn halve(side: u64) -> u64 {
    side.div_ceil(2)
}

fn convnet_cost(c: &ConvNetConfig, shape: &InputShape) -> ModelCost {
    let (mut h, mut w) = (shape.height as u64, shape.width as u64);
    let mut layers = vec![ws_conv(
        "stem",
        shape.channels as u64,
        c.width as u64,
        3,
        h,
        w,
    )];
    let mut c_in = c.width as u64;
    for (stage, &n) in c.depths.iter().enumerate() {
        let c_out = c.stage_width(stage) as u64;
        for b in 0..n {
            let p = format!("stage.{stage}.block.{b}");
            if b == 0 && stage > 0 {
                (h, w) = (halve(h), halve(w));
                layers.push(ws_conv(&format!("{p}.shortcut"), c_in, c_out, 1, h, w));
            }
            layers.push(ws_conv(&format!("{p}.conv0"), c_in, c_out, 3, h, w));
            layers.push(ws_conv(&format!("{p}.conv1"), c_out, c_out, 3, h, w));
            c_in = c_out;
        }
    }
    layers.push(linear("head", c_in, shape.classes as u64, true, 1));
    ModelCost::from_layers(layers, h * w)
}

fn aim_cost(a: &AimConfig, shape: &InputShape) -> ModelCost {
    let trunk = vit_cost(&a.trunk(), shape);
    let d = a.width as u64;
    let m = a.mlp_dim as u64;
    let t = a.patches(shape) as u64;
    let patch_dim = (a.patch * a.patch * shape.channels) as u64;
    let b = a.bias;
    // The trunk without the ViT's classifier; the head runs on every position.
    let mut layers: Vec<LayerCost> = trunk
        .layers
        .into_iter()
        .filter(|l| l.name != "head")
        .collect();
    for i in 0..a.head_depth {
        let p = format!("head.block.{i}");
        layers.push(layer_norm(&format!("{p}.norm"), d, b));
        layers.push(linear(&format!("{p}.fc1"), d, m, b, t));
        layers.push(linear(&format!("{p}.fc2"), m, d, b, t));
    }
    layers.push(layer_norm("head.norm", d, b));
    layers.push(linear("head.output", d, patch_dim, b, t));
    ModelCost::from_layers(layers, t)
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

    /// Width 4, stages [1, 1] on 8×8 one-channel images: stem and first stage at 8×8, the
    /// second stage (8 channels, with a 1×1 projection) at 4×4, counted by hand.
    #[test]
    fn convnet_counts_by_hand() {
        let c = ConvNetConfig {
            width: 4,
            depths: vec![1, 1],
            alpha: 0.2,
            activation: crate::config::Activation::Relu,
        };
        let shape = InputShape {
            channels: 1,
            height: 8,
            width: 8,
            classes: 10,
        };
        let cost = model_cost(&ModelConfig::Convnet(c), &shape);
        // stem 44, block 152 + 152, projection 48, block 304 + 592, head 90.
        assert_eq!(cost.params_total, 1382);
        assert_eq!(cost.params_non_embedding, 1382);
        // 4608 + 2·18432 (8×8) + 1024 + 9216 + 18432 (4×4) + 160.
        assert_eq!(cost.forward_flops_per_example, 70_304);
        assert_eq!(cost.train_flops_per_example, 3 * 70_304);
    }

    /// AIM with a one-block trunk (d 32, 4 heads, MLP 64) and a one-block head on 16 patches
    /// of 7×7: the trunk as a ViT without its classifier, plus the head on every position.
    #[test]
    fn aim_counts_by_hand() {
        let a = AimConfig {
            patch: 7,
            width: 32,
            depth: 1,
            heads: 4,
            mlp_dim: 64,
            head_depth: 1,
            qk_norm: false,
            bias: true,
        };
        let shape = InputShape {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        };
        let cost = model_cost(&ModelConfig::Aim(a), &shape);
        assert_eq!(cost.params_total, 16_657);
        // Patch embedding (1600) and positions (512) are embeddings.
        assert_eq!(cost.params_non_embedding, 16_657 - 2_112);
        // Trunk 345 088 (patch 50 176, qkv 98 304, scores and values 2 × 16 384, out 32 768,
        // MLP 2 × 65 536) + head 181 248 (2 × 65 536 + output 50 176).
        assert_eq!(cost.forward_flops_per_example, 526_336);
        assert_eq!(cost.tokens_per_example, 16);
    }
}
