//! Running trials: the worker loop (claim → train → record), command trainers and their line
//! protocol, the local executor that runs one worker process per job slot on this machine, and
//! the Slurm executor that runs workers as job-array tasks against a shared database. Which
//! trials are claimable is the store's business; this module only runs what it is given.
//! `mps` starts and stops the CUDA Multi-Process Service around a packed local run.
//!
//! Both executors implement [`Executor`]: the run use case (`sweep::run`) drives either the
//! same way. Command trainers are not a third executor: a worker runs a command trial
//! (`command`) where it would train a trial of slaw's own trainer.

pub mod command;
pub mod local;
pub mod mps;
pub mod packing;
pub mod protocol;
pub mod reaper;
pub mod slurm;
pub mod worker;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use slaw_core::ComputeDevice;

use self::local::{Observer, RunEnd, Scheduler};
use crate::store::{Store, StoreError};

/// Where a sweep's trials run: worker processes on this machine ([`local::LocalOptions`]) or
/// job arrays of workers on a Slurm cluster ([`slurm::SlurmOptions`]).
pub trait Executor {
    /// Runs the sweep's claimable trials (adding those `scheduler` asks for) until none is
    /// left, `stop` is set, or the executor gives up; reports to `observer` as it goes.
    fn execute(
        &self,
        store: &Store,
        stop: Arc<AtomicBool>,
        scheduler: &mut impl Scheduler,
        observer: &mut dyn Observer,
    ) -> impl std::future::Future<Output = Result<RunOutcome, ExecError>>;
}

/// How a run of a sweep's trials ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// Final counts, whether Ctrl-C stopped it, and how long it took.
    pub run: RunEnd,
    /// The Slurm job ids this run submitted (none for a local run).
    pub jobs: Vec<String>,
    /// Trials still claimable when it gave up (resubmissions used up) or detached.
    pub left: usize,
}

impl Executor for local::LocalOptions {
    async fn execute(
        &self,
        store: &Store,
        stop: Arc<AtomicBool>,
        scheduler: &mut impl Scheduler,
        observer: &mut dyn Observer,
    ) -> Result<RunOutcome, ExecError> {
        let run = local::run_local(store, self, stop, scheduler, observer).await?;
        Ok(RunOutcome {
            run,
            jobs: Vec::new(),
            left: 0,
        })
    }
}

impl Executor for slurm::SlurmOptions {
    async fn execute(
        &self,
        store: &Store,
        stop: Arc<AtomicBool>,
        scheduler: &mut impl Scheduler,
        observer: &mut dyn Observer,
    ) -> Result<RunOutcome, ExecError> {
        slurm::run_slurm(store, self, stop, scheduler, observer).await
    }
}

/// Errors while running trials.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A worker process could not be started or kept failing.
    #[error("{0}")]
    Worker(String),
    /// Process management failed.
    #[error("process error: {0}")]
    Io(#[from] std::io::Error),
    /// A device list could not be understood or used.
    #[error("{0}")]
    Device(String),
    /// Slurm refused or failed a command (`sbatch`, `squeue`, `scancel`).
    #[error("slurm: {0}")]
    Slurm(String),
    /// The database failed under a running sweep (file gone or read-only, disk full); the run
    /// stopped its workers. A deleted SQLite file was written back where `rescued` says.
    #[error("{}", fault_message(.fault, .rescued))]
    StoreFault {
        /// What failed.
        fault: crate::store::Fault,
        /// Where the database's contents were written back, or why they could not be.
        rescued: Option<Result<std::path::PathBuf, String>>,
    },
    /// The GPU failed for this process (out of memory in a device thread): the trial was
    /// recorded as failed and the process must end.
    #[error("{0}")]
    DeviceFailed(String),
}

fn fault_message(
    fault: &crate::store::Fault,
    rescued: &Option<Result<std::path::PathBuf, String>>,
) -> String {
    let rescue = match rescued {
        None => "what was committed before stays committed".to_string(),
        Some(Ok(path)) => format!(
            "everything committed until now was written back to {}",
            path.display()
        ),
        Some(Err(e)) => format!("its contents could not be written back ({e})"),
    };
    format!(
        "{fault}; the run stopped its workers and {rescue}. Fix the storage, then run the same \
         command again to continue"
    )
}

/// Parses `cpu`, `cuda` (every visible GPU), `cuda:N` or `cuda:0,2`.
pub fn parse_devices(text: &str) -> Result<Vec<ComputeDevice>, ExecError> {
    let bad = || {
        ExecError::Device(format!(
            "unknown device {text:?}: use cpu, cuda, cuda:N or cuda:N,M,..."
        ))
    };
    match text {
        "cpu" => Ok(vec![ComputeDevice::Cpu]),
        "cuda" => {
            let n = visible_gpus();
            if n == 0 {
                return Err(ExecError::Device(
                    "--device cuda: no GPU is visible (nvidia-smi lists none)".into(),
                ));
            }
            Ok((0..n).map(ComputeDevice::Cuda).collect())
        }
        _ => {
            let list = text.strip_prefix("cuda:").ok_or_else(bad)?;
            list.split(',')
                .map(|s| {
                    s.trim()
                        .parse::<usize>()
                        .map(ComputeDevice::Cuda)
                        .map_err(|_| bad())
                })
                .collect()
        }
    }
}

/// GPUs visible to this process, as `nvidia-smi -L` lists them (honours
/// `CUDA_VISIBLE_DEVICES`).
pub fn visible_gpus() -> usize {
    if let Ok(v) = std::env::var("CUDA_VISIBLE_DEVICES") {
        return v.split(',').filter(|s| !s.trim().is_empty()).count();
    }
    std::process::Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or(0, |o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with("GPU "))
                .count()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists() {
        assert_eq!(parse_devices("cpu").unwrap(), vec![ComputeDevice::Cpu]);
        assert_eq!(
            parse_devices("cuda:0,2").unwrap(),
            vec![ComputeDevice::Cuda(0), ComputeDevice::Cuda(2)]
        );
        assert_eq!(
            parse_devices("cuda:1").unwrap(),
            vec![ComputeDevice::Cuda(1)]
        );
        assert!(parse_devices("tpu").is_err());
        assert!(parse_devices("cuda:x").is_err());
    }
}
