//! Queries and exports of the result database as DataFrames: `slaw query` runs one reading
//! statement under the store's read-only locks and limits ([`Store::read_query`]), `slaw export`
//! writes a sweep's trials, metrics and fits; both write CSV, JSON or Parquet through polars,
//! ready for pandas and polars users. An output file is checked before the query runs (never
//! the database itself, a directory that accepts it) and appears only once complete.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::{
    Column, CsvWriter, DataFrame, JsonFormat, JsonWriter, ParquetWriter, SerWriter,
};

use crate::store::{AsLocation, Location, QueryLimits, ResultTable, Store, StoreError, Value};

/// Errors of queries and exports.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The database refused the query (its own message).
    #[error("{0}")]
    Database(String),
    /// The output file cannot be used.
    #[error("--out {path}: {why}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// Opening the store failed.
    #[error(transparent)]
    Store(StoreError),
    /// Building or writing the DataFrame failed.
    #[error("writing {path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl From<StoreError> for QueryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Sql(sqlx::Error::Database(db)) => {
                let msg = db.message().to_string();
                if msg.contains("readonly") || msg.contains("read-only") {
                    QueryError::Database(format!(
                        "{msg}: slaw query opens the database read-only and never writes; \
                         use sqlite3 or psql to change data"
                    ))
                } else {
                    QueryError::Database(msg)
                }
            }
            other => QueryError::Store(other),
        }
    }
}

/// An output format for tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma-separated values with a header.
    Csv,
    /// A JSON array of row objects.
    Json,
    /// Apache Parquet.
    Parquet,
}

impl TableFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Json => "json",
            TableFormat::Parquet => "parquet",
        }
    }
}

impl QueryError {
    /// Whether the error is about what the user gave (the SQL, the location, the output file)
    /// rather than a failure at run time.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            QueryError::Database(_) | QueryError::Output { .. } => true,
            QueryError::Store(e) => e.is_invalid_input(),
            QueryError::Write { .. } => false,
        }
    }
}

/// Runs the reader's `sql` on the database at `location` under `limits`.
pub async fn run(
    location: &(impl AsLocation + ?Sized),
    sql: &str,
    limits: QueryLimits,
) -> Result<ResultTable, QueryError> {
    let store = Store::open_read_only(location).await?;
    let result = store.read_query(sql, limits).await;
    store.close().await;
    Ok(result?)
}

/// An output file made ready before a query runs: its directory accepts files, and it is not
/// the database (or its journal) named by `location`. The result goes to a temporary file
/// beside it that takes its name once complete ([`Output::finish`]).
#[derive(Debug)]
pub struct Output {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl Output {
    /// Checks `path` against the database at `location` and creates the temporary file.
    pub fn prepare(
        path: &Path,
        location: &(impl AsLocation + ?Sized),
    ) -> Result<Output, QueryError> {
        let refuse = |why: String| QueryError::Output {
            path: path.to_path_buf(),
            why,
        };
        if path.is_dir() {
            return Err(refuse("is a directory".into()));
        }
        if let Ok(Location::Sqlite(db)) = location.location() {
            if names_database(path, &db) {
                return Err(refuse(format!(
                    "is the database {} (or its journal): slaw query never writes there",
                    db.display()
                )));
            }
        }
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .map_err(|e| refuse(format!("cannot create {}: {e}", d.display())))?;
                d.to_path_buf()
            }
            None => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".slaw-query-")
            .tempfile_in(&dir)
            .map_err(|e| refuse(format!("cannot write in {}: {e}", dir.display())))?;
        Ok(Output {
            path: path.to_path_buf(),
            temp,
        })
    }

    /// Writes `table` in `format` and gives the file its name.
    pub fn finish(self, table: &ResultTable, format: TableFormat) -> Result<(), QueryError> {
        write(table, format, self.temp.path())?;
        self.temp
            .persist(&self.path)
            .map_err(|e| QueryError::Write {
                path: self.path.clone(),
                message: e.error.to_string(),
            })?;
        Ok(())
    }
}

