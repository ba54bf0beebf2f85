//! The compute frontier (Chinchilla approach 1, the NFNet-style envelope): from every curve
//! point of every trial, the points that lower the best loss reached so far at their compute,
//! and the power or saturating laws fitted to them.

use serde::{Deserialize, Serialize};

use super::power_law::{power_law, PowerLaw};
use super::saturating::{fit_saturating, SaturatingLaw, SaturatingOptions};
use super::{FitError, FitResult};

/// One point of a training curve: trial `trial` had spent `compute` FLOPs when it measured
/// `loss`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// The trial's id in the store.
    pub trial: i64,
    /// Training compute so far (FLOPs).
    pub compute: f64,
    /// Loss measured there.
    pub loss: f64,
}

/// The lower envelope of a set of curves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frontier {
    /// Frontier points in increasing compute (and strictly decreasing loss), each with its trial.
    pub points: Vec<CurvePoint>,
    /// Points left out because their loss was not finite (diverged runs).
    pub skipped_non_finite: usize,
}

impl Frontier {
    /// The frontier's compute values.
    pub fn compute(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.compute).collect()
    }

    /// The frontier's loss values.
    pub fn loss(&self) -> Vec<f64> {
        self.points.iter().map(|p| p.loss).collect()
    }
}

/// Which laws to fit to the frontier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrontierModel {
    /// `L = a·C^b` only.
    PowerLaw,
    /// `L = E + A·C^(−α)` only.
    Saturating,
    /// Both.
    Both,
}

/// A frontier with the laws fitted to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontierFit {
    /// The envelope itself.
    pub frontier: Frontier,
    /// `L = a·C^b` on the frontier, if asked for.
    pub power_law: Option<PowerLaw>,
    /// `L = E + A·C^(−α)` on the frontier, if asked for.
    pub saturating: Option<SaturatingLaw>,
}

/// The lower envelope: sorted by compute, the points whose loss is strictly lower than that of
/// every point at lower or equal compute. Among points at equal compute only the lowest can
/// qualify; exact ties keep the first given. Non-finite losses are skipped and counted;
/// compute must be finite and positive.
pub fn compute_frontier(points: &[CurvePoint]) -> FitResult<Frontier> {
    for (index, p) in points.iter().enumerate() {
        if !p.compute.is_finite() {
            return Err(FitError::NonFinite {
                what: "frontier: compute",
                index,
                value: p.compute,
            });
        }
        if p.compute <= 0.0 {
            return Err(FitError::NonPositive {
                what: "frontier: compute",
                index,
                value: p.compute,
            });
        }
    }
    let mut finite: Vec<CurvePoint> = points
        .iter()
        .copied()
        .filter(|p| p.loss.is_finite())
        .collect();
    let skipped_non_finite = points.len() - finite.len();
    // Stable sort: equal (compute, loss) keep their input order.
    finite.sort_by(|x, y| {
        x.compute
            .total_cmp(&y.compute)
            .then(x.loss.total_cmp(&y.loss))
    });
    let mut best = f64::INFINITY;
    let mut envelope = Vec::new();
    for p in finite {
        if p.loss < best {
            best = p.loss;
            envelope.push(p);
        }
    }
    Ok(Frontier {
        points: envelope,
        skipped_non_finite,
    })
}

