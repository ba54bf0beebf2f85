//! The commands that read results: `query`, `export`, `show`, `plot`, `report`, and the figures
//! and report that `run` writes at the end of a sweep.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::exit::invalid;
use super::format::{duration, lr, si, table};
use super::out::{errln, out, outln};
use super::{
    open_reader, pick_sweep, ExportArgs, ExportFormat, FigureFormat, PlotArgs, QueryArgs,
    QueryFormat, ReportArgs,
};
use crate::analysis::laws::{fit_all, FitConfig, FitReport};
use crate::analysis::load_report;
use crate::analysis::observations::{from_sweep, Observations, ParamsCount};
use crate::plot::{draw_all, Format};
use crate::query::{self, TableFormat};
use crate::report::{render_html, utc, EmbeddedFigure, ReportInput};
use crate::store::{MetricRow, ResultTable, Store, SweepRow, TrialState, Value};

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Int(i) => i.to_string(),
        Value::Real(r) => format!("{r}"),
        Value::Text(t) => t.clone(),
    }
}

fn print_table(t: &ResultTable) {
    if t.columns.is_empty() {
        outln!("(no rows)");
        return;
    }
    let mut out = table(&t.columns.iter().map(String::as_str).collect::<Vec<_>>());
    for row in &t.rows {
        out.add_row(row.iter().map(value_text).collect::<Vec<_>>());
    }
    outln!("{out}");
    outln!(
        "({} row{})",
        t.rows.len(),
        if t.rows.len() == 1 { "" } else { "s" }
    );
}

