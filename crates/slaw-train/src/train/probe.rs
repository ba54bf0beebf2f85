//! A linear probe: multinomial logistic regression on frozen features, fitted on the host.
//!
//! AIM's claim is that the pre-training loss and the quality of the trunk's features move
//! together; the probe measures the features. Features are standardised with the training
//! split's statistics, the softmax classifier is fitted by full-batch Adam on the mean
//! cross-entropy with a small L2 penalty (deterministic: zero initialisation, fixed steps), and
//! the accuracy on the validation split is returned.

/// Full-batch Adam steps of the probe.
pub const STEPS: usize = 150;
const LR: f64 = 0.05;
const L2: f64 = 1e-4;

/// Validation accuracy of a softmax classifier fitted on `train` (`n × dim`, row-major) with
/// `train_labels`, evaluated on `val` with `val_labels`. Returns 0 when either split is empty.
pub fn linear_probe(
    train: &[f32],
    train_labels: &[u32],
    val: &[f32],
    val_labels: &[u32],
    dim: usize,
    classes: usize,
) -> f64 {
    let n = train_labels.len();
    if n == 0 || val_labels.is_empty() || dim == 0 {
        return 0.0;
    }
    // Standardise with the training statistics.
    let mut mean = vec![0f64; dim];
    let mut sq = vec![0f64; dim];
    for row in train.chunks_exact(dim) {
        for (k, &v) in row.iter().enumerate() {
            mean[k] += v as f64;
            sq[k] += (v as f64) * (v as f64);
        }
    }
    let inv_std: Vec<f64> = (0..dim)
        .map(|k| {
            mean[k] /= n as f64;
            let var = (sq[k] / n as f64 - mean[k] * mean[k]).max(0.0);
            1.0 / (var.sqrt() + 1e-6)
        })
        .collect();
    let standardise = |rows: &[f32]| -> Vec<f64> {
        rows.chunks_exact(dim)
            .flat_map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(k, &v)| (v as f64 - mean[k]) * inv_std[k])
            })
            .collect()
    };
    let x = standardise(train);
    let xv = standardise(val);

    // Weights [dim + 1, classes] (the last row is the bias), Adam state alongside.
    let p = (dim + 1) * classes;
    let (mut w, mut m, mut v) = (vec![0f64; p], vec![0f64; p], vec![0f64; p]);
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut logits = vec![0f64; classes];
    for step in 1..=STEPS {
        let mut grad = vec![0f64; p];
        for (row, &label) in x.chunks_exact(dim).zip(train_labels) {
            scores(&w, row, dim, classes, &mut logits);
            softmax_in_place(&mut logits);
            logits[label as usize] -= 1.0;
            for (k, &xk) in row.iter().enumerate() {
                let g = &mut grad[k * classes..(k + 1) * classes];
                for (gc, &dc) in g.iter_mut().zip(&logits) {
                    *gc += xk * dc;
                }
            }
            for (gc, &dc) in grad[dim * classes..].iter_mut().zip(&logits) {
                *gc += dc;
            }
        }
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        for i in 0..p {
            let g = grad[i] / n as f64 + if i < dim * classes { L2 * w[i] } else { 0.0 };
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            w[i] -= LR * (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        }
    }
    let correct = xv
        .chunks_exact(dim)
        .zip(val_labels)
        .filter(|(row, &label)| {
            scores(&w, row, dim, classes, &mut logits);
            let best = logits
                .iter()
                .enumerate()
                .fold(
                    (0, f64::NEG_INFINITY),
                    |b, (c, &s)| if s > b.1 { (c, s) } else { b },
                )
                .0;
            best == label as usize
        })
        .count();
    correct as f64 / val_labels.len() as f64
}

fn scores(w: &[f64], row: &[f64], dim: usize, classes: usize, out: &mut [f64]) {
    out.copy_from_slice(&w[dim * classes..]);
    for (k, &xk) in row.iter().enumerate() {
        for (o, &wk) in out.iter_mut().zip(&w[k * classes..(k + 1) * classes]) {
            *o += xk * wk;
        }
    }
}

fn softmax_in_place(z: &mut [f64]) {
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Three Gaussian clusters, linearly separable apart from their tails: the probe must
    /// find them; with the labels shuffled it must fall to about chance.
    fn clusters(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [[4.0f32, 0.0, 1.0], [0.0, 4.0, -1.0], [-4.0, -4.0, 0.0]];
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 3;
            for &m in &centres[c] {
                x.push(m + rng.random_range(-1.0f32..1.0) * 1.5);
            }
            y.push(c as u32);
        }
        (x, y)
    }

    #[test]
    fn separable_clusters_are_found() {
        let (x, y) = clusters(600, 1);
        let (xv, yv) = clusters(300, 2);
        let acc = linear_probe(&x, &y, &xv, &yv, 3, 3);
        assert!(acc > 0.97, "accuracy {acc}");
    }

    #[test]
    fn shuffled_labels_give_chance() {
        let (x, mut y) = clusters(600, 1);
        let (xv, yv) = clusters(300, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for i in (1..y.len()).rev() {
            y.swap(i, rng.random_range(0..=i));
        }
        let acc = linear_probe(&x, &y, &xv, &yv, 3, 3);
        assert!(acc < 0.55, "accuracy {acc}");
    }

    #[test]
    fn empty_splits_score_zero() {
        assert_eq!(linear_probe(&[], &[], &[1.0], &[0], 1, 2), 0.0);
    }
}
