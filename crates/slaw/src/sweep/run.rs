//! Running a sweep end to end, once for every executor: register the sweep's grid in the store
//! ([`register`]), run its trials through an [`Executor`] with the right scheduler (the fixed
//! grid, or the adaptive learning-rate search) ([`execute`]), then the status, the fits and
//! the figures at the end ([`conclude`]). The command line calls these steps and prints.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::results::{write_run_figures, RunFigures};
use super::{prepare, status, AdaptiveScheduler, Prepared, SweepError, SweepStatus};
use crate::analysis::laws::{fit_all, FitConfig, FitReport};
use crate::analysis::observations::{from_sweep, ParamsCount};
use crate::exec::local::{FixedGrid, Observer};
use crate::exec::{Executor, RunOutcome};
use crate::spec::SweepSpec;
use crate::store::{StateCounts, Store};

/// A sweep registered for a run: its id and grid, what registering changed, and where its
/// trials stand.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The sweep and its grid.
    pub prepared: Prepared,
    /// Its trials by state, after registering.
    pub counts: StateCounts,
}

/// Registers `spec` (the text `yaml`, read from `file`) in `store`: new trials are added, a
/// rerun or an extended axis adds only what is missing.
pub async fn register(
    store: &Store,
    spec: &SweepSpec,
    yaml: &str,
    file: &Path,
) -> Result<Registered, SweepError> {
    let prepared = prepare(store, spec, yaml, Some(&file.display().to_string())).await?;
    let counts = store.counts(prepared.sweep_id).await?;
    Ok(Registered { prepared, counts })
}

/// Runs the registered sweep's trials with `executor` until none is left, `stop` is set or the
/// executor gives up. An adaptive learning-rate search adds trials as results come in.
pub async fn execute(
    store: &Store,
    spec: &SweepSpec,
    sweep_id: i64,
    executor: &impl Executor,
    stop: Arc<AtomicBool>,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, SweepError> {
    let outcome = if spec.adaptive.is_some() {
        let mut scheduler = AdaptiveScheduler::new(sweep_id, spec.clone());
        executor
            .execute(store, stop, &mut scheduler, observer)
            .await?
    } else {
        executor
            .execute(store, stop, &mut FixedGrid, observer)
            .await?
    };
    Ok(outcome)
}

/// The fits made at the end of a run.
#[derive(Debug)]
pub struct RunFits {
    /// Every law, fitted on the sweep's runs.
    pub report: FitReport,
    /// The ids under which they were stored.
    pub ids: Vec<i64>,
    /// The figures and report written, or why they could not be (the fits are stored anyway).
    pub figures: Result<RunFigures, SweepError>,
}

/// Where a run left its sweep.
#[derive(Debug)]
pub struct Conclusion {
    /// The sweep's status.
    pub status: SweepStatus,
    /// The fits, when the run ended on its own with completed trials and fits were wanted.
    pub fits: Option<RunFits>,
}

/// After a run of `sweep`: its status and, unless the run was interrupted, no trial completed
/// or `results_dir` is `None` (fits not wanted), every law fitted and stored, and the figures
/// and the HTML report written into `results_dir`.
pub async fn conclude(
    store: &Store,
    sweep: &str,
    outcome: &RunOutcome,
    results_dir: Option<&Path>,
) -> Result<Conclusion, SweepError> {
    let row = store.sweep(sweep).await?;
    let status = status(store, &row).await?;
    let wanted = !outcome.run.interrupted && outcome.run.counts.completed > 0;
    let fits = match results_dir.filter(|_| wanted) {
        None => None,
        Some(dir) => {
            let obs = from_sweep(store, &row, ParamsCount::Total).await?;
            let config = FitConfig::default();
            let report = fit_all(&obs, &[], &config);
            let ids = crate::analysis::save(store, &obs, &report, &config).await?;
            let figures = write_run_figures(store, &row, dir).await;
            Some(RunFits {
                report,
                ids,
                figures,
            })
        }
    };
    Ok(Conclusion { status, fits })
}
