//! Observations: the runs a fit sees, built from a sweep's stored trials or from a CSV file of
//! runs made elsewhere (another tool, a paper's table).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AnalysisError;
use crate::store::{Store, SweepRow, TrialState};

/// Which parameter count a fit uses as N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamsCount {
    /// Every trainable parameter.
    Total,
    /// Parameters outside the embeddings (Kaplan's N).
    NonEmbedding,
}

/// One training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Trial key, or `row N` of a CSV file.
    pub id: String,
    /// The model size's name (a label of N for CSV files).
    pub size: String,
    /// N.
    pub params: f64,
    /// D: examples seen (for the ViT, images; tokens are examples × tokens per example).
    pub examples: f64,
    /// The epoch budget, when known.
    pub epochs: Option<f64>,
    /// C: training FLOPs of the whole run.
    pub flops: f64,
    /// Peak learning rate, when known.
    pub lr: Option<f64>,
    /// Final validation loss; `None` when the run diverged.
    pub loss: Option<f64>,
    /// Evaluation points `(FLOPs so far, validation loss)`; for a CSV row, its final point.
    pub curve: Vec<(f64, f64)>,
    /// Weight in the least-squares fits (a CSV file's `weight=` column, e.g. 1/σ² of a
    /// published optimum); `None` is 1.
    #[serde(default)]
    pub weight: Option<f64>,
}

/// The runs of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observations {
    /// `sweep:<name>` or `csv:<path>`.
    pub source: String,
    /// The sweep's id in the store, for sweeps.
    pub sweep_id: Option<i64>,
    /// Which N the runs carry.
    pub params_count: ParamsCount,
    /// Training examples per epoch, for sweeps (turns `--epochs` into D).
    pub examples_per_epoch: Option<f64>,
    /// What the loss is, for axis titles (e.g. `cross-entropy, nats`); `None` when unknown
    /// (imported CSV, command trainers).
    #[serde(default)]
    pub loss_name: Option<String>,
    /// The runs.
    pub runs: Vec<Run>,
    /// SHA-256 of an imported file's bytes, so that a fit names exactly what it fitted.
    #[serde(default)]
    pub source_hash: Option<String>,
    /// Runs left out while reading, and why (said, never silently dropped).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Observations {
    /// Training FLOPs per parameter and example, `k` in C = k·N·D (the median over runs; 6 for
    /// dense models counted in tokens).
    pub fn flops_per_param_example(&self) -> f64 {
        let mut k: Vec<f64> = self
            .runs
            .iter()
            .map(|r| r.flops / (r.params * r.examples))
            .filter(|k| k.is_finite() && *k > 0.0)
            .collect();
        if k.is_empty() {
            return crate::fit::DEFAULT_FLOPS_PER_PARAM_EXAMPLE;
        }
        k.sort_by(f64::total_cmp);
        k[k.len() / 2]
    }

    /// These observations without the runs of the named sizes.
    pub fn without_sizes(&self, sizes: &[String]) -> Observations {
        Observations {
            runs: self
                .runs
                .iter()
                .filter(|r| !sizes.contains(&r.size))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// The runs grouped into cells (one model size at one budget), in increasing N then D.
    pub fn cells(&self) -> Vec<Vec<&Run>> {
        let mut cells: BTreeMap<(u64, u64), Vec<&Run>> = BTreeMap::new();
        for r in &self.runs {
            cells
                .entry((r.params.to_bits(), r.examples.to_bits()))
                .or_default()
                .push(r);
        }
        let mut out: Vec<Vec<&Run>> = cells.into_values().collect();
        out.sort_by(|a, b| {
            a[0].params
                .total_cmp(&b[0].params)
                .then(a[0].examples.total_cmp(&b[0].examples))
        });
        out
    }
}

/// The completed and diverged trials of a sweep, with their curves.
pub async fn from_sweep(
    store: &Store,
    sweep: &SweepRow,
    params_count: ParamsCount,
) -> Result<Observations, AnalysisError> {
    let spec = sweep.spec()?;
    let mut curves: BTreeMap<i64, Vec<(f64, f64)>> = BTreeMap::new();
    for (trial, m) in store.sweep_metrics(sweep.id).await? {
        if let Some(loss) = m.val_loss {
            curves.entry(trial).or_default().push((m.flops, loss));
        }
    }
    let mut notes = Vec::new();
    let runs: Vec<Run> = store
        .trials(sweep.id)
        .await?
        .into_iter()
        .filter(|t| matches!(t.state, TrialState::Completed | TrialState::Diverged))
        // A command that exited cleanly without reporting val_loss has nothing to fit.
        .filter(|t| !(t.state == TrialState::Completed && t.final_val_loss.is_none()))
        .map(|t| {
            let params = match params_count {
                ParamsCount::Total => t.params,
                ParamsCount::NonEmbedding => t.params_non_embedding,
            } as f64;
            let loss = match t.state {
                TrialState::Completed => t.final_val_loss.filter(|l| l.is_finite()),
                _ => None,
            };
            Run {
                id: t.key.clone(),
                size: t.size_name.clone(),
                params,
                examples: t.examples as f64,
                epochs: Some(t.epochs),
                flops: t.flops,
                lr: Some(t.lr),
                loss,
                curve: curves.remove(&t.id).unwrap_or_default(),
                weight: None,
            }
        })
        .filter(|r| {
            // Every law is fitted in log space: a loss of 0 or less has no logarithm.
            let bad = r.loss.is_some_and(|l| l <= 0.0);
            if bad {
                notes.push(format!(
                    "trial {} left out: its final loss {} is not positive (the laws are fitted to log L)",
                    r.id,
                    r.loss.unwrap_or(0.0)
                ));
            }
            !bad
        })
        .collect();
    Ok(Observations {
        source: format!("sweep:{}", sweep.name),
        sweep_id: Some(sweep.id),
        params_count,
        examples_per_epoch: spec.examples_per_epoch(),
        loss_name: spec.loss_name().map(str::to_string),
        runs,
        source_hash: None,
        notes,
    })
}

/// Which CSV columns hold N, D, C, the loss, the learning rate and a size label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Columns {
    /// Column of N.
    pub n: Option<String>,
    /// Column of D.
    pub d: Option<String>,
    /// Column of C.
    pub c: Option<String>,
    /// Column of the loss (required).
    pub loss: String,
    /// Column of the learning rate.
    pub lr: Option<String>,
    /// Column of a size label.
    pub size: Option<String>,
    /// Column of each run's weight in the least-squares fits.
    #[serde(default)]
    pub weight: Option<String>,
}

