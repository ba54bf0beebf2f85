//! Scaling-law statistics on observations. Pure: no I/O, no database, no plotting.
//!
//! Inputs are plain structs and slices; the `slaw fit` command converts database rows into them
//! and stores the results (every result type serialises to JSON). Submodules, each one concern:
//! - [`ols`](mod@ols): ordinary and weighted least squares with standard errors and t intervals.
//! - [`power_law`](mod@power_law): `y = a·x^b` fitted in log–log space.
//! - [`saturating`](mod@saturating): `L = E + A·C^(−α)` fitted in log space (Porian et al. 2024).
//! - [`parametric`](mod@parametric): Chinchilla approach 3, `L(N, D) = E + A/N^α + B/D^β`,
//!   and the compute-optimal allocation it implies.
//! - [`frontier`](mod@frontier): the lower envelope of loss curves against compute
//!   (approach 1), and laws on it.
//! - [`isoflop`](mod@isoflop): per-budget parabolas of loss against log N (approach 2), and
//!   laws on the vertices.
//! - [`lr`](mod@lr): the optimal learning rate of a cell of a sweep, and laws of it against
//!   size and budget.
//! - [`bootstrap`](mod@bootstrap): seeded percentile-bootstrap intervals for any of the above.
//!
//! The non-linear fits share one multi-start driver around argmin's L-BFGS (`optim`).

pub mod bootstrap;
pub mod frontier;
pub mod isoflop;
pub mod lr;
pub mod ols;
pub mod parametric;
pub mod power_law;
pub mod saturating;

mod optim;

pub use bootstrap::{
    bootstrap, percentile_interval, replicate_fits, resample_fits, summarise, BootstrapInterval,
    BootstrapOptions, BootstrapSummary,
};
pub use frontier::{
    compute_frontier, fit_frontier, CurvePoint, Frontier, FrontierFit, FrontierModel,
};
pub use isoflop::{
    fit_isoflop, isoflop_vertices, vertex_laws, BudgetGrouping, BudgetVertex, IsoFlopFit,
    IsoFlopPoint, ProfileWindow, VertexFlag,
};
pub use lr::{
    cell_optimum, fit_lr_params_budget_law, fit_lr_params_law, CellFlag, CellOptimum,
    LrParamsBudgetLaw, LrParamsLaw, LrPoint, LrTrial,
};
pub(crate) use ols::least_squares;
pub use ols::{ols, wls, LinearFit};
pub use optim::OptimiserSettings;
pub use parametric::{
    fit_parametric, ParametricGrid, ParametricLaw, ParametricOptions, ParametricPoint,
    DEFAULT_FLOPS_PER_PARAM_EXAMPLE,
};
pub use power_law::{power_law, PowerLaw};
pub use saturating::{fit_saturating, SaturatingGrid, SaturatingLaw, SaturatingOptions};

/// Why a fit could not be made. Every public fit returns this instead of panicking on bad data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Not enough observations to fit (and, for intervals, to leave residual degrees of freedom).
    #[error("{what}: need at least {needed} points, got {got}")]
    TooFewPoints {
        /// What was being fitted.
        what: &'static str,
        /// Minimum number of points.
        needed: usize,
        /// Number of points given.
        got: usize,
    },
    /// An input value is NaN or infinite.
    #[error("{what}: value {index} is not finite ({value})")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Position of the value in its input.
        index: usize,
        /// The value.
        value: f64,
    },
    /// An input that is log-transformed (or used as a weight) is zero or negative.
    #[error("{what}: value {index} must be positive, got {value}")]
    NonPositive {
        /// Which input.
        what: &'static str,
        /// Position of the value in its input.
        index: usize,
        /// The value.
        value: f64,
    },
    /// Inputs that must have the same length do not.
    #[error("{what}: lengths differ ({left} vs {right})")]
    LengthMismatch {
        /// Which inputs.
        what: &'static str,
        /// Length of the first.
        left: usize,
        /// Length of the second.
        right: usize,
    },
    /// The design matrix does not have full column rank (e.g. all x equal).
    #[error("{0}: the design matrix is rank deficient (are the predictors all equal?)")]
    RankDeficient(&'static str),
    /// An argument (not data) is out of its domain, e.g. a confidence level outside (0, 1).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The optimiser produced no usable result from any start.
    #[error("optimiser failed: {0}")]
    OptimiserFailed(String),
    /// The fitted law has no finite answer to the question asked (e.g. no optimal allocation).
    #[error("degenerate fit: {0}")]
    Degenerate(String),
}

