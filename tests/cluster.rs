//! slaw beyond one machine, with the real components: `slaw worker` processes sharing a
//! SQLite file or a PostgreSQL database, a worker killed with `kill -9` whose lease expires,
//! and a sweep run as a Slurm job array with one task cancelled (`scancel`) midway.
//!
//! PostgreSQL tests need `SLAW_TEST_POSTGRES` (a URL whose role may create databases) and
//! Slurm tests `SLAW_TEST_SLURM=1` with a running cluster: `scripts/start_services.sh` starts
//! both on this machine and prints the variables. Without them the tests print a notice and
//! pass, unless `SLAW_REQUIRE_SERVICES=1` (CI), where they fail.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{kill9, slaw, text};
use slaw::store::scratch::{notice, services_required, ScratchDb, REQUIRE_VAR};
use slaw::store::{now, Backend, Store, TrialRow};

/// A database of `backend` with a temporary directory for sweep files and logs.
struct Cluster {
    db: ScratchDb,
    dir: tempfile::TempDir,
}

impl Cluster {
    async fn new(backend: Backend, label: &str) -> Option<Cluster> {
        Some(Cluster {
            db: ScratchDb::new(backend, label).await?,
            dir: tempfile::tempdir().expect("temp dir"),
        })
    }

    async fn store(&self) -> Store {
        Store::open(&self.db.url).await.expect("open store")
    }

