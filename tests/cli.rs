//! End-to-end tests of the `slaw` binary: validation errors and exit codes, the plan, real
//! training runs into a real SQLite file, resume and extension of a sweep, divergence.

use crate::common::{slaw, synthetic_sweep, text, Sandbox};

#[test]
fn validate_reports_path_line_and_column_and_exits_2() {
    let sb = Sandbox::new();
    let bad = synthetic_sweep("bad", "[0.01, -0.5]", "[1]")
        .replace("batch_size: 32", "batch_size: 32\n  optimiser: sgd");
    let file = sb.write("bad.yaml", &bad);
    let out = slaw().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:11:3: train.optimiser: unknown field `optimiser`"),
        "{err}"
    );

    let negative = sb.write("neg.yaml", &synthetic_sweep("neg", "[0.01, -0.5]", "[1]"));
    let out = slaw().arg("validate").arg(&negative).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "neg.yaml:9:23: train.lr.values[1]: a learning rate must be a positive number"
        ),
        "{err}"
    );

    // `run` on an invalid file writes nothing.
    let out = sb.run(&["run", negative.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        !sb.path("slaw.db").exists(),
        "an invalid sweep created the database"
    );
}

#[test]
fn validate_and_plan_a_good_sweep() {
    let sb = Sandbox::new();
    let file = sb.write("ok.yaml", &synthetic_sweep("ok", "[0.01, 0.03]", "[1, 2]"));
    let out = slaw().arg("validate").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("× 2 learning rates × 1 seeds; 8 trials"),
        "{}",
        text(&out)
    );

    let out = slaw().args(["plan", "--json"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["totals"]["trials"], 8);
    let t = &plan["trials"][0];
    // 512 examples / 32 per batch = 16 steps; MLP 36→8→3.
    assert_eq!(t["steps"], 16);
    assert_eq!(t["params"], 36 * 8 + 8 + 8 * 3 + 3);
    assert_eq!(t["flops_per_example"], 6 * (36 * 8 + 8 * 3));

    let out = slaw().arg("plan").arg(&file).output().unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("FLOPs/ex") && table.contains("8 trials"),
        "{table}"
    );
}

