//! The local executor: runs a sweep on this machine with one `slaw worker` process per job
//! slot, each on its own device, and follows the sweep's progress from the store.
//!
//! The parent only schedules: it starts workers while trials can be claimed, restarts a slot
//! whose worker exited while work remains, reaps trials of dead workers, and hands snapshots to
//! an observer (the progress bar). Workers claim, train and write on their own, so a crashed
//! trial (even an abort of its process) fails that trial and nothing else. Workers get SIGTERM
//! if this process dies (Linux `PR_SET_PDEATHSIG`), and mark their trial interrupted.
//!
//! The storage is watched too: when the database file disappears or becomes read-only, its disk
//! fills, or a worker ends with [`WORKER_STORE_FAILED`], the run stops its workers and ends with
//! [`ExecError::StoreFault`] instead of going on (or reporting success) into a database that
//! keeps nothing. A SQLite file deleted under the run is written back from the run's open
//! connection ([`Store::rescue_to`]), so what was committed stays committed.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slaw_core::ComputeDevice;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::ExecError;
use crate::store::{now, Fault, Location, Reaped, StateCounts, Store, StoreError, TrialRow};

/// Exit code of a worker whose database failed under it (file gone or read-only, disk full).
pub const WORKER_STORE_FAILED: i32 = 4;

/// How the local executor runs a sweep.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The `slaw` executable to start workers from.
    pub exe: PathBuf,
    /// The database.
    pub db: Location,
    /// The sweep's name.
    pub sweep_name: String,
    /// The sweep's id.
    pub sweep_id: i64,
    /// One device per job slot.
    pub slots: Vec<ComputeDevice>,
    /// CPU threads per worker (sets `RAYON_NUM_THREADS`).
    pub threads_per_job: Option<usize>,
    /// Further environment variables for every worker (the MPS daemon's directories).
    pub worker_env: Vec<(String, String)>,
    /// Lease length given to workers and used for reaping.
    pub lease_seconds: f64,
    /// Heartbeat interval of workers.
    pub heartbeat_seconds: f64,
    /// How often the store is polled.
    pub poll: Duration,
    /// `--stack` for every worker, instead of the sweep's `execution.stack`.
    pub stack: Option<crate::spec::Stack>,
}

/// The state of the sweep at one poll.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Counts by state.
    pub counts: StateCounts,
    /// Running trials with their progress.
    pub running: Vec<TrialRow>,
    /// Trials that ended since the previous snapshot.
    pub finished: Vec<TrialRow>,
    /// Trials taken back from dead workers at this poll.
    pub reaped: Vec<Reaped>,
    /// Every active trial, as a progress estimate sees it.
    pub work: Vec<crate::store::WorkRow>,
    /// Live worker processes started by this executor.
    pub workers: usize,
    /// Seconds since the executor started.
    pub elapsed: f64,
}

/// What the executor tells its observer besides snapshots.
#[derive(Debug, Clone)]
pub enum Note {
    /// A line a worker wrote to its standard error.
    WorkerLine {
        /// The slot.
        slot: usize,
        /// The line.
        line: String,
    },
    /// A worker process ended with a failure status.
    WorkerFailed {
        /// The slot.
        slot: usize,
        /// How it ended.
        status: String,
    },
    /// What an executor did (a job array submitted, a task gone).
    Message(String),
}

/// Decides, between polls, whether the sweep needs more trials (the adaptive learning-rate
/// search adds trials as results arrive). The executor only runs what the store holds.
pub trait Scheduler {
    /// Adds the trials the sweep needs now; returns how many were added.
    fn refresh(
        &mut self,
        store: &Store,
    ) -> impl std::future::Future<Output = Result<usize, ExecError>>;
}

/// A fixed grid: nothing is ever added.
pub struct FixedGrid;

impl Scheduler for FixedGrid {
    async fn refresh(&mut self, _store: &Store) -> Result<usize, ExecError> {
        Ok(0)
    }
}

