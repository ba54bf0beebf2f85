//! Chinchilla approach 2, IsoFLOP profiles: group runs by compute budget, fit per budget a
//! parabola of loss against log N on the sizes near the budget's best run (a window in log N, as
//! the published procedures do: a parabola over a whole budget is pulled off the minimum by
//! the profile's asymmetry), take its vertex as the budget's optimal size, then fit power laws
//! `N*(C)` and `D*(C)` over the budgets whose vertex can be trusted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ols::least_squares;
use super::power_law::{power_law, PowerLaw};
use super::{check_finite, check_positive, FitError, FitResult};

/// One run: a model of `params` parameters trained on `examples` examples for `compute` FLOPs
/// reached `loss`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IsoFlopPoint {
    /// N.
    pub params: f64,
    /// D.
    pub examples: f64,
    /// C.
    pub compute: f64,
    /// Final loss.
    pub loss: f64,
}

/// How runs are assigned to compute budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BudgetGrouping {
    /// Sorted by compute, a budget starts at its smallest C and takes every run with
    /// `C ≤ C_first·(1 + tolerance)`, e.g. 0.05.
    RelativeTolerance(f64),
    /// Explicit budget ids, one per point, in the same order as the points.
    Ids(Vec<u64>),
}

/// The default half-width of the window in ln N around a budget's best run: sizes within a
/// factor e (2.7×) of it. On Porian et al.'s RefinedWeb points any half-width from 0.4 to 1.2
/// gives their allocation exponent's interval; the whole budget does not (0.514).
pub const DEFAULT_WINDOW: f64 = 1.0;

/// The fewest sizes a window holds (when the budget has them): a parabola through three noisy
/// points puts its vertex anywhere between them.
pub const MIN_WINDOW_SIZES: usize = 5;

/// Which sizes of a budget the parabola is fitted to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ProfileWindow {
    /// Every size of the budget.
    Whole,
    /// Sizes with |ln N − ln N_best| ≤ the half-width, N_best the size of the budget's lowest
    /// loss; widened to the nearest sizes when fewer than [`MIN_WINDOW_SIZES`] fall inside.
    AroundBest(f64),
}

impl Default for ProfileWindow {
    fn default() -> Self {
        ProfileWindow::AroundBest(DEFAULT_WINDOW)
    }
}

/// Why a budget's vertex is not used for the laws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VertexFlag {
    /// Fewer than three distinct sizes: no parabola.
    TooFewSizes,
    /// The parabola opens downwards (or is flat): its vertex is a maximum.
    NotConvex,
    /// The vertex lies outside the range of sizes sampled at this budget (an extrapolation).
    OutsideSampledRange,
}

impl std::fmt::Display for VertexFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VertexFlag::TooFewSizes => "fewer than 3 sizes",
            VertexFlag::NotConvex => "no minimum (the parabola is not convex)",
            VertexFlag::OutsideSampledRange => "vertex outside the sizes fitted",
        })
    }
}

/// The fitted profile of one budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetVertex {
    /// The budget's compute: the geometric mean of its runs' C.
    pub compute: f64,
    /// The budget's id, when grouping by ids.
    pub budget_id: Option<u64>,
    /// Runs in this budget.
    pub points: usize,
    /// Distinct model sizes among them.
    pub distinct_sizes: usize,
    /// Smallest and largest N sampled.
    pub params_range: (f64, f64),
    /// Runs the parabola was fitted to (those in the window).
    #[serde(default)]
    pub fitted_points: usize,
    /// Smallest and largest N the parabola was fitted to; the vertex must lie inside.
    #[serde(default)]
    pub fitted_range: (f64, f64),
    /// Sum of squared relative residuals `(loss − fit)/fit` of the parabola, and its degrees
    /// of freedom (points − 3): the run-to-run noise the bootstrap resamples.
    #[serde(default)]
    pub relative_residual_ss: f64,
    /// Degrees of freedom of [`relative_residual_ss`](Self::relative_residual_ss).
    #[serde(default)]
    pub residual_dof: usize,
    /// Coefficient of `(log N)²` in the parabola (positive when convex).
    pub curvature: Option<f64>,
    /// N at the vertex (present when the parabola is convex and the vertex representable).
    pub params_star: Option<f64>,
    /// D at the vertex: the geometric mean of N·D over the budget divided by N* (equal to
    /// `C/(k·N*)` when every run has `C = k·N·D`).
    pub examples_star: Option<f64>,
    /// The parabola's minimum loss.
    pub loss_star: Option<f64>,
    /// Problems with this vertex; empty when it is used for the laws.
    pub flags: Vec<VertexFlag>,
}

