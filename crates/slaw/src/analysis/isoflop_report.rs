//! Chinchilla's approach 2 on observations: which runs form each compute budget (runs at equal
//! compute, or budgets interpolated along each size's runs when a sweep of sizes × epochs has
//! none), the windowed parabolas and laws of [`crate::fit::isoflop`], and their bootstrap.
//!
//! The bootstrap resamples what is random in these data, the loss of every run: each resample
//! multiplies every run's loss by `exp(σ·z)`, with σ the run-to-run noise estimated from the
//! data (the parabolas' pooled relative residuals, or for interpolated budgets each size's
//! residuals around a smooth curve in log C), then regroups, re-windows and refits every
//! parabola and both laws. Resampling the few vertices instead (as before) gave intervals that
//! held the allocation exponent in 63-80 % of planted data sets.

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::laws::{best_points, named, replicate, FitConfig, Samples};
use super::observations::Observations;
use crate::fit::{
    isoflop_vertices, least_squares, vertex_laws, BudgetGrouping, IsoFlopFit, IsoFlopPoint,
    ProfileWindow,
};

/// IsoFLOP vertices and the laws of N*(C), D*(C).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsoFlopReport {
    /// Per-budget parabolas and the laws on their valid vertices.
    pub fit: IsoFlopFit,
    /// True when the budgets were made by interpolating each size's best loss along its
    /// budgets in log C (a sweep of sizes × epochs has no two sizes at equal compute).
    pub interpolated: bool,
    /// Bootstrap samples (`params_log_a`, `params_b`, `examples_log_a`, `examples_b`), each
    /// from every run's loss drawn anew with the estimated noise.
    pub samples: Option<Samples>,
    /// The points the parabolas were fitted to (interpolated ones when `interpolated`).
    pub points: Vec<IsoFlopPoint>,
    /// The budget of each point (`BudgetVertex::budget_id`).
    pub budget_ids: Vec<u64>,
    /// The relative run-to-run noise the bootstrap drew, and where it was estimated.
    #[serde(default)]
    pub noise: Option<Noise>,
    /// The half-width in ln N of the window fitted around each budget's best run (None: whole
    /// budgets).
    #[serde(default)]
    pub window: Option<f64>,
}

/// An estimate of the relative noise of one run's loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// Standard deviation of `loss/expected − 1`.
    pub relative_sd: f64,
    /// Degrees of freedom behind it.
    pub dof: usize,
    /// How it was estimated.
    pub source: String,
}

/// Budgets at equal compute made by interpolation: for targets log-spaced over the compute
/// range, every size whose budgets bracket the target contributes its best loss interpolated
/// linearly in (log C, log L); a target with fewer than three sizes is dropped.
fn interpolated_budgets(points: &[IsoFlopPoint]) -> (Vec<IsoFlopPoint>, Vec<u64>) {
    let (lo, hi) = points.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), p| {
        (lo.min(p.compute), hi.max(p.compute))
    });
    let targets = 12;
    let (mut out, mut ids) = (Vec::new(), Vec::new());
    let by_size = by_size(points);
    for t in 0..targets {
        let c = (lo.ln() + (hi.ln() - lo.ln()) * (t as f64 + 0.5) / targets as f64).exp();
        let mut here = Vec::new();
        for series in by_size.values() {
            let Some(w) = series
                .windows(2)
                .find(|w| w[0].compute <= c && c <= w[1].compute)
            else {
                continue;
            };
            let (a, b) = (w[0], w[1]);
            let f = (c.ln() - a.compute.ln())
                / (b.compute.ln() - a.compute.ln()).max(f64::MIN_POSITIVE);
            let loss = (a.loss.ln() + f * (b.loss.ln() - a.loss.ln())).exp();
            let examples = c * a.examples / a.compute;
            here.push(IsoFlopPoint {
                params: a.params,
                examples,
                compute: c,
                loss,
            });
        }
        if here.len() >= 3 {
            ids.extend(std::iter::repeat_n(t as u64, here.len()));
            out.extend(here);
        }
    }
    (out, ids)
}

/// Each size's points in increasing compute.
fn by_size(points: &[IsoFlopPoint]) -> BTreeMap<u64, Vec<IsoFlopPoint>> {
    let mut by_size: BTreeMap<u64, Vec<IsoFlopPoint>> = BTreeMap::new();
    for p in points {
        by_size.entry(p.params.to_bits()).or_default().push(*p);
    }
    for v in by_size.values_mut() {
        v.sort_by(|a, b| a.compute.total_cmp(&b.compute));
    }
    by_size
}

/// Budget ids grouping points whose compute is within `tolerance` of the smallest compute of
/// their budget (points sorted by compute open a new budget when they exceed it).
fn tolerance_ids(points: &[IsoFlopPoint], tolerance: f64) -> Vec<u64> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| points[a].compute.total_cmp(&points[b].compute));
    let mut ids = vec![0u64; points.len()];
    let (mut id, mut first) = (0u64, None::<f64>);
    for i in order {
        let c = points[i].compute;
        match first {
            Some(f) if c <= f * (1.0 + tolerance) => {}
            Some(_) => {
                id += 1;
                first = Some(c);
            }
            None => first = Some(c),
        }
        ids[i] = id;
    }
    ids
}