/// Shorthand for results of this module.
pub type FitResult<T> = Result<T, FitError>;

/// Error unless every value is finite.
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> FitResult<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(FitError::NonFinite {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Error unless every value is finite and strictly positive.
pub(crate) fn check_positive(what: &'static str, values: &[f64]) -> FitResult<()> {
    check_finite(what, values)?;
    match values.iter().position(|v| *v <= 0.0) {
        Some(index) => Err(FitError::NonPositive {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// Error unless both inputs have the same length.
pub(crate) fn check_same_len(what: &'static str, left: usize, right: usize) -> FitResult<()> {
    if left == right {
        Ok(())
    } else {
        Err(FitError::LengthMismatch { what, left, right })
    }
}

/// Error unless `level` is a probability strictly between 0 and 1.
pub(crate) fn check_level(level: f64) -> FitResult<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(FitError::InvalidArgument(format!(
            "confidence level must lie in (0, 1), got {level}"
        )))
    }
}

/// Huber loss of a residual: quadratic within ±δ, linear beyond.
pub(crate) fn huber(r: f64, delta: f64) -> f64 {
    let a = r.abs();
    if a <= delta {
        0.5 * r * r
    } else {
        delta * (a - 0.5 * delta)
    }
}

/// Derivative of [`huber`] with respect to the residual.
pub(crate) fn huber_slope(r: f64, delta: f64) -> f64 {
    r.clamp(-delta, delta)
}

/// Sample the `q`-quantile (0 ≤ q ≤ 1) of sorted values by linear interpolation between order
/// statistics (numpy's default). `sorted` must be non-empty and ascending.
pub(crate) fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len() - 1;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(last);
    let frac = pos - lo as f64;
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

/// The number of worker threads to use when the caller passes 0 ("automatic").
pub(crate) fn resolve_threads(requested: usize, jobs: usize) -> usize {
    let auto = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if requested == 0 { auto } else { requested };
    wanted.clamp(1, jobs.max(1))
}

/// A standard normal draw by Box–Muller (rand 0.9 has no normal distribution of its own).
pub fn standard_normal(rng: &mut impl rand::Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Seeded noise for the planted-law tests.
    use rand_chacha::ChaCha8Rng;

    /// A standard normal draw by Box–Muller (rand 0.9 has no normal distribution of its own).
    pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
        super::standard_normal(rng)
    }

    /// `n` values evenly spaced in log between `lo` and `hi`, inclusive.
    pub fn log_space(lo: f64, hi: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huber_is_quadratic_inside_and_linear_outside() {
        assert_eq!(huber(0.5e-3, 1e-3), 0.5 * 0.25e-6);
        assert!((huber(-3e-3, 1e-3) - 1e-3 * 2.5e-3).abs() < 1e-18);
        assert_eq!(huber_slope(5.0, 1e-3), 1e-3);
        assert_eq!(huber_slope(-2e-4, 1e-3), -2e-4);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile_sorted(&v, 0.0), 1.0);
        assert_eq!(quantile_sorted(&v, 1.0), 5.0);
        assert_eq!(quantile_sorted(&v, 0.5), 3.0);
        assert!((quantile_sorted(&v, 0.025) - 1.1).abs() < 1e-12);
    }

    #[test]
    fn input_checks_name_the_offending_value() {
        assert_eq!(
            check_positive("x", &[1.0, 0.0]),
            Err(FitError::NonPositive {
                what: "x",
                index: 1,
                value: 0.0
            })
        );
        assert!(matches!(
            check_finite("y", &[f64::NAN]),
            Err(FitError::NonFinite { index: 0, .. })
        ));
        assert!(check_level(1.0).is_err());
        assert!(check_level(0.95).is_ok());
    }
}
