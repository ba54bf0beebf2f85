//! Coverage of every interval slaw prints, on planted data with a known answer: many seeded
//! data sets drawn from one law `L(N, D) = E + A/N^α + B/D^β` (Hoffmann et al.'s coefficients,
//! multiplicative noise), each fitted by `fit_all`, each interval checked against the truth. Two
//! designs: a sweep of sizes × budgets (what `slaw run` produces) and IsoFLOP budgets with sizes
//! around each optimum (Chinchilla's approach-2 experiments).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::laws::{fit_all, FitConfig, FitReport};
use super::observations::{Observations, ParamsCount, Run};
use super::predict;
use crate::fit::testutil::normal;

/// Hoffmann et al.'s law (tokens as D), the truth of every planted data set here.
pub use super::planted::hoffmann as truth;

/// The planted designs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// 7 sizes (factor 2) × 6 budgets (factor 2), each run's curve at 8 points.
    Sweep,
    /// 6 IsoFLOP budgets (factor 4), 9 sizes per budget spaced by e^0.3 around a seeded offset
    /// from the optimum.
    IsoFlop,
}

fn run(id: String, n: f64, d: f64, loss: f64, curve: Vec<(f64, f64)>) -> Run {
    Run {
        id: id.clone(),
        size: format!("n{n:.4e}"),
        params: n,
        examples: d,
        epochs: None,
        flops: 6.0 * n * d,
        lr: None,
        loss: Some(loss),
        curve,
        weight: None,
    }
}

/// One planted data set with relative noise `sigma`.
pub fn planted(design: Design, sigma: f64, seed: u64) -> Observations {
    let law = truth();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut runs = Vec::new();
    match design {
        Design::Sweep => {
            for i in 0..7 {
                let n = 2e7 * 2f64.powi(i);
                for j in 0..6 {
                    let d = 4e8 * 2f64.powi(j);
                    let curve: Vec<(f64, f64)> = (1..=8)
                        .map(|k| {
                            let dk = d * k as f64 / 8.0;
                            let l = law.predict(n, dk) * (sigma * normal(&mut rng)).exp();
                            (6.0 * n * dk, l)
                        })
                        .collect();
                    let loss = curve.last().map_or(0.0, |p| p.1);
                    runs.push(run(format!("{i}-{j}"), n, d, loss, curve));
                }
            }
        }
        Design::IsoFlop => {
            for k in 0..6 {
                let c = 1e18 * 4f64.powi(k);
                let n_star = law.optimal_params(c).unwrap_or(1e8);
                let offset = 0.5 * (rand::Rng::random::<f64>(&mut rng) - 0.5);
                for j in -4..=4 {
                    let n = n_star * (offset + 0.3 * j as f64).exp();
                    let d = c / (6.0 * n);
                    let loss = law.predict(n, d) * (sigma * normal(&mut rng)).exp();
                    runs.push(run(format!("{k}-{j}"), n, d, loss, vec![(c, loss)]));
                }
            }
        }
    }
    Observations {
        source: format!("planted:{design:?}:{sigma}:{seed}"),
        sweep_id: None,
        params_count: ParamsCount::Total,
        examples_per_epoch: None,
        loss_name: None,
        runs,
        source_hash: None,
        notes: Vec::new(),
    }
}

/// The largest compute of a data set.
fn c_max(obs: &Observations) -> f64 {
    obs.runs.iter().map(|r| r.flops).fold(0.0, f64::max)
}

/// One checked interval: whether it holds the truth (None when slaw printed none).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Data sets where the interval was printed.
    pub printed: usize,
    /// …and held the truth.
    pub covered: usize,
    /// Sum of log(estimate/truth), for the bias.
    pub log_bias: f64,
    /// Sum of log(hi/lo), for the width.
    pub log_width: f64,
}

impl Tally {
    fn add(&mut self, lo: Option<f64>, hi: Option<f64>, value: f64, truth: f64) {
        if let (Some(lo), Some(hi)) = (lo, hi) {
            self.printed += 1;
            if lo <= truth && truth <= hi {
                self.covered += 1;
            }
            self.log_bias += (value / truth).ln();
            self.log_width += (hi / lo).abs().ln();
        }
    }

    /// Covered share of printed intervals.
    pub fn rate(&self) -> f64 {
        if self.printed == 0 {
            return f64::NAN;
        }
        self.covered as f64 / self.printed as f64
    }
}