pub(super) async fn query(args: QueryArgs) -> Result<ExitCode> {
    let format = match args.format {
        QueryFormat::Table => None,
        QueryFormat::Csv => Some(TableFormat::Csv),
        QueryFormat::Json => Some(TableFormat::Json),
        QueryFormat::Parquet => Some(TableFormat::Parquet),
    };
    // The output is checked (and its temporary file made) before the query runs.
    let output = match (&args.out, format) {
        (Some(out), None) => invalid!(
            "--out {}: choose --format csv, json or parquet to write a file",
            out.display()
        ),
        (None, Some(TableFormat::Parquet)) => invalid!("--format parquet needs --out FILE"),
        (Some(path), Some(_)) => Some(query::Output::prepare(path, &args.db.db)?),
        (None, _) => None,
    };
    let limits = crate::store::QueryLimits {
        timeout: std::time::Duration::from_secs_f64(args.timeout.max(0.001)),
        max_rows: args.max_rows,
        ..Default::default()
    };
    let result = query::run(&args.db.db, &args.sql, limits).await?;
    match (format, output) {
        (None, _) => print_table(&result),
        (Some(format), Some(output)) => {
            let path = args.out.clone().unwrap_or_default();
            output.finish(&result, format)?;
            errln!("{} rows written to {}", result.rows.len(), path.display());
        }
        (Some(format), None) => {
            let tmp = tempfile::Builder::new()
                .prefix("slaw-query-")
                .tempfile()
                .context("creating a temporary file")?;
            query::write(&result, format, tmp.path())?;
            out!("{}", std::fs::read_to_string(tmp.path())?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn export(args: ExportArgs) -> Result<ExitCode> {
    let format = match args.format {
        ExportFormat::Parquet => TableFormat::Parquet,
        ExportFormat::Csv => TableFormat::Csv,
        ExportFormat::Json => TableFormat::Json,
    };
    if let Some(name) = &args.sweep {
        let store = open_reader(&args.db.db).await?;
        store.sweep(name).await?;
        store.close().await;
    }
    let files = query::export(&args.db.db, args.sweep.as_deref(), &args.out, format).await?;
    for f in files {
        outln!("{}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Lines of a command trial's output that `slaw show` prints.
const SHOW_LOG_LINES: usize = 30;

pub(super) async fn show(db: &str, key: &str, json: bool) -> Result<ExitCode> {
    let store = open_reader(db).await?;
    let mut found = store.trial_by_key(key).await?;
    let trial = match found.len() {
        0 => invalid!("no trial whose key starts with {key:?}"),
        1 => found.remove(0),
        n => invalid!(
            "{n} trials start with {key:?} ({}): give more of the key",
            found
                .iter()
                .map(|t| t.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let metrics = store.metrics(trial.id).await?;
    let events = store.events(trial.id).await?;
    let logs = store.logs(trial.id, SHOW_LOG_LINES).await?;
    let sweep = store
        .sweeps()
        .await?
        .into_iter()
        .find(|s| s.id == trial.sweep_id)
        .map_or_else(|| "?".to_string(), |s| s.name);
    store.close().await;
    if json {
        let config: serde_json::Value = serde_json::from_str(&trial.config_json)?;
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "sweep": sweep, "trial": trial, "config": config, "metrics": metrics, "events": events,
                "log": logs,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let t = &trial;
    let when = |x: Option<f64>| x.map_or("–".into(), |v| format!("{} UTC", utc(v)));
    outln!("trial {} of sweep {sweep}: {}", t.key, t.state);
    outln!(
        "  size {} ({} params, {} non-embedding), {} epochs = {} steps × {} = {} examples, lr {}, seed {}",
        t.size_name,
        si(t.params as f64),
        si(t.params_non_embedding as f64),
        t.epochs,
        t.steps,
        t.batch_size,
        si(t.examples as f64),
        lr(t.lr),
        t.seed
    );
    outln!(
        "  {} training FLOPs ({} per example); {} attempt(s); worker {} on {}",
        si(t.flops),
        si(t.flops_per_example),
        t.attempts,
        t.worker.as_deref().unwrap_or("–"),
        t.device.as_deref().unwrap_or("–")
    );
    outln!(
        "  claimed {}, started {}, finished {}, training time {}",
        when(t.claimed_at),
        when(t.started_at),
        when(t.finished_at),
        t.wall_seconds.map_or("–".into(), duration)
    );
    if t.state == TrialState::Completed {
        outln!(
            "  final: train loss {}, validation loss {}, accuracy {}; best validation loss {}",
            t.final_train_loss.map_or("–".into(), |v| format!("{v:.4}")),
            t.final_val_loss.map_or("–".into(), |v| format!("{v:.4}")),
            t.final_val_accuracy
                .map_or("–".into(), |v| format!("{v:.4}")),
            t.best_val_loss.map_or("–".into(), |v| format!("{v:.4}")),
        );
    }
    if let Some(e) = &t.error {
        outln!("  error: {e}");
    }
    let mut curve = table(&[
        "step",
        "examples",
        "FLOPs",
        "lr",
        "train loss",
        "val loss",
        "val acc",
        "time",
    ]);
    for m in &metrics {
        curve.add_row(vec![
            m.step.to_string(),
            si(m.examples as f64),
            si(m.flops),
            lr(m.lr),
            m.train_loss.map_or("–".into(), |v| format!("{v:.4}")),
            m.val_loss.map_or("–".into(), |v| format!("{v:.4}")),
            m.val_accuracy.map_or("–".into(), |v| format!("{v:.4}")),
            duration(m.wall_seconds),
        ]);
    }
    outln!("curve ({} evaluation points):\n{curve}", metrics.len());
    outln!("events:");
    for e in &events {
        outln!(
            "  {} attempt {} {} {}{}",
            utc(e.at),
            e.attempt,
            e.event,
            e.worker.as_deref().unwrap_or(""),
            e.detail
                .as_deref()
                .map_or(String::new(), |d| format!(": {d}"))
        );
    }
    if !logs.is_empty() {
        outln!("output of the command (last {} lines):", logs.len());
        for l in &logs {
            outln!("  {:<6} {}", l.stream, l.line);
        }
    }
    if let Some(job) = trial.config()?.command() {
        outln!("command: {}", job.display());
    }
    outln!(
        "configuration:\n{}",
        serde_json::to_string_pretty(&trial.config()?)?
    );
    Ok(ExitCode::SUCCESS)
}

/// The sweep's observations and laws: the stored fits when they cover the current runs,
/// otherwise fitted now, in memory only (`plot` and `report` only read; `slaw fit` stores fits).
async fn laws(store: &Store, sweep: &SweepRow) -> Result<(Observations, FitReport)> {
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

/// Training curves of the best trial of each size at its largest budget, or of `keys`.
async fn curves(
    store: &Store,
    sweep: &SweepRow,
    keys: &[String],
) -> Result<Vec<(String, Vec<MetricRow>)>> {
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
                    [] => invalid!(
                        "--trials: no trial of sweep {} starts with {k:?}",
                        sweep.name
                    ),
                    _ => invalid!("--trials: several trials start with {k:?}"),
                }
            })
            .collect::<Result<_>>()?
    };
    let mut out = Vec::new();
    for t in chosen {
        let label = format!("{} ({} epochs, lr {})", t.size_name, t.epochs, lr(t.lr));
        out.push((label, store.metrics(t.id).await?));
    }
    Ok(out)
}

/// Where a sweep's figures and report go by default: `<sweep>/` beside a SQLite database
/// (`results/<sweep>/` for the default `results/slaw.db`), `results/<sweep>/` for PostgreSQL.
pub(super) fn default_dir(db: &str, sweep: &str) -> PathBuf {
    match crate::store::Location::parse(db) {
        Ok(crate::store::Location::Sqlite(path)) => path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(sweep),
        _ => Path::new("results").join(sweep),
    }
}

pub(super) async fn plot(args: PlotArgs) -> Result<ExitCode> {
    let store = open_reader(&args.db.db).await?;
    let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
    let (obs, report) = laws(&store, &sweep).await?;
    let curves = curves(&store, &sweep, &args.trials).await?;
    let dir = args
        .out
        .unwrap_or_else(|| default_dir(&args.db.db, &sweep.name));
    let format = match args.format {
        FigureFormat::Png => Format::Png,
        FigureFormat::Svg => Format::Svg,
    };
    let figures = draw_all(&obs, &report, &curves, &dir, format)
        .with_context(|| format!("drawing into {}", dir.display()))?;
    store.close().await;
    for f in &figures {
        outln!("{}  {}", f.path.display(), f.title);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the HTML report of `sweep` to `path` (figures as inline SVG).
pub(super) async fn write_report(store: &Store, sweep: &SweepRow, path: &Path) -> Result<()> {
    let (obs, report) = laws(store, sweep).await?;
    let curves = curves(store, sweep, &[]).await?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let drawn = draw_all(&obs, &report, &curves, tmp.path(), Format::Svg)?;
    let figures: Vec<EmbeddedFigure> = drawn
        .iter()
        .map(|f| {
            Ok(EmbeddedFigure {
                title: f.title.clone(),
                svg: std::fs::read_to_string(&f.path)?,
            })
        })
        .collect::<Result<_>>()?;
    let status = crate::sweep::status(store, sweep).await?;
    let trials = store.trials(sweep.id).await?;
    let audit = crate::analysis::stored::load_audit(store, &obs.source).await?;
    let html = render_html(&ReportInput {
        sweep,
        status: &status,
        trials: &trials,
        fits: Some(&report),
        audit: audit.as_ref(),
        figures: &figures,
        generated_at: crate::store::now(),
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub(super) async fn report(args: ReportArgs) -> Result<ExitCode> {
    let store = open_reader(&args.db.db).await?;
    let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
    let path = args
        .out
        .unwrap_or_else(|| default_dir(&args.db.db, &sweep.name).join("report.html"));
    write_report(&store, &sweep, &path).await?;
    store.close().await;
    outln!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// What `run` writes at the end: PNG figures and the HTML report in `dir` (`--out`, else
/// [`default_dir`]).
pub(super) async fn figures_after_run(store: &Store, sweep: &SweepRow, dir: &Path) -> Result<()> {
    let (obs, report) = laws(store, sweep).await?;
    let curves = curves(store, sweep, &[]).await?;
    let figures = draw_all(&obs, &report, &curves, dir, Format::Png)?;
    let html = dir.join("report.html");
    write_report(store, sweep, &html).await?;
    outln!("\nfigures and report in {}/:", dir.display());
    for f in &figures {
        outln!("  {}  {}", f.path.display(), f.title);
    }
    outln!("  {}  the HTML report", html.display());
    Ok(())
}
