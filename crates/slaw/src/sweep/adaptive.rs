//! The adaptive learning-rate search: which learning rates to try next, cell by cell.
//!
//! A cell is one model size at one epoch budget. The smallest model runs the coarse grid at
//! every budget. A larger model's cell starts once the next smaller model's cell at the same
//! budget has converged: at the lattice point nearest to the rate predicted by the law fitted
//! on every converged cell so far (`log η* = c0 + c1·log N + c2·log D`, or the size-only law at
//! that budget, or the next smaller model's optimum, whichever the data supports), plus its two
//! neighbours. A cell then walks one factor-`f` step at a time towards lower loss until its best
//! point is worse on neither side of the lattice: a finite best with both neighbours tried.
//! Diverged rates count as worse than any finite loss. Pure: no I/O.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::fit::lr::{
    cell_optimum, fit_lr_params_budget_law, fit_lr_params_law, CellOptimum, LrPoint, LrTrial,
};
use crate::spec::{AdaptiveLr, SweepSpec};

/// What the planner knows of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownTrial {
    /// Position of its size on the sweep's size axis.
    pub size_index: usize,
    /// Its epoch budget.
    pub epochs: f64,
    /// Its learning rate.
    pub lr: f64,
    /// How it stands.
    pub outcome: KnownOutcome,
}

/// The state of a trial as the planner sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KnownOutcome {
    /// Pending, running, or ended with retries left: its result is still to come.
    Waiting,
    /// Completed with this final validation loss.
    Loss(f64),
    /// Diverged (and will not be retried).
    Diverged,
    /// Failed for good: it tells nothing about the rate.
    Failed,
}

/// One learning rate of one cell, with all its seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    Waiting,
    Loss(f64),
    Diverged,
    Failed,
}

/// Where a cell stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CellState {
    /// No rate tried yet.
    NotStarted,
    /// Some rates have results to come.
    Waiting,
    /// Needs another rate at this lattice index.
    Extend(i32),
    /// The best rate is bracketed (or the cell hit its rate limit).
    Converged(Option<CellOptimum>),
}

/// A cell: its rates by lattice index.
#[derive(Debug, Clone, Default)]
struct Cell {
    points: BTreeMap<i32, Point>,
}

impl Cell {
    fn state(&self, a: &AdaptiveLr) -> CellState {
        if self.points.is_empty() {
            return CellState::NotStarted;
        }
        if self.points.values().any(|p| *p == Point::Waiting) {
            return CellState::Waiting;
        }
        let lo = *self.points.keys().next().unwrap_or(&0);
        let hi = *self.points.keys().next_back().unwrap_or(&0);
        let finite: Vec<(i32, f64)> = self
            .points
            .iter()
            .filter_map(|(k, p)| match p {
                Point::Loss(l) => Some((*k, *l)),
                _ => None,
            })
            .collect();
        let best = finite
            .iter()
            .copied()
            .min_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
        let next = match best {
            // Nothing finite: every rate tried diverged or failed; go lower.
            None => Some(lo - 1),
            Some((k, _)) if k == lo => Some(lo - 1),
            Some((k, _)) if k == hi => Some(hi + 1),
            Some(_) => None,
        };
        match next {
            Some(k) if self.points.len() < a.max_per_cell as usize => CellState::Extend(k),
            _ => CellState::Converged(self.optimum(a)),
        }
    }

    fn optimum(&self, a: &AdaptiveLr) -> Option<CellOptimum> {
        let trials: Vec<LrTrial> = self
            .points
            .iter()
            .filter_map(|(k, p)| match p {
                Point::Loss(l) => Some(LrTrial {
                    lr: a.rate(*k),
                    loss: Some(*l),
                }),
                Point::Diverged => Some(LrTrial {
                    lr: a.rate(*k),
                    loss: None,
                }),
                _ => None,
            })
            .collect();
        if trials.iter().all(|t| t.loss.is_none()) {
            return None;
        }
        cell_optimum(&trials).ok()
    }
}

/// The planner's view of a sweep, and the rates it asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// New (size index, epochs, learning rate) points to run, each for every seed.
    pub add: Vec<(usize, f64, f64)>,
    /// Every cell's state, by (size index, epochs).
    pub cells: Vec<(usize, f64, CellState)>,
}

impl Decision {
    /// True when every cell has converged.
    pub fn finished(&self) -> bool {
        self.cells
            .iter()
            .all(|(_, _, s)| matches!(s, CellState::Converged(_)))
    }
}

/// One rate's result over its seeds: waiting while any seed waits; the mean of the finite
/// losses; diverged when no seed is finite and one diverged.
fn combine(seeds: &[Point]) -> Point {
    if seeds.contains(&Point::Waiting) {
        return Point::Waiting;
    }
    let finite: Vec<f64> = seeds
        .iter()
        .filter_map(|p| match p {
            Point::Loss(l) => Some(*l),
            _ => None,
        })
        .collect();
    if !finite.is_empty() {
        Point::Loss(finite.iter().sum::<f64>() / finite.len() as f64)
    } else if seeds.contains(&Point::Diverged) {
        Point::Diverged
    } else {
        Point::Failed
    }
}

