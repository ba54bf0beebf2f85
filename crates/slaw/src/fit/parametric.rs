//! Chinchilla approach 3: the parametric loss `L(N, D) = E + A/N^α + B/D^β`, fitted as Hoffmann
//! et al. (2022) and Besiroglu et al. (2024) do: `log L̂ = LSE(a − α·log N, b − β·log D, e)`,
//! summed Huber loss of the log residuals, L-BFGS from a 4500-point grid keeping the best.
//! Also the compute-optimal allocation the law implies under `C = k·N·D`.

use serde::{Deserialize, Serialize};

use super::optim::{grid_product, minimise_all, Objective, OptimiserSettings};
use super::{check_positive, huber, huber_slope, FitError, FitResult};

/// FLOPs per parameter per training example (token) in `C = k·N·D`: 6 (forward + backward).
pub const DEFAULT_FLOPS_PER_PARAM_EXAMPLE: f64 = 6.0;

/// One observation: a model of `params` parameters trained on `examples` examples (or tokens)
/// reached `loss`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParametricPoint {
    /// N, the parameter count.
    pub params: f64,
    /// D, the examples (tokens) seen.
    pub examples: f64,
    /// The final loss.
    pub loss: f64,
}

/// Starting values for the parametric fit, one list per parameter; every combination is a start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParametricGrid {
    /// Starting α.
    pub alpha: Vec<f64>,
    /// Starting β.
    pub beta: Vec<f64>,
    /// Starting `e = log E`.
    pub e: Vec<f64>,
    /// Starting `a = log A`.
    pub a: Vec<f64>,
    /// Starting `b = log B`.
    pub b: Vec<f64>,
}

impl Default for ParametricGrid {
    /// Hoffmann et al.'s grid: α, β ∈ {0, 0.5, 1, 1.5, 2}; e ∈ {−1, −0.5, 0, 0.5, 1};
    /// a, b ∈ {0, 5, 10, 15, 20, 25} (4500 starts).
    fn default() -> Self {
        let exps = vec![0.0, 0.5, 1.0, 1.5, 2.0];
        let logs = vec![0.0, 5.0, 10.0, 15.0, 20.0, 25.0];
        ParametricGrid {
            alpha: exps.clone(),
            beta: exps,
            e: vec![-1.0, -0.5, 0.0, 0.5, 1.0],
            a: logs.clone(),
            b: logs,
        }
    }
}

impl ParametricGrid {
    /// A single start at a previous fit's optimum (what bootstrap refits use).
    pub fn single(law: &ParametricLaw) -> Self {
        ParametricGrid {
            alpha: vec![law.alpha],
            beta: vec![law.beta],
            e: vec![law.e],
            a: vec![law.a],
            b: vec![law.b],
        }
    }

    /// Number of starts.
    pub fn len(&self) -> usize {
        self.alpha.len() * self.beta.len() * self.e.len() * self.a.len() * self.b.len()
    }

    /// Whether the grid has no start.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every start as `[e, a, b, α, β]`, in the order α, β, e, a, b (b fastest).
    fn starts(&self) -> Vec<Vec<f64>> {
        grid_product(&[&self.alpha, &self.beta, &self.e, &self.a, &self.b])
            .into_iter()
            .map(|s| vec![s[2], s[3], s[4], s[0], s[1]])
            .collect()
    }
}

/// How to fit a [`ParametricLaw`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParametricOptions {
    /// Starting points.
    pub grid: ParametricGrid,
    /// δ of the Huber loss on log residuals.
    pub huber_delta: f64,
    /// L-BFGS settings (threads, iteration cap, tolerances).
    pub optimiser: OptimiserSettings,
}

impl Default for ParametricOptions {
    fn default() -> Self {
        ParametricOptions {
            grid: ParametricGrid::default(),
            huber_delta: 1e-3,
            optimiser: OptimiserSettings::default(),
        }
    }
}