/// Receives the executor's progress.
pub trait Observer {
    /// Called at every poll.
    fn snapshot(&mut self, snapshot: &Snapshot);
    /// Called for worker output and failures.
    fn note(&mut self, note: &Note);
}

/// How a local run ended.
#[derive(Debug, Clone, Copy)]
pub struct RunEnd {
    /// Final counts.
    pub counts: StateCounts,
    /// Whether it stopped because of Ctrl-C / SIGTERM.
    pub interrupted: bool,
    /// Seconds it took.
    pub wall_seconds: f64,
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

#[allow(unsafe_code)]
fn spawn_worker(
    opts: &LocalOptions,
    slot: usize,
    lines: &mpsc::UnboundedSender<(usize, String)>,
) -> Result<Child, ExecError> {
    let mut cmd = Command::new(&opts.exe);
    cmd.arg("worker")
        .arg("--db")
        .arg(opts.db.to_arg())
        .arg("--sweep")
        .arg(&opts.sweep_name)
        .arg("--device")
        .arg(opts.slots[slot].to_string())
        .arg("--lease-seconds")
        .arg(opts.lease_seconds.to_string())
        .arg("--heartbeat-seconds")
        .arg(opts.heartbeat_seconds.to_string())
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    if let Some(t) = opts.threads_per_job {
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    if let Some(stack) = opts.stack {
        cmd.arg("--stack").arg(stack.to_string());
    }
    cmd.envs(opts.worker_env.iter().map(|(k, v)| (k, v)));
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ExecError::Worker(format!("cannot start {}: {e}", opts.exe.display())))?;
    if let Some(stderr) = child.stderr.take() {
        let tx = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if tx.send((slot, line)).is_err() {
                    break;
                }
            }
        });
    }
    Ok(child)
}

