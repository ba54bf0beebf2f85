//! Work over many tensors in few kernel launches (what PyTorch calls "foreach" kernels): the
//! sum of the squares of every element of a list of tensors, which global-norm clipping needs
//! for all gradients of a model at every step, and AdamW's update of every parameter.
//!
//! Burn has no such operation: summing the squares tensor by tensor costs a reduction launch per
//! gradient, and concatenating the gradients first costs a copy launch per gradient (126 per
//! step for the sweep's largest ViT, `docs/PERFORMANCE.md`). On slaw's CUDA backend (f32) this
//! module runs a CubeCL kernel that reads up to [`cuda::GROUP`] tensors per launch and writes one
//! partial sum per thread block; one Burn reduction adds the partial sums. Every other backend
//! (the CPU, bf16) takes the concatenation.
//!
//! The CUDA path is a custom operation of burn-fusion's stream, so it runs in order with the
//! operations before and after it and reads nothing back to the host.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The sum of the squares of every element of `tensors`, as a `[1]` tensor; `None` for an
/// empty list.
pub fn sum_of_squares<B: Backend>(tensors: Vec<Tensor<B, 1>>) -> Option<Tensor<B, 1>> {
    if tensors.is_empty() {
        return None;
    }
    #[cfg(feature = "cuda")]
    let tensors = match cuda::sum_of_squares(tensors) {
        Ok(total) => return Some(total),
        Err(tensors) => tensors,
    };
    Some(Tensor::cat(tensors, 0).square().sum())
}

#[cfg(feature = "cuda")]
pub(crate) mod cuda {
    use std::any::{Any, TypeId};

    use burn::tensor::backend::Backend;
    use burn::tensor::{DType, Shape, Tensor, TensorPrimitive};
    use burn_cubecl::fusion::FusionCubeRuntime;
    use burn_cubecl::kernel::into_contiguous;
    use burn_cubecl::ops::numeric::empty_device;
    use burn_cubecl::tensor::CubeTensor;
    use burn_cubecl::CubeBackend;
    use burn_fusion::stream::{Operation, OperationStreams};
    use burn_fusion::{Fusion, FusionTensor};
    use burn_ir::{CustomOpIr, HandleContainer, OperationIr, OperationOutput, TensorIr};
    use cubecl::cuda::CudaRuntime;
    use cubecl::prelude::{CubeCount, CubeDim, SequenceArg};

    /// slaw's f32 CUDA backend below burn-fusion, and with it.
    type Inner = CubeBackend<CudaRuntime, f32, i32, u8>;
    type Cuda = Fusion<Inner>;
    type Runtime = FusionCubeRuntime<CudaRuntime>;
    type Handle = <Runtime as burn_fusion::FusionRuntime>::FusionHandle;

    /// Tensors read by one launch (the kernel is compiled once per group size).
    pub(crate) const GROUP: usize = 32;
    /// Thread blocks per launch and threads per block: one partial sum per block.
    const BLOCKS: usize = 132;
    const THREADS: u32 = 256;

    /// Whether `B` is slaw's f32 CUDA backend, the one these kernels are written for.
    pub(crate) fn is_cuda_f32<B: Backend>() -> bool {
        TypeId::of::<B>() == TypeId::of::<Cuda>()
    }

    /// `t` as type `U`, which it is (callers check [`is_cuda_f32`] first): Rust has no
    /// specialisation, so the generic code reaches the CUDA-only kernels through `Any`.
    fn cast<T: 'static, U: 'static>(t: T) -> U {
        match (Box::new(t) as Box<dyn Any>).downcast::<U>() {
            Ok(u) => *u,
            Err(_) => unreachable!("cast between different types (is_cuda_f32 not checked)"),
        }
    }

    /// `Ok` with the sum when `B` is the f32 CUDA backend, `Err` with the tensors otherwise.
    pub(super) fn sum_of_squares<B: Backend>(
        tensors: Vec<Tensor<B, 1>>,
    ) -> Result<Tensor<B, 1>, Vec<Tensor<B, 1>>> {
        if !is_cuda_f32::<B>() {
            return Err(tensors);
        }
        let tensors = cast::<_, Vec<Tensor<Cuda, 1>>>(tensors);
        Ok(cast(partial_sums(tensors).sum()))
    }

