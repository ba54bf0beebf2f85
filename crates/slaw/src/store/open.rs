//! Opening a store. Where the database is (a SQLite file or a PostgreSQL URL, parsed once into a
//! [`Location`]); what a SQLite file holds before any connection is made (nothing, something
//! that is not SQLite, another program's database, slaw's schema at which version); opening
//! for writers (creating and migrating) and for readers (never creating or migrating: the
//! commands that only read leave the database exactly as it was); and the checks that let a
//! running store notice that its file was deleted, replaced or made read-only
//! ([`Store::check_file`]).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Executor, Row};

use super::{Backend, Store, StoreError, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

/// Where a database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (`path`, `sqlite:path` or `sqlite://path`).
    Sqlite(PathBuf),
    /// A PostgreSQL server (`postgres://…` or `postgresql://…`).
    Postgres(String),
}

impl Location {
    /// Parses a `--db` value.
    pub fn parse(text: &str) -> Result<Location, StoreError> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(Location::Postgres(text.to_string()));
        }
        let path = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
            .unwrap_or(text);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(StoreError::Location("empty database path".into()));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            if scheme != "sqlite" {
                return Err(StoreError::Location(format!(
                    "{scheme}:// databases are not supported: give a SQLite file path or a \
                     postgres:// URL"
                )));
            }
        }
        Ok(Location::Sqlite(PathBuf::from(path)))
    }

    /// The SQLite file, if this is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }

    /// The location fit for printing: a URL's password is replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => redact_url(url),
        }
    }

    /// The location as a `--db` value for a worker process (unredacted: the worker needs the
    /// password). A SQLite file is given by its path.
    pub fn to_arg(&self) -> String {
        match self {
            Location::Sqlite(p) => p.display().to_string(),
            Location::Postgres(url) => url.clone(),
        }
    }

    /// The same database for processes started elsewhere (Slurm tasks on other nodes): a
    /// relative SQLite path is made absolute against `cwd`; a URL is unchanged.
    pub fn absolute(&self, cwd: &Path) -> Location {
        match self {
            Location::Sqlite(p) => Location::Sqlite(cwd.join(p)),
            Location::Postgres(_) => self.clone(),
        }
    }

    /// Where a sweep's figures and report go by default: `<sweep>/` beside a SQLite database
    /// (`results/<sweep>/` for the default `results/slaw.db`), `results/<sweep>/` for
    /// PostgreSQL.
    pub fn results_dir(&self, sweep: &str) -> PathBuf {
        match self {
            Location::Sqlite(path) => path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join(sweep),
            Location::Postgres(_) => Path::new("results").join(sweep),
        }
    }
}

/// A database location as callers hold it: text still to parse (`--db` values, test URLs) or
/// an already parsed [`Location`].
pub trait AsLocation {
    /// The parsed location.
    fn location(&self) -> Result<Location, StoreError>;
}

impl AsLocation for str {
    fn location(&self) -> Result<Location, StoreError> {
        Location::parse(self)
    }
}

impl AsLocation for String {
    fn location(&self) -> Result<Location, StoreError> {
        Location::parse(self)
    }
}

impl AsLocation for Location {
    fn location(&self) -> Result<Location, StoreError> {
        Ok(self.clone())
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A URL with its password replaced by `***`.
pub fn redact_url(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) if user.contains(':') => {
            let name = user.split(':').next().unwrap_or("");
            format!("{scheme}://{name}:***@{host}{path}")
        }
        _ => location.to_string(),
    }
}

/// What a path holds, from its first bytes (no connection is made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileState {
    /// Nothing at the path.
    Missing,
    /// A file of 0 bytes (SQLite treats it as an empty database).
    Empty,
    /// A file with SQLite's header.
    Sqlite,
    /// Something else: what it is.
    Other(String),
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Looks at what `path` holds.
pub fn inspect(path: &Path) -> Result<FileState, StoreError> {
    use std::io::Read;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Missing),
        Err(e) => {
            return Err(StoreError::Location(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    if meta.is_dir() {
        return Ok(FileState::Other("a directory".into()));
    }
    if meta.len() == 0 {
        return Ok(FileState::Empty);
    }
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .map_err(|e| StoreError::Location(format!("cannot read {}: {e}", path.display())))?;
    if head.starts_with(SQLITE_HEADER) {
        // With a write-ahead log beside it, the file may lag its header (an interrupted
        // checkpoint); SQLite reads the missing pages from the log.
        let mut wal = path.as_os_str().to_os_string();
        wal.push("-wal");
        let has_wal = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
        if let Some(expected) = sqlite_size(&head).filter(|e| meta.len() < *e && !has_wal) {
            return Ok(FileState::Other(format!(
                "a damaged SQLite file: {} bytes of the {expected} its header names (truncated)",
                meta.len()
            )));
        }
        return Ok(FileState::Sqlite);
    }
    let what = if std::str::from_utf8(&head).is_ok() {
        "a text file, not SQLite"
    } else {
        "not a SQLite file"
    };
    Ok(FileState::Other(what.into()))
}

/// The size in bytes a SQLite file's header says the database has, when the header's size
/// field is valid (its change counter matches the version-valid-for number).
fn sqlite_size(head: &[u8]) -> Option<u64> {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(head.get(at..at + 4)?.try_into().ok()?))
    };
    let page = u16::from_be_bytes(head.get(16..18)?.try_into().ok()?);
    let page = if page == 1 { 65_536 } else { u64::from(page) };
    let pages = u64::from(be32(28)?);
    (pages > 0 && be32(24)? == be32(92)?).then_some(pages * page)
}

