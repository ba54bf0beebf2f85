//! The softmax passes on slaw's f32 CPU backend (Burn's ndarray): one loop per row over
//! row-major buffers, rows on rayon's threads for large tensors.

use burn::tensor::ops::FloatTensor;

use super::Passes;
use crate::ops::cpu::{for_rows, primitive_from, row_major, values, Cpu};

impl Passes for Cpu {
    fn softmax_forward(x: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        let x = row_major(x);
        let shape = x.shape().to_vec();
        let x = values(&x);
        let width = shape[shape.len() - 1];
        let mut y = vec![0f32; x.len()];
        let mut unused = vec![(); x.len() / width.max(1)];
        for_rows(&mut y, width, &mut unused, |r, out, _| {
            let row = &x[r * width..(r + 1) * width];
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(scale * v));
            let mut sum = 0f32;
            for (o, v) in out.iter_mut().zip(row) {
                *o = (scale * v - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            out.iter_mut().for_each(|o| *o *= inv);
        });
        primitive_from(&shape, y)
    }

    fn softmax_backward(
        y: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let [y, dy] = [y, dy].map(row_major);
        let shape = y.shape().to_vec();
        let [y, dy] = [&y, &dy].map(values);
        let width = shape[shape.len() - 1];
        let mut dx = vec![0f32; y.len()];
        let mut unused = vec![(); y.len() / width.max(1)];
        for_rows(&mut dx, width, &mut unused, |r, out, _| {
            let at = r * width..(r + 1) * width;
            let (y, dy) = (&y[at.clone()], &dy[at]);
            let dot: f32 = y.iter().zip(dy).map(|(y, d)| y * d).sum();
            for ((o, y), d) in out.iter_mut().zip(y).zip(dy) {
                *o = scale * y * (d - dot);
            }
        });
        primitive_from(&shape, dx)
    }
}