/// Whether `out` is the SQLite file `db` or one of its companions (`-wal`, `-shm`,
/// `-journal`), by file identity where both exist and by canonical path otherwise.
fn names_database(out: &Path, db: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let canonical = |p: &Path| -> Option<PathBuf> {
        if let Ok(c) = p.canonicalize() {
            return Some(c);
        }
        let parent = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Some(parent.canonicalize().ok()?.join(p.file_name()?))
    };
    let Some(out_c) = canonical(out) else {
        return false;
    };
    ["", "-wal", "-shm", "-journal"].iter().any(|suffix| {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        let candidate = PathBuf::from(name);
        if let (Ok(a), Ok(b)) = (std::fs::metadata(out), std::fs::metadata(&candidate)) {
            if a.dev() == b.dev() && a.ino() == b.ino() {
                return true;
            }
        }
        canonical(&candidate).is_some_and(|c| c == out_c)
    })
}

/// The column's type: integer when every value is an integer or NULL, real when every value
/// is a number, text otherwise.
fn column(name: &str, values: Vec<&Value>) -> Column {
    let ints = values
        .iter()
        .all(|v| matches!(v, Value::Int(_) | Value::Null));
    let reals = values
        .iter()
        .all(|v| matches!(v, Value::Int(_) | Value::Real(_) | Value::Null));
    if ints {
        let v: Vec<Option<i64>> = values
            .iter()
            .map(|v| match v {
                Value::Int(i) => Some(*i),
                _ => None,
            })
            .collect();
        Column::new(name.into(), v)
    } else if reals {
        let v: Vec<Option<f64>> = values
            .iter()
            .map(|v| match v {
                Value::Int(i) => Some(*i as f64),
                Value::Real(r) => Some(*r),
                _ => None,
            })
            .collect();
        Column::new(name.into(), v)
    } else {
        let v: Vec<Option<String>> = values
            .iter()
            .map(|v| match v {
                Value::Null => None,
                Value::Int(i) => Some(i.to_string()),
                Value::Real(r) => Some(r.to_string()),
                Value::Text(t) => Some(t.clone()),
            })
            .collect();
        Column::new(name.into(), v)
    }
}

/// The result as a polars DataFrame (columns typed from their values).
pub fn to_dataframe(table: &ResultTable) -> Result<DataFrame, QueryError> {
    let columns: Vec<Column> = table
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| column(name, table.rows.iter().map(|r| &r[i]).collect()))
        .collect();
    DataFrame::new(table.rows.len(), columns).map_err(|e| QueryError::Write {
        path: PathBuf::new(),
        message: e.to_string(),
    })
}

/// Writes `table` to `path` in `format`.
pub fn write(table: &ResultTable, format: TableFormat, path: &Path) -> Result<(), QueryError> {
    let err = |message: String| QueryError::Write {
        path: path.to_path_buf(),
        message,
    };
    let mut df = to_dataframe(table)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let file = File::create(path).map_err(|e| err(e.to_string()))?;
    match format {
        TableFormat::Csv => CsvWriter::new(file).finish(&mut df),
        TableFormat::Json => JsonWriter::new(file)
            .with_json_format(JsonFormat::Json)
            .finish(&mut df),
        TableFormat::Parquet => ParquetWriter::new(file).finish(&mut df).map(|_| ()),
    }
    .map_err(|e| err(e.to_string()))
}

