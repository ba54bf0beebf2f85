//! The sweep scheduler's policy: registering a sweep and its grid in the store (so that a rerun
//! or an extended axis runs only what is missing), checking that the sweep can run on the chosen
//! devices, and summarising where a sweep stands.
//!
//! Which stored trials are claimable (pending, or ended with retries left) is decided by the
//! store's claim query from the sweep's retry limits; this module never parses YAML.
//!
//! Two submodules sit above the rest of the library and call it: [`run`], the run use case
//! end to end (register, execute through an executor, fits and figures at the end), and
//! [`results`], the laws, curves, figures and report that readers and the end of a run write.

pub mod adaptive;
pub mod progress;
pub mod results;
pub mod run;

use serde::Serialize;
use slaw_core::config::Precision;
use slaw_core::ComputeDevice;

use crate::plan::{expand, is_member, Plan};
use crate::spec::SweepSpec;
use crate::store::{
    now, SlurmJobRow, StateCounts, Store, StoreError, SweepRow, SyncReport, TrialRow, TrialState,
};

/// Errors of the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sweep cannot run on the chosen devices.
    #[error("{0}")]
    Unsupported(String),
    /// Running its trials failed.
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    /// Fitting or storing its laws failed.
    #[error(transparent)]
    Analysis(#[from] crate::analysis::AnalysisError),
    /// A figure could not be drawn.
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    /// A results file could not be written or read.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done (`writing`, `creating`, ...).
        what: &'static str,
        /// The file or folder.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A request the sweep cannot answer (a trial key that names no trial).
    #[error("{0}")]
    Input(String),
}

/// A sweep registered in the store.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Its id.
    pub sweep_id: i64,
    /// Its expanded grid.
    pub plan: Plan,
    /// What registering changed.
    pub sync: SyncReport,
}

/// Stores the sweep and its grid: new trials become pending, finished ones stay finished.
pub async fn prepare(
    store: &Store,
    spec: &SweepSpec,
    yaml: &str,
    source: Option<&str>,
) -> Result<Prepared, SweepError> {
    let plan = expand(spec);
    let sweep_id = store.upsert_sweep(spec, yaml, source).await?;
    let sync = store
        .sync_trials(sweep_id, &plan.trials, &|c| is_member(spec, c))
        .await?;
    Ok(Prepared {
        sweep_id,
        plan,
        sync,
    })
}

/// Refuses combinations that cannot train: bf16 on the CPU, CUDA in a build without it
/// (`cuda_built`: whether the trainer can use CUDA, [`slaw_core::Trainer::cuda_built`]). A
/// command trainer runs anywhere (its program uses the GPU, not slaw).
pub fn preflight(
    spec: &SweepSpec,
    devices: &[ComputeDevice],
    cuda_built: bool,
) -> Result<(), SweepError> {
    let Some(burn) = spec.burn() else {
        return Ok(());
    };
    let cuda = devices.iter().any(|d| matches!(d, ComputeDevice::Cuda(_)));
    if cuda && !cuda_built {
        return Err(SweepError::Unsupported(
            "this slaw was built without CUDA: rebuild with `cargo build --release --features cuda`"
                .into(),
        ));
    }
    if burn.precision != Precision::F32 && devices.contains(&ComputeDevice::Cpu) {
        return Err(SweepError::Unsupported(format!(
            "sweep {}: precision {} needs --device cuda (the CPU backend trains in f32)",
            spec.name,
            burn.precision.name()
        )));
    }
    Ok(())
}

/// A running trial and the time it still needs at its current speed.
#[derive(Debug, Clone, Serialize)]
pub struct RunningTrial {
    /// The trial.
    pub trial: TrialRow,
    /// Seconds since its training started.
    pub elapsed: f64,
    /// Estimated seconds to its end, once it has made progress.
    pub remaining: Option<f64>,
}

/// Where a sweep stands.
#[derive(Debug, Clone, Serialize)]
pub struct SweepStatus {
    /// The sweep.
    pub name: String,
    /// Counts by state.
    pub counts: StateCounts,
    /// Per model size (in axis order), the completed trial with the lowest final validation
    /// loss.
    pub best_per_size: Vec<TrialRow>,
    /// The running trial that will finish last at its current speed.
    pub slowest_running: Option<RunningTrial>,
    /// Trials that ended in failure, with their error.
    pub failed: Vec<TrialRow>,
    /// Planned FLOPs.
    pub total_flops: f64,
    /// FLOPs still to run.
    pub remaining_flops: f64,
    /// Progress and time left at the current number of running trials.
    pub progress: progress::Progress,
    /// The Slurm job arrays submitted for the sweep, oldest first.
    pub slurm_jobs: Vec<SlurmJobRow>,
    /// The Slurm array tasks (`JOBID_TASK`) of the running trials' workers.
    pub slurm_tasks: Vec<String>,
}

