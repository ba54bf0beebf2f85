//! The saturating compute law `L(C) = E + A·C^(−α)`, fitted as Porian et al. (2024) do: in log
//! space, `log L̂ = logaddexp(a − α·log C, e)` with `A = e^a`, `E = e^e`, least squares on the
//! log residuals from a grid of starts, choosing among the converged fits by summed Huber loss.

use serde::{Deserialize, Serialize};

use super::optim::{grid_product, minimise_all, Objective, OptimiserSettings};
use super::{check_positive, check_same_len, huber, FitError, FitResult};

/// Starting values for the saturating fit, one list per parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaturatingGrid {
    /// Starting exponents α.
    pub alpha: Vec<f64>,
    /// Starting `e = log E`.
    pub e: Vec<f64>,
    /// Starting `a = log A`.
    pub a: Vec<f64>,
}

impl Default for SaturatingGrid {
    /// Porian et al.'s grid: α ∈ {0, 0.1, 0.2, 0.3}, e ∈ {−1, −0.5, 0, 0.5, 1},
    /// a ∈ {0, 5, 10, 15, 20, 25} (120 starts).
    fn default() -> Self {
        SaturatingGrid {
            alpha: vec![0.0, 0.1, 0.2, 0.3],
            e: vec![-1.0, -0.5, 0.0, 0.5, 1.0],
            a: vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0],
        }
    }
}

/// How to fit a [`SaturatingLaw`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaturatingOptions {
    /// Starting points.
    pub grid: SaturatingGrid,
    /// δ of the Huber loss that chooses among the converged starts.
    pub huber_delta: f64,
    /// L-BFGS settings.
    pub optimiser: OptimiserSettings,
}

impl Default for SaturatingOptions {
    fn default() -> Self {
        SaturatingOptions {
            grid: SaturatingGrid::default(),
            huber_delta: 1e-3,
            optimiser: OptimiserSettings::default(),
        }
    }
}

/// A fitted `L(C) = e^e + e^a·C^(−α)`. In JSON the logs are `log_e`, `log_a`, with `E`, `A`
/// beside them (written, not read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "SaturatingLawJson", from = "SaturatingLawJson")]
pub struct SaturatingLaw {
    /// `log E`, the log of the irreducible loss.
    pub e: f64,
    /// `log A`.
    pub a: f64,
    /// The exponent α.
    pub alpha: f64,
    /// Sum of squared log residuals at the fit (what L-BFGS minimised).
    pub objective: f64,
    /// Summed Huber loss of the log residuals (what chose among the starts).
    pub huber: f64,
    /// Number of points.
    pub n: usize,
    /// Starts tried.
    pub starts: usize,
    /// Starts that converged (the candidates).
    pub converged_starts: usize,
}

/// [`SaturatingLaw`] as stored and printed; fits stored as `e`, `a` are still read.
#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct SaturatingLawJson {
    #[serde(alias = "e")]
    log_e: f64,
    #[serde(alias = "a")]
    log_a: f64,
    #[serde(default)]
    E: Option<f64>,
    #[serde(default)]
    A: Option<f64>,
    alpha: f64,
    objective: f64,
    huber: f64,
    n: usize,
    starts: usize,
    converged_starts: usize,
}

impl From<SaturatingLaw> for SaturatingLawJson {
    fn from(l: SaturatingLaw) -> Self {
        SaturatingLawJson {
            log_e: l.e,
            log_a: l.a,
            E: Some(l.e.exp()).filter(|v| v.is_finite()),
            A: Some(l.a.exp()).filter(|v| v.is_finite()),
            alpha: l.alpha,
            objective: l.objective,
            huber: l.huber,
            n: l.n,
            starts: l.starts,
            converged_starts: l.converged_starts,
        }
    }
}

impl From<SaturatingLawJson> for SaturatingLaw {
    fn from(j: SaturatingLawJson) -> Self {
        SaturatingLaw {
            e: j.log_e,
            a: j.log_a,
            alpha: j.alpha,
            objective: j.objective,
            huber: j.huber,
            n: j.n,
            starts: j.starts,
            converged_starts: j.converged_starts,
        }
    }
}

