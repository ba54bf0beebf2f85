//! The LayerNorm passes on slaw's f32 CUDA backend: each pass one custom operation of
//! burn-fusion's stream. The forward is one kernel, one warp per row (the row's mean and
//! variance by `plane_sum`, then the output, the mean and the reciprocal standard deviation).
//! The backward is three: the input's gradient one warp per row, and the scale's and shift's
//! gradients as column sums in two steps (partial sums of 64 rows, then their sum), both steps
//! reading 32 adjacent columns per thread block.

use burn::tensor::ops::FloatTensor;
use burn::tensor::Shape;
use burn_cubecl::tensor::CubeTensor;
use burn_fusion::stream::Operation;
use burn_fusion::FusionTensor;
use burn_ir::CustomOpIr;
use cubecl::cuda::CudaRuntime;
use cubecl::prelude::{CubeCount, CubeDim};

use super::{Passes, Saved, EPSILON};
use crate::ops::custom_op::{
    contiguous_inputs, empty, empty_outputs, register, register_outputs, row_blocks, row_threads,
    rows_and_width, Handles,
};
use crate::ops::foreach::cuda::{Cuda, Runtime};

/// Rows summed by one thread block of the column sums' first step.
const CHUNK: usize = 64;
/// Row lanes per thread block of the column sums (first step, second step).
const LANES_FIRST: u32 = 8;
const LANES_SECOND: u32 = 32;

impl Passes for Cuda {
    fn layer_norm_forward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: Option<FloatTensor<Self>>,
    ) -> [FloatTensor<Self>; 3] {
        forward_op(x, gamma, beta)
    }

    fn layer_norm_backward(
        dy: FloatTensor<Self>,
        saved: Saved<Self>,
        has_beta: bool,
    ) -> [Option<FloatTensor<Self>>; 3] {
        backward_op(dy, saved.x, saved.mean, saved.rstd, saved.gamma, has_beta)
    }
}

/// The forward: the output, and each row's mean and reciprocal standard deviation.
fn forward_op(
    x: FusionTensor<Runtime>,
    gamma: FusionTensor<Runtime>,
    beta: Option<FusionTensor<Runtime>>,
) -> [FusionTensor<Runtime>; 3] {
    let shape = x.shape.clone();
    let (rows, _) = rows_and_width(&shape);
    let mut inputs = vec![x, gamma];
    inputs.extend(beta);
    register(
        "slaw_layer_norm",
        inputs,
        [shape, Shape::new([rows]), Shape::new([rows])],
        |desc| LayerNormOp {
            desc,
            pass: Pass::Forward,
        },
    )
}

/// The backward: the gradients of the input, the scale and (when `has_beta`) the shift.
fn backward_op(
    dy: FusionTensor<Runtime>,
    x: FusionTensor<Runtime>,
    mean: FusionTensor<Runtime>,
    rstd: FusionTensor<Runtime>,
    gamma: FusionTensor<Runtime>,
    has_beta: bool,
) -> [Option<FusionTensor<Runtime>>; 3] {
    let shape = x.shape.clone();
    let width = gamma.shape.clone();
    let inputs = vec![dy, x, mean, rstd, gamma];
    let make = |desc| LayerNormOp {
        desc,
        pass: Pass::Backward,
    };
    if has_beta {
        let [dx, dgamma, dbeta] = register(
            "slaw_layer_norm_backward",
            inputs,
            [shape, width.clone(), width],
            make,
        );
        [Some(dx), Some(dgamma), Some(dbeta)]
    } else {
        let [dx, dgamma] = register("slaw_layer_norm_backward", inputs, [shape, width], make);
        [Some(dx), Some(dgamma), None]
    }
}

#[derive(Debug, Clone, Copy)]
enum Pass {
    /// Inputs `x, γ[, β]`; outputs `y, mean, rstd`.
    Forward,
    /// Inputs `dy, x, mean, rstd, γ`; outputs `dx, dγ[, dβ]`.
    Backward,
}

/// Either pass as a custom operation of burn-fusion's stream.
#[derive(Debug, Clone)]
struct LayerNormOp {
    desc: CustomOpIr,
    pass: Pass,
}

