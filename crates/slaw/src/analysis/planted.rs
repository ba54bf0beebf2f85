//! Planted sweeps for benchmarks: runs drawn from a known law (Hoffmann et al.'s
//! `L = E + A/N^α + B/D^β`), with a learning-rate penalty around a known optimal rate and
//! seeded multiplicative noise, shaped like what `slaw run` stores.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::observations::{Observations, ParamsCount, Run};
use crate::fit::{standard_normal, ParametricLaw};

/// Hoffmann et al.'s law (tokens as D).
pub fn hoffmann() -> ParametricLaw {
    ParametricLaw {
        e: 1.69f64.ln(),
        a: 406.4f64.ln(),
        b: 410.7f64.ln(),
        alpha: 0.34,
        beta: 0.28,
        objective: 0.0,
        n: 0,
        starts: 0,
        converged_starts: 0,
    }
}

/// `sizes` sizes (×2 from 2e7) × `budgets` epoch budgets (×2 from 4e8 examples) × `rates`
/// learning rates (×2 around η*(N) = 3e-3·(N/1e8)^−0.3), each run's curve at 8 points, with
/// relative noise `sigma`.
pub fn sweep(sizes: usize, budgets: usize, rates: usize, sigma: f64, seed: u64) -> Observations {
    let law = hoffmann();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut runs = Vec::new();
    for i in 0..sizes {
        let n = 2e7 * 2f64.powi(i as i32);
        let lr_star = 3e-3 * (n / 1e8).powf(-0.3);
        for j in 0..budgets {
            let epochs = 2f64.powi(j as i32);
            let d = 4e8 * epochs;
            for r in 0..rates {
                let lr = lr_star * 2f64.powf(r as f64 - (rates as f64 - 1.0) / 2.0);
                let penalty = 1.0 + 0.02 * (lr / lr_star).ln().powi(2);
                let curve: Vec<(f64, f64)> = (1..=8)
                    .map(|k| {
                        let dk = d * k as f64 / 8.0;
                        let noise = (sigma * standard_normal(&mut rng)).exp();
                        (6.0 * n * dk, law.predict(n, dk) * penalty * noise)
                    })
                    .collect();
                runs.push(Run {
                    id: format!("{i}-{j}-{r}"),
                    size: format!("s{i}"),
                    params: n,
                    examples: d,
                    epochs: Some(epochs),
                    flops: 6.0 * n * d,
                    lr: Some(lr),
                    loss: curve.last().map(|p| p.1),
                    curve,
                    weight: None,
                });
            }
        }
    }
    Observations {
        source: format!("planted:{sizes}x{budgets}x{rates}:{sigma}:{seed}"),
        sweep_id: None,
        params_count: ParamsCount::Total,
        examples_per_epoch: Some(4e8),
        loss_name: None,
        runs,
        source_hash: None,
        notes: Vec::new(),
    }
}
