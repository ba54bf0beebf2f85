//! Throw-away databases for tests and benchmarks: a SQLite file in a temporary directory, or a
//! fresh database on the PostgreSQL server named by `SLAW_TEST_POSTGRES` (dropped again when
//! the value goes out of scope), so that tests run in parallel without sharing state.
//!
//! Without `SLAW_TEST_POSTGRES`, [`ScratchDb::new`] returns `None` for PostgreSQL after printing
//! a notice, unless `SLAW_REQUIRE_SERVICES=1` (CI), where a missing server is an error.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::any::AnyConnectOptions;
use sqlx::{AssertSqlSafe, Connection};

use super::{Backend, StoreError};

/// The variable naming the PostgreSQL server of the tests (a URL whose role may create
/// databases).
pub const POSTGRES_VAR: &str = "SLAW_TEST_POSTGRES";
/// The variable that turns a missing test service into a failure (set by `.ci/run`).
pub const REQUIRE_VAR: &str = "SLAW_REQUIRE_SERVICES";

/// True when `SLAW_REQUIRE_SERVICES` asks that every service-backed test runs.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// A database that exists for as long as this value.
#[derive(Debug)]
pub struct ScratchDb {
    /// What to pass to `Store::open` (or to `--db`).
    pub url: String,
    /// Which database.
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    admin: Option<(String, String)>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl ScratchDb {
    /// A fresh database of `backend`, or `None` (after a notice on stderr) when the PostgreSQL
    /// server is not configured and not required.
    ///
    /// # Panics
    /// When PostgreSQL is required (`SLAW_REQUIRE_SERVICES=1`) but not configured or not
    /// reachable: CI must not pass by skipping.
    pub async fn new(backend: Backend, label: &str) -> Option<ScratchDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = dir.path().join("slaw.db").display().to_string();
                Some(ScratchDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    admin: None,
                })
            }
            Backend::Postgres => {
                let admin = postgres_url(label)?;
                match Self::create_postgres(&admin).await {
                    Ok(db) => Some(db),
                    Err(e) => {
                        panic!("{label}: cannot create a PostgreSQL test database on {admin}: {e}")
                    }
                }
            }
        }
    }

    async fn create_postgres(admin: &str) -> Result<ScratchDb, StoreError> {
        sqlx::any::install_default_drivers();
        let name = format!(
            "slaw_t_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            super::now().fract().to_bits() % 1_000_000
        );
        let mut conn =
            sqlx::AnyConnection::connect_with(&AnyConnectOptions::from_str(admin)?).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(ScratchDb {
            url: replace_database(admin, &name),
            backend: Backend::Postgres,
            _dir: None,
            admin: Some((admin.to_string(), name)),
        })
    }
}

/// The server URL from `SLAW_TEST_POSTGRES`, or `None` after a notice.
///
/// # Panics
/// When it is unset and `SLAW_REQUIRE_SERVICES=1`.
pub fn postgres_url(label: &str) -> Option<String> {
    match std::env::var(POSTGRES_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if services_required() {
                panic!(
                    "{label}: {REQUIRE_VAR}=1 but {POSTGRES_VAR} is not set: \
                     run scripts/start_services.sh and export what it prints"
                );
            }
            notice(&format!(
                "{label}: skipped on PostgreSQL: {POSTGRES_VAR} is not set \
                 (scripts/start_services.sh starts a server and prints it)"
            ));
            None
        }
    }
}

/// Prints `line` on standard error past the test harness's capture (a skipped test must say
/// so where `cargo test` shows it).
pub fn notice(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// `url` with its database name replaced by `name` (query string kept).
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    // The path starts at the first '/' after "scheme://authority".
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.admin.take() else {
            return;
        };
        // Drop may run inside an async runtime: drop the database from a thread of its own.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(options) = AnyConnectOptions::from_str(&admin) else {
                    return;
                };
                if let Ok(mut conn) = sqlx::AnyConnection::connect_with(&options).await {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            replace_database("postgres://u:p@h:5432/db", "x"),
            "postgres://u:p@h:5432/x"
        );
        assert_eq!(
            replace_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
    }
}
