//! How far a sweep is and how long the rest will take: one estimator for the progress bar, the
//! log lines of `slaw run` and `slaw status`.
//!
//! Progress is measured in training FLOPs when every unfinished trial's cost is known (slaw's
//! own trainer, command sweeps that declare their sizes' costs), and in trials otherwise (a
//! command trainer reports its cost only when it ends, so a FLOP count would call a sweep done
//! with a third of its trials left). The time left is the sum, over the trials still to run,
//! of how long finished trials of the same model size took (scaled by FLOPs for a size with
//! none finished yet, else the mean of all), divided by the trials that run at once: an average
//! over finished trials, which does not swing with the last trial's speed.

use std::collections::HashMap;

use serde::Serialize;

use crate::store::TrialState;

/// What the estimator needs of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialWork {
    /// Its state.
    pub state: TrialState,
    /// Whether it will run (again): pending, or ended and within its retries.
    pub claimable: bool,
    /// Its model size (index on the size axis).
    pub size_index: i64,
    /// Planned (or reported) training FLOPs; 0 when not known.
    pub flops: f64,
    /// Seconds it trained, once it ended.
    pub wall_seconds: Option<f64>,
    /// For a running trial, the fraction of its steps done.
    pub fraction: Option<f64>,
}

/// What progress is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Training FLOPs.
    Compute,
    /// Trials (some costs are not known before they run).
    Trials,
}

/// A sweep's progress.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Progress {
    /// Fraction done, in [0, 1].
    pub fraction: f64,
    /// What the fraction counts.
    pub basis: Basis,
    /// Seconds left at the current parallelism; `None` before any trial has finished (or when
    /// nothing runs).
    pub remaining_seconds: Option<f64>,
}

impl Progress {
    /// "43 % of compute" or "43 % of trials".
    pub fn describe(&self) -> String {
        let what = match self.basis {
            Basis::Compute => "compute",
            Basis::Trials => "trials",
        };
        format!("{:.0} % of {what}", 100.0 * self.fraction)
    }
}

fn finished(t: &TrialWork) -> bool {
    !t.claimable && t.state != TrialState::Running && t.state != TrialState::Pending
}

/// The estimator's view of a stored trial.
impl From<&crate::store::WorkRow> for TrialWork {
    fn from(r: &crate::store::WorkRow) -> Self {
        TrialWork {
            state: r.state,
            claimable: r.claimable,
            size_index: r.size_index,
            flops: r.flops,
            wall_seconds: r.wall_seconds,
            fraction: (r.state == TrialState::Running && r.steps > 0)
                .then(|| r.progress_step.unwrap_or(0) as f64 / r.steps as f64),
        }
    }
}

/// Estimates the progress of `trials` with `parallel` trials running at once.
pub fn estimate(trials: &[TrialWork], parallel: usize) -> Progress {
    let unfinished: Vec<&TrialWork> = trials.iter().filter(|t| !finished(t)).collect();
    let basis = if unfinished.iter().all(|t| t.flops > 0.0) && trials.iter().any(|t| t.flops > 0.0)
    {
        Basis::Compute
    } else {
        Basis::Trials
    };
    let left_of = |t: &TrialWork| match t.state {
        TrialState::Running => 1.0 - t.fraction.unwrap_or(0.0).clamp(0.0, 1.0),
        _ => 1.0,
    };
    let weight = |t: &TrialWork| match basis {
        Basis::Compute => t.flops,
        Basis::Trials => 1.0,
    };
    let total: f64 = trials.iter().map(weight).sum();
    let left: f64 = unfinished.iter().map(|t| weight(t) * left_of(t)).sum();
    let fraction = if total > 0.0 {
        (1.0 - left / total).clamp(0.0, 1.0)
    } else {
        0.0
    };
    Progress {
        fraction,
        basis,
        remaining_seconds: remaining_seconds(trials, &unfinished, parallel, left_of),
    }
}

