//! Batches in image layout on the device: random crop (zero padding) and horizontal flip drawn
//! per example from the trial's generator, then the model's layout (patches for the ViT and
//! AIM). One gather does the crop and the flip: the index of every output pixel is computed
//! on the device from three small per-example tensors, so nothing of image size crosses the bus.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::{Augment, InputShape, ModelConfig};

fn column<B: Backend>(values: Vec<i64>, device: &B::Device) -> Tensor<B, 3, Int> {
    let n = values.len();
    Tensor::<B, 1, Int>::from_data(TensorData::new(values, [n]), device).reshape([n, 1, 1])
}

/// `x` (`[batch, C·H·W]`, (channel, row, column) order) with each image shifted by a random
/// offset in `-crop..=crop` (pixels shifted in are 0, the normalised mean) and mirrored with
/// probability ½ when `flip`.
pub fn augment<B: Backend>(
    x: Tensor<B, 2>,
    shape: &InputShape,
    a: &Augment,
    rng: &mut ChaCha8Rng,
) -> Tensor<B, 2> {
    let [batch, features] = x.dims();
    let device = x.device();
    let (c, h, w) = (shape.channels, shape.height as i64, shape.width as i64);
    let pad = a.crop as i64;
    let mut draw =
        |lo: i64, hi: i64| -> Vec<i64> { (0..batch).map(|_| rng.random_range(lo..=hi)).collect() };
    let dy = column::<B>(draw(-pad, pad), &device);
    let dx = column::<B>(draw(-pad, pad), &device);
    let flip = column::<B>(if a.flip { draw(0, 1) } else { vec![0; batch] }, &device);
    let ys = Tensor::<B, 1, Int>::arange(0..h, &device).reshape([1, shape.height, 1]);
    let xs = Tensor::<B, 1, Int>::arange(0..w, &device).reshape([1, 1, shape.width]);
    // Mirrored column: w − 1 − x where flip is 1.
    let xs = xs.clone() + flip * (xs.mul_scalar(-2).add_scalar(w - 1));
    let sy = ys + dy; // [batch, H, 1]
    let sx = xs + dx; // [batch, 1, W]
    let inside_y = sy.clone().greater_equal_elem(0).int() * sy.clone().lower_elem(h).int();
    let inside_x = sx.clone().greater_equal_elem(0).int() * sx.clone().lower_elem(w).int();
    let inside = (inside_y * inside_x).bool(); // [batch, H, W]
    let plane = sy.mul_scalar(w) + sx; // [batch, H, W]
    let channel = Tensor::<B, 1, Int>::arange(0..c as i64, &device)
        .mul_scalar(h * w)
        .reshape([1, c, 1, 1]);
    let index = plane.unsqueeze_dim::<4>(1) + channel; // [batch, C, H, W]
    let outside =
        inside
            .bool_not()
            .unsqueeze_dim::<4>(1)
            .expand([batch, c, shape.height, shape.width]);
    // Pixels from outside the image read an extra zero column.
    let index = index
        .mask_fill(outside, features as i64)
        .reshape([batch, features]);
    let zero = Tensor::<B, 2>::zeros([batch, 1], &device);
    Tensor::cat(vec![x, zero], 1).gather(1, index)
}

/// `x` (`[batch, C·H·W]`) in the layout `model` consumes: unchanged for the MLP and ConvNet,
/// non-overlapping patches in raster order, each (channel, row, column), for the ViT and AIM
/// (what [`crate::train::data::to_patches`] does on the host).
pub fn model_layout<B: Backend>(
    x: Tensor<B, 2>,
    shape: &InputShape,
    model: &ModelConfig,
) -> Tensor<B, 2> {
    let patch = match model {
        ModelConfig::Vit(v) => v.patch,
        ModelConfig::Aim(a) => a.patch,
        ModelConfig::Mlp(_) | ModelConfig::Convnet(_) => return x,
    };
    let [batch, features] = x.dims();
    let (c, ph, pw) = (shape.channels, shape.height / patch, shape.width / patch);
    x.reshape([batch, c, ph, patch, pw, patch])
        .permute([0, 2, 4, 1, 3, 5])
        .reshape([batch, features])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::data::to_patches;
    use burn::backend::NdArray;
    use rand::SeedableRng;

    type B = NdArray<f32>;

    fn shape() -> InputShape {
        InputShape {
            channels: 2,
            height: 4,
            width: 6,
            classes: 2,
        }
    }

    fn batch(n: usize) -> (Vec<f32>, Tensor<B, 2>) {
        let f = shape().features();
        let v: Vec<f32> = (0..n * f).map(|i| i as f32 + 1.0).collect();
        (
            v.clone(),
            Tensor::from_data(TensorData::new(v, [n, f]), &Default::default()),
        )
    }

    #[test]
    fn the_device_layout_is_the_hosts_patches() {
        let (host, x) = batch(3);
        let model = ModelConfig::Vit(crate::config::VitConfig {
            patch: 2,
            width: 8,
            depth: 1,
            heads: 1,
            mlp_dim: 8,
            pool: crate::config::Pool::Mean,
            qk_norm: false,
            parallel_block: false,
            bias: true,
        });
        let got = model_layout(x, &shape(), &model)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(got, to_patches(&host, &shape(), 2));
    }

    #[test]
    fn crops_shift_and_flips_mirror() {
        let (host, x) = batch(64);
        let s = shape();
        let f = s.features();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let none = Augment {
            crop: 0,
            flip: false,
        };
        let same = augment(x.clone(), &s, &none, &mut rng)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(same, host);
        let flip = Augment {
            crop: 0,
            flip: true,
        };
        let out = augment(x.clone(), &s, &flip, &mut rng)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let mut flipped = 0;
        for (img, src) in out.chunks(f).zip(host.chunks(f)) {
            let mirrored: Vec<f32> = src
                .chunks(s.width)
                .flat_map(|row| row.iter().rev().copied().collect::<Vec<_>>())
                .collect();
            assert!(img == src || img == mirrored.as_slice());
            flipped += usize::from(img == mirrored.as_slice());
        }
        assert!((16..=48).contains(&flipped), "{flipped} of 64 flipped");
        let crop = Augment {
            crop: 1,
            flip: false,
        };
        let out = augment(x, &s, &crop, &mut rng)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        for (img, src) in out.chunks(f).zip(host.chunks(f)) {
            // Every pixel is 0 (shifted in) or its neighbour's within one step.
            let zeros = img.iter().filter(|v| **v == 0.0).count();
            let kept = img.iter().filter(|v| src.contains(v)).count();
            assert_eq!(zeros + kept, f);
            assert!(zeros <= 2 * (s.height + s.width) * s.channels);
        }
    }
}
