//! The commands that read results: `query`, `export`, `show`, `plot`, `report` (the figures
//! and the report themselves are made by `slaw::sweep::results`).

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::args::{
    ExportArgs, ExportFormat, FigureFormat, PlotArgs, QueryArgs, QueryFormat, ReportArgs,
};
use super::exit::invalid;
use super::format::{duration, lr, si, table};
use super::out::{errln, out, outln};
use super::{open_reader, pick_sweep};
use slaw::plot::Format;
use slaw::query::{self, TableFormat};
use slaw::report::utc;
use slaw::store::{Location, ResultTable, Value};
use slaw::sweep::results;

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
    let limits = slaw::store::QueryLimits {
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

pub(super) async fn show(db: &Location, key: &str, json: bool) -> Result<ExitCode> {
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
    let row = store
        .sweeps()
        .await?
        .into_iter()
        .find(|s| s.id == trial.sweep_id);
    store.close().await;
    // The images data set's identity (format, path, counts, shape, classes, content hash).
    let data = row
        .as_ref()
        .and_then(|r| r.spec().ok())
        .and_then(|s| s.burn().and_then(|b| b.data_identity.clone()));
    let sweep = row.map_or_else(|| "?".to_string(), |s| s.name);
    if json {
        let config: serde_json::Value = serde_json::from_str(&trial.config_json)?;
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "sweep": sweep, "trial": trial, "config": config, "metrics": metrics, "events": events,
                "log": logs, "data": data,
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
    if let Some(d) = &data {
        outln!("  data: {}", d.summary());
    }
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
    if t.state == slaw::store::TrialState::Completed {
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

pub(super) async fn plot(args: PlotArgs) -> Result<ExitCode> {
    let store = open_reader(&args.db.db).await?;
    let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
    let dir = args
        .out
        .unwrap_or_else(|| args.db.db.results_dir(&sweep.name));
    let format = match args.format {
        FigureFormat::Png => Format::Png,
        FigureFormat::Svg => Format::Svg,
    };
    let figures = results::draw(&store, &sweep, &args.trials, &dir, format)
        .await
        .with_context(|| format!("drawing into {}", dir.display()))?;
    store.close().await;
    for f in &figures {
        outln!("{}  {}", f.path.display(), f.title);
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn report(args: ReportArgs) -> Result<ExitCode> {
    let store = open_reader(&args.db.db).await?;
    let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
    let path = args
        .out
        .unwrap_or_else(|| args.db.db.results_dir(&sweep.name).join("report.html"));
    results::write_report(&store, &sweep, &path).await?;
    store.close().await;
    outln!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