/// A fitted `L(N, D) = e^e + e^a/N^α + e^b/D^β`. In JSON the logs are `log_e`, `log_a`,
/// `log_b`, with `E`, `A`, `B` beside them (written, not read: they follow from the logs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ParametricLawJson", from = "ParametricLawJson")]
pub struct ParametricLaw {
    /// `log E`.
    pub e: f64,
    /// `log A`.
    pub a: f64,
    /// `log B`.
    pub b: f64,
    /// Exponent of the parameter count.
    pub alpha: f64,
    /// Exponent of the examples seen.
    pub beta: f64,
    /// Summed Huber loss of the log residuals at the fit.
    pub objective: f64,
    /// Number of points.
    pub n: usize,
    /// Starts tried.
    pub starts: usize,
    /// Starts that stopped by convergence rather than the iteration cap.
    pub converged_starts: usize,
}

impl ParametricLaw {
    /// The irreducible loss `E`.
    pub fn irreducible_loss(&self) -> f64 {
        self.e.exp()
    }

    /// `A`, the amplitude of the parameter term.
    pub fn amplitude_params(&self) -> f64 {
        self.a.exp()
    }

    /// `B`, the amplitude of the data term.
    pub fn amplitude_examples(&self) -> f64 {
        self.b.exp()
    }

    /// The fitted loss of `params` parameters trained on `examples` examples.
    pub fn predict(&self, params: f64, examples: f64) -> f64 {
        log_prediction(&self.vector(), params.ln(), examples.ln()).exp()
    }

    /// Exponent of `N*(C)`: `β/(α+β)`.
    pub fn params_exponent(&self) -> f64 {
        self.beta / (self.alpha + self.beta)
    }