impl BudgetVertex {
    /// Whether the vertex is trusted: a convex parabola with its minimum inside the sampled range.
    pub fn is_valid(&self) -> bool {
        self.flags.is_empty() && self.params_star.is_some()
    }
}

/// Per-budget vertices and the laws fitted to the valid ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IsoFlopFit {
    /// Every budget, in increasing compute.
    pub budgets: Vec<BudgetVertex>,
    /// `N*(C) = a·C^b` over the valid vertices.
    pub params_law: PowerLaw,
    /// `D*(C) = a·C^b` over the valid vertices.
    pub examples_law: PowerLaw,
}

/// Groups the points into budgets and fits each budget's parabola `loss = c0 + c1·x + c2·x²`,
/// `x = log N`, by least squares. Budgets come back in increasing compute.
pub fn isoflop_vertices(
    points: &[IsoFlopPoint],
    grouping: &BudgetGrouping,
    window: ProfileWindow,
) -> FitResult<Vec<BudgetVertex>> {
    let column = |f: fn(&IsoFlopPoint) -> f64| points.iter().map(f).collect::<Vec<f64>>();
    check_positive("isoflop: params", &column(|p| p.params))?;
    check_positive("isoflop: examples", &column(|p| p.examples))?;
    check_positive("isoflop: compute", &column(|p| p.compute))?;
    check_finite("isoflop: loss", &column(|p| p.loss))?;

    let groups: Vec<(Option<u64>, Vec<usize>)> = match grouping {
        BudgetGrouping::RelativeTolerance(tol) => {
            if !(*tol >= 0.0 && tol.is_finite()) {
                return Err(FitError::InvalidArgument(format!(
                    "isoflop: relative tolerance must be non-negative, got {tol}"
                )));
            }
            let mut order: Vec<usize> = (0..points.len()).collect();
            order.sort_by(|&i, &j| points[i].compute.total_cmp(&points[j].compute));
            let mut groups: Vec<(Option<u64>, Vec<usize>)> = Vec::new();
            let mut first = f64::NAN;
            for i in order {
                let c = points[i].compute;
                match groups.last_mut() {
                    Some((_, members)) if c <= first * (1.0 + tol) => members.push(i),
                    _ => {
                        first = c;
                        groups.push((None, vec![i]));
                    }
                }
            }
            groups
        }
        BudgetGrouping::Ids(ids) => {
            if ids.len() != points.len() {
                return Err(FitError::LengthMismatch {
                    what: "isoflop: budget ids and points",
                    left: ids.len(),
                    right: points.len(),
                });
            }
            let mut by_id: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for (i, id) in ids.iter().enumerate() {
                by_id.entry(*id).or_default().push(i);
            }
            by_id.into_iter().map(|(id, m)| (Some(id), m)).collect()
        }
    };

    let mut budgets: Vec<BudgetVertex> = groups
        .into_iter()
        .map(|(id, members)| {
            let pts: Vec<IsoFlopPoint> = members.iter().map(|&i| points[i]).collect();
            budget_vertex(id, &pts, window)
        })
        .collect::<FitResult<_>>()?;
    budgets.sort_by(|a, b| a.compute.total_cmp(&b.compute));
    Ok(budgets)
}

fn geometric_mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    (sum / n as f64).exp()
}

/// The runs of a budget inside `window` (all of them when fewer than three sizes exist).
fn windowed(pts: &[IsoFlopPoint], window: ProfileWindow) -> Vec<IsoFlopPoint> {
    let ProfileWindow::AroundBest(half) = window else {
        return pts.to_vec();
    };
    let Some(best) = pts.iter().min_by(|a, b| a.loss.total_cmp(&b.loss)) else {
        return Vec::new();
    };
    let centre = best.params.ln();
    // Distinct sizes by distance from the best; keep those inside, at least MIN_WINDOW_SIZES.
    let mut sizes: Vec<f64> = pts.iter().map(|p| p.params).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    sizes.sort_by(|a, b| (a.ln() - centre).abs().total_cmp(&(b.ln() - centre).abs()));
    let inside = sizes
        .iter()
        .filter(|n| (n.ln() - centre).abs() <= half + 1e-12)
        .count()
        .max(MIN_WINDOW_SIZES);
    let kept = &sizes[..inside.min(sizes.len())];
    pts.iter()
        .filter(|p| kept.contains(&p.params))
        .copied()
        .collect()
}