/// Runs the sweep's claimable trials on this machine until none is left or `stop` is set.
#[allow(unsafe_code)]
pub async fn run_local(
    store: &Store,
    opts: &LocalOptions,
    stop: Arc<AtomicBool>,
    scheduler: &mut impl Scheduler,
    observer: &mut dyn Observer,
) -> Result<RunEnd, ExecError> {
    let start = Instant::now();
    let host = crate::store::hostname();
    let (line_tx, mut line_rx) = mpsc::unbounded_channel::<(usize, String)>();
    let mut slots: Vec<Option<Child>> = (0..opts.slots.len()).map(|_| None).collect();
    let mut since = now();
    let mut failures_in_a_row = 0usize;
    let mut stopping = false;
    // Orphans of a worker that died (a trial's daemon, say) come back to this process, which
    // kills them whenever a worker has ended.
    super::reaper::become_subreaper();
    loop {
        while let Ok((slot, line)) = line_rx.try_recv() {
            observer.note(&Note::WorkerLine { slot, line });
        }
        // Collect workers that ended.
        let mut store_failed = false;
        let mut ended_now = false;
        for (slot, child) in slots.iter_mut().enumerate() {
            if let Some(c) = child {
                if let Some(status) = c.try_wait()? {
                    *child = None;
                    ended_now = true;
                    if status.code() == Some(WORKER_STORE_FAILED) {
                        store_failed = true;
                    } else if status.success() {
                        failures_in_a_row = 0;
                    } else if !stopping {
                        failures_in_a_row += 1;
                        observer.note(&Note::WorkerFailed {
                            slot,
                            status: describe(status),
                        });
                    }
                }
            }
        }
        if ended_now {
            let live: Vec<i32> = slots
                .iter()
                .flatten()
                .filter_map(|c| c.id().map(|p| p as i32))
                .collect();
            super::reaper::kill_descendants(&live);
        }
        let fault = match store.check_file() {
            Err(e) => e.fault(),
            Ok(()) if store_failed => Some(store.diagnose().unwrap_or(Fault::Io {
                detail: "a worker could not write to it; see the worker's message above".into(),
            })),
            Ok(()) => None,
        };
        if let Some(fault) = fault {
            return Err(stop_for_fault(store, &mut slots, fault, &mut line_rx, observer).await);
        }
        if failures_in_a_row > 3 * opts.slots.len().max(1) {
            return Err(ExecError::Worker(format!(
                "{failures_in_a_row} worker processes in a row ended with an error; see their output above"
            )));
        }
        let reaped = match store.reap(opts.sweep_id, opts.lease_seconds, &host).await {
            Ok(r) => r,
            Err(e) => match e.fault() {
                Some(fault) => {
                    return Err(
                        stop_for_fault(store, &mut slots, fault, &mut line_rx, observer).await,
                    )
                }
                None => return Err(e.into()),
            },
        };
        if !stopping {
            scheduler.refresh(store).await?;
        }
        let counts = store.counts(opts.sweep_id).await?;
        let live = slots.iter().filter(|c| c.is_some()).count();

        if stop.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            for c in slots.iter().flatten() {
                if let Some(pid) = c.id() {
                    // SAFETY: sending SIGTERM to a child we started.
                    unsafe {
                        libc::kill(pid as i32, libc::SIGTERM);
                    }
                }
            }
        }
        if !stopping {
            let mut to_start = counts.claimable;
            for (slot, child) in slots.iter_mut().enumerate() {
                if to_start == 0 {
                    break;
                }
                if child.is_none() {
                    *child = Some(spawn_worker(opts, slot, &line_tx)?);
                    to_start -= 1;
                }
            }
        }

        let trials = store.live_trials(opts.sweep_id, since).await?;
        let (running, finished): (Vec<TrialRow>, Vec<TrialRow>) = trials
            .into_iter()
            .partition(|t| t.state == crate::store::TrialState::Running);
        if let Some(latest) = finished
            .iter()
            .filter_map(|t| t.finished_at)
            .reduce(f64::max)
        {
            since = since.max(latest);
        }
        let work = store.work(opts.sweep_id).await?;
        let workers = slots.iter().filter(|c| c.is_some()).count();
        observer.snapshot(&Snapshot {
            counts,
            running,
            finished,
            reaped,
            work,
            workers,
            elapsed: start.elapsed().as_secs_f64(),
        });
        let done = if stopping {
            live == 0
        } else {
            live == 0 && counts.claimable == 0 && counts.running == 0
        };
        if done {
            while let Ok((slot, line)) = line_rx.try_recv() {
                observer.note(&Note::WorkerLine { slot, line });
            }
            let counts = store.counts(opts.sweep_id).await?;
            return Ok(RunEnd {
                counts,
                interrupted: stopping,
                wall_seconds: start.elapsed().as_secs_f64(),
            });
        }
        tokio::time::sleep(opts.poll).await;
    }
}

/// Stops every worker (SIGTERM: each records its trial as interrupted where it still can),
/// waits for them, and, when the SQLite file was deleted, writes what the run's connection
/// still holds back to disk. Returns the error the run ends with.
#[allow(unsafe_code)]
async fn stop_for_fault(
    store: &Store,
    slots: &mut [Option<Child>],
    fault: Fault,
    lines: &mut mpsc::UnboundedReceiver<(usize, String)>,
    observer: &mut dyn Observer,
) -> ExecError {
    for c in slots.iter().flatten() {
        if let Some(pid) = c.id() {
            // SAFETY: sending SIGTERM to a child we started.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
    for c in slots.iter_mut().flatten() {
        if tokio::time::timeout(Duration::from_secs(30), c.wait())
            .await
            .is_err()
        {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }
    while let Ok((slot, line)) = lines.try_recv() {
        observer.note(&Note::WorkerLine { slot, line });
    }
    let rescued = match &fault {
        Fault::Gone { .. } => Some(rescue(store).await),
        _ => None,
    };
    ExecError::StoreFault { fault, rescued }
}

/// Writes the deleted database back from the run's connection: to its own path when nothing is
/// there now, else beside it.
async fn rescue(store: &Store) -> Result<std::path::PathBuf, String> {
    let Some(target) = store.rescue_path() else {
        return Err("the database is not a file".into());
    };
    store
        .rescue_to(&target)
        .await
        .map_err(|e: StoreError| e.to_string())
}
