//! Timing one model's training step through slaw's trainer, the way `bench/torch_step.py`
//! times PyTorch: the same ViT (or MLP), batch, AdamW, global-norm clipping and schedule, on
//! random teacher data of the same shape; warm-up steps (kernel compilation, autotuning) are
//! not timed. Used by `slaw bench` for `docs/PERFORMANCE.md`.

use std::time::Instant;

use serde::Serialize;
use slaw_train::config::{
    Activation, DataConfig, EvalConfig, MlpConfig, ModelConfig, OptimConfig, Optimizer, Pool,
    Precision, Schedule, Spacing, TrialConfig, VitConfig,
};
use slaw_train::cost::model_cost;
use slaw_train::train::data::synthetic;
use slaw_train::train::trainer::{Progress, Reporter, StartInfo};
use slaw_train::{train, train_stack, ComputeDevice, Outcome};

use slaw::exec::ExecError;

/// The model and step to time.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSpec {
    /// `vit` or `mlp`.
    pub family: String,
    /// Width (embedding or hidden).
    pub width: usize,
    /// Depth (blocks or hidden layers).
    pub depth: usize,
    /// Attention heads (ViT).
    pub heads: usize,
    /// Patch side (ViT).
    pub patch: usize,
    /// Image side (one channel).
    pub image: usize,
    /// Examples per step.
    pub batch: usize,
    /// Steps to run.
    pub steps: u64,
    /// Untimed steps at the start.
    pub warmup: u64,
    /// Precision.
    pub precision: Precision,
    /// Global-norm gradient clipping threshold (`None`: no clipping).
    pub grad_clip: Option<f64>,
    /// Trials trained as one stack (1: a lone trial); their learning rates differ by factors of
    /// 1.25.
    pub stack: usize,
}

/// What one benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchResult {
    /// Trainable parameters (Burn's count).
    pub params: u64,
    /// Tokens per example.
    pub tokens: u64,
    /// Steps in the timed window.
    pub timed_steps: u64,
    /// Milliseconds per training step.
    pub ms_per_step: f64,
    /// Examples per second.
    pub examples_per_second: f64,
    /// Training FLOPs per step (analytical, as slaw counts them).
    pub train_flops_per_step: f64,
    /// Achieved training TFLOP/s.
    pub achieved_tflops: f64,
}

/// Records when each training-loss reading arrived.
#[derive(Default)]
struct Timing {
    points: Vec<(u64, f64)>,
    params: u64,
    started: Option<Instant>,
}

impl Reporter for Timing {
    fn started(&mut self, info: &StartInfo) {
        self.params = info.params;
        self.started = Some(Instant::now());
    }
    fn progress(&mut self, p: &Progress) {
        if let Some(t0) = self.started {
            self.points.push((p.step, t0.elapsed().as_secs_f64()));
        }
    }
}

