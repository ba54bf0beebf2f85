//! A worker: claims trials from the store one at a time, trains each with slaw's Burn trainer
//! on its device (or runs its command, see [`super::command`]), writes the evaluation points as
//! they come, heartbeats to hold its lease, and records how each trial ended. Many workers
//! (processes, machines) can share one store.
//!
//! Training runs on a plain thread; this async side only talks to the database, so a slow
//! write never stalls a training step and a stalled trainer never stops the heartbeat.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use slaw_core::{
    ComputeDevice, Evaluation, Outcome, Progress, Reporter, StartInfo, Summary, Trainer,
};
use tokio::sync::mpsc;

use super::command::{run_command_trial, Limits};
use super::ExecError;
use crate::job::Job;
use crate::spec::Stack;
use crate::store::{Claimed, Finish, MetricRow, Store, TrialState};

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Claim only from this sweep; negative: from any sweep.
    pub sweep_id: i64,
    /// Where to train.
    pub device: ComputeDevice,
    /// A trial whose heartbeat is older than this is taken back.
    pub lease_seconds: f64,
    /// How often the lease is renewed.
    pub heartbeat_seconds: f64,
    /// Stop after this many trials.
    pub max_trials: Option<usize>,
    /// Identity written on claimed trials (`host:pid`).
    pub identity: String,
    /// End after a failed trial, so that the next trial starts in a fresh process (a CUDA
    /// error such as out-of-memory can leave the device context unusable).
    pub exit_after_failure: bool,
    /// The Slurm array task this worker runs in (`JOBID_TASK`), recorded on its trials.
    pub slurm_job: Option<String>,
    /// When nothing can be claimed but other workers' trials are running, keep polling (every
    /// heartbeat interval) to take over any whose lease expires, instead of exiting.
    pub linger: bool,
    /// The most trials trained as one stack, instead of the sweep's `execution.stack`.
    pub stack: Option<Stack>,
}

/// What a worker reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// A trial was claimed.
    Claimed {
        /// Its key.
        key: String,
        /// Its attempt number.
        attempt: i64,
    },
    /// A trial ended.
    Finished {
        /// Its key.
        key: String,
        /// The state it ended in.
        state: TrialState,
        /// Its final validation loss.
        val_loss: Option<f64>,
        /// Training seconds.
        wall_seconds: f64,
        /// Error text, if any.
        error: Option<String>,
    },
    /// The lease was lost (the trial was reaped); nothing more is written for it.
    LeaseLost {
        /// Its key.
        key: String,
    },
    /// Trials reaped from dead workers before claiming.
    Reaped {
        /// How many.
        count: usize,
    },
}

/// The first panic of a device thread of this process (CubeCL runs each GPU's work on threads
/// of its own: an out-of-memory error there never reaches the training thread, which may then
/// wait forever). Set by the panic hook of [`install_device_panic_hook`].
pub static DEVICE_ERROR: OnceLock<String> = OnceLock::new();

/// Name of the thread that trains; panics of other threads are device errors.
const TRAINER_THREAD: &str = "slaw-trainer";

/// Records the first panic of a thread other than the main and training threads in
/// [`DEVICE_ERROR`] (and prints it once; repeats are not printed).
pub fn install_device_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        if name == "main" || name == TRAINER_THREAD {
            default(info);
            return;
        }
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a device thread panicked".into());
        if DEVICE_ERROR.set(format!("{msg} (thread {name})")).is_ok() {
            default(info);
        }
    }));
}

/// A readable error for a device failure (out-of-memory said plainly).
fn device_error_text(e: &str) -> String {
    if e.contains("allocate") || e.to_ascii_lowercase().contains("out of memory") {
        format!("CUDA out of memory: {e}")
    } else {
        format!("device error: {e}")
    }
}

/// Trials a worker ran, by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Completed trials.
    pub completed: usize,
    /// Failed trials.
    pub failed: usize,
    /// Diverged trials.
    pub diverged: usize,
    /// Trials stopped by Ctrl-C / SIGTERM.
    pub interrupted: usize,
    /// Trials whose lease was lost.
    pub lost: usize,
}

