//! Predictions from fitted laws: the loss and optimal learning rate of a model of N parameters
//! trained on D examples, or, for a compute budget C, the frontier's loss and the compute-
//! optimal N and D. Every value carries the percentile interval of the same quantity over the
//! fit's bootstrap samples (where the law's mean lies); every loss also carries a prediction
//! interval (where one new run will land: the same samples with the runs' scatter added).

use serde::{Deserialize, Serialize};

use super::laws::{FitReport, Method, Samples};
use crate::fit::ParametricLaw;

/// A predicted value with its interval and the law it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The law's value.
    pub value: f64,
    /// Lower end of the bootstrap interval.
    pub lo: Option<f64>,
    /// Upper end of the bootstrap interval.
    pub hi: Option<f64>,
    /// Which law, e.g. `parametric L(N, D)`.
    pub method: String,
    /// Lower end of the prediction interval of one new run: the law's bootstrap combined with
    /// the scatter of single runs around it (losses only).
    #[serde(default)]
    pub pred_lo: Option<f64>,
    /// Upper end of the prediction interval of one new run.
    #[serde(default)]
    pub pred_hi: Option<f64>,
}

/// What slaw predicts for a query.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Prediction {
    /// N (given, or compute-optimal).
    pub params: Option<f64>,
    /// D (given, or compute-optimal).
    pub examples: Option<f64>,
    /// C (given, or 'k·N·D').
    pub flops: Option<f64>,
    /// Predicted validation loss, by method.
    pub loss: Vec<Estimate>,
    /// Predicted optimal learning rate.
    pub lr: Vec<Estimate>,
    /// Compute-optimal N, by method (for `--flops`).
    pub params_star: Vec<Estimate>,
    /// Compute-optimal D, by method (for `--flops`).
    pub examples_star: Vec<Estimate>,
    /// Laws that were not available, and why.
    pub notes: Vec<String>,
    /// The stored fits the laws come from.
    #[serde(default)]
    pub fits: Vec<super::stored::StoredFit>,
}

fn estimate(
    value: f64,
    samples: Option<&Samples>,
    f: impl Fn(&[f64]) -> f64,
    method: &str,
) -> Estimate {
    let iv = samples.and_then(|s| s.interval_of(f));
    Estimate {
        value,
        lo: iv.as_ref().map(|i| i.lo),
        hi: iv.as_ref().map(|i| i.hi),
        method: method.to_string(),
        pred_lo: None,
        pred_hi: None,
    }
}

/// [`estimate`] of a loss, with the prediction interval of one new run: for every bootstrap
/// row, the law's value times `exp(scatter·z)` (z a seeded standard normal draw), and the
/// percentile interval of those.
fn loss_estimate(
    value: f64,
    samples: Option<&Samples>,
    f: impl Fn(&[f64]) -> f64,
    method: &str,
    scatter: Option<f64>,
) -> Estimate {
    use rand::SeedableRng;
    let mut e = estimate(value, samples, &f, method);
    let (Some(s), Some(scatter)) = (samples, scatter) else {
        return e;
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s.seed ^ 0x05ca_77e5);
    let draws: Vec<f64> = s
        .values
        .iter()
        .map(|row| f(row) * (scatter * crate::fit::standard_normal(&mut rng)).exp())
        .filter(|v| v.is_finite())
        .collect();
    if !draws.is_empty() {
        let iv = crate::fit::percentile_interval(draws, s.level);
        e.pred_lo = Some(iv.lo);
        e.pred_hi = Some(iv.hi);
    }
    e
}

/// The scatter of one run around the laws: the parametric fit's, else the frontier power law's
/// residuals.
fn run_scatter(report: &FitReport) -> Option<f64> {
    report
        .parametric
        .as_ref()
        .and_then(|m| m.fitted())
        .and_then(|p| p.run_scatter)
        .or_else(|| {
            let f = report.frontier.as_ref()?.fitted()?;
            let pl = f.fit.power_law.as_ref()?;
            Some(pl.residual_variance.sqrt())
        })
}

fn law_of(row: &[f64], n: usize) -> ParametricLaw {
    ParametricLaw {
        e: row[0],
        a: row[1],
        b: row[2],
        alpha: row[3],
        beta: row[4],
        objective: 0.0,
        n,
        starts: 1,
        converged_starts: 1,
    }
}

fn lr_estimates(report: &FitReport, n: f64, d: f64, p: &mut Prediction) {
    let Some(lr) = report.lr.as_ref() else { return };
    let Some(lr) = lr.fitted() else {
        p.notes.push("no learning-rate law was fitted".into());
        return;
    };
    if let Some(law) = lr.budget_law.fitted() {
        p.lr.push(estimate(
            law.predict(n, d),
            lr.budget_samples.as_ref(),
            |c| (c[0] + c[1] * n.ln() + c[2] * d.ln()).exp(),
            "log η* = c0 + c1·log N + c2·log D",
        ));
    }
    if let Some(law) = lr.params_law.fitted() {
        p.lr.push(estimate(
            law.predict(n),
            lr.params_samples.as_ref(),
            |c| (c[0] + c[1] * n.ln()).exp(),
            "log η* = c0 + c1·log N",
        ));
    }
    if p.lr.is_empty() {
        p.notes.push(
            "the learning-rate laws need at least 3 (4) cells whose optimum is inside the grid"
                .into(),
        );
    }
}

