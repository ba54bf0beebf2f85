//! The audit a careful researcher does by hand before betting on a fit: back-tests that refit
//! every method without the largest model size and without each budget in turn and predict
//! what was left out, the methods' disagreement about the compute-optimal size at the next
//! budget and what that disagreement costs in compute, and the conventions card that lets a
//! fit be reproduced.

use serde::{Deserialize, Serialize};

use super::laws::{best_points, fit_all, FitConfig, FitReport};
use super::observations::{Observations, ParamsCount, Run};
use super::predict::{self, Estimate};
use crate::fit::ParametricLaw;

/// Refits with at most this many bootstrap resamples (the audit's intervals are for coverage
/// counts, not for print).
const AUDIT_BOOTSTRAP: usize = 200;

/// At most this many budgets are held out, the largest first.
const MAX_BUDGETS: usize = 6;

/// One method's predictions for one held-out set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backtest {
    /// What was left out, e.g. `largest size s6 (N = 1.2e9)`.
    pub held_out: String,
    /// Which law predicted, e.g. `parametric L(N, D)`.
    pub method: String,
    /// What was predicted: `loss`, `N*` or `η*`.
    pub quantity: String,
    /// Values compared.
    pub compared: usize,
    /// Mean of |predicted/actual − 1|.
    pub mean_abs_error: Option<f64>,
    /// Mean of predicted/actual − 1 (the bias).
    pub mean_error: Option<f64>,
    /// How many actual values fell inside the printed interval (the prediction interval for
    /// losses, the law's interval otherwise).
    pub covered: usize,
    /// Why nothing was compared, when nothing was.
    pub note: Option<String>,
}

/// The methods' compute-optimal sizes at the next budget and the compute each allocation
/// wastes, priced by the parametric law.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    /// The next budget: the largest compute times the median ratio between budgets.
    pub compute: f64,
    /// N* by method.
    pub params_star: Vec<Estimate>,
    /// Largest over smallest N*.
    pub spread: Option<f64>,
    /// By method: the share of the budget's compute wasted by training at its N* instead of
    /// the parametric law's optimum (1 − C'/C, C' the compute at which the optimum reaches the
    /// same loss).
    pub wasted_compute: Vec<(String, f64)>,
    /// Why a part is missing.
    pub notes: Vec<String>,
}

/// The whole audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// `sweep:<name>` or `csv:<path>`.
    pub source: String,
    /// Every back-test.
    pub backtests: Vec<Backtest>,
    /// The disagreement about N* at the next budget.
    pub allocation: Allocation,
    /// The conventions every fit used, as labelled lines.
    pub card: Vec<(String, String)>,
    /// Wall time of the audit.
    pub seconds: f64,
}

/// A set of runs to leave out.
struct HoldOut {
    label: String,
    keep: Observations,
    held: Observations,
}

fn split(obs: &Observations, label: String, out: impl Fn(&Run) -> bool) -> HoldOut {
    let (held, keep): (Vec<Run>, Vec<Run>) = obs.runs.iter().cloned().partition(|r| out(r));
    HoldOut {
        label,
        keep: Observations {
            runs: keep,
            ..obs.clone()
        },
        held: Observations {
            runs: held,
            ..obs.clone()
        },
    }
}

/// The budget of a run: its epochs in a sweep, else its compute.
fn budget_of(r: &Run) -> f64 {
    r.epochs.unwrap_or(r.flops)
}

/// The largest size, then the largest budgets (epochs in a sweep; compute budgets within 5 %
/// of each other in a file), at most [`MAX_BUDGETS`].
fn hold_outs(obs: &Observations) -> Vec<HoldOut> {
    let mut out = Vec::new();
    if let Some(largest) = obs.runs.iter().max_by(|a, b| a.params.total_cmp(&b.params)) {
        let n = largest.params;
        let label = if largest.size.starts_with("N=") {
            format!("largest size {}", largest.size)
        } else {
            format!("largest size {} (N = {n:.3e})", largest.size)
        };
        out.push(split(obs, label, |r| r.params == n));
    }
    let epochs = obs.runs.iter().all(|r| r.epochs.is_some());
    let mut budgets: Vec<f64> = obs.runs.iter().map(budget_of).collect();
    budgets.sort_by(|a, b| b.total_cmp(a));
    let mut groups: Vec<f64> = Vec::new();
    for b in budgets {
        if groups.last().is_none_or(|g| b < g / 1.05) {
            groups.push(b);
        }
    }
    if groups.len() < 3 {
        return out;
    }
    for g in groups.into_iter().take(MAX_BUDGETS) {
        let label = if epochs {
            format!("budget {g} epochs")
        } else {
            format!("budget C ≈ {g:.3e}")
        };
        out.push(split(obs, label, move |r| {
            let b = budget_of(r);
            b <= g && b >= g / 1.05
        }));
    }
    out
}