impl Operation<Runtime> for LayerNormOp {
    fn execute(&self, handles: &mut Handles) {
        let inputs = contiguous_inputs(&self.desc, handles);
        let client = inputs[0].client.clone();
        let alloc = |shape: Shape| empty(&inputs[0], shape);
        let outputs = empty_outputs(&self.desc, &inputs[0]);
        let arg = |t: &CubeTensor<CudaRuntime>| t.clone().into_tensor_arg();
        match self.pass {
            Pass::Forward => {
                let (rows, width) = rows_and_width(inputs[0].meta.shape());
                let has_beta = inputs.len() == 3;
                // Absent inputs are never read (the flag is compile-time).
                let beta = if has_beta { &inputs[2] } else { &inputs[1] };
                kernel::forward_kernel::launch::<CudaRuntime>(
                    &client,
                    row_blocks(rows),
                    row_threads(),
                    arg(&inputs[0]),
                    arg(&inputs[1]),
                    arg(beta),
                    arg(&outputs[0]),
                    arg(&outputs[1]),
                    arg(&outputs[2]),
                    rows,
                    width,
                    1.0 / width as f32,
                    EPSILON,
                    has_beta,
                );
            }
            Pass::Backward => {
                let [dy, x, mean, rstd, gamma] = [0, 1, 2, 3, 4].map(|i| &inputs[i]);
                let (rows, width) = rows_and_width(x.meta.shape());
                let has_beta = outputs.len() == 3;
                kernel::backward_rows_kernel::launch::<CudaRuntime>(
                    &client,
                    row_blocks(rows),
                    row_threads(),
                    arg(dy),
                    arg(x),
                    arg(mean),
                    arg(rstd),
                    arg(gamma),
                    arg(&outputs[0]),
                    rows,
                    width,
                    1.0 / width as f32,
                );
                // Column sums of dy·x̂ and dy: one partial sum per CHUNK rows, then the
                // partial sums added (both steps read 32 adjacent columns per block).
                // (At most 65 535 parts: the grid's y axis.)
                let chunk = CHUNK.max(rows.div_ceil(65_535));
                let parts = rows.div_ceil(chunk).max(1);
                let column_blocks = width.div_ceil(32) as u32;
                let partial_g = alloc(Shape::new([parts, width]));
                let partial_b = alloc(Shape::new([parts, width]));
                kernel::column_partials_kernel::launch::<CudaRuntime>(
                    &client,
                    CubeCount::Static(column_blocks, parts as u32, 1),
                    CubeDim::new_2d(32, LANES_FIRST),
                    arg(dy),
                    arg(x),
                    arg(mean),
                    arg(rstd),
                    arg(&partial_g),
                    arg(&partial_b),
                    rows,
                    width,
                    chunk,
                    (32 * LANES_FIRST) as usize,
                );
                let dbeta = if has_beta { &outputs[2] } else { &outputs[1] };
                kernel::column_sums_kernel::launch::<CudaRuntime>(
                    &client,
                    CubeCount::Static(column_blocks, 1, 1),
                    CubeDim::new_2d(32, LANES_SECOND),
                    arg(&partial_g),
                    arg(&partial_b),
                    arg(&outputs[1]),
                    arg(dbeta),
                    parts,
                    width,
                    (32 * LANES_SECOND) as usize,
                    has_beta,
                );
            }
        }
        register_outputs(&self.desc, handles, outputs);
    }
}

/// The CubeCL kernels (their own module: CubeCL's `Tensor` is not Burn's). Rows are
/// `width` adjacent elements; the row kernels give each row one warp (`CUBE_DIM_X` = 32
/// lanes, `plane_sum` over them), `CUBE_DIM_Y` rows per block.
mod kernel {
    use crate::ops::custom_op::kernel::row_of_warp;
    use cubecl::prelude::*;

    #[allow(clippy::too_many_arguments)]
    #[cube(launch)]
    pub(super) fn forward_kernel(
        x: &Tensor<f32>,
        gamma: &Tensor<f32>,
        beta: &Tensor<f32>,
        y: &mut Tensor<f32>,
        mean: &mut Tensor<f32>,
        rstd: &mut Tensor<f32>,
        rows: usize,
        width: usize,
        inv_width: f32,
        epsilon: f32,
        #[comptime] has_beta: bool,
    ) {
        let row = row_of_warp();
        // The whole warp shares `row`: the branch is uniform and `plane_sum` sees 32 lanes.
        if row < rows {
            let lane = UNIT_POS_X as usize;
            let step = CUBE_DIM_X as usize;
            let base = row * width;
            let mut sum = 0.0f32;
            let mut j = lane;
            while j < width {
                sum += x[base + j];
                j += step;
            }
            let mu = plane_sum(sum) * inv_width;
            let mut squares = 0.0f32;
            j = lane;
            while j < width {
                let d = x[base + j] - mu;
                squares += d * d;
                j += step;
            }
            let var = plane_sum(squares) * inv_width;
            let r = 1.0f32 / (var + epsilon).sqrt();
            j = lane;
            while j < width {
                let mut v = (x[base + j] - mu) * r * gamma[j];
                if comptime![has_beta] {
                    v += beta[j];
                }
                y[base + j] = v;
                j += step;
            }
            if lane == 0 {
                mean[row] = mu;
                rstd[row] = r;
            }
        }
    }

