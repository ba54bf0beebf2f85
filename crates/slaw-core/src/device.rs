//! Where a trial runs: the host CPU or one CUDA device.

/// Where a trial runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeDevice {
    /// Burn's ndarray backend on the host CPU.
    Cpu,
    /// Burn's CUDA backend on the GPU with this index (needs the `cuda` feature).
    Cuda(usize),
}

impl std::fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComputeDevice::Cpu => write!(f, "cpu"),
            ComputeDevice::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}
