//! The training loop of a stack of trials ([`crate::models::stacked`]): trials of one ViT shape, data,
//! batch, step count and optimiser, which may differ in learning rate, schedule and seed, train
//! together as one model, one step for all of them. Each trial keeps its own initial weights,
//! data order, learning rate, clipping norm, evaluation points and outcome: one trial that
//! diverges is recorded as diverged and the others go on; one that is asked to stop stops.
//!
//! [`train_stack`] is the public, non-generic entry point (as [`crate::train::trainer::train`]);
//! [`stackable`] says which trials may share a stack.

use std::time::Instant;

use burn::module::{AutodiffModule, Module};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};

use crate::config::{ModelConfig, Optimizer, Precision, TrialConfig};
use crate::models::stacked::StackedVit;
use crate::models::Model;
use crate::train::adamw::{AdamWConfig, FusedAdamW, Rate};
use crate::train::clipping::{stacked_norm_scale, NormReduction};
use crate::train::data::Dataset;
use crate::train::per_trial::PerTrial;
use crate::train::schedule::learning_rate;
use crate::train::trainer::{
    host_values, init_model, on_backend, score_logits, BatchOrder, ComputeDevice, DeviceData,
    Evaluation, OnBackend, Outcome, Progress, Reporter, StartInfo, StepPlan, Summary, TrainError,
};

/// Whether `a` and `b` can train in one stack: a ViT classifier trained by AdamW without
/// adaptive clipping, and the same model, data, batch, step count, precision, evaluation
/// points, optimiser, weight decay and clipping threshold. The learning rate, its schedule and
/// warm-up, and the seed may differ. Mixed precision does not stack (the stacked model's
/// products are f32), nor do `dataset: images` trials.
pub fn stackable(a: &TrialConfig, b: &TrialConfig) -> bool {
    matches!(a.model, ModelConfig::Vit(_))
        // Image data sets (streamed, augmented) train one trial at a time for now.
        && !matches!(a.data, crate::config::DataConfig::Images { .. })
        && a.precision != Precision::Bf16Mixed
        && matches!(a.optim.optimizer, Optimizer::AdamW { .. })
        && a.optim.agc.is_none()
        && a.model == b.model
        && a.data == b.data
        && a.batch_size == b.batch_size
        && a.total_steps() == b.total_steps()
        && a.precision == b.precision
        && a.eval == b.eval
        && a.optim.optimizer == b.optim.optimizer
        && a.optim.weight_decay == b.optim.weight_decay
        && a.optim.grad_clip == b.optim.grad_clip
        && a.optim.agc == b.optim.agc
}

/// Trains `configs` as one stack on `data` on `device`, reporting trial `i` to
/// `reporters[i]`; the outcomes come back in the same order. A single configuration trains
/// alone ([`crate::train::trainer::train`]).
pub fn train_stack(
    configs: &[TrialConfig],
    data: &Dataset,
    device: &ComputeDevice,
    reporters: &mut [&mut dyn Reporter],
) -> Result<Vec<Outcome>, TrainError> {
    let Some(first) = configs.first() else {
        return Ok(Vec::new());
    };
    if configs.len() != reporters.len() {
        return Err(TrainError::Unsupported(format!(
            "a stack of {} trials needs as many reporters, not {}",
            configs.len(),
            reporters.len()
        )));
    }
    if configs.len() == 1 {
        return Ok(vec![crate::train::trainer::train(
            first,
            data,
            device,
            &mut *reporters[0],
        )?]);
    }
    if let Some(c) = configs.iter().find(|c| !stackable(first, c)) {
        return Err(TrainError::Unsupported(format!(
            "these trials cannot train in one stack (model {:?} vs {:?}): a stack needs ViT \
             trials with one shape, data, batch, step count and optimiser",
            first.model, c.model
        )));
    }
    struct Stack<'a, 'b> {
        configs: &'a [TrialConfig],
        data: &'a Dataset,
        reporters: &'a mut [&'b mut (dyn Reporter + 'b)],
    }
    impl OnBackend for Stack<'_, '_> {
        type Output = Vec<Outcome>;
        fn run<B: AutodiffBackend>(
            self,
            device: &B::Device,
            backend: String,
            norm_reduction: NormReduction,
        ) -> Vec<Outcome> {
            train_stack_on::<B>(
                self.configs,
                self.data,
                device,
                backend,
                norm_reduction,
                self.reporters,
            )
        }
    }
    on_backend(
        device,
        first.precision,
        Stack {
            configs,
            data,
            reporters,
        },
    )
}

/// Mean cross-entropy and accuracy of every trial of `model` on `inputs`, one forward pass
/// for all trials per chunk, scored on the host in f64 as a lone trial is.
fn evaluate_stack<B: Backend>(
    model: &StackedVit<B>,
    inputs: &Tensor<B, 2>,
    labels: &[u32],
    classes: usize,
) -> Vec<(f64, f64)> {
    const CHUNK: usize = 1000;
    let trials = model.trials();
    let n = labels.len();
    let mut sums = vec![(0.0f64, 0usize); trials];
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        let x = inputs.clone().narrow(0, start, len);
        let features = x.dims()[1];
        let x = x.unsqueeze_dim::<3>(0).expand([trials, len, features]);
        let values = host_values(model.forward(x));
        for (i, sum) in sums.iter_mut().enumerate() {
            let rows = &values[i * len * classes..(i + 1) * len * classes];
            let (loss, correct) = score_logits(rows, &labels[start..start + len], classes);
            sum.0 += loss;
            sum.1 += correct;
        }
        start += len;
    }
    sums.into_iter()
        .map(|(loss, correct)| (loss / n as f64, correct as f64 / n as f64))
        .collect()
}

