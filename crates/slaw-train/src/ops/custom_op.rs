//! Custom operations in burn-fusion's stream on slaw's f32 CUDA backend, as the row-wise passes
//! (`layer_norm`, `softmax`, `heads`) use them: registering one with its outputs, taking its
//! inputs and making its outputs when it runs, and the launch shape and row index of kernels
//! that give each row of a tensor one warp.

use burn::tensor::{DType, Shape};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::FusionTensor;
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use cubecl::cuda::CudaRuntime;
use cubecl::prelude::{CubeCount, CubeDim};

use crate::ops::foreach::cuda::{Inner, Runtime};

/// The tensors of burn-fusion's stream, as a custom operation finds them when it runs.
pub(crate) type Handles = HandleContainer<<Runtime as burn_fusion::FusionRuntime>::FusionHandle>;

/// The inputs of the operation `desc` in a compact row-major layout, which the kernels index
/// (`into_contiguous` copies any other: transposed strides, pitched rows).
pub(crate) fn contiguous_inputs(
    desc: &CustomOpIr,
    handles: &mut Handles,
) -> Vec<CubeTensor<CudaRuntime>> {
    desc.inputs
        .iter()
        .map(|t| into_contiguous(handles.get_float_tensor::<Inner>(t)))
        .collect()
}

/// A new compact f32 tensor of `shape` on the device of `like`.
pub(crate) fn empty(like: &CubeTensor<CudaRuntime>, shape: Shape) -> CubeTensor<CudaRuntime> {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, DType::F32)
}

/// New compact f32 tensors of the shapes of `desc`'s outputs, on the device of `like`.
pub(crate) fn empty_outputs(
    desc: &CustomOpIr,
    like: &CubeTensor<CudaRuntime>,
) -> Vec<CubeTensor<CudaRuntime>> {
    desc.outputs
        .iter()
        .map(|o| empty(like, o.shape.clone()))
        .collect()
}

/// Hands `outputs` to the stream as the outputs of `desc`, in order.
pub(crate) fn register_outputs(
    desc: &CustomOpIr,
    handles: &mut Handles,
    outputs: Vec<CubeTensor<CudaRuntime>>,
) {
    for (ir, t) in desc.outputs.iter().zip(outputs) {
        handles.register_float_tensor::<Inner>(&ir.id, t);
    }
}

/// Rows per thread block of the row kernels (one warp of 32 lanes per row).
const ROWS_PER_BLOCK: u32 = 8;

/// Registers one custom operation named `name` in burn-fusion's stream, with `O` f32 outputs of
/// `shapes`; `make` builds the operation from its description.
pub(crate) fn register<Op: Operation<Runtime> + 'static, const O: usize>(
    name: &'static str,
    inputs: Vec<FusionTensor<Runtime>>,
    shapes: [Shape; O],
    make: impl FnOnce(CustomOpIr) -> Op,
) -> [FusionTensor<Runtime>; O] {
    let client = inputs[0].client.clone();
    let outputs: Vec<TensorIr> = shapes
        .into_iter()
        .map(|s| TensorIr::uninit(client.create_empty_handle(), s, DType::F32))
        .collect();
    let streams = OperationStreams::with_inputs(&inputs);
    let irs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &irs, &outputs);
    let out: Vec<FusionTensor<Runtime>> = client
        .register(streams, OperationIr::Custom(desc.clone()), make(desc))
        .into_iter()
        .collect();
    match out.try_into() {
        Ok(out) => out,
        Err(_) => unreachable!("the operation has {O} outputs"),
    }
}

/// Rows (every axis but the last) and width (the last axis) of `shape`.
pub(crate) fn rows_and_width(shape: &Shape) -> (usize, usize) {
    let width = shape[shape.num_dims() - 1];
    (shape.num_elements() / width.max(1), width)
}

/// Threads per block of the row kernels: 32 lanes (one warp) by [`ROWS_PER_BLOCK`] rows.
pub(crate) fn row_threads() -> CubeDim {
    CubeDim::new_2d(32, ROWS_PER_BLOCK)
}

/// Thread blocks of the row kernels: [`ROWS_PER_BLOCK`] rows each, in a 2-D grid (the x axis
/// of a grid stops at 65 535 blocks on some devices; rows can be more). Kernels find their row
/// with [`kernel::row_of_warp`].
pub(crate) fn row_blocks(rows: usize) -> CubeCount {
    let blocks = rows.div_ceil(ROWS_PER_BLOCK as usize).max(1) as u32;
    let x = blocks.min(32_768);
    CubeCount::Static(x, blocks.div_ceil(x), 1)
}

pub(crate) mod kernel {
    use cubecl::prelude::*;

    /// The row this warp works on, launched with `row_threads` and `row_blocks`.
    #[cube]
    pub(crate) fn row_of_warp() -> usize {
        let block = CUBE_POS_Y as usize * CUBE_COUNT_X as usize + CUBE_POS_X as usize;
        block * CUBE_DIM_Y as usize + UNIT_POS_Y as usize
    }
}