    /// Exponent of `D*(C)`: `α/(α+β)`.
    pub fn examples_exponent(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// The loss-minimising `(N*, D*)` at compute `c` under `C = k·N·D`:
    /// `N* = G·(C/k)^(β/(α+β))`, `G = (αA/(βB))^(1/(α+β))`, `D* = (C/k)/N*`.
    /// An error when α or β is not positive (the law then has no interior optimum).
    pub fn optimal_allocation(&self, c: f64, k: f64) -> FitResult<(f64, f64)> {
        if !(self.alpha > 0.0 && self.beta > 0.0) {
            return Err(FitError::Degenerate(format!(
                "no compute-optimal allocation with α = {} and β = {}",
                self.alpha, self.beta
            )));
        }
        if !(c > 0.0 && k > 0.0 && c.is_finite() && k.is_finite()) {
            return Err(FitError::InvalidArgument(format!(
                "compute and k must be positive, got C = {c}, k = {k}"
            )));
        }
        let sum = self.alpha + self.beta;
        // log G = (log α + a − log β − b)/(α+β).
        let log_g = (self.alpha.ln() + self.a - self.beta.ln() - self.b) / sum;
        let log_budget = (c / k).ln();
        let log_n = log_g + self.beta / sum * log_budget;
        Ok((log_n.exp(), (log_budget - log_n).exp()))
    }

    /// `N*(C)` with `k` = [`DEFAULT_FLOPS_PER_PARAM_EXAMPLE`].
    pub fn optimal_params(&self, c: f64) -> FitResult<f64> {
        Ok(self
            .optimal_allocation(c, DEFAULT_FLOPS_PER_PARAM_EXAMPLE)?
            .0)
    }

    /// `D*(C)` with `k` = [`DEFAULT_FLOPS_PER_PARAM_EXAMPLE`].
    pub fn optimal_examples(&self, c: f64) -> FitResult<f64> {
        Ok(self
            .optimal_allocation(c, DEFAULT_FLOPS_PER_PARAM_EXAMPLE)?
            .1)
    }

    fn vector(&self) -> [f64; 5] {
        [self.e, self.a, self.b, self.alpha, self.beta]
    }
}

/// [`ParametricLaw`] as stored and printed: logs named as such, the amplitudes beside them.
/// Fits stored before the rename (`e`, `a`, `b`) are still read.
#[derive(Serialize, Deserialize)]
#[allow(non_snake_case)]
struct ParametricLawJson {
    #[serde(alias = "e")]
    log_e: f64,
    #[serde(alias = "a")]
    log_a: f64,
    #[serde(alias = "b")]
    log_b: f64,
    #[serde(default)]
    E: Option<f64>,
    #[serde(default)]
    A: Option<f64>,
    #[serde(default)]
    B: Option<f64>,
    alpha: f64,
    beta: f64,
    objective: f64,
    n: usize,
    starts: usize,
    converged_starts: usize,
}

impl From<ParametricLaw> for ParametricLawJson {
    fn from(l: ParametricLaw) -> Self {
        ParametricLawJson {
            log_e: l.e,
            log_a: l.a,
            log_b: l.b,
            E: Some(l.e.exp()).filter(|v| v.is_finite()),
            A: Some(l.a.exp()).filter(|v| v.is_finite()),
            B: Some(l.b.exp()).filter(|v| v.is_finite()),
            alpha: l.alpha,
            beta: l.beta,
            objective: l.objective,
            n: l.n,
            starts: l.starts,
            converged_starts: l.converged_starts,
        }
    }
}

impl From<ParametricLawJson> for ParametricLaw {
    fn from(j: ParametricLawJson) -> Self {
        ParametricLaw {
            e: j.log_e,
            a: j.log_a,
            b: j.log_b,
            alpha: j.alpha,
            beta: j.beta,
            objective: j.objective,
            n: j.n,
            starts: j.starts,
            converged_starts: j.converged_starts,
        }
    }
}

/// `LSE(a − α·log N, b − β·log D, e)` for parameters `[e, a, b, α, β]`.
fn log_prediction(p: &[f64], log_n: f64, log_d: f64) -> f64 {
    let t = [p[1] - p[3] * log_n, p[2] - p[4] * log_d, p[0]];
    let m = t[0].max(t[1]).max(t[2]);
    m + t.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// Summed Huber loss of log residuals; parameters `[e, a, b, α, β]`.
struct HuberObjective {
    log_n: Vec<f64>,
    log_d: Vec<f64>,
    log_loss: Vec<f64>,
    delta: f64,
}

impl Objective for HuberObjective {
    fn cost_and_gradient(&self, p: &[f64], grad: &mut [f64]) -> f64 {
        grad.fill(0.0);
        let mut cost = 0.0;
        for i in 0..self.log_loss.len() {
            let (ln, ld) = (self.log_n[i], self.log_d[i]);
            let t = [p[1] - p[3] * ln, p[2] - p[4] * ld, p[0]];
            let m = t[0].max(t[1]).max(t[2]);
            let w = [(t[0] - m).exp(), (t[1] - m).exp(), (t[2] - m).exp()];
            let z = w[0] + w[1] + w[2];
            let r = self.log_loss[i] - (m + z.ln());
            cost += huber(r, self.delta);
            // d cost/d θ = −ψ(r)·d log L̂/d θ, with softmax weights w/z.
            let s = -huber_slope(r, self.delta) / z;
            grad[0] += s * w[2];
            grad[1] += s * w[0];
            grad[2] += s * w[1];
            grad[3] -= s * w[0] * ln;
            grad[4] -= s * w[1] * ld;
        }
        cost
    }
}

/// Fits `L(N, D) = E + A/N^α + B/D^β` to the points (all values positive; at least 6 points).
pub fn fit_parametric(
    points: &[ParametricPoint],
    options: &ParametricOptions,
) -> FitResult<ParametricLaw> {
    if points.len() < 6 {
        return Err(FitError::TooFewPoints {
            what: "parametric law",
            needed: 6,
            got: points.len(),
        });
    }
    let column = |f: fn(&ParametricPoint) -> f64| points.iter().map(f).collect::<Vec<f64>>();
    let (params, examples, loss) = (
        column(|p| p.params),
        column(|p| p.examples),
        column(|p| p.loss),
    );
    check_positive("parametric law: params", &params)?;
    check_positive("parametric law: examples", &examples)?;
    check_positive("parametric law: loss", &loss)?;
    let delta = options.huber_delta;
    if !(delta > 0.0 && delta.is_finite()) {
        return Err(FitError::InvalidArgument(format!(
            "Huber delta must be positive, got {delta}"
        )));
    }
    let starts = options.grid.starts();
    if starts.is_empty() {
        return Err(FitError::InvalidArgument(
            "parametric law: the start grid is empty".into(),
        ));
    }
    let objective = HuberObjective {
        log_n: params.iter().map(|v| v.ln()).collect(),
        log_d: examples.iter().map(|v| v.ln()).collect(),
        log_loss: loss.iter().map(|v| v.ln()).collect(),
        delta,
    };
    let outcomes = minimise_all(&objective, &starts, &options.optimiser)?;
    let converged = outcomes.iter().flatten().filter(|o| o.converged).count();
    let best = outcomes
        .into_iter()
        .flatten()
        .fold(
            None,
            |best: Option<super::optim::StartOutcome>, o| match best {
                Some(b) if b.cost <= o.cost => Some(b),
                _ => Some(o),
            },
        )
        .ok_or_else(|| {
            FitError::OptimiserFailed(format!(
                "parametric law: no usable result from {} starts",
                starts.len()
            ))
        })?;
    let p = best.params;
    Ok(ParametricLaw {
        e: p[0],
        a: p[1],
        b: p[2],
        alpha: p[3],
        beta: p[4],
        objective: best.cost,
        n: points.len(),
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

    const TRUTH: [f64; 5] = [1.69, 406.4, 410.7, 0.34, 0.28]; // E, A, B, α, β (Hoffmann 2022)

    fn truth_law() -> ParametricLaw {
        ParametricLaw {
            e: TRUTH[0].ln(),
            a: TRUTH[1].ln(),
            b: TRUTH[2].ln(),
            alpha: TRUTH[3],
            beta: TRUTH[4],
            objective: 0.0,
            n: 0,
            starts: 0,
            converged_starts: 0,
        }
    }

    /// Points on a 7 × 7 (N, D) grid spanning 3 decades each, with seeded multiplicative noise.
    fn planted_points(noise: f64, seed: u64) -> Vec<ParametricPoint> {
        let law = truth_law();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut points = Vec::new();
        for n in log_space(1e7, 1e10, 7) {
            for d in log_space(1e8, 1e11, 7) {
                let loss = law.predict(n, d) * (noise * normal(&mut rng)).exp();
                points.push(ParametricPoint {
                    params: n,
                    examples: d,
                    loss,
                });
            }
        }
        points
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let pts = planted_points(0.01, 3);
        let obj = HuberObjective {
            log_n: pts.iter().map(|p| p.params.ln()).collect(),
            log_d: pts.iter().map(|p| p.examples.ln()).collect(),
            log_loss: pts.iter().map(|p| p.loss.ln()).collect(),
            delta: 1e-3,
        };
        let p = [0.5, 6.0, 6.5, 0.3, 0.3];
        let mut g = [0.0; 5];
        obj.cost_and_gradient(&p, &mut g);
        for i in 0..5 {
            let h = 1e-7;
            let (mut up, mut dn) = (p, p);
            up[i] += h;
            dn[i] -= h;
            let mut s = [0.0; 5];
            let fd = (obj.cost_and_gradient(&up, &mut s) - obj.cost_and_gradient(&dn, &mut s))
                / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6 * (1.0 + g[i].abs()),
                "{i}: {fd} vs {}",
                g[i]
            );
        }
    }

    /// Hoffmann's law planted on 49 points with 0.5% noise; a reduced grid (144 starts) is
    /// enough to recover every parameter within a few percent.
    #[test]
    fn planted_parametric_law_is_recovered() {
        let points = planted_points(0.005, 42);
        let options = ParametricOptions {
            grid: ParametricGrid {
                alpha: vec![0.0, 0.5, 1.0],
                beta: vec![0.0, 0.5, 1.0],
                e: vec![0.0, 0.5],
                a: vec![0.0, 5.0, 10.0, 15.0],
                b: vec![5.0, 10.0],
            },
            ..ParametricOptions::default()
        };
        let law = fit_parametric(&points, &options).unwrap();
        assert_eq!(law.starts, 144);
        assert!(
            (law.irreducible_loss() / TRUTH[0] - 1.0).abs() < 0.02,
            "{law:?}"
        );
        assert!((law.alpha / TRUTH[3] - 1.0).abs() < 0.05, "{law:?}");
        assert!((law.beta / TRUTH[4] - 1.0).abs() < 0.05, "{law:?}");
        assert!(
            (law.amplitude_params() / TRUTH[1] - 1.0).abs() < 0.25,
            "{law:?}"
        );
        assert!(
            (law.amplitude_examples() / TRUTH[2] - 1.0).abs() < 0.25,
            "{law:?}"
        );
        assert!(
            (law.params_exponent() - 0.28 / 0.62).abs() < 0.02,
            "{law:?}"
        );
    }

    #[test]
    fn noiseless_law_is_recovered_exactly_from_a_single_nearby_start() {
        let points = planted_points(0.0, 0);
        let mut start = truth_law();
        start.alpha = 0.3;
        start.beta = 0.3;
        start.e = 0.4;
        let options = ParametricOptions {
            grid: ParametricGrid::single(&start),
            ..ParametricOptions::default()
        };
        let law = fit_parametric(&points, &options).unwrap();
        assert_eq!(law.starts, 1);
        assert!((law.alpha - TRUTH[3]).abs() < 1e-4, "{law:?}");
        assert!((law.beta - TRUTH[4]).abs() < 1e-4, "{law:?}");
        assert!((law.irreducible_loss() - TRUTH[0]).abs() < 1e-4, "{law:?}");
    }

    /// The closed form against a brute-force search along the iso-compute line.
    #[test]
    fn optimal_allocation_minimises_loss_at_fixed_compute() {
        let law = truth_law();
        let c = 5.76e23;
        let (n_star, d_star) = law.optimal_allocation(c, 6.0).unwrap();
        assert!((6.0 * n_star * d_star / c - 1.0).abs() < 1e-12);
        let best_brute = log_space(1e8, 1e12, 40_001)
            .into_iter()
            .map(|n| (law.predict(n, c / (6.0 * n)), n))
            .fold((f64::INFINITY, 0.0), |a, b| if b.0 < a.0 { b } else { a });
        assert!(
            (best_brute.1 / n_star - 1.0).abs() < 1e-3,
            "{best_brute:?} vs {n_star}"
        );
        assert_eq!(law.optimal_params(c).unwrap(), n_star);
        assert_eq!(law.optimal_examples(c).unwrap(), d_star);
        // N* scales as C^(β/(α+β)).
        let ratio = law.optimal_params(100.0 * c).unwrap() / n_star;
        assert!((ratio.log(100.0) - law.params_exponent()).abs() < 1e-12);
        let mut flat = law.clone();
        flat.beta = 0.0;
        assert!(matches!(
            flat.optimal_params(c),
            Err(FitError::Degenerate(_))
        ));
    }

    #[test]
    fn bad_points_are_errors() {
        let mut pts = planted_points(0.0, 0);
        pts[3].examples = -1.0;
        assert!(matches!(
            fit_parametric(&pts, &ParametricOptions::default()),
            Err(FitError::NonPositive { index: 3, .. })
        ));
        assert!(matches!(
            fit_parametric(&pts[..4], &ParametricOptions::default()),
            Err(FitError::TooFewPoints { .. })
        ));
    }
}