impl Columns {
    /// Parses `n=Model Size,c=Training FLOP,loss=loss` (keys: n, d, c, loss, lr, size,
    /// weight).
    pub fn parse(text: &str) -> Result<Columns, AnalysisError> {
        let mut cols = Columns::default();
        let mut loss = None;
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                AnalysisError::Input(format!(
                    "--columns: {part:?} is not key=column (keys: n, d, c, loss, lr, size, weight)"
                ))
            })?;
            let value = Some(value.trim().to_string());
            match key.trim() {
                "n" => cols.n = value,
                "d" => cols.d = value,
                "c" => cols.c = value,
                "loss" => loss = value,
                "lr" => cols.lr = value,
                "size" => cols.size = value,
                "weight" => cols.weight = value,
                other => {
                    return Err(AnalysisError::Input(format!(
                        "--columns: unknown key {other:?} (keys: n, d, c, loss, lr, size, weight)"
                    )))
                }
            }
        }
        cols.loss =
            loss.ok_or_else(|| AnalysisError::Input("--columns needs loss=COLUMN".into()))?;
        let given = [&cols.n, &cols.d, &cols.c]
            .iter()
            .filter(|c| c.is_some())
            .count();
        if given < 2 {
            return Err(AnalysisError::Input(
                "--columns needs two of n, d and c (the third follows from C = 6·N·D)".into(),
            ));
        }
        Ok(cols)
    }
}