fn log_range(pts: &[IsoFlopPoint]) -> (f64, f64) {
    pts.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.params.ln()), hi.max(p.params.ln()))
        })
}

fn budget_vertex(
    budget_id: Option<u64>,
    all: &[IsoFlopPoint],
    window: ProfileWindow,
) -> FitResult<BudgetVertex> {
    let compute = geometric_mean(all.iter().map(|p| p.compute));
    let (lo, hi) = log_range(all);
    let mut sizes: Vec<f64> = all.iter().map(|p| p.params).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let pts = windowed(all, window);
    let (wlo, whi) = log_range(&pts);
    let mut vertex = BudgetVertex {
        compute,
        budget_id,
        points: all.len(),
        distinct_sizes: sizes.len(),
        params_range: (lo.exp(), hi.exp()),
        fitted_points: pts.len(),
        fitted_range: (wlo.exp(), whi.exp()),
        relative_residual_ss: 0.0,
        residual_dof: 0,
        curvature: None,
        params_star: None,
        examples_star: None,
        loss_star: None,
        flags: Vec::new(),
    };
    if sizes.len() < 3 {
        vertex.flags.push(VertexFlag::TooFewSizes);
        return Ok(vertex);
    }
    let log_n: Vec<f64> = pts.iter().map(|p| p.params.ln()).collect();
    // Centre log N for conditioning.
    let centre = log_n.iter().sum::<f64>() / log_n.len() as f64;
    let rows: Vec<[f64; 3]> = log_n
        .iter()
        .map(|x| {
            let u = x - centre;
            [1.0, u, u * u]
        })
        .collect();
    let loss: Vec<f64> = pts.iter().map(|p| p.loss).collect();
    let fit = least_squares(&rows, &loss, None)?;
    let (c0, c1, c2) = (fit.beta[0], fit.beta[1], fit.beta[2]);
    vertex.curvature = Some(c2);
    for (row, l) in rows.iter().zip(&loss) {
        let fitted = c0 + c1 * row[1] + c2 * row[2];
        vertex.relative_residual_ss += ((l - fitted) / fitted).powi(2);
    }
    vertex.residual_dof = pts.len().saturating_sub(3);
    if c2 <= 0.0 {
        vertex.flags.push(VertexFlag::NotConvex);
        return Ok(vertex);
    }
    let u_star = -c1 / (2.0 * c2);
    let x_star = centre + u_star;
    if x_star < wlo || x_star > whi {
        vertex.flags.push(VertexFlag::OutsideSampledRange);
    }
    let params_star = x_star.exp();
    if !(params_star.is_finite() && params_star > 0.0) {
        // A nearly flat parabola puts its vertex beyond any representable size.
        return Ok(vertex);
    }
    let nd = geometric_mean(all.iter().map(|p| p.params * p.examples));
    vertex.params_star = Some(params_star);
    vertex.examples_star = Some(nd / params_star);
    vertex.loss_star = Some(c0 + c1 * u_star + c2 * u_star * u_star);
    Ok(vertex)
}

/// [`isoflop_vertices`], then power laws of N* and D* against compute over the valid vertices
/// (at least 3 needed), with intervals at `level`.
pub fn fit_isoflop(
    points: &[IsoFlopPoint],
    grouping: &BudgetGrouping,
    window: ProfileWindow,
    level: f64,
) -> FitResult<IsoFlopFit> {
    let budgets = isoflop_vertices(points, grouping, window)?;
    vertex_laws(budgets, level)
}

