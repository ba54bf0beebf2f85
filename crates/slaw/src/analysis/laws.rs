//! Running the fit methods on observations: which runs feed which fit, and the bootstrap
//! samples behind every interval (kept, so that predictions made later get intervals from the
//! same resamples).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::frontier_report::fit_frontier_report;
pub use super::frontier_report::FrontierReport;
use super::identify;
use super::isoflop_report::fit_isoflop_report;
pub use super::isoflop_report::IsoFlopReport;
use super::observations::{Observations, ParamsCount, Run};
use crate::fit::{
    self, cell_optimum, fit_lr_params_budget_law, fit_lr_params_law, fit_parametric,
    percentile_interval, resample_fits, BootstrapInterval, BootstrapOptions, CellFlag, CellOptimum,
    FitResult, IsoFlopPoint, LrParamsBudgetLaw, LrParamsLaw, LrPoint, LrTrial, ParametricGrid,
    ParametricLaw, ParametricOptions, ParametricPoint,
};

/// Which methods to run and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Optimal learning rate per cell and the LR laws.
    pub lr: bool,
    /// Compute frontier (approach 1).
    pub frontier: bool,
    /// IsoFLOP profiles (approach 2).
    pub isoflop: bool,
    /// Parametric L(N, D) (approach 3).
    pub parametric: bool,
    /// Bootstrap resamples (0: no bootstrap intervals).
    pub bootstrap: usize,
    /// Bootstrap seed.
    pub seed: u64,
    /// Level of every interval.
    pub level: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        FitConfig {
            lr: true,
            frontier: true,
            isoflop: true,
            parametric: true,
            bootstrap: 1000,
            seed: 0,
            level: 0.95,
        }
    }
}

/// A method's outcome: its result, why it could not be fitted, or a result the data do not
/// determine (kept, for the record, but never drawn or used for predictions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Method<T> {
    /// Fitted, and identified by the data.
    Fitted(T),
    /// Not fitted, and why (too few points, a degenerate design, …).
    NotFitted {
        /// The reason.
        reason: String,
    },
    /// Fitted, but the data do not identify it: too few distinct sizes or budgets, a sign or
    /// range constraint broken, intervals of zero width.
    NotIdentified {
        /// The reason.
        reason: String,
        /// What the optimiser returned, for the record.
        estimate: Box<T>,
    },
}

impl<T> Method<T> {
    /// The result, if fitted and identified.
    pub fn fitted(&self) -> Option<&T> {
        match self {
            Method::Fitted(t) => Some(t),
            Method::NotFitted { .. } | Method::NotIdentified { .. } => None,
        }
    }

    /// Why there is no usable result: `not fitted: …` or `not identified: …`.
    pub fn problem(&self) -> Option<String> {
        match self {
            Method::Fitted(_) => None,
            Method::NotFitted { reason } => Some(format!("not fitted: {reason}")),
            Method::NotIdentified { reason, .. } => Some(format!("not identified: {reason}")),
        }
    }

    pub(super) fn from(result: Result<T, String>) -> Self {
        match result {
            Ok(t) => Method::Fitted(t),
            Err(reason) => Method::NotFitted { reason },
        }
    }

    /// A fitted result that `check` finds not identified becomes [`Method::NotIdentified`].
    pub(super) fn identified(self, check: impl FnOnce(&T) -> Result<(), String>) -> Self {
        match self {
            Method::Fitted(t) => match check(&t) {
                Ok(()) => Method::Fitted(t),
                Err(reason) => Method::NotIdentified {
                    reason,
                    estimate: Box::new(t),
                },
            },
            other => other,
        }
    }
}

/// The bootstrap distribution of a fit's coefficients: one row per successful resample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// Coefficient names, the columns of `values`.
    pub names: Vec<String>,
    /// One row of coefficients per successful resample.
    pub values: Vec<Vec<f64>>,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples whose fit failed.
    pub failed: usize,
    /// Seed.
    pub seed: u64,
    /// Interval level.
    pub level: f64,
    /// Percentile intervals of each coefficient (derived from `values`; stored for queries).
    pub intervals: BTreeMap<String, BootstrapInterval>,
}

