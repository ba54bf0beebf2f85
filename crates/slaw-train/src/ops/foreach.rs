//! Work over many tensors in few kernel launches (what PyTorch calls "foreach" kernels): the
//! sum of the squares of every element of a list of tensors, which global-norm clipping needs
//! for all gradients of a model at every step.
//!
//! Burn has no such operation: summing the squares tensor by tensor costs a reduction launch per
//! gradient, and concatenating the gradients first costs a copy launch per gradient (126 per
//! step for the sweep's largest ViT, `docs/PERFORMANCE.md`). On slaw's CUDA backend (f32) this
//! module runs a CubeCL kernel that reads up to `cuda::GROUP` tensors per launch and writes one
//! partial sum per thread block; one Burn reduction adds the partial sums. On slaw's CPU backend
//! (f32) it sums each tensor in one pass where it lies. Every other backend (bf16) takes the
//! concatenation.
//!
//! The CUDA path is a custom operation of burn-fusion's stream, so it runs in order with the
//! operations before and after it and reads nothing back to the host.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The sum of the squares of every element of `tensors`, as a `[1]` tensor; `None` for an
/// empty list.
pub fn sum_of_squares<B: Backend>(tensors: Vec<Tensor<B, 1>>) -> Option<Tensor<B, 1>> {
    let rows = tensors
        .into_iter()
        .map(|t| t.unsqueeze_dim::<2>(0))
        .collect();
    sum_of_squares_by_row(rows)
}

/// Row `i` of the result is the sum of the squares of row `i` of every tensor of `tensors`
/// (each `[rows, n_k]`, the same number of rows): the squared gradient norm of each trial of a
/// stack, whose gradients have the trial axis first. `None` for an empty list.
pub fn sum_of_squares_by_row<B: Backend>(tensors: Vec<Tensor<B, 2>>) -> Option<Tensor<B, 1>> {
    let rows = tensors.first()?.dims()[0];
    if crate::ops::cpu::is_cpu_f32::<B>() {
        return Some(cpu::sum_of_squares_by_row(tensors));
    }
    #[cfg(feature = "cuda")]
    let tensors = match cuda::sum_of_squares(tensors) {
        Ok(total) => return Some(total),
        Err(tensors) => tensors,
    };
    Some(Tensor::cat(tensors, 1).square().sum_dim(1).reshape([rows]))
}

/// The sums on slaw's f32 CPU backend: one pass over each tensor where it lies (no copy, no
/// temporary), in f64, on rayon's threads for large tensors.
mod cpu {
    use burn::tensor::backend::Backend;
    use burn::tensor::{Tensor, TensorData};
    use rayon::prelude::*;

    use crate::ops::cpu::{array, Cpu, PARALLEL_FROM};
    use crate::ops::specialise::cast;

    /// [`super::sum_of_squares_by_row`] for `B` the CPU backend.
    pub(super) fn sum_of_squares_by_row<B: Backend>(tensors: Vec<Tensor<B, 2>>) -> Tensor<B, 1> {
        let rows = tensors[0].dims()[0];
        let mut sums = vec![0f64; rows];
        for t in tensors {
            for (sum, row) in sums.iter_mut().zip(array(t).outer_iter()) {
                *sum += match row.as_slice() {
                    Some(values) if values.len() >= PARALLEL_FROM => values
                        .par_chunks(PARALLEL_FROM / 4)
                        .map(squares)
                        .sum::<f64>(),
                    Some(values) => squares(values),
                    None => row.iter().map(|&x| f64::from(x) * f64::from(x)).sum(),
                };
            }
        }
        let sums: Vec<f32> = sums.into_iter().map(|s| s as f32).collect();
        // The CPU backend has one device.
        cast(Tensor::<Cpu, 1>::from_data(
            TensorData::new(sums, [rows]),
            &Default::default(),
        ))
    }

    /// The sum of the squares of `values`, over eight running sums that the compiler keeps
    /// in vector registers.
    fn squares(values: &[f32]) -> f64 {
        let mut lanes = [0f64; 8];
        let chunks = values.chunks_exact(8);
        let rest: f64 = chunks
            .remainder()
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        for chunk in chunks {
            for (lane, &x) in lanes.iter_mut().zip(chunk) {
                *lane += f64::from(x) * f64::from(x);
            }
        }
        lanes.iter().sum::<f64>() + rest
    }
}

#[cfg(feature = "cuda")]
pub(crate) mod cuda {
    use crate::ops::specialise::cast;

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
    pub(crate) type Inner = CubeBackend<CudaRuntime, f32, i32, u8>;
    pub(crate) type Cuda = Fusion<Inner>;
    pub(crate) type Runtime = FusionCubeRuntime<CudaRuntime>;

    /// Tensors read by one launch (the kernel is compiled once per group size).
    pub(crate) const GROUP: usize = 32;
    /// Thread blocks per launch and threads per block: one partial sum per block.
    const BLOCKS: usize = 132;
    const THREADS: u32 = 256;

    /// `Ok` with the sums by row when `B` is the f32 CUDA backend, `Err` with the tensors
    /// otherwise.
    pub(super) fn sum_of_squares<B: Backend>(
        tensors: Vec<Tensor<B, 2>>,
    ) -> Result<Tensor<B, 1>, Vec<Tensor<B, 2>>> {
        if !is_cuda_f32::<B>() {
            return Err(tensors);
        }
        let tensors = cast::<_, Vec<Tensor<Cuda, 2>>>(tensors);
        let rows = tensors[0].dims()[0];
        let launches = tensors.len().div_ceil(GROUP);
        let sums = partial_sums(tensors, rows)
            .reshape([launches, rows, BLOCKS])
            .sum_dim(2)
            .sum_dim(0)
            .reshape([rows]);
        Ok(cast(sums))
    }

