//! slaw patch: work of a library outside CubeCL (cuBLASLt) enqueued on CubeCL's stream, in the
//! stream's order, from the device thread.
//!
//! CubeCL 0.10 keeps each CUDA stream and the device addresses of its tensors private to the
//! server, which runs on a device thread; a library call that reads and writes CubeCL's tensors
//! must be enqueued on the same stream after the kernels that wrote its inputs and before those
//! that read its outputs. An [`ExternalTask`] travels the same way as a kernel
//! (`ComputeClient::launch` with the tensors' bindings): the server resolves the bindings as for
//! a kernel (waiting on other streams where a tensor was last written there), then calls the
//! task's function with the device addresses, in the bindings' order, and the stream, instead of
//! compiling and launching a kernel. The function runs on the device thread, where the CUDA
//! context is current.

use cubecl_core::{
    ir::{ElemType, StorageType, UIntKind},
    prelude::{CompiledKernel, ExecutionMode, KernelId},
};
use cubecl_runtime::{
    compiler::{CompilationError, CubeTask},
    kernel::KernelMetadata,
};
use cudarc::driver::sys::CUstream_st;
use std::sync::Mutex;

use crate::CudaCompiler;

/// The work of an [`ExternalTask`]: called once with the device address of each binding (in
/// order) and the stream to enqueue on; an error is reported as the launch's error.
pub type ExternalCall = Box<dyn FnOnce(&[u64], *mut CUstream_st) -> Result<(), String> + Send>;

/// A "kernel" that the server runs as a call of its function (see the module's doc). The mutex
/// only makes the task `Sync`, as kernels must be; the server owns the task when it calls it.
pub struct ExternalTask {
    call: Mutex<ExternalCall>,
}

impl ExternalTask {
    /// A task that runs `call` on the stream, in order.
    pub fn new(call: ExternalCall) -> Self {
        Self {
            call: Mutex::new(call),
        }
    }

    /// The kernel id of every external task.
    fn kernel_id() -> KernelId {
        KernelId::new::<ExternalTask>()
    }

    /// Its function.
    pub(crate) fn into_call(self) -> ExternalCall {
        // A poisoned lock still holds the function: nothing ran under it.
        self.call.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl KernelMetadata for ExternalTask {
    fn name(&self) -> &'static str {
        "cubecl_cuda::external::ExternalTask"
    }

    fn id(&self) -> KernelId {
        Self::kernel_id()
    }

    fn address_type(&self) -> StorageType {
        StorageType::Scalar(ElemType::UInt(UIntKind::U32))
    }
}

impl CubeTask<CudaCompiler> for ExternalTask {
    fn compile(
        &self,
        _compiler: &mut CudaCompiler,
        _options: &<CudaCompiler as cubecl_core::Compiler>::CompilationOptions,
        _mode: ExecutionMode,
        _address_type: StorageType,
    ) -> Result<CompiledKernel<CudaCompiler>, CompilationError> {
        Err(CompilationError::Generic {
            reason: "an external task is called, not compiled".into(),
            backtrace: cubecl_common::backtrace::BackTrace::capture(),
        })
    }
}

/// `kernel` as an external task, when it is one; else `kernel` back.
pub(crate) fn downcast(
    kernel: Box<dyn CubeTask<CudaCompiler>>,
) -> Result<Box<ExternalTask>, Box<dyn CubeTask<CudaCompiler>>> {
    // The kernel id compares the type's `TypeId`: only an `ExternalTask` has this one.
    if kernel.id() != ExternalTask::kernel_id() {
        return Err(kernel);
    }
    let raw = Box::into_raw(kernel) as *mut ExternalTask;
    // SAFETY: the value behind the box is an `ExternalTask` (its `TypeId` was checked above);
    // the cast keeps the data pointer of the fat pointer, which was allocated as a
    // `Box<ExternalTask>` before its coercion to `Box<dyn CubeTask>`.
    Ok(unsafe { Box::from_raw(raw) })
}