/// The newest schema version this slaw knows for `backend`.
pub fn known_schema(backend: Backend) -> i64 {
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The identity of an open SQLite file, to notice when the path no longer leads to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileIdentity {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> Option<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileIdentity {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// Whether the current user may write `path` (its permission bits allow some writer, and
/// `access(2)` agrees: root passes `access` for any file, so the bits are checked as well).
#[allow(unsafe_code)]
fn writable(path: &Path, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o222 == 0 {
        return false;
    }
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    // SAFETY: access reads a NUL-terminated path and has no other preconditions.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK) == 0 }
}

/// What opening a store may do to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Create the database and migrate its schema as needed.
    Write,
    /// Open an existing slaw database, migrate and write to it, but create nothing (workers,
    /// `slaw fit` on a sweep).
    WriteExisting,
    /// Read an existing slaw database; never write.
    Read,
}

impl Store {
    /// Opens (creating if needed) the store at `location`: a `postgres://` URL, a `sqlite:` URL,
    /// or a file path for SQLite. Runs the migrations. A file that is not SQLite, or a SQLite
    /// database of another program, is refused before anything is written to it.
    pub async fn open(location: &(impl AsLocation + ?Sized)) -> Result<Store, StoreError> {
        Self::open_as(location, Mode::Write).await
    }

    /// Opens an existing slaw store for writing (migrating its schema if it is older) without
    /// creating anything: a worker started by `slaw run` must not create a fresh database where
    /// the run's file was deleted.
    pub async fn open_existing(location: &(impl AsLocation + ?Sized)) -> Result<Store, StoreError> {
        Self::open_as(location, Mode::WriteExisting).await
    }

    /// Opens an existing store read-only (SQLite `mode=ro` with `query_only`, PostgreSQL
    /// read-only transactions): every statement that would write fails with the database's
    /// error, and nothing is created or migrated. A missing or empty database is
    /// [`StoreError::Nothing`].
    pub async fn open_read_only(
        location: &(impl AsLocation + ?Sized),
    ) -> Result<Store, StoreError> {
        Self::open_as(location, Mode::Read).await
    }

    async fn open_as(
        location: &(impl AsLocation + ?Sized),
        mode: Mode,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let location = location.location()?;
        let store = match &location {
            Location::Sqlite(path) => Self::open_sqlite(&location, path, mode).await?,
            Location::Postgres(url) => {
                let mut store =
                    Self::connect_pool(url.clone(), Backend::Postgres, mode == Mode::Read).await?;
                store.location = location.clone();
                store
            }
        };
        let version = match store.schema_version().await {
            Ok(v) => v,
            Err(e) => {
                store.close().await;
                return Err(damaged(e, &location));
            }
        };
        match version {
            None if mode == Mode::Write => {}
            None => {
                store.close().await;
                return Err(StoreError::Nothing {
                    location: location.redacted(),
                    why: "it holds no slaw tables".into(),
                });
            }
            Some(found) => {
                let known = known_schema(store.backend);
                if found > known || (found < known && mode == Mode::Read) {
                    store.close().await;
                    return Err(StoreError::Schema {
                        location: location.redacted(),
                        found,
                        known,
                    });
                }
            }
        }
        if mode != Mode::Read {
            match store.backend {
                Backend::Sqlite => {
                    // WAL lets readers (status, query) run while workers write; it persists.
                    sqlx::query("PRAGMA journal_mode = WAL")
                        .execute(&store.pool)
                        .await?;
                    SQLITE_MIGRATIONS.run(&store.pool).await?;
                }
                Backend::Postgres => POSTGRES_MIGRATIONS.run(&store.pool).await?,
            }
        }
        Ok(store)
    }

    async fn open_sqlite(
        location: &Location,
        path: &Path,
        mode: Mode,
    ) -> Result<Store, StoreError> {
        let shown = location.redacted();
        let not_slaw = |why: String| StoreError::NotSlaw {
            location: shown.clone(),
            why,
        };
        match inspect(path)? {
            FileState::Other(what) => return Err(not_slaw(format!("the file is {what}"))),
            FileState::Missing | FileState::Empty if mode != Mode::Write => {
                let why = if path.exists() {
                    "the file is empty"
                } else {
                    "there is no such file"
                };
                return Err(StoreError::Nothing {
                    location: shown,
                    why: why.into(),
                });
            }
            FileState::Missing => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Location(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                // Created here, once: the pool's connections open the file without `c`, so
                // that none of them re-creates it if it disappears under a running sweep.
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect_with(
                    &AnyConnectOptions::from_str(&url)?,
                )
                .await?;
                conn.execute("PRAGMA user_version = 0").await?;
                sqlx::Connection::close(conn).await?;
            }
            FileState::Empty | FileState::Sqlite => {}
        }
        let query_mode = if mode == Mode::Read { "ro" } else { "rw" };
        let url = format!("sqlite://{}?mode={query_mode}", path.display());
        let mut store = Self::connect_pool(url, Backend::Sqlite, mode == Mode::Read)
            .await
            .map_err(|e| damaged(e, location))?;
        store.location = location.clone();
        if mode != Mode::Read {
            store.file = FileIdentity::of(path);
        }
        Ok(store)
    }

    /// A pool on `url`. One connection is made first, outside the pool, so that an unreachable
    /// server or an unusable file is reported at once (the pool retries failed connections
    /// until its acquire timeout, a minute).
    async fn connect_pool(
        url: String,
        backend: Backend,
        read_only: bool,
    ) -> Result<Store, StoreError> {
        let options = AnyConnectOptions::from_str(&url)?;
        let first = async {
            let mut conn =
                <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await?;
            setup(&mut conn, backend, read_only).await?;
            sqlx::Connection::close(conn).await
        };
        match tokio::time::timeout(Duration::from_secs(20), first).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(StoreError::Location(
                    "the database did not answer within 20 s".into(),
                ))
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .acquire_timeout(Duration::from_secs(60))
            .after_connect(move |conn, _meta| Box::pin(setup(conn, backend, read_only)))
            .connect_lazy_with(options);
        Ok(Store {
            pool,
            backend,
            url,
            read_only,
            location: Location::Sqlite(PathBuf::new()),
            file: None,
        })
    }

    /// The user tables of the database.
    async fn tables(&self) -> Result<Vec<String>, StoreError> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            }
            Backend::Postgres => {
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema()"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    /// The schema version of slaw's tables: `None` when the database has none. A SQLite file
    /// that holds other tables but not slaw's is [`StoreError::NotSlaw`].
    async fn schema_version(&self) -> Result<Option<i64>, StoreError> {
        let tables = self.tables().await?;
        if tables.is_empty() {
            return Ok(None);
        }
        if !tables.iter().any(|t| t == "_sqlx_migrations") {
            // A PostgreSQL database is often shared by several programs: slaw's tables join
            // theirs. A SQLite file belongs to one program.
            if self.backend == Backend::Postgres {
                return Ok(None);
            }
            let mut names = tables;
            names.sort();
            names.truncate(6);
            return Err(StoreError::NotSlaw {
                location: self.location.redacted(),
                why: format!(
                    "it holds tables of another program ({}) and no slaw schema",
                    names.join(", ")
                ),
            });
        }
        let row = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// Where the store is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Checks that the SQLite file this store opened for writing is still at its path and
    /// writable: a file deleted or replaced under a running sweep would take every result
    /// written from now on with it, a read-only one would fail at the next write. `Ok` for
    /// PostgreSQL and for read-only stores.
    pub fn check_file(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let Some(id) = &self.file else {
            return Ok(());
        };
        let path = id.path.display().to_string();
        match std::fs::metadata(&id.path) {
            Err(_) => Err(StoreError::Fault(super::Fault::Gone { path })),
            Ok(m) if m.dev() != id.dev || m.ino() != id.ino => {
                Err(StoreError::Fault(super::Fault::Gone { path }))
            }
            Ok(m) if !writable(&id.path, &m) => {
                Err(StoreError::Fault(super::Fault::ReadOnly { path }))
            }
            Ok(_) => Ok(()),
        }
    }

    /// What failed under this store when a write did not go through: the file gone or
    /// read-only ([`Store::check_file`]), else its disk full (less than 64 KiB free), else
    /// `None`.
    pub fn diagnose(&self) -> Option<super::Fault> {
        if let Err(e) = self.check_file() {
            return e.fault();
        }
        let dir = self.file.as_ref()?.path.parent()?.to_path_buf();
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let free = free_bytes(&dir)?;
        (free < 64 << 10).then(|| super::Fault::Full {
            detail: format!("{free} bytes free on the disk of {}", dir.display()),
        })
    }

    /// Writes what this store's connection still holds of a SQLite database whose file was
    /// deleted or replaced to `target` (which must not exist): the committed trials, metrics
    /// and fits survive. Returns the file written.
    pub async fn rescue_to(&self, target: &Path) -> Result<PathBuf, StoreError> {
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Location(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let quoted = target.display().to_string().replace('\'', "''");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM INTO '{quoted}'")))
            .execute(&self.pool)
            .await?;
        Ok(target.to_path_buf())
    }

    /// Where a rescued copy of this store's SQLite file goes: its own path when nothing is there
    /// now, else beside it with the time in the name.
    pub fn rescue_path(&self) -> Option<PathBuf> {
        let path = self.file.as_ref().map(|f| f.path.clone())?;
        if !path.exists() {
            return Some(path);
        }
        let mut name = path.file_name()?.to_os_string();
        name.push(format!(".rescued-{}", super::now() as u64));
        Some(path.with_file_name(name))
    }
}

/// The settings of every connection.
async fn setup(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    read_only: bool,
) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            conn.execute("PRAGMA busy_timeout = 30000").await?;
            if read_only {
                conn.execute("PRAGMA query_only = ON").await?;
            } else {
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
            }
        }
        Backend::Postgres if read_only => {
            conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                .await?;
        }
        Backend::Postgres => {}
    }
    Ok(())
}

/// Bytes available to unprivileged writers on the file system of `dir`.
#[allow(unsafe_code)]
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c_path.as_ptr(), &mut s) == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
    }
}