#[derive(Default)]
struct Errors {
    abs: f64,
    signed: f64,
    n: usize,
    covered: usize,
}

impl Errors {
    fn add(&mut self, predicted: f64, actual: f64, lo: Option<f64>, hi: Option<f64>) {
        let e = predicted / actual - 1.0;
        if !e.is_finite() {
            return;
        }
        self.abs += e.abs();
        self.signed += e;
        self.n += 1;
        if lo
            .zip(hi)
            .is_some_and(|(lo, hi)| lo <= actual && actual <= hi)
        {
            self.covered += 1;
        }
    }

    fn into_backtest(self, held_out: &str, method: &str, quantity: &str, why: &str) -> Backtest {
        Backtest {
            held_out: held_out.to_string(),
            method: method.to_string(),
            quantity: quantity.to_string(),
            compared: self.n,
            mean_abs_error: (self.n > 0).then(|| self.abs / self.n as f64),
            mean_error: (self.n > 0).then(|| self.signed / self.n as f64),
            covered: self.covered,
            note: (self.n == 0).then(|| why.to_string()),
        }
    }
}

/// The parametric law's predicted losses of the held-out cells against their best runs.
fn parametric_backtest(h: &HoldOut, fit: &FitReport) -> Backtest {
    let mut e = Errors::default();
    let why = match fit.parametric.as_ref().and_then(|m| m.problem()) {
        Some(p) => format!("the law without them is {p}"),
        None => "no held-out cell has a finite loss".into(),
    };
    for p in best_points(&h.held) {
        if let Ok(pred) = predict::at_size(fit, p.params, p.examples) {
            if let Some(est) = pred.loss.first() {
                e.add(est.value, p.loss, est.pred_lo, est.pred_hi);
            }
        }
    }
    e.into_backtest(&h.label, "parametric L(N, D)", "loss", &why)
}

/// The frontier laws' losses at the compute of the held-out runs that lie on the full data's
/// frontier, against the frontier there.
fn frontier_backtests(h: &HoldOut, full: &FitReport, fit: &FitReport) -> Vec<Backtest> {
    let Some(front) = full.frontier.as_ref().and_then(|m| m.fitted()) else {
        return Vec::new();
    };
    let held_ids: Vec<&str> = h.held.runs.iter().map(|r| r.id.as_str()).collect();
    // Frontier points are numbered by the fit's runs; their keys are in frontier_trials.
    let points: Vec<(f64, f64)> = front
        .fit
        .frontier
        .points
        .iter()
        .zip(&front.frontier_trials)
        .filter(|(_, id)| held_ids.contains(&id.as_str()))
        .map(|(p, _)| (p.compute, p.loss))
        .collect();
    let mut out = Vec::new();
    let names = ["frontier L = E + A·C^−α", "frontier L = a·C^b"];
    for name in names {
        let mut e = Errors::default();
        for &(c, actual) in &points {
            if let Ok(pred) = predict::at_compute(fit, c) {
                if let Some(est) = pred.loss.iter().find(|l| l.method == name) {
                    e.add(est.value, actual, est.pred_lo, est.pred_hi);
                }
            }
        }
        let why = if points.is_empty() {
            "no held-out run is on the frontier"
        } else {
            "the law is not fitted without them"
        };
        out.push(e.into_backtest(&h.label, name, "loss", why));
    }
    out
}

/// The learning-rate laws' η* for the held-out cells whose optimum lies inside their grid.
fn lr_backtest(h: &HoldOut, full: &FitReport, fit: &FitReport) -> Option<Backtest> {
    let cells = &full.lr.as_ref()?.fitted()?.cells;
    let mut e = Errors::default();
    for c in cells.iter().filter(|c| c.used) {
        let held = h
            .held
            .runs
            .iter()
            .any(|r| r.params == c.params && r.examples == c.examples);
        let Some(o) = c.optimum.as_ref().filter(|_| held) else {
            continue;
        };
        if let Some(est) = predict::optimal_lr(fit, c.params, c.examples).first() {
            e.add(est.value, o.lr_star, est.lo, est.hi);
        }
    }
    Some(e.into_backtest(
        &h.label,
        "learning-rate law",
        "η*",
        "no held-out cell has an optimum inside its grid, or no law without them",
    ))
}

