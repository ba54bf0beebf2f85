//! Chinchilla's approach 1 on observations: the frontier of every trial's curve, its loss laws
//! and the compute-optimal size and data along it, with bootstrap intervals.
//!
//! The loss laws are bootstrapped over trials. N*(C) and D*(C) read the size of the trial that
//! holds the frontier, which moves in steps of the sweep's size grid, so their bootstrap also
//! draws where between its grid neighbours each size's optimum really lies (uniform over half
//! the log spacing on each side); a t-interval over frontier points (many points per trial,
//! far from independent) claimed a precision the data do not have.

use super::identify;
use super::laws::{named, resample, FitConfig, Method, Samples};
use super::observations::{Observations, Run};
use crate::fit::{
    compute_frontier, fit_frontier, fit_saturating, power_law, CurvePoint, FrontierFit,
    FrontierModel, PowerLaw, SaturatingGrid, SaturatingOptions,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
/// The frontier, its laws and the compute-optimal size along it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontierReport {
    /// The envelope with `L = a·C^b` and `L = E + A·C^(−α)` fitted to it.
    pub fit: FrontierFit,
    /// Bootstrap samples of the power law (`log_a`, `b`), resampling trials.
    pub power_samples: Option<Samples>,
    /// Bootstrap samples of the saturating law (`log_e`, `log_a`, `alpha`).
    pub saturating_samples: Option<Samples>,
    /// N of the trial on the frontier against C: N*(C) = a·C^b.
    pub params_law: Method<PowerLaw>,
    /// Examples seen at the frontier point against C: D*(C) = a·C^b.
    pub examples_law: Method<PowerLaw>,
    /// Trials whose curves were used.
    pub trials: usize,
    /// Trial keys of the frontier points, in order.
    pub frontier_trials: Vec<String>,
    /// Distinct model sizes among the frontier's trials.
    #[serde(default)]
    pub frontier_sizes: usize,
    /// Why the saturating law was left out, when it was fitted but not identified.
    #[serde(default)]
    pub saturating_note: Option<String>,
    /// Bootstrap samples of N*(C) and D*(C) (`params_log_a`, `params_b`, `examples_log_a`,
    /// `examples_b`): trials resampled, each size placed anywhere within half the grid spacing.
    #[serde(default)]
    pub allocation_samples: Option<Samples>,
}

fn curve_points(runs: &[&Run]) -> Vec<CurvePoint> {
    runs.iter()
        .enumerate()
        .flat_map(|(i, r)| {
            r.curve.iter().map(move |&(c, l)| CurvePoint {
                trial: i as i64,
                compute: c,
                loss: l,
            })
        })
        .collect()
}

