//! Ordinary and weighted linear least squares `y = X·β` for small dense problems (a handful of
//! columns), solved by Householder QR, with standard errors, R² and Student-t intervals.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{check_finite, check_level, check_positive, check_same_len, FitError, FitResult};

/// A fitted linear model with its uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    /// β, one per column of the design matrix.
    pub coefficients: Vec<f64>,
    /// Standard error of each coefficient.
    pub std_errors: Vec<f64>,
    /// Two-sided confidence interval of each coefficient at `level`.
    pub conf_intervals: Vec<(f64, f64)>,
    /// Covariance matrix of β, `σ²·(XᵀWX)⁻¹`, row-major.
    pub covariance: Vec<Vec<f64>>,
    /// σ²: the (weighted) residual sum of squares over `n − p`.
    pub residual_variance: f64,
    /// Coefficient of determination about the (weighted) mean of y; 1 when y is constant and
    /// fitted exactly. Meaningful for designs with an intercept column.
    pub r2: f64,
    /// Number of observations.
    pub n: usize,
    /// Residual degrees of freedom, `n − p`.
    pub dof: usize,
    /// Confidence level of the intervals, e.g. 0.95.
    pub level: f64,
    /// The Student-t quantile with `dof` degrees of freedom used for the intervals.
    pub t_quantile: f64,
}

impl LinearFit {
    /// The fitted mean `x·β` at a row of predictors (same columns as the design).
    pub fn predict(&self, x: &[f64]) -> f64 {
        x.iter().zip(&self.coefficients).map(|(a, b)| a * b).sum()
    }

    /// Standard error of the fitted mean at `x`: `sqrt(xᵀ·Cov·x)`.
    pub fn mean_std_error(&self, x: &[f64]) -> f64 {
        let var: f64 = x
            .iter()
            .zip(&self.covariance)
            .map(|(xi, row)| xi * x.iter().zip(row).map(|(xj, c)| c * xj).sum::<f64>())
            .sum();
        var.max(0.0).sqrt()
    }

    /// Confidence interval of the fitted mean at `x`.
    pub fn confidence_interval(&self, x: &[f64]) -> (f64, f64) {
        let mean = self.predict(x);
        let half = self.t_quantile * self.mean_std_error(x);
        (mean - half, mean + half)
    }

    /// Prediction interval of a new (unit-weight) observation at `x`: the mean's variance plus σ².
    pub fn prediction_interval(&self, x: &[f64]) -> (f64, f64) {
        let mean = self.predict(x);
        let se = self.mean_std_error(x);
        let half = self.t_quantile * (se * se + self.residual_variance).sqrt();
        (mean - half, mean + half)
    }
}

/// Ordinary least squares of `y` on the rows of `x` (include a column of ones for an intercept),
/// with intervals at `level` from the t distribution with `n − p` degrees of freedom.
pub fn ols<R: AsRef<[f64]>>(x: &[R], y: &[f64], level: f64) -> FitResult<LinearFit> {
    fit_linear(x, y, None, level)
}

/// Weighted least squares: minimises `Σ wᵢ·(yᵢ − xᵢ·β)²`. Weights must be positive; only their
/// ratios matter for β (e.g. inverse variances). σ² is the weighted residual variance.
pub fn wls<R: AsRef<[f64]>>(
    x: &[R],
    y: &[f64],
    weights: &[f64],
    level: f64,
) -> FitResult<LinearFit> {
    fit_linear(x, y, Some(weights), level)
}

