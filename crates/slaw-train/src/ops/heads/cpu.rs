//! The head permutations on slaw's f32 CPU backend (Burn's ndarray): one copy per head row
//! (`head_width` values) over row-major buffers, rows on rayon's threads for large tensors.

use burn::tensor::ops::FloatTensor;

use super::Passes;
use crate::ops::cpu::{for_rows, primitive_from, row_major, values, Cpu};

impl Passes for Cpu {
    fn split_heads<const S: usize>(x: FloatTensor<Self>, heads: usize) -> [FloatTensor<Self>; S] {
        let x = row_major(x);
        let &[b, t, w] = x.shape() else {
            unreachable!("the projection has three axes")
        };
        let x = values(&x);
        let (d, dh) = (w / S, w / S / heads);
        std::array::from_fn(|s| {
            let mut out = vec![0f32; b * heads * t * dh];
            let mut rows = vec![(); b * heads * t];
            // Row r of the output is (batch, head, token).
            for_rows(&mut out, dh, &mut rows, |r, row, _| {
                let (bh, token) = (r / t, r % t);
                let (batch, head) = (bh / heads, bh % heads);
                let from = (batch * t + token) * w + s * d + head * dh;
                row.copy_from_slice(&x[from..from + dh]);
            });
            primitive_from(&[b, heads, t, dh], out)
        })
    }

    fn merge_heads<const S: usize>(parts: [FloatTensor<Self>; S]) -> FloatTensor<Self> {
        let parts = parts.map(row_major);
        let &[b, heads, t, dh] = parts[0].shape() else {
            unreachable!("heads have four axes")
        };
        let parts: Vec<&[f32]> = parts.iter().map(values).collect();
        let mut out = vec![0f32; b * t * S * heads * dh];
        let mut rows = vec![(); b * t * S * heads];
        // Row r of the output is (batch, token, part, head).
        for_rows(&mut out, dh, &mut rows, |r, row, _| {
            let head = r % heads;
            let s = (r / heads) % S;
            let (batch, token) = (r / heads / S / t, r / heads / S % t);
            let from = ((batch * heads + head) * t + token) * dh;
            row.copy_from_slice(&parts[s][from..from + dh]);
        });
        primitive_from(&[b, t, S * heads * dh], out)
    }
}
