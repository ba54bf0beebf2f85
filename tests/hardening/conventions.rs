//! Command-line conventions: a closed pipe ends quietly, invalid input exits 2, escape
//! sequences from trainers and the database reach a terminal escaped, `run` writes its figures
//! beside its database, progress counts trials when costs are unknown, each cause of an error
//! is said once, and `completions` and `--version` exist.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::{command_sweep, quick_db, slaw_in};
use crate::common::{repo, slaw, text, Sandbox};

/// Runs `args` with standard output read for one line and then closed.
fn first_line_then_close(sb: &Sandbox, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = slaw()
        .args(args)
        .current_dir(sb.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    // The reader is gone (as `head -1` would be).
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        line,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_closed_pipe_ends_quietly() {
    let sb = Sandbox::new();
    quick_db(&sb);
    let db = sb.db();
    let quickstart = repo().join("sweeps/quickstart.yaml");
    let plan = ["plan", quickstart.to_str().unwrap()];
    let query = [
        "query",
        "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 200000) SELECT x FROM r",
        "--format",
        "csv",
        "--db",
        &db,
    ];
    let status = ["status", "--db", &db];
    let completions = ["completions", "bash"];
    for args in [&plan[..], &query[..], &status[..], &completions[..]] {
        let (code, line, err) = first_line_then_close(&sb, args);
        assert!(!line.is_empty(), "{args:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn invalid_input_exits_2_everywhere() {
    let sb = Sandbox::new();
    quick_db(&sb);
    let csv = sb.write("runs.csv", "n,d,loss\n1,x,2\n");
    let cases: &[&[&str]] = &[
        &["run", "missing.yaml"],
        &["validate", "missing.yaml"],
        &["status", "--sweep", "nope"],
        &["query", "SELEKT 1"],
        &["query", "SELECT FROM WHERE"],
        &["query", "SELECT * FROM no_such_table"],
        &["run", "quick.yaml", "--device", "tpu:0"],
        &["predict", "--params", "1M"],
        &[
            "fit",
            "--import",
            "runs.csv",
            "--columns",
            "n=n,d=d,loss=loss",
        ],
        &[
            "fit",
            "--import",
            "missing.csv",
            "--columns",
            "n=n,d=d,loss=loss",
        ],
        &["show", "zzzz"],
        &["plot", "--sweep", "nope"],
    ];
    let _ = csv;
    for args in cases {
        // `validate` takes no database.
        let out = if args[0] == "validate" {
            slaw_in(&sb, args)
        } else {
            sb.run(args)
        };
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("slaw: ") || err.contains(".yaml"),
            "{args:?}: {err}"
        );
    }
}

#[tokio::test]
async fn each_cause_is_said_once_and_in_words() {
    let sb = Sandbox::new();
    let out = slaw_in(&sb, &["validate", "missing.yaml"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("missing.yaml"), "{err}");
    quick_db(&sb);
    // No Rust names of enum variants, no empty parentheses, in any text slaw prints.
    for args in [
        vec!["fit", "--method", "isoflop"],
        vec!["fit"],
        vec!["status"],
    ] {
        let out = sb.run(&args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for bad in [
            "OutsideSampledRange",
            "TooFewSizes",
            "NotConvex",
            "()",
            "Some(",
            "Err(",
        ] {
            assert!(!all.contains(bad), "{args:?} printed {bad:?}: {all}");
        }
    }
}

/// Runs `slaw <args>` on a pseudo-terminal (util-linux `script`); what the terminal showed.
fn on_a_terminal(sb: &Sandbox, args: &[&str]) -> Vec<u8> {
    let exe = env!("CARGO_BIN_EXE_slaw");
    let line = std::iter::once(exe)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(sb.dir.path())
        .env_remove("SLAW_DB")
        .output()
        .expect("script (util-linux) runs");
    out.stdout
}

#[tokio::test]
async fn escape_sequences_reach_a_terminal_escaped() {
    let sb = Sandbox::new();
    let file = sb.write(
        "esc.yaml",
        &command_sweep(
            "esc",
            "[{name: e, mode: escape, width: 8, steps: 1, sleep: 0}]",
            "",
        ),
    );
    let db = sb.db();
    let shown = on_a_terminal(
        &sb,
        &["run", file.to_str().unwrap(), "--db", &db, "--no-fit"],
    );
    let trials = sb.trials("esc").await;
    let key = trials[0].key.clone();
    let show = on_a_terminal(&sb, &["show", &key, "--db", &db]);
    let query = on_a_terminal(&sb, &["query", "SELECT line FROM trial_logs", "--db", &db]);
    for (what, bytes) in [("run", shown), ("show", show), ("query", query)] {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("\u{1b}]0;pwned"),
            "{what}: raw OSC reached the terminal"
        );
        assert!(
            !text.contains("\u{1b}[2J"),
            "{what}: raw CSI reached the terminal"
        );
        if what != "run" {
            assert!(text.contains("\\x1b]0;pwned"), "{what}: {text}");
        }
    }
    // Not on a terminal: the bytes are kept as they are (for pipes and files).
    let out = sb.run(&["query", "SELECT line FROM trial_logs", "--format", "csv"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\u{1b}]0;pwned"));
}

#[tokio::test]
async fn run_writes_figures_beside_its_database_or_to_out() {
    let sb = Sandbox::new();
    let smoke = repo().join("sweeps/synthetic-smoke.yaml");
    let db = sb.path("deep/dir/x.db");
    let out = slaw_in(
        &sb,
        &[
            "run",
            smoke.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--no-progress",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        sb.path("deep/dir/synthetic-smoke/report.html").exists(),
        "{}",
        text(&out)
    );
    assert!(sb
        .path("deep/dir/synthetic-smoke/loss_vs_compute.png")
        .exists());
    assert!(
        !sb.path("results").exists(),
        "wrote under the working directory"
    );
    let elsewhere = sb.path("figures");
    let out = slaw_in(&sb, &["report", "--db", db.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("deep/dir/synthetic-smoke/report.html"));
    let out = slaw_in(
        &sb,
        &[
            "run",
            smoke.to_str().unwrap(),
            "--db",
            db.to_str().unwrap(),
            "--no-progress",
            "--out",
            elsewhere.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(elsewhere.join("report.html").exists(), "{}", text(&out));
}

#[tokio::test]
async fn progress_counts_trials_when_costs_are_unknown() {
    let sb = Sandbox::new();
    // Costs are reported by the trainer when a trial ends: none are declared.
    let file = sb.write(
        "nocost.yaml",
        &command_sweep(
            "nocost",
            "[{name: a, mode: normal, width: 8, steps: 3, sleep: 0}, \
              {name: b, mode: normal, width: 9, steps: 3, sleep: 0}, \
              {name: c, mode: normal, width: 10, steps: 3, sleep: 0}]",
            "",
        ),
    );
    let out = sb.run(&["run", file.to_str().unwrap(), "--executor", "none"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sb.run(&[
        "worker",
        "--sweep",
        "nocost",
        "--max-trials",
        "1",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = sb.run(&["status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("progress: 33 % of trials"), "{status}");
    assert!(!status.contains("100 %"), "{status}");
    let json = sb.run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["progress"]["basis"], "trials");
}

#[test]
fn completions_and_version() {
    let out = slaw().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script.contains("_slaw()") && script.contains("query"),
        "{script}"
    );
    for shell in ["zsh", "fish"] {
        let out = slaw().args(["completions", shell]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
    let out = slaw().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("slaw 0."), "{version}");
    assert!(
        version.contains("commit ") && version.contains("backends: cpu"),
        "{version}"
    );
    let sha = version
        .split("commit ")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert!(
        sha == "unknown" || sha.chars().all(|c| c.is_ascii_hexdigit()),
        "{version}"
    );
}
