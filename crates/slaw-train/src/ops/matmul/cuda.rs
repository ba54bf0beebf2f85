//! The product on slaw's f32 CUDA backend: one custom operation of burn-fusion's stream, which
//! hands its operands to cuBLASLt on CubeCL's stream (an external task of the patched
//! cubecl-cuda).

use std::sync::OnceLock;

use burn::tensor::ops::FloatTensor;
use burn::tensor::{DType, Shape};
use burn_fusion::stream::Operation;
use burn_ir::CustomOpIr;
use cubecl::cuda::external::ExternalTask;
use cubecl::prelude::CubeCount;
use cubecl::server::KernelArguments;

use super::cublaslt::{self, Gemm};
use super::node::Products;
use crate::ops::custom_op::{contiguous_inputs, empty, register, register_outputs, Handles};
use crate::ops::foreach::cuda::Cuda;

/// Whether libcublasLt loads; the first call that finds it missing says so on standard error.
pub(super) fn library_loads() -> bool {
    static SAID: OnceLock<()> = OnceLock::new();
    let loads = cublaslt::available();
    if !loads {
        SAID.get_or_init(|| {
            eprintln!(
                "slaw: libcublasLt could not be loaded; matrix products use Burn's kernels \
                 (bf16 products are then several times slower)"
            );
        });
    }
    loads
}

impl Products for Cuda {
    fn product(
        a: FloatTensor<Self>,
        ta: bool,
        b: FloatTensor<Self>,
        tb: bool,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        let (da, db) = (a.shape.to_vec(), b.shape.to_vec());
        let d = da.len();
        assert!(d >= 2 && db.len() == d, "product of {da:?} and {db:?}");
        assert_eq!(da[..d - 2], db[..d - 2], "product's leading axes");
        let (m, k) = if ta {
            (da[d - 1], da[d - 2])
        } else {
            (da[d - 2], da[d - 1])
        };
        let (kb, n) = if tb {
            (db[d - 1], db[d - 2])
        } else {
            (db[d - 2], db[d - 1])
        };
        assert_eq!(k, kb, "product of {da:?} (t: {ta}) and {db:?} (t: {tb})");
        let bf16 = a.dtype == DType::BF16;
        assert_eq!(a.dtype, b.dtype, "the product's operands have one type");
        let gemm = Gemm {
            batch: da[..d - 2].iter().product(),
            m,
            n,
            k,
            ta,
            tb,
            bf16,
            bias: bias.is_some(),
        };
        let mut out = da[..d - 2].to_vec();
        out.extend([m, n]);
        let mut inputs = vec![a, b];
        inputs.extend(bias);
        let [y] = register("slaw_product", inputs, [Shape::from(out)], |desc| {
            ProductOp { desc, gemm }
        });
        y
    }
}

/// One product; inputs A, B and the bias (when `gemm.bias`), one f32 output.
#[derive(Debug, Clone)]
struct ProductOp {
    desc: CustomOpIr,
    gemm: Gemm,
}

impl Operation<crate::ops::foreach::cuda::Runtime> for ProductOp {
    fn execute(&self, handles: &mut Handles) {
        let inputs = contiguous_inputs(&self.desc, handles);
        let first = &inputs[0];
        let y = empty(first, self.desc.outputs[0].shape.clone());
        let mut buffers: Vec<_> = inputs.iter().map(|t| t.handle.clone().binding()).collect();
        buffers.push(y.handle.clone().binding());
        let args = KernelArguments {
            buffers,
            ..Default::default()
        };
        let gemm = self.gemm;
        let task = ExternalTask::new(Box::new(move |addresses: &[u64], stream| {
            cublaslt::enqueue(gemm, addresses, stream)
        }));
        first
            .client
            .launch(Box::new(task), CubeCount::Static(1, 1, 1), args);
        register_outputs(&self.desc, handles, vec![y]);
    }
}
