//! The seeded nonparametric bootstrap: resample observation indices with replacement, refit with
//! a caller-supplied closure, and report percentile intervals of the named outputs. The index
//! draws depend only on the seed, so results do not depend on the number of threads.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{check_level, quantile_sorted, resolve_threads, FitError, FitResult};

/// How many resamples, from which seed, at which level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapOptions {
    /// Number of resamples.
    pub resamples: usize,
    /// Seed of the `ChaCha8Rng` that draws the indices.
    pub seed: u64,
    /// Two-sided level of the percentile intervals, e.g. 0.95 for the 2.5th–97.5th percentiles.
    pub level: f64,
    /// Worker threads for the refits; 0 means one per available core.
    pub threads: usize,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        BootstrapOptions {
            resamples: 1000,
            seed: 0,
            level: 0.95,
            threads: 0,
        }
    }
}

/// The bootstrap distribution of one named output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapInterval {
    /// Lower percentile, `(1 − level)/2`.
    pub lo: f64,
    /// Upper percentile, `1 − (1 − level)/2`.
    pub hi: f64,
    /// Median over the resamples.
    pub median: f64,
    /// Standard deviation over the resamples (the bootstrap standard error).
    pub std_error: f64,
}

/// Percentile intervals of every output, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapSummary {
    /// One interval per output name.
    pub intervals: BTreeMap<String, BootstrapInterval>,
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples whose fit failed or returned a non-finite output (they are left out).
    pub failed: usize,
    /// The level of the intervals.
    pub level: f64,
    /// The seed used.
    pub seed: u64,
}

/// Draws `options.resamples` resamples of `n` indices with replacement and calls `fit` on each
/// (`fit` gets the indices into the caller's observations and returns named scalars). Resamples
/// whose fit fails, or returns a non-finite value, are counted in `failed` and skipped. An error
/// when `n` is 0, when the options are out of range, or when every resample failed.
pub fn bootstrap<F>(n: usize, options: &BootstrapOptions, fit: F) -> FitResult<BootstrapSummary>
where
    F: Fn(&[usize]) -> FitResult<Vec<(String, f64)>> + Sync,
{
    summarise(&resample_fits(n, options, fit)?, options)
}

/// The named outputs of one resample's fit; `None` where the fit failed.
pub type ResampleOutput = Option<Vec<(String, f64)>>;