impl Samples {
    pub(super) fn collect(
        outputs: Vec<fit::bootstrap::ResampleOutput>,
        opts: &BootstrapOptions,
    ) -> Option<Self> {
        let resamples = outputs.len();
        let failed = outputs.iter().filter(|o| o.is_none()).count();
        let rows: Vec<Vec<(String, f64)>> = outputs.into_iter().flatten().collect();
        let names: Vec<String> = rows.first()?.iter().map(|(n, _)| n.clone()).collect();
        let mut samples = Samples {
            values: rows
                .into_iter()
                .map(|r| r.into_iter().map(|(_, v)| v).collect())
                .collect(),
            names,
            resamples,
            failed,
            seed: opts.seed,
            level: opts.level,
            intervals: BTreeMap::new(),
        };
        samples.intervals = samples.compute_intervals();
        Some(samples)
    }

    fn compute_intervals(&self) -> BTreeMap<String, BootstrapInterval> {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.interval_of(|row| row[i]).map(|iv| (n.clone(), iv)))
            .collect()
    }

    /// The percentile interval of `f(coefficients)` over the resamples (non-finite values are
    /// left out).
    pub fn interval_of(&self, f: impl Fn(&[f64]) -> f64) -> Option<BootstrapInterval> {
        let values: Vec<f64> = self
            .values
            .iter()
            .map(|row| f(row))
            .filter(|v| v.is_finite())
            .collect();
        (!values.is_empty()).then(|| percentile_interval(values, self.level))
    }
}

pub(super) fn bootstrap_options(config: &FitConfig) -> BootstrapOptions {
    BootstrapOptions {
        resamples: config.bootstrap,
        seed: config.seed,
        level: config.level,
        threads: 0,
    }
}

pub(super) fn resample<F>(n: usize, config: &FitConfig, fit: F) -> Option<Samples>
where
    F: Fn(&[usize]) -> FitResult<Vec<(String, f64)>> + Sync,
{
    if config.bootstrap == 0 {
        return None;
    }
    let opts = bootstrap_options(config);
    let outputs = resample_fits(n, &opts, fit).ok()?;
    Samples::collect(outputs, &opts)
}

/// A perturbation bootstrap over `config.bootstrap` resamples (see [`fit::replicate_fits`]).
pub(super) fn replicate<F>(config: &FitConfig, fit: F) -> Option<Samples>
where
    F: Fn(&mut rand_chacha::ChaCha8Rng) -> FitResult<Vec<(String, f64)>> + Sync,
{
    if config.bootstrap == 0 {
        return None;
    }
    let opts = bootstrap_options(config);
    let outputs = fit::replicate_fits(&opts, fit).ok()?;
    Samples::collect(outputs, &opts)
}

pub(super) fn named(values: &[(&str, f64)]) -> Vec<(String, f64)> {
    values.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

// ---------------------------------------------------------------------------------------------
// Learning rates
// ---------------------------------------------------------------------------------------------

/// One cell's learning-rate optimum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrCell {
    /// Size name.
    pub size: String,
    /// N.
    pub params: f64,
    /// D.
    pub examples: f64,
    /// Epoch budget, when known.
    pub epochs: Option<f64>,
    /// Rates tried.
    pub rates: usize,
    /// The optimum, when some rate gave a finite loss.
    pub optimum: Option<CellOptimum>,
    /// Whether the laws use it (not when the optimum is on the edge of the grid).
    pub used: bool,
    /// Why there is no optimum (every rate diverged, …), never dropped silently.
    #[serde(default)]
    pub error: Option<String>,
    /// The most runs (seeds) of one rate; their losses are averaged.
    #[serde(default = "one")]
    pub seeds: usize,
    /// The pooled standard deviation of the loss between seeds of one rate (the run-to-run
    /// noise), when some rate has two finite runs.
    #[serde(default)]
    pub seed_sd: Option<f64>,
}

fn one() -> usize {
    1
}

