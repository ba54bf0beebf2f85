//! Learning-rate schedules: linear warm-up, then cosine, linear or constant decay over the
//! trial's own budget (the schedule length is the trial's step count, as in the scaling papers).

use crate::config::{OptimConfig, Schedule};

/// Steps of linear warm-up for a trial of `total_steps`.
pub fn warmup_steps(optim: &OptimConfig, total_steps: u64) -> u64 {
    ((optim.warmup * total_steps as f64).round() as u64).min(total_steps)
}

/// The learning rate of the update at 0-based `step` of `total_steps`.
pub fn learning_rate(optim: &OptimConfig, step: u64, total_steps: u64) -> f64 {
    let warmup = warmup_steps(optim, total_steps);
    if step < warmup {
        return optim.lr * (step + 1) as f64 / warmup as f64;
    }
    let decay_steps = (total_steps - warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / decay_steps).clamp(0.0, 1.0);
    match optim.schedule {
        Schedule::Cosine => optim.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        Schedule::Linear => optim.lr * (1.0 - progress),
        Schedule::Constant => optim.lr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Optimizer;

    fn optim(schedule: Schedule, warmup: f64) -> OptimConfig {
        OptimConfig {
            optimizer: Optimizer::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            lr: 0.4,
            weight_decay: 0.0,
            warmup,
            schedule,
            grad_clip: None,
            agc: None,
        }
    }

    #[test]
    fn warmup_then_cosine_to_zero() {
        let o = optim(Schedule::Cosine, 0.1);
        assert_eq!(warmup_steps(&o, 100), 10);
        assert!((learning_rate(&o, 0, 100) - 0.04).abs() < 1e-12);
        assert!((learning_rate(&o, 9, 100) - 0.4).abs() < 1e-12);
        assert!((learning_rate(&o, 10, 100) - 0.4).abs() < 1e-12);
        // Half-way through the decay: half the peak.
        assert!((learning_rate(&o, 55, 100) - 0.2).abs() < 1e-12);
        let last = learning_rate(&o, 99, 100);
        assert!(last > 0.0 && last < 0.001, "{last}");
        // Monotone after warm-up.
        let lrs: Vec<f64> = (10..100).map(|s| learning_rate(&o, s, 100)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn linear_and_constant() {
        let l = optim(Schedule::Linear, 0.0);
        assert!((learning_rate(&l, 50, 100) - 0.2).abs() < 1e-12);
        let c = optim(Schedule::Constant, 0.0);
        assert_eq!(learning_rate(&c, 99, 100), 0.4);
    }
}
