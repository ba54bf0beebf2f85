//! The shared non-linear minimiser: argmin's L-BFGS with a More–Thuente line search, run from
//! many starting points (in parallel over threads), for objectives with analytic gradients.

use std::cell::RefCell;

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use serde::{Deserialize, Serialize};

use super::{resolve_threads, FitError, FitResult};

/// Stopping rules and parallelism of the L-BFGS runs behind the non-linear fits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimiserSettings {
    /// Iteration cap per start.
    pub max_iters: u64,
    /// Number of correction pairs L-BFGS keeps.
    pub memory: usize,
    /// Stop when the gradient's L2 norm falls below this.
    pub tol_grad: f64,
    /// Stop when the objective changes by less than this between iterations (absolute).
    pub tol_cost: f64,
    /// Worker threads over the starts; 0 means one per available core.
    pub threads: usize,
}

impl Default for OptimiserSettings {
    fn default() -> Self {
        OptimiserSettings {
            max_iters: 1000,
            memory: 10,
            tol_grad: 1e-12,
            tol_cost: 1e-15,
            threads: 0,
        }
    }
}

impl OptimiserSettings {
    fn validate(&self) -> FitResult<()> {
        let ok = self.max_iters > 0
            && self.memory > 0
            && self.tol_grad.is_finite()
            && self.tol_grad >= 0.0
            && self.tol_cost.is_finite()
            && self.tol_cost >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(FitError::InvalidArgument(format!(
                "optimiser settings out of range: {self:?}"
            )))
        }
    }
}

/// A smooth objective over a parameter vector, with its gradient.
pub(crate) trait Objective: Sync {
    /// Writes the gradient into `grad` (same length as `params`) and returns the objective.
    fn cost_and_gradient(&self, params: &[f64], grad: &mut [f64]) -> f64;
}

/// What one start ended with.
#[derive(Debug, Clone)]
pub(crate) struct StartOutcome {
    /// Best parameters seen.
    pub params: Vec<f64>,
    /// Objective there.
    pub cost: f64,
    /// Stopped by a convergence test or by a line search that could make no further progress,
    /// rather than by the iteration cap.
    pub converged: bool,
}

/// A point with its objective and gradient.
type Evaluation = (Vec<f64>, f64, Vec<f64>);

/// Adapts an [`Objective`] to argmin, evaluating cost and gradient together once per point
/// (the line search asks for both at every trial step).
struct Adapter<'a, O> {
    objective: &'a O,
    last: RefCell<Option<Evaluation>>,
}

impl<O: Objective> Adapter<'_, O> {
    fn eval(&self, params: &[f64]) -> Result<(f64, Vec<f64>), argmin::core::Error> {
        if let Some((p, c, g)) = self.last.borrow().as_ref() {
            if p.as_slice() == params {
                return Ok((*c, g.clone()));
            }
        }
        let mut grad = vec![0.0; params.len()];
        let cost = self.objective.cost_and_gradient(params, &mut grad);
        if !cost.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return Err(argmin::core::Error::msg("objective is not finite here"));
        }
        *self.last.borrow_mut() = Some((params.to_vec(), cost, grad.clone()));
        Ok((cost, grad))
    }
}

impl<O: Objective> CostFunction for Adapter<'_, O> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, params: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        Ok(self.eval(params)?.0)
    }
}

impl<O: Objective> Gradient for Adapter<'_, O> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, params: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        Ok(self.eval(params)?.1)
    }
}

/// Runs L-BFGS from one start. `None` when argmin fails outright or the objective is not finite
/// at the start.
pub(crate) fn minimise<O: Objective>(
    objective: &O,
    start: &[f64],
    settings: &OptimiserSettings,
) -> Option<StartOutcome> {
    let problem = Adapter {
        objective,
        last: RefCell::new(None),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), settings.memory)
        .with_tolerance_grad(settings.tol_grad)
        .ok()?
        .with_tolerance_cost(settings.tol_cost)
        .ok()?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(start.to_vec()).max_iters(settings.max_iters))
        .run()
        .ok()?;
    let state = result.state();
    let params = state.get_best_param()?.clone();
    let cost = state.get_best_cost();
    if !cost.is_finite() {
        return None;
    }
    let converged = !matches!(
        state.get_termination_reason(),
        Some(TerminationReason::MaxItersReached) | Some(TerminationReason::Timeout) | None
    );
    Some(StartOutcome {
        params,
        cost,
        converged,
    })
}

/// Runs [`minimise`] from every start, spread over `settings.threads` threads. The outcome at
/// position `i` belongs to `starts[i]`, whatever the number of threads.
pub(crate) fn minimise_all<O: Objective>(
    objective: &O,
    starts: &[Vec<f64>],
    settings: &OptimiserSettings,
) -> FitResult<Vec<Option<StartOutcome>>> {
    settings.validate()?;
    let threads = resolve_threads(settings.threads, starts.len());
    if threads == 1 {
        return Ok(starts
            .iter()
            .map(|s| minimise(objective, s, settings))
            .collect());
    }
    let mut outcomes: Vec<Option<StartOutcome>> = vec![None; starts.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t..starts.len())
                        .step_by(threads)
                        .map(|i| (i, minimise(objective, &starts[i], settings)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, outcome) in done {
                        outcomes[i] = outcome;
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    Ok(outcomes)
}

/// The Cartesian product of per-parameter value lists, in order (last list varies fastest).
pub(crate) fn grid_product(axes: &[&[f64]]) -> Vec<Vec<f64>> {
    let mut out: Vec<Vec<f64>> = vec![Vec::new()];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                axis.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(*v);
                    p
                })
            })
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rosenbrock's function: the classic test with a curved valley, minimum 0 at (1, 1).
    struct Rosenbrock;
    impl Objective for Rosenbrock {
        fn cost_and_gradient(&self, p: &[f64], g: &mut [f64]) -> f64 {
            let (x, y) = (p[0], p[1]);
            g[0] = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x);
            g[1] = 200.0 * (y - x * x);
            (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)
        }
    }

    #[test]
    fn lbfgs_finds_the_rosenbrock_minimum_from_every_start() {
        let starts = grid_product(&[&[-1.5, 0.0, 2.0], &[-1.0, 3.0]]);
        assert_eq!(starts.len(), 6);
        assert_eq!(starts[1], vec![-1.5, 3.0]);
        let settings = OptimiserSettings {
            threads: 2,
            ..OptimiserSettings::default()
        };
        let outcomes = minimise_all(&Rosenbrock, &starts, &settings).unwrap();
        for o in outcomes {
            let o = o.unwrap();
            assert!(o.converged);
            assert!((o.params[0] - 1.0).abs() < 1e-5 && (o.params[1] - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn iteration_cap_is_reported_as_not_converged() {
        let settings = OptimiserSettings {
            max_iters: 2,
            ..OptimiserSettings::default()
        };
        let o = minimise(&Rosenbrock, &[-1.5, 2.0], &settings).unwrap();
        assert!(!o.converged);
        assert!(minimise_all(
            &Rosenbrock,
            &[vec![0.0, 0.0]],
            &OptimiserSettings {
                tol_cost: -1.0,
                ..settings
            }
        )
        .is_err());
    }
}
