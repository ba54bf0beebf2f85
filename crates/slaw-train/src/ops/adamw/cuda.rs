//! AdamW's update of one parameter as one custom operation of burn-fusion's stream, on slaw's
//! f32 CUDA backend: one CubeCL kernel that reads the parameter, its gradient, its moments and
//! the clipping factor and writes the new parameter and moments.
//!
//! [`crate::train::adamw::FusedAdamW`] writes the same update as ~16 tensor operations per parameter.
//! burn-fusion fuses them into about one kernel, but its device thread still handles every one
//! of them (registration, the search for fusions, the launch plan), and `bench/host_profile.sh`
//! showed that thread bounding a lone step of the sweep's largest ViT (103 parameters, so
//! ~1 650 of the step's operations were the optimiser's). Here each parameter costs one
//! operation: that step went from 33–36 to 26 ms on an H100 (docs/PERFORMANCE.md, 2026-11-23,
//! eighth session). The arithmetic is Burn's, in Burn's order; a GPU test checks it against the
//! tensor-operation path step by step. Stacks (per-trial learning rates) keep that path.

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_fusion::stream::{Operation, OperationStreams};
use burn_fusion::FusionTensor;
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use cubecl::cuda::CudaRuntime;
use cubecl::prelude::{CubeCount, CubeDim};

use crate::ops::foreach::cuda::{Cuda, Inner, Runtime};
use crate::ops::specialise::cast;
use crate::train::adamw::Scalars;

/// Threads per block of the update kernel.
const THREADS: u32 = 256;

/// One AdamW step of one parameter: the new parameter and its new first and second moments.
/// `moments` is `None` at the first step (zero moments); `factor` (`[1]`) multiplies the
/// gradient first (global-norm clipping). `B` must be the f32 CUDA backend
/// ([`crate::ops::foreach::cuda::is_cuda_f32`]).
pub(crate) fn update<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    factor: Option<Tensor<B, 1>>,
    scalars: Scalars,
) -> [Tensor<B, D>; 3] {
    let fusion = |t: Tensor<B, D>| -> FusionTensor<Runtime> {
        cast::<_, Tensor<Cuda, D>>(t).into_primitive().tensor()
    };
    let param = fusion(param);
    let shape = param.shape.clone();
    let has_moments = moments.is_some();
    let has_factor = factor.is_some();
    let mut inputs = vec![param, fusion(grad)];
    if let Some((m, v)) = moments {
        inputs.push(fusion(m));
        inputs.push(fusion(v));
    }
    if let Some(f) = factor {
        inputs.push(cast::<_, Tensor<Cuda, 1>>(f).into_primitive().tensor());
    }
    let client = inputs[0].client.clone();
    let outputs: Vec<TensorIr> = (0..3)
        .map(|_| TensorIr::uninit(client.create_empty_handle(), shape.clone(), DType::F32))
        .collect();
    let streams = OperationStreams::with_inputs(&inputs);
    let irs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new("slaw_adamw", &irs, &outputs);
    let op = AdamWUpdate {
        desc: desc.clone(),
        scalars,
        has_moments,
        has_factor,
    };
    let mut out = client
        .register(streams, OperationIr::Custom(desc), op)
        .into_iter()
        .map(|t| {
            cast::<Tensor<Cuda, D>, Tensor<B, D>>(Tensor::from_primitive(TensorPrimitive::Float(t)))
        });
    let mut next = || out.next().expect("the update has three outputs");
    [next(), next(), next()]
}

/// The custom operation: its inputs are the parameter, the gradient, the moments (when
/// `has_moments`) and the factor (when `has_factor`), in that order.
#[derive(Debug, Clone)]
struct AdamWUpdate {
    desc: CustomOpIr,
    scalars: Scalars,
    has_moments: bool,
    has_factor: bool,
}

