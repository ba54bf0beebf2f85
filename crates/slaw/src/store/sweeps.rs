//! Sweeps and their trials in the store: registering a sweep and synchronising its grid,
//! reading sweeps, trials and their counts, and the Slurm job arrays submitted for a sweep.

use std::collections::HashSet;

use sqlx::{AssertSqlSafe, Row};

use super::{
    eligible, now, NewSlurmJob, SlurmJobRow, StateCounts, Store, StoreError, SweepRow, SyncReport,
    TrialRow, TrialState, WorkRow,
};
use crate::job::Job;
use crate::plan::TrialSpec;
use crate::spec::SweepSpec;

impl Store {
    /// Inserts or updates the sweep named in `spec`; returns its id.
    pub async fn upsert_sweep(
        &self,
        spec: &SweepSpec,
        yaml: &str,
        source_path: Option<&str>,
    ) -> Result<i64, StoreError> {
        self.check_file()?;
        let spec_json =
            serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let t = now();
        let row = sqlx::query(
            "INSERT INTO sweeps (name, yaml, spec_json, source_path, retries_failed, \
                                 retries_diverged, retries_interrupted, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (name) DO UPDATE SET yaml = excluded.yaml, spec_json = excluded.spec_json, \
                 source_path = excluded.source_path, retries_failed = excluded.retries_failed, \
                 retries_diverged = excluded.retries_diverged, \
                 retries_interrupted = excluded.retries_interrupted, updated_at = excluded.updated_at \
             RETURNING id",
        )
        .bind(&spec.name)
        .bind(yaml)
        .bind(spec_json)
        .bind(source_path)
        .bind(spec.retries.failed as i64)
        .bind(spec.retries.diverged as i64)
        .bind(spec.retries.interrupted as i64)
        .bind(t)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Makes the stored trials of `sweep_id` match the sweep file: `trials` that are new are
    /// inserted as pending, stored ones keep their state (and get the current name and
    /// priority), and stored trials that are not in `trials` stay active only when `is_member`
    /// says they still belong to the sweep's grid (an adaptive search adds trials as it goes);
    /// the others are marked inactive.
    pub async fn sync_trials(
        &self,
        sweep_id: i64,
        trials: &[TrialSpec],
        is_member: &dyn Fn(&Job) -> bool,
    ) -> Result<SyncReport, StoreError> {
        self.check_file()?;
        let mut tx = self.pool.begin().await?;
        let stored: Vec<(String, String)> =
            sqlx::query("SELECT key, config_json FROM trials WHERE sweep_id = $1")
                .bind(sweep_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get("key")?, r.try_get("config_json")?)))
                .collect::<Result<_, sqlx::Error>>()?;
        let stored_keys: HashSet<&str> = stored.iter().map(|(k, _)| k.as_str()).collect();
        let mut report = SyncReport::default();
        for trial in trials {
            if stored_keys.contains(trial.key.as_str()) {
                report.existing += 1;
                sqlx::query(
                    "UPDATE trials SET active = 1, size_name = $3, size_index = $4, priority = $5 \
                     WHERE sweep_id = $1 AND key = $2",
                )
                .bind(sweep_id)
                .bind(trial.key.as_str())
                .bind(&trial.size)
                .bind(trial.size_index as i64)
                .bind(trial.priority)
                .execute(&mut *tx)
                .await?;
            } else {
                report.added += 1;
                insert_trial(&mut tx, sweep_id, trial).await?;
            }
        }
        let current: HashSet<&str> = trials.iter().map(|t| t.key.as_str()).collect();
        for (key, config) in stored.iter().filter(|(k, _)| !current.contains(k.as_str())) {
            let member = serde_json::from_str(config).is_ok_and(|c| is_member(&c));
            if member {
                report.existing += 1;
            } else {
                report.retired += 1;
            }
            sqlx::query("UPDATE trials SET active = $3 WHERE sweep_id = $1 AND key = $2")
                .bind(sweep_id)
                .bind(key)
                .bind(i64::from(member))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Inserts the `trials` that are not stored yet (as pending); returns how many.
    pub async fn add_trials(
        &self,
        sweep_id: i64,
        trials: &[TrialSpec],
    ) -> Result<usize, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for trial in trials {
            let exists = sqlx::query("SELECT id FROM trials WHERE sweep_id = $1 AND key = $2")
                .bind(sweep_id)
                .bind(trial.key.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if !exists {
                insert_trial(&mut tx, sweep_id, trial).await?;
                added += 1;
            }
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Deletes a sweep with its trials, metrics, events, fits and Slurm jobs.
    pub async fn delete_sweep(&self, sweep_id: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for sql in [
            "DELETE FROM metrics WHERE trial_id IN (SELECT id FROM trials WHERE sweep_id = $1)",
            "DELETE FROM trial_events WHERE trial_id IN (SELECT id FROM trials WHERE sweep_id = $1)",
            "DELETE FROM trials WHERE sweep_id = $1",
            "DELETE FROM fits WHERE sweep_id = $1",
            "DELETE FROM slurm_jobs WHERE sweep_id = $1",
            "DELETE FROM sweeps WHERE id = $1",
        ] {
            sqlx::query(sql).bind(sweep_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// All sweeps, oldest first.
    pub async fn sweeps(&self) -> Result<Vec<SweepRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM sweeps ORDER BY id",
            SweepRow::COLUMNS
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SweepRow::from_row).collect()
    }

    /// The sweep named `name`.
    pub async fn sweep(&self, name: &str) -> Result<SweepRow, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM sweeps WHERE name = $1",
            SweepRow::COLUMNS
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => SweepRow::from_row(&r),
            None => Err(StoreError::NoSuchSweep(name.to_string())),
        }
    }

    /// The active trials of a sweep, in grid order.
    pub async fn trials(&self, sweep_id: i64) -> Result<Vec<TrialRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM trials WHERE sweep_id = $1 AND active = 1 \
             ORDER BY size_index, epochs, lr, seed",
            TrialRow::COLUMNS
        )))
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TrialRow::from_row).collect()
    }

    /// Active trials of a sweep that are running, or that ended after `since` (Unix seconds).
    pub async fn live_trials(
        &self,
        sweep_id: i64,
        since: f64,
    ) -> Result<Vec<TrialRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM trials WHERE sweep_id = $1 AND active = 1 \
             AND (state = 'running' OR finished_at > $2) ORDER BY finished_at, claimed_at",
            TrialRow::COLUMNS
        )))
        .bind(sweep_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TrialRow::from_row).collect()
    }

    /// One trial by key (a unique prefix is enough), in any sweep.
    pub async fn trial_by_key(&self, key: &str) -> Result<Vec<TrialRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM trials WHERE key LIKE $1 ORDER BY id",
            TrialRow::COLUMNS
        )))
        .bind(format!("{key}%"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TrialRow::from_row).collect()
    }

    /// Trial counts by state (active trials), and how many can be claimed now.
    pub async fn counts(&self, sweep_id: i64) -> Result<StateCounts, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM trials WHERE sweep_id = $1 AND active = 1 GROUP BY state",
        )
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = StateCounts::default();
        for r in &rows {
            let state: String = r.try_get("state")?;
            let n: i64 = r.try_get("n")?;
            counts.add(TrialState::parse(&state)?, n as usize);
        }
        let claimable: i64 = sqlx::query(AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.sweep_id = $1 AND t.active = 1 AND {}",
            eligible("t", "s")
        )))
        .bind(sweep_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        counts.claimable = claimable as usize;
        Ok(counts)
    }

    /// Running trials of `sweep_id` (of every sweep when it is negative).
    pub async fn running(&self, sweep_id: i64) -> Result<usize, StoreError> {
        let n: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM trials \
             WHERE ($1 < 0 OR sweep_id = $1) AND active = 1 AND state = 'running'",
        )
        .bind(sweep_id)
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        Ok(n as usize)
    }

    /// Planned training FLOPs of the active trials, and how many of them are still to run
    /// (claimable trials in full, running trials in proportion to their remaining steps).
    pub async fn flops_remaining(&self, sweep_id: i64) -> Result<(f64, f64), StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT COALESCE(SUM(t.flops), 0.0) AS total, \
                    COALESCE(SUM(CASE WHEN {} THEN t.flops \
                                      WHEN t.state = 'running' AND t.steps <= 0 THEN t.flops \
                                      WHEN t.state = 'running' \
                                           AND COALESCE(t.progress_step, 0) >= t.steps THEN 0.0 \
                                      WHEN t.state = 'running' THEN t.flops * \
                                           (1.0 - 1.0 * COALESCE(t.progress_step, 0) / t.steps) \
                                      ELSE 0.0 END), 0.0) AS remaining \
             FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.sweep_id = $1 AND t.active = 1",
            eligible("t", "s")
        )))
        .bind(sweep_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("total")?, row.try_get("remaining")?))
    }

    /// What a progress estimate needs of every active trial of the sweep.
    pub async fn work(&self, sweep_id: i64) -> Result<Vec<WorkRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT t.state, CASE WHEN {} THEN 1 ELSE 0 END AS claimable, t.size_index, \
                    t.flops, t.wall_seconds, t.progress_step, t.steps \
             FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
             WHERE t.sweep_id = $1 AND t.active = 1",
            eligible("t", "s")
        )))
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WorkRow {
                    state: TrialState::parse(&r.try_get::<String, _>("state")?)?,
                    claimable: r.try_get::<i64, _>("claimable")? != 0,
                    size_index: r.try_get("size_index")?,
                    flops: r.try_get::<Option<f64>, _>("flops")?.unwrap_or(0.0),
                    wall_seconds: r.try_get("wall_seconds")?,
                    progress_step: r.try_get("progress_step")?,
                    steps: r.try_get("steps")?,
                })
            })
            .collect()
    }

    // ----------------------------------------------------------------------------------------
    // Slurm jobs
    // ----------------------------------------------------------------------------------------

    /// Records a submitted job array; returns its row id.
    pub async fn add_slurm_job(&self, job: &NewSlurmJob) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO slurm_jobs (sweep_id, job_id, tasks, max_parallel, trials_per_task, \
                                     script, submitted_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(job.sweep_id)
        .bind(&job.job_id)
        .bind(job.tasks as i64)
        .bind(job.max_parallel.map(|m| m as i64))
        .bind(job.trials_per_task as i64)
        .bind(&job.script)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Marks a recorded job array `ended` or `cancelled` (once: a later call changes nothing).
    pub async fn end_slurm_job(&self, id: i64, cancelled: bool) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE slurm_jobs SET state = $2, ended_at = $3 WHERE id = $1 AND state = 'submitted'",
        )
        .bind(id)
        .bind(if cancelled { "cancelled" } else { "ended" })
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The job arrays submitted for a sweep, oldest first.
    pub async fn slurm_jobs(&self, sweep_id: i64) -> Result<Vec<SlurmJobRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM slurm_jobs WHERE sweep_id = $1 ORDER BY id",
            SlurmJobRow::COLUMNS
        )))
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SlurmJobRow::from_row).collect()
    }
}

async fn insert_trial(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    sweep_id: i64,
    trial: &TrialSpec,
) -> Result<(), StoreError> {
    let config =
        serde_json::to_string(&trial.config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO trials (sweep_id, key, priority, config_json, size_name, size_index, \
             family, params, params_non_embedding, tokens_per_example, epochs, batch_size, \
             lr, seed, steps, examples, flops_per_example, flops, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19)",
    )
    .bind(sweep_id)
    .bind(trial.key.as_str())
    .bind(trial.priority)
    .bind(config)
    .bind(&trial.size)
    .bind(trial.size_index as i64)
    .bind(&trial.family)
    .bind(trial.params as i64)
    .bind(trial.params_non_embedding as i64)
    .bind(trial.tokens_per_example as i64)
    .bind(trial.epochs)
    .bind(trial.config.batch_size().unwrap_or(0) as i64)
    .bind(trial.lr)
    .bind(trial.seed as i64)
    .bind(trial.steps as i64)
    .bind(trial.examples as i64)
    .bind(trial.flops_per_example as f64)
    .bind(trial.flops)
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
