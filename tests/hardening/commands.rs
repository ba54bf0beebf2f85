//! Command trainers cannot leave processes behind, cannot be failed by slaw's own slowness, and
//! cannot fill the database with one row.

use std::time::{Duration, Instant};

use slaw::store::TrialState;

use super::command_sweep;
use crate::common::{text, Sandbox};

/// Whether `pid` names a live process (a zombie counts as dead).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X")
    })
}

#[tokio::test]
async fn processes_a_trainer_leaves_in_a_session_of_their_own_are_killed() {
    let sb = Sandbox::new();
    let pid_dir = sb.path("pids");
    std::fs::create_dir(&pid_dir).unwrap();
    // One trial exits 0 leaving its daemon; one runs past its time limit with its daemon.
    let file = sb.write(
        "daemons.yaml",
        &command_sweep(
            "daemons",
            "[{name: clean, mode: daemon, width: 8, steps: 1, sleep: 0}, \
              {name: late, mode: daemon, width: 9, steps: 1, sleep: 60}]",
            "execution: {timeout: 3s}\n",
        ),
    );
    let out = crate::common::slaw()
        .args([
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--no-fit",
            "--jobs",
            "2",
        ])
        .arg("--db")
        .arg(sb.db())
        .env("PID_DIR", &pid_dir)
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "one trial timed out: {}",
        text(&out)
    );
    let daemons: Vec<i32> = std::fs::read_dir(&pid_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with("-daemon.pid"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(daemons.len(), 2, "{daemons:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemons.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "daemons outlived their trials: {daemons:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_flood_of_points_is_stored_and_not_timed_out() {
    let sb = Sandbox::new();
    let file = sb.write(
        "flood.yaml",
        &command_sweep(
            "flood",
            "[{name: f, mode: flood, width: 8, steps: 200000, sleep: 0}]",
            "execution: {timeout: 12s}\n",
        ),
    );
    // The program writes 200 000 points into $SLAW_METRICS and exits in a fraction of a second;
    // its time limit (12 s) and its worker's lease (20 s) must both survive slaw reading and
    // storing them (slaw used to take 26 s to read such a file, and then stored 3 500 points
    // per second).
    let out = sb.run(&[
        "run",
        file.to_str().unwrap(),
        "--no-progress",
        "--no-fit",
        "--lease-seconds",
        "20",
        "--heartbeat-seconds",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = sb.trials("flood").await;
    assert_eq!(
        trials[0].state,
        TrialState::Completed,
        "{:?}",
        trials[0].error
    );
    let store = sb.store().await;
    let points = store.metrics(trials[0].id).await.unwrap();
    store.close().await;
    assert_eq!(points.len(), 200_000);
    assert_eq!(points.last().unwrap().val_loss, Some(0.5));
}

#[tokio::test]
async fn oversized_further_metrics_are_not_stored_and_the_log_says_so() {
    let sb = Sandbox::new();
    let file = sb.write(
        "big.yaml",
        &command_sweep(
            "big",
            "[{name: b, mode: big, width: 8, steps: 1, sleep: 0}]",
            "",
        ),
    );
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress", "--no-fit"]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = sb.trials("big").await;
    let store = sb.store().await;
    let points = store.metrics(trials[0].id).await.unwrap();
    let log = store.logs(trials[0].id, 100).await.unwrap();
    let extra = store
        .read_query(
            "SELECT step, length(extra) FROM metrics ORDER BY step",
            Default::default(),
        )
        .await
        .unwrap();
    store.close().await;
    assert_eq!(points.len(), 2);
    assert_eq!(points[0].val_loss, Some(1.0), "the point itself is kept");
    assert_eq!(extra.rows[0][1], slaw::store::Value::Null, "{extra:?}");
    assert_ne!(
        extra.rows[1][1],
        slaw::store::Value::Null,
        "a small one is kept"
    );
    assert!(
        log.iter().any(|l| l.stream == "slaw"
            && l.line.contains("step 1")
            && l.line.contains("not stored")),
        "{log:?}"
    );
}
