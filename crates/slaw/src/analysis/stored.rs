//! Fits in the store: saving a report (one row per method, tagged with the batch it was fitted
//! in, its inputs, filter, conventions and the imported file's hash) and reading one back for
//! predictions — the latest fit of a source that left no size out, or the batch of a fit chosen
//! by id (`slaw predict --fit ID`) — saying which rows it used.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::laws::{FitConfig, FitReport, Method};
use super::observations::{Observations, ParamsCount};
use super::AnalysisError;
use crate::store::{FitRow, NewFit, Store, StoreError};

const METHODS: [&str; 4] = ["lr", "frontier", "isoflop", "parametric"];

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// A stored fit a report was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFit {
    /// Its id in the `fits` table.
    pub id: i64,
    /// The method.
    pub method: String,
    /// When it was fitted, Unix seconds.
    pub created_at: f64,
    /// Sizes it left out (a back-test's).
    pub excluded_sizes: Vec<String>,
    /// For an imported file: the SHA-256 of its bytes when it was fitted.
    pub source_hash: Option<String>,
}

impl StoredFit {
    fn of(row: &FitRow) -> Self {
        StoredFit {
            id: row.id,
            method: row.method.clone(),
            created_at: row.created_at,
            excluded_sizes: excluded(row),
            source_hash: row.filter["source_hash"].as_str().map(str::to_string),
        }
    }
}

