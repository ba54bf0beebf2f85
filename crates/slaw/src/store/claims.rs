//! Claiming and leasing: reaping trials whose workers went silent or died, claiming the next
//! trial (or several of one shape), heartbeats, and recording how an attempt ended. Every
//! transition out of `running` is fenced by the worker and attempt that claimed it. Also the
//! identity a worker claims under.

use sqlx::{AssertSqlSafe, Row};

use super::{
    eligible, finite, now, Accounting, Backend, Claimed, Finish, Holder, Reaped, Store, StoreError,
    TrialState,
};
use crate::job::Job;

impl Store {
    /// Returns to `interrupted` every running trial whose heartbeat is older than
    /// `lease_seconds`, and every running trial held by a process of `host` that no longer
    /// exists. `sweep_id < 0` means every sweep.
    pub async fn reap(
        &self,
        sweep_id: i64,
        lease_seconds: f64,
        host: &str,
    ) -> Result<Vec<Reaped>, StoreError> {
        self.reap_with(sweep_id, lease_seconds, host, &|_| None)
            .await
    }

    /// [`Store::reap`], and also every running trial for which `gone` gives a reason (the
    /// Slurm executor's: the array task of its worker has left the queue).
    ///
    /// The trial becomes `interrupted` with its attempt counted: it is claimable again while
    /// the sweep's `retries.interrupted` allows, exactly like a pending trial. Each trial is
    /// taken back by one conditional `UPDATE` fenced by worker and attempt, so that several
    /// reapers (every worker reaps before it claims) take it back once.
    pub async fn reap_with(
        &self,
        sweep_id: i64,
        lease_seconds: f64,
        host: &str,
        gone: &(dyn Fn(&Holder) -> Option<String> + Sync),
    ) -> Result<Vec<Reaped>, StoreError> {
        let t = now();
        let rows = sqlx::query(
            "SELECT id, attempts, worker, heartbeat_at, claimed_at, slurm_job FROM trials \
             WHERE ($1 < 0 OR sweep_id = $1) AND state = 'running'",
        )
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        let mut reaped = Vec::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let attempt: i64 = r.try_get("attempts")?;
            let worker: Option<String> = r.try_get("worker")?;
            let heartbeat: Option<f64> = r.try_get("heartbeat_at")?;
            let worker = worker.unwrap_or_default();
            let holder = Holder {
                trial_id: id,
                worker: worker.clone(),
                slurm_job: r.try_get("slurm_job")?,
                claimed_at: r.try_get("claimed_at")?,
            };
            let reason = if heartbeat.is_none_or(|h| t - h > lease_seconds) {
                Some(format!(
                    "lease expired: no heartbeat from {worker} for {:.1} s (lease {lease_seconds:.0} s)",
                    heartbeat.map_or(f64::INFINITY, |h| t - h)
                ))
            } else if local_process_is_gone(&worker, host) {
                Some(format!("worker {worker} is no longer running"))
            } else {
                gone(&holder)
            };
            let Some(reason) = reason else { continue };
            let done = sqlx::query(
                "UPDATE trials SET state = 'interrupted', finished_at = $4, error = $5 \
                 WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3",
            )
            .bind(id)
            .bind(attempt)
            .bind(&worker)
            .bind(t)
            .bind(&reason)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() == 1 {
                self.event(id, attempt, "lease_expired", Some(&worker), Some(&reason))
                    .await?;
                reaped.push(Reaped {
                    trial_id: id,
                    attempt,
                    worker,
                    reason,
                });
            }
        }
        Ok(reaped)
    }

    /// Atomically takes the next claimable trial (of `sweep_id`, or of any sweep when it is
    /// negative) for `worker`. No two workers can receive the same trial attempt.
    pub async fn claim(
        &self,
        sweep_id: i64,
        worker: &str,
        device: &str,
    ) -> Result<Option<Claimed>, StoreError> {
        self.claim_in_job(sweep_id, worker, device, None).await
    }

    /// [`Store::claim`] by a worker that runs in the Slurm array task `slurm_job`
    /// (`JOBID_TASK`), which is recorded on the trial.
    ///
    /// One statement: an `UPDATE` of the row that a sub-select picks (the next eligible trial,
    /// largest compute first). SQLite runs it under its database write lock; PostgreSQL locks
    /// the picked row with `FOR UPDATE SKIP LOCKED`, so that concurrent claimers pass over rows
    /// another claimer is taking instead of queueing behind it.
    pub async fn claim_in_job(
        &self,
        sweep_id: i64,
        worker: &str,
        device: &str,
        slurm_job: Option<&str>,
    ) -> Result<Option<Claimed>, StoreError> {
        self.claim_next(sweep_id, worker, device, slurm_job, None)
            .await
    }

    /// Claims up to `max` more trials of `sweep_id` (in claim order) whose job `fits` accepts:
    /// the trials that can train in one stack with a trial the worker already holds. Each is
    /// claimed as [`Store::claim_in_job`] claims, one statement per trial, so a trial that
    /// another worker takes meanwhile is passed over.
    pub async fn claim_matching(
        &self,
        sweep_id: i64,
        worker: &str,
        device: &str,
        slurm_job: Option<&str>,
        max: usize,
        fits: impl Fn(&Job) -> bool,
    ) -> Result<Vec<Claimed>, StoreError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT t.id, t.config_json FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.sweep_id = $1 AND t.state IN ('pending', 'failed', 'diverged', 'interrupted') \
               AND t.active = 1 AND {} \
             ORDER BY t.priority, t.id LIMIT 1000",
            eligible("t", "s"),
        )))
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for row in rows {
            if claimed.len() == max {
                break;
            }
            let json: String = row.try_get("config_json")?;
            let Ok(job) = serde_json::from_str::<Job>(&json) else {
                continue;
            };
            if !fits(&job) {
                continue;
            }
            let id: i64 = row.try_get("id")?;
            if let Some(c) = self
                .claim_next(sweep_id, worker, device, slurm_job, Some(id))
                .await?
            {
                claimed.push(c);
            }
        }
        Ok(claimed)
    }

    /// The claim of [`Store::claim_in_job`], of the next eligible trial or (`only`) of that
    /// trial if it is still eligible.
    async fn claim_next(
        &self,
        sweep_id: i64,
        worker: &str,
        device: &str,
        slurm_job: Option<&str>,
        only: Option<i64>,
    ) -> Result<Option<Claimed>, StoreError> {
        self.check_file()?;
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => "FOR UPDATE OF t SKIP LOCKED",
        };
        // The sweep filter is written out (not `$1 < 0 OR ...`), so that both databases walk
        // the partial index `trials_claimable` in claim order; `state IN (...)` names its rows.
        let scope = match (sweep_id < 0, only.is_some()) {
            (true, false) => "$1 < 0 AND",
            (false, false) => "t.sweep_id = $1 AND",
            (true, true) => "$1 < 0 AND t.id = $6 AND",
            (false, true) => "t.sweep_id = $1 AND t.id = $6 AND",
        };
        let t = now();
        // One transaction: the claim, its cleanup and its event commit together (one commit,
        // one fsync on PostgreSQL). It writes first, so SQLite takes its write lock at once
        // (waiting up to the busy timeout) instead of failing to upgrade a read.
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE trials SET state = 'running', attempts = attempts + 1, worker = $2, device = $3, \
                 claimed_at = $4, heartbeat_at = $4, started_at = NULL, finished_at = NULL, \
                 error = NULL, progress_step = 0, progress_loss = NULL, slurm_job = $5 \
             WHERE id = (SELECT t.id FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
                         WHERE {scope} t.state IN ('pending', 'failed', 'diverged', 'interrupted') \
                           AND t.active = 1 AND {} \
                         ORDER BY t.priority, t.id LIMIT 1 {lock}) \
             RETURNING id, sweep_id, key, attempts, config_json, flops_per_example",
            eligible("t", "s"),
        )))
        .bind(sweep_id)
        .bind(worker)
        .bind(device)
        .bind(t)
        .bind(slurm_job);
        let row = match only {
            Some(id) => row.bind(id),
            None => row,
        }
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let claimed = Claimed::from_row(&row)?;
        for table in ["metrics", "trial_logs"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE trial_id = $1 AND attempt >= $2"
            )))
            .bind(claimed.trial_id)
            .bind(claimed.attempt)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO trial_events (trial_id, attempt, event, worker, at, detail) \
             VALUES ($1, $2, 'claimed', $3, $4, $5)",
        )
        .bind(claimed.trial_id)
        .bind(claimed.attempt)
        .bind(worker)
        .bind(t)
        .bind(device)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(claimed))
    }

    /// Records that training started (with the trainer's own parameter count, when it has
    /// one); `false` when the lease was lost.
    pub async fn mark_started(
        &self,
        c: &Claimed,
        worker: &str,
        params_measured: Option<u64>,
    ) -> Result<bool, StoreError> {
        let t = now();
        let done = sqlx::query(
            "UPDATE trials SET started_at = $4, heartbeat_at = $4, params_measured = $5 \
             WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3",
        )
        .bind(c.trial_id)
        .bind(c.attempt)
        .bind(worker)
        .bind(t)
        .bind(params_measured.map(|p| p as i64))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Renews the lease and stores the latest progress; `false` when the lease was lost (the
    /// trial was reaped and possibly claimed by another worker).
    pub async fn heartbeat(
        &self,
        c: &Claimed,
        worker: &str,
        step: u64,
        loss: Option<f64>,
    ) -> Result<bool, StoreError> {
        self.check_file()?;
        let done = sqlx::query(
            "UPDATE trials SET heartbeat_at = $4, progress_step = $5, progress_loss = $6 \
             WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3",
        )
        .bind(c.trial_id)
        .bind(c.attempt)
        .bind(worker)
        .bind(now())
        .bind(step as i64)
        .bind(finite(loss))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes what a command trainer reported about its trial's size and cost: parameters,
    /// FLOPs per example, and (for a completed trial) the examples and steps it ran; the
    /// trial's FLOPs and its metrics' FLOPs follow. `false` when the lease was lost.
    pub async fn record_accounting(
        &self,
        c: &Claimed,
        worker: &str,
        a: &Accounting,
    ) -> Result<bool, StoreError> {
        let as_i64 = |v: Option<u64>| v.map(|x| x as i64);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE trials SET params = COALESCE($4, params), \
                 params_non_embedding = COALESCE($5, params_non_embedding), \
                 params_measured = COALESCE($4, params_measured), \
                 flops_per_example = COALESCE($6, flops_per_example), \
                 examples = COALESCE($7, examples), steps = COALESCE($8, steps), \
                 flops = COALESCE($6, flops_per_example) * COALESCE($7, examples) \
             WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3",
        )
        .bind(c.trial_id)
        .bind(c.attempt)
        .bind(worker)
        .bind(as_i64(a.params))
        .bind(as_i64(a.params_non_embedding))
        .bind(finite(a.flops_per_example))
        .bind(as_i64(a.examples))
        .bind(as_i64(a.steps))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(fpe) = finite(a.flops_per_example) {
            sqlx::query(
                "UPDATE metrics SET flops = examples * $3 WHERE trial_id = $1 AND attempt = $2",
            )
            .bind(c.trial_id)
            .bind(c.attempt)
            .bind(fpe)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Ends the claimed attempt in `state`. A clean interruption (Ctrl-C) gives the attempt
    /// back, so that it does not count against the retry limit. `false` when the lease was lost.
    pub async fn finish(
        &self,
        c: &Claimed,
        worker: &str,
        state: TrialState,
        f: &Finish,
        clean_interrupt: bool,
    ) -> Result<bool, StoreError> {
        self.check_file()?;
        let t = now();
        let refund = i64::from(clean_interrupt);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE trials SET state = $4, finished_at = $5, wall_seconds = $6, error = $7, \
                 final_step = $8, final_train_loss = $9, final_val_loss = $10, \
                 final_val_accuracy = $11, best_val_loss = $12, progress_step = $8, \
                 attempts = attempts - $13 \
             WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3",
        )
        .bind(c.trial_id)
        .bind(c.attempt)
        .bind(worker)
        .bind(state.as_str())
        .bind(t)
        .bind(f.wall_seconds)
        .bind(f.error.as_deref())
        .bind(f.step as i64)
        .bind(finite(f.train_loss))
        .bind(finite(f.val_loss))
        .bind(finite(f.val_accuracy))
        .bind(finite(f.best_val_loss))
        .bind(refund)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        if clean_interrupt {
            // The refunded attempt number will be reused: its partial curve and log go.
            for table in ["metrics", "trial_logs"] {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE trial_id = $1 AND attempt = $2"
                )))
                .bind(c.trial_id)
                .bind(c.attempt)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO trial_events (trial_id, attempt, event, worker, at, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.trial_id)
        .bind(c.attempt)
        .bind(state.as_str())
        .bind(worker)
        .bind(t)
        .bind(f.error.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn event(
        &self,
        trial_id: i64,
        attempt: i64,
        event: &str,
        worker: Option<&str>,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO trial_events (trial_id, attempt, event, worker, at, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(trial_id)
        .bind(attempt)
        .bind(event)
        .bind(worker)
        .bind(now())
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The identity a worker claims under: `host:pid`, prefixed by `slurm:JOBID_TASK@` inside a
/// Slurm array task (`slurm:JOBID@` in a plain Slurm job).
pub fn worker_identity() -> String {
    match slurm_task() {
        Some(task) => format!("slurm:{task}@{}:{}", hostname(), std::process::id()),
        None => format!("{}:{}", hostname(), std::process::id()),
    }
}

/// The Slurm task this process runs in: `JOBID_TASK` in a job array, `JOBID` in a plain job.
pub fn slurm_task() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(job), Some(task)) => Some(format!("{job}_{task}")),
        _ => var("SLURM_JOB_ID"),
    }
}

/// This machine's host name (`$SLAW_HOSTNAME` when set: for containers or nodes that share a
/// host name, whose workers must not be taken for local processes of one another).
#[allow(unsafe_code)]
pub fn hostname() -> String {
    if let Some(name) = std::env::var("SLAW_HOSTNAME")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return name;
    }
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// True when `worker` (`[label@]host:pid`) names a process of `host` that no longer exists.
#[allow(unsafe_code)]
pub(super) fn local_process_is_gone(worker: &str, host: &str) -> bool {
    let worker = worker.rsplit_once('@').map_or(worker, |(_, w)| w);
    let Some((h, pid)) = worker.rsplit_once(':') else {
        return false;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return false;
    };
    if h != host || pid <= 0 {
        return false;
    }
    // A zombie (exited, not yet reaped by its parent) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
        Err(_) => {
            // SAFETY: kill with signal 0 only checks that the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            !alive
        }
    }
}
