//! The result store: sqlx over SQLite (default) or PostgreSQL, embedded migrations, every SQL
//! statement of slaw, and the claiming and leasing of trials.
//!
//! One SQL text serves both databases wherever possible (`$n` placeholders work on both); the
//! differences (DDL, `FOR UPDATE SKIP LOCKED`, pragmas) are isolated in this module. Times are
//! Unix seconds as `f64`. A trial moves `pending → running → completed | failed | diverged |
//! interrupted`; every transition out of `running` is fenced by the worker and attempt that
//! claimed it, so a worker that lost its lease cannot overwrite a newer attempt.

mod open;
mod reader;
mod rows;
#[doc(hidden)]
pub mod scratch;
pub mod statement;

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyPool, AssertSqlSafe, Connection, Row};

use crate::job::Job;
use crate::plan::TrialSpec;
use crate::spec::SweepSpec;

pub use open::{inspect, known_schema, redact_url, FileState, Location};
pub use reader::QueryLimits;
pub use rows::{
    Claimed, EventRow, FitRow, LogRow, MetricRow, NewFit, NewSlurmJob, SlurmJobRow, StateCounts,
    SweepRow, TrialRow, TrialState,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Default location of the SQLite store.
pub const DEFAULT_DB: &str = "results/slaw.db";

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database URL or path is not usable.
    #[error("{0}")]
    Location(String),
    /// A stored value could not be decoded.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// A named sweep does not exist.
    #[error("no sweep named {0:?} in the database")]
    NoSuchSweep(String),
    /// A reader found nothing stored at the location.
    #[error("nothing stored in {location}: {why} (run a sweep first, or pass --db)")]
    Nothing {
        /// The database, as given (passwords hidden).
        location: String,
        /// What is there instead.
        why: String,
    },
    /// The location holds something that is not a slaw database; nothing was written to it.
    #[error("{location} is not a slaw database: {why}")]
    NotSlaw {
        /// The database, as given (passwords hidden).
        location: String,
        /// What it is instead.
        why: String,
    },
    /// slaw's schema in the database is of another version than this slaw's.
    #[error("{}", schema_message(.location, *.found, *.known))]
    Schema {
        /// The database, as given (passwords hidden).
        location: String,
        /// The version found.
        found: i64,
        /// The newest version this slaw knows.
        known: i64,
    },
    /// The storage under a running store failed: the run must stop.
    #[error(transparent)]
    Fault(Fault),
    /// A reader's SQL was refused before it ran.
    #[error(transparent)]
    Refused(#[from] statement::Refused),
    /// A reader's query ran past its time limit or returned too much.
    #[error("{0}")]
    QueryLimit(String),
}

fn schema_message(location: &str, found: i64, known: i64) -> String {
    if found > known {
        format!(
            "{location} was written by a newer slaw (schema version {found}; this slaw knows up \
             to {known}): use that slaw or a newer one"
        )
    } else {
        format!(
            "{location} has schema version {found}, older than this slaw's {known}: run \
             `slaw run` or `slaw worker` on it once to upgrade it (commands that only read never \
             change a database)"
        )
    }
}

/// A failure of the storage itself, not of a statement: the database file vanished, became
/// read-only, or its disk is full. A run that meets one stops; it never counts as a trial's
/// failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The file was deleted, moved or replaced under the running store.
    #[error(
        "the database file {path} disappeared while slaw was using it (deleted, moved or \
         replaced)"
    )]
    Gone {
        /// The file.
        path: String,
    },
    /// The file or its directory no longer accepts writes.
    #[error("the database {path} became read-only while slaw was using it")]
    ReadOnly {
        /// The file (or server).
        path: String,
    },
    /// The disk is full.
    #[error("the database's disk is full ({detail})")]
    Full {
        /// The database's message.
        detail: String,
    },
    /// Reading or writing the file failed.
    #[error("the database cannot be written ({detail})")]
    Io {
        /// The database's message.
        detail: String,
    },
}

impl StoreError {
    /// The storage fault behind this error, if it is one (a file gone or read-only, a full
    /// disk, an I/O error), as opposed to a refused statement.
    pub fn fault(&self) -> Option<Fault> {
        if let StoreError::Fault(f) = self {
            return Some(f.clone());
        }
        let StoreError::Sql(sqlx::Error::Database(db)) = self else {
            return None;
        };
        let detail = db.message().to_string();
        let code = db.code().map(|c| c.to_string()).unwrap_or_default();
        match (sqlite_code(self), code.as_str()) {
            (Some(8), _) | (None, "25006") => Some(Fault::ReadOnly { path: detail }),
            (Some(13), _) | (None, "53100") => Some(Fault::Full { detail }),
            (Some(10 | 14), _) | (None, "58030") => Some(Fault::Io { detail }),
            _ => None,
        }
    }