fn excluded(row: &FitRow) -> Vec<String> {
    row.filter["filter"]["excluded_sizes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Stores every fitted method of `report` (one row per method, sharing a batch tag); returns
/// their ids.
pub async fn save(
    store: &Store,
    obs: &Observations,
    report: &FitReport,
    config: &FitConfig,
) -> Result<Vec<i64>, AnalysisError> {
    let batch = format!("{:.6}-{}", crate::store::now(), std::process::id());
    let filter = json!({
        "params_count": report.params_count,
        "excluded_sizes": report.excluded_sizes,
        "level": config.level,
        "runs": "completed trials (final validation loss) and diverged trials (as too-high rates)",
        "examples": "examples seen (images for the ViT)",
        "left_out": obs.notes,
    });
    let inputs: Vec<serde_json::Value> = obs
        .without_sizes(&report.excluded_sizes)
        .runs
        .iter()
        .map(|r| {
            json!({"id": r.id, "size": r.size, "params": r.params, "examples": r.examples,
                   "flops": r.flops, "lr": r.lr, "loss": r.loss, "weight": r.weight})
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
                    filter: json!({
                        "method": method,
                        "filter": filter,
                        "examples_per_epoch": report.examples_per_epoch,
                        "batch": batch,
                        "source_hash": obs.source_hash,
                    }),
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

/// What is stored of a method: a fitted law as itself, a law the data do not identify with its
/// reason (`{"status": "not-identified", "reason", "estimate"}`); nothing for a method that
/// could not be fitted at all.
fn fitted_json<T: Serialize>(m: &Option<Method<T>>) -> Option<serde_json::Value> {
    match m.as_ref()? {
        Method::Fitted(t) => Some(to_json(t)),
        Method::NotIdentified { reason, estimate } => Some(json!({
            "status": "not-identified",
            "reason": reason,
            "estimate": to_json(estimate),
        })),
        Method::NotFitted { .. } => None,
    }
}

/// A stored result as a method: fitted, or not identified (with its reason).
fn method_of<T: serde::de::DeserializeOwned>(
    result: serde_json::Value,
) -> Result<Method<T>, serde_json::Error> {
    if result["status"] == "not-identified" {
        return Ok(Method::NotIdentified {
            reason: result["reason"].as_str().unwrap_or_default().to_string(),
            estimate: Box::new(serde_json::from_value(result["estimate"].clone())?),
        });
    }
    Ok(Method::Fitted(serde_json::from_value(result)?))
}

fn empty_report(source: &str) -> FitReport {
    FitReport {
        source: source.to_string(),
        params_count: ParamsCount::Total,
        runs: 0,
        excluded_sizes: Vec::new(),
        examples_per_epoch: None,
        lr: None,
        frontier: None,
        isoflop: None,
        parametric: None,
        stored: Vec::new(),
    }
}

/// Puts a stored row's result into `report` under its method.
fn add_row(report: &mut FitReport, row: &FitRow) -> Result<(), AnalysisError> {
    report.runs = row.n_points as usize;
    if let Some(pc) = row.filter["filter"].get("params_count") {
        report.params_count = serde_json::from_value(pc.clone()).unwrap_or(report.params_count);
    }
    report.examples_per_epoch = row.filter["examples_per_epoch"].as_f64();
    report.excluded_sizes = excluded(row);
    let corrupt = |e: serde_json::Error| {
        AnalysisError::Store(StoreError::Corrupt(format!(
            "fit {} ({}): {e}",
            row.id, row.method
        )))
    };
    let result = row.result.clone();
    match row.method.as_str() {
        "lr" => report.lr = Some(method_of(result).map_err(corrupt)?),
        "frontier" => report.frontier = Some(method_of(result).map_err(corrupt)?),
        "isoflop" => report.isoflop = Some(method_of(result).map_err(corrupt)?),
        _ => report.parametric = Some(method_of(result).map_err(corrupt)?),
    }
    report.stored.push(StoredFit::of(row));
    Ok(())
}

/// The latest stored fit of every method for `source` that left no size out, as a report
/// ([`FitReport::stored`] names the rows).
pub async fn load_report(store: &Store, source: &str) -> Result<FitReport, AnalysisError> {
    let mut report = empty_report(source);
    for method in METHODS {
        let rows = store.fits(source, method).await?;
        if let Some(row) = rows.iter().find(|r| excluded(r).is_empty()) {
            add_row(&mut report, row)?;
        }
    }
    if report.stored.is_empty() {
        return Err(AnalysisError::NoFits(source.to_string()));
    }
    Ok(report)
}

/// The fits of the batch that stored fit `id` belongs to (every method fitted with it, by one
/// `slaw fit`), as a report.
pub async fn load_batch(store: &Store, id: i64) -> Result<FitReport, AnalysisError> {
    let Some(chosen) = store.fit(id).await? else {
        return Err(AnalysisError::Input(format!(
            "--fit {id}: no stored fit has that id (`slaw query \"SELECT id, source, method, \
             created_at FROM fits\"` lists them)"
        )));
    };
    let mut report = empty_report(&chosen.source);
    let batch = chosen.filter["batch"].as_str().map(str::to_string);
    for method in METHODS {
        let rows = store.fits(&chosen.source, method).await?;
        let row = rows.iter().find(|r| match &batch {
            Some(b) => r.filter["batch"].as_str() == Some(b),
            None => r.id == id,
        });
        if let Some(row) = row {
            add_row(&mut report, row)?;
        }
    }
    Ok(report)
}

/// Fits of `source` newer than the ones `report` was read from that left sizes out (a
/// back-test's), as notes for the user: a prediction after `slaw fit --holdout` would otherwise
/// silently use the older full-data laws.
pub async fn newer_holdouts(
    store: &Store,
    report: &FitReport,
) -> Result<Vec<String>, AnalysisError> {
    let newest_used = report.stored.iter().map(|s| s.id).max().unwrap_or(0);
    let mut notes = Vec::new();
    for method in METHODS {
        for row in store.fits(&report.source, method).await? {
            let left_out = excluded(&row);
            if row.id > newest_used && !left_out.is_empty() {
                notes.push(format!(
                    "fit {} ({method}) is newer and was made without {}: `--fit {}` predicts \
                     from it",
                    row.id,
                    left_out.join(", "),
                    row.id
                ));
                break;
            }
        }
    }
    Ok(notes)
}

/// What a prediction should say about the fits it comes from: a newer fit made without some
/// sizes, and an imported file that changed since it was fitted (`current_hash`).
pub async fn provenance_notes(
    store: &Store,
    report: &FitReport,
    current_hash: Option<&str>,
) -> Result<Vec<String>, AnalysisError> {
    let mut notes = Vec::new();
    if report.excluded_sizes.is_empty() {
        notes.extend(newer_holdouts(store, report).await?);
    }
    if let Some(now) = current_hash {
        if let Some(then) = report.stored.iter().find_map(|s| s.source_hash.as_deref()) {
            if then != now {
                notes.push(format!(
                    "{} changed since it was fitted: run `slaw fit --import` again",
                    report.source.trim_start_matches("csv:")
                ));
            }
        }
    }
    Ok(notes)
}

/// Stores an audit under the method `audit` (read back by [`load_audit`], never as a law).
pub async fn save_audit(
    store: &Store,
    obs: &Observations,
    audit: &super::audit::Audit,
) -> Result<i64, AnalysisError> {
    Ok(store
        .save_fit(&NewFit {
            sweep_id: obs.sweep_id,
            source: audit.source.clone(),
            method: "audit".to_string(),
            filter: json!({"method": "audit", "source_hash": obs.source_hash}),
            inputs: serde_json::Value::Array(Vec::new()),
            result: to_json(audit),
            n_points: obs.runs.len(),
            bootstrap: 0,
            seed: 0,
        })
        .await?)
}

/// The latest stored audit of `source`, if any (one that no longer parses is skipped).
pub async fn load_audit(
    store: &Store,
    source: &str,
) -> Result<Option<super::audit::Audit>, AnalysisError> {
    let rows = store.fits(source, "audit").await?;
    Ok(rows
        .into_iter()
        .find_map(|r| serde_json::from_value(r.result).ok()))
}
