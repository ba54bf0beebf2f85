//! Running a reader's own SQL (`slaw query`) so that it cannot change the database, cannot run
//! for ever and cannot fill the memory. Three locks, each enough on its own for the common
//! cases: the text must be one statement that only reads ([`super::statement`]); the connection
//! cannot write (SQLite: opened read-only with `query_only`; PostgreSQL: the server's own parser
//! must accept the text as one prepared statement, which it refuses for several, and it runs in
//! a `READ ONLY` transaction on a session whose default is read-only, rolled back at the end);
//! and the statement has a time limit (SQLite: a progress handler interrupts it; PostgreSQL:
//! `statement_timeout`) and caps on the rows and bytes it may return.

use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, Row, SqlSafeStr, TypeInfo, ValueRef};

use super::statement::{self, Dialect};
use super::{Backend, Location, ResultTable, Store, StoreError, Value};

/// Limits of one reader's query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryLimits {
    /// The longest the statement may run.
    pub timeout: Duration,
    /// The most rows it may return.
    pub max_rows: usize,
    /// The most bytes its values may take in memory (text and blobs by length, every other
    /// value as 16 bytes).
    pub max_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            timeout: Duration::from_secs(60),
            max_rows: 1_000_000,
            max_bytes: 512 << 20,
        }
    }
}

/// Rows collected under the limits.
struct Collector {
    limits: QueryLimits,
    table: ResultTable,
    bytes: usize,
}

impl Collector {
    fn new(limits: QueryLimits) -> Self {
        Collector {
            limits,
            table: ResultTable::default(),
            bytes: 0,
        }
    }

    fn push(&mut self, row: Vec<Value>) -> Result<(), StoreError> {
        if self.table.rows.len() >= self.limits.max_rows {
            return Err(StoreError::QueryLimit(format!(
                "the query returns more than {} rows: add a LIMIT or a WHERE, or raise --max-rows",
                self.limits.max_rows
            )));
        }
        self.bytes += row
            .iter()
            .map(|v| match v {
                Value::Text(t) => 16 + t.len(),
                _ => 16,
            })
            .sum::<usize>();
        if self.bytes > self.limits.max_bytes {
            return Err(StoreError::QueryLimit(format!(
                "the query returns more than {} MiB of data: select fewer columns or rows",
                self.limits.max_bytes >> 20
            )));
        }
        self.table.rows.push(row);
        Ok(())
    }
}

impl Store {
    /// Runs a reader's `sql` under `limits`: one statement that only reads, on a connection of
    /// its own that cannot write.
    pub async fn read_query(
        &self,
        sql: &str,
        limits: QueryLimits,
    ) -> Result<ResultTable, StoreError> {
        match (&self.location, self.backend) {
            (Location::Sqlite(path), Backend::Sqlite) => {
                statement::check(sql, Dialect::Sqlite)?;
                sqlite_query(path, sql, limits).await
            }
            (_, _) => {
                statement::check(sql, Dialect::Postgres)?;
                pg_query(&self.url, sql, limits).await
            }
        }
    }
}

async fn sqlite_query(
    path: &std::path::Path,
    sql: &str,
    limits: QueryLimits,
) -> Result<ResultTable, StoreError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        .pragma("query_only", "ON");
    let mut conn = SqliteConnection::connect_with(&options).await?;
    let deadline = Instant::now() + limits.timeout;
    conn.lock_handle()
        .await?
        .set_progress_handler(10_000, move || Instant::now() < deadline);
    let mut out = Collector::new(limits);
    let result = async {
        let mut rows = sqlx::query(AssertSqlSafe(sql.to_string())).fetch(&mut conn);
        while let Some(row) = rows.try_next().await? {
            if out.table.columns.is_empty() {
                out.table.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
            }
            let cells = (0..row.columns().len())
                .map(|i| sqlite_value(&row, i))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(cells)?;
        }
        Ok::<_, StoreError>(())
    }
    .await;
    let _ = conn.close().await;
    match result {
        Err(e) if super::sqlite_code(&e) == Some(9) => Err(timed_out(limits)),
        Err(e) => Err(e),
        Ok(()) => Ok(out.table),
    }
}

fn sqlite_value(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Value, StoreError> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().name().to_ascii_uppercase();
    Ok(match kind.as_str() {
        "INTEGER" | "BOOLEAN" => Value::Int(row.try_get(i)?),
        "REAL" => Value::Real(row.try_get(i)?),
        "BLOB" => Value::Text(format!("<{} bytes>", row.try_get::<Vec<u8>, _>(i)?.len())),
        _ => Value::Text(row.try_get(i)?),
    })
}

fn timed_out(limits: QueryLimits) -> StoreError {
    StoreError::QueryLimit(format!(
        "the query ran longer than {} s and was stopped: narrow it, or raise --timeout",
        limits.timeout.as_secs_f64()
    ))
}

async fn pg_query(url: &str, sql: &str, limits: QueryLimits) -> Result<ResultTable, StoreError> {
    let options = PgConnectOptions::from_str(url)?
        .options([("default_transaction_read_only", "on")])
        .statement_cache_capacity(0);
    let mut conn = PgConnection::connect_with(&options).await?;
    let result = pg_rows(&mut conn, sql, limits).await;
    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut conn).await;
    let _ = conn.close().await;
    match result {
        Err(StoreError::Sql(sqlx::Error::Database(db)))
            if db.code().as_deref() == Some("57014") =>
        {
            Err(timed_out(limits))
        }
        other => other,
    }
}

async fn pg_rows(
    conn: &mut PgConnection,
    sql: &str,
    limits: QueryLimits,
) -> Result<ResultTable, StoreError> {
    // The server's parser has the last word on "one statement": a prepared statement cannot
    // hold several, and preparing runs nothing.
    conn.prepare(AssertSqlSafe(sql.to_string()).into_sql_str())
        .await?;
    let millis = limits.timeout.as_millis().max(1);
    sqlx::raw_sql(AssertSqlSafe(format!(
        "BEGIN TRANSACTION READ ONLY; SET LOCAL statement_timeout = {millis}"
    )))
    .execute(&mut *conn)
    .await?;
    let mut out = Collector::new(limits);
    let mut rows = sqlx::raw_sql(AssertSqlSafe(sql.to_string())).fetch(&mut *conn);
    while let Some(row) = rows.try_next().await? {
        if out.table.columns.is_empty() {
            out.table.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
        }
        let cells = (0..row.columns().len())
            .map(|i| {
                let raw = row.try_get_raw(i)?;
                if raw.is_null() {
                    return Ok(Value::Null);
                }
                let kind = raw.type_info().name().to_ascii_uppercase();
                let text = raw
                    .as_str()
                    .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))?;
                Ok(pg_text_value(&kind, text))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.push(cells)?;
    }
    Ok(out.table)
}

impl Store {
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