/// Power laws of N* and D* against compute over the valid vertices of `budgets` (at least 3).
pub fn vertex_laws(budgets: Vec<BudgetVertex>, level: f64) -> FitResult<IsoFlopFit> {
    let valid: Vec<(f64, f64, f64)> = budgets
        .iter()
        .filter(|b| b.is_valid())
        .filter_map(|b| Some((b.compute, b.params_star?, b.examples_star?)))
        .collect();
    if valid.len() < 3 {
        return Err(FitError::TooFewPoints {
            what: "isoflop laws: budgets with a valid vertex",
            needed: 3,
            got: valid.len(),
        });
    }
    let c: Vec<f64> = valid.iter().map(|v| v.0).collect();
    let n: Vec<f64> = valid.iter().map(|v| v.1).collect();
    let d: Vec<f64> = valid.iter().map(|v| v.2).collect();
    Ok(IsoFlopFit {
        params_law: power_law(&c, &n, None, level)?,
        examples_law: power_law(&c, &d, None, level)?,
        budgets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::parametric::ParametricLaw;
    use crate::fit::testutil::{log_space, normal};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn hoffmann() -> ParametricLaw {
        ParametricLaw {
            e: 1.69_f64.ln(),
            a: 406.4_f64.ln(),
            b: 410.7_f64.ln(),
            alpha: 0.34,
            beta: 0.28,
            objective: 0.0,
            n: 0,
            starts: 0,
            converged_starts: 0,
        }
    }

    /// Seven sizes per budget, spaced by e^0.4, around a seeded random offset (±0.25 in log N)
    /// from the true optimum; 0.05% loss noise.
    fn planted_family(budgets: &[f64], seed: u64) -> Vec<IsoFlopPoint> {
        let law = hoffmann();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut points = Vec::new();
        for &c in budgets {
            let n_star = law.optimal_params(c).unwrap();
            let offset: f64 = rng.random_range(-0.25..0.25);
            for j in -3..=3 {
                let n = n_star * (offset + 0.4 * j as f64).exp();
                let d = c / (6.0 * n);
                let loss = law.predict(n, d) * (1.0 + 0.0005 * normal(&mut rng));
                points.push(IsoFlopPoint {
                    params: n,
                    examples: d,
                    compute: c * (1.0 + 0.01 * normal(&mut rng)), // budgets are not exact
                    loss,
                });
            }
        }
        points
    }

    #[test]
    fn planted_isoflop_family_recovers_the_allocation_exponent() {
        let budgets = log_space(1e18, 1e22, 9);
        let points = planted_family(&budgets, 99);
        let fit = fit_isoflop(
            &points,
            &BudgetGrouping::RelativeTolerance(0.1),
            ProfileWindow::default(),
            0.95,
        )
        .unwrap();
        assert_eq!(fit.budgets.len(), 9);
        assert!(fit.budgets.iter().all(|b| b.is_valid() && b.points == 7));
        let expected = 0.28 / (0.34 + 0.28); // β/(α+β) = 0.4516
        let law = &fit.params_law;
        assert!((law.b - expected).abs() < 0.01, "{law:?}");
        assert!(
            law.ci_b.0 - 0.01 < expected && expected < law.ci_b.1 + 0.01,
            "{law:?}"
        );
        assert!((fit.examples_law.b - (1.0 - expected)).abs() < 0.01);
        // Each vertex is near the true optimum (the parabola is only an approximation).
        let truth = hoffmann();
        for b in &fit.budgets {
            let ratio = b.params_star.unwrap() / truth.optimal_params(b.compute).unwrap();
            assert!((ratio.ln()).abs() < 0.1, "{b:?}");
            let k = b.compute / (b.params_star.unwrap() * b.examples_star.unwrap());
            assert!((k / 6.0 - 1.0).abs() < 0.03, "{k}");
        }
    }

    #[test]
    fn untrustworthy_vertices_are_flagged_and_left_out() {
        let law = hoffmann();
        let mut points = planted_family(&log_space(1e18, 1e20, 3), 1);
        let mut ids: Vec<u64> = (0..points.len()).map(|i| (i / 7) as u64).collect();
        // Budget 10: all sizes far below the optimum (the minimum is extrapolated).
        let c = 1e21;
        let n_star = law.optimal_params(c).unwrap();
        for j in 0..5 {
            let n = n_star * (-3.0 + 0.3 * j as f64).exp();
            let d = c / (6.0 * n);
            points.push(IsoFlopPoint {
                params: n,
                examples: d,
                compute: c,
                loss: law.predict(n, d),
            });
            ids.push(10);
        }
        // Budget 11: concave losses.
        for (j, loss) in [3.0, 3.2, 3.0].iter().enumerate() {
            let n = 1e8 * 2f64.powi(j as i32);
            points.push(IsoFlopPoint {
                params: n,
                examples: 1e19 / (6.0 * n),
                compute: 1e19,
                loss: *loss,
            });
            ids.push(11);
        }
        // Budget 12: only two sizes.
        for n in [1e8, 2e8] {
            points.push(IsoFlopPoint {
                params: n,
                examples: 1e10,
                compute: 6e18,
                loss: 3.0,
            });
            ids.push(12);
        }
        let budgets = isoflop_vertices(
            &points,
            &BudgetGrouping::Ids(ids.clone()),
            ProfileWindow::default(),
        )
        .unwrap();
        let flags = |id: u64| {
            budgets
                .iter()
                .find(|b| b.budget_id == Some(id))
                .unwrap()
                .flags
                .clone()
        };
        assert_eq!(flags(10), vec![VertexFlag::OutsideSampledRange]);
        assert_eq!(flags(11), vec![VertexFlag::NotConvex]);
        assert_eq!(flags(12), vec![VertexFlag::TooFewSizes]);
        assert!(budgets.windows(2).all(|w| w[0].compute <= w[1].compute));
        let valid = budgets.iter().filter(|b| b.is_valid()).count();
        assert_eq!(valid, 3);
        // Three valid budgets are enough for the laws; dropping one is not.
        assert!(fit_isoflop(
            &points,
            &BudgetGrouping::Ids(ids.clone()),
            ProfileWindow::default(),
            0.95
        )
        .is_ok());
        let keep: Vec<usize> = (0..points.len()).filter(|&i| ids[i] != 0).collect();
        let points2: Vec<IsoFlopPoint> = keep.iter().map(|&i| points[i]).collect();
        let ids2: Vec<u64> = keep.iter().map(|&i| ids[i]).collect();
        assert!(matches!(
            fit_isoflop(
                &points2,
                &BudgetGrouping::Ids(ids2),
                ProfileWindow::default(),
                0.95
            ),
            Err(FitError::TooFewPoints { got: 2, .. })
        ));
    }

    #[test]
    fn exact_parabola_vertex_is_exact() {
        // loss = 2 + 0.1·(log N − log 3e8)² at five sizes.
        let x0 = 3e8_f64.ln();
        let points: Vec<IsoFlopPoint> = [1e8, 2e8, 4e8, 8e8, 1.6e9]
            .iter()
            .map(|&n: &f64| IsoFlopPoint {
                params: n,
                examples: 1e20 / (6.0 * n),
                compute: 1e20,
                loss: 2.0 + 0.1 * (n.ln() - x0).powi(2),
            })
            .collect();
        let v = &isoflop_vertices(
            &points,
            &BudgetGrouping::RelativeTolerance(0.05),
            ProfileWindow::Whole,
        )
        .unwrap()[0];
        assert!((v.params_star.unwrap() / 3e8 - 1.0).abs() < 1e-9);
        assert!((v.loss_star.unwrap() - 2.0).abs() < 1e-12);
        assert!((v.curvature.unwrap() - 0.1).abs() < 1e-12);
        assert!((v.examples_star.unwrap() - 1e20 / (6.0 * 3e8)).abs() / 1e11 < 1e-6);
    }

    /// A wide, noiseless Hoffmann profile (sizes from e^−2.5 to e^2.5 around the optimum): the
    /// parabola over the whole budget misses the optimum by 4 %, the window around the best
    /// run by under 1 %; a window always keeps five sizes.
    #[test]
    fn the_window_around_the_best_run_finds_an_asymmetric_minimum() {
        let law = hoffmann();
        let c = 1e21;
        let n_star = law.optimal_params(c).unwrap();
        let points: Vec<IsoFlopPoint> = (-10..=10)
            .map(|j| {
                let n = n_star * (0.25 * j as f64 + 0.1).exp();
                IsoFlopPoint {
                    params: n,
                    examples: c / (6.0 * n),
                    compute: c,
                    loss: law.predict(n, c / (6.0 * n)),
                }
            })
            .collect();
        let vertex = |w| {
            let v =
                &isoflop_vertices(&points, &BudgetGrouping::RelativeTolerance(0.05), w).unwrap()[0];
            (v.params_star.unwrap() / n_star).ln().abs()
        };
        let (whole, near) = (
            vertex(ProfileWindow::Whole),
            vertex(ProfileWindow::default()),
        );
        assert!(whole > 0.03 && near < 0.01, "whole {whole}, window {near}");
        let v = &isoflop_vertices(
            &points,
            &BudgetGrouping::RelativeTolerance(0.05),
            ProfileWindow::AroundBest(0.01),
        )
        .unwrap()[0];
        assert_eq!(v.fitted_points, MIN_WINDOW_SIZES);
        assert_eq!(v.points, 21);
    }
}