/// Decides which rates to run next. `params[i]` is the parameter count of size `i` and
/// `examples[j]` the examples seen at budget `spec.epochs[j]`.
pub fn plan_next(
    spec: &SweepSpec,
    a: &AdaptiveLr,
    params: &[f64],
    examples: &[f64],
    known: &[KnownTrial],
) -> Decision {
    let mut seeds: BTreeMap<(usize, usize, i32), Vec<Point>> = BTreeMap::new();
    for t in known {
        let Some(j) = spec.epochs.iter().position(|e| *e == t.epochs) else {
            continue;
        };
        let p = match t.outcome {
            KnownOutcome::Waiting => Point::Waiting,
            KnownOutcome::Loss(l) if l.is_finite() => Point::Loss(l),
            KnownOutcome::Loss(_) | KnownOutcome::Diverged => Point::Diverged,
            KnownOutcome::Failed => Point::Failed,
        };
        seeds
            .entry((t.size_index, j, a.index(t.lr)))
            .or_default()
            .push(p);
    }
    let mut cells: BTreeMap<(usize, usize), Cell> = BTreeMap::new();
    for ((i, j, k), points) in &seeds {
        cells
            .entry((*i, *j))
            .or_default()
            .points
            .insert(*k, combine(points));
    }

    let mut order: Vec<usize> = (0..spec.size_count()).collect();
    order.sort_by(|&x, &y| params[x].total_cmp(&params[y]).then(x.cmp(&y)));
    let mut add = Vec::new();
    let mut states = Vec::new();
    let converged_points =
        |cells: &BTreeMap<(usize, usize), Cell>| -> Vec<(usize, usize, LrPoint)> {
            cells
                .iter()
                .filter_map(|(&(i, j), c)| match c.state(a) {
                    CellState::Converged(Some(o)) => Some((
                        i,
                        j,
                        LrPoint {
                            params: params[i],
                            budget: examples[j],
                            lr: o.lr_star,
                        },
                    )),
                    _ => None,
                })
                .collect()
        };
    let known_points = converged_points(&cells);

    for (rank, &i) in order.iter().enumerate() {
        for (j, &epochs) in spec.epochs.iter().enumerate() {
            let cell = cells.get(&(i, j)).cloned().unwrap_or_default();
            let state = cell.state(a);
            match &state {
                CellState::NotStarted if rank == 0 => {
                    for lr in &spec.lrs {
                        add.push((i, epochs, *lr));
                    }
                }
                CellState::NotStarted => {
                    let prev = order[rank - 1];
                    let prev_state = cells
                        .get(&(prev, j))
                        .map_or(CellState::NotStarted, |c| c.state(a));
                    if let CellState::Converged(prev_opt) = prev_state {
                        let predicted = predict(&known_points, params[i], examples[j], j)
                            .or(prev_opt.map(|o| o.lr_star))
                            .unwrap_or(a.centre);
                        let k = a.index(predicted);
                        for kk in [k - 1, k, k + 1] {
                            add.push((i, epochs, a.rate(kk)));
                        }
                    }
                }
                CellState::Extend(k) => add.push((i, epochs, a.rate(*k))),
                CellState::Waiting | CellState::Converged(_) => {}
            }
            states.push((i, epochs, state));
        }
    }
    Decision { add, cells: states }
}