/// What a quantity's interval and truth are for one report.
type Check = (&'static str, Option<f64>, Option<f64>, f64, f64);

fn checks(report: &FitReport, obs: &Observations, new_run_noise: f64) -> Vec<Check> {
    let law = truth();
    let a_true = law.params_exponent();
    let c_far = 100.0 * c_max(obs);
    let n_far = law.optimal_params(c_far).unwrap_or(f64::NAN);
    let mut out = Vec::new();
    if let Some(p) = report.parametric.as_ref().and_then(|m| m.fitted()) {
        let s = p.samples.as_ref();
        let iv = |f: &dyn Fn(&[f64]) -> f64| s.and_then(|s| s.interval_of(f));
        let ratio = iv(&|v| v[4] / (v[3] + v[4]));
        out.push((
            "parametric β/(α+β)",
            ratio.as_ref().map(|i| i.lo),
            ratio.as_ref().map(|i| i.hi),
            p.law.params_exponent(),
            a_true,
        ));
        for (name, i, t) in [
            ("parametric α", 3, law.alpha),
            ("parametric β", 4, law.beta),
        ] {
            let v = iv(&|v| v[i]);
            out.push((
                name,
                v.as_ref().map(|x| x.lo),
                v.as_ref().map(|x| x.hi),
                if i == 3 { p.law.alpha } else { p.law.beta },
                t,
            ));
        }
        let e = iv(&|v| v[0].exp());
        out.push((
            "parametric E",
            e.as_ref().map(|i| i.lo),
            e.as_ref().map(|i| i.hi),
            p.law.irreducible_loss(),
            law.irreducible_loss(),
        ));
    }
    if let Some(i) = report.isoflop.as_ref().and_then(|m| m.fitted()) {
        let iv = i
            .samples
            .as_ref()
            .and_then(|s| s.intervals.get("params_b").cloned());
        out.push((
            "IsoFLOP N*(C) exponent",
            iv.as_ref().map(|v| v.lo),
            iv.as_ref().map(|v| v.hi),
            i.fit.params_law.b,
            a_true,
        ));
    }
    if let Some(f) = report.frontier.as_ref().and_then(|m| m.fitted()) {
        if let Some(p) = f.params_law.fitted() {
            let iv = f
                .allocation_samples
                .as_ref()
                .and_then(|s| s.intervals.get("params_b").cloned());
            out.push((
                "frontier N*(C) exponent",
                iv.as_ref().map(|v| v.lo),
                iv.as_ref().map(|v| v.hi),
                p.b,
                a_true,
            ));
        }
    }
    // A model twice the largest size on the largest budget: the law's mean, and one new run.
    let n_max = obs.runs.iter().map(|r| r.params).fold(0.0, f64::max);
    let d_max = obs.runs.iter().map(|r| r.examples).fold(0.0, f64::max);
    if let Ok(p) = predict::at_size(report, 2.0 * n_max, d_max) {
        if let Some(e) = p.loss.first() {
            let mean = law.predict(2.0 * n_max, d_max);
            out.push(("parametric L at 2×N, mean", e.lo, e.hi, e.value, mean));
            out.push((
                "parametric L at 2×N, new run",
                e.pred_lo,
                e.pred_hi,
                e.value,
                mean * new_run_noise,
            ));
        }
    }
    if let Ok(p) = predict::at_compute(report, c_far) {
        for e in &p.params_star {
            let name: &'static str = if e.method.starts_with("parametric") {
                "parametric N* at 100×"
            } else if e.method.starts_with("IsoFLOP") {
                "IsoFLOP N* at 100×"
            } else {
                "frontier N* at 100×"
            };
            out.push((name, e.lo, e.hi, e.value, n_far));
        }
    }
    out
}

