//! Typed rows of the store's tables and their decoding from sqlx rows.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::StoreError;
use crate::job::Job;

/// The life cycle of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    /// Not run yet.
    Pending,
    /// Claimed by a worker that heartbeats.
    Running,
    /// Every step ran.
    Completed,
    /// The trainer or the worker failed with an error.
    Failed,
    /// The loss became NaN or infinite.
    Diverged,
    /// Stopped before the end (Ctrl-C, killed worker, expired lease).
    Interrupted,
}

impl TrialState {
    /// Every state, in life-cycle order.
    pub const ALL: [TrialState; 6] = [
        TrialState::Pending,
        TrialState::Running,
        TrialState::Completed,
        TrialState::Failed,
        TrialState::Diverged,
        TrialState::Interrupted,
    ];

    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Pending => "pending",
            TrialState::Running => "running",
            TrialState::Completed => "completed",
            TrialState::Failed => "failed",
            TrialState::Diverged => "diverged",
            TrialState::Interrupted => "interrupted",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        TrialState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown trial state {s:?}")))
    }
}

impl std::fmt::Display for TrialState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Trial counts of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct StateCounts {
    /// Pending.
    pub pending: usize,
    /// Running.
    pub running: usize,
    /// Completed.
    pub completed: usize,
    /// Failed.
    pub failed: usize,
    /// Diverged.
    pub diverged: usize,
    /// Interrupted.
    pub interrupted: usize,
    /// Pending, or ended in a state whose retry limit is not used up.
    pub claimable: usize,
}

impl StateCounts {
    pub(super) fn add(&mut self, state: TrialState, n: usize) {
        *self.slot(state) += n;
    }

    fn slot(&mut self, state: TrialState) -> &mut usize {
        match state {
            TrialState::Pending => &mut self.pending,
            TrialState::Running => &mut self.running,
            TrialState::Completed => &mut self.completed,
            TrialState::Failed => &mut self.failed,
            TrialState::Diverged => &mut self.diverged,
            TrialState::Interrupted => &mut self.interrupted,
        }
    }

    /// Count in `state`.
    pub fn get(&self, state: TrialState) -> usize {
        let mut copy = *self;
        *copy.slot(state)
    }

    /// All active trials.
    pub fn total(&self) -> usize {
        self.pending
            + self.running
            + self.completed
            + self.failed
            + self.diverged
            + self.interrupted
    }

    /// Trials that will not run again: completed, or ended with their retries used up.
    pub fn finished(&self) -> usize {
        self.total() - self.running - self.claimable
    }
}

/// A stored sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The YAML as last run.
    pub yaml: String,
    /// The resolved spec as JSON.
    pub spec_json: String,
    /// Where the YAML was read from.
    pub source_path: Option<String>,
    /// Created, Unix seconds.
    pub created_at: f64,
    /// Last run, Unix seconds.
    pub updated_at: f64,
}

impl SweepRow {
    pub(super) const COLUMNS: &'static str =
        "id, name, yaml, spec_json, source_path, created_at, updated_at";

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(SweepRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            yaml: r.try_get("yaml")?,
            spec_json: r.try_get("spec_json")?,
            source_path: r.try_get("source_path")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
        })
    }

    /// The resolved sweep.
    pub fn spec(&self) -> Result<crate::spec::SweepSpec, StoreError> {
        serde_json::from_str(&self.spec_json)
            .map_err(|e| StoreError::Corrupt(format!("sweep {}: {e}", self.name)))
    }
}

/// A stored trial.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[allow(missing_docs)]
pub struct TrialRow {
    pub id: i64,
    pub sweep_id: i64,
    pub key: String,
    pub size_name: String,
    pub size_index: i64,
    pub family: String,
    pub params: i64,
    pub params_non_embedding: i64,
    pub epochs: f64,
    pub batch_size: i64,
    pub lr: f64,
    pub seed: i64,
    pub steps: i64,
    pub examples: i64,
    pub flops_per_example: f64,
    pub flops: f64,
    pub state: TrialState,
    pub attempts: i64,
    pub worker: Option<String>,
    pub device: Option<String>,
    pub claimed_at: Option<f64>,
    pub heartbeat_at: Option<f64>,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub wall_seconds: Option<f64>,
    pub progress_step: Option<i64>,
    pub progress_loss: Option<f64>,
    pub error: Option<String>,
    pub params_measured: Option<i64>,
    pub final_step: Option<i64>,
    pub final_train_loss: Option<f64>,
    pub final_val_loss: Option<f64>,
    pub final_val_accuracy: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub config_json: String,
    /// The Slurm array task (`JOBID_TASK`) whose worker claimed the current attempt.
    pub slurm_job: Option<String>,
}