    /// One partial sum of squares per thread block of every launch.
    fn partial_sums(tensors: Vec<Tensor<Cuda, 1>>) -> Tensor<Cuda, 1> {
        let inputs: Vec<FusionTensor<Runtime>> = tensors
            .into_iter()
            .map(|t| t.into_primitive().tensor())
            .collect();
        let client = inputs[0].client.clone();
        let launches = inputs.len().div_ceil(GROUP);
        let out = TensorIr::uninit(
            client.create_empty_handle(),
            Shape::new([launches * BLOCKS]),
            DType::F32,
        );
        let streams = OperationStreams::with_inputs(&inputs);
        let irs: Vec<TensorIr> = inputs.into_iter().map(|t| t.into_ir()).collect();
        let desc = CustomOpIr::new("slaw_sum_of_squares", &irs, &[out]);
        let out = client
            .register(
                streams,
                OperationIr::Custom(desc.clone()),
                SumOfSquares { desc },
            )
            .output();
        Tensor::from_primitive(TensorPrimitive::Float(out))
    }

    /// The custom operation in burn-fusion's stream.
    #[derive(Debug, Clone)]
    struct SumOfSquares {
        desc: CustomOpIr,
    }

    impl Operation<Runtime> for SumOfSquares {
        fn execute(
            &self,
            handles: &mut HandleContainer<<Runtime as burn_fusion::FusionRuntime>::FusionHandle>,
        ) {
            let inputs: Vec<CubeTensor<CudaRuntime>> = self
                .desc
                .inputs
                .iter()
                .map(|t| {
                    let t = handles.get_float_tensor::<Inner>(t);
                    // The kernel reads buffers linearly: any order of the elements is fine,
                    // gaps or overlaps are not.
                    if t.is_contiguous_buffer() {
                        t
                    } else {
                        into_contiguous(t)
                    }
                })
                .collect();
            let out = &self.desc.outputs[0];
            let client = inputs[0].client.clone();
            let partials = empty_device::<CudaRuntime, f32>(
                client.clone(),
                inputs[0].device.clone(),
                out.shape.clone(),
            );
            for (launch, group) in inputs.chunks(GROUP).enumerate() {
                let tensors: SequenceArg<CudaRuntime, cubecl::prelude::Tensor<f32>> =
                    group.iter().map(|t| t.clone().into_tensor_arg()).collect();
                kernel::sum_of_squares_kernel::launch::<CudaRuntime>(
                    &client,
                    CubeCount::Static(BLOCKS as u32, 1, 1),
                    CubeDim::new_1d(THREADS),
                    tensors,
                    partials.clone().into_tensor_arg(),
                    launch * BLOCKS,
                    THREADS as usize,
                );
            }
            handles.register_float_tensor::<Inner>(&out.id, partials);
        }
    }

