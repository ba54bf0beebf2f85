//! `slaw fit` and `slaw predict` end to end through the binary: on published data imported
//! from CSV (Porian et al. 2024, MIT, in tests/fixtures) and on a real sweep trained by slaw.

use crate::common::{repo, synthetic_sweep, text, Sandbox};
use serde_json::Value;

/// Porian's "Optimizer tuning (no decay)" optima on RefinedWeb, as a CSV of runs
/// (`n_opt`, `t_opt`, `flops`, `loss_opt`), optionally only budgets in `[lo, hi]`.
fn porian_csv(sb: &Sandbox, name: &str, lo: f64, hi: f64) -> std::path::PathBuf {
    let path = repo().join("tests/fixtures/porian2024/optimal_pairs.csv");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |n: &str| headers.iter().position(|h| h == n).unwrap();
    let (exp, ds, c, n, t, l) = (
        col("experiment"),
        col("dataset"),
        col("flops"),
        col("n_opt"),
        col("t_opt"),
        col("loss_opt"),
    );
    let sd = col("n_star_std");
    let mut out = String::from("n,t,c,loss,w\n");
    let mut rows = 0;
    for r in reader.records() {
        let r = r.unwrap();
        if &r[exp] != "Optimizer tuning (no decay)" || &r[ds] != "rw" || r[n].is_empty() {
            continue;
        }
        let flops: f64 = r[c].parse().unwrap();
        if flops < lo || flops > hi {
            continue;
        }
        // Porian's weights: 1/σ² of log n* over their bootstrap.
        let w = 1.0 / r[sd].parse::<f64>().unwrap().powi(2);
        out.push_str(&format!("{},{},{},{},{w}\n", &r[n], &r[t], &r[c], &r[l]));
        rows += 1;
    }
    assert!(rows >= 6, "{rows} rows");
    sb.write(name, &out)
}