fn fit_linear<R: AsRef<[f64]>>(
    x: &[R],
    y: &[f64],
    weights: Option<&[f64]>,
    level: f64,
) -> FitResult<LinearFit> {
    check_level(level)?;
    let solved = least_squares(x, y, weights)?;
    let n = y.len();
    let p = solved.beta.len();
    if n <= p {
        return Err(FitError::TooFewPoints {
            what: "least squares with intervals",
            needed: p + 1,
            got: n,
        });
    }
    let dof = n - p;
    let residual_variance = solved.weighted_rss / dof as f64;
    let covariance: Vec<Vec<f64>> = solved
        .xtwx_inv
        .iter()
        .map(|row| row.iter().map(|v| v * residual_variance).collect())
        .collect();
    let std_errors: Vec<f64> = (0..p).map(|i| covariance[i][i].max(0.0).sqrt()).collect();
    let t_quantile = student_t_quantile(dof, level)?;
    let conf_intervals = solved
        .beta
        .iter()
        .zip(&std_errors)
        .map(|(b, se)| (b - t_quantile * se, b + t_quantile * se))
        .collect();

    let w = |i: usize| weights.map_or(1.0, |w| w[i]);
    let w_sum: f64 = (0..n).map(w).sum();
    let y_mean = (0..n).map(|i| w(i) * y[i]).sum::<f64>() / w_sum;
    let tss: f64 = (0..n).map(|i| w(i) * (y[i] - y_mean).powi(2)).sum();
    let r2 = if tss > 0.0 {
        1.0 - solved.weighted_rss / tss
    } else {
        1.0
    };

    Ok(LinearFit {
        coefficients: solved.beta,
        std_errors,
        conf_intervals,
        covariance,
        residual_variance,
        r2,
        n,
        dof,
        level,
        t_quantile,
    })
}

/// The two-sided Student-t quantile `t_{1 − (1 − level)/2, dof}`.
pub(crate) fn student_t_quantile(dof: usize, level: f64) -> FitResult<f64> {
    check_level(level)?;
    let t = StudentsT::new(0.0, 1.0, dof as f64)
        .map_err(|e| FitError::InvalidArgument(format!("t distribution with {dof} dof: {e}")))?;
    Ok(t.inverse_cdf(1.0 - (1.0 - level) / 2.0))
}

/// The bare least-squares solution, without intervals (allows `n == p`).
pub(crate) struct LeastSquares {
    /// β.
    pub beta: Vec<f64>,
    /// `(XᵀWX)⁻¹`, row-major.
    pub xtwx_inv: Vec<Vec<f64>>,
    /// `Σ wᵢ·rᵢ²`.
    pub weighted_rss: f64,
}