/// Approach 2's vertex of a held-out compute budget (exact IsoFLOP data only), against every
/// method's N* there.
fn allocation_backtest(h: &HoldOut, full: &FitReport, fit: &FitReport) -> Vec<Backtest> {
    let Some(iso) = full.isoflop.as_ref().and_then(|m| m.fitted()) else {
        return Vec::new();
    };
    if iso.interpolated || h.held.runs.iter().any(|r| r.epochs.is_some()) {
        return Vec::new();
    }
    let (lo, hi) = h
        .held
        .runs
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(l, u), r| {
            (l.min(r.flops), u.max(r.flops))
        });
    let Some(vertex) = iso
        .fit
        .budgets
        .iter()
        .find(|b| b.is_valid() && b.compute >= lo / 1.01 && b.compute <= hi * 1.01)
    else {
        return Vec::new();
    };
    let (Some(n_star), Ok(pred)) = (vertex.params_star, predict::at_compute(fit, vertex.compute))
    else {
        return Vec::new();
    };
    pred.params_star
        .iter()
        .map(|est| {
            let mut e = Errors::default();
            e.add(est.value, n_star, est.lo, est.hi);
            e.into_backtest(&h.label, &est.method, "N* (vs its IsoFLOP vertex)", "")
        })
        .collect()
}