impl TrialRow {
    pub(super) const COLUMNS: &'static str = "id, sweep_id, key, size_name, size_index, family, \
        params, params_non_embedding, epochs, batch_size, lr, seed, steps, examples, \
        flops_per_example, flops, state, attempts, worker, device, claimed_at, heartbeat_at, \
        started_at, finished_at, wall_seconds, progress_step, progress_loss, error, \
        params_measured, final_step, final_train_loss, final_val_loss, final_val_accuracy, \
        best_val_loss, config_json, slurm_job";

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let state: String = r.try_get("state")?;
        Ok(TrialRow {
            id: r.try_get("id")?,
            sweep_id: r.try_get("sweep_id")?,
            key: r.try_get("key")?,
            size_name: r.try_get("size_name")?,
            size_index: r.try_get("size_index")?,
            family: r.try_get("family")?,
            params: r.try_get("params")?,
            params_non_embedding: r.try_get("params_non_embedding")?,
            epochs: r.try_get("epochs")?,
            batch_size: r.try_get("batch_size")?,
            lr: r.try_get("lr")?,
            seed: r.try_get("seed")?,
            steps: r.try_get("steps")?,
            examples: r.try_get("examples")?,
            flops_per_example: r.try_get("flops_per_example")?,
            flops: r.try_get("flops")?,
            state: TrialState::parse(&state)?,
            attempts: r.try_get("attempts")?,
            worker: r.try_get("worker")?,
            device: r.try_get("device")?,
            claimed_at: r.try_get("claimed_at")?,
            heartbeat_at: r.try_get("heartbeat_at")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            wall_seconds: r.try_get("wall_seconds")?,
            progress_step: r.try_get("progress_step")?,
            progress_loss: r.try_get("progress_loss")?,
            error: r.try_get("error")?,
            params_measured: r.try_get("params_measured")?,
            final_step: r.try_get("final_step")?,
            final_train_loss: r.try_get("final_train_loss")?,
            final_val_loss: r.try_get("final_val_loss")?,
            final_val_accuracy: r.try_get("final_val_accuracy")?,
            best_val_loss: r.try_get("best_val_loss")?,
            config_json: r.try_get("config_json")?,
            slurm_job: r.try_get("slurm_job")?,
        })
    }

    /// What the trial runs.
    pub fn config(&self) -> Result<Job, StoreError> {
        serde_json::from_str(&self.config_json)
            .map_err(|e| StoreError::Corrupt(format!("trial {}: {e}", self.key)))
    }
}

/// One evaluation point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// Steps done.
    pub step: i64,
    /// Examples seen.
    pub examples: i64,
    /// Training FLOPs so far.
    pub flops: f64,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Mean training loss since the previous point.
    pub train_loss: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Seconds since training started.
    pub wall_seconds: f64,
}

impl MetricRow {
    pub(super) const COLUMNS: &'static str = "m.step, m.examples, m.flops, m.lr, m.train_loss, \
        m.val_loss, m.val_accuracy, m.wall_seconds";

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(MetricRow {
            step: r.try_get("step")?,
            examples: r.try_get("examples")?,
            flops: r.try_get("flops")?,
            lr: r.try_get("lr")?,
            train_loss: r.try_get("train_loss")?,
            val_loss: r.try_get("val_loss")?,
            val_accuracy: r.try_get("val_accuracy")?,
            wall_seconds: r.try_get("wall_seconds")?,
        })
    }
}

/// One entry of a trial's event log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    /// Attempt it belongs to.
    pub attempt: i64,
    /// What happened.
    pub event: String,
    /// Which worker.
    pub worker: Option<String>,
    /// When, Unix seconds.
    pub at: f64,
    /// Details (device, error text).
    pub detail: Option<String>,
}

impl EventRow {
    pub(super) const COLUMNS: &'static str = "attempt, event, worker, at, detail";

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(EventRow {
            attempt: r.try_get("attempt")?,
            event: r.try_get("event")?,
            worker: r.try_get("worker")?,
            at: r.try_get("at")?,
            detail: r.try_get("detail")?,
        })
    }
}

/// One line of a trial's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogRow {
    /// Attempt it belongs to.
    pub attempt: i64,
    /// `stdout`, `stderr`, `metrics` or `slaw`.
    pub stream: String,
    /// The line.
    pub line: String,
    /// When it was read, Unix seconds.
    pub at: f64,
}