enum Message {
    Started(StartInfo),
    Progress(Progress),
    Evaluated(Evaluation),
}

/// Sends the trainer's reports to the async side and relays stop requests to the trainer.
struct ChannelReporter {
    /// The trial's place in its stack.
    index: usize,
    tx: mpsc::UnboundedSender<(usize, Message)>,
    stop_trial: Arc<AtomicBool>,
    stop_all: Arc<AtomicBool>,
}

impl Reporter for ChannelReporter {
    fn started(&mut self, info: &StartInfo) {
        let _ = self.tx.send((self.index, Message::Started(info.clone())));
    }
    fn progress(&mut self, p: &Progress) {
        let _ = self.tx.send((self.index, Message::Progress(p.clone())));
    }
    fn evaluated(&mut self, e: &Evaluation) {
        let _ = self.tx.send((self.index, Message::Evaluated(e.clone())));
    }
    fn should_stop(&mut self) -> bool {
        self.stop_trial.load(Ordering::Relaxed)
            || self.stop_all.load(Ordering::Relaxed)
            || DEVICE_ERROR.get().is_some()
    }
}

/// Runs trials until none can be claimed, `max_trials` ran, or `stop` is set. Trials of
/// slaw's own trainer train through `trainer`; command trials run their program.
pub async fn run_worker(
    store: &Store,
    opts: &WorkerOptions,
    trainer: Arc<dyn Trainer>,
    stop: Arc<AtomicBool>,
    observer: &mut (dyn FnMut(WorkerEvent) + Send),
) -> Result<WorkerReport, ExecError> {
    let host = crate::store::hostname();
    // Processes a command trainer starts outside its group come back to this worker when
    // orphaned, so that they end with their trial (`reaper`).
    super::reaper::become_subreaper();
    let mut sweeps: HashMap<i64, SweepInfo> = HashMap::new();
    let mut report = WorkerReport::default();
    let mut ran = 0usize;
    while !stop.load(Ordering::Relaxed) && opts.max_trials.is_none_or(|m| ran < m) {
        let reaped = store.reap(opts.sweep_id, opts.lease_seconds, &host).await?;
        if !reaped.is_empty() {
            observer(WorkerEvent::Reaped {
                count: reaped.len(),
            });
        }
        let Some(claimed) = store
            .claim_in_job(
                opts.sweep_id,
                &opts.identity,
                &opts.device.to_string(),
                opts.slurm_job.as_deref(),
            )
            .await?
        else {
            if opts.linger && store.running(opts.sweep_id).await? > 0 {
                tokio::time::sleep(Duration::from_secs_f64(opts.heartbeat_seconds.max(0.1))).await;
                continue;
            }
            break;
        };
        if let std::collections::hash_map::Entry::Vacant(e) = sweeps.entry(claimed.sweep_id) {
            e.insert(sweep_info(store, claimed.sweep_id).await?);
        }
        let info = &sweeps[&claimed.sweep_id];
        // Trials that can share a stack with this one join it, up to the stack limit.
        let mut members = vec![claimed];
        let stackable_config = members[0]
            .config
            .burn()
            .filter(|c| trainer.stackable(c, c))
            .cloned();
        if let Some(config) = stackable_config {
            let left = opts.max_trials.map_or(usize::MAX, |m| m - ran);
            let room =
                stack_room(opts, opts.stack.unwrap_or(info.stack), &members[0], &config).min(left);
            if room > 1 {
                let more = store
                    .claim_matching(
                        members[0].sweep_id,
                        &opts.identity,
                        &opts.device.to_string(),
                        opts.slurm_job.as_deref(),
                        room - 1,
                        |job| matches!(job, Job::Burn(c) if trainer.stackable(&config, c)),
                    )
                    .await?;
                members.extend(more);
            }
        }
        ran += members.len();
        for m in &members {
            observer(WorkerEvent::Claimed {
                key: m.key.clone(),
                attempt: m.attempt,
            });
        }
        let events = match &members[0].config {
            Job::Burn(_) => {
                let data_path = info.data_path.clone();
                run_stack(store, opts, members, data_path, &trainer, stop.clone()).await?
            }
            Job::Command(job) => {
                let claimed = &members[0];
                vec![
                    run_command_trial(
                        store,
                        opts,
                        claimed,
                        job,
                        &info.name,
                        &info.limits,
                        stop.clone(),
                    )
                    .await?,
                ]
            }
        };
        let mut failed = false;
        for event in events {
            match &event {
                WorkerEvent::Finished { state, .. } => match state {
                    TrialState::Completed => report.completed += 1,
                    TrialState::Diverged => report.diverged += 1,
                    TrialState::Interrupted => report.interrupted += 1,
                    _ => {
                        report.failed += 1;
                        failed = true;
                    }
                },
                WorkerEvent::LeaseLost { .. } => report.lost += 1,
                _ => {}
            }
            observer(event);
        }
        if failed && opts.exit_after_failure {
            break;
        }
    }
    Ok(report)
}

