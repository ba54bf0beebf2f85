//! Matrix products through cuBLASLt (NVIDIA's matmul library, loaded at run time through
//! cudarc): row-major operands as CubeCL lays them out, bf16 or f32, f32 accumulation and f32
//! results, an optional bias added in the product's epilogue.
//!
//! Everything here runs on CubeCL's device thread (the CUDA context is current there), called by
//! the patched cubecl-cuda's external tasks (`vendor/cubecl-cuda/src/compute/external.rs`) with
//! the operands' device addresses and CubeCL's stream. That thread keeps one cuBLASLt handle, a
//! workspace and, per product shape, the descriptors and the algorithm cuBLASLt's heuristic chose
//! (the heuristic costs tens of microseconds; a training step repeats the same few shapes).
//!
//! The operands' layouts as cuBLASLt reads them are [`column_major`]'s (tested on the CPU).

use std::cell::RefCell;
use std::collections::hash_map::{Entry, HashMap};
use std::ffi::c_void;
use std::sync::OnceLock;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;
use cudarc::driver::sys::CUstream_st;

pub(crate) use super::layout::Gemm;
use super::layout::{column_major, ColumnMajor};

/// Bytes of cuBLASLt's workspace (NVIDIA recommends 32 MiB on Hopper).
const WORKSPACE_BYTES: usize = 32 << 20;

/// `cublasOperation_t`: no transposition, transposition.
fn op(transposed: bool) -> i32 {
    i32::from(transposed)
}

/// Whether libcublasLt can be loaded in this process (checked once).
pub(crate) fn available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        #[allow(unsafe_code)]
        // SAFETY: loading a shared library runs its initialisers; libcublasLt's are NVIDIA's.
        unsafe {
            sys::is_culib_present()
        }
    })
}

/// The descriptors and algorithm of one product shape.
struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    first: sys::cublasLtMatrixLayout_t,
    second: sys::cublasLtMatrixLayout_t,
    out: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
}

/// The device thread's handle, workspaces (one per stream: products on different streams may
/// run at the same time) and plans, by product and the operands' alignment; never freed (they
/// live as long as the process's CUDA context).
struct Lt {
    handle: sys::cublasLtHandle_t,
    workspaces: HashMap<usize, u64>,
    plans: HashMap<(Gemm, u32), Plan>,
}

thread_local! {
    static LT: RefCell<Option<Lt>> = const { RefCell::new(None) };
}

fn err(what: &str, e: impl std::fmt::Debug) -> String {
    format!("cuBLASLt {what}: {e:?}")
}

/// Enqueues `gemm` on `stream`. `addresses`: the device addresses of A, B, the bias (when
/// `gemm.bias`) and the result, in that order, each compact row-major.
pub(crate) fn enqueue(
    gemm: Gemm,
    addresses: &[u64],
    stream: *mut CUstream_st,
) -> Result<(), String> {
    let expected = if gemm.bias { 4 } else { 3 };
    if addresses.len() != expected {
        return Err(format!(
            "cuBLASLt product: {} operands, expected {expected}",
            addresses.len()
        ));
    }
    LT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let lt = match &mut *slot {
            Some(lt) => lt,
            None => slot.insert(Lt::new()?),
        };
        lt.run(gemm, addresses, stream)
    })
}

impl Lt {
    fn new() -> Result<Self, String> {
        let handle = lt::create_handle().map_err(|e| err("handle", e))?;
        Ok(Lt {
            handle,
            workspaces: HashMap::new(),
            plans: HashMap::new(),
        })
    }

    #[allow(unsafe_code)]
    fn run(
        &mut self,
        gemm: Gemm,
        addresses: &[u64],
        stream: *mut CUstream_st,
    ) -> Result<(), String> {
        // The largest power of two (at most 256, cuBLASLt's default assumption) that divides
        // every address: CubeCL aligns allocations to 512 bytes, views may start anywhere.
        let align = addresses
            .iter()
            .map(|a| 1u32 << a.trailing_zeros().min(8))
            .min()
            .unwrap_or(256);
        let plan = match self.plans.entry((gemm, align)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(plan(self.handle, gemm, align)?),
        };
        let workspace = match self.workspaces.entry(stream as usize) {
            Entry::Occupied(e) => *e.get(),
            // SAFETY: the device thread's CUDA context is current; the allocation is kept for
            // the life of the process.
            Entry::Vacant(e) => *e.insert(
                unsafe { cudarc::driver::result::malloc_sync(WORKSPACE_BYTES) }
                    .map_err(|e| err("workspace", e))?,
            ),
        };
        let (a, b) = (addresses[0], addresses[1]);
        let d = addresses[addresses.len() - 1];
        let (alpha, beta) = (1f32, 0f32);
        // SAFETY: the plan's descriptors are alive (never destroyed); the addresses are CubeCL's
        // allocations of the shapes the plan describes (checked by the caller), alive until the
        // stream has run the product (CubeCL reuses memory in stream order); the bias pointer
        // attribute is read when the product is enqueued.
        unsafe {
            if gemm.bias {
                let bias = addresses[2] as *const c_void;
                lt::set_matmul_desc_attribute(
                    plan.desc,
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                    &bias as *const *const c_void as *const c_void,
                    std::mem::size_of::<*const c_void>(),
                )
                .map_err(|e| err("bias pointer", e))?;
            }
            lt::matmul(
                self.handle,
                plan.desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                b as *const c_void,
                plan.first,
                a as *const c_void,
                plan.second,
                d as *const c_void,
                plan.out,
                d as *mut c_void,
                plan.out,
                &plan.algo,
                workspace as *mut c_void,
                WORKSPACE_BYTES,
                stream as sys::cudaStream_t,
            )
            .map_err(|e| err(&format!("product {gemm:?}"), e))
        }
    }
}