/// A SQLite error that says the file is damaged (corrupt, not a database) as
/// [`StoreError::NotSlaw`]; other errors as they are.
fn damaged(e: StoreError, location: &Location) -> StoreError {
    match (super::sqlite_code(&e), &e) {
        (Some(11 | 26), StoreError::Sql(sqlx::Error::Database(db))) => StoreError::NotSlaw {
            location: location.redacted(),
            why: format!("the file is damaged ({})", db.message()),
        },
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_once() {
        assert_eq!(
            Location::parse("results/slaw.db").unwrap(),
            Location::Sqlite("results/slaw.db".into())
        );
        assert_eq!(
            Location::parse("sqlite://x.db?mode=ro").unwrap(),
            Location::Sqlite("x.db".into())
        );
        assert!(matches!(
            Location::parse("postgres://u:secret@h/db").unwrap(),
            Location::Postgres(_)
        ));
        assert_eq!(
            Location::parse("postgres://u:secret@h/db")
                .unwrap()
                .redacted(),
            "postgres://u:***@h/db"
        );
        assert!(Location::parse("").is_err());
        assert!(Location::parse("mysql://h/db").is_err());
    }

    #[test]
    fn files_are_inspected_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        assert_eq!(inspect(&p("none")).unwrap(), FileState::Missing);
        std::fs::write(p("empty"), b"").unwrap();
        assert_eq!(inspect(&p("empty")).unwrap(), FileState::Empty);
        std::fs::write(p("text"), b"name: sweep\n").unwrap();
        assert_eq!(
            inspect(&p("text")).unwrap(),
            FileState::Other("a text file, not SQLite".into())
        );
        std::fs::write(p("bin"), [0xffu8, 0, 1, 2, 0xfe]).unwrap();
        assert_eq!(
            inspect(&p("bin")).unwrap(),
            FileState::Other("not a SQLite file".into())
        );
        // A header for 2 pages of 4096 bytes (size field valid: counters equal).
        let mut db = SQLITE_HEADER.to_vec();
        db.extend([0u8; 84]);
        db[16..18].copy_from_slice(&4096u16.to_be_bytes());
        db[24..28].copy_from_slice(&7u32.to_be_bytes());
        db[28..32].copy_from_slice(&2u32.to_be_bytes());
        db[92..96].copy_from_slice(&7u32.to_be_bytes());
        let mut whole = db.clone();
        whole.resize(8192, 0);
        std::fs::write(p("db"), &whole).unwrap();
        assert_eq!(inspect(&p("db")).unwrap(), FileState::Sqlite);
        std::fs::write(p("cut"), &whole[..5000]).unwrap();
        assert!(
            matches!(inspect(&p("cut")).unwrap(), FileState::Other(w) if w.contains("truncated"))
        );
        assert_eq!(
            inspect(dir.path()).unwrap(),
            FileState::Other("a directory".into())
        );
    }
}