/// Solves weighted least squares by Householder QR of `√W·X`. Needs `n ≥ p` and full rank.
pub(crate) fn least_squares<R: AsRef<[f64]>>(
    x: &[R],
    y: &[f64],
    weights: Option<&[f64]>,
) -> FitResult<LeastSquares> {
    let n = y.len();
    check_same_len("least squares: rows of X and y", x.len(), n)?;
    check_finite("least squares: y", y)?;
    if let Some(w) = weights {
        check_same_len("least squares: weights and y", w.len(), n)?;
        check_positive("least squares: weights", w)?;
    }
    let p = x.first().map_or(0, |r| r.as_ref().len());
    if p == 0 {
        return Err(FitError::InvalidArgument(
            "least squares: the design matrix has no columns".into(),
        ));
    }
    for (i, row) in x.iter().enumerate() {
        let row = row.as_ref();
        check_same_len("least squares: row length of X", row.len(), p)?;
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(FitError::NonFinite {
                what: "least squares: X",
                index: i,
                value: row[j],
            });
        }
    }
    if n < p {
        return Err(FitError::TooFewPoints {
            what: "least squares",
            needed: p,
            got: n,
        });
    }

    // a = √W·X (n × p, row-major), b = √W·y.
    let sw: Vec<f64> = (0..n)
        .map(|i| weights.map_or(1.0, |w| w[i].sqrt()))
        .collect();
    let mut a: Vec<f64> = x
        .iter()
        .zip(&sw)
        .flat_map(|(row, s)| row.as_ref().iter().map(move |v| v * s))
        .collect();
    let mut b: Vec<f64> = y.iter().zip(&sw).map(|(v, s)| v * s).collect();
    let col_scale = (0..p)
        .map(|j| (0..n).map(|i| a[i * p + j].powi(2)).sum::<f64>().sqrt())
        .fold(0.0_f64, f64::max);

    for k in 0..p {
        let norm = (k..n).map(|i| a[i * p + k].powi(2)).sum::<f64>().sqrt();
        if norm <= 1e-11 * col_scale {
            return Err(FitError::RankDeficient("least squares"));
        }
        let alpha = if a[k * p + k] > 0.0 { -norm } else { norm };
        // v = column below the diagonal minus alpha·e1, reflected: H = I − 2vvᵀ/(vᵀv).
        let mut v: Vec<f64> = (k..n).map(|i| a[i * p + k]).collect();
        v[0] -= alpha;
        let vtv: f64 = v.iter().map(|t| t * t).sum();
        if vtv > 0.0 {
            for j in k..p {
                let dot: f64 = (k..n).map(|i| v[i - k] * a[i * p + j]).sum();
                let f = 2.0 * dot / vtv;
                for i in k..n {
                    a[i * p + j] -= f * v[i - k];
                }
            }
            let dot: f64 = (k..n).map(|i| v[i - k] * b[i]).sum();
            let f = 2.0 * dot / vtv;
            for i in k..n {
                b[i] -= f * v[i - k];
            }
        }
    }

    let r = |i: usize, j: usize| a[i * p + j];
    // β from R·β = (Qᵀb)[..p].
    let mut beta = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = ((i + 1)..p).map(|j| r(i, j) * beta[j]).sum();
        beta[i] = (b[i] - s) / r(i, i);
    }
    // Columns of R⁻¹ (upper triangular) by back substitution, then (XᵀWX)⁻¹ = R⁻¹·R⁻ᵀ.
    let r_inv_columns: Vec<Vec<f64>> = (0..p)
        .map(|col| {
            let mut column = vec![0.0; p];
            for i in (0..=col).rev() {
                let rhs = if i == col { 1.0 } else { 0.0 };
                let s: f64 = ((i + 1)..=col).map(|j| r(i, j) * column[j]).sum();
                column[i] = (rhs - s) / r(i, i);
            }
            column
        })
        .collect();
    let xtwx_inv: Vec<Vec<f64>> = (0..p)
        .map(|i| {
            (0..p)
                .map(|j| r_inv_columns.iter().map(|c| c[i] * c[j]).sum())
                .collect()
        })
        .collect();
    let weighted_rss: f64 = x
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let fitted: f64 = row.as_ref().iter().zip(&beta).map(|(a, b)| a * b).sum();
            weights.map_or(1.0, |w| w[i]) * (y[i] - fitted).powi(2)
        })
        .sum();
    Ok(LeastSquares {
        beta,
        xtwx_inv,
        weighted_rss,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testutil::normal;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A textbook example (Montgomery-style) solved by hand: y = 1 + 2x exactly plus known
    /// residuals, so every output has a closed form.
    #[test]
    fn simple_regression_matches_closed_form() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let resid = [0.1, -0.2, 0.0, 0.2, -0.1];
        let y: Vec<f64> = xs
            .iter()
            .zip(&resid)
            .map(|(x, r)| 1.0 + 2.0 * x + r)
            .collect();
        let rows: Vec<[f64; 2]> = xs.iter().map(|x| [1.0, *x]).collect();
        let fit = ols(&rows, &y, 0.95).unwrap();
        // Closed form: slope = Sxy/Sxx, Sxx = 10; residuals are orthogonal to [1, x]? Check:
        // Σr = 0 and Σ x·r = 0.1 − 0.4 + 0 + 0.8 − 0.5 = 0, so β = (1, 2) exactly.
        assert!((fit.coefficients[0] - 1.0).abs() < 1e-12);
        assert!((fit.coefficients[1] - 2.0).abs() < 1e-12);
        let rss: f64 = resid.iter().map(|r| r * r).sum(); // 0.1
        let s2 = rss / 3.0;
        assert!((fit.residual_variance - s2).abs() < 1e-14);
        assert!((fit.std_errors[1] - (s2 / 10.0).sqrt()).abs() < 1e-12);
        // Var(intercept) = σ²·(1/n + x̄²/Sxx) = σ²·(0.2 + 0.9).
        assert!((fit.std_errors[0] - (s2 * 1.1).sqrt()).abs() < 1e-12);
        // t_{0.975, 3} = 3.182446305284263.
        assert!((fit.t_quantile - 3.182_446_305_284_263).abs() < 1e-9);
        let (lo, hi) = fit.conf_intervals[1];
        assert!((hi - lo - 2.0 * 3.182_446_305_284_263 * fit.std_errors[1]).abs() < 1e-9);
        // TSS = Σ(2(x − 3) + r)² = 40 + 4·Σ(x − 3)·r + Σr² = 40.1.
        assert!((fit.r2 - (1.0 - 0.1 / 40.1)).abs() < 1e-12);
        assert_eq!((fit.n, fit.dof), (5, 3));
    }

    #[test]
    fn weights_equal_to_one_reproduce_ols_and_weights_move_the_fit() {
        let rows: Vec<[f64; 2]> = (0..6).map(|i| [1.0, i as f64]).collect();
        let y = [0.0, 1.1, 1.9, 3.2, 3.9, 7.0];
        let a = ols(&rows, &y, 0.9).unwrap();
        let b = wls(&rows, &y, &[1.0; 6], 0.9).unwrap();
        for (u, v) in a.coefficients.iter().zip(&b.coefficients) {
            assert!((u - v).abs() < 1e-12);
        }
        // Down-weighting the outlier at x = 5 pulls the slope to 0.99, that of the other five.
        let c = wls(&rows, &y, &[1.0, 1.0, 1.0, 1.0, 1.0, 1e-6], 0.9).unwrap();
        assert!(c.coefficients[1] < a.coefficients[1] - 0.1);
        assert!((c.coefficients[1] - 0.99).abs() < 1e-4);
    }

    /// A planted three-column law with seeded noise: every coefficient within its 99% interval,
    /// and the 95% intervals cover the truth in about 95% of 400 replications.
    #[test]
    fn planted_coefficients_are_covered_at_the_nominal_rate() {
        let truth = [0.5, -1.5, 2.0];
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut covered = 0;
        let reps = 400;
        for _ in 0..reps {
            let rows: Vec<[f64; 3]> = (0..20)
                .map(|i| [1.0, i as f64 / 10.0, ((i * 7) % 20) as f64 / 5.0])
                .collect();
            let y: Vec<f64> = rows
                .iter()
                .map(|r| {
                    truth[0] * r[0] + truth[1] * r[1] + truth[2] * r[2] + 0.3 * normal(&mut rng)
                })
                .collect();
            let fit = ols(&rows, &y, 0.95).unwrap();
            if fit.conf_intervals[1].0 <= truth[1] && truth[1] <= fit.conf_intervals[1].1 {
                covered += 1;
            }
        }
        let rate = covered as f64 / reps as f64;
        // Binomial(400, 0.95) has sd 1.1%: 4 sd either side.
        assert!((rate - 0.95).abs() < 0.045, "coverage {rate}");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let rows = [[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]];
        assert_eq!(
            ols(&rows, &[1.0, 2.0, 3.0], 0.95).unwrap_err(),
            FitError::RankDeficient("least squares")
        );
        let rows = [[1.0, 1.0], [1.0, 2.0]];
        assert!(matches!(
            ols(&rows, &[1.0, 2.0], 0.95),
            Err(FitError::TooFewPoints { needed: 3, .. })
        ));
        let rows = [[1.0, 1.0], [1.0, 2.0], [1.0, 3.0]];
        assert!(matches!(
            ols(&rows, &[1.0, f64::NAN, 3.0], 0.95),
            Err(FitError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            wls(&rows, &[1.0, 2.0, 3.0], &[1.0, -1.0, 1.0], 0.95),
            Err(FitError::NonPositive { index: 1, .. })
        ));
        assert!(matches!(
            ols(&rows, &[1.0, 2.0], 0.95),
            Err(FitError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn prediction_interval_is_wider_than_the_mean_interval() {
        let rows: Vec<[f64; 2]> = (0..8).map(|i| [1.0, i as f64]).collect();
        let y = [0.1, 0.9, 2.2, 2.8, 4.1, 5.0, 5.8, 7.1];
        let fit = ols(&rows, &y, 0.95).unwrap();
        let (clo, chi) = fit.confidence_interval(&[1.0, 3.5]);
        let (plo, phi) = fit.prediction_interval(&[1.0, 3.5]);
        assert!(plo < clo && chi < phi);
        assert!(((clo + chi) / 2.0 - fit.predict(&[1.0, 3.5])).abs() < 1e-12);
        // At x̄ the mean's standard error is σ/√n.
        let se = fit.mean_std_error(&[1.0, 3.5]);
        assert!((se - (fit.residual_variance / 8.0).sqrt()).abs() < 1e-12);
    }
}
