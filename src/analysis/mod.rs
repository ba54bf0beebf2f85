//! From results to laws: turns a sweep's stored trials (or a CSV file of runs made elsewhere)
//! into observations, runs the `fit` methods with bootstrap intervals, stores every fit with its
//! inputs, reads fits back for predictions, and back-tests a law on a held-out model size.
//!
//! The statistics live in [`crate::fit`]; this module decides which runs feed which fit.

pub mod laws;
pub mod observations;
pub mod predict;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::store::{NewFit, Store, StoreError};
use laws::{FitConfig, FitReport, Method};
use observations::Observations;
use predict::Estimate;

/// Errors of the analysis layer.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An input file or option is unusable.
    #[error("{0}")]
    Input(String),
    /// Nothing has been fitted for the source yet.
    #[error("no fits stored for {0}: run `slaw fit` first")]
    NoFits(String),
}

const METHODS: [&str; 4] = ["lr", "frontier", "isoflop", "parametric"];

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// Stores every fitted method of `report` (one row per method); returns their ids.
pub async fn save(
    store: &Store,
    obs: &Observations,
    report: &FitReport,
    config: &FitConfig,
) -> Result<Vec<i64>, AnalysisError> {
    let filter = json!({
        "params_count": report.params_count,
        "excluded_sizes": report.excluded_sizes,
        "level": config.level,
        "runs": "completed trials (final validation loss) and diverged trials (as too-high rates)",
        "examples": "examples seen (images for the ViT)",
    });
    let inputs: Vec<serde_json::Value> = obs
        .without_sizes(&report.excluded_sizes)
        .runs
        .iter()
        .map(|r| {
            json!({"id": r.id, "size": r.size, "params": r.params, "examples": r.examples,
                   "flops": r.flops, "lr": r.lr, "loss": r.loss})
        })
        .collect();
    let mut ids = Vec::new();
    let methods: [(&str, Option<serde_json::Value>); 4] = [
        ("lr", fitted_json(&report.lr)),
        ("frontier", fitted_json(&report.frontier)),
        ("isoflop", fitted_json(&report.isoflop)),
        ("parametric", fitted_json(&report.parametric)),
    ];
    for (method, result) in methods {
        let Some(result) = result else { continue };
        ids.push(
            store
                .save_fit(&NewFit {
                    sweep_id: obs.sweep_id,
                    source: report.source.clone(),
                    method: method.to_string(),
                    filter: json!({"method": method, "filter": filter, "examples_per_epoch": report.examples_per_epoch}),
                    inputs: serde_json::Value::Array(inputs.clone()),
                    result,
                    n_points: report.runs,
                    bootstrap: config.bootstrap,
                    seed: config.seed,
                })
                .await?,
        );
    }
    Ok(ids)
}

fn fitted_json<T: Serialize>(m: &Option<Method<T>>) -> Option<serde_json::Value> {
    m.as_ref().and_then(|m| m.fitted()).map(to_json)
}

/// The latest stored fit of every method for `source` that left no size out, as a report.
pub async fn load_report(store: &Store, source: &str) -> Result<FitReport, AnalysisError> {
    let mut report = FitReport {
        source: source.to_string(),
        params_count: observations::ParamsCount::Total,
        runs: 0,
        excluded_sizes: Vec::new(),
        examples_per_epoch: None,
        lr: None,
        frontier: None,
        isoflop: None,
        parametric: None,
    };
    let mut found = false;
    for method in METHODS {
        let rows = store.fits(source, method).await?;
        let Some(row) = rows.into_iter().find(|r| {
            r.filter["filter"]["excluded_sizes"]
                .as_array()
                .is_none_or(|a| a.is_empty())
        }) else {
            continue;
        };
        found = true;
        report.runs = row.n_points as usize;
        if let Some(pc) = row.filter["filter"].get("params_count") {
            report.params_count = serde_json::from_value(pc.clone()).unwrap_or(report.params_count);
        }
        report.examples_per_epoch = row.filter["examples_per_epoch"].as_f64();
        let corrupt = |e: serde_json::Error| {
            AnalysisError::Store(StoreError::Corrupt(format!(
                "fit {} ({method}): {e}",
                row.id
            )))
        };
        let result = row.result.clone();
        match method {
            "lr" => {
                report.lr = Some(Method::Fitted(
                    serde_json::from_value(result).map_err(corrupt)?,
                ))
            }
            "frontier" => {
                report.frontier = Some(Method::Fitted(
                    serde_json::from_value(result).map_err(corrupt)?,
                ))
            }
            "isoflop" => {
                report.isoflop = Some(Method::Fitted(
                    serde_json::from_value(result).map_err(corrupt)?,
                ))
            }
            _ => {
                report.parametric = Some(Method::Fitted(
                    serde_json::from_value(result).map_err(corrupt)?,
                ))
            }
        }
    }
    if !found {
        return Err(AnalysisError::NoFits(source.to_string()));
    }
    Ok(report)
}

/// One budget of a held-out size: what the laws fitted without it predicted, and what it gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestRow {
    /// The epoch budget.
    pub epochs: Option<f64>,
    /// N.
    pub params: f64,
    /// D.
    pub examples: f64,
    /// The best final validation loss over its learning rates.
    pub actual_loss: Option<f64>,
    /// The parametric law's prediction.
    pub predicted_loss: Option<Estimate>,
    /// The cell's optimal rate (parabola vertex).
    pub actual_lr: Option<f64>,
    /// Whether that optimum is inside the rates tried.
    pub actual_lr_bracketed: bool,
    /// The LR law's prediction.
    pub predicted_lr: Option<Estimate>,
}

/// Predicts every cell of `size` from `report` (fitted without it) and sets it against what
/// the size actually gave.
pub fn backtest(obs: &Observations, report: &FitReport, size: &str) -> Vec<BacktestRow> {
    let held = Observations {
        runs: obs
            .runs
            .iter()
            .filter(|r| r.size == size)
            .cloned()
            .collect(),
        ..obs.clone()
    };
    let truth = laws::fit_all(
        &held,
        &[],
        &FitConfig {
            frontier: false,
            isoflop: false,
            parametric: false,
            bootstrap: 0,
            ..FitConfig::default()
        },
    );
    let cells = truth
        .lr
        .as_ref()
        .and_then(|m| m.fitted())
        .map(|l| l.cells.clone())
        .unwrap_or_default();
    held.cells()
        .iter()
        .map(|cell| {
            let (n, d) = (cell[0].params, cell[0].examples);
            let p = predict::at_size(report, n, d);
            let lr_cell = cells.iter().find(|c| c.params == n && c.examples == d);
            BacktestRow {
                epochs: cell[0].epochs,
                params: n,
                examples: d,
                actual_loss: cell.iter().filter_map(|r| r.loss).min_by(f64::total_cmp),
                predicted_loss: p.loss.first().cloned(),
                actual_lr: lr_cell.and_then(|c| c.optimum.as_ref().map(|o| o.lr_star)),
                actual_lr_bracketed: lr_cell.is_some_and(|c| c.used),
                predicted_lr: p.lr.first().cloned(),
            }
        })
        .collect()
}