    /// Registers the sweep `yaml` without running it (`slaw run --executor none`).
    async fn register(&self, yaml: &str) -> String {
        let spec = slaw::spec::parse(yaml, "sweep.yaml").expect("valid sweep");
        let file = self.write(&format!("{}.yaml", spec.name), yaml);
        let out = slaw()
            .args(["run", &file, "--db", &self.db.url, "--executor", "none"])
            .current_dir(self.dir.path())
            .output()
            .expect("slaw run --executor none");
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("registered in"), "{stdout}");
        assert!(
            !stdout.contains(":slaw@"),
            "the password is printed: {stdout}"
        );
        spec.name
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }

    /// `slaw worker` against this database.
    fn worker(&self, sweep: &str, host: &str, extra: &[&str]) -> Child {
        slaw()
            .args(["worker", "--db", &self.db.url, "--sweep", sweep, "--quiet"])
            .args(extra)
            .env("SLAW_HOSTNAME", host)
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start slaw worker")
    }

    /// The trials of `sweep` (none while it is not registered yet).
    async fn trials(&self, sweep: &str) -> Vec<TrialRow> {
        let store = self.store().await;
        let t = match store.sweep(sweep).await {
            Ok(s) => store.trials(s.id).await.expect("trials"),
            Err(_) => Vec::new(),
        };
        store.close().await;
        t
    }

    /// The events of every trial: (key, [(event, worker, at, detail)]).
    async fn events(&self, sweep: &str) -> Vec<(String, Vec<slaw::store::EventRow>)> {
        let store = self.store().await;
        let s = store.sweep(sweep).await.expect("sweep");
        let mut out = Vec::new();
        for t in store.trials(s.id).await.expect("trials") {
            out.push((t.key.clone(), store.events(t.id).await.expect("events")));
        }
        store.close().await;
        out
    }

    /// Polls the trials until `pred` holds (at most `secs`).
    async fn wait_for(
        &self,
        sweep: &str,
        what: &str,
        secs: u64,
        pred: impl Fn(&[TrialRow]) -> bool,
    ) -> Vec<TrialRow> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let trials = self.trials(sweep).await;
            if pred(&trials) {
                return trials;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: {:#?}",
                    trials
                        .iter()
                        .map(|t| (&t.key, t.state, t.attempts, &t.worker, &t.slurm_job))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn running(t: &[TrialRow]) -> Vec<&TrialRow> {
    t.iter().filter(|t| t.state.as_str() == "running").collect()
}

/// A synthetic sweep of `sizes × lrs × seeds` trials of `epochs` epochs (about 20 ms per epoch
/// at width 64 on one core).
fn sweep(name: &str, epochs: u32, lrs: &str, seeds: usize, extra: &str) -> String {
    let seeds: Vec<String> = (0..seeds).map(|s| s.to_string()).collect();
    format!(
        "name: {name}
data: {{dataset: synthetic, side: 6, classes: 3, train: 2048, validation: 128, teacher_width: 16, seed: 1}}
model:
  family: mlp
  depth: 1
  sizes: [{{name: a, width: 16}}, {{name: b, width: 64}}]
train:
  epochs: [{epochs}]
  lr: {{values: {lrs}}}
  seeds: [{}]
  batch_size: 32
eval: {{points: 3}}
retries: {{failed: 1, diverged: 0, interrupted: 3}}
{extra}",
        seeds.join(", ")
    )
}

/// Every trial completed, each by exactly one attempt that completed.
async fn assert_each_completed_exactly_once(c: &Cluster, sweep: &str, n: usize) {
    let trials = c.trials(sweep).await;
    assert_eq!(trials.len(), n);
    assert!(
        trials.iter().all(|t| t.state.as_str() == "completed"),
        "{:#?}",
        trials
            .iter()
            .map(|t| (&t.key, t.state, &t.error))
            .collect::<Vec<_>>()
    );
    for (key, events) in c.events(sweep).await {
        let completed = events.iter().filter(|e| e.event == "completed").count();
        assert_eq!(completed, 1, "trial {key}: {events:#?}");
        assert_eq!(
            events.last().map(|e| e.event.as_str()),
            Some("completed"),
            "trial {key}: nothing after its completion: {events:#?}"
        );
    }
}

async fn eight_workers(backend: Backend, label: &str) {
    let Some(c) = Cluster::new(backend, label).await else {
        return;
    };
    // 2 sizes × 3 rates × 8 seeds = 48 short trials.
    let name = c
        .register(&sweep("eight", 2, "[0.003, 0.01, 0.03]", 8, ""))
        .await;
    let started = Instant::now();
    let mut workers: Vec<Child> = (0..8)
        .map(|i| c.worker(&name, &format!("node-{i}"), &[]))
        .collect();
    for w in &mut workers {
        let out = w.wait().expect("worker");
        assert!(out.success(), "a worker failed: {out:?}");
    }
    eprintln!(
        "{label}: 8 workers ran 48 trials in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_each_completed_exactly_once(&c, &name, 48).await;
    let trials = c.trials(&name).await;
    for t in &trials {
        assert_eq!(t.attempts, 1, "trial {}", t.key);
    }
    let workers: std::collections::HashSet<_> = trials.iter().map(|t| t.worker.clone()).collect();
    assert!(workers.len() > 1, "one worker did everything: {workers:?}");
}

#[tokio::test]
async fn eight_concurrent_workers_complete_every_trial_exactly_once_on_sqlite() {
    eight_workers(Backend::Sqlite, "eight_workers_sqlite").await;
}

#[tokio::test]
async fn eight_concurrent_workers_complete_every_trial_exactly_once_on_postgres() {
    eight_workers(Backend::Postgres, "eight_workers_postgres").await;
}

async fn lease_expiry(backend: Backend, label: &str) {
    let Some(c) = Cluster::new(backend, label).await else {
        return;
    };
    // One trial of about 8 s.
    let one = sweep("lease", 400, "[0.01]", 1, "").replace("{name: a, width: 16}, ", "");
    let name = c.register(&one).await;
    let name = name.as_str();
    let lease = ["--lease-seconds", "4", "--heartbeat-seconds", "1"];
    // Workers on two "machines": the dead one's process cannot be checked from the other,
    // only its lease can expire.
    let mut a = c.worker(name, "node-a", &lease);
    let held = c
        .wait_for(name, "worker A to heartbeat its trial", 60, |t| {
            running(t)
                .first()
                .is_some_and(|r| r.progress_step.unwrap_or(0) > 0)
        })
        .await;
    let key = running(&held)[0].key.clone();
    kill9(&mut a);
    let killed_at = now();
    let mut args = lease.to_vec();
    args.push("--linger");
    let mut b = c.worker(name, "node-b", &args);
    let status = b.wait().expect("worker B");
    assert!(status.success(), "worker B: {status:?}");
    let done_at = now();
    assert_each_completed_exactly_once(&c, name, 1).await;
    let trial = c.trials(name).await.remove(0);
    assert_eq!(trial.key, key);
    assert_eq!(trial.attempts, 2, "the killed attempt counts");
    assert!(trial.worker.as_deref().unwrap_or("").starts_with("node-b:"));
    let (_, events) = c.events(name).await.remove(0);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        vec!["claimed", "lease_expired", "claimed", "completed"],
        "{events:#?}"
    );
    let expired = &events[1];
    assert!(expired
        .worker
        .as_deref()
        .unwrap_or("")
        .starts_with("node-a:"));
    let detail = expired.detail.clone().unwrap_or_default();
    assert!(detail.contains("lease expired"), "{detail}");
    // The lease ran out 4 s after the last heartbeat (at most 1 s before the kill); B, which
    // polls every heartbeat interval (1 s), took the trial back within a poll of that.
    let after_kill = expired.at - killed_at;
    assert!(
        (2.5..=6.5).contains(&after_kill),
        "taken back {after_kill:.2} s after the kill"
    );
    let reclaimed = events[2].at - expired.at;
    assert!(reclaimed < 1.0, "claimed again {reclaimed:.2} s after");
    eprintln!(
        "{label}: lease 4 s, heartbeat 1 s: taken back {after_kill:.2} s after kill -9 ({detail}); \
         claimed again {reclaimed:.3} s later; completed {:.1} s after the kill",
        done_at - killed_at
    );
}

#[tokio::test]
async fn a_worker_killed_holding_a_lease_loses_it_at_expiry_on_sqlite() {
    lease_expiry(Backend::Sqlite, "lease_expiry_sqlite").await;
}

#[tokio::test]
async fn a_worker_killed_holding_a_lease_loses_it_at_expiry_on_postgres() {
    lease_expiry(Backend::Postgres, "lease_expiry_postgres").await;
}

/// Whether the Slurm tests can run (a notice when not; a failure when required).
fn slurm_available(label: &str) -> bool {
    if std::env::var("SLAW_TEST_SLURM").is_ok_and(|v| v == "1") {
        return true;
    }
    if services_required() {
        panic!(
            "{label}: {REQUIRE_VAR}=1 but SLAW_TEST_SLURM is not set: run scripts/start_services.sh"
        );
    }
    notice(&format!(
        "{label}: skipped: SLAW_TEST_SLURM is not set (scripts/start_services.sh)"
    ));
    false
}

/// Ends a `slaw run` and cancels its job arrays if a test stops early.
struct RunGuard {
    child: Child,
    job_name: String,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill9(&mut self.child);
        }
        let _ = Command::new("scancel")
            .args(["--name", &self.job_name])
            .status();
    }
}