    /// AdamW's scalars of one step, in f32 as the kernel takes them.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct AdamWScalars {
        pub lr: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub keep1: f32,
        pub keep2: f32,
        pub eps: f32,
        pub decay: f32,
        pub correction1: f32,
        pub correction2: f32,
    }

    /// Tensors per AdamW launch: 7 bindings each (4 read, 3 written).
    const ADAMW_GROUP: usize = 16;

    /// One AdamW step of every parameter in few launches: returns the new parameters, first
    /// and second moments, in the order given. `factor` (`[1]`) scales every gradient.
    pub(crate) fn adamw_step<B: Backend>(
        params: Vec<TensorPrimitive<B>>,
        grads: Vec<TensorPrimitive<B>>,
        firsts: Vec<TensorPrimitive<B>>,
        seconds: Vec<TensorPrimitive<B>>,
        factor: Tensor<B, 1>,
        scalars: AdamWScalars,
    ) -> [Vec<TensorPrimitive<B>>; 3] {
        let n = params.len();
        let fusion = |v: Vec<TensorPrimitive<B>>| -> Vec<FusionTensor<Runtime>> {
            v.into_iter()
                .map(|p| cast::<_, TensorPrimitive<Cuda>>(p).tensor())
                .collect()
        };
        let (params, grads, firsts, seconds) = (
            fusion(params),
            fusion(grads),
            fusion(firsts),
            fusion(seconds),
        );
        let factor: FusionTensor<Runtime> =
            cast::<_, Tensor<Cuda, 1>>(factor).into_primitive().tensor();
        let client = factor.client.clone();
        let outputs: Vec<TensorIr> = params
            .iter()
            .chain(&params)
            .chain(&params)
            .map(|p| TensorIr::uninit(client.create_empty_handle(), p.shape.clone(), DType::F32))
            .collect();
        let all: Vec<&FusionTensor<Runtime>> = params
            .iter()
            .chain(&grads)
            .chain(&firsts)
            .chain(&seconds)
            .chain(std::iter::once(&factor))
            .collect();
        let streams = OperationStreams::with_inputs(all.iter().copied());
        let inputs: Vec<TensorIr> = params
            .into_iter()
            .chain(grads)
            .chain(firsts)
            .chain(seconds)
            .chain(std::iter::once(factor))
            .map(|t| t.into_ir())
            .collect();
        let desc = CustomOpIr::new("slaw_adamw", &inputs, &outputs);
        let mut out = client
            .register(
                streams,
                OperationIr::Custom(desc.clone()),
                AdamW { desc, n, scalars },
            )
            .into_iter()
            .map(|t| cast::<TensorPrimitive<Cuda>, TensorPrimitive<B>>(TensorPrimitive::Float(t)));
        let new_params: Vec<_> = out.by_ref().take(n).collect();
        let new_firsts: Vec<_> = out.by_ref().take(n).collect();
        let new_seconds: Vec<_> = out.collect();
        [new_params, new_firsts, new_seconds]
    }

    #[derive(Debug, Clone)]
    struct AdamW {
        desc: CustomOpIr,
        n: usize,
        scalars: AdamWScalars,
    }

    impl Operation<Runtime> for AdamW {
        fn execute(&self, handles: &mut HandleContainer<Handle>) {
            let n = self.n;
            let inputs: Vec<CubeTensor<CudaRuntime>> = self
                .desc
                .inputs
                .iter()
                .map(|t| {
                    // Element i of a parameter, its gradient and its moments must be at the
                    // same place in their buffers: every input in row-major order.
                    let t = handles.get_float_tensor::<Inner>(t);
                    if t.is_contiguous() && t.is_contiguous_buffer() {
                        t
                    } else {
                        into_contiguous(t)
                    }
                })
                .collect();
            let factor = &inputs[4 * n];
            let client = factor.client.clone();
            let device = factor.device.clone();
            let outputs: Vec<CubeTensor<CudaRuntime>> = self
                .desc
                .outputs
                .iter()
                .map(|o| {
                    empty_device::<CudaRuntime, f32>(
                        client.clone(),
                        device.clone(),
                        o.shape.clone(),
                    )
                })
                .collect();
            let s = self.scalars;
            let mut start = 0;
            while start < n {
                let end = (start + ADAMW_GROUP).min(n);
                let seq =
                    |base: usize,
                     from: &[CubeTensor<CudaRuntime>]|
                     -> SequenceArg<CudaRuntime, cubecl::prelude::Tensor<f32>> {
                        (start..end)
                            .map(|i| from[base + i].clone().into_tensor_arg())
                            .collect()
                    };
                kernel::adamw_kernel::launch::<CudaRuntime>(
                    &client,
                    CubeCount::Static(BLOCKS as u32, 1, 1),
                    CubeDim::new_1d(THREADS),
                    seq(0, &inputs),
                    seq(n, &inputs),
                    seq(2 * n, &inputs),
                    seq(3 * n, &inputs),
                    factor.clone().into_tensor_arg(),
                    seq(0, &outputs),
                    seq(n, &outputs),
                    seq(2 * n, &outputs),
                    s.lr,
                    s.beta1,
                    s.beta2,
                    s.keep1,
                    s.keep2,
                    s.eps,
                    s.decay,
                    s.correction1,
                    s.correction2,
                );
                start = end;
            }
            for (ir, t) in self.desc.outputs.iter().zip(outputs) {
                handles.register_float_tensor::<Inner>(&ir.id, t);
            }
        }
    }

    /// The CubeCL kernel (its own module: CubeCL's `Tensor` is not Burn's).
    mod kernel {
        use cubecl::prelude::*;

        /// Each thread adds the squares of a grid-strided share of every tensor; each block writes
        /// the sum of its threads to `partials[offset + block]`.
        #[cube(launch)]
        pub(super) fn sum_of_squares_kernel(
            tensors: Sequence<Tensor<f32>>,
            partials: &mut Tensor<f32>,
            offset: usize,
            #[comptime] threads: usize,
        ) {
            let stride = CUBE_COUNT * CUBE_DIM as usize;
            let mut acc = 0.0f32;
            let count = comptime![tensors.len()];
            #[unroll]
            for k in 0..count {
                let t = tensors.index(k);
                let mut i = ABSOLUTE_POS;
                while i < t.len() {
                    let v = t[i];
                    acc += v * v;
                    i += stride;
                }
            }
            let mut shared = SharedMemory::<f32>::new(threads);
            shared[UNIT_POS as usize] = acc;
            sync_cube();
            let mut active = CUBE_DIM / 2;
            while active > 0 {
                if UNIT_POS < active {
                    let other = shared[(UNIT_POS + active) as usize];
                    shared[UNIT_POS as usize] += other;
                }
                sync_cube();
                active /= 2;
            }
            if UNIT_POS == 0 {
                partials[offset + CUBE_POS] = shared[0];
            }
        }

        /// AdamW on a group of parameters, element by element in Burn's order of operations:
        /// `g = grad·factor`, `m = m·β1 + g·(1−β1)`, `v = v·β2 + g²·(1−β2)`,
        /// `p = p·decay − lr · (m / c1) / (√(v / c2) + ε)`.
        #[allow(clippy::too_many_arguments)]
        #[cube(launch)]
        pub(super) fn adamw_kernel(
            params: Sequence<Tensor<f32>>,
            grads: Sequence<Tensor<f32>>,
            firsts: Sequence<Tensor<f32>>,
            seconds: Sequence<Tensor<f32>>,
            factor: &Tensor<f32>,
            new_params: &mut Sequence<Tensor<f32>>,
            new_firsts: &mut Sequence<Tensor<f32>>,
            new_seconds: &mut Sequence<Tensor<f32>>,
            lr: f32,
            beta1: f32,
            beta2: f32,
            keep1: f32,
            keep2: f32,
            eps: f32,
            decay: f32,
            correction1: f32,
            correction2: f32,
        ) {
            let stride = CUBE_COUNT * CUBE_DIM as usize;
            let f = factor[0];
            let count = comptime![params.len()];
            #[unroll]
            for k in 0..count {
                let p = params.index(k);
                let g = grads.index(k);
                let m = firsts.index(k);
                let v = seconds.index(k);
                let np = new_params.index_mut(k);
                let nm = new_firsts.index_mut(k);
                let nv = new_seconds.index_mut(k);
                let mut i = ABSOLUTE_POS;
                while i < p.len() {
                    let gi = g[i] * f;
                    let mi = m[i] * beta1 + gi * keep1;
                    let vi = v[i] * beta2 + gi * gi * keep2;
                    let delta = (mi / correction1) / ((vi / correction2).sqrt() + eps);
                    np[i] = p[i] * decay - delta * lr;
                    nm[i] = mi;
                    nv[i] = vi;
                    i += stride;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, TensorData};

    fn host_sum<B: Backend>(tensors: &[Tensor<B, 1>]) -> f64 {
        tensors
            .iter()
            .flat_map(|t| t.to_data().convert::<f64>().to_vec::<f64>().unwrap())
            .map(|v| v * v)
            .sum()
    }

    /// Tensors of many sizes, more than one launch's group on CUDA.
    fn tensors<B: Backend>(device: &B::Device) -> Vec<Tensor<B, 1>> {
        (0..45)
            .map(|i| {
                let n = [1, 3, 17, 256, 1000, 4099, 65_536][i % 7] + i;
                Tensor::random([n], Distribution::Normal(0.0, 1.0 + i as f64), device)
            })
            .collect()
    }

    #[test]
    fn sum_of_squares_on_the_cpu() {
        type B = NdArray<f32>;
        let device = Default::default();
        assert!(sum_of_squares::<B>(Vec::new()).is_none());
        let t = Tensor::<B, 1>::from_data(TensorData::new(vec![3f32, 4.0], [2]), &device);
        let total: Vec<f32> = sum_of_squares(vec![t.clone(), t])
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(total, vec![50.0]);
        let ts = tensors::<B>(&device);
        let want = host_sum(&ts);
        let got: Vec<f32> = sum_of_squares(ts).unwrap().into_data().to_vec().unwrap();
        assert!((f64::from(got[0]) - want).abs() <= 1e-5 * want);
    }

    /// The CUDA kernel against the host's sum in f64 (run on the GPU machine:
    /// `cargo test --features cuda -- --ignored`, see bench/gpu_tests.sh).
    #[cfg(feature = "cuda")]
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn sum_of_squares_on_cuda_matches_the_host() {
        type B = burn::backend::Cuda<f32, i32>;
        let device = burn::backend::cuda::CudaDevice::new(0);
        let ts = tensors::<B>(&device);
        let want = host_sum(&ts);
        let got: Vec<f32> = sum_of_squares(ts).unwrap().into_data().to_vec().unwrap();
        let got = f64::from(got[0]);
        assert!(
            (got - want).abs() <= 1e-5 * want,
            "kernel {got}, host {want}"
        );
        // A transposed (non-contiguous) input is read correctly too.
        let m = Tensor::<B, 2>::random([64, 48], Distribution::Normal(0.0, 1.0), &device);
        let want = host_sum(&[m.clone().reshape([64 * 48])]);
        let got: Vec<f32> = sum_of_squares(vec![m.transpose().reshape([64 * 48])])
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        assert!((f64::from(got[0]) - want).abs() <= 1e-5 * want);
    }
}
