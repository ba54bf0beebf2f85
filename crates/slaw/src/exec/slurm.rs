//! The Slurm executor: runs a sweep as Slurm job arrays whose tasks are `slaw worker`
//! processes claiming trials from the shared database. Slurm places the work; the database
//! holds the state; this process only submits, follows and takes back.
//!
//! `slaw run --executor slurm` renders a batch script from the sweep's `slurm:` section,
//! submits it with `sbatch --parsable --array=0-(n-1)%max_parallel` (n = claimable trials /
//! `trials_per_task`), records the job in `slurm_jobs`, then polls the database (counts,
//! progress) and the queue (`squeue --name`). A trial whose worker's array task has left the
//! queue (scancel, preemption, time limit, node failure) is taken back at once; one whose
//! heartbeat stopped is taken back when its lease expires, as everywhere. When every array has
//! left the queue and trials are still claimable, a new array is submitted for them, up to
//! `resubmit` times in a row without progress.
//!
//! The database location reaches the tasks through `SLAW_DB` in the environment that `sbatch`
//! exports, not through the script, so that a password in a PostgreSQL URL is not written to
//! the script file or the `slurm_jobs` table.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::Command;

use super::local::{Note, Observer, RunEnd, Scheduler, Snapshot};
use super::ExecError;
use super::RunOutcome;
use crate::spec::SlurmSpec;
use crate::store::{now, Holder, Location, NewSlurmJob, Store, TrialRow, TrialState};

/// Array indices slaw uses at most in one submission (Slurm's default `MaxArraySize` is 1001);
/// trials beyond are run by the next array.
pub const MAX_ARRAY_TASKS: usize = 1000;

/// How the Slurm executor runs a sweep.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The `slaw` executable the tasks run (an absolute path the compute nodes can reach).
    pub exe: PathBuf,
    /// The database (a PostgreSQL URL, or an absolute SQLite path on a shared file system).
    pub db: Location,
    /// The sweep's name.
    pub sweep_name: String,
    /// The sweep's id.
    pub sweep_id: i64,
    /// Resources and policy.
    pub spec: SlurmSpec,
    /// Where scripts and task output go (absolute).
    pub log_dir: PathBuf,
    /// Lease length given to workers and used for reaping.
    pub lease_seconds: f64,
    /// Heartbeat interval of workers.
    pub heartbeat_seconds: f64,
    /// How often the database and the queue are polled.
    pub poll: Duration,
    /// Submit once and return without following.
    pub detach: bool,
}

