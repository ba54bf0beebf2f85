//! Readers cannot write: `slaw query` refuses every statement that would change a database (on
//! SQLite and PostgreSQL), stops endless queries, refuses an output that is the database; read
//! commands never create, migrate or wait on a file that is not a slaw database.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slaw::store::scratch::ScratchDb;
use slaw::store::{Backend, Store};

use super::{command_sweep, quick_db, slaw_in};
use crate::common::{slaw, text, Sandbox};

fn digest(path: &std::path::Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    format!("{:x}", Sha256::digest(bytes))
}

/// Rows of every table, to see that nothing changed.
async fn census(url: &str) -> Vec<(String, i64)> {
    let store = Store::open_read_only(url).await.expect("open");
    let mut out = Vec::new();
    for table in [
        "sweeps",
        "trials",
        "metrics",
        "trial_events",
        "trial_logs",
        "fits",
    ] {
        let t = store
            .read_query(&format!("SELECT COUNT(*) FROM {table}"), Default::default())
            .await
            .expect("count");
        let n = match t.rows[0][0] {
            slaw::store::Value::Int(n) => n,
            ref v => panic!("{v:?}"),
        };
        out.push((table.to_string(), n));
    }
    store.close().await;
    out
}

/// Statements that write, on both databases.
const WRITES: &[&str] = &[
    "DELETE FROM metrics",
    "SELECT 1; DELETE FROM trials",
    "UPDATE trials SET state = 'pending'",
    "DROP TABLE fits",
    "INSERT INTO sweeps (name) VALUES ('x')",
    "WITH r AS (SELECT 1) DELETE FROM trials",
    "CREATE TABLE t (a INT)",
];

