//! Optimal learning rates. Per cell of a sweep (one size × one budget): the best tried rate and
//! a continuous optimum from a parabola in log₂(lr) through it and its grid neighbours, with
//! flags when the grid does not bracket the optimum. Across cells: laws of the optimum against
//! size (MM1's `log η* = c0 + c1·log N`) and against size and budget (NFNet / Step Law's
//! `log η* = c0 + c1·log N + c2·log D`).

use serde::{Deserialize, Serialize};

use super::ols::{ols, LinearFit};
use super::{check_positive, FitError, FitResult};

/// One run of a cell: its learning rate and final loss, `None` if it diverged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrTrial {
    /// Learning rate (positive).
    pub lr: f64,
    /// Final loss; `None` (or a non-finite value) means diverged, which counts as worse than
    /// any finite loss: too high a rate, never a missing value.
    pub loss: Option<f64>,
}

/// Caveats on a cell's optimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CellFlag {
    /// The best rate is the smallest tried: the optimum may be lower.
    OnLowEdge,
    /// The best rate is the largest tried: the optimum may be higher.
    OnHighEdge,
    /// Fewer than three finite losses in the cell, or a neighbour of the best diverged: no
    /// parabola, the optimum is the best rate tried.
    FewerThanThreeFinite,
    /// The three points do not make a convex parabola: the optimum is the best rate tried.
    /// Because the best point is the first minimum, its left neighbour is strictly worse and
    /// the parabola is convex in exact arithmetic; this guards against rounding.
    NotConvex,
}

/// The optimum of one cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellOptimum {
    /// Best learning rate tried.
    pub best_lr: f64,
    /// Its loss.
    pub best_loss: f64,
    /// Continuous optimum: the parabola's vertex, clamped to the neighbours' range; the best
    /// rate tried when a flag prevents the parabola.
    pub lr_star: f64,
    /// The parabola's loss at `lr_star` (or `best_loss`).
    pub loss_star: f64,
    /// Caveats; empty when the grid brackets the optimum with three finite points.
    pub flags: Vec<CellFlag>,
}

/// Finds the optimal learning rate of a cell. Rates must be positive, finite and distinct.
pub fn cell_optimum(trials: &[LrTrial]) -> FitResult<CellOptimum> {
    let lrs: Vec<f64> = trials.iter().map(|t| t.lr).collect();
    check_positive("lr cell: learning rates", &lrs)?;
    let mut sorted: Vec<(f64, Option<f64>)> = trials
        .iter()
        .map(|t| (t.lr, t.loss.filter(|l| l.is_finite())))
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some(w) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(FitError::InvalidArgument(format!(
            "lr cell: learning rate {} appears twice (aggregate seeds first)",
            w[0].0
        )));
    }
    let finite = sorted.iter().filter(|t| t.1.is_some()).count();
    let (best, best_loss) = sorted
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.1.map(|l| (i, l)))
        .fold(None, |acc: Option<(usize, f64)>, (i, l)| match acc {
            Some((_, bl)) if bl <= l => acc,
            _ => Some((i, l)),
        })
        .ok_or(FitError::TooFewPoints {
            what: "lr cell: finite losses",
            needed: 1,
            got: 0,
        })?;
    let best_lr = sorted[best].0;
    let mut flags = Vec::new();
    if finite < 3 {
        flags.push(CellFlag::FewerThanThreeFinite);
    }
    if best == 0 {
        flags.push(CellFlag::OnLowEdge);
    }
    if best + 1 == sorted.len() {
        flags.push(CellFlag::OnHighEdge);
    }
    let at_best = |flags: Vec<CellFlag>| CellOptimum {
        best_lr,
        best_loss,
        lr_star: best_lr,
        loss_star: best_loss,
        flags,
    };
    if best == 0 || best + 1 == sorted.len() {
        return Ok(at_best(flags));
    }
    let (Some(y0), Some(y2)) = (sorted[best - 1].1, sorted[best + 1].1) else {
        if !flags.contains(&CellFlag::FewerThanThreeFinite) {
            flags.push(CellFlag::FewerThanThreeFinite);
        }
        return Ok(at_best(flags));
    };
    // Parabola y = y1 + b·(u − u1) + a·(u − u1)² in u = log₂ lr.
    let (u0, u1, u2) = (
        sorted[best - 1].0.log2(),
        best_lr.log2(),
        sorted[best + 1].0.log2(),
    );
    let y1 = best_loss;
    let (d0, d2) = (u0 - u1, u2 - u1);
    let a = ((y2 - y1) / d2 - (y1 - y0) / (-d0)) / (u2 - u0);
    if a <= 0.0 {
        flags.push(CellFlag::NotConvex);
        return Ok(at_best(flags));
    }
    let b = (y2 - y1) / d2 - a * d2;
    let u_star = (u1 - b / (2.0 * a)).clamp(u0, u2);
    let du = u_star - u1;
    Ok(CellOptimum {
        best_lr,
        best_loss,
        lr_star: u_star.exp2(),
        loss_star: y1 + b * du + a * du * du,
        flags,
    })
}