/// A cell's runs as one trial per rate: rates equal to 4 significant digits are one rate
/// (seeds, or a rate written at two roundings); its loss is the mean of its finite losses, or
/// diverged when at least half of its runs diverged. Returns the trials, the most runs of one
/// rate and the pooled standard deviation between them.
pub(super) fn merge_rates(cell: &[&Run]) -> (Vec<LrTrial>, usize, Option<f64>) {
    let mut by_rate: BTreeMap<String, (f64, Vec<Option<f64>>)> = BTreeMap::new();
    for r in cell {
        let Some(lr) = r.lr else { continue };
        let key = format!("{lr:.3e}");
        by_rate
            .entry(key)
            .or_insert_with(|| (lr, Vec::new()))
            .1
            .push(r.loss.filter(|l| l.is_finite()));
    }
    let mut trials = Vec::new();
    let (mut seeds, mut ss, mut dof) = (0usize, 0.0, 0usize);
    for (lr, losses) in by_rate.into_values() {
        seeds = seeds.max(losses.len());
        let finite: Vec<f64> = losses.iter().flatten().copied().collect();
        let diverged = 2 * finite.len() <= losses.len() && finite.len() < losses.len();
        let loss = (!finite.is_empty() && !diverged)
            .then(|| finite.iter().sum::<f64>() / finite.len() as f64);
        if finite.len() >= 2 {
            let mean = finite.iter().sum::<f64>() / finite.len() as f64;
            ss += finite.iter().map(|l| (l - mean).powi(2)).sum::<f64>();
            dof += finite.len() - 1;
        }
        trials.push(LrTrial { lr, loss });
    }
    let sd = (dof > 0).then(|| (ss / dof as f64).sqrt());
    (trials, seeds, sd)
}

/// Optimal rates per cell and the laws across cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFit {
    /// Every cell.
    pub cells: Vec<LrCell>,
    /// `log η* = c0 + c1·log N` (MM1).
    pub params_law: Method<LrParamsLaw>,
    /// Its bootstrap samples (`c0`, `c1`).
    pub params_samples: Option<Samples>,
    /// `log η* = c0 + c1·log N + c2·log D` (NFNet, Step Law).
    pub budget_law: Method<LrParamsBudgetLaw>,
    /// Its bootstrap samples (`c0`, `c1`, `c2`).
    pub budget_samples: Option<Samples>,
}