fn squeue(name: &str) -> String {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i|%T", "--name", name])
        .output()
        .expect("squeue");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_slurm_job_array_with_a_cancelled_task_completes_every_trial_exactly_once() {
    let label = "slurm_scancel";
    if !slurm_available(label) {
        return;
    }
    let Some(c) = Cluster::new(Backend::Postgres, label).await else {
        return;
    };
    // 12 trials of 1 to 3 s; 2 tasks at once, one trial per task: 12 tasks.
    let name = format!("slurm-{}", std::process::id());
    let yaml = sweep(
        &name,
        120,
        "[0.003, 0.01, 0.03]",
        2,
        "slurm:\n  cpus: 1\n  mem: 500M\n  time: \"10:00\"\n  max_parallel: 2\n  trials_per_task: 1\n",
    );
    let file = c.write("slurm.yaml", &yaml);
    let log = c.dir.path().join("run.log");
    let child = slaw()
        .args([
            "run",
            &file,
            "--db",
            &c.db.url,
            "--executor",
            "slurm",
            "--heartbeat-seconds",
            "0.5",
            "--no-progress",
            "--no-fit",
        ])
        .current_dir(c.dir.path())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("slaw run --executor slurm");
    let mut guard = RunGuard {
        child,
        job_name: format!("slaw-{name}"),
    };
    let run = &mut guard.child;

    // Midway (two trials done), cancel the array task of a trial that is training.
    let trials = c
        .wait_for(&name, "two completed trials and one training", 120, |t| {
            t.iter().filter(|t| t.state.as_str() == "completed").count() >= 2
                && running(t)
                    .iter()
                    .any(|r| r.slurm_job.is_some() && r.progress_step.unwrap_or(0) > 0)
        })
        .await;
    let victim = running(&trials)
        .into_iter()
        .find(|r| r.slurm_job.is_some() && r.progress_step.unwrap_or(0) > 0)
        .cloned()
        .expect("a training trial");
    let task = victim.slurm_job.clone().expect("its task");
    let before = squeue(&format!("slaw-{name}"));
    let cancelled_at = now();
    let out = Command::new("scancel")
        .arg(&task)
        .output()
        .expect("scancel");
    assert!(out.status.success(), "scancel {task}: {out:?}");
    eprintln!(
        "{label}: cancelled task {task} holding trial {} at step {}; queue was:\n{before}",
        victim.key,
        victim.progress_step.unwrap_or(0)
    );

    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = run.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            panic!(
                "slaw run did not finish:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status:?}\n{output}");
    assert!(output.contains("submitted job array"), "{output}");
    assert_each_completed_exactly_once(&c, &name, 12).await;

    // The cancelled attempt was given up (interrupted by SIGTERM, or taken back when its task
    // left the queue) and the trial ran again in another task.
    let (_, events) = c
        .events(&name)
        .await
        .into_iter()
        .find(|(k, _)| *k == victim.key)
        .expect("the victim's events");
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    eprintln!(
        "{label}: the cancelled trial's events: {names:?}; given up {:.2} s after scancel, \
         claimed again {:.2} s after scancel\nslaw run printed:\n{output}",
        events[1].at - cancelled_at,
        events[2].at - cancelled_at
    );
    assert!(
        names == ["claimed", "interrupted", "claimed", "completed"]
            || names == ["claimed", "lease_expired", "claimed", "completed"],
        "{events:#?}"
    );
    let first = events[0].worker.clone().unwrap_or_default();
    let last = events[2].worker.clone().unwrap_or_default();
    assert!(first.starts_with(&format!("slurm:{task}@")), "{first}");
    assert!(last.starts_with("slurm:") && last != first, "{last}");
    let after = c
        .trials(&name)
        .await
        .into_iter()
        .find(|t| t.key == victim.key)
        .expect("victim");
    assert_ne!(after.slurm_job.as_deref(), Some(task.as_str()));

    // `slaw status` names the job arrays.
    let store = c.store().await;
    let sweep_row = store.sweep(&name).await.expect("sweep");
    let jobs = store.slurm_jobs(sweep_row.id).await.expect("jobs");
    store.close().await;
    assert!(!jobs.is_empty());
    assert!(jobs.iter().all(|j| j.state == "ended"), "{jobs:#?}");
    let out = slaw()
        .args(["status", "--db", &c.db.url, "--sweep", &name])
        .output()
        .expect("status");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shown.contains(&format!(
            "slurm jobs: {} (12 tasks %2, ended)",
            jobs[0].job_id
        )),
        "{shown}"
    );
    assert!(squeue(&format!("slaw-{name}")).trim().is_empty());
}