/// Descriptors and `handle`'s heuristic's algorithm for `g` on operands aligned to `align` bytes.
#[allow(unsafe_code)]
fn plan(handle: sys::cublasLtHandle_t, g: Gemm, align: u32) -> Result<Plan, String> {
    use sys::cudaDataType::{CUDA_R_16BF, CUDA_R_32F};
    let operand = if g.bf16 { CUDA_R_16BF } else { CUDA_R_32F };
    let [first_layout, second_layout, out_layout] = column_major(&g);
    let layout = |ty, c: ColumnMajor| -> Result<sys::cublasLtMatrixLayout_t, String> {
        let l = lt::create_matrix_layout(ty, c.rows as u64, c.cols as u64, c.ld as i64)
            .map_err(|e| err("layout", e))?;
        if g.batch > 1 {
            let count = g.batch as i32;
            let stride = c.batch_stride as i64;
            // SAFETY: `l` was just created; the values are the attributes' types.
            unsafe {
                lt::set_matrix_layout_attribute(
                    l,
                    sys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                    &count as *const i32 as *const c_void,
                    4,
                )
                .map_err(|e| err("batch count", e))?;
                lt::set_matrix_layout_attribute(
                        l,
                        sys::cublasLtMatrixLayoutAttribute_t::CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                        &stride as *const i64 as *const c_void,
                        8,
                    )
                    .map_err(|e| err("batch stride", e))?;
            }
        }
        Ok(l)
    };
    let first = layout(operand, first_layout)?;
    let second = layout(operand, second_layout)?;
    let out = layout(CUDA_R_32F, out_layout)?;
    let (first_op, second_op) = (op(first_layout.transposed), op(second_layout.transposed));
    let desc = lt::create_matmul_desc(sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, CUDA_R_32F)
        .map_err(|e| err("descriptor", e))?;
    // SAFETY: the descriptors were just created; each value has its attribute's type.
    unsafe {
        let set = |attr, value: *const c_void, size| {
            lt::set_matmul_desc_attribute(desc, attr, value, size).map_err(|e| err("attribute", e))
        };
        use sys::cublasLtMatmulDescAttributes_t as A;
        set(
            A::CUBLASLT_MATMUL_DESC_TRANSA,
            &first_op as *const i32 as *const c_void,
            4,
        )?;
        set(
            A::CUBLASLT_MATMUL_DESC_TRANSB,
            &second_op as *const i32 as *const c_void,
            4,
        )?;
        if g.bias {
            let epilogue = sys::cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS;
            set(
                A::CUBLASLT_MATMUL_DESC_EPILOGUE,
                &epilogue as *const sys::cublasLtEpilogue_t as *const c_void,
                std::mem::size_of::<sys::cublasLtEpilogue_t>(),
            )?;
        }
        let pref = lt::create_matmul_pref().map_err(|e| err("preference", e))?;
        let bytes = WORKSPACE_BYTES as u64;
        lt::set_matmul_pref_attribute(
            pref,
            sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            &bytes as *const u64 as *const c_void,
            8,
        )
        .map_err(|e| err("workspace preference", e))?;
        use sys::cublasLtMatmulPreferenceAttributes_t as Pref;
        for attr in [
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
        ] {
            lt::set_matmul_pref_attribute(pref, attr, &align as *const u32 as *const c_void, 4)
                .map_err(|e| err("alignment preference", e))?;
        }
        let heuristic = lt::get_matmul_algo_heuristic(handle, desc, first, second, out, out, pref)
            .map_err(|e| err(&format!("no algorithm for {g:?}"), e))?;
        lt::destroy_matmul_pref(pref).map_err(|e| err("preference", e))?;
        Ok(Plan {
            desc,
            first,
            second,
            out,
            algo: heuristic.algo,
        })
    }
}
