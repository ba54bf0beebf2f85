//! Trials of command trainers (`trainer: command`): one process per trial, started without a
//! shell, whose output follows the line protocol of [`super::protocol`].
//!
//! The process runs in a process group of its own with `PR_SET_PDEATHSIG` = SIGKILL, so that
//! neither a Ctrl-C at the terminal nor the death of its worker leaves it behind: the worker
//! ends it (SIGTERM to the group, SIGKILL after a grace period) when it is stopped, when the
//! trial runs past `execution.timeout`, when it prints nothing for `execution.heartbeat_timeout`,
//! when a loss is not finite, or when the lease is lost; if the worker itself is killed, the
//! kernel kills the process. The worker reads stdout and stderr and tails the file named by
//! `$SLAW_METRICS`; records become evaluation points, other lines the trial's log; the last
//! lines of stderr explain a failure.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slaw_core::ComputeDevice;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::protocol::{parse_line, Line, Tracker};
use super::worker::{record_end, WorkerEvent, WorkerOptions};
use super::ExecError;
use crate::job::CommandJob;
use crate::store::{
    now, Accounting, Claimed, Finish, LogLine, MetricRow, Store, StoreError, TrialState,
};

/// Time limits of a command trial (from its sweep's `execution` section).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// The whole trial.
    pub timeout: Option<Duration>,
    /// Without any output (stdout, stderr, `$SLAW_METRICS`).
    pub heartbeat_timeout: Option<Duration>,
}

/// Log lines stored per attempt at most; later ones are counted, not stored.
const MAX_LOG_LINES: usize = 10_000;
/// Characters of one stored log line at most.
const MAX_LINE_CHARS: usize = 4_000;
/// Lines of stderr quoted in a failed trial's error.
const STDERR_TAIL: usize = 20;
/// Characters of stderr quoted in a failed trial's error at most.
const STDERR_TAIL_CHARS: usize = 4_000;
/// Time a process gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// How often stop requests, time limits and the metrics file are checked.
const POLL: Duration = Duration::from_millis(100);
/// How long the output pipes may stay quiet after the process ended before reading stops.
const DRAIN: Duration = Duration::from_secs(2);
/// Characters of one evaluation point's further metrics (`metrics.extra`) at most; a larger
/// object is not stored, and the log says so.
pub const MAX_EXTRA_CHARS: usize = 16_384;

/// Follows a file that another process appends lines to.
struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(path: PathBuf) -> Self {
        Tail {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// Complete lines appended since the last call.
    fn poll(&mut self) -> Vec<String> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let len = file.metadata().map_or(0, |m| m.len());
        if len < self.offset {
            // Truncated or replaced: read it from the start.
            self.offset = 0;
            self.partial.clear();
        }
        if len == self.offset || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        if file
            .take(len - self.offset)
            .read_to_end(&mut bytes)
            .is_err()
        {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        // One pass over the buffer, one move of the unfinished rest (draining line by line
        // from the front was quadratic: 200 000 lines read at once took 26 s).
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(i) = self.partial[start..].iter().position(|&b| b == b'\n') {
            lines.push(text(&self.partial[start..=start + i]));
            start += i + 1;
        }
        self.partial.drain(..start);
        lines
    }

    /// A last line without its newline.
    fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| text(&std::mem::take(&mut self.partial)))
    }
}

/// A line of bytes as text, without its line ending.
fn text(line: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(line).into_owned();
    while s.ends_with('\n') || s.ends_with('\r') {
        s.pop();
    }
    s
}

