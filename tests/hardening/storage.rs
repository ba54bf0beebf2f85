//! The storage under a running sweep fails: the database file is deleted (with its directory),
//! made read-only, or its disk fills. In each case `slaw run` stops with a clear error and a
//! non-zero exit, never claims to have stored anything it did not, and what was committed
//! before stays committed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slaw::store::scratch::{notice, services_required};
use slaw::store::{Store, TrialState};

use super::command_sweep;
use crate::common::{slaw, Sandbox};

/// A sweep of `trials` command trials of about a second each.
fn slow_sweep(sb: &Sandbox, name: &str, trials: usize, steps: usize) -> PathBuf {
    let sizes: Vec<String> = (0..trials)
        .map(|i| {
            format!(
                "{{name: s{i}, mode: slow, width: {}, steps: {steps}, sleep: 0.1}}",
                8 + i
            )
        })
        .collect();
    sb.write(
        &format!("{name}.yaml"),
        &command_sweep(name, &format!("[{}]", sizes.join(", ")), ""),
    )
}

/// Starts `slaw run FILE --db DB` with its output captured.
fn start_run(sb: &Sandbox, file: &Path, db: &Path) -> Child {
    slaw()
        .args([
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--heartbeat-seconds",
            "0.5",
        ])
        .arg("--db")
        .arg(db)
        .current_dir(sb.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start slaw run")
}

/// Completed trials in the database at `db` (read-only).
async fn completed(db: &Path) -> usize {
    let Ok(store) = Store::open_read_only(&db.display().to_string()).await else {
        return 0;
    };
    let n = match store.sweeps().await {
        Ok(sweeps) => {
            let mut n = 0;
            for s in sweeps {
                n += store.counts(s.id).await.map_or(0, |c| c.completed);
            }
            n
        }
        Err(_) => 0,
    };
    store.close().await;
    n
}

async fn wait_completed(db: &Path, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while completed(db).await < at_least {
        assert!(Instant::now() < deadline, "no trial completed in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the run to end (at most two minutes); its exit code and output.
fn finish(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let all = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code(), all);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("slaw run did not stop");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_database_deleted_under_a_run_stops_it_and_is_written_back() {
    let sb = Sandbox::new();
    let file = slow_sweep(&sb, "deleted", 12, 10);
    let results = sb.path("results");
    let db = results.join("slaw.db");
    let child = start_run(&sb, &file, &db);
    wait_completed(&db, 2).await;
    std::fs::remove_dir_all(&results).unwrap();
    let (code, out) = finish(child);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("disappeared while slaw was using it"), "{out}");
    assert!(out.contains("written back to"), "{out}");
    assert!(!out.contains("stored as fits"), "{out}");
    // What was committed is back at its path.
    assert!(completed(&db).await >= 2, "{out}");
    let store = Store::open(&db.display().to_string()).await.unwrap();
    let sweep = store.sweep("deleted").await.unwrap();
    let trials = store.trials(sweep.id).await.unwrap();
    assert_eq!(trials.len(), 12);
    store.close().await;
}

#[tokio::test]
async fn a_database_made_read_only_under_a_run_stops_it() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let file = slow_sweep(&sb, "readonly", 12, 10);
    let db = sb.path("slaw.db");
    let child = start_run(&sb, &file, &db);
    wait_completed(&db, 2).await;
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let (code, out) = finish(child);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("became read-only"), "{out}");
    assert!(
        out.contains("what was committed before stays committed"),
        "{out}"
    );
    assert!(completed(&db).await >= 2);
}

/// A tmpfs of `kib` KiB mounted for the test (root only), unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(kib: usize) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // SAFETY: geteuid has no preconditions.
            #[allow(unsafe_code)]
            let root = unsafe { libc::geteuid() } == 0;
            let why = "cannot mount a small tmpfs (needs root)";
            if root && services_required() {
                panic!("{why}, and this test runs as root");
            }
            notice(&format!("a_full_disk_stops_the_run: skipped: {why}"));
            return None;
        }
        Some(SmallDisk { dir })
    }

    /// Fills the disk: a file that grows until the disk refuses.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.path().join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_stops_the_run_and_keeps_what_was_committed() {
    let Some(disk) = SmallDisk::mount(4096) else {
        return;
    };
    let sb = Sandbox::new();
    // Trials that write thousands of points each: every trial needs fresh space.
    let sizes: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "{{name: f{i}, mode: flood, width: {}, steps: 3000, sleep: 0}}",
                8 + i
            )
        })
        .collect();
    let file = sb.write(
        "full.yaml",
        &command_sweep("full", &format!("[{}]", sizes.join(", ")), ""),
    );
    let db = disk.dir.path().join("slaw.db");
    let child = start_run(&sb, &file, &db);
    wait_completed(&db, 1).await;
    disk.fill();
    let (code, out) = finish(child);
    disk.free();
    assert_eq!(code, Some(1), "{out}");
    // The run itself says so (not only a worker's line) and stops at once, without starting
    // more workers into the full disk.
    assert!(out.contains("slaw: the database's disk is full"), "{out}");
    assert!(!out.contains("worker processes in a row"), "{out}");
    assert!(!out.contains("stored as fits"), "{out}");
    // Committed trials are intact, and the database is sound.
    if let Err(e) = Store::open_read_only(&db.display().to_string()).await {
        panic!("{e}\n{out}");
    }
    assert!(completed(&db).await >= 1, "{out}");
    let store = Store::open_read_only(&db.display().to_string())
        .await
        .unwrap();
    let check = store
        .read_query("SELECT COUNT(*) FROM trials", Default::default())
        .await
        .unwrap();
    assert_eq!(check.rows[0][0], slaw::store::Value::Int(12));
    let sweep = store.sweep("full").await.unwrap();
    for t in store.trials(sweep.id).await.unwrap() {
        if t.state == TrialState::Completed {
            assert_eq!(store.metrics(t.id).await.unwrap().len(), 3000, "{}", t.key);
        }
    }
    store.close().await;
    drop(disk);
}
