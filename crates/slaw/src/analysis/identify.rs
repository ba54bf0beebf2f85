//! Whether the data determine a fitted law. An optimiser always returns numbers; with one or two
//! model sizes, one budget, or a single trial they are not a law: the parametric fit returned
//! α = 1.7186 with an interval of width 0.002, left β and B at their starting values, or sent E
//! to 1.6e-31. Each check names what is missing: too few distinct sizes or budgets (or points per
//! free parameter), a sign or range constraint broken (α, β > 0, E > 0 and below the losses), a
//! value that is not finite, or a bootstrap that never moved a coefficient. A law that fails is
//! kept as [`super::laws::Method::NotIdentified`] with the reason: shown, never drawn, never used
//! for a prediction.

use std::collections::BTreeSet;

use super::laws::Samples;
use crate::fit::{ParametricLaw, ParametricPoint, SaturatingLaw};

/// Free parameters of `L(N, D) = E + A/N^α + B/D^β`.
const PARAMETRIC_FREE: usize = 5;
/// Points per free parameter a law needs at least.
const POINTS_PER_PARAMETER: usize = 2;
/// The largest plausible scaling exponent (published ones lie in 0.05–1).
const MAX_EXPONENT: f64 = 3.0;

/// Distinct values among `values` (to 6 significant digits).
pub fn distinct(values: impl Iterator<Item = f64>) -> usize {
    values
        .map(|v| format!("{v:.5e}"))
        .collect::<BTreeSet<_>>()
        .len()
}

/// A coefficient the bootstrap never moved (an interval of zero width), by name.
fn frozen(samples: Option<&Samples>) -> Option<String> {
    let s = samples?;
    if s.values.len() < 10 {
        return None;
    }
    s.intervals.iter().find_map(|(name, iv)| {
        let scale = iv.median.abs().max(1e-12);
        (iv.hi - iv.lo <= 1e-9 * scale).then(|| {
            format!(
                "the bootstrap never moved {name} from {:.6}: the data do not determine it",
                iv.median
            )
        })
    })
}

fn failed_bootstrap(samples: Option<&Samples>) -> Option<String> {
    let s = samples?;
    (s.resamples > 0 && 2 * s.failed > s.resamples).then(|| {
        format!(
            "{} of {} bootstrap refits failed: the fit does not survive resampling",
            s.failed, s.resamples
        )
    })
}

/// The parametric law `L(N, D)` fitted to `points`.
pub fn parametric(
    law: &ParametricLaw,
    points: &[ParametricPoint],
    samples: Option<&Samples>,
) -> Result<(), String> {
    let sizes = distinct(points.iter().map(|p| p.params));
    let budgets = distinct(points.iter().map(|p| p.examples));
    if sizes < 3 || budgets < 3 {
        return Err(format!(
            "{sizes} distinct model sizes and {budgets} distinct budgets: α and β each need at \
             least 3 (and E a third of either)"
        ));
    }
    let needed = PARAMETRIC_FREE * POINTS_PER_PARAMETER;
    if points.len() < needed {
        return Err(format!(
            "{} points for 5 free parameters: at least {needed} are needed",
            points.len()
        ));
    }
    let values = [
        law.e,
        law.a,
        law.b,
        law.alpha,
        law.beta,
        law.irreducible_loss(),
        law.params_exponent(),
    ];
    if values.iter().any(|v| !v.is_finite()) {
        return Err(format!(
            "a coefficient is not finite (E = {:.4e}, A = {:.4e}, B = {:.4e}, α = {}, β = {})",
            law.irreducible_loss(),
            law.amplitude_params(),
            law.amplitude_examples(),
            law.alpha,
            law.beta
        ));
    }
    for (name, v) in [("α", law.alpha), ("β", law.beta)] {
        if v <= 0.0 || v > MAX_EXPONENT {
            return Err(format!(
                "{name} = {v:.4} is outside (0, {MAX_EXPONENT}]: loss does not fall with that \
                 axis in these data, or the axis is not sampled widely enough"
            ));
        }
    }
    let min_loss = points.iter().map(|p| p.loss).fold(f64::INFINITY, f64::min);
    let e = law.irreducible_loss();
    if e < 1e-4 * min_loss {
        return Err(format!(
            "the floor E went to {e:.3e}: the data do not bound it from below (the largest \
             models and budgets are still far from it)"
        ));
    }
    if e >= min_loss {
        return Err(format!(
            "the floor E = {e:.4} is not below the lowest loss observed ({min_loss:.4})"
        ));
    }
    if let Some(why) = failed_bootstrap(samples).or_else(|| frozen(samples)) {
        return Err(why);
    }
    Ok(())
}

/// A saturating law `L(C) = E + A·C^−α` of the frontier, whose lowest loss is `min_loss`.
pub fn saturating(law: &SaturatingLaw, min_loss: f64) -> Result<(), String> {
    let e = law.irreducible_loss();
    if !(law.alpha > 0.0 && law.alpha <= MAX_EXPONENT) {
        return Err(format!(
            "α = {:.4} is outside (0, {MAX_EXPONENT}]",
            law.alpha
        ));
    }
    if !(e.is_finite() && law.amplitude().is_finite()) {
        return Err("a coefficient is not finite".into());
    }
    if e >= min_loss {
        return Err(format!(
            "the floor E = {e:.4} is not below the lowest frontier loss ({min_loss:.4})"
        ));
    }
    Ok(())
}