/// What a worker needs to know of a trial's sweep.
#[derive(Debug, Clone, Default)]
struct SweepInfo {
    name: String,
    stack: Stack,
    data_path: Option<PathBuf>,
    limits: Limits,
}

async fn sweep_info(store: &Store, sweep_id: i64) -> Result<SweepInfo, ExecError> {
    let sweeps = store.sweeps().await?;
    let Some(row) = sweeps.into_iter().find(|s| s.id == sweep_id) else {
        return Ok(SweepInfo::default());
    };
    let spec = row.spec()?;
    let seconds = |s: Option<f64>| s.map(Duration::from_secs_f64);
    Ok(SweepInfo {
        stack: spec.stack,
        name: row.name,
        data_path: spec.data_path().map(PathBuf::from),
        limits: spec.command().map_or(Limits::default(), |c| Limits {
            timeout: seconds(c.timeout),
            heartbeat_timeout: seconds(c.heartbeat_timeout),
        }),
    })
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the trainer panicked".to_string()
    }
}

/// How many trials the stack of the claimed trial `first` (configured as `config`) may hold:
/// the stack setting on this worker's device, within the GPU's memory. A retried trial runs
/// alone, so that a stack that failed (out of memory, say) is not formed again.
fn stack_room(
    opts: &WorkerOptions,
    setting: Stack,
    first: &Claimed,
    config: &slaw_core::TrialConfig,
) -> usize {
    let limit = setting.limit(matches!(opts.device, ComputeDevice::Cuda(_)));
    if first.attempt > 1 || limit <= 1 {
        return 1;
    }
    limit.min(stack_fits(&opts.device, config))
}

/// The largest stack of trials like `config` whose estimated memory fits in 85 % of the GPU's
/// (at least 1; no limit on the CPU).
fn stack_fits(device: &ComputeDevice, config: &slaw_core::TrialConfig) -> usize {
    let ComputeDevice::Cuda(index) = device else {
        return usize::MAX;
    };
    let Some(&available) = super::packing::gpu_memory().get(*index) else {
        return 1;
    };
    (2..=super::packing::MAX_STACK)
        .take_while(|&n| super::packing::stack_memory(config, n) as f64 <= 0.85 * available as f64)
        .last()
        .unwrap_or(1)
}

/// On a GPU, refuses a trial whose estimated memory exceeds the device's by more than a
/// quarter: it would fail anyway, and on the way exhaust the memory of every trial sharing
/// the GPU. The estimate is generous, hence the margin.
fn memory_preflight(device: &ComputeDevice, config: &slaw_core::TrialConfig) -> Option<String> {
    let ComputeDevice::Cuda(index) = device else {
        return None;
    };
    let available = *super::packing::gpu_memory().get(*index)?;
    let needed = super::packing::trial_memory(config);
    (needed as f64 > 1.25 * available as f64).then(|| {
        format!(
            "CUDA out of memory: the trial needs about {:.1} GiB (weights, gradients, optimiser \
             state, activations), more than the {:.1} GiB of {device}; not started",
            needed as f64 / (1u64 << 30) as f64,
            available as f64 / (1u64 << 30) as f64
        )
    })
}

/// What the training thread hands back: one outcome per trial of the stack, or one error for
/// all of them.
enum ThreadResult {
    Trained(Vec<Outcome>),
    Failed(String),
}