/// The optimal rate at (N, D) from the converged cells: the size-and-budget law when the cells
/// span at least two sizes and two budgets, else the size law at this budget, else nothing.
fn predict(points: &[(usize, usize, LrPoint)], n: f64, d: f64, budget: usize) -> Option<f64> {
    let all: Vec<LrPoint> = points.iter().map(|(_, _, p)| *p).collect();
    let distinct = |f: &dyn Fn(&LrPoint) -> f64| {
        let mut v: Vec<f64> = all.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v.len()
    };
    if all.len() >= 4 && distinct(&|p| p.params) >= 2 && distinct(&|p| p.budget) >= 2 {
        if let Ok(law) = fit_lr_params_budget_law(&all, 0.95) {
            let p = law.predict(n, d);
            if p.is_finite() && p > 0.0 {
                return Some(p);
            }
        }
    }
    let here: Vec<LrPoint> = points
        .iter()
        .filter(|(_, j, _)| *j == budget)
        .map(|(_, _, p)| *p)
        .collect();
    if here.len() >= 3 {
        if let Ok(law) = fit_lr_params_law(&here, 0.95) {
            let p = law.predict(n);
            if p.is_finite() && p > 0.0 {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    const SWEEP: &str = "\
name: ad
data: {dataset: synthetic}
model: {family: mlp, depth: 1, sizes: [{name: s, width: 8}, {name: m, width: 32}, {name: l, width: 128}]}
train:
  epochs: [1, 4]
  lr: {adaptive: {centre: 0.01, below: 2, above: 2}}
  batch_size: 32
";

    /// A planted landscape: loss = (log2(lr / η*(N, D)))² · 0.05 + 1/N^0.3, with
    /// η* = 0.2 · N^-0.5 · D^-0.1; rates above 8·η* diverge.
    fn landscape(n: f64, d: f64, lr: f64) -> KnownOutcome {
        let eta = 0.2 * n.powf(-0.5) * d.powf(-0.1);
        if lr > 8.0 * eta {
            return KnownOutcome::Diverged;
        }
        KnownOutcome::Loss(0.05 * (lr / eta).log2().powi(2) + n.powf(-0.3))
    }

    /// Runs the planner to the end against the landscape; returns the trials run and the
    /// cells' optima.
    fn simulate(spec: &SweepSpec) -> (Vec<KnownTrial>, Vec<(usize, f64, CellState)>) {
        let a = spec.adaptive.unwrap();
        let params = [1e3, 1e4, 1e5];
        let examples: Vec<f64> = spec.epochs.iter().map(|e| e * 2048.0).collect();
        let mut known: Vec<KnownTrial> = Vec::new();
        for _ in 0..100 {
            let d = plan_next(spec, &a, &params, &examples, &known);
            if d.add.is_empty() {
                assert!(d.finished(), "{:?}", d.cells);
                return (known, d.cells);
            }
            for (i, epochs, lr) in d.add {
                assert!(
                    !known
                        .iter()
                        .any(|t| t.size_index == i && t.epochs == epochs && t.lr == lr),
                    "asked twice for {i} {epochs} {lr}"
                );
                let j = spec.epochs.iter().position(|e| *e == epochs).unwrap();
                known.push(KnownTrial {
                    size_index: i,
                    epochs,
                    lr,
                    outcome: landscape(params[i], examples[j], lr),
                });
            }
        }
        panic!("the planner did not finish");
    }

    #[test]
    fn finds_the_grid_optimum_with_fewer_trials() {
        let spec = parse(SWEEP, "ad.yaml").unwrap();
        let a = spec.adaptive.unwrap();
        let (known, cells) = simulate(&spec);
        let params = [1e3, 1e4, 1e5];
        for (i, epochs, state) in &cells {
            let CellState::Converged(Some(opt)) = state else {
                panic!("cell {i} {epochs}: {state:?}")
            };
            // The full lattice's best point for this cell.
            let d = epochs * 2048.0;
            let grid_best = (-20..=20)
                .filter_map(|k| match landscape(params[*i], d, a.rate(k)) {
                    KnownOutcome::Loss(l) => Some((k, l)),
                    _ => None,
                })
                .min_by(|x, y| x.1.total_cmp(&y.1))
                .unwrap()
                .0;
            assert!(
                (a.index(opt.best_lr) - grid_best).abs() <= 1,
                "cell {i} {epochs}: {} vs grid {}",
                opt.best_lr,
                a.rate(grid_best)
            );
        }
        // A 9-point grid over the same range would run 9 rates per cell.
        assert!(known.len() < 9 * cells.len(), "{} trials", known.len());
        // Larger models start from the law: at most 5 rates per cell beyond the smallest.
        for i in 1..3 {
            let n = known.iter().filter(|t| t.size_index == i).count();
            assert!(n <= 2 * 5, "size {i} used {n} rates");
        }
    }

    #[test]
    fn the_smallest_model_runs_the_coarse_grid_first() {
        let spec = parse(SWEEP, "ad.yaml").unwrap();
        let a = spec.adaptive.unwrap();
        let d = plan_next(&spec, &a, &[1e3, 1e4, 1e5], &[2048.0, 8192.0], &[]);
        assert_eq!(d.add.len(), 2 * 5);
        assert!(d.add.iter().all(|(i, _, _)| *i == 0));
        assert!(!d.finished());
    }

    #[test]
    fn a_cell_whose_best_is_on_the_edge_walks_outwards() {
        let spec = parse(SWEEP, "ad.yaml").unwrap();
        let a = spec.adaptive.unwrap();
        let known: Vec<KnownTrial> = (-2..=2)
            .map(|k| KnownTrial {
                size_index: 0,
                epochs: 1.0,
                lr: a.rate(k),
                outcome: KnownOutcome::Loss(1.0 - 0.1 * k as f64),
            })
            .collect();
        let d = plan_next(&spec, &a, &[1e3, 1e4, 1e5], &[2048.0, 8192.0], &known);
        assert!(d.add.contains(&(0, 1.0, a.rate(3))), "{:?}", d.add);
        // Everything diverging walks down.
        let diverged: Vec<KnownTrial> = known
            .iter()
            .map(|t| KnownTrial {
                outcome: KnownOutcome::Diverged,
                ..t.clone()
            })
            .collect();
        let d = plan_next(&spec, &a, &[1e3, 1e4, 1e5], &[2048.0, 8192.0], &diverged);
        assert!(d.add.contains(&(0, 1.0, a.rate(-3))), "{:?}", d.add);
    }
}