    /// `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))` with `g = dy·γ`, `x̂ = (x − μ)·rstd`.
    #[allow(clippy::too_many_arguments)]
    #[cube(launch)]
    pub(super) fn backward_rows_kernel(
        dy: &Tensor<f32>,
        x: &Tensor<f32>,
        mean: &Tensor<f32>,
        rstd: &Tensor<f32>,
        gamma: &Tensor<f32>,
        dx: &mut Tensor<f32>,
        rows: usize,
        width: usize,
        inv_width: f32,
    ) {
        let row = row_of_warp();
        if row < rows {
            let lane = UNIT_POS_X as usize;
            let step = CUBE_DIM_X as usize;
            let base = row * width;
            let mu = mean[row];
            let r = rstd[row];
            let mut sum_g = 0.0f32;
            let mut sum_gx = 0.0f32;
            let mut j = lane;
            while j < width {
                let g = dy[base + j] * gamma[j];
                sum_g += g;
                sum_gx += g * (x[base + j] - mu) * r;
                j += step;
            }
            let mean_g = plane_sum(sum_g) * inv_width;
            let mean_gx = plane_sum(sum_gx) * inv_width;
            j = lane;
            while j < width {
                let g = dy[base + j] * gamma[j];
                let xhat = (x[base + j] - mu) * r;
                dx[base + j] = r * (g - mean_g - xhat * mean_gx);
                j += step;
            }
        }
    }

    /// Adds the `CUBE_DIM_Y` row lanes' values of each of the block's 32 columns in shared
    /// memory; lane 0 of each column ends with the column's total in `shared[x]`.
    #[cube]
    fn add_lanes(shared: &mut SharedMemory<f32>) {
        let mut active = CUBE_DIM_Y / 2;
        while active > 0 {
            if UNIT_POS_Y < active {
                let other = shared[(UNIT_POS + active * CUBE_DIM_X) as usize];
                shared[UNIT_POS as usize] += other;
            }
            sync_cube();
            active /= 2;
        }
    }

    /// Block (x, p) sums `dy·x̂` and `dy` over rows `p·chunk ..` of 32 adjacent columns
    /// into `partial_g[p, ·]` and `partial_b[p, ·]`.
    #[allow(clippy::too_many_arguments)]
    #[cube(launch)]
    pub(super) fn column_partials_kernel(
        dy: &Tensor<f32>,
        x: &Tensor<f32>,
        mean: &Tensor<f32>,
        rstd: &Tensor<f32>,
        partial_g: &mut Tensor<f32>,
        partial_b: &mut Tensor<f32>,
        rows: usize,
        width: usize,
        chunk: usize,
        #[comptime] threads: usize,
    ) {
        let column = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
        let part = CUBE_POS_Y as usize;
        let start = part * chunk;
        let mut end = start + chunk;
        if end > rows {
            end = rows;
        }
        let mut g = 0.0f32;
        let mut b = 0.0f32;
        if column < width {
            let mut row = start + UNIT_POS_Y as usize;
            while row < end {
                let i = row * width + column;
                let d = dy[i];
                g += d * (x[i] - mean[row]) * rstd[row];
                b += d;
                row += CUBE_DIM_Y as usize;
            }
        }
        let mut shared_g = SharedMemory::<f32>::new(threads);
        let mut shared_b = SharedMemory::<f32>::new(threads);
        shared_g[UNIT_POS as usize] = g;
        shared_b[UNIT_POS as usize] = b;
        sync_cube();
        add_lanes(&mut shared_g);
        add_lanes(&mut shared_b);
        if UNIT_POS_Y == 0 && column < width {
            partial_g[part * width + column] = shared_g[UNIT_POS_X as usize];
            partial_b[part * width + column] = shared_b[UNIT_POS_X as usize];
        }
    }

    /// `dgamma[c] = Σ_p partial_g[p, c]` (and `dbeta` from `partial_b` when `has_beta`).
    #[allow(clippy::too_many_arguments)]
    #[cube(launch)]
    pub(super) fn column_sums_kernel(
        partial_g: &Tensor<f32>,
        partial_b: &Tensor<f32>,
        dgamma: &mut Tensor<f32>,
        dbeta: &mut Tensor<f32>,
        parts: usize,
        width: usize,
        #[comptime] threads: usize,
        #[comptime] has_beta: bool,
    ) {
        let column = CUBE_POS_X as usize * CUBE_DIM_X as usize + UNIT_POS_X as usize;
        let mut g = 0.0f32;
        let mut b = 0.0f32;
        if column < width {
            let mut p = UNIT_POS_Y as usize;
            while p < parts {
                g += partial_g[p * width + column];
                if comptime![has_beta] {
                    b += partial_b[p * width + column];
                }
                p += CUBE_DIM_Y as usize;
            }
        }
        let mut shared_g = SharedMemory::<f32>::new(threads);
        let mut shared_b = SharedMemory::<f32>::new(threads);
        shared_g[UNIT_POS as usize] = g;
        shared_b[UNIT_POS as usize] = b;
        sync_cube();
        add_lanes(&mut shared_g);
        add_lanes(&mut shared_b);
        if UNIT_POS_Y == 0 && column < width {
            dgamma[column] = shared_g[UNIT_POS_X as usize];
            if comptime![has_beta] {
                dbeta[column] = shared_b[UNIT_POS_X as usize];
            }
        }
    }
}
