//! `slaw fit` and `slaw predict`: the laws fitted, stored and printed; predictions from them.

use std::process::ExitCode;

use anyhow::Result;
use slaw::store::Store;

use super::args::{FitArgs, FitMethod, ParamsArg, PredictArgs};
use super::exit::{self, invalid};
use super::out::{out, outln};
use super::{located, open_reader, open_writer, pick_sweep};

pub(super) async fn fit(args: FitArgs) -> Result<ExitCode> {
    use slaw::analysis::{self, laws, observations};
    let store = if args.import.is_some() {
        open_writer(&args.db.db).await?
    } else {
        Store::open_existing(&args.db.db)
            .await
            .map_err(|e| located(e, &args.db.db))?
    };
    let params_count = match args.params {
        ParamsArg::Total => observations::ParamsCount::Total,
        ParamsArg::NonEmbedding => observations::ParamsCount::NonEmbedding,
    };
    let obs = match (&args.import, &args.columns) {
        (Some(path), Some(columns)) => {
            observations::from_csv(path, &observations::Columns::parse(columns)?)?
        }
        _ => {
            let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
            observations::from_sweep(&store, &sweep, params_count).await?
        }
    };
    if let Some(size) = &args.holdout {
        if !obs.runs.iter().any(|r| &r.size == size) {
            invalid!(
                "--holdout {size}: no completed run of that size in {}",
                obs.source
            );
        }
    }
    let all = matches!(args.method, FitMethod::All);
    let config = laws::FitConfig {
        lr: all || matches!(args.method, FitMethod::Lr),
        frontier: all || matches!(args.method, FitMethod::Frontier),
        isoflop: all || matches!(args.method, FitMethod::Isoflop),
        parametric: all || matches!(args.method, FitMethod::Parametric),
        bootstrap: args.bootstrap,
        seed: args.seed,
        level: 0.95,
    };
    let excluded: Vec<String> = args.holdout.iter().cloned().collect();
    let report = laws::fit_all(&obs, &excluded, &config);
    let ids = analysis::save(&store, &obs, &report, &config).await?;
    let backtest = args
        .holdout
        .as_ref()
        .map(|size| (size.clone(), analysis::backtest(&obs, &report, size)));
    let audit = args
        .audit
        .then(|| analysis::audit::audit(&obs, &report, &config));
    if let Some(a) = &audit {
        analysis::stored::save_audit(&store, &obs, a).await?;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "report": report,
                "backtest": backtest.as_ref().map(|(_, rows)| rows),
                "audit": audit,
                "fit_ids": ids,
            }))?
        );
    } else {
        out!("{}", slaw::report::text::fit_summary(&report));
        if let Some((size, rows)) = &backtest {
            out!("\n{}", slaw::report::text::backtest(size, rows));
        }
        if let Some(a) = &audit {
            out!("\n{}", slaw::report::text::audit(a));
        }
        outln!("\nstored as fits {:?} in {}", ids, args.db.db);
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn predict(args: PredictArgs) -> Result<ExitCode> {
    use slaw::analysis::stored;
    use slaw::analysis::{self, predict};
    let store = open_reader(&args.db.db).await?;
    let (source, per_epoch, file_hash) = match &args.import {
        Some(path) => {
            let (source, hash) = analysis::observations::csv_source(path)?;
            (source, None, Some(hash))
        }
        None if args.fit.is_some() && args.sweep.is_none() => (String::new(), None, None),
        None => {
            let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
            let per_epoch = sweep.spec()?.examples_per_epoch();
            (format!("sweep:{}", sweep.name), per_epoch, None)
        }
    };
    let report = match args.fit {
        Some(id) => {
            let report = stored::load_batch(&store, id).await?;
            if !source.is_empty() && report.source != source {
                invalid!("--fit {id} is a fit of {}, not of {source}", report.source);
            }
            report
        }
        None => analysis::load_report(&store, &source).await?,
    };
    let per_epoch = per_epoch.or(report.examples_per_epoch);
    let notes = stored::provenance_notes(&store, &report, file_hash.as_deref()).await?;
    let mut prediction = match (args.flops, args.params) {
        (Some(c), _) => predict::at_compute(&report, c).map_err(exit::Invalid)?,
        (None, Some(n)) => {
            let d = match (args.examples, args.epochs) {
                (Some(d), _) => d,
                (None, Some(e)) => {
                    let Some(per_epoch) = per_epoch else {
                        invalid!("--epochs needs the examples in an epoch (a sweep of slaw's trainer, or train.examples_per_epoch in a command sweep); give --examples");
                    };
                    e * per_epoch
                }
                (None, None) => invalid!("--params needs a budget: --epochs E or --examples D"),
            };
            predict::at_size(&report, n, d).map_err(exit::Invalid)?
        }
        (None, None) => invalid!("give --params N with --epochs/--examples, or --flops C"),
    };
    prediction.notes.extend(notes);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&prediction)?);
    } else {
        out!("{}", slaw::report::text::prediction(&prediction));
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