/// Summarises the sweep `sweep`.
pub async fn status(store: &Store, sweep: &SweepRow) -> Result<SweepStatus, SweepError> {
    let trials = store.trials(sweep.id).await?;
    let counts = store.counts(sweep.id).await?;
    let (total_flops, remaining_flops) = store.flops_remaining(sweep.id).await?;
    let work: Vec<progress::TrialWork> = store
        .work(sweep.id)
        .await?
        .iter()
        .map(progress::TrialWork::from)
        .collect();
    let progress = progress::estimate(&work, counts.running);
    let mut best_per_size: Vec<TrialRow> = Vec::new();
    for t in trials.iter().filter(|t| t.state == TrialState::Completed) {
        let Some(loss) = t.final_val_loss else {
            continue;
        };
        match best_per_size
            .iter_mut()
            .find(|b| b.size_index == t.size_index)
        {
            Some(b) if b.final_val_loss.is_some_and(|bl| bl <= loss) => {}
            Some(b) => *b = t.clone(),
            None => best_per_size.push(t.clone()),
        }
    }
    best_per_size.sort_by_key(|t| t.size_index);
    let t_now = now();
    let slowest_running = trials
        .iter()
        .filter(|t| t.state == TrialState::Running)
        .map(|t| {
            let began = t.started_at.or(t.claimed_at).unwrap_or(t_now);
            let elapsed = (t_now - began).max(0.0);
            let step = t.progress_step.unwrap_or(0) as f64;
            let remaining = (step > 0.0).then(|| elapsed / step * (t.steps as f64 - step).max(0.0));
            RunningTrial {
                trial: t.clone(),
                elapsed,
                remaining,
            }
        })
        .max_by(|a, b| {
            let key = |r: &RunningTrial| r.remaining.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        });
    let failed = trials
        .iter()
        .filter(|t| t.state == TrialState::Failed)
        .cloned()
        .collect();
    let slurm_tasks = trials
        .iter()
        .filter(|t| t.state == TrialState::Running)
        .filter_map(|t| t.slurm_job.clone())
        .collect();
    Ok(SweepStatus {
        name: sweep.name.clone(),
        counts,
        best_per_size,
        slowest_running,
        failed,
        total_flops,
        remaining_flops,
        progress,
        slurm_jobs: store.slurm_jobs(sweep.id).await?,
        slurm_tasks,
    })
}

/// The scheduler of an adaptive learning-rate search: between polls it asks
/// [`adaptive::plan_next`] which rates to run and adds those trials to the store.
pub struct AdaptiveScheduler {
    sweep_id: i64,
    spec: SweepSpec,
}

impl AdaptiveScheduler {
    /// A scheduler for `spec` (which must have `adaptive` set to add anything).
    pub fn new(sweep_id: i64, spec: SweepSpec) -> Self {
        AdaptiveScheduler { sweep_id, spec }
    }

    /// Adds the trials the search needs now; returns how many, and the planner's decision.
    pub async fn advance(
        &self,
        store: &Store,
    ) -> Result<(usize, Option<adaptive::Decision>), SweepError> {
        let spec = &self.spec;
        let Some(a) = &spec.adaptive else {
            return Ok((0, None));
        };
        let params: Vec<f64> = (0..spec.size_count())
            .map(|i| spec.size_params(i).unwrap_or(0) as f64)
            .collect();
        let examples: Vec<f64> = spec
            .epochs
            .iter()
            .map(|&e| crate::plan::trial(spec, 0, e, a.centre, 0).examples as f64)
            .collect();
        let r = &spec.retries;
        let known: Vec<adaptive::KnownTrial> = store
            .trials(self.sweep_id)
            .await?
            .iter()
            .map(|t| {
                let retries_left = |limit: u32| t.attempts <= i64::from(limit);
                let outcome = match t.state {
                    TrialState::Pending | TrialState::Running => adaptive::KnownOutcome::Waiting,
                    TrialState::Completed => match t.final_val_loss {
                        Some(l) => adaptive::KnownOutcome::Loss(l),
                        None => adaptive::KnownOutcome::Diverged,
                    },
                    TrialState::Failed if retries_left(r.failed) => adaptive::KnownOutcome::Waiting,
                    TrialState::Diverged if retries_left(r.diverged) => {
                        adaptive::KnownOutcome::Waiting
                    }
                    TrialState::Interrupted if retries_left(r.interrupted) => {
                        adaptive::KnownOutcome::Waiting
                    }
                    TrialState::Diverged => adaptive::KnownOutcome::Diverged,
                    TrialState::Failed | TrialState::Interrupted => adaptive::KnownOutcome::Failed,
                };
                adaptive::KnownTrial {
                    size_index: t.size_index as usize,
                    epochs: t.epochs,
                    lr: t.lr,
                    outcome,
                }
            })
            .collect();
        let decision = adaptive::plan_next(spec, a, &params, &examples, &known);
        let new: Vec<_> = decision
            .add
            .iter()
            .flat_map(|&(i, e, lr)| {
                spec.seeds
                    .iter()
                    .map(move |&seed| crate::plan::trial(spec, i, e, lr, seed))
            })
            .collect();
        let added = store.add_trials(self.sweep_id, &new).await?;
        Ok((added, Some(decision)))
    }
}

impl crate::exec::local::Scheduler for AdaptiveScheduler {
    async fn refresh(&mut self, store: &Store) -> Result<usize, crate::exec::ExecError> {
        self.advance(store)
            .await
            .map(|(added, _)| added)
            .map_err(|e| crate::exec::ExecError::Worker(e.to_string()))
    }
}