/// One cell's optimum for the laws: model size, budget (examples or tokens), optimal rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrPoint {
    /// N.
    pub params: f64,
    /// D, the training budget; used only by [`fit_lr_params_budget_law`].
    pub budget: f64,
    /// η*, e.g. a [`CellOptimum::lr_star`].
    pub lr: f64,
}

/// `log η* = c0 + c1·log N` (MM1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrParamsLaw {
    /// The regression on `[1, log N]`.
    pub fit: LinearFit,
}

impl LrParamsLaw {
    /// Intercept `c0`.
    pub fn c0(&self) -> f64 {
        self.fit.coefficients[0]
    }

    /// Exponent of N, `c1`.
    pub fn c1(&self) -> f64 {
        self.fit.coefficients[1]
    }

    /// Predicted optimal rate for a model of `params` parameters.
    pub fn predict(&self, params: f64) -> f64 {
        self.fit.predict(&[1.0, params.ln()]).exp()
    }

    /// Confidence interval of the predicted (mean) optimal rate.
    pub fn predict_interval(&self, params: f64) -> (f64, f64) {
        let (lo, hi) = self.fit.confidence_interval(&[1.0, params.ln()]);
        (lo.exp(), hi.exp())
    }

    /// Prediction interval of a new cell's optimum (adds the residual scatter).
    pub fn prediction_interval(&self, params: f64) -> (f64, f64) {
        let (lo, hi) = self.fit.prediction_interval(&[1.0, params.ln()]);
        (lo.exp(), hi.exp())
    }
}

/// `log η* = c0 + c1·log N + c2·log D` (NFNet / Step Law form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrParamsBudgetLaw {
    /// The regression on `[1, log N, log D]`.
    pub fit: LinearFit,
}

impl LrParamsBudgetLaw {
    /// Intercept `c0`.
    pub fn c0(&self) -> f64 {
        self.fit.coefficients[0]
    }

    /// Exponent of N, `c1`.
    pub fn c1(&self) -> f64 {
        self.fit.coefficients[1]
    }

    /// Exponent of the budget, `c2`.
    pub fn c2(&self) -> f64 {
        self.fit.coefficients[2]
    }

    /// Predicted optimal rate for `params` parameters trained on `budget`.
    pub fn predict(&self, params: f64, budget: f64) -> f64 {
        self.fit.predict(&[1.0, params.ln(), budget.ln()]).exp()
    }

    /// Confidence interval of the predicted (mean) optimal rate.
    pub fn predict_interval(&self, params: f64, budget: f64) -> (f64, f64) {
        let (lo, hi) = self
            .fit
            .confidence_interval(&[1.0, params.ln(), budget.ln()]);
        (lo.exp(), hi.exp())
    }

    /// Prediction interval of a new cell's optimum.
    pub fn prediction_interval(&self, params: f64, budget: f64) -> (f64, f64) {
        let (lo, hi) = self
            .fit
            .prediction_interval(&[1.0, params.ln(), budget.ln()]);
        (lo.exp(), hi.exp())
    }
}

/// Fits `log η* = c0 + c1·log N` by OLS with intervals at `level` (at least 3 cells).
pub fn fit_lr_params_law(points: &[LrPoint], level: f64) -> FitResult<LrParamsLaw> {
    let n: Vec<f64> = points.iter().map(|p| p.params).collect();
    let lr: Vec<f64> = points.iter().map(|p| p.lr).collect();
    check_positive("lr law: params", &n)?;
    check_positive("lr law: lr", &lr)?;
    let rows: Vec<[f64; 2]> = n.iter().map(|v| [1.0, v.ln()]).collect();
    let y: Vec<f64> = lr.iter().map(|v| v.ln()).collect();
    Ok(LrParamsLaw {
        fit: ols(&rows, &y, level)?,
    })
}

