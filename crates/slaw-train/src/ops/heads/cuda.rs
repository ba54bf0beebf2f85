//! The head permutations on slaw's f32 CUDA backend: each pass one custom operation of
//! burn-fusion's stream, one warp per head row (`head_width` values, coalesced on both sides).

use burn::tensor::ops::FloatTensor;
use burn::tensor::Shape;
use burn_cubecl::tensor::CubeTensor;
use burn_fusion::stream::Operation;
use burn_ir::CustomOpIr;
use cubecl::cuda::CudaRuntime;

use super::Passes;
use crate::ops::custom_op::{
    contiguous_inputs, empty_outputs, register, register_outputs, row_blocks, row_threads, Handles,
};
use crate::ops::foreach::cuda::{Cuda, Runtime};

impl Passes for Cuda {
    fn split_heads<const S: usize>(x: FloatTensor<Self>, heads: usize) -> [FloatTensor<Self>; S] {
        let (b, t, w) = (x.shape[0], x.shape[1], x.shape[2]);
        let shapes = std::array::from_fn(|_| Shape::new([b, heads, t, w / S / heads]));
        register("slaw_split_heads", vec![x], shapes, |desc| HeadsOp {
            desc,
            heads,
            split: true,
        })
    }

    fn merge_heads<const S: usize>(parts: [FloatTensor<Self>; S]) -> FloatTensor<Self> {
        let s = &parts[0].shape;
        let (b, heads, t, dh) = (s[0], s[1], s[2], s[3]);
        let [y] = register(
            "slaw_merge_heads",
            parts.into(),
            [Shape::new([b, t, S * heads * dh])],
            |desc| HeadsOp {
                desc,
                heads,
                split: false,
            },
        );
        y
    }
}

/// Either permutation: the split (one input, its parts as outputs) or the merge (the parts as
/// inputs, one output).
#[derive(Debug, Clone)]
struct HeadsOp {
    desc: CustomOpIr,
    heads: usize,
    split: bool,
}

impl Operation<Runtime> for HeadsOp {
    fn execute(&self, handles: &mut Handles) {
        let inputs = contiguous_inputs(&self.desc, handles);
        let first = &inputs[0];
        let outputs = empty_outputs(&self.desc, first);
        let arg = |t: &CubeTensor<CudaRuntime>| t.clone().into_tensor_arg();
        let heads = self.heads;
        if self.split {
            // Input [b, t, S·h·dh]; outputs [b, h, t, dh].
            let sections = outputs.len();
            let s = first.meta.shape();
            let (tokens, head_width) = (s[1], s[2] / sections / heads);
            let rows = s[0] * heads * tokens;
            for (section, out) in outputs.iter().enumerate() {
                kernel::to_heads_kernel::launch::<CudaRuntime>(
                    &first.client,
                    row_blocks(rows),
                    row_threads(),
                    arg(first),
                    arg(out),
                    section,
                    sections,
                    heads,
                    tokens,
                    head_width,
                    rows,
                );
            }
        } else {
            // Inputs [b, h, t, dh]; output [b, t, S·h·dh]. The kernel takes three inputs; with
            // fewer it reads the last one in place of the missing ones (and never indexes them).
            let sections = inputs.len();
            let s = first.meta.shape();
            let (tokens, head_width) = (s[2], s[3]);
            let rows = s[0] * tokens * sections * heads;
            let part = |i: usize| arg(&inputs[i.min(sections - 1)]);
            kernel::from_heads_kernel::launch::<CudaRuntime>(
                &first.client,
                row_blocks(rows),
                row_threads(),
                part(0),
                part(1),
                part(2),
                arg(&outputs[0]),
                sections,
                heads,
                tokens,
                head_width,
                rows,
            );
        }
        register_outputs(&self.desc, handles, outputs);
    }
}

/// The CubeCL kernels (their own module: CubeCL's `Tensor` is not Burn's).
mod kernel {
    use crate::ops::custom_op::kernel::row_of_warp;
    use cubecl::prelude::*;

    /// Part `section` of `x` `[b, t, sections·h·dh]` as `out` `[b, h, t, dh]`; one warp per
    /// row `(b, h, t)` of `out`.
    #[cube(launch)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn to_heads_kernel(
        x: &Tensor<f32>,
        out: &mut Tensor<f32>,
        section: usize,
        sections: usize,
        heads: usize,
        tokens: usize,
        head_width: usize,
        rows: usize,
    ) {
        let row = row_of_warp();
        if row < rows {
            let token = row % tokens;
            let bh = row / tokens;
            let head = bh % heads;
            let batch = bh / heads;
            let from = ((batch * tokens + token) * sections + section) * heads * head_width
                + head * head_width;
            let to = row * head_width;
            let mut j = UNIT_POS_X as usize;
            while j < head_width {
                out[to + j] = x[from + j];
                j += CUBE_DIM_X as usize;
            }
        }
    }

    /// `out` `[b, t, sections·h·dh]` from the parts `[b, h, t, dh]` (`sections` ≤ 3 of `p0`,
    /// `p1`, `p2`); one warp per row `(b, t, section, h)` of `out`.
    #[cube(launch)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn from_heads_kernel(
        p0: &Tensor<f32>,
        p1: &Tensor<f32>,
        p2: &Tensor<f32>,
        out: &mut Tensor<f32>,
        sections: usize,
        heads: usize,
        tokens: usize,
        head_width: usize,
        rows: usize,
    ) {
        let row = row_of_warp();
        if row < rows {
            let head = row % heads;
            let rest = row / heads;
            let section = rest % sections;
            let bt = rest / sections;
            let token = bt % tokens;
            let batch = bt / tokens;
            let from = ((batch * heads + head) * tokens + token) * head_width;
            let to = row * head_width;
            let step = CUBE_DIM_X as usize;
            let mut j = UNIT_POS_X as usize;
            // `section` is the same for the whole warp: the branch is uniform.
            if section == 0 {
                while j < head_width {
                    out[to + j] = p0[from + j];
                    j += step;
                }
            } else if section == 1 {
                while j < head_width {
                    out[to + j] = p1[from + j];
                    j += step;
                }
            } else {
                while j < head_width {
                    out[to + j] = p2[from + j];
                    j += step;
                }
            }
        }
    }
}