/// Fits `count` data sets of `design` at noise `sigma` and tallies every interval.
pub fn tally(design: Design, sigma: f64, count: u64, bootstrap: usize) -> Vec<(String, Tally)> {
    let config = FitConfig {
        lr: false,
        bootstrap,
        ..FitConfig::default()
    };
    let mut tallies: Vec<(String, Tally)> = Vec::new();
    for seed in 0..count {
        let obs = planted(design, sigma, 1000 + seed);
        let report = fit_all(&obs, &[], &config);
        let mut rng = ChaCha8Rng::seed_from_u64(77 + seed);
        let new_run_noise = (sigma * normal(&mut rng)).exp();
        if seed == 0 {
            for (name, m) in [
                ("isoflop", report.isoflop.as_ref().and_then(|m| m.problem())),
                (
                    "frontier",
                    report.frontier.as_ref().and_then(|m| m.problem()),
                ),
            ] {
                if let Some(m) = m {
                    eprintln!("  seed 0: {name} {m}");
                }
            }
        }
        for (name, lo, hi, value, truth) in checks(&report, &obs, new_run_noise) {
            let pos = match tallies.iter().position(|(n, _)| n == name) {
                Some(p) => p,
                None => {
                    tallies.push((name.to_string(), Tally::default()));
                    tallies.len() - 1
                }
            };
            tallies[pos].1.add(lo, hi, value, truth);
        }
    }
    tallies
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22's acceptance: on 30 planted data sets of each design (1 % noise), every interval
    /// slaw prints holds the truth in at least 85 % of the data sets where it is printed, and it
    /// is printed in at least 25 of the 30 (an interval that goes missing is not excused).
    #[test]
    fn every_printed_interval_covers_the_planted_truth() {
        let mut failures = Vec::new();
        for design in [Design::Sweep, Design::IsoFlop] {
            for (name, t) in tally(design, 0.01, 30, 200) {
                eprintln!(
                    "{design:?} {name:<30} {}/{} = {:.1} %",
                    t.covered,
                    t.printed,
                    100.0 * t.rate()
                );
                if t.printed < 25 || t.rate() < 0.85 {
                    failures.push(format!("{design:?} {name}: {}/{}", t.covered, t.printed));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:?}");
    }

    /// The learning-rate laws on 30 planted sweeps (6 sizes × 4 budgets × 6 rates, 1 % noise,
    /// η* = 3e-3·(N/1e8)^−0.3 at every budget): the intervals of c1 (both laws) and of c2
    /// (the budget law, truth 0) hold the truth in at least 85 % of them.
    #[test]
    fn learning_rate_law_intervals_cover_the_planted_exponents() {
        let config = FitConfig {
            frontier: false,
            isoflop: false,
            parametric: false,
            bootstrap: 200,
            ..FitConfig::default()
        };
        let mut t = [Tally::default(), Tally::default(), Tally::default()];
        let count = |t: &mut Tally, s: Option<&super::super::laws::Samples>, name, truth: f64| {
            if let Some(i) = s.and_then(|s| s.intervals.get(name)) {
                t.printed += 1;
                t.covered += usize::from(i.lo <= truth && truth <= i.hi);
            }
        };
        for seed in 0..30 {
            let obs = crate::analysis::planted::sweep(6, 4, 6, 0.01, 500 + seed);
            let report = fit_all(&obs, &[], &config);
            let lr = report.lr.as_ref().and_then(|m| m.fitted()).expect("lr law");
            if lr.params_law.fitted().is_some() {
                count(&mut t[0], lr.params_samples.as_ref(), "c1", -0.3);
            }
            if lr.budget_law.fitted().is_some() {
                count(&mut t[1], lr.budget_samples.as_ref(), "c1", -0.3);
                count(&mut t[2], lr.budget_samples.as_ref(), "c2", 0.0);
            }
        }
        for (name, t) in ["η*(N) c1", "η*(N, D) c1", "η*(N, D) c2"].iter().zip(&t) {
            eprintln!("{name}: {}/{}", t.covered, t.printed);
            assert!(
                t.printed >= 25 && t.rate() >= 0.85,
                "{name}: {}/{}",
                t.covered,
                t.printed
            );
        }
    }

    /// The coverage table (not an assertion yet): `cargo test --release coverage_table -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn coverage_table() {
        for design in [Design::Sweep, Design::IsoFlop] {
            for sigma in [0.005, 0.01] {
                let started = std::time::Instant::now();
                let t = tally(design, sigma, 30, 200);
                eprintln!(
                    "{design:?} σ = {sigma} ({:.0} s):",
                    started.elapsed().as_secs_f64()
                );
                for (name, t) in t {
                    eprintln!(
                        "  {name:<26} covered {:>2}/{:<2} = {:>5.1} %   mean log(est/truth) {:+.3}   mean log(hi/lo) {:.3}",
                        t.covered,
                        t.printed,
                        100.0 * t.rate(),
                        t.log_bias / t.printed.max(1) as f64,
                        t.log_width / t.printed.max(1) as f64
                    );
                }
            }
        }
    }
}