fn fit_lr(obs: &Observations, config: &FitConfig) -> Result<LrFit, String> {
    let mut cells = Vec::new();
    for cell in obs.cells() {
        let (trials, seeds, seed_sd) = merge_rates(&cell);
        if trials.is_empty() {
            continue;
        }
        let (optimum, error) = match cell_optimum(&trials) {
            Ok(o) => (Some(o), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let used = optimum.as_ref().is_some_and(|o| {
            !o.flags
                .iter()
                .any(|f| matches!(f, CellFlag::OnLowEdge | CellFlag::OnHighEdge))
        });
        cells.push(LrCell {
            size: cell[0].size.clone(),
            params: cell[0].params,
            examples: cell[0].examples,
            epochs: cell[0].epochs,
            rates: trials.len(),
            optimum,
            used,
            error,
            seeds,
            seed_sd,
        });
    }
    if cells.is_empty() {
        return Err("no run has a learning rate".into());
    }
    let interior = cells.iter().filter(|c| c.used).count();
    let points: Vec<LrPoint> = cells
        .iter()
        .filter(|c| c.used)
        .filter_map(|c| {
            c.optimum.as_ref().map(|o| LrPoint {
                params: c.params,
                budget: c.examples,
                lr: o.lr_star,
            })
        })
        .collect();
    let no_interior = || {
        format!(
            "no cell has an optimum inside its grid of rates ({} cells: on the grid's edge, or \
             without a parabola); widen the grid",
            cells.len()
        )
    };
    let params_law = Method::from(if interior == 0 {
        Err(no_interior())
    } else {
        fit_lr_params_law(&points, config.level).map_err(|e| e.to_string())
    });
    let params_samples = params_law.fitted().and_then(|_| {
        resample(points.len(), config, |idx| {
            let p: Vec<LrPoint> = idx.iter().map(|&i| points[i]).collect();
            let law = fit_lr_params_law(&p, config.level)?;
            Ok(named(&[("c0", law.c0()), ("c1", law.c1())]))
        })
    });
    let budget_law = Method::from(if interior == 0 {
        Err(no_interior())
    } else {
        fit_lr_params_budget_law(&points, config.level).map_err(|e| e.to_string())
    });
    let budget_samples = budget_law.fitted().and_then(|_| {
        resample(points.len(), config, |idx| {
            let p: Vec<LrPoint> = idx.iter().map(|&i| points[i]).collect();
            let law = fit_lr_params_budget_law(&p, config.level)?;
            Ok(named(&[
                ("c0", law.c0()),
                ("c1", law.c1()),
                ("c2", law.c2()),
            ]))
        })
    });
    let sizes = identify::distinct(points.iter().map(|p| p.params));
    let budgets = identify::distinct(points.iter().map(|p| p.budget));
    let params_law =
        params_law.identified(|_| identify::lr_law(sizes, None, params_samples.as_ref()));
    let budget_law =
        budget_law.identified(|_| identify::lr_law(sizes, Some(budgets), budget_samples.as_ref()));
    Ok(LrFit {
        cells,
        params_law,
        params_samples,
        budget_law,
        budget_samples,
    })
}

// ---------------------------------------------------------------------------------------------
// The best run of each cell
// ---------------------------------------------------------------------------------------------

/// The best finite loss of each cell, as an IsoFLOP point.
///
/// Seeds of one rate are averaged first ([`merge_rates`]): the minimum over seeds would be
/// biased low. Runs without a learning rate (imported rows) are each their own point.
pub(super) fn best_points(obs: &Observations) -> Vec<IsoFlopPoint> {
    obs.cells()
        .iter()
        .filter_map(|cell| {
            let loss = if cell.iter().any(|r| r.lr.is_some()) {
                merge_rates(cell)
                    .0
                    .iter()
                    .filter_map(|t| t.loss)
                    .min_by(f64::total_cmp)?
            } else {
                cell.iter().filter_map(|r| r.loss).min_by(f64::total_cmp)?
            };
            let first = cell[0];
            Some(IsoFlopPoint {
                params: first.params,
                examples: first.examples,
                compute: first.flops,
                loss,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Parametric L(N, D)
// ---------------------------------------------------------------------------------------------

/// Chinchilla's approach 3 on the best run of every cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParametricReport {
    /// The law.
    pub law: ParametricLaw,
    /// Bootstrap samples over cells (`log_e`, `log_a`, `log_b`, `alpha`, `beta`), refitted from the
    /// full-data optimum.
    pub samples: Option<Samples>,
    /// k in C = k·N·D, for the compute-optimal allocation.
    pub flops_per_param_example: f64,
    /// The points fitted.
    pub points: Vec<ParametricPoint>,
    /// The scatter of one run around the law: the standard deviation of log(loss/law) over the
    /// points (n − 5 degrees of freedom), or the seeds' when they scatter more (the points
    /// average seeds).
    #[serde(default)]
    pub run_scatter: Option<f64>,
}

impl ParametricReport {
    /// The residual scatter of the points around `law` on the log scale.
    fn residual_scatter(law: &ParametricLaw, points: &[ParametricPoint]) -> Option<f64> {
        let dof = points.len().checked_sub(5).filter(|d| *d > 0)?;
        let ss: f64 = points
            .iter()
            .map(|p| (p.loss / law.predict(p.params, p.examples)).ln().powi(2))
            .sum();
        Some((ss / dof as f64).sqrt()).filter(|s| s.is_finite())
    }
}

/// The pooled relative spread between seeds of one rate, over every cell that has seeds.
fn seed_scatter(obs: &Observations) -> Option<f64> {
    let (mut ss, mut n) = (0.0, 0usize);
    for cell in obs.cells() {
        let (trials, seeds, sd) = merge_rates(&cell);
        let mean = trials
            .iter()
            .filter_map(|t| t.loss)
            .fold(f64::INFINITY, f64::min);
        if let (Some(sd), true) = (sd, seeds > 1 && mean.is_finite() && mean > 0.0) {
            ss += (sd / mean).powi(2);
            n += 1;
        }
    }
    (n > 0).then(|| (ss / n as f64).sqrt())
}

fn fit_parametric_report(
    obs: &Observations,
    config: &FitConfig,
) -> Result<ParametricReport, String> {
    let points: Vec<ParametricPoint> = best_points(obs)
        .into_iter()
        .map(|p| ParametricPoint {
            params: p.params,
            examples: p.examples,
            loss: p.loss,
        })
        .collect();
    let law = fit_parametric(&points, &ParametricOptions::default()).map_err(|e| e.to_string())?;
    let refit = ParametricOptions {
        grid: ParametricGrid::single(&law),
        optimiser: fit::OptimiserSettings {
            threads: 1,
            ..fit::OptimiserSettings::default()
        },
        ..ParametricOptions::default()
    };
    let samples = resample(points.len(), config, |idx| {
        let p: Vec<ParametricPoint> = idx.iter().map(|&i| points[i]).collect();
        let l = fit_parametric(&p, &refit)?;
        Ok(named(&[
            ("log_e", l.e),
            ("log_a", l.a),
            ("log_b", l.b),
            ("alpha", l.alpha),
            ("beta", l.beta),
        ]))
    });
    let run_scatter = match (
        ParametricReport::residual_scatter(&law, &points),
        seed_scatter(obs),
    ) {
        (Some(r), Some(s)) => Some(r.max(s)),
        (r, s) => r.or(s),
    };
    Ok(ParametricReport {
        law,
        samples,
        flops_per_param_example: obs.flops_per_param_example(),
        points,
        run_scatter,
    })
}

// ---------------------------------------------------------------------------------------------
// All methods
// ---------------------------------------------------------------------------------------------

/// Every method's outcome on one set of observations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// `sweep:<name>` or `csv:<path>`.
    pub source: String,
    /// Which N.
    pub params_count: ParamsCount,
    /// Runs fitted (completed or diverged).
    pub runs: usize,
    /// Sizes left out of the fit (a back-test holds the largest out).
    pub excluded_sizes: Vec<String>,
    /// Training examples per epoch, for sweeps.
    pub examples_per_epoch: Option<f64>,
    /// Learning rates.
    pub lr: Option<Method<LrFit>>,
    /// The compute frontier.
    pub frontier: Option<Method<FrontierReport>>,
    /// IsoFLOP profiles.
    pub isoflop: Option<Method<IsoFlopReport>>,
    /// Parametric law.
    pub parametric: Option<Method<ParametricReport>>,
    /// The stored fits this report was read from (empty for a report fitted now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stored: Vec<super::stored::StoredFit>,
}

/// Runs the methods of `config` on `obs`.
pub fn fit_all(obs: &Observations, excluded_sizes: &[String], config: &FitConfig) -> FitReport {
    let obs = obs.without_sizes(excluded_sizes);
    FitReport {
        source: obs.source.clone(),
        params_count: obs.params_count,
        runs: obs.runs.len(),
        excluded_sizes: excluded_sizes.to_vec(),
        examples_per_epoch: obs.examples_per_epoch,
        lr: config.lr.then(|| Method::from(fit_lr(&obs, config))),
        frontier: config.frontier.then(|| {
            Method::from(fit_frontier_report(&obs, config)).identified(|f| {
                let mut trials = f.frontier_trials.clone();
                trials.sort();
                trials.dedup();
                identify::frontier(trials.len(), f.frontier_sizes, f.power_samples.as_ref())
            })
        }),
        isoflop: config.isoflop.then(|| {
            Method::from(fit_isoflop_report(&obs, config)).identified(|i| {
                let vertices = i.fit.budgets.iter().filter(|b| b.is_valid()).count();
                identify::allocation(vertices, i.samples.as_ref())
            })
        }),
        parametric: config.parametric.then(|| {
            Method::from(fit_parametric_report(&obs, config))
                .identified(|p| identify::parametric(&p.law, &p.points, p.samples.as_ref()))
        }),
        stored: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::observations::Run;

    /// A planted sweep: L(N, D) = 1.5 + 40/N^0.3 + 60/D^0.35 plus an LR penalty around
    /// η*(N, D) = 0.5·N^−0.4·D^0.1, times 0.2 % seeded noise; C = 6·N·D; curves follow the
    /// same law along D.
    fn planted() -> Observations {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut noise = move || 1.0 + 0.002 * (rng.random::<f64>() - 0.5) * 3.46;
        let mut runs = Vec::new();
        let sizes = [1e4, 3e4, 1e5, 3e5, 1e6];
        let budgets = [1e4, 3e4, 1e5, 3e5];
        for &n in &sizes {
            for &d in &budgets {
                let eta = 0.5 * f64::powf(n, -0.4) * f64::powf(d, 0.1);
                for k in -2..=2 {
                    let lr = eta * 2f64.powi(k) * 1.1;
                    let base = |d: f64| 1.5 + 40.0 / n.powf(0.3) + 60.0 / d.powf(0.35);
                    let penalty = 0.02 * (lr / eta).log2().powi(2);
                    let curve = (1..=8)
                        .map(|i| {
                            let di = d * i as f64 / 8.0;
                            (6.0 * n * di, base(di) + penalty)
                        })
                        .collect();
                    runs.push(Run {
                        id: format!("{n}-{d}-{k}"),
                        size: format!("n{n}"),
                        params: n,
                        examples: d,
                        epochs: None,
                        flops: 6.0 * n * d,
                        lr: Some(lr),
                        loss: Some((base(d) + penalty) * noise()),
                        curve,
                        weight: None,
                    });
                }
            }
        }
        Observations {
            source: "planted".into(),
            sweep_id: None,
            params_count: ParamsCount::Total,
            examples_per_epoch: None,
            loss_name: None,
            runs,
            source_hash: None,
            notes: Vec::new(),
        }
    }

    fn quick() -> FitConfig {
        FitConfig {
            bootstrap: 50,
            ..FitConfig::default()
        }
    }

    #[test]
    fn planted_sweep_recovers_its_laws() {
        let report = fit_all(&planted(), &[], &quick());
        let lr = report.lr.unwrap();
        let lr = lr.fitted().unwrap();
        assert_eq!(lr.cells.len(), 20);
        assert!(
            lr.cells.iter().all(|c| c.used),
            "every cell brackets its optimum"
        );
        let law = lr.budget_law.fitted().unwrap();
        assert!((law.c1() + 0.4).abs() < 0.05, "c1 {}", law.c1());
        assert!((law.c2() - 0.1).abs() < 0.05, "c2 {}", law.c2());
        let samples = lr.budget_samples.as_ref().unwrap();
        let c1 = &samples.intervals["c1"];
        assert!(c1.lo < -0.4 && -0.4 < c1.hi, "planted c1 outside {c1:?}");

        let p = report.parametric.unwrap();
        let p = p.fitted().unwrap();
        assert!((p.law.alpha - 0.3).abs() < 0.02, "alpha {}", p.law.alpha);
        assert!((p.law.beta - 0.35).abs() < 0.02, "beta {}", p.law.beta);
        // E is the weakly identified coefficient (20 points, 0.2 % noise); the law's values
        // inside the data are tight.
        let e = p.law.irreducible_loss();
        assert!((e - 1.5).abs() < 0.1, "E {e}");
        let truth = 1.5 + 40.0 / 2e5f64.powf(0.3) + 60.0 / 5e4f64.powf(0.35);
        let pred = p.law.predict(2e5, 5e4);
        assert!((pred / truth - 1.0).abs() < 0.005, "{pred} vs {truth}");
        assert!((p.flops_per_param_example - 6.0).abs() < 1e-9);
        assert!(p.samples.as_ref().unwrap().values.len() >= 45);

        let f = report.frontier.unwrap();
        let f = f.fitted().unwrap();
        assert!(f.fit.power_law.as_ref().unwrap().b < 0.0);
        assert!(
            f.params_law.fitted().unwrap().b > 0.0,
            "bigger models at more compute"
        );

        let iso = report.isoflop.unwrap();
        let iso = iso.fitted().unwrap();
        assert!(iso.interpolated);
        // N*(C) ∝ C^(β/(α+β)) = C^0.538 for this law.
        let b = iso.fit.params_law.b;
        assert!((b - 0.35 / 0.65).abs() < 0.1, "isoflop exponent {b}");
    }

    /// The planted sweep run with three seeds (their own noise), every rate also written at a
    /// second rounding in one cell.
    fn planted_with_seeds() -> Observations {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut obs = planted();
        let mut more = Vec::new();
        for r in &obs.runs {
            for seed in 1..3 {
                let mut copy = r.clone();
                copy.id = format!("{}-s{seed}", r.id);
                copy.loss = r
                    .loss
                    .map(|l| l * (1.0 + 0.004 * (rng.random::<f64>() - 0.5)));
                more.push(copy);
            }
        }
        // The same rates, written with 9 significant digits instead of all of them.
        let first = obs.runs[0].clone();
        for r in obs
            .runs
            .iter()
            .filter(|r| r.params == first.params && r.examples == first.examples)
        {
            let mut copy = r.clone();
            copy.id = format!("{}-rounded", r.id);
            copy.lr = r.lr.map(|lr| format!("{lr:.8e}").parse().unwrap());
            more.push(copy);
        }
        obs.runs.extend(more);
        obs
    }

    #[test]
    fn seeds_and_repeated_rates_are_averaged_not_fatal() {
        let report = fit_all(&planted_with_seeds(), &[], &quick());
        let lr = report.lr.unwrap();
        let lr = lr.fitted().unwrap();
        assert_eq!(lr.cells.len(), 20);
        for c in &lr.cells {
            assert_eq!(c.rates, 5, "{c:?}");
            assert!(c.optimum.is_some() && c.error.is_none(), "{c:?}");
            assert!(c.seeds >= 3, "{c:?}");
            // Seeds differ by a uniform 0.4 % (sd 0.115 %) of losses between 2 and 6.5.
            let sd = c.seed_sd.unwrap();
            assert!(sd > 0.0005 && sd < 0.012, "seed sd {sd}");
        }
        let law = lr.budget_law.fitted().unwrap();
        assert!((law.c1() + 0.4).abs() < 0.05, "c1 {}", law.c1());
        assert!(report.parametric.unwrap().fitted().is_some());
    }

    #[test]
    fn a_cell_without_an_optimum_says_why() {
        let mut obs = planted();
        for r in obs
            .runs
            .iter_mut()
            .filter(|r| r.params == 1e4 && r.examples == 1e4)
        {
            r.loss = None;
        }
        let report = fit_all(&obs, &[], &quick());
        let lr = report.lr.unwrap();
        let cell = lr
            .fitted()
            .unwrap()
            .cells
            .iter()
            .find(|c| c.params == 1e4 && c.examples == 1e4)
            .unwrap()
            .clone();
        assert!(cell.optimum.is_none());
        assert!(
            cell.error.as_deref().unwrap().contains("finite losses"),
            "{cell:?}"
        );
        // A grid that never brackets the optimum: the laws say so in words.
        let mut edge = planted();
        edge.runs.retain(|r| {
            r.lr.is_some_and(|lr| {
                let n = r.params;
                let d = r.examples;
                lr > 0.5 * f64::powf(n, -0.4) * f64::powf(d, 0.1) * 1.5
            })
        });
        let report = fit_all(&edge, &[], &quick());
        let lr = report.lr.unwrap();
        let Method::NotFitted { reason } = &lr.fitted().unwrap().params_law else {
            panic!("fitted on edge optima");
        };
        assert!(
            reason.contains("no cell has an optimum inside its grid"),
            "{reason}"
        );
    }

    #[test]
    fn holding_out_a_size_leaves_it_out() {
        let report = fit_all(&planted(), &["n1000000".to_string()], &quick());
        assert_eq!(report.runs, 80);
        let lr = report.lr.unwrap();
        assert!(lr.fitted().unwrap().cells.iter().all(|c| c.params < 1e6));
    }

    #[test]
    fn too_little_data_is_reported_not_fitted() {
        let mut obs = planted();
        obs.runs.truncate(5);
        let report = fit_all(&obs, &[], &quick());
        assert!(matches!(report.parametric, Some(Method::NotFitted { .. })));
        assert!(matches!(report.isoflop, Some(Method::NotFitted { .. })));
    }

    fn reason<T>(m: &Option<Method<T>>) -> String {
        match m {
            Some(Method::NotIdentified { reason, .. }) => reason.clone(),
            Some(Method::Fitted(_)) => "fitted".into(),
            Some(Method::NotFitted { reason }) => format!("not fitted: {reason}"),
            None => "absent".into(),
        }
    }

    #[test]
    fn laws_the_data_do_not_determine_are_not_identified() {
        // Two model sizes: α, E and A cannot be told apart.
        let mut two = planted();
        two.runs.retain(|r| r.params <= 3e4);
        let r = fit_all(&two, &[], &quick());
        assert!(
            reason(&r.parametric).contains("2 distinct model sizes"),
            "{}",
            reason(&r.parametric)
        );
        assert!(r.parametric.as_ref().unwrap().fitted().is_none());
        // One budget (eight sizes): β and B are free.
        let mut one = planted();
        one.runs.retain(|r| r.examples == 3e4);
        let extra: Vec<Run> = one
            .runs
            .iter()
            .map(|r| {
                let mut c = r.clone();
                c.params *= 1.7;
                c.flops *= 1.7;
                c.id = format!("{}-x", r.id);
                c.loss = r.loss.map(|l| l * 0.98);
                c
            })
            .collect();
        one.runs.extend(extra);
        let r = fit_all(&one, &[], &quick());
        assert!(
            reason(&r.parametric).contains("1 distinct budgets"),
            "{}",
            reason(&r.parametric)
        );
        // One completed trial: its learning curve is not a frontier.
        let mut single = planted();
        single.runs.truncate(1);
        let r = fit_all(&single, &[], &quick());
        assert!(
            reason(&r.frontier).contains("1 trial(s)"),
            "{}",
            reason(&r.frontier)
        );
        // The full planted sweep is identified everywhere.
        let r = fit_all(&planted(), &[], &quick());
        for problem in [
            r.parametric.as_ref().unwrap().problem(),
            r.frontier.as_ref().unwrap().problem(),
            r.isoflop.as_ref().unwrap().problem(),
            r.lr.as_ref().unwrap().problem(),
        ] {
            assert_eq!(problem, None);
        }
    }

    #[test]
    fn predictions_refuse_laws_that_are_not_identified() {
        let mut two = planted();
        two.runs.retain(|r| r.params <= 3e4);
        let r = fit_all(&two, &[], &quick());
        let e = crate::analysis::predict::at_size(&r, 1e6, 1e5).unwrap_err();
        assert!(e.contains("parametric law is not identified"), "{e}");
        let mut single = planted();
        single.runs.truncate(1);
        let r = fit_all(&single, &[], &quick());
        assert!(crate::analysis::predict::at_compute(&r, 1e12).is_err());
        // A power law without a floor, a hundred times past the data: said.
        let r = fit_all(&planted(), &[], &quick());
        let c_max = 6.0 * 1e6 * 3e5;
        let p = crate::analysis::predict::at_compute(&r, 100.0 * c_max).unwrap();
        assert!(
            p.notes.iter().any(|n| n.contains("has no floor")),
            "{:?}",
            p.notes
        );
        let p = crate::analysis::predict::at_compute(&r, c_max).unwrap();
        assert!(
            !p.notes.iter().any(|n| n.contains("has no floor")),
            "{:?}",
            p.notes
        );
    }
}
