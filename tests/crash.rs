//! Crash safety with real processes and a real SQLite file: `kill -9` of `slaw run` in the
//! middle of a sweep, and of a worker holding a trial. A second run must finish the sweep with
//! every trial completed exactly once, without running a finished trial again.

use std::time::{Duration, Instant};

use crate::common::{kill9, synthetic_sweep, text, Sandbox};

/// How long a test waits for the store to reach a state.
const WAIT: Duration = Duration::from_secs(120);

/// A sweep of 12 trials that take about a second each on one core.
fn slow_sweep(name: &str) -> String {
    synthetic_sweep(name, "[0.003, 0.01, 0.03]", "[20, 40]")
        .replace("train: 512,", "train: 2048,")
        .replace("{name: b, width: 24}", "{name: b, width: 64}")
}

#[tokio::test]
async fn kill_9_of_slaw_run_then_rerun_completes_every_trial_exactly_once() {
    let sb = Sandbox::new();
    let file = sb.write("k.yaml", &slow_sweep("k"));
    let file = file.to_str().unwrap();
    let mut run = sb.spawn(&["run", file, "--no-progress"], &[]);
    sb.wait_for(
        "k",
        "two completed trials and one running",
        WAIT,
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
    let mut first = sb.spawn(&["run", file, "--no-progress"], &[]);
    sb.wait_for("w", "the sweep to start", WAIT, |_, running| running >= 1)
        .await;
    kill9(&mut first);
    // The orphaned worker gets SIGTERM from the kernel and marks its trial interrupted.
    sb.wait_for("w", "the orphaned worker to let go", WAIT, |_, running| {
        running == 0
    })
    .await;

    let mut worker = sb.spawn(&["worker", "--sweep", "w", "--quiet"], &[]);
    sb.wait_for("w", "the worker to hold a trial", WAIT, |_, running| {
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