/// Trains `members` (claimed Burn trials that [`Trainer::stackable`] accepts together, or a
/// single trial) on one training thread, as one stack when there are several; writes each
/// trial's metrics, heartbeats and end under its own lease. One event per member, in order.
async fn run_stack(
    store: &Store,
    opts: &WorkerOptions,
    members: Vec<Claimed>,
    data_path: Option<PathBuf>,
    trainer: &Arc<dyn Trainer>,
    stop_all: Arc<AtomicBool>,
) -> Result<Vec<WorkerEvent>, ExecError> {
    let worker = opts.identity.as_str();
    let mut events = Vec::new();
    let mut running: Vec<(Claimed, slaw_core::TrialConfig)> = Vec::new();
    for claimed in members {
        let Some(config) = claimed.config.burn().cloned() else {
            continue;
        };
        if let Some(error) = memory_preflight(&opts.device, &config) {
            let finish = Finish {
                error: Some(error),
                ..Finish::default()
            };
            events.push(
                record_end(store, &claimed, worker, TrialState::Failed, finish, false).await?,
            );
            continue;
        }
        running.push((claimed, config));
    }
    if running.is_empty() {
        return Ok(events);
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let stop_flags: Vec<Arc<AtomicBool>> = running
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let mut reporters: Vec<ChannelReporter> = stop_flags
        .iter()
        .enumerate()
        .map(|(index, flag)| ChannelReporter {
            index,
            tx: tx.clone(),
            stop_trial: flag.clone(),
            stop_all: stop_all.clone(),
        })
        .collect();
    drop(tx);
    let configs: Vec<slaw_core::TrialConfig> = running.iter().map(|(_, c)| c.clone()).collect();
    let device = opts.device.clone();
    let trainer = trainer.clone();
    let thread = std::thread::Builder::new()
        .name(TRAINER_THREAD.into())
        .spawn(move || {
            let mut dyn_reporters: Vec<&mut dyn Reporter> = reporters
                .iter_mut()
                .map(|r| r as &mut dyn Reporter)
                .collect();
            match std::panic::catch_unwind(AssertUnwindSafe(|| {
                trainer.train_stack(&configs, data_path.as_deref(), &device, &mut dyn_reporters)
            })) {
                Ok(Ok(outcomes)) => ThreadResult::Trained(outcomes),
                Ok(Err(e)) => ThreadResult::Failed(e.to_string()),
                Err(payload) => ThreadResult::Failed(format!("panic: {}", panic_text(payload))),
            }
        })?;

    let n = running.len();
    let mut beat = tokio::time::interval(Duration::from_secs_f64(opts.heartbeat_seconds.max(0.05)));
    beat.tick().await;
    let mut progress: Vec<(u64, Option<f64>)> = vec![(0, None); n];
    let mut lost = vec![false; n];
    let mut db_error: Option<ExecError> = None;
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some((i, msg)) = msg else { break };
                let claimed = &running[i].0;
                let result = match msg {
                    Message::Started(info) => store.mark_started(claimed, worker, Some(info.params)).await,
                    Message::Progress(p) => {
                        progress[i] = (p.step, Some(p.train_loss));
                        Ok(true)
                    }
                    Message::Evaluated(e) => store
                        .add_metric(claimed, &MetricRow {
                            step: e.step as i64,
                            examples: e.examples as i64,
                            flops: e.examples as f64 * claimed.flops_per_example,
                            lr: e.lr,
                            train_loss: Some(e.train_loss),
                            val_loss: Some(e.val_loss),
                            val_accuracy: Some(e.val_accuracy),
                            wall_seconds: e.wall_seconds,
                        })
                        .await
                        .map(|()| true),
                };
                match result {
                    Ok(true) => {}
                    Ok(false) => lost[i] = true,
                    Err(e) => db_error = Some(e.into()),
                }
            }
            _ = beat.tick() => {
                if let Some(e) = DEVICE_ERROR.get() {
                    // The device is gone for this process: record the trials, leave the
                    // training thread behind (it may never return) and let the caller end
                    // the process; the executor starts a fresh worker.
                    fail_all(store, worker, &running, &progress, &lost, e).await?;
                    return Err(ExecError::DeviceFailed(device_error_text(e)));
                }
                for (i, (claimed, _)) in running.iter().enumerate() {
                    if lost[i] {
                        continue;
                    }
                    let (step, loss) = progress[i];
                    match store.heartbeat(claimed, worker, step, loss).await {
                        Ok(true) => {}
                        Ok(false) => lost[i] = true,
                        Err(e) => db_error = Some(e.into()),
                    }
                }
            }
        }
        for (i, flag) in stop_flags.iter().enumerate() {
            if lost[i] || db_error.is_some() {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }
    let result = tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| ExecError::Worker(format!("training thread: {e}")))?
        .unwrap_or_else(|p| ThreadResult::Failed(format!("panic: {}", panic_text(p))));
    if let Some(e) = db_error {
        return Err(e);
    }
    if let Some(e) = DEVICE_ERROR.get() {
        fail_all(store, worker, &running, &progress, &lost, e).await?;
        return Err(ExecError::DeviceFailed(device_error_text(e)));
    }
    let mut outcomes: Vec<Result<Outcome, String>> = match result {
        ThreadResult::Trained(o) => o.into_iter().map(Ok).collect(),
        ThreadResult::Failed(msg) => vec![Err(msg); n],
    };
    outcomes.resize(
        n,
        Err("the trainer returned no outcome for this trial".into()),
    );
    for (i, ((claimed, _), outcome)) in running.iter().zip(outcomes).enumerate() {
        if lost[i] {
            events.push(WorkerEvent::LeaseLost {
                key: claimed.key.clone(),
            });
            continue;
        }
        let (state, summary, error, clean) = match outcome {
            Ok(Outcome::Completed(s)) => (TrialState::Completed, s, None, false),
            Ok(Outcome::Diverged(s)) => {
                let msg = format!("non-finite loss at step {}", s.steps);
                (TrialState::Diverged, s, Some(msg), false)
            }
            Ok(Outcome::Stopped(s)) => {
                let msg = format!("interrupted at step {} (Ctrl-C or SIGTERM)", s.steps);
                (TrialState::Interrupted, s, Some(msg), true)
            }
            Err(msg) => (
                TrialState::Failed,
                Summary {
                    steps: progress[i].0,
                    ..Summary::default()
                },
                Some(msg),
                false,
            ),
        };
        let finish = Finish {
            step: summary.steps,
            train_loss: summary.train_loss,
            val_loss: summary.val_loss,
            val_accuracy: summary.val_accuracy,
            best_val_loss: summary.best_val_loss,
            wall_seconds: summary.wall_seconds,
            error,
        };
        events.push(record_end(store, claimed, worker, state, finish, clean).await?);
    }
    Ok(events)
}

