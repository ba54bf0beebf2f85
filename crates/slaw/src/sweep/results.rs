//! What a sweep's results are drawn from and written as: its laws (the stored fits when they
//! cover the current runs, else fitted now in memory), the training curves shown beside them,
//! the figures and the HTML report. `slaw plot`, `slaw report` and the end of `slaw run` all
//! come through here; only the end of a run stores fits ([`super::run::conclude`]).

use std::path::{Path, PathBuf};

use super::SweepError;
use crate::analysis::laws::{fit_all, FitConfig, FitReport};
use crate::analysis::load_report;
use crate::analysis::observations::{from_sweep, Observations, ParamsCount};
use crate::plot::{draw_all, Figure, Format};
use crate::report::{render_html, EmbeddedFigure, ReportInput};
use crate::store::{MetricRow, Store, SweepRow, TrialState};

/// A labelled training curve (the legend entry and its evaluation points).
pub type Curve = (String, Vec<MetricRow>);

/// The sweep's observations and laws: the stored fits when they cover the current runs,
/// otherwise fitted now, in memory only (readers never store fits).
pub async fn laws(
    store: &Store,
    sweep: &SweepRow,
) -> Result<(Observations, FitReport), SweepError> {
    let obs = from_sweep(store, sweep, ParamsCount::Total).await?;
    let source = format!("sweep:{}", sweep.name);
    if let Ok(report) = load_report(store, &source).await {
        if report.runs == obs.runs.len() && report.params_count == ParamsCount::Total {
            return Ok((obs, report));
        }
    }
    let report = fit_all(&obs, &[], &FitConfig::default());
    Ok((obs, report))
}

/// Training curves of the best trial of each size at its largest budget, or of the trials
/// whose keys start with `keys` (each prefix must name exactly one trial).
pub async fn curves(
    store: &Store,
    sweep: &SweepRow,
    keys: &[String],
) -> Result<Vec<Curve>, SweepError> {
    let trials = store.trials(sweep.id).await?;
    let chosen: Vec<_> = if keys.is_empty() {
        let mut best: Vec<&crate::store::TrialRow> = Vec::new();
        for t in trials.iter().filter(|t| t.state == TrialState::Completed) {
            let Some(loss) = t.final_val_loss else {
                continue;
            };
            match best.iter_mut().find(|b| b.size_index == t.size_index) {
                Some(b) if b.epochs > t.epochs => {}
                Some(b)
                    if b.epochs == t.epochs && b.final_val_loss.is_some_and(|bl| bl <= loss) => {}
                Some(b) => *b = t,
                None => best.push(t),
            }
        }
        best.sort_by_key(|t| t.size_index);
        best
    } else {
        keys.iter()
            .map(|k| {
                let matches: Vec<_> = trials
                    .iter()
                    .filter(|t| t.key.starts_with(k.as_str()))
                    .collect();
                match matches.as_slice() {
                    [one] => Ok(*one),
                    [] => Err(SweepError::Input(format!(
                        "--trials: no trial of sweep {} starts with {k:?}",
                        sweep.name
                    ))),
                    _ => Err(SweepError::Input(format!(
                        "--trials: several trials start with {k:?}"
                    ))),
                }
            })
            .collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    for t in chosen {
        let label = format!(
            "{} ({} epochs, lr {})",
            t.size_name,
            t.epochs,
            crate::report::units::lr(t.lr)
        );
        out.push((label, store.metrics(t.id).await?));
    }
    Ok(out)
}

/// Draws the sweep's figures into `dir` (the curves of `keys`, or the best trial per size).
pub async fn draw(
    store: &Store,
    sweep: &SweepRow,
    keys: &[String],
    dir: &Path,
    format: Format,
) -> Result<Vec<Figure>, SweepError> {
    let (obs, report) = laws(store, sweep).await?;
    let curves = curves(store, sweep, keys).await?;
    Ok(draw_all(&obs, &report, &curves, dir, format)?)
}

/// Writes the HTML report of `sweep` to `path` (figures as inline SVG).
pub async fn write_report(store: &Store, sweep: &SweepRow, path: &Path) -> Result<(), SweepError> {
    let (obs, report) = laws(store, sweep).await?;
    let curves = curves(store, sweep, &[]).await?;
    render_report(store, sweep, &obs, &report, &curves, path).await
}

/// Writes the HTML report of `sweep` from its observations, laws and curves to `path`.
async fn render_report(
    store: &Store,
    sweep: &SweepRow,
    obs: &Observations,
    report: &FitReport,
    curves: &[Curve],
    path: &Path,
) -> Result<(), SweepError> {
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SweepError::Io { what, path, source }
    };
    let tmp = tempfile::tempdir().map_err(io(
        "creating a temporary directory in",
        &std::env::temp_dir(),
    ))?;
    let drawn = draw_all(obs, report, curves, tmp.path(), Format::Svg)?;
    let figures: Vec<EmbeddedFigure> = drawn
        .iter()
        .map(|f| {
            Ok(EmbeddedFigure {
                title: f.title.clone(),
                svg: std::fs::read_to_string(&f.path).map_err(io("reading", &f.path))?,
            })
        })
        .collect::<Result<_, SweepError>>()?;
    let status = super::status(store, sweep).await?;
    let trials = store.trials(sweep.id).await?;
    let audit = crate::analysis::stored::load_audit(store, &obs.source).await?;
    let html = render_html(&ReportInput {
        sweep,
        status: &status,
        trials: &trials,
        fits: Some(report),
        audit: audit.as_ref(),
        figures: &figures,
        generated_at: crate::store::now(),
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    std::fs::write(path, html).map_err(io("writing", path))?;
    Ok(())
}

/// What a finished run leaves in its results folder.
#[derive(Debug, Clone)]
pub struct RunFigures {
    /// The PNG figures.
    pub figures: Vec<Figure>,
    /// The HTML report.
    pub report: PathBuf,
}

/// The PNG figures and the HTML report that `slaw run` writes into `dir` at the end (the laws as
/// stored and the curves are read once for both).
pub async fn write_run_figures(
    store: &Store,
    sweep: &SweepRow,
    dir: &Path,
) -> Result<RunFigures, SweepError> {
    let (obs, report) = laws(store, sweep).await?;
    let curves = curves(store, sweep, &[]).await?;
    let figures = draw_all(&obs, &report, &curves, dir, Format::Png)?;
    let html = dir.join("report.html");
    render_report(store, sweep, &obs, &report, &curves, &html).await?;
    Ok(RunFigures {
        figures,
        report: html,
    })
}