/// Computes the frontier and fits the chosen laws to it (`level` for the power law's
/// intervals). The saturating law needs positive losses on the frontier.
pub fn fit_frontier(
    points: &[CurvePoint],
    model: FrontierModel,
    level: f64,
    saturating: &SaturatingOptions,
) -> FitResult<FrontierFit> {
    let frontier = compute_frontier(points)?;
    let (c, l) = (frontier.compute(), frontier.loss());
    let power = match model {
        FrontierModel::PowerLaw | FrontierModel::Both => Some(power_law(&c, &l, None, level)?),
        FrontierModel::Saturating => None,
    };
    let sat = match model {
        FrontierModel::Saturating | FrontierModel::Both => {
            Some(fit_saturating(&c, &l, saturating)?)
        }
        FrontierModel::PowerLaw => None,
    };
    Ok(FrontierFit {
        frontier,
        power_law: power,
        saturating: sat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testutil::{log_space, normal};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn pt(trial: i64, compute: f64, loss: f64) -> CurvePoint {
        CurvePoint {
            trial,
            compute,
            loss,
        }
    }

    #[test]
    fn envelope_keeps_only_strict_improvements() {
        let points = [
            pt(1, 1.0, 5.0),
            pt(2, 1.0, 4.0), // same compute, lower: this one
            pt(1, 2.0, 4.5), // worse than 4.0: dropped
            pt(2, 3.0, 4.0), // equal to best: not strict, dropped
            pt(3, 3.0, 3.5),
            pt(3, 4.0, f64::NAN), // diverged
            pt(1, 5.0, 3.0),
            pt(4, 5.0, 3.0), // exact tie, later: dropped
        ];
        let f = compute_frontier(&points).unwrap();
        assert_eq!(
            f.points,
            vec![pt(2, 1.0, 4.0), pt(3, 3.0, 3.5), pt(1, 5.0, 3.0)]
        );
        assert_eq!(f.skipped_non_finite, 1);
        assert!(compute_frontier(&[pt(1, 0.0, 1.0)]).is_err());
    }

    /// Curves of 16 trials, each touching the planted envelope `L = E + A·C^(−α)` at its own
    /// compute `cᵢ` and lying above it elsewhere (`+ κ·log²(C/cᵢ)`, sampled over `cᵢ/10 … 10·cᵢ`
    /// within 1e15 … 1e19), with 0.05% noise. The frontier agrees with a brute-force reading of
    /// the definition, leaves out most points, runs through every trial, and the saturating
    /// fit on it recovers the planted law.
    #[test]
    fn planted_envelope_recovers_the_law() {
        let (big_e, big_a, alpha) = (2.0_f64, 300.0_f64, 0.12);
        let envelope = |c: f64| big_e + big_a * c.powf(-alpha);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut points = Vec::new();
        for (trial, c_touch) in log_space(1e15, 1e19, 16).into_iter().enumerate() {
            let (lo, hi) = ((c_touch / 10.0).max(1e15), (c_touch * 10.0).min(1e19));
            for c in log_space(lo, hi, 40) {
                let excess = 0.1 * (c / c_touch).ln().powi(2);
                let noise = (0.0005 * normal(&mut rng)).exp();
                points.push(pt(trial as i64, c, (envelope(c) + excess) * noise));
            }
        }
        // Brute force: a point is on the frontier when no other point at lower or equal compute
        // has a lower or equal loss (no exact ties occur here).
        let brute: Vec<CurvePoint> = {
            let mut on: Vec<CurvePoint> = points
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    points
                        .iter()
                        .enumerate()
                        .all(|(j, q)| j == *i || q.compute > p.compute || q.loss > p.loss)
                })
                .map(|(_, p)| *p)
                .collect();
            on.sort_by(|a, b| a.compute.total_cmp(&b.compute));
            on
        };
        let fit = fit_frontier(
            &points,
            FrontierModel::Both,
            0.95,
            &SaturatingOptions::default(),
        )
        .unwrap();
        let f = &fit.frontier;
        assert_eq!(f.points, brute);
        assert!(
            f.points.len() < points.len() / 2,
            "{} of {}",
            f.points.len(),
            points.len()
        );
        assert!(f
            .points
            .windows(2)
            .all(|w| w[0].compute < w[1].compute && w[0].loss > w[1].loss));
        let trials: std::collections::BTreeSet<i64> = f.points.iter().map(|p| p.trial).collect();
        assert_eq!(trials.len(), 16, "frontier draws from {trials:?}");
        let sat = fit.saturating.unwrap();
        assert!((sat.alpha - alpha).abs() < 0.01, "{sat:?}");
        assert!((sat.irreducible_loss() - big_e).abs() < 0.05, "{sat:?}");
        let pl = fit.power_law.unwrap();
        assert!(pl.b < 0.0 && pl.n == f.points.len());
    }
}
