//! From results to laws: turns a sweep's stored trials (or a CSV file of runs made elsewhere)
//! into observations, runs the `fit` methods with bootstrap intervals, stores every fit with its
//! inputs, reads fits back for predictions, and back-tests a law on a held-out model size.
//!
//! The statistics live in [`crate::fit`]; this module decides which runs feed which fit.

pub mod audit;
pub mod frontier_report;
pub mod identify;
pub mod isoflop_report;
pub mod laws;
pub mod observations;
pub mod planted;
pub mod predict;
pub mod stored;

#[cfg(test)]
mod coverage;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use laws::{FitConfig, FitReport};
use observations::Observations;
use predict::Estimate;
pub use stored::{load_report, save};

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
            let p = predict::at_size_or_note(report, n, d);
            let lr_cell = cells.iter().find(|c| c.params == n && c.examples == d);
            BacktestRow {
                epochs: cell[0].epochs,
                params: n,
                examples: d,
                actual_loss: cell.iter().filter_map(|r| r.loss).min_by(f64::total_cmp),
                predicted_loss: p.loss.first().cloned(),
                actual_lr: lr_cell.and_then(|c| c.optimum.as_ref().map(|o| o.lr_star)),
                actual_lr_bracketed: lr_cell.is_some_and(|c| c.used),
                predicted_lr: predict::optimal_lr(report, n, d).first().cloned(),
            }
        })
        .collect()
}