fn remaining_seconds(
    trials: &[TrialWork],
    unfinished: &[&TrialWork],
    parallel: usize,
    left_of: impl Fn(&TrialWork) -> f64,
) -> Option<f64> {
    if unfinished.is_empty() {
        return Some(0.0);
    }
    let done: Vec<(&TrialWork, f64)> = trials
        .iter()
        .filter(|t| finished(t))
        .filter_map(|t| t.wall_seconds.filter(|w| *w > 0.0).map(|w| (t, w)))
        .collect();
    if done.is_empty() || parallel == 0 {
        return None;
    }
    let mut by_size: HashMap<i64, (f64, usize)> = HashMap::new();
    for (t, w) in &done {
        let e = by_size.entry(t.size_index).or_default();
        e.0 += w;
        e.1 += 1;
    }
    let mean_all = done.iter().map(|(_, w)| w).sum::<f64>() / done.len() as f64;
    let (seconds, flops) = done
        .iter()
        .filter(|(t, _)| t.flops > 0.0)
        .fold((0.0, 0.0), |(s, f), (t, w)| (s + w, f + t.flops));
    let per_flop = (flops > 0.0).then(|| seconds / flops);
    let expected = |t: &TrialWork| {
        if let Some((sum, n)) = by_size.get(&t.size_index) {
            return sum / *n as f64;
        }
        match per_flop {
            Some(r) if t.flops > 0.0 => t.flops * r,
            _ => mean_all,
        }
    };
    let work: f64 = unfinished.iter().map(|t| expected(t) * left_of(t)).sum();
    Some(work / parallel.min(unfinished.len()).max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(state: TrialState, size: i64, flops: f64, wall: Option<f64>) -> TrialWork {
        TrialWork {
            state,
            claimable: state == TrialState::Pending,
            size_index: size,
            flops,
            wall_seconds: wall,
            fraction: None,
        }
    }

    #[test]
    fn unknown_costs_count_trials_not_compute() {
        // A command sweep: finished trials reported their FLOPs, pending ones have none yet.
        let mut trials = vec![trial(TrialState::Completed, 0, 1e12, Some(10.0)); 4];
        trials.extend(vec![trial(TrialState::Pending, 0, 0.0, None); 2]);
        let p = estimate(&trials, 1);
        assert_eq!(p.basis, Basis::Trials);
        assert!((p.fraction - 4.0 / 6.0).abs() < 1e-9, "{p:?}");
        assert!((p.remaining_seconds.unwrap() - 20.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn known_costs_count_compute() {
        let trials = vec![
            trial(TrialState::Completed, 0, 1.0, Some(1.0)),
            trial(TrialState::Pending, 1, 3.0, None),
        ];
        let p = estimate(&trials, 1);
        assert_eq!(p.basis, Basis::Compute);
        assert!((p.fraction - 0.25).abs() < 1e-9);
        // Size 1 has no finished trial: scaled by FLOPs from size 0's rate.
        assert!((p.remaining_seconds.unwrap() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_estimate_does_not_swing_with_the_last_trial() {
        // Durations of one size vary 10x; the estimate averages them.
        let mut trials: Vec<TrialWork> = [1.0, 10.0, 1.0, 10.0]
            .iter()
            .map(|w| trial(TrialState::Completed, 0, 1.0, Some(*w)))
            .collect();
        trials.extend(vec![trial(TrialState::Pending, 0, 1.0, None); 4]);
        let a = estimate(&trials, 2).remaining_seconds.unwrap();
        trials[3].wall_seconds = Some(1.0);
        let b = estimate(&trials, 2).remaining_seconds.unwrap();
        assert!((a - 11.0).abs() < 1e-9, "{a}");
        assert!(b / a > 0.5, "{a} → {b}");
    }

    #[test]
    fn running_trials_count_what_is_left_and_no_finish_means_no_eta() {
        let mut running = trial(TrialState::Running, 0, 2.0, None);
        running.fraction = Some(0.5);
        let p = estimate(&[running.clone()], 1);
        assert!((p.fraction - 0.5).abs() < 1e-9);
        assert_eq!(p.remaining_seconds, None);
        let p = estimate(
            &[running, trial(TrialState::Completed, 0, 2.0, Some(8.0))],
            1,
        );
        assert!((p.remaining_seconds.unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(estimate(&[], 1).remaining_seconds, Some(0.0));
    }
}
