//! The softmax passes on slaw's f32 CUDA backend: each pass one custom operation of
//! burn-fusion's stream and one CubeCL kernel, one warp per row (`plane_max`, `plane_sum`).

use burn::tensor::ops::FloatTensor;
use burn_cubecl::tensor::CubeTensor;
use burn_fusion::stream::Operation;
use burn_ir::CustomOpIr;
use cubecl::cuda::CudaRuntime;

use super::Passes;
use crate::ops::custom_op::{
    contiguous_inputs, empty_outputs, register, register_outputs, row_blocks, row_threads,
    rows_and_width, Handles,
};
use crate::ops::foreach::cuda::{Cuda, Runtime};

impl Passes for Cuda {
    fn softmax_forward(x: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        let shape = x.shape.clone();
        let [y] = register("slaw_softmax", vec![x], [shape], |desc| SoftmaxOp {
            desc,
            scale,
            backward: false,
        });
        y
    }

    fn softmax_backward(
        y: FloatTensor<Self>,
        dy: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let shape = y.shape.clone();
        let [dx] = register("slaw_softmax_backward", vec![y, dy], [shape], |desc| {
            SoftmaxOp {
                desc,
                scale,
                backward: true,
            }
        });
        dx
    }
}

/// Either pass: inputs `x` (forward) or `y, dy` (backward), one output.
#[derive(Debug, Clone)]
struct SoftmaxOp {
    desc: CustomOpIr,
    scale: f32,
    backward: bool,
}

impl Operation<Runtime> for SoftmaxOp {
    fn execute(&self, handles: &mut Handles) {
        let inputs = contiguous_inputs(&self.desc, handles);
        let first = &inputs[0];
        let outputs = empty_outputs(&self.desc, first);
        let out = &outputs[0];
        let (rows, width) = rows_and_width(first.meta.shape());
        let arg = |t: &CubeTensor<CudaRuntime>| t.clone().into_tensor_arg();
        if self.backward {
            kernel::softmax_backward_kernel::launch::<CudaRuntime>(
                &first.client,
                row_blocks(rows),
                row_threads(),
                arg(&inputs[0]),
                arg(&inputs[1]),
                arg(out),
                self.scale,
                rows,
                width,
            );
        } else {
            kernel::softmax_kernel::launch::<CudaRuntime>(
                &first.client,
                row_blocks(rows),
                row_threads(),
                arg(first),
                arg(out),
                self.scale,
                rows,
                width,
            );
        }
        register_outputs(&self.desc, handles, outputs);
    }
}

/// The CubeCL kernels (their own module: CubeCL's `Tensor` is not Burn's).
mod kernel {
    use crate::ops::custom_op::kernel::row_of_warp;
    use cubecl::prelude::*;

    /// `y = exp(s − max) / Σ exp(s − max)` by row, `s = scale·x`.
    #[cube(launch)]
    pub(super) fn softmax_kernel(
        x: &Tensor<f32>,
        y: &mut Tensor<f32>,
        scale: f32,
        rows: usize,
        width: usize,
    ) {
        let row = row_of_warp();
        // The whole warp shares `row`: the branch is uniform and the plane operations see 32
        // lanes.
        if row < rows {
            let lane = UNIT_POS_X as usize;
            let step = CUBE_DIM_X as usize;
            let base = row * width;
            let mut max = f32::new(-3.0e38);
            let mut j = lane;
            while j < width {
                let v = x[base + j] * scale;
                if v > max {
                    max = v;
                }
                j += step;
            }
            let max = plane_max(max);
            let mut sum = 0.0f32;
            j = lane;
            while j < width {
                sum += (x[base + j] * scale - max).exp();
                j += step;
            }
            let inv = 1.0f32 / plane_sum(sum);
            j = lane;
            while j < width {
                y[base + j] = (x[base + j] * scale - max).exp() * inv;
                j += step;
            }
        }
    }

    /// `dx = scale·y·(dy − Σ y·dy)` by row.
    #[cube(launch)]
    pub(super) fn softmax_backward_kernel(
        y: &Tensor<f32>,
        dy: &Tensor<f32>,
        dx: &mut Tensor<f32>,
        scale: f32,
        rows: usize,
        width: usize,
    ) {
        let row = row_of_warp();
        if row < rows {
            let lane = UNIT_POS_X as usize;
            let step = CUBE_DIM_X as usize;
            let base = row * width;
            let mut dot = 0.0f32;
            let mut j = lane;
            while j < width {
                dot += y[base + j] * dy[base + j];
                j += step;
            }
            let dot = plane_sum(dot);
            j = lane;
            while j < width {
                dx[base + j] = scale * y[base + j] * (dy[base + j] - dot);
                j += step;
            }
        }
    }
}