fn fit_json(sb: &Sandbox, args: &[&str]) -> Value {
    let out = sb.run(&[&["fit", "--json", "--bootstrap", "200"], args].concat());
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn imported_porian_optima_reproduce_the_published_laws() {
    let sb = Sandbox::new();
    // All budgets: the frontier is the optima themselves; N*(C) along it is Porian's law.
    let all = porian_csv(&sb, "all.csv", 0.0, f64::INFINITY);
    let v = fit_json(
        &sb,
        &[
            "--import",
            all.to_str().unwrap(),
            "--columns",
            "n=n,d=t,c=c,loss=loss",
            "--method",
            "frontier",
        ],
    );
    let f = &v["report"]["frontier"];
    assert_eq!(f["status"], "fitted", "{f}");
    let a = f["params_law"]["b"].as_f64().unwrap();
    assert!(
        (a - 0.497029).abs() < 5e-5,
        "N* exponent {a} vs Porian's OLS 0.497029"
    );

    // 1e16 < C < 5e17: the saturating loss law of Porian's Table (A 128.93, E 2.0056, α 0.10597).
    let small = porian_csv(&sb, "small.csv", 1.0e16 * 1.0001, 5.0e17);
    let v = fit_json(
        &sb,
        &[
            "--import",
            small.to_str().unwrap(),
            "--columns",
            "n=n,d=t,c=c,loss=loss",
            "--method",
            "frontier",
        ],
    );
    let sat = &v["report"]["frontier"]["fit"]["saturating"];
    let (e, alpha, a) = (
        sat["E"].as_f64().unwrap(),
        sat["alpha"].as_f64().unwrap(),
        sat["A"].as_f64().unwrap(),
    );
    // The logs are named as such, beside the values.
    assert!((sat["log_e"].as_f64().unwrap().exp() - e).abs() < 1e-12);
    assert!(sat.get("e").is_none(), "{sat}");
    assert!((e - 2.0056).abs() < 1e-3, "E {e}");
    assert!((alpha - 0.10597).abs() < 1e-3, "alpha {alpha}");
    assert!((a / 128.93 - 1.0).abs() < 0.01, "A {a}");

    // The fit is stored, and predict reads it back.
    let out = sb.run(&[
        "predict",
        "--import",
        small.to_str().unwrap(),
        "--flops",
        "1e18",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sat_loss = p["loss"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"].as_str().unwrap().contains("E + A"))
        .unwrap();
    let expected = 2.0056 + 128.93 * 1e18f64.powf(-0.10597);
    assert!((sat_loss["value"].as_f64().unwrap() - expected).abs() < 2e-3);
    assert!(sat_loss["lo"].as_f64().unwrap() <= sat_loss["value"].as_f64().unwrap());
}

#[test]
fn bad_import_columns_are_clear_errors() {
    let sb = Sandbox::new();
    let csv = sb.write("x.csv", "n,d,loss\n1,2,3\n");
    let out = sb.run(&[
        "fit",
        "--import",
        csv.to_str().unwrap(),
        "--columns",
        "n=n,loss=loss",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("two of n, d and c"),
        "{}",
        text(&out)
    );
    let out = sb.run(&[
        "fit",
        "--import",
        csv.to_str().unwrap(),
        "--columns",
        "n=n,d=dd,loss=loss",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no column \"dd\""),
        "{}",
        text(&out)
    );
    let bad = sb.write("bad.csv", "n,d,loss\n1,x,3\n");
    let out = sb.run(&[
        "fit",
        "--import",
        bad.to_str().unwrap(),
        "--columns",
        "n=n,d=d,loss=loss",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.csv:2: d \"x\" is not a number"),
        "{}",
        text(&out)
    );
}

#[test]
fn fit_and_predict_a_sweep_trained_by_slaw() {
    let sb = Sandbox::new();
    let sweep = synthetic_sweep("f", "[0.003, 0.01, 0.03, 0.1]", "[1, 2, 4]")
        .replace("sizes: [{name: a, width: 8}, {name: b, width: 24}]", "sizes: [{name: a, width: 4}, {name: b, width: 8}, {name: c, width: 16}, {name: d, width: 32}]");
    let file = sb.write("f.yaml", &sweep);
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));

    let v = fit_json(&sb, &["--sweep", "f"]);
    let report = &v["report"];
    assert_eq!(report["runs"], 48);
    let lr = &report["lr"];
    assert_eq!(lr["status"], "fitted", "{lr}");
    assert_eq!(lr["cells"].as_array().unwrap().len(), 12);
    // Twelve cells of a teacher task whose labels are deterministic (its loss floor is 0):
    // the parametric law is not identified (E goes to 0, β far out), and slaw says so.
    assert_eq!(
        report["parametric"]["status"], "not-identified",
        "{}",
        report["parametric"]
    );
    assert_eq!(report["frontier"]["status"], "fitted");
    let ids = v["fit_ids"].as_array().unwrap();
    assert!(ids.len() >= 3, "{ids:?}");

    // The human summary names every method.
    let out = sb.run(&["fit", "--sweep", "f", "--bootstrap", "50"]);
    let summary = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "optimal learning rate per cell",
        "compute frontier",
        "IsoFLOP",
        "parametric law",
    ] {
        assert!(summary.contains(needle), "{needle}: {summary}");
    }

    // Back-test: fit without the largest size, predict it.
    let out = sb.run(&["fit", "--sweep", "f", "--bootstrap", "50", "--holdout", "d"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("back-test: laws fitted without d"), "{s}");

    // The loss at (N, D) needs the parametric law: refused, with the reason (exit code 2).
    let out = sb.run(&["predict", "--sweep", "f", "--params", "2k", "--epochs", "8"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the parametric law is not identified"),
        "{}",
        text(&out)
    );
    // A compute budget uses the laws that are identified, and names the one that is not.
    let out = sb.run(&["predict", "--sweep", "f", "--flops", "1e9", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let loss = p["loss"][0]["value"].as_f64().unwrap();
    assert!(loss > 0.0 && loss < 2.0, "{p}");
    assert!(!p["lr"].as_array().unwrap().is_empty(), "{p}");
    let notes: Vec<&str> = p["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("parametric law is not identified")),
        "{notes:?}"
    );
    // It says so: a newer fit left a size out, and `--fit` picks it.
    let hint = notes
        .iter()
        .find(|n| n.contains("was made without d"))
        .unwrap_or_else(|| panic!("{p}"));
    let id: i64 = hint
        .split("`--fit ")
        .nth(1)
        .and_then(|r| r.split('`').next())
        .and_then(|r| r.parse().ok())
        .unwrap();
    let out = sb.run(&[
        "predict",
        "--fit",
        &id.to_string(),
        "--flops",
        "1e9",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in q["fits"].as_array().unwrap() {
        assert_eq!(f["excluded_sizes"], serde_json::json!(["d"]), "{q}");
    }
    assert_ne!(q["loss"][0]["value"], p["loss"][0]["value"]);
    let out = sb.run(&[
        "predict",
        "--fit",
        "99999",
        "--params",
        "2k",
        "--examples",
        "1k",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = sb.run(&["predict", "--sweep", "f", "--params", "2k"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a budget"));

    // The audit: every method refitted without the largest size and each budget, the
    // disagreement about N* at the next budget, the conventions card; stored for the report.
    let out = sb.run(&["fit", "--sweep", "f", "--bootstrap", "50", "--audit"]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "audit: every method refitted",
        "largest size d",
        "budget 4 epochs",
        "learning-rate law",
        "compute-optimal N at the next budget",
        "conventions card:",
        "k = C/(N·D)",
    ] {
        assert!(s.contains(needle), "{needle}: {s}");
    }
    let v = fit_json(&sb, &["--sweep", "f", "--audit"]);
    let backtests = v["audit"]["backtests"].as_array().unwrap();
    assert!(backtests.len() >= 8, "{}", v["audit"]);
    assert!(
        backtests
            .iter()
            .any(|b| b["method"] == "learning-rate law" && b["compared"].as_u64() > Some(0)),
        "{}",
        v["audit"]
    );
    let html = sb.path("f-report.html");
    let out = sb.run(&["report", "--sweep", "f", "--out", html.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<h2>Audit</h2>") && page.contains("conventions card"));
}

#[test]
fn weighted_imports_reach_porians_wls_and_name_their_file_canonically() {
    let sb = Sandbox::new();
    let all = porian_csv(&sb, "all.csv", 0.0, f64::INFINITY);
    let v = fit_json(
        &sb,
        &[
            "--import",
            all.to_str().unwrap(),
            "--columns",
            "n=n,d=t,c=c,loss=loss,weight=w",
            "--method",
            "frontier",
        ],
    );
    let a = v["report"]["frontier"]["params_law"]["b"].as_f64().unwrap();
    assert!(
        (a - 0.496895).abs() < 5e-6,
        "weighted N* exponent {a} vs Porian's WLS 0.496895"
    );
    // The fit is stored under the file's canonical path: `./all.csv` from the sandbox finds it.
    let out = sb.run(&[
        "predict",
        "--import",
        "./all.csv",
        "--flops",
        "1e20",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fits = p["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 1, "{p}");
    assert_eq!(fits[0]["method"], "frontier");
    // A file that changed since it was fitted is named.
    let text_now = std::fs::read_to_string(&all).unwrap();
    std::fs::write(&all, format!("{text_now}\n")).unwrap();
    let out = sb.run(&["predict", "--import", "all.csv", "--flops", "1e20"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("changed since it was fitted"), "{shown}");
    assert!(shown.contains("from stored fits"), "{shown}");
}

#[test]
fn losses_must_be_positive_for_every_method() {
    let sb = Sandbox::new();
    let csv = sb.write(
        "zero.csv",
        "n,d,loss\n1e6,1e8,3.0\n2e6,1e8,2.9\n4e6,1e8,0\n8e6,1e8,2.7\n",
    );
    for method in ["frontier", "isoflop", "parametric", "all"] {
        let out = sb.run(&[
            "fit",
            "--import",
            csv.to_str().unwrap(),
            "--columns",
            "n=n,d=d,loss=loss",
            "--method",
            method,
        ]);
        assert_eq!(out.status.code(), Some(2), "{method}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("zero.csv:4: loss 0 is not positive"),
            "{method}: {}",
            text(&out)
        );
    }
}

#[test]
fn laws_the_data_do_not_identify_are_said_stored_and_refused() {
    let sb = Sandbox::new();
    // Two model sizes, six budgets, an exact law: α, A and E cannot be separated.
    let mut csv = String::from("n,d,loss\n");
    for n in [1e6, 4e6] {
        for k in 0..6 {
            let d = 1e8 * 2f64.powi(k);
            let loss: f64 = 1.7 + 400.0 / f64::powf(n, 0.34) + 410.0 / f64::powf(d, 0.28);
            csv.push_str(&format!("{n},{d},{loss}\n"));
        }
    }
    let file = sb.write("two.csv", &csv);
    let args = [
        "fit",
        "--import",
        file.to_str().unwrap(),
        "--columns",
        "n=n,d=d,loss=loss",
        "--method",
        "parametric",
        "--bootstrap",
        "50",
    ];
    let out = sb.run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("not identified: 2 distinct model sizes"),
        "{shown}"
    );
    // Stored as such, and predict refuses it with exit code 2.
    let out = sb.run(&[
        "query",
        "SELECT json_extract(result_json, '$.status') FROM fits WHERE method = 'parametric'",
        "--format",
        "csv",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("not-identified"));
    let out = sb.run(&[
        "predict",
        "--import",
        file.to_str().unwrap(),
        "--params",
        "1e7",
        "--examples",
        "1e9",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("parametric law is not identified"));
}