impl SaturatingLaw {
    /// The irreducible loss `E`.
    pub fn irreducible_loss(&self) -> f64 {
        self.e.exp()
    }

    /// The amplitude `A`.
    pub fn amplitude(&self) -> f64 {
        self.a.exp()
    }

    /// The fitted loss at compute `c`.
    pub fn predict(&self, c: f64) -> f64 {
        log_prediction(&[self.e, self.a, self.alpha], c.ln()).exp()
    }
}

/// `log L̂ = logaddexp(a − α·log C, e)` for parameters `[e, a, α]`.
fn log_prediction(p: &[f64], log_c: f64) -> f64 {
    log_add_exp(p[1] - p[2] * log_c, p[0])
}

fn log_add_exp(x: f64, y: f64) -> f64 {
    let m = x.max(y);
    m + ((x - m).exp() + (y - m).exp()).ln()
}

/// Sum of squared log residuals over points `(log C, log L)`; parameters `[e, a', α]` with
/// `log C` centred on its mean `c̄` (so `a' = a − α·c̄`), which decorrelates `a` and α and lets
/// L-BFGS reach the bottom of the flat valley these small fits have.
struct LogSquares {
    log_c_centred: Vec<f64>,
    log_loss: Vec<f64>,
}

impl Objective for LogSquares {
    fn cost_and_gradient(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        grad.fill(0.0);
        let mut cost = 0.0;
        for (lc, ll) in self.log_c_centred.iter().zip(&self.log_loss) {
            let s = p[1] - p[2] * lc;
            let lse = log_add_exp(s, p[0]);
            let r = ll - lse;
            cost += r * r;
            // d lse/d(s) and d lse/d(e) are the softmax weights.
            let ws = (s - lse).exp();
            let we = (p[0] - lse).exp();
            grad[0] -= 2.0 * r * we;
            grad[1] -= 2.0 * r * ws;
            grad[2] += 2.0 * r * ws * lc;
        }
        cost
    }
}