/// Reads `stream` line by line into `tx` until it ends.
fn forward(
    stream: impl AsyncRead + Unpin + Send + 'static,
    name: &'static str,
    tx: mpsc::UnboundedSender<(&'static str, String)>,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send((name, text(&buf))).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// What the lines of one attempt became: the tracker's curve, the log, the stderr tail.
struct Recorder<'a> {
    job: &'a CommandJob,
    tracker: Tracker,
    logs: Vec<LogLine>,
    logged: usize,
    dropped: usize,
    stderr: VecDeque<String>,
    started: Instant,
}

impl<'a> Recorder<'a> {
    fn new(job: &'a CommandJob) -> Self {
        Recorder {
            job,
            tracker: Tracker::new(job.batch_size),
            logs: Vec::new(),
            logged: 0,
            dropped: 0,
            stderr: VecDeque::new(),
            started: Instant::now(),
        }
    }

    fn line(&mut self, stream: &'static str, line: String) {
        if stream == "stderr" {
            if self.stderr.len() == STDERR_TAIL {
                self.stderr.pop_front();
            }
            self.stderr.push_back(line.clone());
        } else {
            match parse_line(&line) {
                Line::Record(r) => {
                    self.tracker.apply(r, self.started.elapsed().as_secs_f64());
                    return;
                }
                Line::Malformed(why) => {
                    self.log(stream, line);
                    self.log("slaw", format!("ignored the record above: {why}"));
                    return;
                }
                Line::Text => {}
            }
        }
        self.log(stream, line);
    }

    fn log(&mut self, stream: &'static str, mut line: String) {
        if self.logged >= MAX_LOG_LINES {
            self.dropped += 1;
            return;
        }
        if line.len() > MAX_LINE_CHARS {
            let mut cut = MAX_LINE_CHARS;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [cut]");
        }
        self.logged += 1;
        self.logs.push(LogLine {
            stream,
            line,
            at: now(),
        });
    }

    fn params(&self) -> Option<u64> {
        self.tracker.params.or(self.job.params)
    }

    /// Reported, else declared in the sweep, else 6 × parameters.
    fn flops_per_example(&self) -> Option<f64> {
        self.tracker
            .flops_per_example
            .or(self.job.flops_per_example)
            .or_else(|| self.params().map(|p| 6.0 * p as f64))
    }

    /// Writes the new points and log lines.
    async fn flush(&mut self, store: &Store, claimed: &Claimed) -> Result<(), StoreError> {
        let points = self.tracker.take_dirty();
        if !points.is_empty() {
            let fpe = self.flops_per_example().unwrap_or(0.0);
            let mut too_large = Vec::new();
            let rows: Vec<(MetricRow, Option<String>)> = points
                .into_iter()
                .map(|p| {
                    let extra = (!p.extra.is_empty())
                        .then(|| serde_json::Value::Object(p.extra).to_string())
                        .filter(|e| {
                            let fits = e.len() <= MAX_EXTRA_CHARS;
                            if !fits {
                                too_large.push((p.step, e.len()));
                            }
                            fits
                        });
                    let row = MetricRow {
                        step: p.step as i64,
                        examples: p.examples as i64,
                        flops: p.examples as f64 * fpe,
                        lr: p.lr.unwrap_or(self.job.lr),
                        train_loss: p.train_loss,
                        val_loss: p.val_loss,
                        val_accuracy: p.val_accuracy,
                        wall_seconds: p.wall_seconds,
                    };
                    (row, extra)
                })
                .collect();
            store.upsert_metrics(claimed, &rows).await?;
            for (step, len) in too_large {
                self.log(
                    "slaw",
                    format!(
                        "the further metrics of step {step} ({len} characters of JSON) were not \
                         stored: at most {MAX_EXTRA_CHARS} per evaluation point"
                    ),
                );
            }
        }
        let logs = std::mem::take(&mut self.logs);
        store.add_logs(claimed, &logs).await
    }

    /// A failure's explanation with the last lines of stderr.
    fn failure(&self, what: &str) -> String {
        if self.stderr.is_empty() {
            return format!("{what} (nothing on stderr)");
        }
        let mut tail = self.stderr.iter().cloned().collect::<Vec<_>>().join("\n");
        if tail.len() > STDERR_TAIL_CHARS {
            let mut cut = tail.len() - STDERR_TAIL_CHARS;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail = format!("…{}", &tail[cut..]);
        }
        format!("{what}; last lines of stderr:\n{tail}")
    }
}

/// Why the worker ended the process before it exited.
enum End {
    Stopped,
    TimedOut(Duration),
    Silent(Duration),
    Diverged,
    LeaseLost,
    Store(StoreError),
}

fn describe(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "ended with an unknown status".to_string(),
        },
        None => "ended with an unknown status".to_string(),
    }
}