/// Fits `log η* = c0 + c1·log N + c2·log D` by OLS with intervals at `level` (at least 4 cells,
/// with sizes and budgets not collinear).
pub fn fit_lr_params_budget_law(points: &[LrPoint], level: f64) -> FitResult<LrParamsBudgetLaw> {
    let n: Vec<f64> = points.iter().map(|p| p.params).collect();
    let d: Vec<f64> = points.iter().map(|p| p.budget).collect();
    let lr: Vec<f64> = points.iter().map(|p| p.lr).collect();
    check_positive("lr law: params", &n)?;
    check_positive("lr law: budget", &d)?;
    check_positive("lr law: lr", &lr)?;
    let rows: Vec<[f64; 3]> = n
        .iter()
        .zip(&d)
        .map(|(n, d)| [1.0, n.ln(), d.ln()])
        .collect();
    let y: Vec<f64> = lr.iter().map(|v| v.ln()).collect();
    Ok(LrParamsBudgetLaw {
        fit: ols(&rows, &y, level)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testutil::normal;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn cell(lrs: &[f64], loss: impl Fn(f64) -> Option<f64>) -> Vec<LrTrial> {
        lrs.iter()
            .map(|&lr| LrTrial { lr, loss: loss(lr) })
            .collect()
    }

    /// Half-octave grid 2^-18 … 2^-6.
    fn grid() -> Vec<f64> {
        (0..=24).map(|i| (-18.0 + 0.5 * i as f64).exp2()).collect()
    }

    #[test]
    fn vertex_of_a_planted_parabola_is_recovered_exactly() {
        // loss = 2.5 + 0.08·(log₂ lr − log₂ 3e-3)², unevenly spaced grid, shuffled.
        let star = 3e-3_f64;
        let lrs = [1e-2, 1e-4, 4e-3, 2.5e-3, 1e-3, 3e-4];
        let trials = cell(&lrs, |lr| {
            Some(2.5 + 0.08 * (lr.log2() - star.log2()).powi(2))
        });
        let opt = cell_optimum(&trials).unwrap();
        assert_eq!(opt.best_lr, 2.5e-3);
        assert!((opt.lr_star / star - 1.0).abs() < 1e-12, "{opt:?}");
        assert!((opt.loss_star - 2.5).abs() < 1e-12);
        assert!(opt.flags.is_empty());
    }

    #[test]
    fn optimum_on_the_grid_edge_is_flagged_and_not_extrapolated() {
        let g = grid();
        // True optimum above the largest rate tried.
        let high = cell(&g, |lr| Some(3.0 + 0.1 * (lr.log2() - (-2.0)).powi(2)));
        let opt = cell_optimum(&high).unwrap();
        assert_eq!(opt.flags, vec![CellFlag::OnHighEdge]);
        assert_eq!((opt.lr_star, opt.best_lr), (2f64.powi(-6), 2f64.powi(-6)));
        // True optimum below the smallest rate tried.
        let low = cell(&g, |lr| Some(3.0 + 0.1 * (lr.log2() - (-20.0)).powi(2)));
        let opt = cell_optimum(&low).unwrap();
        assert_eq!(opt.flags, vec![CellFlag::OnLowEdge]);
        assert_eq!(opt.lr_star, 2f64.powi(-18));
    }

    #[test]
    fn divergence_counts_as_too_high() {
        let g = grid();
        // Everything above 2^-8 diverges; the loss falls until then: the best finite point is
        // the last before divergence, whose upper neighbour diverged.
        let trials = cell(&g, |lr| {
            (lr <= 2f64.powi(-8)).then(|| 3.0 - 0.01 * lr.log2().abs().recip())
        });
        let opt = cell_optimum(&trials).unwrap();
        assert_eq!(opt.best_lr, 2f64.powi(-8));
        assert_eq!(opt.lr_star, opt.best_lr);
        assert_eq!(opt.flags, vec![CellFlag::FewerThanThreeFinite]);
        // A NaN loss is a divergence too, and so is +inf.
        let trials = vec![
            LrTrial {
                lr: 1e-3,
                loss: Some(3.0),
            },
            LrTrial {
                lr: 2e-3,
                loss: Some(2.9),
            },
            LrTrial {
                lr: 4e-3,
                loss: Some(f64::NAN),
            },
            LrTrial {
                lr: 8e-3,
                loss: Some(f64::INFINITY),
            },
        ];
        let opt = cell_optimum(&trials).unwrap();
        assert_eq!(opt.best_lr, 2e-3);
        assert_eq!(opt.flags, vec![CellFlag::FewerThanThreeFinite]);
    }

    #[test]
    fn degenerate_cells() {
        let all_diverged = cell(&[1e-3, 1e-2], |_| None);
        assert!(matches!(
            cell_optimum(&all_diverged),
            Err(FitError::TooFewPoints { got: 0, .. })
        ));
        let dup = cell(&[1e-3, 1e-3, 1e-2], |_| Some(1.0));
        assert!(matches!(
            cell_optimum(&dup),
            Err(FitError::InvalidArgument(_))
        ));
        let flat = cell(&[1e-3, 2e-3, 4e-3], |_| Some(2.0));
        let opt = cell_optimum(&flat).unwrap();
        // Ties keep the smallest rate, which is then on the low edge.
        assert_eq!(opt.flags, vec![CellFlag::OnLowEdge]);
        // Ties after a higher point: the first minimum is the best, the vertex lies towards
        // the flat side, inside the neighbours' range.
        let flat = cell(&[1e-3, 2e-3, 4e-3, 8e-3], |lr| {
            Some(if lr < 1.5e-3 { 2.1 } else { 2.0 })
        });
        let opt = cell_optimum(&flat).unwrap();
        assert_eq!(opt.best_lr, 2e-3);
        assert!(opt.flags.is_empty());
        assert!(
            (opt.lr_star / (2e-3 * 2f64.sqrt()) - 1.0).abs() < 1e-12,
            "{opt:?}"
        );
        assert!(opt.loss_star < 2.0);
        let single = cell(&[1e-3], |_| Some(2.0));
        assert_eq!(
            cell_optimum(&single).unwrap().flags,
            vec![
                CellFlag::FewerThanThreeFinite,
                CellFlag::OnLowEdge,
                CellFlag::OnHighEdge
            ]
        );
    }

    /// MM1's published law `η*(N) = exp(−0.4214·ln N − 0.5535)` planted end to end: each cell
    /// (7 sizes × 3 seeds) has a parabolic loss in log₂ lr around a noisy optimum (σ = 0.15 in
    /// ln η*), runs above 4·η* diverge; the cells' vertices feed the law, which recovers c1.
    #[test]
    fn mm1_law_is_recovered_from_cell_optima() {
        let (c1, c0) = (-0.4214_f64, -0.5535_f64);
        let sizes = [9e6, 30e6, 85e6, 302e6, 1.2e9, 2.9e9, 6.4e9];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut optima = Vec::new();
        for &n in &sizes {
            for _seed in 0..3 {
                let star = (c0 + c1 * f64::ln(n) + 0.15 * normal(&mut rng)).exp();
                let trials = cell(&grid(), |lr| {
                    (lr < 4.0 * star).then(|| 2.0 + 0.05 * (lr.log2() - star.log2()).powi(2))
                });
                let opt = cell_optimum(&trials).unwrap();
                assert!(opt.flags.is_empty(), "{opt:?}");
                assert!((opt.lr_star / star - 1.0).abs() < 1e-9);
                optima.push(LrPoint {
                    params: n,
                    budget: 1.0,
                    lr: opt.lr_star,
                });
            }
        }
        let law = fit_lr_params_law(&optima, 0.95).unwrap();
        let (lo, hi) = law.fit.conf_intervals[1];
        assert!(lo < c1 && c1 < hi, "{law:?}");
        assert!((law.c1() - c1).abs() < 0.05, "{law:?}");
        let truth = |n: f64| (c0 + c1 * n.ln()).exp();
        let (plo, phi) = law.predict_interval(1e9);
        assert!(plo < truth(1e9) && truth(1e9) < phi, "{plo} {phi}");
        let (qlo, qhi) = law.prediction_interval(1e9);
        assert!(qlo < plo && phi < qhi);
        assert!((law.predict(1e9).ln() - truth(1e9).ln()).abs() < 0.15);
    }

    /// Step Law's `η* = 1.79·N^−0.713·D^0.307` planted on a 5 × 4 (N, D) grid with σ = 0.1 noise.
    #[test]
    fn step_law_is_recovered_with_both_predictors() {
        let (c0, c1, c2) = (1.79_f64.ln(), -0.713, 0.307);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut points = Vec::new();
        for n in [6e7, 2e8, 5e8, 1e9, 3e9] {
            for d in [2e10, 8e10, 2e11, 8e11] {
                let lr = (c0 + c1 * f64::ln(n) + c2 * f64::ln(d) + 0.1 * normal(&mut rng)).exp();
                points.push(LrPoint {
                    params: n,
                    budget: d,
                    lr,
                });
            }
        }
        let law = fit_lr_params_budget_law(&points, 0.95).unwrap();
        for (i, truth) in [c0, c1, c2].into_iter().enumerate() {
            let (lo, hi) = law.fit.conf_intervals[i];
            assert!(lo < truth && truth < hi, "coefficient {i}: {law:?}");
        }
        assert!(
            (law.c1() - c1).abs() < 0.1 && (law.c2() - c2).abs() < 0.1,
            "{law:?}"
        );
        let (lo, hi) = law.predict_interval(1e9, 1e11);
        let p = law.predict(1e9, 1e11);
        assert!(lo < p && p < hi);
        assert!(law.c0().is_finite());
        // A single budget makes log D collinear with the intercept.
        let same_budget: Vec<LrPoint> = points
            .iter()
            .map(|p| LrPoint { budget: 1e11, ..*p })
            .collect();
        assert!(matches!(
            fit_lr_params_budget_law(&same_budget, 0.95),
            Err(FitError::RankDeficient(_))
        ));
    }
}