/// The outputs of every resample, in draw order (`None` where the fit failed or returned a
/// non-finite value): the raw bootstrap distribution, for callers that keep it to evaluate
/// predictions later. [`summarise`] turns it into intervals.
pub fn resample_fits<F>(
    n: usize,
    options: &BootstrapOptions,
    fit: F,
) -> FitResult<Vec<ResampleOutput>>
where
    F: Fn(&[usize]) -> FitResult<Vec<(String, f64)>> + Sync,
{
    check_level(options.level)?;
    if n == 0 {
        return Err(FitError::TooFewPoints {
            what: "bootstrap: observations",
            needed: 1,
            got: 0,
        });
    }
    if options.resamples == 0 {
        return Err(FitError::InvalidArgument(
            "bootstrap: need at least one resample".into(),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let draws: Vec<Vec<usize>> = (0..options.resamples)
        .map(|_| (0..n).map(|_| rng.random_range(0..n)).collect())
        .collect();
    Ok(in_parallel(
        draws.len(),
        options.threads,
        |i| fit(&draws[i]),
    ))
}

/// A parametric (or perturbation) bootstrap: calls `fit` once per resample with a generator of
/// its own (the stream of `options.seed` numbered by the resample), so that the caller draws
/// what is random in its data, e.g. new noise on every run. Outputs in draw order, `None` where
/// the fit failed or returned a non-finite value; independent of the number of threads.
pub fn replicate_fits<F>(options: &BootstrapOptions, fit: F) -> FitResult<Vec<ResampleOutput>>
where
    F: Fn(&mut ChaCha8Rng) -> FitResult<Vec<(String, f64)>> + Sync,
{
    check_level(options.level)?;
    if options.resamples == 0 {
        return Err(FitError::InvalidArgument(
            "bootstrap: need at least one resample".into(),
        ));
    }
    Ok(in_parallel(options.resamples, options.threads, |i| {
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        rng.set_stream(i as u64 + 1);
        fit(&mut rng)
    }))
}

/// Runs `fit(i)` for `i` in `0..count` on up to `threads` threads (0: one per core), keeping
/// the order; failures and non-finite outputs become `None`.
fn in_parallel<F>(count: usize, threads: usize, fit: F) -> Vec<ResampleOutput>
where
    F: Fn(usize) -> FitResult<Vec<(String, f64)>> + Sync,
{
    let threads = resolve_threads(threads, count);
    let run = |i: usize| -> Option<Vec<(String, f64)>> {
        fit(i)
            .ok()
            .filter(|out| out.iter().all(|(_, v)| v.is_finite()))
    };
    if threads == 1 {
        return (0..count).map(run).collect();
    }
    let mut outputs = vec![None; count];
    std::thread::scope(|scope| {
        let run = &run;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|i| (i, run(i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, out) in done {
                        outputs[i] = out;
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    outputs
}

/// Percentile intervals of each named output over the resamples that succeeded.
pub fn summarise(
    outputs: &[ResampleOutput],
    options: &BootstrapOptions,
) -> FitResult<BootstrapSummary> {
    let failed = outputs.iter().filter(|o| o.is_none()).count();
    let mut samples: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (name, value) in outputs.iter().flatten().flatten() {
        samples.entry(name.clone()).or_default().push(*value);
    }
    if samples.is_empty() {
        return Err(FitError::OptimiserFailed(format!(
            "bootstrap: all {} resamples failed",
            outputs.len()
        )));
    }
    let intervals = samples
        .into_iter()
        .map(|(name, values)| (name, percentile_interval(values, options.level)))
        .collect();
    Ok(BootstrapSummary {
        intervals,
        resamples: outputs.len(),
        failed,
        level: options.level,
        seed: options.seed,
    })
}

/// The percentile interval at `level`, median and standard deviation of `values` (which must
/// not be empty).
pub fn percentile_interval(mut values: Vec<f64>, level: f64) -> BootstrapInterval {
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
    let var =
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len().max(2) - 1) as f64;
    BootstrapInterval {
        lo: quantile_sorted(&values, tail),
        hi: quantile_sorted(&values, 1.0 - tail),
        median: quantile_sorted(&values, 0.5),
        std_error: var.sqrt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::parametric::{
        fit_parametric, ParametricGrid, ParametricOptions, ParametricPoint,
    };
    use crate::fit::power_law::power_law;
    use crate::fit::testutil::{log_space, normal};
    use crate::fit::OptimiserSettings;

    /// The bootstrap interval of a mean matches the normal-theory interval `x̄ ± 1.96·s/√n`.
    #[test]
    fn mean_interval_matches_normal_theory() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let data: Vec<f64> = (0..400).map(|_| 10.0 + 2.0 * normal(&mut rng)).collect();
        let options = BootstrapOptions {
            resamples: 2000,
            seed: 1,
            ..Default::default()
        };
        let summary = bootstrap(data.len(), &options, |idx| {
            let m = idx.iter().map(|&i| data[i]).sum::<f64>() / idx.len() as f64;
            Ok(vec![("mean".to_string(), m)])
        })
        .unwrap();
        let mean = data.iter().sum::<f64>() / 400.0;
        let sd = (data.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 399.0).sqrt();
        let se = sd / 20.0;
        let iv = &summary.intervals["mean"];
        assert!((iv.std_error / se - 1.0).abs() < 0.1, "{iv:?} vs {se}");
        assert!((iv.lo - (mean - 1.96 * se)).abs() < 0.2 * se, "{iv:?}");
        assert!((iv.hi - (mean + 1.96 * se)).abs() < 0.2 * se, "{iv:?}");
        assert_eq!(summary.failed, 0);
    }

    #[test]
    fn same_seed_same_result_any_thread_count_and_failures_are_counted() {
        let data: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let fit = |idx: &[usize]| -> FitResult<Vec<(String, f64)>> {
            // Fail on resamples that contain index 0 more than twice.
            if idx.iter().filter(|&&i| i == 0).count() > 2 {
                return Err(FitError::OptimiserFailed("planted failure".into()));
            }
            let m = idx.iter().map(|&i| data[i]).sum::<f64>() / idx.len() as f64;
            Ok(vec![("mean".into(), m)])
        };
        let one = BootstrapOptions {
            resamples: 300,
            seed: 5,
            threads: 1,
            ..Default::default()
        };
        let two = BootstrapOptions { threads: 2, ..one };
        let a = bootstrap(data.len(), &one, fit).unwrap();
        let b = bootstrap(data.len(), &two, fit).unwrap();
        assert_eq!(a, b);
        // P(more than 2 zeros among 30 draws of 1/30) ≈ 0.077: about 23 of 300.
        assert!(a.failed > 5 && a.failed < 50, "{}", a.failed);
        let c = bootstrap(data.len(), &BootstrapOptions { seed: 6, ..one }, fit).unwrap();
        assert_ne!(a, c);
        assert!(bootstrap(0, &one, fit).is_err());
        assert!(matches!(
            bootstrap(5, &one, |_| Err(FitError::OptimiserFailed("no".into()))),
            Err(FitError::OptimiserFailed(_))
        ));
    }

    /// Power law with 3% noise: the 95% percentile interval of the exponent covers the truth
    /// and agrees with the t interval to within 25% of its width.
    #[test]
    fn power_law_bootstrap_agrees_with_the_t_interval() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let x = log_space(1e6, 1e9, 40);
        let y: Vec<f64> = x
            .iter()
            .map(|v| 3.0 * v.powf(0.34) * (0.03 * normal(&mut rng)).exp())
            .collect();
        let full = power_law(&x, &y, None, 0.95).unwrap();
        let options = BootstrapOptions {
            seed: 42,
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let summary = bootstrap(x.len(), &options, |idx| {
            let xs: Vec<f64> = idx.iter().map(|&i| x[i]).collect();
            let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
            let law = power_law(&xs, &ys, None, 0.95)?;
            Ok(vec![("b".into(), law.b), ("log_a".into(), law.log_a)])
        })
        .unwrap();
        eprintln!(
            "power-law bootstrap, 1000 resamples: {:?}",
            started.elapsed()
        );
        let iv = &summary.intervals["b"];
        assert!(iv.lo < 0.34 && 0.34 < iv.hi, "{iv:?}");
        let width = full.ci_b.1 - full.ci_b.0;
        assert!(
            (iv.lo - full.ci_b.0).abs() < 0.25 * width,
            "{iv:?} vs {:?}",
            full.ci_b
        );
        assert!(
            (iv.hi - full.ci_b.1).abs() < 0.25 * width,
            "{iv:?} vs {:?}",
            full.ci_b
        );
        assert_eq!(summary.resamples, 1000);
        assert!(summary.intervals.contains_key("log_a"));
    }

    /// Parametric law with 1% noise: refits start from the full-data optimum only; the 95%
    /// intervals of α, β and E cover the planted values.
    #[test]
    fn parametric_bootstrap_covers_the_planted_law() {
        let (e, a, b, alpha, beta) = (1.69_f64, 406.4_f64, 410.7_f64, 0.34, 0.28);
        let mut rng = ChaCha8Rng::seed_from_u64(77);
        let mut points = Vec::new();
        for n in log_space(1e7, 1e10, 6) {
            for d in log_space(1e8, 1e11, 6) {
                let loss =
                    (e + a * n.powf(-alpha) + b * d.powf(-beta)) * (0.01 * normal(&mut rng)).exp();
                points.push(ParametricPoint {
                    params: n,
                    examples: d,
                    loss,
                });
            }
        }
        let coarse = ParametricOptions {
            grid: ParametricGrid {
                alpha: vec![0.0, 0.5, 1.0],
                beta: vec![0.0, 0.5, 1.0],
                e: vec![0.0, 0.5],
                a: vec![0.0, 5.0, 10.0],
                b: vec![5.0, 10.0],
            },
            ..ParametricOptions::default()
        };
        let full = fit_parametric(&points, &coarse).unwrap();
        let refit = ParametricOptions {
            grid: ParametricGrid::single(&full),
            optimiser: OptimiserSettings {
                threads: 1,
                ..OptimiserSettings::default()
            },
            ..ParametricOptions::default()
        };
        let options = BootstrapOptions {
            resamples: 1000,
            seed: 42,
            ..Default::default()
        };
        let started = std::time::Instant::now();
        let summary = bootstrap(points.len(), &options, |idx| {
            let sample: Vec<ParametricPoint> = idx.iter().map(|&i| points[i]).collect();
            let law = fit_parametric(&sample, &refit)?;
            Ok(vec![
                ("alpha".into(), law.alpha),
                ("beta".into(), law.beta),
                ("E".into(), law.irreducible_loss()),
            ])
        })
        .unwrap();
        eprintln!(
            "parametric bootstrap, 1000 single-start refits of 36 points: {:?}",
            started.elapsed()
        );
        for (name, truth) in [("alpha", alpha), ("beta", beta), ("E", e)] {
            let iv = &summary.intervals[name];
            assert!(iv.lo < truth && truth < iv.hi, "{name}: {iv:?}");
            assert!(
                iv.hi - iv.lo < 0.5 * truth,
                "{name} interval too wide: {iv:?}"
            );
        }
        assert!(summary.failed < 10, "{}", summary.failed);
    }
}