/// Sends `signal` to the process group `pgid`.
#[allow(unsafe_code)]
fn signal_group(pgid: Option<i32>, signal: i32) {
    if let Some(p) = pgid.filter(|p| *p > 1) {
        // SAFETY: a signal to the process group of a child we started in its own group.
        unsafe {
            libc::kill(-p, signal);
        }
    }
}

/// Ends the process group: SIGTERM, then SIGKILL after the grace period.
async fn terminate(child: &mut Child, pgid: Option<i32>) -> Option<ExitStatus> {
    signal_group(pgid, libc::SIGTERM);
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            signal_group(pgid, libc::SIGKILL);
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    }
}

/// The GPU a `cuda:N` worker gives its process, as `CUDA_VISIBLE_DEVICES` (the N-th of the
/// worker's own visible devices, when it has a list).
fn visible_device(index: usize) -> String {
    std::env::var("CUDA_VISIBLE_DEVICES")
        .ok()
        .and_then(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .nth(index)
                .map(str::to_string)
        })
        .unwrap_or_else(|| index.to_string())
}

/// Starts the trial's process: no shell, its own process group, killed with its worker.
#[allow(unsafe_code)]
fn spawn(
    job: &CommandJob,
    claimed: &Claimed,
    sweep: &str,
    device: &ComputeDevice,
    metrics: &Path,
) -> std::io::Result<Child> {
    let Some((program, args)) = job.command.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the command is empty",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    let unset = |name: &str| std::env::var_os(name).is_none() && !job.env.contains_key(name);
    if unset("PYTHONUNBUFFERED") {
        // Python buffers a piped stdout: the heartbeat would see silence.
        cmd.env("PYTHONUNBUFFERED", "1");
    }
    if unset("OMP_NUM_THREADS") {
        if let Ok(threads) = std::env::var("RAYON_NUM_THREADS") {
            // The executor's share of the cores for this job slot.
            cmd.env("OMP_NUM_THREADS", threads);
        }
    }
    cmd.envs(&job.env)
        .env("SLAW_METRICS", metrics)
        .env("SLAW_TRIAL_KEY", &claimed.key)
        .env("SLAW_TRIAL_ATTEMPT", claimed.attempt.to_string())
        .env("SLAW_SWEEP", sweep);
    match device {
        ComputeDevice::Cpu => {
            cmd.env("SLAW_DEVICE", "cpu");
        }
        ComputeDevice::Cuda(i) => {
            cmd.env("SLAW_DEVICE", "cuda")
                .env("CUDA_VISIBLE_DEVICES", visible_device(*i));
        }
    }
    if let Some(dir) = &job.workdir {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: setpgid, prctl and getppid are async-signal-safe; the closure allocates nothing.
    // The death signal follows the thread that forks: workers run a current-thread runtime, so
    // that is the worker's main thread, which lives as long as the worker.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                // The worker died before the death signal was armed.
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Runs one claimed command trial to its end and records it.
pub async fn run_command_trial(
    store: &Store,
    opts: &WorkerOptions,
    claimed: &Claimed,
    job: &CommandJob,
    sweep: &str,
    limits: &Limits,
    stop_all: Arc<AtomicBool>,
) -> Result<WorkerEvent, ExecError> {
    let worker = opts.identity.as_str();
    let dir = tempfile::Builder::new().prefix("slaw-trial-").tempdir()?;
    let metrics_path = dir.path().join("metrics.jsonl");
    std::fs::File::create(&metrics_path)?;
    let mut rec = Recorder::new(job);
    let mut child = match spawn(job, claimed, sweep, &opts.device, &metrics_path) {
        Ok(c) => c,
        Err(e) => {
            let error = format!(
                "cannot start {}: {e}",
                job.command.first().map_or("", String::as_str)
            );
            return finish(
                store,
                claimed,
                worker,
                TrialState::Failed,
                &rec,
                Some(error),
            )
            .await;
        }
    };
    let pgid = child.id().map(|p| p as i32);
    if !store.mark_started(claimed, worker, None).await? {
        terminate(&mut child, pgid).await;
        return Ok(WorkerEvent::LeaseLost {
            key: claimed.key.clone(),
        });
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        forward(out, "stdout", tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward(err, "stderr", tx.clone());
    }
    drop(tx);
    let mut metrics = Tail::new(metrics_path);
    let mut last_output = Instant::now();
    let mut poll = tokio::time::interval(POLL);
    let mut beat = tokio::time::interval(Duration::from_secs_f64(opts.heartbeat_seconds.max(0.05)));
    beat.tick().await;
    let mut readers_open = true;
    let mut status: Option<ExitStatus> = None;
    let end: Option<End> = loop {
        // Biased: the process's exit is seen first, so that time slaw spends reading a backlog
        // of output (or writing it) never counts against the program's time limits.
        tokio::select! {
            biased;
            s = child.wait() => {
                status = s.ok();
                break None;
            }
            _ = poll.tick() => {
                for line in metrics.poll() {
                    last_output = Instant::now();
                    rec.line("metrics", line);
                }
                if stop_all.load(Ordering::Relaxed) {
                    break Some(End::Stopped);
                }
                // Time limits judge the program: one that has exited is not timed out, however
                // long its output takes to store.
                if let Ok(Some(s)) = child.try_wait() {
                    status = Some(s);
                    break None;
                }
                if let Some(t) = limits.timeout.filter(|t| rec.started.elapsed() > *t) {
                    break Some(End::TimedOut(t));
                }
                if let Some(h) = limits.heartbeat_timeout.filter(|h| last_output.elapsed() > *h) {
                    break Some(End::Silent(h));
                }
            }
            _ = beat.tick() => {
                if let Err(e) = rec.flush(store, claimed).await {
                    break Some(End::Store(e));
                }
                match store
                    .heartbeat(claimed, worker, rec.tracker.last_step, rec.tracker.train_loss)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => break Some(End::LeaseLost),
                    Err(e) => break Some(End::Store(e)),
                }
            }
            // Last: a flood of output must not starve the clocks above.
            msg = rx.recv(), if readers_open => match msg {
                Some((stream, line)) => {
                    last_output = Instant::now();
                    rec.line(stream, line);
                    // Take what else is waiting in one go.
                    for _ in 0..1024 {
                        let Ok((stream, line)) = rx.try_recv() else { break };
                        rec.line(stream, line);
                    }
                }
                None => readers_open = false,
            },
        }
        if rec.tracker.diverged.is_some() {
            break Some(End::Diverged);
        }
    };
    if status.is_none() {
        status = terminate(&mut child, pgid).await;
    }
    // Whatever the process left behind goes with it: its group, and every process it started
    // outside the group (setsid, double forks), which this worker reaps as their subreaper.
    signal_group(pgid, libc::SIGKILL);
    let orphans = super::reaper::kill_descendants(&[]);
    if orphans > 0 {
        rec.log(
            "slaw",
            format!("killed {orphans} process(es) the command left running after it ended"),
        );
    }
    // Every line already read is kept; the wait ends when the pipes close or stay quiet. The
    // lease is renewed meanwhile: a backlog of output may take a while.
    let beat_every = Duration::from_secs_f64(opts.heartbeat_seconds.max(0.05));
    let mut last_beat = Instant::now();
    while readers_open {
        match tokio::time::timeout(DRAIN, rx.recv()).await {
            Ok(Some((stream, line))) => {
                rec.line(stream, line);
                if last_beat.elapsed() > beat_every {
                    last_beat = Instant::now();
                    let step = rec.tracker.last_step;
                    if !store
                        .heartbeat(claimed, worker, step, rec.tracker.train_loss)
                        .await?
                    {
                        return Ok(WorkerEvent::LeaseLost {
                            key: claimed.key.clone(),
                        });
                    }
                }
            }
            _ => readers_open = false,
        }
    }
    for line in metrics.poll().into_iter().chain(metrics.rest()) {
        rec.line("metrics", line);
    }
    let step = rec.tracker.last_step;
    let (state, error, clean) = match end {
        Some(End::Store(e)) => return Err(e.into()),
        Some(End::LeaseLost) => {
            return Ok(WorkerEvent::LeaseLost {
                key: claimed.key.clone(),
            })
        }
        Some(End::Stopped) => (
            TrialState::Interrupted,
            Some(format!(
                "interrupted at step {step} (Ctrl-C or SIGTERM); the command was stopped"
            )),
            true,
        ),
        Some(End::TimedOut(t)) => (
            TrialState::Failed,
            Some(rec.failure(&format!(
                "timed out: still running after {} s (execution.timeout); killed",
                t.as_secs_f64()
            ))),
            false,
        ),
        Some(End::Silent(h)) => (
            TrialState::Failed,
            Some(rec.failure(&format!(
                "no output for {} s (execution.heartbeat_timeout); killed",
                h.as_secs_f64()
            ))),
            false,
        ),
        Some(End::Diverged) | None if rec.tracker.diverged.is_some() => {
            (TrialState::Diverged, rec.tracker.diverged.clone(), false)
        }
        Some(End::Diverged) | None => {
            if status.is_some_and(|s| s.success()) {
                let note = rec.tracker.val_loss.is_none().then(|| {
                    "the command exited 0 without reporting val_loss: the fits leave this trial out"
                        .to_string()
                });
                (TrialState::Completed, note, false)
            } else {
                let what = format!("the command failed: {}", describe(status));
                (TrialState::Failed, Some(rec.failure(&what)), false)
            }
        }
    };
    if rec.dropped > 0 {
        let note = format!(
            "{} more lines of output were not stored (at most {MAX_LOG_LINES} per attempt)",
            rec.dropped
        );
        rec.logged = 0;
        rec.log("slaw", note);
    }
    rec.flush(store, claimed).await?;
    if clean {
        return finish(store, claimed, worker, state, &rec, error).await;
    }
    let completed = state == TrialState::Completed;
    let t = &rec.tracker;
    let accounting = Accounting {
        params: t.params,
        params_non_embedding: t
            .params_non_embedding
            .or(t.params.filter(|_| job.params_non_embedding.is_none())),
        flops_per_example: rec.flops_per_example(),
        examples: (completed && t.examples > 0).then_some(t.examples),
        steps: (completed && t.last_step > 0).then_some(t.last_step),
    };
    if !store
        .record_accounting(claimed, worker, &accounting)
        .await?
    {
        return Ok(WorkerEvent::LeaseLost {
            key: claimed.key.clone(),
        });
    }
    finish(store, claimed, worker, state, &rec, error).await
}

/// Records the end of the attempt.
async fn finish(
    store: &Store,
    claimed: &Claimed,
    worker: &str,
    state: TrialState,
    rec: &Recorder<'_>,
    error: Option<String>,
) -> Result<WorkerEvent, ExecError> {
    let t = &rec.tracker;
    let wall_seconds = rec.started.elapsed().as_secs_f64();
    let finish = Finish {
        step: t.last_step,
        train_loss: t.train_loss,
        val_loss: t.val_loss,
        val_accuracy: t.val_accuracy,
        best_val_loss: t.best_val_loss,
        wall_seconds,
        error,
    };
    let clean = state == TrialState::Interrupted;
    record_end(store, claimed, worker, state, finish, clean).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_returns_whole_lines_and_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        assert!(tail.poll().is_empty(), "no file yet");
        std::fs::write(&path, "{\"step\": 1}\n{\"st").unwrap();
        assert_eq!(tail.poll(), vec!["{\"step\": 1}".to_string()]);
        std::fs::write(&path, "{\"step\": 1}\n{\"step\": 2}\r\nlast").unwrap();
        assert_eq!(tail.poll(), vec!["{\"step\": 2}".to_string()]);
        assert_eq!(tail.rest(), Some("last".to_string()));
        assert_eq!(tail.rest(), None);
    }
}