impl Operation<Runtime> for AdamWUpdate {
    fn execute(
        &self,
        handles: &mut HandleContainer<<Runtime as burn_fusion::FusionRuntime>::FusionHandle>,
    ) {
        // The kernel indexes every tensor by the element's row-major position, so each must be
        // compact: no transposed strides, and no pitched rows (CubeCL pads the rows of 2-D
        // and higher tensors whose last axis is not a multiple of its alignment: a `[32, 3]`
        // weight may have row stride 4). `into_contiguous` copies into a compact layout.
        let inputs: Vec<CubeTensor<CudaRuntime>> = self
            .desc
            .inputs
            .iter()
            .map(|t| into_contiguous(handles.get_float_tensor::<Inner>(t)))
            .collect();
        let param = &inputs[0];
        let client = param.client.clone();
        let outputs: Vec<CubeTensor<CudaRuntime>> = self
            .desc
            .outputs
            .iter()
            .map(|o| {
                // Compact, like the inputs (`empty_device` would pitch the rows).
                empty_device_contiguous_dtype(
                    client.clone(),
                    param.device.clone(),
                    o.shape.clone(),
                    DType::F32,
                )
            })
            .collect();
        // Absent inputs are never read (the kernel's flags are compile-time): the gradient
        // stands in for them.
        let grad = &inputs[1];
        let (first, second) = if self.has_moments {
            (&inputs[2], &inputs[3])
        } else {
            (grad, grad)
        };
        let factor = if self.has_factor {
            inputs.last().expect("the factor is the last input")
        } else {
            grad
        };
        let n = param.meta.shape().num_elements();
        let blocks = n.div_ceil(THREADS as usize).max(1) as u32;
        let s = self.scalars;
        kernel::adamw_kernel::launch::<CudaRuntime>(
            &client,
            CubeCount::Static(blocks, 1, 1),
            CubeDim::new_1d(THREADS),
            param.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            first.clone().into_tensor_arg(),
            second.clone().into_tensor_arg(),
            factor.clone().into_tensor_arg(),
            outputs[0].clone().into_tensor_arg(),
            outputs[1].clone().into_tensor_arg(),
            outputs[2].clone().into_tensor_arg(),
            n,
            s.lr,
            s.beta1,
            s.beta2,
            s.keep1,
            s.keep2,
            s.eps,
            s.decay,
            s.correction1,
            s.correction2,
            self.has_moments,
            self.has_factor,
        );
        for (ir, t) in self.desc.outputs.iter().zip(outputs) {
            handles.register_float_tensor::<Inner>(&ir.id, t);
        }
    }
}

/// The CubeCL kernel (its own module: CubeCL's `Tensor` is not Burn's).
mod kernel {
    use cubecl::prelude::*;

    /// AdamW on one parameter, element by element, in the order of `adamw::Update::apply`:
    /// `g = grad·factor`, `m = m·β1 + g·(1−β1)`, `v = v·β2 + g²·(1−β2)` (the first step from
    /// zero moments: `m = g·(1−β1)`, `v = g²·(1−β2)`), `p = p·decay − lr · (m / c1) / (√(v / c2) + ε)`.
    #[allow(clippy::too_many_arguments)]
    #[cube(launch)]
    pub(super) fn adamw_kernel(
        param: &Tensor<f32>,
        grad: &Tensor<f32>,
        first: &Tensor<f32>,
        second: &Tensor<f32>,
        factor: &Tensor<f32>,
        new_param: &mut Tensor<f32>,
        new_first: &mut Tensor<f32>,
        new_second: &mut Tensor<f32>,
        n: usize,
        lr: f32,
        beta1: f32,
        beta2: f32,
        keep1: f32,
        keep2: f32,
        eps: f32,
        decay: f32,
        correction1: f32,
        correction2: f32,
        #[comptime] has_moments: bool,
        #[comptime] has_factor: bool,
    ) {
        let i = ABSOLUTE_POS;
        if i < n {
            let mut g = grad[i];
            if comptime![has_factor] {
                g *= factor[0];
            }
            let mut m = g * keep1;
            let mut v = g * g * keep2;
            if comptime![has_moments] {
                m = first[i] * beta1 + g * keep1;
                v = second[i] * beta2 + g * g * keep2;
            }
            let delta = (m / correction1) / ((v / correction2).sqrt() + eps);
            new_param[i] = param[i] * decay - delta * lr;
            new_first[i] = m;
            new_second[i] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;

    type C = Autodiff<burn::backend::Cuda<f32, i32>>;

    /// The kernel against the tensor-operation update, step by step, on the GPU (run by
    /// bench/gpu_tests.sh; CI has no GPU).
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn kernel_update_equals_the_tensor_update_on_cuda() {
        let device = burn::backend::cuda::CudaDevice::new(0);
        crate::train::adamw::tests::one_pass_equals_tensor_ops::<C>(&device, 1e-5);
    }
}