    /// Whether the error is about what the user gave (a location that holds no slaw database,
    /// an unknown sweep, a refused or failing query), not a failure at run time.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            StoreError::Location(_)
                | StoreError::NoSuchSweep(_)
                | StoreError::Nothing { .. }
                | StoreError::NotSlaw { .. }
                | StoreError::Schema { .. }
                | StoreError::Refused(_)
        )
    }
}

/// SQLite's primary result code behind `e`, if it is a SQLite error.
pub(crate) fn sqlite_code(e: &StoreError) -> Option<i64> {
    let StoreError::Sql(sqlx::Error::Database(db)) = e else {
        return None;
    };
    // SQLite's errors carry their extended code as a number; PostgreSQL's are SQLSTATEs
    // (five characters, not all digits, or with a leading zero class).
    let code = db.code()?;
    if code.len() == 5 {
        return None;
    }
    code.parse::<i64>().ok().map(|c| c & 0xff)
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// One value of a query result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A real number.
    Real(f64),
    /// Text.
    Text(String),
}

/// The rows of a query, with column names.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct ResultTable {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows of values, one per column.
    pub rows: Vec<Vec<Value>>,
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Rows per multi-row `INSERT` (11 columns × 400 rows stays well below both databases' limits
/// on bound parameters).
const ROWS_PER_INSERT: usize = 400;

/// `rows` groups of `columns` placeholders: `(?, …), (?, …)` on SQLite, `($1, …), ($k+1, …)` on
/// PostgreSQL. SQLite looks a numbered parameter's name up in a list, once per parameter when
/// binding: with thousands of `$n` a statement took quadratic time (4 000 points per second).
fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            match backend {
                Backend::Sqlite => out.push('?'),
                Backend::Postgres => out.push_str(&format!("${}", r * columns + c + 1)),
            }
        }
        out.push(')');
    }
    out
}

/// `points` cut into runs of at most `rows` in which no step repeats (one
/// `INSERT … ON CONFLICT DO UPDATE` may not touch a row twice on PostgreSQL).
fn distinct_step_chunks<T>(points: &[(MetricRow, T)], rows: usize) -> Vec<&[(MetricRow, T)]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut seen = HashSet::new();
    for (i, (m, _)) in points.iter().enumerate() {
        if i - start == rows || !seen.insert(m.step) {
            chunks.push(&points[start..i]);
            start = i;
            seen.clear();
            seen.insert(m.step);
        }
    }
    chunks.push(&points[start..]);
    chunks
}

/// NaN and infinities are stored as NULL (SQLite cannot store NaN).
fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// A connection pool to the result database.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The URL connected to (may hold a password: never printed).
    url: String,
    read_only: bool,
    /// Where the database is, as given.
    location: Location,
    /// The SQLite file opened for writing, to notice when it disappears.
    file: Option<open::FileIdentity>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// What `sync_trials` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// Trials new to the store.
    pub added: usize,
    /// Trials already stored (any state).
    pub existing: usize,
    /// Stored trials that the sweep file no longer contains (kept, marked inactive).
    pub retired: usize,
}

/// The final numbers a worker writes when a trial ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finish {
    /// Steps done.
    pub step: u64,
    /// Final training loss.
    pub train_loss: Option<f64>,
    /// Final validation loss.
    pub val_loss: Option<f64>,
    /// Final validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Lowest validation loss seen.
    pub best_val_loss: Option<f64>,
    /// Seconds of training.
    pub wall_seconds: f64,
    /// Error text (failed trials) or a note (diverged, interrupted).
    pub error: Option<String>,
}

/// A running trial as the reaper sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    /// Trial id.
    pub trial_id: i64,
    /// The worker identity that holds it.
    pub worker: String,
    /// The Slurm array task of that worker (`JOBID_TASK`), if any.
    pub slurm_job: Option<String>,
    /// When it was claimed, Unix seconds.
    pub claimed_at: Option<f64>,
}

