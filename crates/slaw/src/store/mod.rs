//! The result store: sqlx over SQLite (default) or PostgreSQL, embedded migrations, every SQL
//! statement of slaw, and the claiming and leasing of trials.
//!
//! One SQL text serves both databases wherever possible (`$n` placeholders work on both); the
//! differences (DDL, `FOR UPDATE SKIP LOCKED`, pragmas) are isolated in this module. Times are
//! Unix seconds as `f64`. A trial moves `pending → running → completed | failed | diverged |
//! interrupted`; every transition out of `running` is fenced by the worker and attempt that
//! claimed it, so a worker that lost its lease cannot overwrite a newer attempt.

mod claims;
mod fits;
mod metrics;
mod open;
mod reader;
mod rows;
#[doc(hidden)]
pub mod scratch;
pub mod statement;
mod sweeps;

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::AnyPool;

pub use claims::{hostname, slurm_task, worker_identity};
pub use open::{inspect, known_schema, redact_url, AsLocation, FileState, Location};
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
}

#[cfg(test)]
mod tests;
