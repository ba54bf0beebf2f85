//! The trainer as the executors see it: the [`Trainer`] trait. The `slaw` library runs trials
//! through it without knowing how they train; the `slaw` binary implements it with the Burn
//! trainer (`slaw-train`), so that the orchestrator compiles without Burn.

use std::path::Path;

use crate::config::TrialConfig;
use crate::device::ComputeDevice;
use crate::report::{Outcome, Reporter};

/// Why a stack of trials could not train (its data would not load, the configuration cannot
/// run on the device, the backend failed). The text is stored as the trials' error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TrainerError(pub String);

/// Trains trials of slaw's own trainer (`trainer: burn` in a sweep file).
pub trait Trainer: Send + Sync {
    /// Whether this build can train on CUDA devices.
    fn cuda_built(&self) -> bool;

    /// Whether trial `b` can train in one stack (one model with a leading trial axis) with `a`.
    fn stackable(&self, a: &TrialConfig, b: &TrialConfig) -> bool;

    /// Trains `configs` as one stack on `device` (a single configuration trains alone),
    /// reporting trial `i` to `reporters[i]`; the outcomes come back in the same order. Data
    /// files are read under `data_path` (the trainer's default place when `None`); a data set
    /// loaded once is kept for later calls with the same data configuration.
    fn train_stack(
        &self,
        configs: &[TrialConfig],
        data_path: Option<&Path>,
        device: &ComputeDevice,
        reporters: &mut [&mut dyn Reporter],
    ) -> Result<Vec<Outcome>, TrainerError>;
}