/// Fits `L = E + A·C^(−α)` to points `(compute, loss)` (both positive; at least 3 points).
pub fn fit_saturating(
    compute: &[f64],
    loss: &[f64],
    options: &SaturatingOptions,
) -> FitResult<SaturatingLaw> {
    check_same_len(
        "saturating law: compute and loss",
        compute.len(),
        loss.len(),
    )?;
    check_positive("saturating law: compute", compute)?;
    check_positive("saturating law: loss", loss)?;
    if compute.len() < 3 {
        return Err(FitError::TooFewPoints {
            what: "saturating law",
            needed: 3,
            got: compute.len(),
        });
    }
    let delta = options.huber_delta;
    if !(delta > 0.0 && delta.is_finite()) {
        return Err(FitError::InvalidArgument(format!(
            "Huber delta must be positive, got {delta}"
        )));
    }
    let log_c: Vec<f64> = compute.iter().map(|c| c.ln()).collect();
    let centre = log_c.iter().sum::<f64>() / log_c.len() as f64;
    let objective = LogSquares {
        log_c_centred: log_c.iter().map(|c| c - centre).collect(),
        log_loss: loss.iter().map(|l| l.ln()).collect(),
    };
    let g = &options.grid;
    // Grid order (α, e, a) as Porian et al.; the optimiser works on [e, a − α·c̄, α].
    let starts: Vec<Vec<f64>> = grid_product(&[&g.alpha, &g.e, &g.a])
        .into_iter()
        .map(|s| vec![s[1], s[2] - s[0] * centre, s[0]])
        .collect();
    if starts.is_empty() {
        return Err(FitError::InvalidArgument(
            "saturating law: the start grid is empty".into(),
        ));
    }
    let outcomes = minimise_all(&objective, &starts, &options.optimiser)?;
    // Back to [e, a, α].
    let uncentre = |p: &[f64]| vec![p[0], p[1] + p[2] * centre, p[2]];
    let huber_of = |p: &[f64]| -> f64 {
        log_c
            .iter()
            .zip(&objective.log_loss)
            .map(|(lc, ll)| huber(ll - log_prediction(p, *lc), delta))
            .sum()
    };
    let mut converged = 0;
    let mut best: Option<(f64, f64, Vec<f64>)> = None;
    for outcome in outcomes.into_iter().flatten().filter(|o| o.converged) {
        converged += 1;
        let params = uncentre(&outcome.params);
        let h = huber_of(&params);
        if h.is_finite() && best.as_ref().is_none_or(|(bh, _, _)| h < *bh) {
            best = Some((h, outcome.cost, params));
        }
    }
    let (huber, cost, p) = best.ok_or_else(|| {
        FitError::OptimiserFailed(format!(
            "saturating law: none of {} starts converged",
            starts.len()
        ))
    })?;
    Ok(SaturatingLaw {
        e: p[0],
        a: p[1],
        alpha: p[2],
        objective: cost,
        huber,
        n: compute.len(),
        starts: starts.len(),
        converged_starts: converged,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testutil::{log_space, normal};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn exact_saturating_law_is_recovered() {
        let (big_e, big_a, alpha) = (1.9_f64, 150.0_f64, 0.11);
        let c = log_space(1e16, 1e20, 12);
        let l: Vec<f64> = c.iter().map(|c| big_e + big_a * c.powf(-alpha)).collect();
        let law = fit_saturating(&c, &l, &SaturatingOptions::default()).unwrap();
        assert!((law.irreducible_loss() - big_e).abs() < 1e-4, "{law:?}");
        assert!((law.alpha - alpha).abs() < 1e-4, "{law:?}");
        assert!((law.amplitude() / big_a - 1.0).abs() < 1e-3, "{law:?}");
        assert!(law.objective < 1e-12);
        assert!((law.predict(3e18) - (big_e + big_a * 3e18_f64.powf(-alpha))).abs() < 1e-6);
        assert_eq!(law.starts, 120);
    }

    /// Planted law with 0.3% multiplicative noise on 16 budgets over four decades.
    #[test]
    fn noisy_saturating_law_is_recovered_within_a_few_percent() {
        let (big_e, big_a, alpha) = (1.7_f64, 400.0_f64, 0.14);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let c = log_space(1e16, 1e20, 16);
        let l: Vec<f64> = c
            .iter()
            .map(|c| (big_e + big_a * c.powf(-alpha)) * (0.003 * normal(&mut rng)).exp())
            .collect();
        let law = fit_saturating(&c, &l, &SaturatingOptions::default()).unwrap();
        assert!(
            (law.irreducible_loss() / big_e - 1.0).abs() < 0.05,
            "{law:?}"
        );
        assert!((law.alpha / alpha - 1.0).abs() < 0.1, "{law:?}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let obj = LogSquares {
            log_c_centred: vec![-1.6, -0.1, 1.4, 2.6],
            log_loss: vec![1.4, 1.3, 1.25, 1.2],
        };
        let p = [0.6, 0.2, 0.1];
        let mut g = [0.0; 3];
        obj.cost_and_gradient(&p, &mut g);
        for i in 0..3 {
            let h = 1e-6;
            let (mut up, mut dn) = (p, p);
            up[i] += h;
            dn[i] -= h;
            let mut scratch = [0.0; 3];
            let fd = (obj.cost_and_gradient(&up, &mut scratch)
                - obj.cost_and_gradient(&dn, &mut scratch))
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6 * (1.0 + g[i].abs()),
                "{i}: {fd} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn too_few_points_is_an_error() {
        assert!(matches!(
            fit_saturating(&[1e16, 1e17], &[3.0, 2.9], &SaturatingOptions::default()),
            Err(FitError::TooFewPoints { needed: 3, .. })
        ));
    }
}
