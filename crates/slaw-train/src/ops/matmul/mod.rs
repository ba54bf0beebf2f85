//! The models' matrix products — Linear layers, the attention's two batched products, the
//! ConvNet's im2col product — as autodiff operations of slaw's own on CUDA, computed by cuBLASLt
//! on the tensor cores; Burn's products everywhere else.
//!
//! Under mixed precision (`bf16-mixed`, the semantics of PyTorch's autocast) the operands are
//! rounded to bf16, the products accumulate in f32 and return f32; parameters, activations and
//! gradients stay f32. Burn 0.21's own bf16 product reaches ~84 TFLOP/s on an H200 where cuBLAS
//! reaches ~790 (docs/PERFORMANCE.md), so on CUDA the products go through cuBLASLt
//! ([`cublaslt`], enqueued on CubeCL's stream by the patched cubecl-cuda's external tasks).
//!
//! The Linear layer has its own backward: the input's gradient `dy · Wᵀ` and the weight's
//! gradient `xᵀ · dy` are one product each over all rows (Burn differentiates a batched `linear`
//! through a batched product and a sum over the batch), the bias's gradient one column sum, and
//! the bias itself is added in the product's epilogue. The node keeps the operands as the
//! products read them (bf16 under mixed precision: half the memory of Burn's f32 copies).
//!
//! **Opt-in for now**: `SLAW_CUBLAS=1` ([`crate::train::options::TrainerOptions::cublas_bf16`])
//! routes bf16-mixed products here and `SLAW_CUBLAS_F32=1` f32 products; the path was built and
//! its layouts tested on the CPU (`layout`), but no GPU machine could be started in the session
//! that wrote it, so its GPU tests (`tests.rs`) have not run yet. Where the library cannot be
//! loaded, on other backends, and by default, the products are Burn's (`burns_linear`,
//! `burns_matmul`); a missing library is said once on standard error.
//!
//! - `node` (CUDA builds): the autodiff nodes, on any backend with a product of its own.
//! - `cuda`: the product as a custom operation of burn-fusion's stream.
//! - `cublaslt`: the calls into cuBLASLt on CubeCL's device thread.
//! - `layout`: how cuBLASLt reads row-major operands (tested on the CPU).

#[cfg(feature = "cuda")]
mod cublaslt;
#[cfg(feature = "cuda")]
mod cuda;
// Used by `cublaslt` (CUDA builds); tested everywhere.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
mod layout;
#[cfg(feature = "cuda")]
mod node;

use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor};

#[cfg(feature = "cuda")]
use {
    self::node::{operand, tracked_linear, tracked_matmul, untracked_linear, Products},
    crate::ops::specialise::{is, primitive, tensor},
    burn::backend::Autodiff,
};

/// `layer` applied to `x` `[.., d_in]`; under `mixed` precision with bf16 operands, f32 result.
pub(crate) fn linear<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    mixed: bool,
) -> Tensor<B, D> {
    #[cfg(feature = "cuda")]
    if ours::<B>(mixed) {
        use crate::ops::foreach::cuda::Cuda;
        if is::<B, Autodiff<Cuda>>() {
            return tracked_linear::<B, Cuda, D>(layer, x, mixed);
        }
        if is::<B, Cuda>() {
            return untracked_linear::<B, Cuda, D>(layer, x, mixed);
        }
    }
    burns_linear(layer, x, mixed)
}

/// `a · b` over equal leading axes; under `mixed` precision with bf16 operands, f32 result.
pub(crate) fn matmul<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    mixed: bool,
) -> Tensor<B, D> {
    #[cfg(feature = "cuda")]
    if ours::<B>(mixed) && a.dims()[..D - 2] == b.dims()[..D - 2] {
        use crate::ops::foreach::cuda::Cuda;
        if is::<B, Autodiff<Cuda>>() {
            return tracked_matmul::<B, Cuda, D>(a, b, mixed);
        }
        if is::<B, Cuda>() {
            let (a, b) = (primitive::<B, Cuda, D>(a), primitive::<B, Cuda, D>(b));
            let (a, b) = (operand::<Cuda>(a, mixed), operand::<Cuda>(b, mixed));
            let y = Cuda::product(a, false, b, false, None);
            return tensor::<B, Cuda, D>(y);
        }
    }
    burns_matmul(a, b, mixed)
}

/// Whether the products of `B` under this precision are slaw's: `B` is the CUDA backend (the
/// callers check), cuBLASLt loads, and the options let them.
#[cfg_attr(not(feature = "cuda"), allow(clippy::extra_unused_type_parameters))]
pub(crate) fn ours<B: Backend>(mixed: bool) -> bool {
    #[cfg(feature = "cuda")]
    {
        use crate::ops::foreach::cuda::Cuda;
        let cuda = is::<B, Autodiff<Cuda>>() || is::<B, Cuda>();
        let options = crate::train::options::options();
        let wanted = if mixed {
            options.cublas_bf16
        } else {
            options.cublas_f32
        };
        cuda && wanted && cuda::library_loads()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = mixed;
        false
    }
}

fn bf16<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    t.cast(FloatDType::BF16)
}

/// [`linear`] as Burn's operations: its Linear module, under mixed precision on bf16 casts.
pub(crate) fn burns_linear<B: Backend, const D: usize>(
    layer: &Linear<B>,
    x: Tensor<B, D>,
    mixed: bool,
) -> Tensor<B, D> {
    if !mixed {
        return layer.forward(x);
    }
    let bias = layer.bias.as_ref().map(|b| bf16(b.val()));
    burn::tensor::module::linear(bf16(x), bf16(layer.weight.val()), bias).cast(FloatDType::F32)
}

/// [`matmul`] as Burn's operations.
pub(crate) fn burns_matmul<B: Backend, const D: usize>(
    a: Tensor<B, D>,
    b: Tensor<B, D>,
    mixed: bool,
) -> Tensor<B, D> {
    if mixed {
        bf16(a).matmul(bf16(b)).cast(FloatDType::F32)
    } else {
        a.matmul(b)
    }
}

#[cfg(all(test, feature = "cuda"))]
mod tests;