#[tokio::test]
async fn query_cannot_write_a_sqlite_database() {
    let sb = Sandbox::new();
    let db = quick_db(&sb);
    let before = census(&sb.db()).await;
    let hash = digest(&db);
    let copy = sb.path("copy.db");
    let attached = sb.path("attached.db");
    let sqlite_only = [
        format!("VACUUM INTO '{}'", copy.display()),
        format!("ATTACH DATABASE '{}' AS x", attached.display()),
        "PRAGMA journal_mode = DELETE".to_string(),
        "PRAGMA user_version = 7".to_string(),
        "REPLACE INTO sweeps (name) VALUES ('x')".to_string(),
        "BEGIN IMMEDIATE".to_string(),
    ];
    for sql in WRITES.iter().map(|s| s.to_string()).chain(sqlite_only) {
        let out = sb.run(&["query", &sql]);
        assert_eq!(out.status.code(), Some(2), "{sql}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("slaw query"), "{sql}: {err}");
    }
    assert!(!copy.exists(), "VACUUM INTO wrote a copy");
    assert!(!attached.exists(), "ATTACH created a file");
    assert_eq!(census(&sb.db()).await, before);
    assert_eq!(digest(&db), hash, "the database file changed");
    // Reading still works.
    let out = sb.run(&["query", "SELECT COUNT(*) AS n FROM trials"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains('2'));
}

#[tokio::test]
async fn query_cannot_write_a_postgres_database() {
    let Some(db) =
        ScratchDb::new(Backend::Postgres, "query_cannot_write_a_postgres_database").await
    else {
        return;
    };
    let sb = Sandbox::new();
    let file = sb.write(
        "quick.yaml",
        &command_sweep(
            "quick",
            "[{name: a, mode: normal, width: 8, steps: 3, sleep: 0}]",
            "",
        ),
    );
    let out = slaw()
        .args([
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--no-fit",
            "--db",
            &db.url,
        ])
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let before = census(&db.url).await;
    let pg_only = [
        "BEGIN READ WRITE; DELETE FROM metrics; DELETE FROM trials; COMMIT",
        "BEGIN; SET TRANSACTION READ WRITE; DELETE FROM trials; COMMIT",
        "COMMIT; DELETE FROM trials",
        "SET default_transaction_read_only = off",
        "SELECT set_config('transaction_read_only', 'off', false)",
        "WITH d AS (DELETE FROM trials RETURNING *) SELECT * FROM d",
        "SELECT * INTO TABLE stolen FROM trials",
        "COPY trials TO STDOUT",
        "DO $$ BEGIN DELETE FROM trials; END $$",
        "SELECT nextval('trials_id_seq')",
        "SELECT $q$x$q$; DELETE FROM trials",
        "EXPLAIN ANALYZE DELETE FROM trials",
    ];
    for sql in WRITES.iter().chain(pg_only.iter()) {
        let out = slaw()
            .args(["query", sql, "--db", &db.url])
            .output()
            .unwrap();
        assert_ne!(out.status.code(), Some(0), "{sql}: {}", text(&out));
        assert_eq!(census(&db.url).await, before, "after {sql}");
    }
    let out = slaw()
        .args(["query", "SELECT COUNT(*) AS n FROM trials", "--db", &db.url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // An endless query is stopped by the statement timeout.
    let started = Instant::now();
    let out = slaw()
        .args([
            "query",
            "SELECT pg_sleep(30)",
            "--timeout",
            "1",
            "--db",
            &db.url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than 1 s"));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn endless_queries_stop_at_their_limits() {
    let sb = Sandbox::new();
    quick_db(&sb);
    let endless_rows =
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r";
    let started = Instant::now();
    let out = sb.run(&["query", endless_rows]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("more than 1000000 rows"), "{err}");
    let out = sb.run(&[
        "query",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT COUNT(*) FROM r",
        "--timeout",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("longer than 1 s"), "{err}");
    let out = sb.run(&[
        "query",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 100) \
         SELECT printf('%.*c', 10000000, 'x') FROM r",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MiB of data"));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_output_that_is_the_database_or_unwritable_is_refused_first() {
    let sb = Sandbox::new();
    let db = quick_db(&sb);
    let hash = digest(&db);
    for out_path in [
        db.display().to_string(),
        format!("{}-wal", db.display()),
        "./slaw.db".to_string(),
    ] {
        let out = sb.run(&[
            "query",
            "SELECT * FROM trials",
            "--format",
            "csv",
            "--out",
            &out_path,
        ]);
        assert_eq!(out.status.code(), Some(2), "{out_path}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is the database"));
    }
    assert_eq!(digest(&db), hash);
    // A directory that cannot hold the file: the query is not run.
    let blocker = sb.write("blocker", "a file, not a directory");
    let target = format!("{}/x.csv", blocker.display());
    let out = sb.run(&[
        "query",
        "SELECT * FROM trials",
        "--format",
        "csv",
        "--out",
        &target,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // A good path gets the whole result.
    let good = sb.path("out/trials.csv");
    let out = sb.run(&[
        "query",
        "SELECT key FROM trials",
        "--format",
        "csv",
        "--out",
        good.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&good).unwrap().lines().count(), 3);
}

/// Files that are no slaw database.
fn not_databases(sb: &Sandbox) -> Vec<(std::path::PathBuf, &'static str)> {
    let garbage = sb.path("garbage.db");
    std::fs::write(
        &garbage,
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let textfile = sb.write("notes.db", "name: this is a sweep file, not a database\n");
    // A real database cut after its first pages.
    let real = quick_db(sb);
    let out = sb.run(&["query", "SELECT 1"]);
    assert!(out.status.success());
    let bytes = std::fs::read(&real).unwrap();
    let truncated = sb.path("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len().min(8192)]).unwrap();
    vec![
        (garbage, "not a slaw database"),
        (textfile, "not a slaw database"),
        (truncated, "slaw database"),
    ]
}

#[tokio::test]
async fn readers_name_a_bad_database_at_once_and_change_nothing() {
    let sb = Sandbox::new();
    let mut cases = not_databases(&sb);
    let empty = sb.write("empty.db", "");
    cases.push((empty, "nothing stored"));
    cases.push((sb.path("missing.db"), "nothing stored"));
    let readers: &[&[&str]] = &[
        &["status"],
        &["query", "SELECT 1"],
        &["show", "abc"],
        &["plot"],
        &["report"],
        &["export", "--out", "exported"],
        &["predict", "--params", "1M", "--examples", "1M"],
    ];
    for (path, expect) in &cases {
        let before = std::fs::read(path).ok();
        for args in readers {
            let started = Instant::now();
            let mut full: Vec<&str> = args.to_vec();
            let db = path.display().to_string();
            full.extend(["--db", &db]);
            let out = slaw_in(&sb, &full);
            assert_eq!(out.status.code(), Some(2), "{full:?}: {}", text(&out));
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(expect), "{full:?}: {err}");
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{full:?} took {:?}",
                started.elapsed()
            );
            assert_eq!(
                std::fs::read(path).ok(),
                before,
                "{full:?} changed {}",
                path.display()
            );
        }
    }
    // Writers refuse a file that is not a slaw database too, before writing to it.
    let garbage = &cases[0].0;
    let before = std::fs::read(garbage).unwrap();
    let sweep = sb.write(
        "s.yaml",
        &command_sweep(
            "s",
            "[{name: a, mode: normal, width: 8, steps: 2, sleep: 0}]",
            "",
        ),
    );
    let db = garbage.display().to_string();
    let out = slaw_in(&sb, &["run", sweep.to_str().unwrap(), "--db", &db]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(std::fs::read(garbage).unwrap(), before);
    assert!(!sb.path("exported").exists());
}

#[tokio::test]
async fn a_sqlite_file_of_another_program_is_not_taken_over() {
    let sb = Sandbox::new();
    let other = sb.path("other.db");
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&other)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE notes (body TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let hash = digest(&other);
    let sweep = sb.write(
        "s.yaml",
        &command_sweep(
            "s",
            "[{name: a, mode: normal, width: 8, steps: 2, sleep: 0}]",
            "",
        ),
    );
    let db = other.display().to_string();
    for args in [
        vec!["run", sweep.to_str().unwrap(), "--db", &db],
        vec!["status", "--db", &db],
    ] {
        let out = slaw_in(&sb, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("another program (notes)"), "{err}");
    }
    assert_eq!(digest(&other), hash);
}

#[tokio::test]
async fn status_and_report_do_not_write() {
    let sb = Sandbox::new();
    let db = quick_db(&sb);
    // Fits are not stored yet (--no-fit): report and plot fit in memory only.
    let before = census(&sb.db()).await;
    let hash = digest(&db);
    for args in [
        vec!["status"],
        vec!["report", "--out", "r.html"],
        vec!["plot", "--out", "figs"],
        vec!["show", "a"],
        vec!["export", "--out", "exp", "--format", "csv"],
    ] {
        let out = sb.run(&args);
        // `show a` matches no key (keys are hashes) or one: either is fine, nothing may change.
        assert_ne!(out.status.code(), Some(101), "{args:?}: {}", text(&out));
    }
    assert_eq!(census(&sb.db()).await, before);
    assert_eq!(digest(&db), hash);
}
