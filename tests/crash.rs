//! Crash safety with real processes and a real SQLite file: `kill -9` of `slaw run` in the
//! middle of a sweep, and of a worker holding a trial. A second run must finish the sweep with
//! every trial completed exactly once, without running a finished trial again.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{slaw, synthetic_sweep, text, Sandbox};

/// A sweep of 12 trials that take about a second each on one core.
fn slow_sweep(name: &str) -> String {
    synthetic_sweep(name, "[0.003, 0.01, 0.03]", "[20, 40]")
        .replace("train: 512,", "train: 2048,")
        .replace("{name: b, width: 24}", "{name: b, width: 64}")
}

fn start(sb: &Sandbox, args: &[&str]) -> Child {
    slaw()
        .args(args)
        .arg("--db")
        .arg(sb.db())
        .current_dir(sb.dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start slaw")
}

fn kill9(child: &mut Child) {
    // SAFETY: SIGKILL to a child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
}

/// Polls the store until `pred(completed, running)` holds.
async fn wait_for(sb: &Sandbox, sweep: &str, what: &str, pred: impl Fn(usize, usize) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if sb.path("slaw.db").exists() {
            let store = sb.store().await;
            if let Ok(s) = store.sweep(sweep).await {
                let c = store.counts(s.id).await.unwrap();
                store.close().await;
                if pred(c.completed, c.running) {
                    return;
                }
            } else {
                store.close().await;
            }
        }
        if Instant::now() > deadline {
            let trials = sb.trials(sweep).await;
            let ps = std::process::Command::new("ps")
                .arg("-ef")
                .output()
                .unwrap();
            panic!(
                "timed out waiting for {what}: {:#?}\n{}",
                trials
                    .iter()
                    .map(|t| (
                        t.key.clone(),
                        t.state,
                        t.attempts,
                        t.worker.clone(),
                        t.error.clone()
                    ))
                    .collect::<Vec<_>>(),
                String::from_utf8_lossy(&ps.stdout)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn kill_9_of_slaw_run_then_rerun_completes_every_trial_exactly_once() {
    let sb = Sandbox::new();
    let file = sb.write("k.yaml", &slow_sweep("k"));
    let file = file.to_str().unwrap();
    let mut run = start(&sb, &["run", file, "--no-progress"]);
    wait_for(
        &sb,
        "k",
        "two completed trials and one running",
        |done, running| done >= 2 && running >= 1,
    )
    .await;
    kill9(&mut run);

    // Trials finished before the kill.
    let before: Vec<String> = sb
        .trials("k")
        .await
        .into_iter()
        .filter(|t| t.state.as_str() == "completed")
        .map(|t| t.key)
        .collect();
    assert!(before.len() >= 2 && before.len() < 12, "{before:?}");

    let out = sb.run(&["run", file, "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = sb.trials("k").await;
    assert_eq!(trials.len(), 12);
    assert!(
        trials.iter().all(|t| t.state.as_str() == "completed"),
        "{trials:#?}"
    );
    for (key, events) in sb.events("k").await {
        let completions = events.iter().filter(|e| *e == "completed").count();
        assert_eq!(completions, 1, "trial {key}: {events:?}");
        if before.contains(&key) {
            assert_eq!(
                events,
                vec!["claimed", "completed"],
                "finished trial {key} ran again"
            );
        }
    }
}

#[tokio::test]
async fn a_killed_worker_loses_its_trial_to_the_next_run() {
    let sb = Sandbox::new();
    let file = sb.write("w.yaml", &slow_sweep("w"));
    let file = file.to_str().unwrap();
    // A first run, killed early, registers the sweep.
    let mut first = start(&sb, &["run", file, "--no-progress"]);
    wait_for(&sb, "w", "the sweep to start", |_, running| running >= 1).await;
    kill9(&mut first);
    // The orphaned worker gets SIGTERM from the kernel and marks its trial interrupted.
    wait_for(&sb, "w", "the orphaned worker to let go", |_, running| {
        running == 0
    })
    .await;

    let mut worker = start(&sb, &["worker", "--sweep", "w", "--quiet"]);
    wait_for(&sb, "w", "the worker to hold a trial", |_, running| {
        running == 1
    })
    .await;
    let held = sb
        .trials("w")
        .await
        .into_iter()
        .find(|t| t.state.as_str() == "running")
        .expect("a running trial");
    kill9(&mut worker);

    // The dead worker's trial is still marked running; the next run takes it back at once
    // (the worker's process is gone) rather than after the 60 s lease.
    let started = Instant::now();
    let out = sb.run(&["run", file, "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited for the lease"
    );
    let trials = sb.trials("w").await;
    assert!(trials.iter().all(|t| t.state.as_str() == "completed"));
    let events = sb.events("w").await;
    let (_, held_events) = events.iter().find(|(k, _)| *k == held.key).unwrap();
    assert!(
        held_events.contains(&"lease_expired".to_string()),
        "{held_events:?}"
    );
    assert_eq!(held_events.iter().filter(|e| *e == "completed").count(), 1);
    let after = trials.iter().find(|t| t.key == held.key).unwrap();
    assert_eq!(
        after.attempts, 2,
        "the killed attempt counts, the clean interrupt does not"
    );
}