impl SlurmOptions {
    /// The job name of the arrays (`--job-name`), by which the queue is read.
    pub fn job_name(&self) -> String {
        self.spec
            .job_name
            .clone()
            .unwrap_or_else(|| format!("slaw-{}", self.sweep_name))
    }
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The batch script of one job array: resources as `#SBATCH` lines, the setup lines, then
/// `exec slaw worker` with at most `trials_per_task` trials.
pub fn render_script(opts: &SlurmOptions) -> String {
    let s = &opts.spec;
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!(
            "# slaw worker array for sweep {}, written by `slaw run --executor slurm`.",
            opts.sweep_name
        ),
        format!("#SBATCH --job-name={}", sh_quote(&opts.job_name())),
        format!(
            "#SBATCH --output={}",
            sh_quote(&opts.log_dir.join("%x-%A_%a.out").display().to_string())
        ),
        format!("#SBATCH --cpus-per-task={}", s.cpus),
    ];
    if let Some(p) = &s.partition {
        lines.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(t) = &s.time {
        lines.push(format!("#SBATCH --time={t}"));
    }
    if let Some(m) = &s.mem {
        lines.push(format!("#SBATCH --mem={m}"));
    }
    if s.gpus_per_trial > 0 {
        lines.push(format!("#SBATCH --gpus-per-task={}", s.gpus_per_trial));
    }
    for a in &s.sbatch_args {
        lines.push(format!("#SBATCH {a}"));
    }
    lines.push(String::new());
    lines.push(
        ": \"${SLAW_DB:?slaw: SLAW_DB did not reach the job (sbatch --export must keep it)}\""
            .to_string(),
    );
    lines.extend(s.setup.iter().cloned());
    lines.push("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"".to_string());
    let device = if s.gpus_per_trial > 0 {
        "cuda:0"
    } else {
        "cpu"
    };
    lines.push(format!(
        "exec {} worker --sweep {} --device {device} --max-trials {} --lease-seconds {} --heartbeat-seconds {}",
        sh_quote(&opts.exe.display().to_string()),
        sh_quote(&opts.sweep_name),
        s.trials_per_task,
        opts.lease_seconds,
        opts.heartbeat_seconds,
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// The job id in `sbatch --parsable` output (`JOBID` or `JOBID;CLUSTER`).
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let first = stdout.lines().find(|l| !l.trim().is_empty())?.trim();
    let id = first.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// The array tasks of our job name in the queue, from `squeue -h -r -o %i|%T`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Queue {
    /// State of every listed task (`JOBID_TASK` → `RUNNING`, `PENDING`, ...).
    pub tasks: HashMap<String, String>,
}

impl Queue {
    /// Parses `squeue -h -r -o '%i|%T'` output.
    pub fn parse(stdout: &str) -> Queue {
        let tasks = stdout
            .lines()
            .filter_map(|l| {
                let (id, state) = l.trim().split_once('|')?;
                Some((id.trim().to_string(), state.trim().to_ascii_uppercase()))
            })
            .collect();
        Queue { tasks }
    }

    /// Whether any task of array `job` is listed.
    pub fn has_job(&self, job: &str) -> bool {
        self.tasks
            .keys()
            .any(|t| t == job || t.split('_').next() == Some(job))
    }

    /// Whether the task `JOBID_TASK` is listed in a state where its worker may run.
    pub fn task_alive(&self, task: &str) -> bool {
        self.tasks
            .get(task)
            .is_some_and(|s| s != "PENDING" && s != "REQUEUED" && s != "REQUEUE_HOLD")
    }

    /// Tasks of `jobs` whose worker may run.
    pub fn running(&self, jobs: &HashSet<String>) -> usize {
        self.tasks
            .iter()
            .filter(|(t, _)| t.split('_').next().is_some_and(|j| jobs.contains(j)))
            .filter(|(t, _)| self.task_alive(t))
            .count()
    }
}

async fn command_output(cmd: &mut Command, what: &str) -> Result<String, ExecError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .map_err(|_| ExecError::Slurm(format!("{what}: no answer within 60 s")))?
        .map_err(|e| ExecError::Slurm(format!("{what}: cannot run it: {e}")))?;
    if !out.status.success() {
        return Err(ExecError::Slurm(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Reads the queue for the arrays named `job_name`.
pub async fn read_queue(job_name: &str) -> Result<Queue, ExecError> {
    let out = command_output(
        Command::new("squeue").args(["-h", "-r", "-o", "%i|%T", "--name", job_name]),
        "squeue",
    )
    .await?;
    Ok(Queue::parse(&out))
}

/// `scancel` of whole arrays or single tasks (`JOBID` or `JOBID_TASK`).
pub async fn cancel(ids: &[String]) -> Result<(), ExecError> {
    if ids.is_empty() {
        return Ok(());
    }
    command_output(Command::new("scancel").args(ids), "scancel").await?;
    Ok(())
}

/// Submits one array of `tasks` tasks; records it in the store. Returns the job id.
pub async fn submit(
    store: &Store,
    opts: &SlurmOptions,
    tasks: usize,
    round: usize,
) -> Result<(i64, String), ExecError> {
    std::fs::create_dir_all(&opts.log_dir)
        .map_err(|e| ExecError::Slurm(format!("cannot create {}: {e}", opts.log_dir.display())))?;
    let script = render_script(opts);
    let path = opts
        .log_dir
        .join(format!("{}-{round}.sbatch", opts.job_name()));
    std::fs::write(&path, &script)
        .map_err(|e| ExecError::Slurm(format!("cannot write {}: {e}", path.display())))?;
    let throttle = opts
        .spec
        .max_parallel
        .map_or(String::new(), |m| format!("%{m}"));
    let array = format!("--array=0-{}{throttle}", tasks.saturating_sub(1));
    let out = command_output(
        Command::new("sbatch")
            .arg("--parsable")
            .arg(&array)
            .arg(&path)
            .env("SLAW_DB", opts.db.to_arg()),
        "sbatch",
    )
    .await?;
    let job_id = parse_job_id(&out)
        .ok_or_else(|| ExecError::Slurm(format!("sbatch printed no job id: {:?}", out.trim())))?;
    let row = store
        .add_slurm_job(&NewSlurmJob {
            sweep_id: opts.sweep_id,
            job_id: job_id.clone(),
            tasks,
            max_parallel: opts.spec.max_parallel.map(|m| m as usize),
            trials_per_task: opts.spec.trials_per_task as usize,
            script,
        })
        .await?;
    Ok((row, job_id))
}

/// Array tasks needed for `claimable` trials.
pub fn tasks_for(claimable: usize, trials_per_task: u32) -> usize {
    claimable
        .div_ceil(trials_per_task.max(1) as usize)
        .clamp(1, MAX_ARRAY_TASKS)
}

struct Array {
    row: i64,
    job_id: String,
    active: bool,
    /// Consecutive reads of the queue that did not list it.
    missing: u32,
}

/// Runs the sweep's claimable trials as Slurm job arrays until none is left, the
/// resubmissions are used up, or `stop` is set (then the arrays are cancelled: their workers
/// get SIGTERM and mark their trials interrupted).
pub async fn run_slurm(
    store: &Store,
    opts: &SlurmOptions,
    stop: Arc<AtomicBool>,
    scheduler: &mut impl Scheduler,
    observer: &mut dyn Observer,
) -> Result<RunOutcome, ExecError> {
    let start = Instant::now();
    let host = crate::store::hostname();
    let job_name = opts.job_name();
    let mut arrays: Vec<Array> = Vec::new();
    let mut since = now();
    let mut stopping: Option<Instant> = None;
    let mut fruitless = 0u32;
    let mut finished_at_submit = 0usize;
    let mut queue_failures = 0usize;
    loop {
        let active: HashSet<String> = arrays
            .iter()
            .filter(|a| a.active)
            .map(|a| a.job_id.clone())
            .collect();
        let ours: HashSet<String> = arrays.iter().map(|a| a.job_id.clone()).collect();
        let queue = if active.is_empty() {
            Some(Queue::default())
        } else {
            match read_queue(&job_name).await {
                Ok(q) => {
                    queue_failures = 0;
                    Some(q)
                }
                Err(e) => {
                    queue_failures += 1;
                    if queue_failures == 1 || queue_failures % 30 == 0 {
                        observer.note(&Note::Message(format!(
                            "cannot read the queue ({e}); leases still apply"
                        )));
                    }
                    None
                }
            }
        };
        let queried_at = now();
        if let Some(q) = &queue {
            for a in arrays.iter_mut().filter(|a| a.active) {
                a.missing = if q.has_job(&a.job_id) {
                    0
                } else {
                    a.missing + 1
                };
                // Gone from two reads in a row: one empty answer is not enough to resubmit.
                if a.missing >= 2 {
                    a.active = false;
                    store.end_slurm_job(a.row, stopping.is_some()).await?;
                    observer.note(&Note::Message(format!(
                        "job array {} has left the queue",
                        a.job_id
                    )));
                }
            }
        }
        let gone = |h: &Holder| -> Option<String> {
            let q = queue.as_ref()?;
            let task = h.slurm_job.as_deref()?;
            let job = task.split('_').next()?;
            if !ours.contains(job) || q.task_alive(task) {
                return None;
            }
            // A worker that claimed after the queue was read may have started after it too.
            if h.claimed_at.is_none_or(|c| c >= queried_at - 1.0) {
                return None;
            }
            Some(format!(
                "Slurm task {task} of {} has left the queue (cancelled, preempted, out of time or failed)",
                h.worker
            ))
        };
        let reaped = store
            .reap_with(opts.sweep_id, opts.lease_seconds, &host, &gone)
            .await?;
        if stopping.is_none() {
            scheduler.refresh(store).await?;
        }
        let counts = store.counts(opts.sweep_id).await?;

        if stop.load(Ordering::Relaxed) && stopping.is_none() {
            stopping = Some(Instant::now());
            let ids: Vec<String> = active.iter().cloned().collect();
            if !ids.is_empty() {
                observer.note(&Note::Message(format!(
                    "cancelling job array(s) {}: their workers mark their trials interrupted",
                    ids.join(", ")
                )));
                if let Err(e) = cancel(&ids).await {
                    observer.note(&Note::Message(e.to_string()));
                }
            }
        }
        let any_active = arrays.iter().any(|a| a.active);
        if stopping.is_none() && counts.claimable > 0 && !any_active {
            if !arrays.is_empty() {
                if counts.finished() > finished_at_submit {
                    fruitless = 0;
                } else {
                    fruitless += 1;
                }
                if fruitless > opts.spec.resubmit {
                    observer.note(&Note::Message(format!(
                        "{} trial(s) still to run, but {} array(s) in a row completed none: \
                         not resubmitting (slurm.resubmit: {})",
                        counts.claimable,
                        fruitless - 1,
                        opts.spec.resubmit
                    )));
                    return Ok(RunOutcome {
                        run: RunEnd {
                            counts,
                            interrupted: false,
                            wall_seconds: start.elapsed().as_secs_f64(),
                        },
                        jobs: arrays.iter().map(|a| a.job_id.clone()).collect(),
                        left: counts.claimable,
                    });
                }
            }
            finished_at_submit = counts.finished();
            let tasks = tasks_for(counts.claimable, opts.spec.trials_per_task);
            let (row, job_id) = submit(store, opts, tasks, arrays.len()).await?;
            observer.note(&Note::Message(format!(
                "submitted job array {job_id}: {tasks} task(s){}, {} trial(s) each, for {} {}trial(s); output in {}",
                opts.spec
                    .max_parallel
                    .map_or(String::new(), |m| format!(" (at most {m} at once)")),
                opts.spec.trials_per_task,
                counts.claimable,
                if arrays.is_empty() { "" } else { "new or returned " },
                opts.log_dir.display()
            )));
            arrays.push(Array {
                row,
                job_id,
                active: true,
                missing: 0,
            });
            if opts.detach {
                return Ok(RunOutcome {
                    run: RunEnd {
                        counts,
                        interrupted: false,
                        wall_seconds: start.elapsed().as_secs_f64(),
                    },
                    jobs: arrays.iter().map(|a| a.job_id.clone()).collect(),
                    left: counts.claimable,
                });
            }
            continue;
        }

        let trials = store.live_trials(opts.sweep_id, since).await?;
        let (running, finished): (Vec<TrialRow>, Vec<TrialRow>) = trials
            .into_iter()
            .partition(|t| t.state == TrialState::Running);
        if let Some(latest) = finished
            .iter()
            .filter_map(|t| t.finished_at)
            .reduce(f64::max)
        {
            since = since.max(latest);
        }
        let work = store.work(opts.sweep_id).await?;
        let workers = queue.as_ref().map_or(0, |q| q.running(&active));
        // Trials held by workers of our arrays (workers started by hand may hold others).
        let held_by_ours = running
            .iter()
            .filter_map(|t| t.slurm_job.as_deref())
            .filter(|task| task.split('_').next().is_some_and(|j| ours.contains(j)))
            .count();
        observer.snapshot(&Snapshot {
            counts,
            running,
            finished,
            reaped,
            work,
            workers,
            elapsed: start.elapsed().as_secs_f64(),
        });
        let done = match stopping {
            Some(t) => {
                (!any_active && held_by_ours == 0)
                    || t.elapsed().as_secs_f64() > 2.0 * opts.lease_seconds + 30.0
            }
            None => counts.claimable == 0 && counts.running == 0,
        };
        if done {
            // Tasks still queued would only find nothing to do.
            let left: Vec<String> = arrays
                .iter()
                .filter(|a| a.active)
                .map(|a| a.job_id.clone())
                .collect();
            if !left.is_empty() && stopping.is_none() {
                cancel(&left).await.ok();
                for a in arrays.iter_mut().filter(|a| a.active) {
                    store.end_slurm_job(a.row, false).await?;
                }
            }
            let counts = store.counts(opts.sweep_id).await?;
            return Ok(RunOutcome {
                run: RunEnd {
                    counts,
                    interrupted: stopping.is_some(),
                    wall_seconds: start.elapsed().as_secs_f64(),
                },
                jobs: arrays.iter().map(|a| a.job_id.clone()).collect(),
                left: counts.claimable,
            });
        }
        tokio::time::sleep(opts.poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(spec: SlurmSpec) -> SlurmOptions {
        SlurmOptions {
            exe: PathBuf::from("/opt/slaw/bin/slaw"),
            db: Location::Postgres("postgres://u:secret@db/slaw".into()),
            sweep_name: "demo".into(),
            sweep_id: 1,
            spec,
            log_dir: PathBuf::from("/shared/logs it's"),
            lease_seconds: 60.0,
            heartbeat_seconds: 5.0,
            poll: Duration::from_secs(1),
            detach: false,
        }
    }

    #[test]
    fn scripts_carry_the_resources_and_never_the_database() {
        let spec = SlurmSpec {
            partition: Some("gpu".into()),
            time: Some("2:00:00".into()),
            cpus: 8,
            mem: Some("32G".into()),
            gpus_per_trial: 1,
            max_parallel: Some(4),
            trials_per_task: 3,
            sbatch_args: vec!["--account=proj".into()],
            setup: vec!["module load cuda".into()],
            ..SlurmSpec::default()
        };
        let script = render_script(&options(spec));
        for line in [
            "#!/bin/bash",
            "#SBATCH --job-name=slaw-demo",
            "#SBATCH --output='/shared/logs it'\\''s/%x-%A_%a.out'",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=2:00:00",
            "#SBATCH --mem=32G",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --account=proj",
            "module load cuda",
            "exec /opt/slaw/bin/slaw worker --sweep demo --device cuda:0 --max-trials 3 --lease-seconds 60 --heartbeat-seconds 5",
        ] {
            assert!(script.lines().any(|l| l == line), "{line}\n{script}");
        }
        assert!(!script.contains("secret"), "{script}");
        let cpu = render_script(&options(SlurmSpec::default()));
        assert!(cpu.contains("--device cpu --max-trials 1"), "{cpu}");
        assert!(
            !cpu.contains("--gpus") && !cpu.contains("--partition"),
            "{cpu}"
        );
    }

    #[test]
    fn sbatch_and_squeue_output() {
        assert_eq!(parse_job_id("1234\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("1234;cluster\n").as_deref(), Some("1234"));
        assert_eq!(parse_job_id("Submitted batch job 1"), None);
        let q = Queue::parse("12_0|RUNNING\n12_1|PENDING\n12_2|COMPLETING\n13_0|RUNNING\n");
        assert!(q.has_job("12") && q.has_job("13") && !q.has_job("1"));
        assert!(q.task_alive("12_0") && q.task_alive("12_2"));
        assert!(!q.task_alive("12_1") && !q.task_alive("12_3"));
        let jobs: HashSet<String> = ["12".to_string()].into();
        assert_eq!(q.running(&jobs), 2);
        assert_eq!(tasks_for(10, 3), 4);
        assert_eq!(tasks_for(0, 1), 1);
        assert_eq!(tasks_for(5000, 1), MAX_ARRAY_TASKS);
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("/x/y-z_1.db"), "/x/y-z_1.db");
    }
}