pub(super) fn fit_frontier_report(
    obs: &Observations,
    config: &FitConfig,
) -> Result<FrontierReport, String> {
    let runs: Vec<&Run> = obs
        .runs
        .iter()
        .filter(|r| r.loss.is_some() && !r.curve.is_empty())
        .collect();
    let points = curve_points(&runs);
    let fit = fit_frontier(
        &points,
        FrontierModel::Both,
        config.level,
        &SaturatingOptions::default(),
    )
    .or_else(|_| {
        // Too few frontier points for the saturating law: keep the power law.
        fit_frontier(
            &points,
            FrontierModel::PowerLaw,
            config.level,
            &SaturatingOptions::default(),
        )
    })
    .map_err(|e| e.to_string())?;
    let front = fit.frontier.points.clone();
    let compute: Vec<f64> = front.iter().map(|p| p.compute).collect();
    let params: Vec<f64> = front
        .iter()
        .map(|p| runs[p.trial as usize].params)
        .collect();
    let examples: Vec<f64> = front
        .iter()
        .map(|p| {
            let r = runs[p.trial as usize];
            p.compute * r.examples / r.flops
        })
        .collect();
    // Weighted least squares when the runs carry weights (an imported `weight=` column).
    let weights: Option<Vec<f64>> = front
        .iter()
        .any(|p| runs[p.trial as usize].weight.is_some())
        .then(|| {
            front
                .iter()
                .map(|p| runs[p.trial as usize].weight.unwrap_or(1.0))
                .collect()
        });
    let weights = weights.as_deref();
    let params_law = Method::from(
        power_law(&compute, &params, weights, config.level).map_err(|e| e.to_string()),
    );
    let examples_law = Method::from(
        power_law(&compute, &examples, weights, config.level).map_err(|e| e.to_string()),
    );

    let power_samples = fit.power_law.as_ref().and_then(|_| {
        resample(runs.len(), config, |idx| {
            let chosen: Vec<&Run> = idx.iter().map(|&i| runs[i]).collect();
            let f = compute_frontier(&curve_points(&chosen))?;
            let law = power_law(&f.compute(), &f.loss(), None, config.level)?;
            Ok(named(&[("log_a", law.log_a), ("b", law.b)]))
        })
    });
    let saturating_samples = fit.saturating.as_ref().and_then(|sat| {
        let options = SaturatingOptions {
            grid: SaturatingGrid {
                alpha: vec![sat.alpha],
                e: vec![sat.e],
                a: vec![sat.a],
            },
            ..SaturatingOptions::default()
        };
        resample(runs.len(), config, |idx| {
            let chosen: Vec<&Run> = idx.iter().map(|&i| runs[i]).collect();
            let f = compute_frontier(&curve_points(&chosen))?;
            let law = fit_saturating(&f.compute(), &f.loss(), &options)?;
            Ok(named(&[
                ("log_e", law.e),
                ("log_a", law.a),
                ("alpha", law.alpha),
            ]))
        })
    });
    let frontier_trials: Vec<String> = front
        .iter()
        .map(|p| runs[p.trial as usize].id.clone())
        .collect();
    let frontier_sizes = identify::distinct(front.iter().map(|p| runs[p.trial as usize].params));
    let mut fit = fit;
    let mut saturating_samples = saturating_samples;
    let mut saturating_note = None;
    let min_loss = front.iter().map(|p| p.loss).fold(f64::INFINITY, f64::min);
    if let Some(Err(why)) = fit
        .saturating
        .as_ref()
        .map(|s| identify::saturating(s, min_loss))
    {
        saturating_note = Some(format!("the saturating law is not identified: {why}"));
        fit.saturating = None;
        saturating_samples = None;
    }
    let allocation_samples = allocation_samples(&runs, config);
    let params_law = params_law.identified(|_| identify::allocation(frontier_sizes, None));
    let examples_law = examples_law.identified(|_| identify::allocation(frontier_sizes, None));
    Ok(FrontierReport {
        fit,
        power_samples,
        saturating_samples,
        params_law,
        examples_law,
        trials: runs.len(),
        frontier_trials,
        frontier_sizes,
        saturating_note,
        allocation_samples,
    })
}

/// For each distinct size, half the ln distance to its smaller and larger neighbour (an edge
/// size uses its one neighbour on both sides).
fn half_steps(runs: &[&Run]) -> Vec<(f64, f64, f64)> {
    let mut sizes: Vec<f64> = runs.iter().map(|r| r.params).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let gap = |i: usize, j: usize| (sizes[j].ln() - sizes[i].ln()).abs() / 2.0;
    (0..sizes.len())
        .map(|i| {
            let below = (i > 0).then(|| gap(i - 1, i));
            let above = (i + 1 < sizes.len()).then(|| gap(i, i + 1));
            let below = below.or(above).unwrap_or(0.0);
            let above = above.unwrap_or(below);
            (sizes[i], below, above)
        })
        .collect()
}

/// The bootstrap of N*(C) and D*(C): trials drawn with replacement, the frontier recomputed,
/// and each size moved to a uniform point between the midpoints to its grid neighbours (in
/// ln N) before the power laws are refitted; D moves the other way at the same compute.
fn allocation_samples(runs: &[&Run], config: &FitConfig) -> Option<Samples> {
    let steps = half_steps(runs);
    let weighted = runs.iter().any(|r| r.weight.is_some());
    super::laws::replicate(config, |rng| {
        let chosen: Vec<&Run> = (0..runs.len())
            .map(|_| runs[rng.random_range(0..runs.len())])
            .collect();
        let shift: Vec<(f64, f64)> = steps
            .iter()
            .map(|&(n, below, above)| {
                let u: f64 = rng.random_range(-1.0..1.0);
                (n, if u < 0.0 { u * below } else { u * above })
            })
            .collect();
        let front = compute_frontier(&curve_points(&chosen))?;
        let (mut c, mut n, mut d, mut w) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in &front.points {
            let r = chosen[p.trial as usize];
            let ln_shift = shift
                .iter()
                .find(|(size, _)| *size == r.params)
                .map_or(0.0, |s| s.1);
            c.push(p.compute);
            n.push(r.params * ln_shift.exp());
            d.push(p.compute * r.examples / r.flops / ln_shift.exp());
            w.push(r.weight.unwrap_or(1.0));
        }
        let weights = weighted.then_some(w.as_slice());
        let pn = power_law(&c, &n, weights, config.level)?;
        let pd = power_law(&c, &d, weights, config.level)?;
        Ok(named(&[
            ("params_log_a", pn.log_a),
            ("params_b", pn.b),
            ("examples_log_a", pd.log_a),
            ("examples_b", pd.b),
        ]))
    })
}