/// Runs read from a CSV file with a header. A missing one of N, D, C follows from C = 6·N·D;
/// an empty or non-finite loss counts as diverged.
pub fn from_csv(path: &Path, columns: &Columns) -> Result<Observations, AnalysisError> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| AnalysisError::Input(format!("cannot read {}: {e}", path.display())))?;
    let headers = reader
        .headers()
        .map_err(|e| AnalysisError::Input(format!("{}: {e}", path.display())))?
        .clone();
    let index = |name: &Option<String>| -> Result<Option<usize>, AnalysisError> {
        name.as_ref()
            .map(|n| {
                headers.iter().position(|h| h == n).ok_or_else(|| {
                    AnalysisError::Input(format!(
                        "{}: no column {n:?}; the columns are {}",
                        path.display(),
                        headers.iter().collect::<Vec<_>>().join(", ")
                    ))
                })
            })
            .transpose()
    };
    let (ni, di, ci) = (index(&columns.n)?, index(&columns.d)?, index(&columns.c)?);
    let li = index(&Some(columns.loss.clone()))?.unwrap_or(0);
    let (lri, si) = (index(&columns.lr)?, index(&columns.size)?);
    let wi = index(&columns.weight)?;
    let mut runs = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record =
            record.map_err(|e| AnalysisError::Input(format!("{}:{line}: {e}", path.display())))?;
        let number = |i: Option<usize>, what: &str| -> Result<Option<f64>, AnalysisError> {
            let Some(i) = i else { return Ok(None) };
            let text = record.get(i).unwrap_or("").trim();
            if text.is_empty() {
                return Ok(None);
            }
            text.parse::<f64>().map(Some).map_err(|_| {
                AnalysisError::Input(format!(
                    "{}:{line}: {what} {text:?} is not a number",
                    path.display()
                ))
            })
        };
        let (n, d, c) = (number(ni, "n")?, number(di, "d")?, number(ci, "c")?);
        let (n, d, c) = match (n, d, c) {
            (Some(n), Some(d), Some(c)) => (n, d, c),
            (Some(n), Some(d), None) => (n, d, 6.0 * n * d),
            (Some(n), None, Some(c)) => (n, c / (6.0 * n), c),
            (None, Some(d), Some(c)) => (c / (6.0 * d), d, c),
            _ => {
                return Err(AnalysisError::Input(format!(
                    "{}:{line}: two of n, d and c are empty",
                    path.display()
                )))
            }
        };
        if !(n > 0.0 && d > 0.0 && c > 0.0 && n.is_finite() && d.is_finite() && c.is_finite()) {
            return Err(AnalysisError::Input(format!(
                "{}:{line}: N, D and C must be positive (got {n}, {d}, {c})",
                path.display()
            )));
        }
        let loss = number(Some(li), "loss")?.filter(|l| l.is_finite());
        if let Some(l) = loss.filter(|l| *l <= 0.0) {
            return Err(AnalysisError::Input(format!(
                "{}:{line}: loss {l} is not positive (the laws are fitted to log L; leave the \
                 field empty for a diverged run)",
                path.display()
            )));
        }
        let weight = number(wi, "weight")?;
        if let Some(w) = weight.filter(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(AnalysisError::Input(format!(
                "{}:{line}: weight {w} must be a positive number",
                path.display()
            )));
        }
        let size = si
            .and_then(|i| record.get(i))
            .map(str::to_string)
            .unwrap_or_else(|| format!("N={n:.4e}"));
        runs.push(Run {
            id: format!("row {line}"),
            size,
            params: n,
            examples: d,
            epochs: None,
            flops: c,
            lr: number(lri, "lr")?,
            loss,
            curve: loss.map(|l| vec![(c, l)]).unwrap_or_default(),
            weight,
        });
    }
    if runs.is_empty() {
        return Err(AnalysisError::Input(format!("{}: no rows", path.display())));
    }
    let (source, hash) = csv_source(path)?;
    Ok(Observations {
        source,
        sweep_id: None,
        params_count: ParamsCount::Total,
        examples_per_epoch: None,
        loss_name: None,
        runs,
        source_hash: Some(hash),
        notes: Vec::new(),
    })
}

/// The source name of an imported file (`csv:` and its canonical path, so that `./runs.csv`
/// and `runs.csv` name one source) and the SHA-256 of its bytes.
pub fn csv_source(path: &Path) -> Result<(String, String), AnalysisError> {
    use sha2::{Digest, Sha256};
    let canonical = path
        .canonicalize()
        .map_err(|e| AnalysisError::Input(format!("cannot read {}: {e}", path.display())))?;
    let bytes = std::fs::read(&canonical)
        .map_err(|e| AnalysisError::Input(format!("cannot read {}: {e}", path.display())))?;
    Ok((
        format!("csv:{}", canonical.display()),
        format!("{:x}", Sha256::digest(bytes)),
    ))
}