/// The learning-rate laws' optimal rate at (`n`, `d`), by law (empty when none is fitted);
/// needs no loss law.
pub fn optimal_lr(report: &FitReport, n: f64, d: f64) -> Vec<Estimate> {
    let mut p = Prediction::default();
    lr_estimates(report, n, d, &mut p);
    p.lr
}

/// Notes when (N, D) lie outside the range of the parametric fit's points.
fn range_notes(report: &FitReport, n: f64, d: f64, p: &mut Prediction) {
    let Some(par) = report.parametric.as_ref().and_then(|m| m.fitted()) else {
        return;
    };
    let range = |f: &dyn Fn(&crate::fit::ParametricPoint) -> f64| {
        par.points
            .iter()
            .map(f)
            .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (nlo, nhi) = range(&|q| q.params);
    let (dlo, dhi) = range(&|q| q.examples);
    if n < nlo || n > nhi {
        p.notes.push(format!(
            "N = {n:.3e} is outside the fitted sizes ({nlo:.3e} … {nhi:.3e}): an extrapolation"
        ));
    }
    if d < dlo || d > dhi {
        p.notes.push(format!(
            "D = {d:.3e} is outside the fitted budgets ({dlo:.3e} … {dhi:.3e} examples): an extrapolation"
        ));
    }
}

/// Why a prediction cannot be made: every law it needs is not identified (or not fitted).
fn refuse(what: &str, laws: &[(&str, Option<String>)]) -> Result<(), String> {
    let reasons: Vec<String> = laws
        .iter()
        .filter_map(|(name, p)| p.as_ref().map(|p| format!("the {name} law is {p}")))
        .collect();
    Err(format!(
        "no {what} can be predicted: {}",
        reasons.join("; ")
    ))
}

/// Loss and optimal learning rate of a model of `n` parameters trained on `d` examples. An
/// error when the parametric law the loss needs is not identified by the data.
pub fn at_size(report: &FitReport, n: f64, d: f64) -> Result<Prediction, String> {
    if let Some(m @ Method::NotIdentified { .. }) = &report.parametric {
        refuse("loss", &[("parametric", m.problem())])?;
    }
    Ok(at_size_unchecked(report, n, d))
}

/// [`at_size`], with a refusal as the prediction's only note (for tables that list many cells).
pub fn at_size_or_note(report: &FitReport, n: f64, d: f64) -> Prediction {
    at_size(report, n, d).unwrap_or_else(|why| Prediction {
        params: Some(n),
        examples: Some(d),
        notes: vec![why],
        ..Prediction::default()
    })
}

fn at_size_unchecked(report: &FitReport, n: f64, d: f64) -> Prediction {
    let mut p = Prediction {
        params: Some(n),
        examples: Some(d),
        fits: report.stored.clone(),
        ..Prediction::default()
    };
    range_notes(report, n, d, &mut p);
    match report.parametric.as_ref().and_then(|m| m.fitted()) {
        Some(par) => {
            p.flops = Some(par.flops_per_param_example * n * d);
            p.loss.push(loss_estimate(
                par.law.predict(n, d),
                par.samples.as_ref(),
                |c| law_of(c, par.law.n).predict(n, d),
                "parametric L(N, D) = E + A/N^α + B/D^β",
                par.run_scatter,
            ));
        }
        None => p
            .notes
            .push("no parametric law was fitted: the loss at (N, D) needs one".into()),
    }
    lr_estimates(report, n, d, &mut p);
    p
}

/// The frontier's loss, the compute-optimal N and D, and the optimal learning rate there, for
/// a budget of `c` training FLOPs. An error when none of the laws is identified; laws that are
/// not are named in the notes, and a law without a floor extrapolated past a decade is said.
pub fn at_compute(report: &FitReport, c: f64) -> Result<Prediction, String> {
    let laws = [
        (
            "frontier",
            report.frontier.as_ref().and_then(Method::problem),
        ),
        ("IsoFLOP", report.isoflop.as_ref().and_then(Method::problem)),
        (
            "parametric",
            report.parametric.as_ref().and_then(Method::problem),
        ),
    ];
    let usable = report
        .frontier
        .as_ref()
        .is_some_and(|m| m.fitted().is_some())
        || report
            .isoflop
            .as_ref()
            .is_some_and(|m| m.fitted().is_some())
        || report
            .parametric
            .as_ref()
            .is_some_and(|m| m.fitted().is_some());
    if !usable {
        refuse("compute-optimal allocation or loss", &laws)?;
    }
    let mut p = at_compute_unchecked(report, c);
    for (name, problem) in laws {
        if let Some(problem) = problem.filter(|p| p.starts_with("not identified")) {
            p.notes
                .push(format!("the {name} law is {problem}; it is not used"));
        }
    }
    extrapolation_notes(report, c, &mut p);
    Ok(p)
}

/// Notes when `c` lies more than a decade beyond the compute the laws were fitted on: the
/// frontier's pure power law has no floor and runs below any saturating law, and N*(C) laws are
/// straight lines in log–log space.
fn extrapolation_notes(report: &FitReport, c: f64, p: &mut Prediction) {
    let Some(f) = report.frontier.as_ref().and_then(|m| m.fitted()) else {
        return;
    };
    let c_max = f
        .fit
        .frontier
        .points
        .iter()
        .map(|q| q.compute)
        .fold(0.0, f64::max);
    if c_max <= 0.0 || c <= 10.0 * c_max {
        return;
    }
    let ratio = c / c_max;
    if f.fit.power_law.is_some() {
        p.notes.push(format!(
            "C is {ratio:.0}× the largest compute fitted: the frontier's L = a·C^b has no floor \
             and keeps falling; E + A·C^−α (when fitted) is the one to trust this far out"
        ));
    }
    if !p.params_star.is_empty() {
        p.notes.push(format!(
            "the compute-optimal N and D are straight-line laws extrapolated {ratio:.0}× past \
             the largest compute fitted"
        ));
    }
}

fn at_compute_unchecked(report: &FitReport, c: f64) -> Prediction {
    let mut p = Prediction {
        flops: Some(c),
        fits: report.stored.clone(),
        ..Prediction::default()
    };
    if let Some(f) = report.frontier.as_ref().and_then(|m| m.fitted()) {
        if let Some(sat) = &f.fit.saturating {
            p.loss.push(loss_estimate(
                sat.predict(c),
                f.saturating_samples.as_ref(),
                |s| s[0].exp() + (s[1] - s[2] * c.ln()).exp(),
                "frontier L = E + A·C^−α",
                run_scatter(report),
            ));
        }
        if let Some(pl) = &f.fit.power_law {
            p.loss.push(loss_estimate(
                pl.predict(c),
                f.power_samples.as_ref(),
                |s| (s[0] + s[1] * c.ln()).exp(),
                "frontier L = a·C^b",
                run_scatter(report),
            ));
        }
        let s = f.allocation_samples.as_ref();
        if let Some(law) = f.params_law.fitted() {
            p.params_star.push(estimate(
                law.predict(c),
                s,
                |v| (v[0] + v[1] * c.ln()).exp(),
                "frontier N*(C)",
            ));
        }
        if let Some(law) = f.examples_law.fitted() {
            p.examples_star.push(estimate(
                law.predict(c),
                s,
                |v| (v[2] + v[3] * c.ln()).exp(),
                "frontier D*(C)",
            ));
        }
    } else {
        p.notes.push("no frontier law was fitted".into());
    }
    if let Some(par) = report.parametric.as_ref().and_then(|m| m.fitted()) {
        let k = par.flops_per_param_example;
        if let Ok((n, d)) = par.law.optimal_allocation(c, k) {
            let alloc = |s: &[f64]| law_of(s, par.law.n).optimal_allocation(c, k).ok();
            p.params_star.insert(
                0,
                estimate(
                    n,
                    par.samples.as_ref(),
                    |s| alloc(s).map_or(f64::NAN, |x| x.0),
                    "parametric (C = k·N·D)",
                ),
            );
            p.examples_star.insert(
                0,
                estimate(
                    d,
                    par.samples.as_ref(),
                    |s| alloc(s).map_or(f64::NAN, |x| x.1),
                    "parametric (C = k·N·D)",
                ),
            );
            p.loss.push(loss_estimate(
                par.law.predict(n, d),
                par.samples.as_ref(),
                |s| {
                    let law = law_of(s, par.law.n);
                    law.optimal_allocation(c, k)
                        .map_or(f64::NAN, |(n, d)| law.predict(n, d))
                },
                "parametric L(N*, D*)",
                par.run_scatter,
            ));
            p.params = Some(n);
            p.examples = Some(d);
            range_notes(report, n, d, &mut p);
        }
    }
    if let Some(iso) = report.isoflop.as_ref().and_then(|m| m.fitted()) {
        let s = iso.samples.as_ref();
        p.params_star.push(estimate(
            iso.fit.params_law.predict(c),
            s,
            |v| (v[0] + v[1] * c.ln()).exp(),
            "IsoFLOP N*(C)",
        ));
        p.examples_star.push(estimate(
            iso.fit.examples_law.predict(c),
            s,
            |v| (v[2] + v[3] * c.ln()).exp(),
            "IsoFLOP D*(C)",
        ));
    }
    match (p.params, p.examples) {
        (Some(n), Some(d)) => lr_estimates(report, n, d, &mut p),
        _ => {
            if let (Some(n), Some(d)) = (p.params_star.first(), p.examples_star.first()) {
                let (n, d) = (n.value, d.value);
                p.params = Some(n);
                p.examples = Some(d);
                lr_estimates(report, n, d, &mut p);
            }
        }
    }
    p
}