#[test]
fn unknown_device_and_missing_file_are_clear_errors() {
    let sb = Sandbox::new();
    let file = sb.write("ok.yaml", &synthetic_sweep("dev", "[0.01]", "[1]"));
    let out = sb.run(&["run", file.to_str().unwrap(), "--device", "tpu"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown device"),
        "{}",
        text(&out)
    );
    let out = slaw()
        .args(["validate", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/x.yaml"));
}

#[tokio::test]
async fn run_resume_and_extend_only_run_what_is_missing() {
    let sb = Sandbox::new();
    let file = sb.write("s.yaml", &synthetic_sweep("s", "[0.01, 0.03]", "[1]"));
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = sb.trials("s").await;
    assert_eq!(trials.len(), 4);
    assert!(
        trials.iter().all(|t| t.state.as_str() == "completed"),
        "{trials:?}"
    );
    for t in &trials {
        assert!(t.final_val_loss.unwrap() > 0.0);
        assert_eq!(
            t.params_measured,
            Some(t.params),
            "Burn's count equals the plan's"
        );
        let store = sb.store().await;
        let metrics = store.metrics(t.id).await.unwrap();
        assert_eq!(metrics.len(), 3, "three evaluation points");
        assert_eq!(metrics.last().unwrap().step, t.steps);
        assert!((metrics.last().unwrap().flops - t.flops).abs() < 1.0);
        store.close().await;
    }

    // Running again runs nothing.
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(0 new, 4 completed, 0 to run)"),
        "{}",
        text(&out)
    );

    // Extending the LR axis runs only the two new trials.
    let file = sb.write("s.yaml", &synthetic_sweep("s", "[0.01, 0.03, 0.1]", "[1]"));
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(2 new, 4 completed, 2 to run)"),
        "{}",
        text(&out)
    );
    for (key, events) in sb.events("s").await {
        assert_eq!(
            events,
            vec!["claimed", "completed"],
            "trial {key} ran more than once"
        );
    }

    let out = sb.run(&["status", "--sweep", "s"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("6 trials: 6 completed"), "{status}");
    assert!(
        status.contains("best completed trial per model size"),
        "{status}"
    );
}

#[tokio::test]
async fn a_diverging_trial_is_recorded_and_the_sweep_goes_on() {
    let sb = Sandbox::new();
    let sweep = synthetic_sweep("nan", "[0.01, 1.0e12]", "[1]")
        .replace(
            "  batch_size: 32",
            "  batch_size: 32\n  optimizer: {name: sgd, momentum: 0.9}",
        )
        .replace("  grad_clip: 1.0\n", "");
    let file = sb.write("nan.yaml", &sweep);
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = sb.trials("nan").await;
    for t in &trials {
        if t.lr > 1.0 {
            assert_eq!(t.state.as_str(), "diverged", "{t:?}");
            assert!(t.error.as_deref().unwrap().contains("non-finite loss"));
        } else {
            assert_eq!(t.state.as_str(), "completed", "{t:?}");
        }
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DIVERGED"),
        "{}",
        text(&out)
    );
    // Diverged trials are not retried (retries.diverged = 0): a rerun runs nothing.
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 to run"),
        "{}",
        text(&out)
    );
}

/// The same ViT sweep (two sizes, three learning rates, a diverging one among them) run with
/// stacks of three and with every trial alone: each trial ends in the same state with the same
/// validation loss, and runs once.
#[tokio::test]
async fn stacked_trials_end_as_they_end_alone() {
    let sweep = synthetic_sweep("vit", "[0.003, 0.01, 1.0e30]", "[2]")
        .replace(
            "  family: mlp\n  depth: 1\n  sizes: [{name: a, width: 8}, {name: b, width: 24}]",
            "  family: vit\n  patch: 3\n  depth: 1\n  heads: 2\n  pool: mean\n  \
             sizes: [{name: a, width: 8}, {name: b, width: 16}]",
        )
        .replace(
            "  batch_size: 32\n",
            "  batch_size: 32\n  optimizer: {name: adamw}\n",
        );
    assert!(sweep.contains("family: vit"), "{sweep}");
    let mut finals = Vec::new();
    for stack in ["3", "1"] {
        let sb = Sandbox::new();
        let file = sb.write("vit.yaml", &sweep);
        let out = sb.run(&[
            "run",
            file.to_str().unwrap(),
            "--no-progress",
            "--stack",
            stack,
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let mut trials = sb.trials("vit").await;
        assert_eq!(trials.len(), 6);
        trials.sort_by(|a, b| a.key.cmp(&b.key));
        for (key, events) in sb.events("vit").await {
            assert_eq!(events.first().map(String::as_str), Some("claimed"), "{key}");
            assert_eq!(
                events.len(),
                2,
                "trial {key} ran more than once: {events:?}"
            );
        }
        let store = sb.store().await;
        let mut last_walls = Vec::new();
        for t in &trials {
            if t.state.as_str() == "completed" {
                let metrics = store.metrics(t.id).await.unwrap();
                assert_eq!(metrics.len(), 3, "{t:?}");
                last_walls.push((t.params, metrics[2].wall_seconds));
            }
        }
        store.close().await;
        // A stack evaluates its trials together: their clocks agree to the last digit.
        last_walls.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let shared = last_walls.windows(2).any(|w| w[0] == w[1]);
        assert_eq!(shared, stack == "3", "{last_walls:?}");
        finals.push(
            trials
                .into_iter()
                .map(|t| (t.key, t.lr, t.state, t.final_val_loss))
                .collect::<Vec<_>>(),
        );
    }
    let (stacked, alone) = (&finals[0], &finals[1]);
    for (s, a) in stacked.iter().zip(alone) {
        assert_eq!((&s.0, s.2), (&a.0, a.2), "{s:?} vs {a:?}");
        if a.1 > 1.0 {
            assert_eq!(a.2.as_str(), "diverged", "{a:?}");
            continue;
        }
        assert_eq!(a.2.as_str(), "completed", "{a:?}");
        let (x, y) = (s.3.unwrap(), a.3.unwrap());
        assert!(
            (x - y).abs() < 1e-3 * y.max(1.0),
            "{}: stacked {x} alone {y}",
            s.0
        );
    }
}

#[test]
fn status_without_a_database_says_so() {
    let sb = Sandbox::new();
    let out = sb.run(&["status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing stored"),
        "{}",
        text(&out)
    );
    assert!(
        !std::path::Path::new(&sb.db()).exists(),
        "status created the database"
    );
}

#[test]
fn host_profile_without_the_feature_is_a_clear_error() {
    // CI builds without `--features host-profile`: the flag must say what is missing, before
    // any training starts.
    let sb = Sandbox::new();
    let svg = sb.path("profile.svg");
    let out = slaw()
        .args([
            "bench",
            "--model",
            "mlp",
            "--width",
            "8",
            "--depth",
            "1",
            "--image",
            "8",
            "--batch",
            "4",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--host-profile",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    if cfg!(feature = "host-profile") {
        assert!(out.status.success(), "{}", text(&out));
        assert!(svg.exists() && sb.path("profile.folded").exists());
    } else {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--features host-profile"), "{err}");
        assert!(out.stdout.is_empty(), "{}", text(&out));
    }
}
