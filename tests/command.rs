//! Command trainers (`trainer: command`) with real processes: a python3 script
//! (tests/fixtures/command/trainer.py, using examples/slaw_report.py) run by the real `slaw`
//! binary against a real SQLite file. Templating reaches the program verbatim, the protocol
//! survives malformed output, crashes, hangs and endless runs are ended and recorded, and a
//! `kill -9` of `slaw run` or of a worker leaves no script behind and loses no trial.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{kill9, repo, slaw, text, Sandbox};
use slaw::store::TrialState;

/// How long a test waits for the store to reach a state.
const WAIT: Duration = Duration::from_secs(60);

fn script() -> String {
    repo()
        .join("tests/fixtures/command/trainer.py")
        .display()
        .to_string()
}

/// Whether `pid` names a live process (a zombie counts as dead).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// The pids the fixture wrote into `dir`, by file name.
fn pids(dir: &Path) -> Vec<(String, i32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let pid = std::fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((name, pid))
        })
        .collect()
}

/// Waits until none of the pids in `dir` is alive.
fn all_dead_soon(dir: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let living: Vec<_> = pids(dir).into_iter().filter(|(_, p)| alive(*p)).collect();
        if living.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("{what}: scripts still running: {living:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_command_sweep_records_its_protocol_and_is_fitted() {
    let sb = Sandbox::new();
    let file = sb.write(
        "cmd.yaml",
        &format!(
            "name: cmd
trainer: command
command: [python3, {}, --mode, normal, --width, '{{model.width}}', --lr, '{{lr}}',
          --epochs, '{{epochs}}', --steps, '6']
model:
  sizes: [{{name: a, width: 4}}, {{name: b, width: 16}}, {{name: c, width: 64}}]
train:
  epochs: [1, 2]
  lr: {{values: [0.005, 0.01, 0.02, 1.0]}}
  batch_size: 10
execution: {{heartbeat_timeout: 30}}
retries: {{failed: 0}}
",
            script()
        ),
    );
    let out = sb.run(&[
        "run",
        file.to_str().unwrap(),
        "--jobs",
        "2",
        "--no-progress",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = sb.trials("cmd").await;
    assert_eq!(trials.len(), 24);
    for t in &trials {
        if t.lr == 1.0 {
            // NaN, then a 60 s sleep: slaw ends the script at once.
            assert_eq!(t.state, TrialState::Diverged, "{t:#?}");
            assert!(t
                .error
                .as_deref()
                .unwrap()
                .contains("non-finite train_loss"));
            assert!(t.wall_seconds.unwrap() < 20.0, "{t:#?}");
        } else {
            assert_eq!(t.state, TrialState::Completed, "{t:#?}");
        }
    }
    // Costs reported by the script replace the plan's unknowns: C = 6·N·D.
    let t = trials
        .iter()
        .find(|t| t.size_name == "b" && t.state == TrialState::Completed)
        .unwrap();
    assert_eq!(t.params, 800 * 16);
    assert_eq!(t.params_measured, Some(800 * 16));
    assert_eq!(t.flops_per_example, 6.0 * 800.0 * 16.0);
    assert_eq!((t.examples, t.steps, t.final_step), (60, 6, Some(6)));
    assert_eq!(t.flops, t.flops_per_example * 60.0);
    assert!(t.final_val_loss.is_some() && t.best_val_loss.is_some());

    let store = sb.store().await;
    let metrics = store.metrics(t.id).await.unwrap();
    // Step 0 came on stdout, steps 1..6 through $SLAW_METRICS, two lines each, merged.
    assert_eq!(metrics.len(), 7, "{metrics:#?}");
    let last = metrics.last().unwrap();
    assert_eq!((last.step, last.examples), (6, 60));
    assert!(last.train_loss.is_some() && last.val_loss.is_some());
    assert_eq!(last.flops, t.flops);
    let extra = store
        .query_table(
            "SELECT step, extra FROM metrics WHERE trial_id = $1 ORDER BY step",
            &[t.id.to_string()],
        )
        .await
        .unwrap();
    let extra: Vec<String> = extra
        .rows
        .iter()
        .map(|r| match &r[1] {
            slaw::store::Value::Text(s) => s.clone(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(extra[0], r#"{"startup_seconds":0.5}"#);
    assert_eq!(extra[6], r#"{"tokens_per_second":1234.5}"#);
    let logs: Vec<(String, String)> = store
        .logs(t.id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.stream, l.line))
        .collect();
    store.close().await;
    let has = |stream: &str, line: &str| logs.iter().any(|(s, l)| s == stream && l == line);
    assert!(
        has("stdout", "starting: this line is not JSON"),
        "{logs:#?}"
    );
    assert!(has("stdout", "[1, 2, 3]"), "{logs:#?}");
    assert!(
        has("stdout", r#"{"step": "ten", "train_loss": 1}"#),
        "{logs:#?}"
    );
    assert!(
        logs.iter()
            .any(|(s, l)| s == "slaw" && l.contains("step must be a whole number")),
        "{logs:#?}"
    );
    assert!(has("stderr", "done"), "{logs:#?}");
    assert!(
        !logs.iter().any(|(_, l)| l.contains("val_loss")),
        "records are not log lines: {logs:#?}"
    );

    // The laws are fitted on the reported costs.
    let fit = sb.run(&["fit", "--sweep", "cmd", "--bootstrap", "50"]);
    assert!(fit.status.success(), "{}", text(&fit));
    let fitted = String::from_utf8_lossy(&fit.stdout);
    assert!(fitted.contains("parametric law"), "{fitted}");
    assert!(fitted.contains("learning-rate laws"), "{fitted}");
    let show = sb.run(&["show", &t.key]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("starting: this line is not JSON"), "{shown}");
    assert!(shown.contains("command: python3"), "{shown}");
}

#[tokio::test]
async fn template_values_reach_the_program_verbatim() {
    let sb = Sandbox::new();
    // Spaces, quotes, globs, substitutions, pipes, a template inside a value: none is
    // interpreted, because no shell ever sees them and values are not templates.
    let nasty = r#"a b;  echo "$HOME" && rm -rf ~ | cat > x 'q' `id` $(id) * ? ~ \ {lr} {{x}}"#;
    let out_a = sb.path("a.json").display().to_string();
    let out_b = sb.path("b b.json").display().to_string();
    let json = |s: &str| serde_json::to_string(s).unwrap();
    let file = sb.write(
        "argv.yaml",
        &format!(
            "name: argv
trainer: command
command: [python3, {script}, --mode, argv, --out, '{{model.out}}', '--lr={{lr}}',
          '{{model.note}}', 'pre {{model.note}} post', '{{{{literal}}}}']
env: {{ARG_ENV: '{{model.note}}'}}
model:
  note: {note}
  sizes: [{{name: a, out: {a}}}, {{name: b, out: {b}}}]
train:
  epochs: [1]
  lr: {{values: [0.01]}}
",
            script = script(),
            note = json(nasty),
            a = json(&out_a),
            b = json(&out_b),
        ),
    );
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    for path in [&out_a, &out_b] {
        let got: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let expected = serde_json::json!({
            "argv": ["--mode", "argv", "--out", path, "--lr=0.01", nasty,
                     format!("pre {nasty} post"), "{literal}"],
            "env": nasty,
        });
        assert_eq!(got, expected);
    }
}

#[tokio::test]
async fn a_crashing_command_fails_with_its_stderr() {
    let sb = Sandbox::new();
    let file = sb.write(
        "crash.yaml",
        &format!(
            "name: crash
trainer: command
command: [python3, {}, --mode, crash]
model: {{sizes: [{{name: a}}]}}
train: {{epochs: [1], lr: {{values: [0.01]}}}}
retries: {{failed: 1}}
",
            script()
        ),
    );
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let trials = sb.trials("crash").await;
    let t = &trials[0];
    assert_eq!(
        (t.state, t.attempts),
        (TrialState::Failed, 2),
        "retried once"
    );
    let error = t.error.as_deref().unwrap();
    assert!(error.contains("the command failed: exit code 1"), "{error}");
    assert!(error.contains("about to fail"), "{error}");
    assert!(error.contains("ZeroDivisionError"), "{error}");
    let status = sb.run(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("ZeroDivisionError"),
        "{}",
        text(&status)
    );
}

#[tokio::test]
async fn silent_and_endless_commands_are_killed() {
    let sb = Sandbox::new();
    let pid_dir = sb.path("pids");
    std::fs::create_dir(&pid_dir).unwrap();
    let file = sb.write(
        "limits.yaml",
        &format!(
            "name: limits
trainer: command
command: [python3, {}, --mode, '{{model.mode}}']
model: {{sizes: [{{name: silent, mode: hang}}, {{name: endless, mode: chatty}}]}}
train: {{epochs: [1], lr: {{values: [0.01]}}}}
execution: {{heartbeat_timeout: 1, timeout: 4s}}
retries: {{failed: 0}}
",
            script()
        ),
    );
    let started = Instant::now();
    let out = slaw()
        .args([
            "run",
            file.to_str().unwrap(),
            "--jobs",
            "2",
            "--no-progress",
        ])
        .arg("--db")
        .arg(sb.db())
        .env("PID_DIR", &pid_dir)
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    let trials = sb.trials("limits").await;
    let by = |name: &str| trials.iter().find(|t| t.size_name == name).unwrap();
    let silent = by("silent");
    assert_eq!(silent.state, TrialState::Failed);
    let e = silent.error.as_deref().unwrap();
    assert!(e.contains("no output for 1 s"), "{e}");
    assert!(silent.wall_seconds.unwrap() < 10.0, "{silent:#?}");
    let endless = by("endless");
    assert_eq!(endless.state, TrialState::Failed);
    let e = endless.error.as_deref().unwrap();
    assert!(e.contains("timed out"), "{e}");
    assert!(endless.progress_step.unwrap_or(0) > 5, "{endless:#?}");
    assert_eq!(pids(&pid_dir).len(), 2);
    all_dead_soon(&pid_dir, "after their trials failed");
}

#[tokio::test]
async fn kill_9_leaves_no_command_running_and_the_next_run_finishes() {
    let sb = Sandbox::new();
    let pid_dir = sb.path("pids");
    std::fs::create_dir(&pid_dir).unwrap();
    let file = sb.write(
        "k.yaml",
        &format!(
            "name: k
trainer: command
command: [python3, {}, --mode, slow, --width, '{{model.width}}', --lr, '{{lr}}',
          --steps, '10', --sleep, '0.15']
model: {{sizes: [{{name: a, width: 4}}, {{name: b, width: 8}}]}}
train: {{epochs: [1], lr: {{values: [0.005, 0.01, 0.02]}}}}
",
            script()
        ),
    );
    let file = file.to_str().unwrap();

    // kill -9 of `slaw run`: its worker gets SIGTERM from the kernel, stops the script and
    // gives the trial back.
    let mut run = sb.spawn(&["run", file, "--no-progress"], &[("PID_DIR", &pid_dir)]);
    sb.wait_for(
        "k",
        "a completed and a running trial",
        WAIT,
        |done, running| done >= 1 && running >= 1,
    )
    .await;
    kill9(&mut run);
    sb.wait_for("k", "the orphaned worker to let go", WAIT, |_, running| {
        running == 0
    })
    .await;
    all_dead_soon(&pid_dir, "after kill -9 of slaw run");
    let before: Vec<String> = sb
        .trials("k")
        .await
        .into_iter()
        .filter(|t| t.state == TrialState::Completed)
        .map(|t| t.key)
        .collect();
    assert!(!before.is_empty() && before.len() < 6, "{before:?}");

    // kill -9 of a worker: the kernel kills its script (parent-death signal).
    let seen: HashSet<(String, i32)> = pids(&pid_dir).into_iter().collect();
    let mut worker = sb.spawn(
        &["worker", "--sweep", "k", "--quiet"],
        &[("PID_DIR", &pid_dir)],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids(&pid_dir).iter().any(|p| !seen.contains(p)) {
        assert!(Instant::now() < deadline, "the worker started no script");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill9(&mut worker);
    all_dead_soon(&pid_dir, "after kill -9 of a worker");

    // The next run takes the dead worker's trial back and finishes the sweep; finished trials
    // do not run again.
    let out = sb.run(&["run", file, "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = sb.trials("k").await;
    assert!(
        trials.iter().all(|t| t.state == TrialState::Completed),
        "{trials:#?}"
    );
    for (key, events) in sb.events("k").await {
        assert_eq!(
            events.iter().filter(|e| *e == "completed").count(),
            1,
            "{key}: {events:?}"
        );
        if before.contains(&key) {
            assert_eq!(events, vec!["claimed", "completed"], "{key} ran again");
        }
    }
    all_dead_soon(&pid_dir, "at the end");
}

#[test]
fn an_unknown_template_field_is_invalid_with_its_line() {
    let sb = Sandbox::new();
    let file = sb.write(
        "bad.yaml",
        "name: bad
trainer: command
command: [python3, train.py,
          --width, '{model.widht}']
model: {sizes: [{name: a, width: 4}, {name: b, width: 8}]}
train: {epochs: [1], lr: {values: [0.01]}}
",
    );
    let out = slaw()
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:4:20: command[3]: unknown field {model.widht}: the sizes have"),
        "{err}"
    );
}
