//! Power laws `y = a·x^b`, fitted as the straight line `log y = log a + b·log x` by (weighted)
//! least squares, with Student-t intervals on both coefficients and on predictions.

use serde::{Deserialize, Serialize};

use super::ols::{ols, wls, LinearFit};
use super::{check_positive, check_same_len, FitResult};

/// A fitted power law `y = e^log_a · x^b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    /// Natural log of the prefactor.
    pub log_a: f64,
    /// The exponent.
    pub b: f64,
    /// Standard error of `log_a`.
    pub se_log_a: f64,
    /// Standard error of `b`.
    pub se_b: f64,
    /// Confidence interval of `log_a` at `level`.
    pub ci_log_a: (f64, f64),
    /// Confidence interval of `b` at `level`.
    pub ci_b: (f64, f64),
    /// Covariance of `log_a` and `b` (needed for intervals on predictions).
    pub cov_log_a_b: f64,
    /// Residual variance on the log scale.
    pub residual_variance: f64,
    /// R² of the log–log regression.
    pub r2: f64,
    /// Number of points.
    pub n: usize,
    /// Confidence level of the intervals.
    pub level: f64,
    /// Student-t quantile (n − 2 degrees of freedom) used for the intervals.
    pub t_quantile: f64,
}

impl PowerLaw {
    /// The prefactor `a`.
    pub fn a(&self) -> f64 {
        self.log_a.exp()
    }

    /// The fitted value `a·x^b`.
    pub fn predict(&self, x: f64) -> f64 {
        (self.log_a + self.b * x.ln()).exp()
    }

    /// Confidence interval of the fitted mean at `x`, computed on the log scale and mapped back
    /// (so it is a multiplicative interval around [`predict`](Self::predict)).
    pub fn predict_interval(&self, x: f64) -> (f64, f64) {
        let (lo, hi) = self.linear().confidence_interval(&[1.0, x.ln()]);
        (lo.exp(), hi.exp())
    }

    /// Prediction interval of a new observation at `x` (adds the residual variance), mapped back
    /// from the log scale.
    pub fn prediction_interval(&self, x: f64) -> (f64, f64) {
        let (lo, hi) = self.linear().prediction_interval(&[1.0, x.ln()]);
        (lo.exp(), hi.exp())
    }

    fn linear(&self) -> LinearFit {
        LinearFit {
            coefficients: vec![self.log_a, self.b],
            std_errors: vec![self.se_log_a, self.se_b],
            conf_intervals: vec![self.ci_log_a, self.ci_b],
            covariance: vec![
                vec![self.se_log_a.powi(2), self.cov_log_a_b],
                vec![self.cov_log_a_b, self.se_b.powi(2)],
            ],
            residual_variance: self.residual_variance,
            r2: self.r2,
            n: self.n,
            dof: self.n.saturating_sub(2),
            level: self.level,
            t_quantile: self.t_quantile,
        }
    }

    fn from_linear(fit: LinearFit) -> Self {
        PowerLaw {
            log_a: fit.coefficients[0],
            b: fit.coefficients[1],
            se_log_a: fit.std_errors[0],
            se_b: fit.std_errors[1],
            ci_log_a: fit.conf_intervals[0],
            ci_b: fit.conf_intervals[1],
            cov_log_a_b: fit.covariance[0][1],
            residual_variance: fit.residual_variance,
            r2: fit.r2,
            n: fit.n,
            level: fit.level,
            t_quantile: fit.t_quantile,
        }
    }
}