/// The noise of runs at equal compute: the parabolas' pooled relative residuals.
fn parabola_noise(fit: &IsoFlopFit) -> Option<Noise> {
    let (ss, dof) = fit.budgets.iter().fold((0.0, 0usize), |(ss, dof), b| {
        (ss + b.relative_residual_ss, dof + b.residual_dof)
    });
    (dof >= 2).then(|| Noise {
        relative_sd: (ss / dof as f64).sqrt(),
        dof,
        source: "residuals of the budgets' parabolas".into(),
    })
}

/// The noise of a sweep's cells: each size's log loss against log C fitted by a parabola (four
/// budgets or more), the residuals pooled.
fn curve_noise(cells: &[IsoFlopPoint]) -> Option<Noise> {
    let (mut ss, mut dof) = (0.0, 0usize);
    for series in by_size(cells).values().filter(|s| s.len() >= 4) {
        let x: Vec<f64> = series.iter().map(|p| p.compute.ln()).collect();
        let centre = x.iter().sum::<f64>() / x.len() as f64;
        let rows: Vec<[f64; 3]> = x
            .iter()
            .map(|v| [1.0, v - centre, (v - centre).powi(2)])
            .collect();
        let y: Vec<f64> = series.iter().map(|p| p.loss.ln()).collect();
        let Ok(fit) = least_squares(&rows, &y, None) else {
            continue;
        };
        for (row, v) in rows.iter().zip(&y) {
            let fitted = fit.beta[0] + fit.beta[1] * row[1] + fit.beta[2] * row[2];
            ss += (v - fitted).powi(2);
        }
        dof += series.len() - 3;
    }
    (dof >= 2).then(|| Noise {
        relative_sd: (ss / dof as f64).sqrt(),
        dof,
        source: "residuals of each size's loss along its budgets (log-log parabola)".into(),
    })
}

/// One draw of every run's loss with relative noise `sd`.
fn perturbed(points: &[IsoFlopPoint], sd: f64, rng: &mut impl Rng) -> Vec<IsoFlopPoint> {
    points
        .iter()
        .map(|p| IsoFlopPoint {
            loss: p.loss * (sd * crate::fit::standard_normal(rng)).exp(),
            ..*p
        })
        .collect()
}

fn law_outputs(fit: &IsoFlopFit) -> Vec<(String, f64)> {
    named(&[
        ("params_log_a", fit.params_law.log_a),
        ("params_b", fit.params_law.b),
        ("examples_log_a", fit.examples_law.log_a),
        ("examples_b", fit.examples_law.b),
    ])
}

/// Why too few budgets gave a vertex, counted by flag.
fn vertex_problems(
    e: crate::fit::FitError,
    points: &[IsoFlopPoint],
    grouping: &BudgetGrouping,
    window: ProfileWindow,
) -> String {
    let Ok(budgets) = isoflop_vertices(points, grouping, window) else {
        return e.to_string();
    };
    let mut why: BTreeMap<String, usize> = BTreeMap::new();
    for b in &budgets {
        for f in &b.flags {
            *why.entry(f.to_string()).or_default() += 1;
        }
    }
    let reasons = if why.is_empty() {
        String::new()
    } else {
        format!(
            "; the others: {}",
            why.iter()
                .map(|(k, v)| format!("{k} ({v})"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "{e}; {} of {} budgets have a valid vertex{reasons}",
        budgets.iter().filter(|b| b.is_valid()).count(),
        budgets.len(),
    )
}

/// Approach 2 on the best run of every cell, with the perturbation bootstrap.
pub(super) fn fit_isoflop_report(
    obs: &Observations,
    config: &FitConfig,
) -> Result<IsoFlopReport, String> {
    let window = ProfileWindow::default();
    let best = best_points(obs);
    let direct_ids = tolerance_ids(&best, 0.05);
    let direct_valid = isoflop_vertices(&best, &BudgetGrouping::Ids(direct_ids.clone()), window)
        .map(|v| v.iter().filter(|b| b.is_valid()).count())
        .unwrap_or(0);
    let interpolated = direct_valid < 3;
    let (points, budget_ids) = if interpolated {
        let (interp, ids) = interpolated_budgets(&best);
        if interp.is_empty() {
            return Err("no compute budget is shared by three model sizes".into());
        }
        (interp, ids)
    } else {
        (best.clone(), direct_ids)
    };
    let grouping = BudgetGrouping::Ids(budget_ids.clone());
    let fit = isoflop_vertices(&points, &grouping, window)
        .and_then(|budgets| vertex_laws(budgets, config.level))
        .map_err(|e| vertex_problems(e, &points, &grouping, window))?;
    // Either estimate will do; the parabolas' when budgets are real and have spare points.
    let noise = if interpolated {
        curve_noise(&best).or_else(|| parabola_noise(&fit))
    } else {
        parabola_noise(&fit).or_else(|| curve_noise(&best))
    };
    let samples = noise.as_ref().and_then(|noise| {
        let sd = noise.relative_sd;
        replicate(config, |rng| {
            let fit = if interpolated {
                let (p, ids) = interpolated_budgets(&perturbed(&best, sd, rng));
                let budgets = isoflop_vertices(&p, &BudgetGrouping::Ids(ids), window)?;
                vertex_laws(budgets, config.level)?
            } else {
                let budgets = isoflop_vertices(&perturbed(&points, sd, rng), &grouping, window)?;
                vertex_laws(budgets, config.level)?
            };
            Ok(law_outputs(&fit))
        })
    });
    Ok(IsoFlopReport {
        fit,
        interpolated,
        samples,
        points,
        budget_ids,
        noise,
        window: match window {
            ProfileWindow::AroundBest(w) => Some(w),
            ProfileWindow::Whole => None,
        },
    })
}