/// Trains `spec` for its steps on `device` and times the steps after the warm-up.
pub fn step_time(spec: &BenchSpec, device: &ComputeDevice) -> Result<BenchResult, ExecError> {
    let bad = |m: &str| ExecError::Worker(format!("bench: {m}"));
    let model = match spec.family.as_str() {
        "vit" => ModelConfig::Vit(VitConfig {
            patch: spec.patch,
            width: spec.width,
            depth: spec.depth,
            heads: spec.heads,
            mlp_dim: 4 * spec.width,
            pool: Pool::Mean,
            qk_norm: false,
            parallel_block: false,
            bias: true,
        }),
        "mlp" => ModelConfig::Mlp(MlpConfig {
            width: spec.width,
            depth: spec.depth,
            activation: Activation::Gelu,
            bias: true,
        }),
        other => return Err(bad(&format!("unknown model {other:?} (vit or mlp)"))),
    };
    if spec.image % spec.patch != 0 || spec.width % spec.heads != 0 {
        return Err(bad(
            "the image side must divide by the patch, the width by the heads",
        ));
    }
    if spec.steps <= spec.warmup + 20 {
        return Err(bad("need more than warm-up + 20 steps"));
    }
    // Sixteen batches of distinct examples; the data do not change the step time.
    let (side, classes, train_examples, validation, teacher, seed) =
        (spec.image, 10, spec.batch * 16, 256, 16, 0);
    let config = TrialConfig {
        data: DataConfig::Synthetic {
            side,
            classes,
            train: train_examples,
            validation,
            teacher_width: teacher,
            seed,
        },
        model,
        optim: OptimConfig {
            optimizer: Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr: 1e-3,
            weight_decay: 0.0,
            warmup: 0.05,
            schedule: Schedule::Cosine,
            grad_clip: spec.grad_clip,
            agc: None,
        },
        epochs: spec.steps as f64 * spec.batch as f64 / train_examples as f64,
        batch_size: spec.batch,
        seed: 0,
        precision: spec.precision,
        eval: EvalConfig {
            points: 1,
            spacing: Spacing::Linear,
            max_examples: Some(validation),
        },
    };
    let data = synthetic(side, classes, train_examples, validation, teacher, seed);
    let cost = model_cost(&config.model, &data.shape);
    let mut timing = Timing::default();
    if spec.stack == 0 {
        return Err(bad("--stack must be at least 1"));
    }
    let outcomes = if spec.stack == 1 {
        vec![train(&config, &data, device, &mut timing).map_err(|e| bad(&e.to_string()))?]
    } else {
        // The first trial is timed; the others (learning rates ×1.25, ×1.25², …) ride along.
        let configs: Vec<TrialConfig> = (0..spec.stack)
            .map(|i| {
                let mut c = config.clone();
                c.optim.lr *= 1.25f64.powi(i as i32);
                c
            })
            .collect();
        let mut others: Vec<Timing> = (1..spec.stack).map(|_| Timing::default()).collect();
        let mut reporters: Vec<&mut dyn Reporter> =
            std::iter::once(&mut timing as &mut dyn Reporter)
                .chain(others.iter_mut().map(|t| t as &mut dyn Reporter))
                .collect();
        train_stack(&configs, &data, device, &mut reporters).map_err(|e| bad(&e.to_string()))?
    };
    if let Some(outcome) = outcomes
        .iter()
        .find(|o| !matches!(o, Outcome::Completed(_)))
    {
        return Err(bad(&format!("the run did not complete: {outcome:?}")));
    }
    let after: Vec<&(u64, f64)> = timing
        .points
        .iter()
        .filter(|(s, _)| *s >= spec.warmup)
        .collect();
    let (Some(first), Some(last)) = (after.first(), after.last()) else {
        return Err(bad("too few loss readings to time"));
    };
    if last.0 <= first.0 {
        return Err(bad("too few timed steps"));
    }
    let step_seconds = (last.1 - first.1) / (last.0 - first.0) as f64;
    let flops = cost.train_flops_per_example as f64 * (spec.batch * spec.stack) as f64;
    Ok(BenchResult {
        params: timing.params,
        tokens: cost.tokens_per_example,
        timed_steps: last.0 - first.0,
        ms_per_step: step_seconds * 1e3,
        examples_per_second: (spec.batch * spec.stack) as f64 / step_seconds,
        train_flops_per_step: flops,
        achieved_tflops: flops / step_seconds / 1e12,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_a_small_mlp_on_the_cpu() {
        let spec = BenchSpec {
            family: "mlp".into(),
            width: 32,
            depth: 1,
            heads: 1,
            patch: 1,
            image: 8,
            batch: 32,
            steps: 80,
            warmup: 20,
            precision: Precision::F32,
            grad_clip: Some(1.0),
            stack: 1,
        };
        let r = step_time(&spec, &ComputeDevice::Cpu).unwrap();
        assert!(r.ms_per_step > 0.0 && r.ms_per_step < 1000.0, "{r:?}");
        assert!(r.timed_steps >= 40, "{r:?}");
        assert_eq!(r.params, (64 * 32 + 32 + 32 * 10 + 10) as u64);
        assert_eq!(r.train_flops_per_step, 6.0 * (64.0 * 32.0 + 320.0) * 32.0);
    }

    #[test]
    fn times_a_stack_of_two_vits_on_the_cpu() {
        let spec = BenchSpec {
            family: "vit".into(),
            width: 16,
            depth: 1,
            heads: 2,
            patch: 4,
            image: 8,
            batch: 16,
            steps: 60,
            warmup: 10,
            precision: Precision::F32,
            grad_clip: Some(1.0),
            stack: 2,
        };
        let alone = step_time(
            &BenchSpec {
                stack: 1,
                ..spec.clone()
            },
            &ComputeDevice::Cpu,
        )
        .unwrap();
        let r = step_time(&spec, &ComputeDevice::Cpu).unwrap();
        assert_eq!(r.params, alone.params, "params are per trial");
        assert_eq!(r.train_flops_per_step, 2.0 * alone.train_flops_per_step);
        assert!(r.ms_per_step > 0.0 && r.timed_steps >= 40, "{r:?}");
    }
}