/// A law fitted along the frontier, whose points come from `trials` distinct trials of `sizes`
/// distinct sizes.
pub fn frontier(trials: usize, sizes: usize, samples: Option<&Samples>) -> Result<(), String> {
    if trials < 2 || sizes < 2 {
        return Err(format!(
            "the frontier runs along {trials} trial(s) of {sizes} size(s): a law of loss against \
             compute needs the curves of at least 2 model sizes (one trial's curve is its \
             learning curve, not a frontier)"
        ));
    }
    frozen(samples).map_or(Ok(()), Err)
}

/// A law of the compute-optimal size along the frontier or the IsoFLOP vertices, over `sizes`
/// distinct values of N.
pub fn allocation(sizes: usize, samples: Option<&Samples>) -> Result<(), String> {
    if sizes < 3 {
        return Err(format!(
            "{sizes} distinct compute-optimal sizes: N*(C) needs at least 3"
        ));
    }
    frozen(samples).map_or(Ok(()), Err)
}

/// A learning-rate law over cells of `sizes` distinct N and `budgets` distinct D (`budgets`:
/// `None` for the law in N alone).
pub fn lr_law(
    sizes: usize,
    budgets: Option<usize>,
    samples: Option<&Samples>,
) -> Result<(), String> {
    if sizes < 3 {
        return Err(format!(
            "the cells with an interior optimum span {sizes} model size(s): the exponent of N \
             needs at least 3"
        ));
    }
    if let Some(b) = budgets.filter(|b| *b < 2) {
        return Err(format!(
            "the cells with an interior optimum span {b} budget: the exponent of D needs at \
             least 2"
        ));
    }
    frozen(samples).map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn law(alpha: f64, beta: f64, e: f64) -> ParametricLaw {
        ParametricLaw {
            e: e.ln(),
            a: 400f64.ln(),
            b: 400f64.ln(),
            alpha,
            beta,
            objective: 0.0,
            n: 0,
            starts: 1,
            converged_starts: 1,
        }
    }

    fn grid(sizes: usize, budgets: usize) -> Vec<ParametricPoint> {
        let mut out = Vec::new();
        for i in 0..sizes {
            for j in 0..budgets {
                out.push(ParametricPoint {
                    params: 1e6 * 2f64.powi(i as i32),
                    examples: 1e8 * 2f64.powi(j as i32),
                    loss: 3.0,
                });
            }
        }
        out
    }

    #[test]
    fn too_few_sizes_or_budgets_are_not_identified() {
        let l = law(0.3, 0.3, 1.7);
        assert!(parametric(&l, &grid(4, 4), None).is_ok());
        let e = parametric(&l, &grid(2, 8), None).unwrap_err();
        assert!(e.contains("2 distinct model sizes"), "{e}");
        let e = parametric(&l, &grid(8, 1), None).unwrap_err();
        assert!(e.contains("1 distinct budgets"), "{e}");
        let e = parametric(&l, &grid(3, 3), None).unwrap_err();
        assert!(e.contains("9 points for 5 free parameters"), "{e}");
    }

    #[test]
    fn signs_ranges_and_floors_are_checked() {
        let pts = grid(4, 4);
        assert!(parametric(&law(-0.2, 0.3, 1.7), &pts, None)
            .unwrap_err()
            .contains("α = -0.2000"));
        assert!(parametric(&law(0.3, 4.0, 1.7), &pts, None)
            .unwrap_err()
            .contains("β = 4.0000"));
        assert!(parametric(&law(0.3, 0.3, 1.6e-31), &pts, None)
            .unwrap_err()
            .contains("floor E went to"));
        assert!(parametric(&law(0.3, 0.3, 3.5), &pts, None)
            .unwrap_err()
            .contains("not below the lowest loss"));
        assert!(parametric(&law(0.3, f64::NAN, 1.7), &pts, None)
            .unwrap_err()
            .contains("not finite"));
    }

    #[test]
    fn a_coefficient_the_bootstrap_never_moves_is_not_identified() {
        use crate::fit::BootstrapInterval;
        let iv = |lo: f64, hi: f64| BootstrapInterval {
            lo,
            hi,
            median: (lo + hi) / 2.0,
            std_error: 0.0,
        };
        let samples = Samples {
            names: vec!["alpha".into(), "beta".into()],
            values: vec![vec![0.3, 0.28]; 50],
            resamples: 50,
            failed: 0,
            seed: 0,
            level: 0.95,
            intervals: [
                ("alpha".to_string(), iv(0.25, 0.35)),
                ("beta".to_string(), iv(0.28, 0.28)),
            ]
            .into_iter()
            .collect(),
        };
        let e = parametric(&law(0.3, 0.28, 1.7), &grid(4, 4), Some(&samples)).unwrap_err();
        assert!(e.contains("never moved beta"), "{e}");
    }

    #[test]
    fn one_trial_is_not_a_frontier() {
        assert!(frontier(1, 1, None)
            .unwrap_err()
            .contains("1 trial(s) of 1 size(s)"));
        assert!(frontier(5, 3, None).is_ok());
        assert!(allocation(2, None).is_err());
        assert!(lr_law(2, None, None).is_err());
        assert!(lr_law(3, Some(1), None).is_err());
        assert!(lr_law(3, Some(2), None).is_ok());
    }
}