impl LogRow {
    pub(super) const COLUMNS: &'static str = "l.attempt, l.stream, l.line, l.at";

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(LogRow {
            attempt: r.try_get("attempt")?,
            stream: r.try_get("stream")?,
            line: r.try_get("line")?,
            at: r.try_get("at")?,
        })
    }
}

/// A trial attempt a worker holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Trial id.
    pub trial_id: i64,
    /// Sweep id.
    pub sweep_id: i64,
    /// Content key.
    pub key: String,
    /// The attempt number (fences every later write).
    pub attempt: i64,
    /// What to run.
    pub config: Job,
    /// Training FLOPs per example.
    pub flops_per_example: f64,
}

impl Claimed {
    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let key: String = r.try_get("key")?;
        let json: String = r.try_get("config_json")?;
        Ok(Claimed {
            trial_id: r.try_get("id")?,
            sweep_id: r.try_get("sweep_id")?,
            config: serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("trial {key}: {e}")))?,
            key,
            attempt: r.try_get("attempts")?,
            flops_per_example: r.try_get("flops_per_example")?,
        })
    }
}

/// A fit to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFit {
    /// The sweep it was fitted on (`None` for imported files).
    pub sweep_id: Option<i64>,
    /// `sweep:<name>` or `csv:<path>`.
    pub source: String,
    /// The method (`lr_cells`, `lr_law`, `frontier`, `isoflop`, `parametric`).
    pub method: String,
    /// How points were chosen.
    pub filter: serde_json::Value,
    /// The points used.
    pub inputs: serde_json::Value,
    /// Coefficients, intervals and diagnostics.
    pub result: serde_json::Value,
    /// Number of points.
    pub n_points: usize,
    /// Bootstrap resamples behind the intervals.
    pub bootstrap: usize,
    /// Bootstrap seed.
    pub seed: u64,
}

/// A stored fit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FitRow {
    /// Id.
    pub id: i64,
    /// `sweep:<name>` or `csv:<path>`.
    pub source: String,
    /// The method.
    pub method: String,
    /// How points were chosen.
    pub filter: serde_json::Value,
    /// Coefficients, intervals and diagnostics.
    pub result: serde_json::Value,
    /// Number of points.
    pub n_points: i64,
    /// Bootstrap resamples.
    pub bootstrap: i64,
    /// When, Unix seconds.
    pub created_at: f64,
}

impl FitRow {
    pub(super) const COLUMNS: &'static str =
        "id, source, method, filter_json, result_json, n_points, bootstrap, created_at";

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        let parse = |col: &str| -> Result<serde_json::Value, StoreError> {
            let text: String = r.try_get(col)?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("fits.{col}: {e}")))
        };
        Ok(FitRow {
            id: r.try_get("id")?,
            source: r.try_get("source")?,
            method: r.try_get("method")?,
            filter: parse("filter_json")?,
            result: parse("result_json")?,
            n_points: r.try_get("n_points")?,
            bootstrap: r.try_get("bootstrap")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// A job array to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSlurmJob {
    /// The sweep it works on.
    pub sweep_id: i64,
    /// Slurm's job id.
    pub job_id: String,
    /// Array tasks.
    pub tasks: usize,
    /// The array's `%N` throttle.
    pub max_parallel: Option<usize>,
    /// Trials each task's worker runs at most.
    pub trials_per_task: usize,
    /// The batch script.
    pub script: String,
}

/// A recorded job array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlurmJobRow {
    /// Row id.
    pub id: i64,
    /// Slurm's job id.
    pub job_id: String,
    /// Array tasks.
    pub tasks: i64,
    /// The `%N` throttle.
    pub max_parallel: Option<i64>,
    /// Trials per task.
    pub trials_per_task: i64,
    /// `submitted`, `ended` or `cancelled`.
    pub state: String,
    /// Submitted, Unix seconds.
    pub submitted_at: f64,
    /// When its last task left the queue, Unix seconds.
    pub ended_at: Option<f64>,
}

impl SlurmJobRow {
    pub(super) const COLUMNS: &'static str =
        "id, job_id, tasks, max_parallel, trials_per_task, state, submitted_at, ended_at";

    pub(super) fn from_row(r: &AnyRow) -> Result<Self, StoreError> {
        Ok(SlurmJobRow {
            id: r.try_get("id")?,
            job_id: r.try_get("job_id")?,
            tasks: r.try_get("tasks")?,
            max_parallel: r.try_get("max_parallel")?,
            trials_per_task: r.try_get("trials_per_task")?,
            state: r.try_get("state")?,
            submitted_at: r.try_get("submitted_at")?,
            ended_at: r.try_get("ended_at")?,
        })
    }
}
