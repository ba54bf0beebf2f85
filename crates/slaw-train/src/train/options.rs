//! The trainer's process-wide settings: which of slaw's own operations run (each can fall back
//! to Burn's composition, for benchmarks and bisection) and the chunking of the token-wise
//! Linear layers. One [`TrainerOptions`] value, fixed once per process by the binary
//! ([`set_options`], before the first trial) from its command line and `SLAW_*` environment
//! variables; the code here never reads the environment.

use std::sync::OnceLock;

/// Settings of the Burn trainer for this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainerOptions {
    /// LayerNorm through slaw's one-pass operation (`ops::layer_norm`), else Burn's.
    pub layer_norm_op: bool,
    /// Softmax through slaw's one-pass operation (`ops::softmax`), else Burn's.
    pub softmax_op: bool,
    /// The attention's head split through slaw's operation (`ops::heads`), else Burn's.
    pub heads_op: bool,
    /// AdamW's update in one pass per parameter (`ops::adamw`), else ~16 tensor operations.
    pub adamw_op: bool,
    /// Most rows per chunk of the token-wise Linear layers on CUDA (`models::token_linear`).
    pub linear_rows_cuda: usize,
    /// Most rows per chunk of a stacked Linear layer; `None`: the lone trial's setting.
    pub stack_rows: Option<usize>,
    /// bf16-mixed products on CUDA through cuBLASLt (`ops::matmul`), else Burn's bf16 product.
    /// Off by default until the path has run on a GPU (`SLAW_CUBLAS=1` turns it on).
    pub cublas_bf16: bool,
    /// f32 products on CUDA through cuBLASLt (`ops::matmul`), else Burn's.
    pub cublas_f32: bool,
}

impl Default for TrainerOptions {
    /// Everything of slaw's own on except the cuBLASLt products (not yet run on a GPU); 256 rows
    /// per chunk on CUDA (docs/PERFORMANCE.md).
    fn default() -> Self {
        TrainerOptions {
            layer_norm_op: true,
            softmax_op: true,
            heads_op: true,
            adamw_op: true,
            linear_rows_cuda: 256,
            stack_rows: None,
            cublas_bf16: false,
            cublas_f32: false,
        }
    }
}

static OPTIONS: OnceLock<TrainerOptions> = OnceLock::new();

/// Fixes this process's options; false when they were already fixed (or read: the first trial
/// fixes the defaults).
pub fn set_options(options: TrainerOptions) -> bool {
    OPTIONS.set(options).is_ok()
}

/// This process's options (the defaults unless [`set_options`] was called first).
pub fn options() -> &'static TrainerOptions {
    OPTIONS.get_or_init(TrainerOptions::default)
}