/// The compute at which the parametric law's optimal allocation reaches `loss` (bisection in
/// log C below `c`).
fn equivalent_compute(law: &ParametricLaw, k: f64, c: f64, loss: f64) -> Option<f64> {
    let at = |c: f64| {
        law.optimal_allocation(c, k)
            .ok()
            .map(|(n, d)| law.predict(n, d))
    };
    let (mut lo, mut hi) = ((c / 1e3).ln(), c.ln());
    if at(lo.exp())? < loss {
        return None;
    }
    for _ in 0..80 {
        let mid = 0.5 * (lo + hi);
        if at(mid.exp())? > loss {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi.exp())
}

fn next_budget(obs: &Observations) -> f64 {
    let mut c: Vec<f64> = obs.runs.iter().map(|r| r.flops).collect();
    c.sort_by(f64::total_cmp);
    c.dedup_by(|a, b| *a <= *b * 1.05);
    let mut ratios: Vec<f64> = c.windows(2).map(|w| w[1] / w[0]).collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios.get(ratios.len() / 2).copied().unwrap_or(10.0);
    c.last().copied().unwrap_or(0.0) * ratio.clamp(1.5, 10.0)
}

fn allocation(obs: &Observations, report: &FitReport) -> Allocation {
    let compute = next_budget(obs);
    let mut a = Allocation {
        compute,
        params_star: Vec::new(),
        spread: None,
        wasted_compute: Vec::new(),
        notes: Vec::new(),
    };
    match predict::at_compute(report, compute) {
        Ok(p) => a.params_star = p.params_star,
        Err(e) => a.notes.push(e),
    }
    let values: Vec<f64> = a.params_star.iter().map(|e| e.value).collect();
    if values.len() >= 2 {
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
        a.spread = Some(hi / lo);
    }
    let Some(par) = report.parametric.as_ref().and_then(|m| m.fitted()) else {
        a.notes
            .push("no identified parametric law to price a misallocation with".into());
        return a;
    };
    let k = par.flops_per_param_example;
    for est in &a.params_star {
        let n = est.value;
        let loss = par.law.predict(n, compute / (k * n));
        if let Some(c_eq) = equivalent_compute(&par.law, k, compute, loss) {
            a.wasted_compute
                .push((est.method.clone(), (1.0 - c_eq / compute).max(0.0)));
        }
    }
    a
}

fn card(obs: &Observations, report: &FitReport, config: &FitConfig) -> Vec<(String, String)> {
    let mut c = vec![("source".to_string(), obs.source.clone())];
    if let Some(h) = &obs.source_hash {
        c.push(("SHA-256".into(), h.clone()));
    }
    let k = obs.flops_per_param_example();
    let diverged = obs.runs.iter().filter(|r| r.loss.is_none()).count();
    c.extend([
        (
            "N".into(),
            match obs.params_count {
                ParamsCount::Total => "every trainable parameter (total)".into(),
                ParamsCount::NonEmbedding => "parameters outside the embeddings (Kaplan)".into(),
            },
        ),
        (
            "C".into(),
            format!("training FLOPs per run as stored; k = C/(N·D) = {k:.4} (median over runs)"),
        ),
        (
            "runs".into(),
            format!(
                "{} runs, {diverged} diverged (used only as too-high rates); sizes left out: {}",
                obs.runs.len(),
                if report.excluded_sizes.is_empty() {
                    "none".to_string()
                } else {
                    report.excluded_sizes.join(", ")
                }
            ),
        ),
        (
            "cells".into(),
            "one point per (N, D): seeds of a rate averaged, rates equal to 4 digits merged, \
             the best rate's mean loss"
                .into(),
        ),
        (
            "parametric".into(),
            "L = E + A/N^α + B/D^β on log losses, Huber δ = 1e-3, L-BFGS from 4500 starts; \
             bootstrap over cells"
                .into(),
        ),
        (
            "IsoFLOP".into(),
            format!(
                "parabola in ln N per budget on the sizes within ×{:.2} of the best run (at \
                 least {}); bootstrap draws every run's loss anew with the estimated noise",
                crate::fit::isoflop::DEFAULT_WINDOW.exp(),
                crate::fit::isoflop::MIN_WINDOW_SIZES
            ),
        ),
        (
            "frontier".into(),
            "lower envelope of every evaluation point; N*(C) bootstrap over trials and each \
             size's position between its grid neighbours"
                .into(),
        ),
        (
            "intervals".into(),
            format!(
                "{:.0} % percentile bootstrap, {} resamples, seed {}",
                100.0 * config.level,
                config.bootstrap,
                config.seed
            ),
        ),
    ]);
    for note in &obs.notes {
        c.push(("left out".into(), note.clone()));
    }
    c
}

/// Audits `report`, the fit of `obs` under `config`: refits without each held-out set (with
/// at most 200 resamples), compares, and prices the methods' disagreement at the next budget.
pub fn audit(obs: &Observations, report: &FitReport, config: &FitConfig) -> Audit {
    let started = std::time::Instant::now();
    let refit = FitConfig {
        bootstrap: config.bootstrap.min(AUDIT_BOOTSTRAP),
        ..config.clone()
    };
    let mut backtests = Vec::new();
    for h in hold_outs(obs) {
        if h.keep.runs.is_empty() {
            continue;
        }
        let fit = fit_all(&h.keep, &[], &refit);
        if config.parametric {
            backtests.push(parametric_backtest(&h, &fit));
        }
        if config.frontier {
            backtests.extend(frontier_backtests(&h, report, &fit));
        }
        if config.lr {
            backtests.extend(lr_backtest(&h, report, &fit));
        }
        backtests.extend(allocation_backtest(&h, report, &fit));
    }
    Audit {
        source: obs.source.clone(),
        backtests,
        allocation: allocation(obs, report),
        card: card(obs, report, config),
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::coverage::{planted, truth, Design};

    /// On the planted law the priced waste has a known answer: the optimum wastes nothing, and
    /// training 2× too large at the optimum's compute wastes what the law says it does.
    #[test]
    fn the_waste_of_a_misallocation_is_the_law_s() {
        let law = truth();
        let (k, c) = (6.0, 1e22);
        let (n, d) = law.optimal_allocation(c, k).unwrap();
        let best = law.predict(n, d);
        let same = equivalent_compute(&law, k, c, best).unwrap();
        assert!((same / c - 1.0).abs() < 1e-9, "{same}");
        let worse = law.predict(2.0 * n, d / 2.0);
        let c_eq = equivalent_compute(&law, k, c, worse).unwrap();
        // The optimum at c_eq reaches the misallocated loss exactly.
        let (n2, d2) = law.optimal_allocation(c_eq, k).unwrap();
        assert!((law.predict(n2, d2) / worse - 1.0).abs() < 1e-9);
        let wasted = 1.0 - c_eq / c;
        assert!(wasted > 0.01 && wasted < 0.2, "{wasted}");
    }

    /// Planted IsoFLOP data (1 % noise): the back-tests run for every hold-out, the parametric
    /// law predicts the held-out largest size within 2 % with most runs inside its prediction
    /// interval, each left-out budget's vertex is compared with every method's N*, and the
    /// methods' disagreement at the next budget is priced.
    #[test]
    fn an_audit_of_planted_data_backtests_every_method() {
        let obs = planted(Design::IsoFlop, 0.01, 3);
        let config = FitConfig {
            lr: false,
            bootstrap: 100,
            ..FitConfig::default()
        };
        let report = fit_all(&obs, &[], &config);
        let a = audit(&obs, &report, &config);
        let largest = a
            .backtests
            .iter()
            .find(|b| b.held_out.starts_with("largest size") && b.method.starts_with("parametric"))
            .unwrap();
        assert!(largest.compared > 0, "{largest:?}");
        assert!(largest.mean_abs_error.unwrap() < 0.02, "{largest:?}");
        assert!(2 * largest.covered >= largest.compared, "{largest:?}");
        let budgets: std::collections::BTreeSet<&str> = a
            .backtests
            .iter()
            .filter(|b| b.held_out.starts_with("budget"))
            .map(|b| b.held_out.as_str())
            .collect();
        assert_eq!(budgets.len(), MAX_BUDGETS);
        assert!(a
            .backtests
            .iter()
            .any(|b| b.quantity.starts_with("N*") && b.method.starts_with("IsoFLOP")));
        assert!(a.allocation.params_star.len() >= 2, "{:?}", a.allocation);
        assert_eq!(
            a.allocation.wasted_compute.len(),
            a.allocation.params_star.len()
        );
        assert!(a.allocation.spread.unwrap() >= 1.0);
        assert!(a.card.iter().any(|(k, v)| k == "N" && v.contains("total")));
    }
}