/// Fits `log y = log a + b·log x` by OLS, or by WLS when `weights` are given (weights apply to
/// the log-scale residuals, e.g. `1/σ²` of `log y`). Needs at least 3 points, all x and y > 0.
pub fn power_law(x: &[f64], y: &[f64], weights: Option<&[f64]>, level: f64) -> FitResult<PowerLaw> {
    check_same_len("power law: x and y", x.len(), y.len())?;
    check_positive("power law: x", x)?;
    check_positive("power law: y", y)?;
    let rows: Vec<[f64; 2]> = x.iter().map(|v| [1.0, v.ln()]).collect();
    let log_y: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let fit = match weights {
        Some(w) => wls(&rows, &log_y, w, level)?,
        None => ols(&rows, &log_y, level)?,
    };
    Ok(PowerLaw::from_linear(fit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::testutil::{log_space, normal};
    use crate::fit::FitError;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn exact_power_law_is_recovered_to_machine_precision() {
        let x = log_space(1e15, 1e20, 9);
        let y: Vec<f64> = x.iter().map(|c| 0.118 * c.powf(0.497)).collect();
        let law = power_law(&x, &y, None, 0.95).unwrap();
        assert!((law.b - 0.497).abs() < 1e-10);
        assert!((law.a() - 0.118).abs() < 1e-9);
        assert!((law.predict(3e17) / (0.118 * 3e17_f64.powf(0.497)) - 1.0).abs() < 1e-9);
        assert!(law.r2 > 1.0 - 1e-12);
    }

    /// Planted `y = 2.5·x^(−0.076)` with 2% multiplicative noise: the exponent lands inside its
    /// 95% interval and within 0.01 of the truth; the mean interval brackets the true curve.
    #[test]
    fn planted_power_law_is_recovered_within_its_interval() {
        let (a, b) = (2.5_f64, -0.076);
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let x = log_space(1e6, 1e10, 25);
        let y: Vec<f64> = x
            .iter()
            .map(|v| a * v.powf(b) * (0.02 * normal(&mut rng)).exp())
            .collect();
        let law = power_law(&x, &y, None, 0.95).unwrap();
        assert!(law.ci_b.0 < b && b < law.ci_b.1, "{law:?}");
        assert!((law.b - b).abs() < 0.01, "{law:?}");
        assert!(
            law.ci_log_a.0 < a.ln() && a.ln() < law.ci_log_a.1,
            "{law:?}"
        );
        let (lo, hi) = law.predict_interval(1e8);
        assert!(lo < law.predict(1e8) && law.predict(1e8) < hi);
        assert!(lo < a * 1e8_f64.powf(b) && a * 1e8_f64.powf(b) < hi);
        let (plo, phi) = law.prediction_interval(1e8);
        assert!(plo < lo && hi < phi);
    }

    #[test]
    fn weights_select_the_trusted_points() {
        // Two regimes: trusted points follow x^0.5, untrusted ones x^0.8.
        let x = log_space(1.0, 1e4, 10);
        let y: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if i % 2 == 0 {
                    v.powf(0.5)
                } else {
                    3.0 * v.powf(0.8)
                }
            })
            .collect();
        let w: Vec<f64> = (0..10)
            .map(|i| if i % 2 == 0 { 1.0 } else { 1e-9 })
            .collect();
        let law = power_law(&x, &y, Some(&w), 0.95).unwrap();
        assert!((law.b - 0.5).abs() < 1e-6, "{law:?}");
    }

    #[test]
    fn law_round_trips_through_json() {
        let x = [1.0, 10.0, 100.0, 1000.0];
        let y = [2.0, 6.1, 19.0, 64.0];
        let law = power_law(&x, &y, None, 0.9).unwrap();
        let json = serde_json::to_string(&law).unwrap();
        let back: PowerLaw = serde_json::from_str(&json).unwrap();
        assert!((law.b - back.b).abs() <= 1e-15 * law.b.abs());
        assert!((law.log_a - back.log_a).abs() <= 1e-15 * law.log_a.abs());
        assert!(law.ci_b.0.to_bits().abs_diff(back.ci_b.0.to_bits()) <= 1);
        assert_eq!(back.n, 4);
    }

    #[test]
    fn non_positive_data_is_rejected() {
        assert!(matches!(
            power_law(&[1.0, 2.0, 3.0], &[1.0, 0.0, 2.0], None, 0.95),
            Err(FitError::NonPositive { index: 1, .. })
        ));
    }
}
