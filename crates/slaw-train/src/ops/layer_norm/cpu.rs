//! The LayerNorm passes on slaw's f32 CPU backend (Burn's ndarray): loops over row-major
//! buffers, one row at a time, rows on rayon's threads for tensors of [`PARALLEL_FROM`]
//! elements or more. Row sums are f32 in order; the scale's and shift's gradients add f64
//! partial sums of [`CHUNK`] rows each, in row order (the result does not depend on the
//! number of threads).

use burn::tensor::ops::FloatTensor;
use rayon::prelude::*;

use super::{Passes, Saved, EPSILON};
use crate::ops::cpu::{for_rows, primitive_from, row_major, values, Cpu, PARALLEL_FROM};

/// Rows per partial sum of the scale's and shift's gradients.
const CHUNK: usize = 64;

impl Passes for Cpu {
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
    ) -> [FloatTensor<Self>; 3] {
        let x = row_major(x);
        let shape = x.shape().to_vec();
        let x = values(&x);
        let width = shape[shape.len() - 1];
        let rows = x.len() / width.max(1);
        let gamma = row_major(gamma);
        let gamma = values(&gamma);
        let beta = beta.map(row_major);
        let beta = beta.as_ref().map(values);
        let mut y = vec![0f32; x.len()];
        let mut stats = vec![(0f32, 0f32); rows];
        for_rows(&mut y, width, &mut stats, |r, out, (mean, rstd)| {
            let row = &x[r * width..(r + 1) * width];
            let mu = row.iter().sum::<f32>() / width as f32;
            let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / width as f32;
            let rs = 1.0 / (var + EPSILON).sqrt();
            for (j, (o, v)) in out.iter_mut().zip(row).enumerate() {
                *o = (v - mu) * rs * gamma[j] + beta.map_or(0.0, |b| b[j]);
            }
            (*mean, *rstd) = (mu, rs);
        });
        let (mean, rstd): (Vec<f32>, Vec<f32>) = stats.into_iter().unzip();
        [
            primitive_from(&shape, y),
            primitive_from(&[rows], mean),
            primitive_from(&[rows], rstd),
        ]
    }

    fn layer_norm_backward(
        dy: FloatTensor<Self>,
        saved: Saved<Self>,
        has_beta: bool,
    ) -> [Option<FloatTensor<Self>>; 3] {
        let [x, dy, mean, rstd, gamma] =
            [saved.x, dy, saved.mean, saved.rstd, saved.gamma].map(row_major);
        let shape = x.shape().to_vec();
        let [x, dy, mean, rstd, gamma] = [&x, &dy, &mean, &rstd, &gamma].map(values);
        let width = shape[shape.len() - 1];
        let rows = x.len() / width.max(1);
        let mut dx = vec![0f32; x.len()];
        let mut unused = vec![(); rows];
        for_rows(&mut dx, width, &mut unused, |r, out, _| {
            let at = r * width..(r + 1) * width;
            let (x, dy) = (&x[at.clone()], &dy[at]);
            let (mu, rs) = (mean[r], rstd[r]);
            let (mut sum_g, mut sum_gx) = (0f32, 0f32);
            for j in 0..width {
                let g = dy[j] * gamma[j];
                sum_g += g;
                sum_gx += g * (x[j] - mu) * rs;
            }
            let (mean_g, mean_gx) = (sum_g / width as f32, sum_gx / width as f32);
            for (j, o) in out.iter_mut().enumerate() {
                let xhat = (x[j] - mu) * rs;
                *o = rs * (dy[j] * gamma[j] - mean_g - xhat * mean_gx);
            }
        });
        // Σ dy·x̂ and Σ dy by column: partial sums of CHUNK rows, added in row order.
        let partial = |p: usize| {
            let mut sums = vec![0f64; 2 * width];
            for r in p * CHUNK..((p + 1) * CHUNK).min(rows) {
                let (mu, rs) = (mean[r], rstd[r]);
                for j in 0..width {
                    let d = dy[r * width + j];
                    sums[j] += f64::from(d * (x[r * width + j] - mu) * rs);
                    sums[width + j] += f64::from(d);
                }
            }
            sums
        };
        let parts = rows.div_ceil(CHUNK);
        let partials: Vec<Vec<f64>> = if x.len() >= PARALLEL_FROM {
            (0..parts).into_par_iter().map(partial).collect()
        } else {
            (0..parts).map(partial).collect()
        };
        let mut sums = vec![0f64; 2 * width];
        for p in partials {
            sums.iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
        let column = |range: std::ops::Range<usize>| {
            let values = sums[range].iter().map(|&v| v as f32).collect();
            primitive_from(&[width], values)
        };
        [
            Some(primitive_from(&shape, dx)),
            Some(column(0..width)),
            has_beta.then(|| column(width..2 * width)),
        ]
    }
}
