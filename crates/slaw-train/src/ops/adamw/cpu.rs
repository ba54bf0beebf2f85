//! AdamW's update of one parameter as one loop over its elements, in place, on slaw's f32 CPU
//! backend (Burn's ndarray).
//!
//! [`crate::train::adamw::FusedAdamW`] writes the update as ~16 tensor operations per parameter. On
//! ndarray each of them is a pass over memory into a new allocation: on the quickstart's
//! largest MLP (1.9 M parameters, 2 threads) the optimiser took a third of a step's CPU time
//! (docs/PERFORMANCE.md, 2026-11-23, ninth session). Here one loop reads the gradient and
//! rewrites the parameter and both moments where they lie (ndarray copies a buffer first only
//! if something else still holds it). The arithmetic is the tensor path's, in its order and in
//! f32; the tests below check it against that path and against Burn's own AdamW.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_ndarray::SharedArray;
use ndarray::Zip;

use crate::ops::cpu::{array, tensor, Cpu, PARALLEL_FROM};
use crate::ops::specialise::cast;
use crate::train::adamw::Scalars;

/// One AdamW step of one parameter: the new parameter and its new first and second moments.
/// `moments` is `None` at the first step (zero moments); `factor` (`[1]`) multiplies the
/// gradient first (global-norm clipping). `B` must be the f32 CPU backend
/// ([`crate::ops::cpu::is_cpu_f32`]).
pub(crate) fn update<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    factor: Option<Tensor<B, 1>>,
    s: Scalars,
) -> [Tensor<B, D>; 3] {
    let factor: Option<f32> = factor.map(|f| cast::<_, Tensor<Cpu, 1>>(f).into_scalar());
    let grad = array(grad);
    let mut param = array(param);
    // Zero moments give the first step's `x·(1 − β)` exactly (`0·β + x = x`).
    let (mut first, mut second) = match moments {
        Some((m, v)) => (array(m), array(v)),
        None => (
            SharedArray::<f32>::zeros(grad.raw_dim()),
            SharedArray::<f32>::zeros(grad.raw_dim()),
        ),
    };
    let step = |p: &mut f32, m: &mut f32, v: &mut f32, &g: &f32| {
        let g = factor.map_or(g, |f| g * f);
        *m = *m * s.beta1 + g * s.keep1;
        *v = *v * s.beta2 + g * g * s.keep2;
        let delta = (*m / s.correction1) / ((*v / s.correction2).sqrt() + s.eps);
        let decayed = if s.decay == 1.0 { *p } else { *p * s.decay };
        *p = decayed - delta * s.lr;
    };
    let zip = Zip::from(&mut param)
        .and(&mut first)
        .and(&mut second)
        .and(&grad);
    if grad.len() >= PARALLEL_FROM {
        zip.par_for_each(step);
    } else {
        zip.for_each(step);
    }
    [tensor(param), tensor(first), tensor(second)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Autodiff;

    /// The same arithmetic in the same order, in f32: the same values as the tensor path.
    #[test]
    fn one_pass_update_equals_the_tensor_update() {
        crate::train::adamw::tests::one_pass_equals_tensor_ops::<Autodiff<Cpu>>(
            &Default::default(),
            1e-6,
        );
    }

    /// The loop runs on rayon's threads for large parameters: same values as on one thread.
    #[test]
    fn parallel_loop_equals_the_serial_loop() {
        let device = Default::default();
        let n = 3 * PARALLEL_FROM + 7;
        let ramp = |scale: f64| {
            Tensor::<Cpu, 1, burn::tensor::Int>::arange(0..n as i64, &device)
                .float()
                .mul_scalar(scale)
                .sin()
        };
        let scalars = Scalars {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            keep1: 0.1,
            keep2: 1e-3,
            eps: 1e-8,
            decay: 0.999,
            correction1: 0.19,
            correction2: 0.002,
        };
        let moments = || Some((ramp(0.3), ramp(0.7).abs()));
        let factor = || Some(Tensor::<Cpu, 1>::from_floats([0.5], &device));
        let whole = update(ramp(0.01), ramp(0.02), moments(), factor(), scalars);
        // The same elements in pieces below the parallel threshold.
        let piece = PARALLEL_FROM / 2;
        let split = |t: Tensor<Cpu, 1>| t.split(piece, 0);
        let pieces: Vec<[Tensor<Cpu, 1>; 3]> = split(ramp(0.01))
            .into_iter()
            .zip(split(ramp(0.02)))
            .zip(split(ramp(0.3)).into_iter().zip(split(ramp(0.7).abs())))
            .map(|((p, g), (m, v))| update(p, g, Some((m, v)), factor(), scalars))
            .collect();
        for (i, whole) in whole.into_iter().enumerate() {
            let joined = Tensor::cat(pieces.iter().map(|p| p[i].clone()).collect(), 0);
            let (w, j) = (whole.into_data(), joined.into_data());
            assert_eq!(w, j, "output {i}");
        }
    }
}