/// Writes the trials, metrics and fits of `sweep` (every sweep when `None`) into `dir`;
/// returns the files written.
pub async fn export(
    location: &(impl AsLocation + ?Sized),
    sweep: Option<&str>,
    dir: &Path,
    format: TableFormat,
) -> Result<Vec<PathBuf>, QueryError> {
    let store = Store::open_read_only(location).await?;
    let (filter, binds) = match sweep {
        Some(name) => ("WHERE s.name = $1", vec![name.to_string()]),
        None => ("", Vec::new()),
    };
    let queries = [
        (
            "trials",
            format!(
                "SELECT s.name AS sweep, t.* FROM trials t JOIN sweeps s ON s.id = t.sweep_id \
                 {filter} ORDER BY t.id"
            ),
        ),
        (
            "metrics",
            format!(
                "SELECT s.name AS sweep, t.key AS trial, t.size_name AS size, t.params, t.epochs, \
                        t.lr AS peak_lr, m.* \
                 FROM metrics m JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempts \
                 JOIN sweeps s ON s.id = t.sweep_id {filter} ORDER BY m.trial_id, m.step"
            ),
        ),
        (
            "fits",
            format!(
                "SELECT s.name AS sweep, f.id, f.source, f.method, f.n_points, f.bootstrap, \
                        f.seed, f.created_at, f.filter_json, f.result_json \
                 FROM fits f LEFT JOIN sweeps s ON s.id = f.sweep_id {filter} ORDER BY f.id"
            ),
        ),
    ];
    let mut written = Vec::new();
    for (name, sql) in queries {
        let table = store.query_table(&sql, &binds).await?;
        let path = dir.join(format!("{name}.{}", format.extension()));
        write(&table, format, &path)?;
        written.push(path);
    }
    store.close().await;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResultTable {
        ResultTable {
            columns: vec!["n".into(), "x".into(), "name".into()],
            rows: vec![
                vec![Value::Int(1), Value::Real(0.5), Value::Text("a".into())],
                vec![Value::Null, Value::Int(2), Value::Null],
            ],
        }
    }

    #[test]
    fn the_database_is_never_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("slaw.db");
        std::fs::write(&db, b"x").unwrap();
        let loc = db.display().to_string();
        for out in [
            db.clone(),
            dir.path().join("./slaw.db"),
            dir.path().join("slaw.db-wal"),
            dir.path().join("sub/../slaw.db"),
        ] {
            std::fs::create_dir_all(dir.path().join("sub")).unwrap();
            let e = Output::prepare(&out, &loc).unwrap_err();
            assert!(e.to_string().contains("is the database"), "{out:?}: {e}");
        }
        std::os::unix::fs::symlink(&db, dir.path().join("link.csv")).unwrap();
        assert!(Output::prepare(&dir.path().join("link.csv"), &loc).is_err());
        assert!(Output::prepare(dir.path(), &loc).is_err(), "a directory");
        let ok = Output::prepare(&dir.path().join("out.csv"), &loc).unwrap();
        ok.finish(&sample(), TableFormat::Csv).unwrap();
        assert!(dir.path().join("out.csv").exists());
        assert_eq!(
            std::fs::read(&db).unwrap(),
            b"x",
            "the database is untouched"
        );
    }

    #[test]
    fn columns_are_typed_from_their_values() {
        let df = to_dataframe(&sample()).unwrap();
        assert_eq!(df.height(), 2);
        let dtypes: Vec<String> = df.dtypes().iter().map(|d| d.to_string()).collect();
        assert_eq!(dtypes, vec!["i64", "f64", "str"]);
    }

    #[test]
    fn writes_every_format() {
        let dir = tempfile::tempdir().unwrap();
        for format in [TableFormat::Csv, TableFormat::Json, TableFormat::Parquet] {
            let path = dir.path().join(format!("t.{}", format.extension()));
            write(&sample(), format, &path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            match format {
                TableFormat::Csv => {
                    assert_eq!(
                        String::from_utf8(bytes).unwrap(),
                        "n,x,name\n1,0.5,a\n,2.0,\n"
                    )
                }
                TableFormat::Json => {
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    assert_eq!(v[0]["name"], "a");
                    assert_eq!(v[1]["x"], 2.0);
                }
                TableFormat::Parquet => assert_eq!(&bytes[..4], b"PAR1"),
            }
        }
    }
}