/// Where one trial of the stack stands.
struct Member<'r> {
    reporter: &'r mut dyn Reporter,
    order: BatchOrder,
    summary: Summary,
    /// Set once the trial has ended (diverged or stopped); the stack carries its slice on
    /// (its values no longer matter) until every trial has ended.
    ended: Option<Outcome>,
    window_sum: f64,
    window_steps: u64,
}

fn train_stack_on<B: AutodiffBackend>(
    configs: &[TrialConfig],
    data: &Dataset,
    device: &B::Device,
    backend: String,
    norm_reduction: NormReduction,
    reporters: &mut [&mut dyn Reporter],
) -> Vec<Outcome> {
    let first = &configs[0];
    let trials = configs.len();
    let classes = data.shape.classes;
    let features = data.shape.features();
    let mut model = {
        let models: Vec<_> = configs
            .iter()
            .map(
                |c| match init_model::<B>(&c.model, &data.shape, c.seed, device) {
                    Model::Vit(v) => v,
                    _ => unreachable!("stackable trials are ViTs"),
                },
            )
            .collect();
        StackedVit::stack(&models.iter().collect::<Vec<_>>())
    };
    let Optimizer::AdamW { beta1, beta2, eps } = first.optim.optimizer else {
        unreachable!("stackable trials train with AdamW")
    };
    let mut optim = FusedAdamW::<B>::new(AdamWConfig {
        beta1,
        beta2,
        eps,
        weight_decay: first.optim.weight_decay,
    });

    let DeviceData {
        train_x,
        train_y,
        val_x,
        val_labels,
    } = DeviceData::<B::InnerBackend>::load(first, data, device);
    let (n_train, n_val) = (data.train.len(), val_labels.len());

    let StepPlan {
        total_steps,
        eval_steps,
        readback,
        batch,
    } = StepPlan::of(first);
    let params = (model.num_params() / trials) as u64;
    let mut members: Vec<Member> = reporters
        .iter_mut()
        .zip(configs)
        .map(|(reporter, c)| {
            reporter.started(&StartInfo {
                params,
                total_steps,
                train_examples: n_train,
                validation_examples: n_val,
                backend: backend.clone(),
            });
            Member {
                reporter: &mut **reporter,
                order: BatchOrder::new(c.seed, n_train, batch),
                summary: Summary::default(),
                ended: None,
                window_sum: 0.0,
                window_steps: 0,
            }
        })
        .collect();

    let start = Instant::now();
    let mut pending_loss: Option<Tensor<B::InnerBackend, 1>> = None;
    let mut pending_steps = 0u64;
    let mut next_eval = 0usize;
    for step in 0..total_steps {
        for m in members.iter_mut().filter(|m| m.ended.is_none()) {
            if m.reporter.should_stop() {
                m.summary.steps = step;
                m.summary.examples = step * batch as u64;
                m.summary.wall_seconds = start.elapsed().as_secs_f64();
                m.ended = Some(Outcome::Stopped(m.summary.clone()));
            }
        }
        if members.iter().all(|m| m.ended.is_some()) {
            break;
        }
        let idx: Vec<i64> = members
            .iter_mut()
            .flat_map(|m| m.order.next_batch())
            .collect();
        let idx = Tensor::<B::InnerBackend, 1, Int>::from_data(
            TensorData::new(idx, [trials * batch]),
            device,
        );
        let x = train_x
            .clone()
            .select(0, idx.clone())
            .reshape([trials, batch, features]);
        let y = train_y
            .clone()
            .select(0, idx)
            .reshape([trials, batch, classes]);
        let logits = model.forward(Tensor::from_inner(x));
        // Each trial's mean cross-entropy, `[trials]`; their sum's gradient is each trial's
        // own gradient, since no trial's loss depends on another's parameters.
        let losses = (log_softmax(logits, 2) * Tensor::from_inner(y))
            .sum_dim(2)
            .mean_dim(1)
            .neg()
            .reshape([trials]);
        let detached = losses.clone().inner();
        pending_loss = Some(match pending_loss.take() {
            Some(p) => p + detached,
            None => detached,
        });
        pending_steps += 1;
        let grads = GradientsParams::from_grads(losses.sum().backward(), &model);
        let clip = first.optim.grad_clip.and_then(|max_norm| {
            stacked_norm_scale(&model, &grads, trials, max_norm, norm_reduction)
        });
        let lrs: Vec<f64> = configs
            .iter()
            .map(|c| learning_rate(&c.optim, step, total_steps))
            .collect();
        let rates = PerTrial::<B::InnerBackend>::from_values(
            &lrs.iter().map(|&l| l as f32).collect::<Vec<_>>(),
            device,
        );
        model = optim.step_module(Rate::PerTrial(&rates), model, grads, clip.as_ref());

        let done = step + 1;
        let is_eval = eval_steps.get(next_eval) == Some(&done);
        if done % readback == 0 || done == total_steps || is_eval {
            let sums = pending_loss
                .take()
                .map(|t| {
                    t.into_data()
                        .convert::<f64>()
                        .to_vec::<f64>()
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let wall = start.elapsed().as_secs_f64();
            for (i, m) in members.iter_mut().enumerate() {
                if m.ended.is_some() {
                    continue;
                }
                let sum = sums.get(i).copied().unwrap_or(f64::NAN);
                let mean = sum / pending_steps as f64;
                m.window_sum += sum;
                m.window_steps += pending_steps;
                m.summary.steps = done;
                m.summary.examples = done * batch as u64;
                m.summary.wall_seconds = wall;
                m.reporter.progress(&Progress {
                    step: done,
                    total_steps,
                    examples: m.summary.examples,
                    train_loss: mean,
                    lr: lrs[i],
                    wall_seconds: wall,
                });
                if !mean.is_finite() {
                    m.summary.train_loss = Some(mean);
                    m.ended = Some(Outcome::Diverged(m.summary.clone()));
                }
            }
            pending_steps = 0;
        }
        if is_eval {
            next_eval += 1;
            let scores = evaluate_stack(&model.valid(), &val_x, val_labels, classes);
            let wall = start.elapsed().as_secs_f64();
            for (i, (m, &(val_loss, val_accuracy))) in members.iter_mut().zip(&scores).enumerate() {
                if m.ended.is_some() {
                    continue;
                }
                let train_loss = m.window_sum / m.window_steps.max(1) as f64;
                m.window_sum = 0.0;
                m.window_steps = 0;
                m.summary.wall_seconds = wall;
                m.summary.train_loss = Some(train_loss);
                m.summary.val_loss = Some(val_loss);
                m.summary.val_accuracy = Some(val_accuracy);
                m.reporter.evaluated(&Evaluation {
                    step: done,
                    examples: m.summary.examples,
                    lr: lrs[i],
                    train_loss,
                    val_loss,
                    val_accuracy,
                    wall_seconds: wall,
                });
                if !val_loss.is_finite() {
                    m.ended = Some(Outcome::Diverged(m.summary.clone()));
                    continue;
                }
                m.summary.best_val_loss = Some(
                    m.summary
                        .best_val_loss
                        .map_or(val_loss, |b| b.min(val_loss)),
                );
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    members
        .into_iter()
        .map(|m| {
            m.ended.unwrap_or_else(|| {
                let mut summary = m.summary;
                summary.wall_seconds = wall;
                Outcome::Completed(summary)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Pool, VitConfig};
    use crate::train::trainer::tests::{data_for, tiny, Record};
    use crate::train::trainer::train;

    fn vit_trial(lr: f64, seed: u64) -> TrialConfig {
        let mut c = tiny(
            lr,
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            ModelConfig::Vit(VitConfig {
                patch: 4,
                width: 16,
                depth: 2,
                heads: 2,
                mlp_dim: 32,
                pool: Pool::Mean,
                qk_norm: false,
                parallel_block: false,
                bias: true,
            }),
        );
        c.seed = seed;
        c.optim.weight_decay = 0.05;
        c
    }

    fn alone(config: &TrialConfig, data: &Dataset) -> (Outcome, Record) {
        let mut rec = Record::default();
        let outcome = train(config, data, &ComputeDevice::Cpu, &mut rec).unwrap();
        (outcome, rec)
    }

    fn stacked(configs: &[TrialConfig], data: &Dataset) -> (Vec<Outcome>, Vec<Record>) {
        let mut recs: Vec<Record> = configs.iter().map(|_| Record::default()).collect();
        let mut reporters: Vec<&mut dyn Reporter> =
            recs.iter_mut().map(|r| r as &mut dyn Reporter).collect();
        let outcomes = train_stack(configs, data, &ComputeDevice::Cpu, &mut reporters).unwrap();
        (outcomes, recs)
    }

    /// Three trials (two learning rates, two seeds, weight decay, clipping) trained as one
    /// stack reach, at every evaluation, the losses each reaches alone.
    #[test]
    fn each_trial_of_a_stack_trains_as_it_trains_alone() {
        let configs = [vit_trial(3e-3, 0), vit_trial(1e-3, 0), vit_trial(3e-3, 7)];
        let data = data_for(&configs[0]);
        let (outcomes, recs) = stacked(&configs, &data);
        let mut finals = Vec::new();
        for ((config, outcome), rec) in configs.iter().zip(&outcomes).zip(&recs) {
            assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
            let (solo, solo_rec) = alone(config, &data);
            assert!(matches!(solo, Outcome::Completed(_)), "{solo:?}");
            assert_eq!(rec.evals.len(), solo_rec.evals.len());
            assert_eq!(
                rec.start.as_ref().unwrap().params,
                solo_rec.start.as_ref().unwrap().params
            );
            for (s, a) in rec.evals.iter().zip(&solo_rec.evals) {
                assert_eq!(s.step, a.step);
                assert!((s.lr - a.lr).abs() < 1e-12);
                let tol = 1e-3 * a.val_loss.abs().max(1.0);
                assert!(
                    (s.val_loss - a.val_loss).abs() < tol
                        && (s.train_loss - a.train_loss).abs() < tol,
                    "lr {} seed {} step {}: stacked {}/{} alone {}/{}",
                    config.optim.lr,
                    config.seed,
                    a.step,
                    s.train_loss,
                    s.val_loss,
                    a.train_loss,
                    a.val_loss
                );
            }
            finals.push(rec.evals.last().unwrap().val_loss);
        }
        // The trials differ: a stack that trained one trial three times would not.
        assert!(
            (finals[0] - finals[1]).abs() > 1e-3 && (finals[0] - finals[2]).abs() > 1e-3,
            "{finals:?}"
        );
    }

    /// A trial whose learning rate makes it diverge ends as diverged; its neighbour in the
    /// stack completes with the losses it reaches alone.
    #[test]
    fn a_diverging_trial_leaves_its_stack_untouched() {
        let mut wild = vit_trial(3e-3, 0);
        wild.optim.lr = 1e6;
        wild.optim.grad_clip = Some(1.0);
        let configs = [wild, vit_trial(3e-3, 0)];
        let data = data_for(&configs[0]);
        let (outcomes, recs) = stacked(&configs, &data);
        assert!(
            matches!(outcomes[0], Outcome::Diverged(_)),
            "{:?}",
            outcomes[0]
        );
        assert!(
            matches!(outcomes[1], Outcome::Completed(_)),
            "{:?}",
            outcomes[1]
        );
        let (_, solo) = alone(&configs[1], &data);
        let (got, want) = (
            recs[1].evals.last().unwrap().val_loss,
            solo.evals.last().unwrap().val_loss,
        );
        assert!((got - want).abs() < 1e-3 * want.max(1.0), "{got} vs {want}");
    }

    #[test]
    fn stacks_hold_one_shape_and_one_optimiser() {
        let a = vit_trial(1e-3, 0);
        let mut b = vit_trial(4e-3, 9);
        b.optim.warmup = 0.2;
        assert!(
            stackable(&a, &b),
            "learning rate, warm-up and seed may differ"
        );
        let mut wider = a.clone();
        if let ModelConfig::Vit(v) = &mut wider.model {
            v.width = 32;
        }
        assert!(!stackable(&a, &wider));
        let mut longer = a.clone();
        longer.epochs *= 2.0;
        assert!(!stackable(&a, &longer));
        let mut decayed = a.clone();
        decayed.optim.weight_decay = 0.1;
        assert!(!stackable(&a, &decayed));
        let mlp = tiny(
            1e-3,
            a.optim.optimizer.clone(),
            crate::train::trainer::tests::mlp(),
        );
        assert!(!stackable(&mlp, &mlp));
        let data = data_for(&a);
        let mut recs = [Record::default(), Record::default()];
        let [r0, r1] = &mut recs;
        let err = train_stack(&[a, wider], &data, &ComputeDevice::Cpu, &mut [r0, r1]);
        assert!(matches!(err, Err(TrainError::Unsupported(_))), "{err:?}");
    }
}