#[tokio::test]
async fn slurm_refusals_are_reported_and_detach_returns_at_once() {
    let label = "slurm_detach";
    if !slurm_available(label) {
        return;
    }
    let Some(c) = Cluster::new(Backend::Postgres, label).await else {
        return;
    };
    let name = format!("detach-{}", std::process::id());
    let run = |yaml: &str, extra: &[&str]| {
        let file = c.write("d.yaml", yaml);
        slaw()
            .args([
                "run",
                &file,
                "--db",
                &c.db.url,
                "--executor",
                "slurm",
                "--no-progress",
            ])
            .args(extra)
            .current_dir(c.dir.path())
            .output()
            .expect("slaw run")
    };
    // sbatch's own refusal reaches the user, and nothing is recorded as submitted.
    let bad = sweep(
        &name,
        2,
        "[0.01]",
        1,
        "slurm: {partition: no-such-partition}\n",
    );
    let out = run(&bad, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sbatch failed") && err.contains("partition"),
        "{}",
        text(&out)
    );
    // --device is the local executor's: invalid input.
    let out = run(&sweep(&name, 2, "[0.01]", 1, ""), &["--device", "cuda"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("for the local executor"));

    // --detach submits and returns; the tasks run on their own; status names the job.
    let guard = RunGuard {
        child: Command::new("true").spawn().expect("true"),
        job_name: format!("slaw-{name}"),
    };
    let out = run(&sweep(&name, 2, "[0.01]", 1, ""), &["--detach"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("submitted job array"), "{stdout}");
    c.wait_for(&name, "the detached tasks to finish the sweep", 120, |t| {
        t.len() == 2 && t.iter().all(|t| t.state.as_str() == "completed")
    })
    .await;
    let out = slaw()
        .args(["status", "--db", &c.db.url, "--sweep", &name])
        .output()
        .expect("status");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("slurm jobs: ") && shown.contains("(2 tasks, submitted)"),
        "{shown}"
    );
    drop(guard);
}

#[tokio::test]
async fn every_command_works_on_postgres() {
    let Some(c) = Cluster::new(Backend::Postgres, "every_command_postgres").await else {
        return;
    };
    let url = c.db.url.clone();
    let run = |args: &[&str]| {
        let out = slaw()
            .args(args)
            .env("SLAW_DB", &url) // SLAW_DB instead of --db
            .current_dir(c.dir.path())
            .output()
            .expect("slaw");
        assert!(out.status.success(), "slaw {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let file = c.write("p.yaml", &sweep("pg", 2, "[0.003, 0.01, 0.03]", 1, ""));
    let out = run(&["run", &file, "--jobs", "2", "--no-progress"]);
    assert!(
        out.contains("6 completed") && out.contains("stored as fits"),
        "{out}"
    );
    assert!(out.contains("postgres://slaw:***@"), "{out}");
    let status: serde_json::Value =
        serde_json::from_str(&run(&["status", "--json"])).expect("status json");
    assert_eq!(status[0]["counts"]["completed"], 6);
    let out = run(&["fit", "--bootstrap", "20", "--method", "frontier"]);
    assert!(out.contains("stored as fits"), "{out}");
    let out = run(&["predict", "--params", "3k", "--epochs", "2"]);
    assert!(out.contains("prediction at N = 3k"), "{out}");
    // PostgreSQL's numeric (sum of bigint, round) and timestamps come back.
    let out = run(&[
        "query",
        "--format",
        "csv",
        "SELECT size, sum(params) AS p, round(min(val_loss)::numeric, 2) AS best, \
                to_timestamp(0) AT TIME ZONE 'UTC' AS t FROM results GROUP BY size ORDER BY size",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "size,p,best,t", "{out}");
    assert!(
        lines[1].starts_with("a,1929,") && lines[1].ends_with(",1970-01-01 00:00:00"),
        "{out}"
    );
    let key = run(&["query", "--format", "csv", "SELECT key FROM trials LIMIT 1"]);
    let key = key.lines().nth(1).expect("a key").to_string();
    assert!(run(&["show", &key[..8]]).contains(&format!("trial {key}")));
    let export = c.dir.path().join("export");
    run(&[
        "export",
        "--format",
        "csv",
        "--out",
        export.to_str().expect("utf-8"),
    ]);
    let trials = std::fs::read_to_string(export.join("trials.csv")).expect("trials.csv");
    assert_eq!(trials.lines().count(), 7);
    let report = c.dir.path().join("r.html");
    run(&["report", "--out", report.to_str().expect("utf-8")]);
    assert!(std::fs::metadata(&report).expect("report").len() > 10_000);
}