/// What a command trainer reported about its trial's size and cost, written when it ends.
/// `None` keeps the planned value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accounting {
    /// Parameters.
    pub params: Option<u64>,
    /// Non-embedding parameters.
    pub params_non_embedding: Option<u64>,
    /// Training FLOPs per example (also rescales the FLOPs of the attempt's metrics).
    pub flops_per_example: Option<f64>,
    /// Examples seen.
    pub examples: Option<u64>,
    /// Optimiser steps done.
    pub steps: Option<u64>,
}

/// One line of a trial's output.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// `stdout`, `stderr`, `metrics` (non-record lines of `$SLAW_METRICS`) or `slaw`.
    pub stream: &'static str,
    /// The line, without its newline.
    pub line: String,
    /// When it was read, Unix seconds.
    pub at: f64,
}

/// A trial as a progress estimate sees it ([`Store::work`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkRow {
    /// Its state.
    pub state: TrialState,
    /// Whether a worker may claim it (pending, or ended within its retries).
    pub claimable: bool,
    /// Index on the size axis.
    pub size_index: i64,
    /// Planned or reported training FLOPs (0 when unknown).
    pub flops: f64,
    /// Seconds it trained, once ended.
    pub wall_seconds: Option<f64>,
    /// Last step a running trial reported.
    pub progress_step: Option<i64>,
    /// Planned steps.
    pub steps: i64,
}

/// A trial the reaper returned to the claimable states.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaped {
    /// Trial id.
    pub trial_id: i64,
    /// Attempt that was lost.
    pub attempt: i64,
    /// Worker that held it.
    pub worker: String,
    /// Why it was reaped.
    pub reason: String,
}

fn eligible(t: &str, s: &str) -> String {
    format!(
        "({t}.state = 'pending' \
          OR ({t}.state = 'failed' AND {t}.attempts <= {s}.retries_failed) \
          OR ({t}.state = 'diverged' AND {t}.attempts <= {s}.retries_diverged) \
          OR ({t}.state = 'interrupted' AND {t}.attempts <= {s}.retries_interrupted))"
    )
}

impl Store {
    /// The database behind the store.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for read-only queries elsewhere in slaw.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----------------------------------------------------------------------------------------
    // Sweeps and trials
    // ----------------------------------------------------------------------------------------

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
                .bind(&trial.key)
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
                .bind(&trial.key)
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