    /// Whether `B` is slaw's f32 CUDA backend, the one the custom operations here and in
    /// `ops::adamw::cuda` are written for.
    pub(crate) fn is_cuda_f32<B: Backend>() -> bool {
        crate::ops::specialise::is::<B, Cuda>()
    }

    /// One partial sum of squares per thread block of every launch and row, laid out
    /// `[launches, rows, BLOCKS]`.
    fn partial_sums(tensors: Vec<Tensor<Cuda, 2>>, rows: usize) -> Tensor<Cuda, 1> {
        let inputs: Vec<FusionTensor<Runtime>> = tensors
            .into_iter()
            .map(|t| t.into_primitive().tensor())
            .collect();
        let client = inputs[0].client.clone();
        let launches = inputs.len().div_ceil(GROUP);
        let out = TensorIr::uninit(
            client.create_empty_handle(),
            Shape::new([launches * rows * BLOCKS]),
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
                    // The kernel reads each row as a linear run of the buffer: with one row any
                    // order of the elements is fine (gaps or overlaps are not); with several,
                    // the layout must be row-major.
                    let rows = t.meta.shape()[0];
                    if (rows == 1 && t.is_contiguous_buffer()) || t.is_contiguous() {
                        t
                    } else {
                        into_contiguous(t)
                    }
                })
                .collect();
            let out = &self.desc.outputs[0];
            let rows = self.desc.inputs[0].shape[0];
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
                    CubeCount::Static(BLOCKS as u32, rows as u32, 1),
                    CubeDim::new_1d(THREADS),
                    tensors,
                    partials.clone().into_tensor_arg(),
                    launch * rows * BLOCKS,
                    rows,
                    THREADS as usize,
                );
            }
            handles.register_float_tensor::<Inner>(&out.id, partials);
        }
    }

    /// The CubeCL kernel (its own module: CubeCL's `Tensor` is not Burn's).
    mod kernel {
        use cubecl::prelude::*;

        /// The blocks of grid row `y` read row `y` of every tensor (each `rows` equal runs of its
        /// buffer); each thread adds the squares of a grid-strided share of the row, and each
        /// block writes the sum of its threads to `partials[offset + y · blocks + x]`.
        #[cube(launch)]
        pub(super) fn sum_of_squares_kernel(
            tensors: Sequence<Tensor<f32>>,
            partials: &mut Tensor<f32>,
            offset: usize,
            rows: usize,
            #[comptime] threads: usize,
        ) {
            let row = CUBE_POS_Y as usize;
            let blocks = CUBE_COUNT_X as usize;
            let stride = blocks * CUBE_DIM as usize;
            let first = CUBE_POS_X as usize * CUBE_DIM as usize + UNIT_POS as usize;
            let mut acc = 0.0f32;
            let count = comptime![tensors.len()];
            #[unroll]
            for k in 0..count {
                let t = tensors.index(k);
                let n = t.len() / rows;
                let base = row * n;
                let mut i = first;
                while i < n {
                    let v = t[base + i];
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
                partials[offset + row * blocks + CUBE_POS_X as usize] = shared[0];
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
        // Rows that are not contiguous (of a transposed matrix) are read where they lie.
        let m = Tensor::<B, 2>::random([64, 48], Distribution::Normal(0.0, 1.0), &device);
        let want = host_sum(&[m.clone().reshape([64 * 48])]);
        let got: Vec<f32> = sum_of_squares_by_row(vec![m.transpose()])
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(got.len(), 48);
        let got: f64 = got.iter().map(|&g| f64::from(g)).sum();
        assert!((got - want).abs() <= 1e-5 * want, "{got} vs {want}");
    }

    /// Sums by row against the host's, on the CPU (the concatenation) and, below, on CUDA.
    fn check_rows<B: Backend>(device: &B::Device) {
        let ts: Vec<Tensor<B, 2>> = [1usize, 7, 300, 4099, 70_000]
            .iter()
            .cycle()
            .take(40)
            .enumerate()
            .map(|(i, &n)| {
                Tensor::random([3, n], Distribution::Normal(0.0, 1.0 + i as f64), device)
            })
            .collect();
        let got: Vec<f32> = sum_of_squares_by_row(ts.clone())
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(got.len(), 3);
        for (row, g) in got.iter().enumerate() {
            let parts: Vec<Tensor<B, 1>> = ts
                .iter()
                .map(|t| {
                    let n = t.dims()[1];
                    t.clone().narrow(0, row, 1).reshape([n])
                })
                .collect();
            let want = host_sum(&parts);
            assert!(
                (f64::from(*g) - want).abs() <= 1e-5 * want,
                "row {row}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn sum_of_squares_by_row_on_the_cpu() {
        check_rows::<NdArray<f32>>(&Default::default());
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
        check_rows::<B>(&device);
        // Rows of a transposed tensor are not runs of its buffer: it is laid out first.
        let m = Tensor::<B, 2>::random([48, 3], Distribution::Normal(0.0, 1.0), &device);
        let rows = m.clone().transpose();
        let got: Vec<f32> = sum_of_squares_by_row(vec![rows.clone()])
            .unwrap()
            .into_data()
            .to_vec()
            .unwrap();
        for (row, g) in got.iter().enumerate() {
            let want = host_sum(&[rows.clone().narrow(0, row, 1).reshape([48])]);
            assert!((f64::from(*g) - want).abs() <= 1e-5 * want, "{g} vs {want}");
        }
    }
}