/// Records every trial of a stack still held as failed by the device error `e`.
async fn fail_all(
    store: &Store,
    worker: &str,
    running: &[(Claimed, slaw_core::TrialConfig)],
    progress: &[(u64, Option<f64>)],
    lost: &[bool],
    e: &str,
) -> Result<(), ExecError> {
    for (i, (claimed, _)) in running.iter().enumerate() {
        if lost[i] {
            continue;
        }
        let finish = Finish {
            step: progress[i].0,
            error: Some(device_error_text(e)),
            ..Finish::default()
        };
        store
            .finish(claimed, worker, TrialState::Failed, &finish, false)
            .await?;
    }
    Ok(())
}

/// Stores the end of a claimed attempt (Burn or command trainer) and says what happened:
/// `LeaseLost` when another worker took the trial back meanwhile, else `Finished`.
pub(super) async fn record_end(
    store: &Store,
    claimed: &Claimed,
    worker: &str,
    state: TrialState,
    finish: Finish,
    clean: bool,
) -> Result<WorkerEvent, ExecError> {
    if !store.finish(claimed, worker, state, &finish, clean).await? {
        return Ok(WorkerEvent::LeaseLost {
            key: claimed.key.clone(),
        });
    }
    Ok(WorkerEvent::Finished {
        key: claimed.key.clone(),
        state,
        val_loss: finish.val_loss,
        wall_seconds: finish.wall_seconds,
        error: finish.error,
    })
}