    /// The evaluation points of a trial's current attempt.
    pub async fn metrics(&self, trial_id: i64) -> Result<Vec<MetricRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM metrics m JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempts \
             WHERE m.trial_id = $1 ORDER BY m.step",
            MetricRow::COLUMNS
        )))
        .bind(trial_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(MetricRow::from_row).collect()
    }

    /// The event log of a trial.
    pub async fn events(&self, trial_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM trial_events WHERE trial_id = $1 ORDER BY id",
            EventRow::COLUMNS
        )))
        .bind(trial_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(EventRow::from_row).collect()
    }

    // ----------------------------------------------------------------------------------------
    // Arbitrary queries (slaw query, export)
    // ----------------------------------------------------------------------------------------

    /// Runs `sql` (with `$n` text parameters) and returns every row, each value decoded as an
    /// integer, a real, text, or NULL. Meant for read-only stores: it runs whatever it is given.
    ///
    /// On PostgreSQL a query without parameters goes through the simple-query protocol on a
    /// native connection, whose values arrive as text: every type of the user's SQL can then be
    /// shown (`numeric` from `sum(bigint)` or `round`, timestamps, booleans, json), where the
    /// `Any` driver refuses `numeric` and the types it does not know.
    pub async fn query_table(
        &self,
        sql: &str,
        binds: &[String],
    ) -> Result<ResultTable, StoreError> {
        if self.backend == Backend::Postgres && binds.is_empty() {
            return self.pg_query_text(sql).await;
        }
        let mut q = sqlx::query(AssertSqlSafe(sql.to_string()));
        for b in binds {
            q = q.bind(b.clone());
        }
        let rows = q.fetch_all(&self.pool).await?;
        result_table(&rows, |r, i| {
            Ok(if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                v.map_or(Value::Null, Value::Int)
            } else if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
                v.map_or(Value::Null, Value::Real)
            } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                v.map_or(Value::Null, Value::Text)
            } else if let Ok(v) = r.try_get::<Option<bool>, _>(i) {
                v.map_or(Value::Null, |b| Value::Int(i64::from(b)))
            } else if let Ok(v) = r.try_get::<Option<Vec<u8>>, _>(i) {
                v.map_or(Value::Null, |b| Value::Text(format!("<{} bytes>", b.len())))
            } else {
                Value::Null
            })
        })
    }

    async fn pg_query_text(&self, sql: &str) -> Result<ResultTable, StoreError> {
        use sqlx::postgres::PgConnection;
        use sqlx::{TypeInfo, ValueRef};
        let mut conn = PgConnection::connect(&self.url).await?;
        if self.read_only {
            sqlx::raw_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .execute(&mut conn)
                .await?;
        }
        let rows = sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await;
        let _ = conn.close().await;
        let rows = rows?;
        result_table(&rows, |r, i| {
            let raw = r.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let kind = raw.type_info().name().to_ascii_uppercase();
            let text = raw
                .as_str()
                .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))?;
            Ok(pg_text_value(&kind, text))
        })
    }

    // ----------------------------------------------------------------------------------------
    // Fits
    // ----------------------------------------------------------------------------------------

    /// Stores a fit; returns its id.
    pub async fn save_fit(&self, fit: &NewFit) -> Result<i64, StoreError> {
        self.check_file()?;
        let row = sqlx::query(
            "INSERT INTO fits (sweep_id, source, method, filter_json, inputs_json, result_json, \
                               n_points, bootstrap, seed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(fit.sweep_id)
        .bind(&fit.source)
        .bind(&fit.method)
        .bind(fit.filter.to_string())
        .bind(fit.inputs.to_string())
        .bind(fit.result.to_string())
        .bind(fit.n_points as i64)
        .bind(fit.bootstrap as i64)
        .bind(fit.seed as i64)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The fits of `method` for `source` (`sweep:<name>` or `csv:<path>`), newest first.
    pub async fn fits(&self, source: &str, method: &str) -> Result<Vec<FitRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM fits WHERE source = $1 AND method = $2 ORDER BY id DESC",
            FitRow::COLUMNS
        )))
        .bind(source)
        .bind(method)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FitRow::from_row).collect()
    }

    /// The stored fit with id `id`.
    pub async fn fit(&self, id: i64) -> Result<Option<FitRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM fits WHERE id = $1",
            FitRow::COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(FitRow::from_row).transpose()
    }

    /// Every evaluation point of the active trials of a sweep (current attempts), by trial id.
    pub async fn sweep_metrics(&self, sweep_id: i64) -> Result<Vec<(i64, MetricRow)>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT m.trial_id, {} FROM metrics m \
             JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempts \
             WHERE t.sweep_id = $1 AND t.active = 1 ORDER BY m.trial_id, m.step",
            MetricRow::COLUMNS
        )))
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("trial_id")?, MetricRow::from_row(r)?)))
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

    // ----------------------------------------------------------------------------------------
    // Claiming and leasing
    // ----------------------------------------------------------------------------------------

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

    /// Stores one evaluation point of the claimed attempt.
    pub async fn add_metric(&self, c: &Claimed, m: &MetricRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO metrics (trial_id, attempt, step, examples, flops, lr, train_loss, \
                                  val_loss, val_accuracy, wall_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (trial_id, attempt, step) DO NOTHING",
        )
        .bind(c.trial_id)
        .bind(c.attempt)
        .bind(m.step)
        .bind(m.examples)
        .bind(m.flops)
        .bind(m.lr)
        .bind(finite(m.train_loss))
        .bind(finite(m.val_loss))
        .bind(finite(m.val_accuracy))
        .bind(m.wall_seconds)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores evaluation points of the claimed attempt, each with a JSON object of further
    /// metrics. A point whose step is stored already is merged into it: values given now
    /// replace stored ones, missing ones keep them. Points go in multi-row statements of up to
    /// [`ROWS_PER_INSERT`] (one transaction), so that a trainer's 200 000 points take seconds,
    /// not minutes.
    pub async fn upsert_metrics(
        &self,
        c: &Claimed,
        points: &[(MetricRow, Option<String>)],
    ) -> Result<(), StoreError> {
        self.upsert_metrics_by(c, points, ROWS_PER_INSERT).await
    }

    /// [`Store::upsert_metrics`] with `rows` points per statement (for the benchmark that
    /// compares batch sizes).
    #[doc(hidden)]
    pub async fn upsert_metrics_by(
        &self,
        c: &Claimed,
        points: &[(MetricRow, Option<String>)],
        rows: usize,
    ) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        const COLUMNS: usize = 11;
        let mut tx = self.pool.begin().await?;
        for chunk in distinct_step_chunks(points, rows.clamp(1, ROWS_PER_INSERT)) {
            let sql = format!(
                "INSERT INTO metrics (trial_id, attempt, step, examples, flops, lr, train_loss, \
                                      val_loss, val_accuracy, wall_seconds, extra) \
                 VALUES {} \
                 ON CONFLICT (trial_id, attempt, step) DO UPDATE SET \
                     examples = excluded.examples, flops = excluded.flops, lr = excluded.lr, \
                     train_loss = COALESCE(excluded.train_loss, metrics.train_loss), \
                     val_loss = COALESCE(excluded.val_loss, metrics.val_loss), \
                     val_accuracy = COALESCE(excluded.val_accuracy, metrics.val_accuracy), \
                     wall_seconds = excluded.wall_seconds, \
                     extra = COALESCE(excluded.extra, metrics.extra)",
                placeholders(self.backend, chunk.len(), COLUMNS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (m, extra) in chunk {
                q = q
                    .bind(c.trial_id)
                    .bind(c.attempt)
                    .bind(m.step)
                    .bind(m.examples)
                    .bind(m.flops)
                    .bind(m.lr)
                    .bind(finite(m.train_loss))
                    .bind(finite(m.val_loss))
                    .bind(finite(m.val_accuracy))
                    .bind(m.wall_seconds)
                    .bind(extra.as_deref());
            }
            // Not cached: through the Any driver a parameter bound as NULL in one execution
            // and as a number in another breaks PostgreSQL's cached statement ("incorrect
            // binary data format in bind parameter").
            q.persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Appends lines to the claimed attempt's log (multi-row statements, one transaction).
    pub async fn add_logs(&self, c: &Claimed, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO trial_logs (trial_id, attempt, stream, line, at) VALUES {}",
                placeholders(self.backend, chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for l in chunk {
                q = q
                    .bind(c.trial_id)
                    .bind(c.attempt)
                    .bind(l.stream)
                    .bind(&l.line)
                    .bind(l.at);
            }
            q.persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The last `limit` log lines of a trial's current attempt, oldest first.
    pub async fn logs(&self, trial_id: i64, limit: usize) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM trial_logs l JOIN trials t ON t.id = l.trial_id AND l.attempt = t.attempts \
             WHERE l.trial_id = $1 ORDER BY l.id DESC LIMIT $2",
            LogRow::COLUMNS
        )))
        .bind(trial_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(LogRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
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

/// The rows of an arbitrary query as a table: column names from the first row, each value
/// decoded by `cell(row, column)`.
fn result_table<R: sqlx::Row>(
    rows: &[R],
    cell: impl Fn(&R, usize) -> Result<Value, StoreError>,
) -> Result<ResultTable, StoreError> {
    use sqlx::Column;
    let columns: Vec<String> = match rows.first() {
        Some(r) => r.columns().iter().map(|c| c.name().to_string()).collect(),
        None => Vec::new(),
    };
    let rows = rows
        .iter()
        .map(|r| (0..columns.len()).map(|i| cell(r, i)).collect())
        .collect::<Result<_, _>>()?;
    Ok(ResultTable { columns, rows })
}

/// A PostgreSQL value in text format as slaw's [`Value`]: integers and booleans as integers,
/// floating-point and `numeric` values as reals, everything else as its text.
fn pg_text_value(kind: &str, text: &str) -> Value {
    match kind {
        "INT2" | "INT4" | "INT8" | "OID" => text
            .parse()
            .map_or_else(|_| Value::Text(text.to_string()), Value::Int),
        // A numeric without a fraction (`sum` of integers) is an integer.
        "NUMERIC" if !text.contains(['.', 'e', 'E', 'N']) && text.parse::<i64>().is_ok() => {
            text.parse().map_or(Value::Null, Value::Int)
        }
        "FLOAT4" | "FLOAT8" | "NUMERIC" => match text {
            "Infinity" => Value::Real(f64::INFINITY),
            "-Infinity" => Value::Real(f64::NEG_INFINITY),
            _ => text
                .parse()
                .map_or_else(|_| Value::Text(text.to_string()), Value::Real),
        },
        "BOOL" => Value::Int(i64::from(text == "t")),
        _ => Value::Text(text.to_string()),
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
    .bind(&trial.key)
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
fn local_process_is_gone(worker: &str, host: &str) -> bool {
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

#[cfg(test)]
mod tests;
