//! `slaw::fit` against published scaling-law fits on public data:
//! - Epoch AI's digitised Chinchilla points (Besiroglu et al. 2024): the approach-3 parametric fit
//!   with Hoffmann's 4500-start grid and summed Huber loss.
//! - Porian et al. 2024's per-budget optima: the N*(C) power law (OLS and WLS) and the saturating
//!   loss law L*(C) = E + A·C^(−α).
//!
//! The Epoch data has no licence and is read from `../shared` beside the checkout (the test is
//! skipped with a notice when it is absent); the Porian data is MIT and lives in
//! `tests/fixtures/porian2024/`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

use slaw::fit::{
    bootstrap, fit_parametric, fit_saturating, power_law, BootstrapOptions, OptimiserSettings,
    ParametricGrid, ParametricLaw, ParametricOptions, ParametricPoint, SaturatingOptions,
};

const EPOCH_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/scaling-laws/epoch_chinchilla/svg_extracted_data.csv"
);
const PORIAN_CSV: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/porian2024/optimal_pairs.csv"
);

/// Splits one CSV line, honouring double quotes (Porian's experiment names contain commas).
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// Rows of a CSV file as maps from column name to field.
fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = split_csv_line(lines.next().expect("CSV has a header"));
    lines
        .map(|line| {
            let fields = split_csv_line(line);
            assert_eq!(fields.len(), header.len(), "{line}");
            header.iter().cloned().zip(fields).collect()
        })
        .collect()
}

fn num(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|e| panic!("{column} = {:?}: {e}", row[column]))
}

/// Epoch's 240 points: N = Model Size, C = Training FLOP, D = C/(6N), dropping the 5 highest
/// losses (`loss < sorted(loss)[-5]`). `None` (with a notice) when the shared data is absent.
fn epoch_points() -> Option<Vec<ParametricPoint>> {
    let path = Path::new(EPOCH_CSV);
    if !path.exists() {
        println!(
            "SKIPPED: {} is absent (needs ../shared beside the checkout)",
            path.display()
        );
        return None;
    }
    let rows = read_csv(path);
    assert_eq!(rows.len(), 245);
    let mut losses: Vec<f64> = rows.iter().map(|r| num(r, "loss")).collect();
    losses.sort_by(f64::total_cmp);
    let cutoff = losses[losses.len() - 5];
    let points: Vec<ParametricPoint> = rows
        .iter()
        .filter(|r| num(r, "loss") < cutoff)
        .map(|r| {
            let (n, c) = (num(r, "Model Size"), num(r, "Training FLOP"));
            ParametricPoint {
                params: n,
                examples: c / (6.0 * n),
                loss: num(r, "loss"),
            }
        })
        .collect();
    assert_eq!(points.len(), 240);
    Some(points)
}

fn describe(law: &ParametricLaw) -> String {
    format!(
        "E = {:.6}, A = {:.4}, B = {:.4}, alpha = {:.6}, beta = {:.6}, a = beta/(alpha+beta) = {:.5}, \
         objective = {:.10}, converged {}/{} starts",
        law.irreducible_loss(),
        law.amplitude_params(),
        law.amplitude_examples(),
        law.alpha,
        law.beta,
        law.params_exponent(),
        law.objective,
        law.converged_starts,
        law.starts
    )
}

/// The 4500-start fit to Epoch's points, run once and shared by the tests that need it.
fn epoch_fit(points: &[ParametricPoint]) -> &'static ParametricLaw {
    static FIT: OnceLock<ParametricLaw> = OnceLock::new();
    FIT.get_or_init(|| {
        let started = Instant::now();
        let law = fit_parametric(points, &ParametricOptions::default()).expect("fit");
        println!(
            "Epoch 4500-start parametric fit: {:?}\n  {}\n  full precision: {law:?}",
            started.elapsed(),
            describe(&law)
        );
        law
    })
}

/// Published (Epoch notebook "replicate exactly" cell): E = 1.81724, A = 477.84, B = 2143.86,
/// α = 0.34731, β = 0.36718, minimum summed Huber 0.00101827.
#[test]
fn epoch_chinchilla_parametric_fit_reproduces_the_published_optimum() {
    let Some(points) = epoch_points() else { return };
    let law = epoch_fit(&points);
    assert_eq!(law.starts, 4500);
    assert_eq!(law.n, 240);
    assert!(
        (law.irreducible_loss() - 1.817).abs() < 0.002,
        "{}",
        describe(law)
    );
    assert!((law.alpha - 0.347).abs() < 0.002, "{}", describe(law));
    assert!((law.beta - 0.367).abs() < 0.003, "{}", describe(law));
    assert!(
        (law.amplitude_params() / 478.0 - 1.0).abs() < 0.05,
        "{}",
        describe(law)
    );
    assert!(
        (law.amplitude_examples() / 2143.0 - 1.0).abs() < 0.05,
        "{}",
        describe(law)
    );
    assert!(
        (law.objective / 0.001_018_27 - 1.0).abs() < 0.01,
        "{}",
        describe(law)
    );
    assert!((law.params_exponent() - 0.514).abs() < 0.002);
    // Chinchilla-scale allocation: at 5.76e23 FLOPs the fitted law puts N* in the tens of billions.
    let n_star = law.optimal_params(5.76e23).expect("allocation");
    assert!(n_star > 1e10 && n_star < 1e11, "{n_star:e}");
}

/// 1000 bootstrap resamples of Epoch's 240 points, each refitted from the full-data optimum
/// alone. Epoch report bootstrap SEs (4000 resamples, from Hoffmann's start) of 0.0154 for α,
/// 0.0206 for β and 0.026 for E; ours must agree within a factor of 1.5 and cover the point fit.
#[test]
fn epoch_chinchilla_bootstrap_standard_errors_match_the_published_ones() {
    let Some(points) = epoch_points() else { return };
    let full = epoch_fit(&points);
    let refit = ParametricOptions {
        grid: ParametricGrid::single(full),
        optimiser: OptimiserSettings {
            threads: 1,
            ..OptimiserSettings::default()
        },
        ..ParametricOptions::default()
    };
    let options = BootstrapOptions {
        resamples: 1000,
        seed: 42,
        ..BootstrapOptions::default()
    };
    let started = Instant::now();
    let summary = bootstrap(points.len(), &options, |idx| {
        let sample: Vec<ParametricPoint> = idx.iter().map(|&i| points[i]).collect();
        let law = fit_parametric(&sample, &refit)?;
        Ok(vec![
            ("alpha".into(), law.alpha),
            ("beta".into(), law.beta),
            ("E".into(), law.irreducible_loss()),
            ("a".into(), law.params_exponent()),
        ])
    })
    .expect("bootstrap");
    println!(
        "Epoch bootstrap, 1000 single-start refits: {:?}; failed {}",
        started.elapsed(),
        summary.failed
    );
    for (name, published_se, point) in [
        ("alpha", 0.0154, full.alpha),
        ("beta", 0.0206, full.beta),
        ("E", 0.026, full.irreducible_loss()),
        ("a", 0.020, full.params_exponent()),
    ] {
        let iv = &summary.intervals[name];
        println!("  {name}: {iv:?} (published SE {published_se})");
        assert!(iv.lo < point && point < iv.hi, "{name}: {iv:?} vs {point}");
        let ratio = iv.std_error / published_se;
        assert!(
            ratio > 1.0 / 1.5 && ratio < 1.5,
            "{name}: SE {} vs {published_se}",
            iv.std_error
        );
    }
    assert!(summary.failed < 50, "{} failed", summary.failed);
}

/// Porian et al.'s "Optimizer tuning (no decay)" configuration on RefinedWeb (dataset `rw`,
/// tuned hyperparameters, standard N counting): 12 budgets, 1.25e16 … 2.56e19.
fn porian_rw_tuned() -> Vec<HashMap<String, String>> {
    let rows: Vec<_> = read_csv(Path::new(PORIAN_CSV))
        .into_iter()
        .filter(|r| r["experiment"] == "Optimizer tuning (no decay)" && r["dataset"] == "rw")
        .filter(|r| !r["n_opt"].is_empty())
        .collect();
    assert_eq!(rows.len(), 12);
    assert!(rows
        .iter()
        .all(|r| r["hparams"] == "tuned" && r["param_count"] == "standard"));
    rows
}

/// Published: OLS a = 0.497029, k = 0.1182; WLS (weights 1/n_star_std²) a = 0.496895,
/// k = 0.1189 (published_fit_results.csv: 0.4970287955 / 0.1181990378 and
/// 0.4968950782 / 0.118926484).
#[test]
fn porian_optimal_size_power_law_reproduces_ols_and_wls() {
    let rows = porian_rw_tuned();
    let c: Vec<f64> = rows.iter().map(|r| num(r, "flops")).collect();
    let n: Vec<f64> = rows.iter().map(|r| num(r, "n_opt")).collect();
    let w: Vec<f64> = rows.iter().map(|r| num(r, "n_star_std").powi(-2)).collect();
    let ols = power_law(&c, &n, None, 0.95).expect("ols");
    let wls = power_law(&c, &n, Some(&w), 0.95).expect("wls");
    println!(
        "Porian RW tuned N*(C), OLS: a = {:.10}, k = {:.10}, r2 = {:.10}, ci_a = {:?}",
        ols.b,
        ols.a(),
        ols.r2,
        ols.ci_b
    );
    println!(
        "Porian RW tuned N*(C), WLS: a = {:.10}, k = {:.10}, r2 = {:.10}, ci_a = {:?}",
        wls.b,
        wls.a(),
        wls.r2,
        wls.ci_b
    );
    assert!((ols.b - 0.497_029).abs() < 5e-5, "{ols:?}");
    assert!((ols.a() - 0.1182).abs() < 5e-5, "{ols:?}");
    assert!((wls.b - 0.496_895).abs() < 5e-5, "{wls:?}");
    assert!((wls.a() - 0.1189).abs() < 5e-5, "{wls:?}");
    assert!((ols.r2 - 0.997_462_601).abs() < 1e-6, "{ols:?}");
    // The published 95% bootstrap interval (0.4907, 0.5045) and Hoffmann's 0.5 lie in or near
    // the t interval of the OLS fit.
    assert!(ols.ci_b.0 < 0.5 && 0.5 < ols.ci_b.1, "{ols:?}");
}

/// Published (`basic` row): A = 128.9319139, E = 2.00555678, α = 0.1059696515, from budgets
/// 1e16 < C < 5e17. The brief allowed E ± 0.01, α ± 0.005, A ± 10%; the fit reaches the same
/// least-squares optimum to about six digits, so the tolerances here are much tighter.
#[test]
fn porian_saturating_loss_law_reproduces_the_published_fit() {
    let rows: Vec<_> = porian_rw_tuned()
        .into_iter()
        .filter(|r| {
            let c = num(r, "flops");
            c > 1e16 && c < 5e17
        })
        .collect();
    assert_eq!(rows.len(), 6);
    let c: Vec<f64> = rows.iter().map(|r| num(r, "flops")).collect();
    let l: Vec<f64> = rows.iter().map(|r| num(r, "loss_opt")).collect();
    let law = fit_saturating(&c, &l, &SaturatingOptions::default()).expect("fit");
    println!(
        "Porian RW tuned L*(C): A = {:.6}, E = {:.8}, alpha = {:.8}; {law:?}",
        law.amplitude(),
        law.irreducible_loss(),
        law.alpha
    );
    assert!(
        (law.irreducible_loss() - 2.005_556_78).abs() < 1e-4,
        "{law:?}"
    );
    assert!((law.alpha - 0.105_969_651_5).abs() < 1e-4, "{law:?}");
    assert!(
        (law.amplitude() / 128.931_913_9 - 1.0).abs() < 1e-3,
        "{law:?}"
    );
    assert_eq!(law.converged_starts, law.starts);
}

/// Issue 22, item 1: fitted on Epoch's Chinchilla points below 2e9 parameters, slaw predicts
/// the 52 larger runs. The interval of the law's mean holds 17 of them; the prediction interval
/// of one new run (the bootstrap plus the runs' scatter around the law) holds 44 (85 %). The 8
/// it misses are mostly under-trained 1.1-1.6e10 models whose loss is 2-4 % above the law: the
/// law's own error 6-8× past the fitted sizes, which no interval built from the fitted points
/// can know. Asserted: at least 80 %.
#[test]
fn epoch_chinchilla_prediction_intervals_hold_the_larger_runs() {
    use slaw::analysis::laws::{fit_all, FitConfig};
    use slaw::analysis::observations::{Observations, ParamsCount, Run};
    use slaw::analysis::predict;
    let Some(points) = epoch_points() else { return };
    let run = |i: usize, p: &ParametricPoint| Run {
        id: i.to_string(),
        size: format!("{:.4e}", p.params),
        params: p.params,
        examples: p.examples,
        epochs: None,
        flops: 6.0 * p.params * p.examples,
        lr: None,
        loss: Some(p.loss),
        curve: vec![(6.0 * p.params * p.examples, p.loss)],
        weight: None,
    };
    let (small, large): (Vec<_>, Vec<_>) = points.iter().partition(|p| p.params < 2e9);
    let obs = Observations {
        source: "epoch below 2e9".into(),
        sweep_id: None,
        params_count: ParamsCount::Total,
        examples_per_epoch: None,
        loss_name: None,
        runs: small.iter().enumerate().map(|(i, p)| run(i, p)).collect(),
        source_hash: None,
        notes: Vec::new(),
    };
    let config = FitConfig {
        lr: false,
        frontier: false,
        isoflop: false,
        bootstrap: 300,
        ..FitConfig::default()
    };
    let report = fit_all(&obs, &[], &config);
    let (mut mean_hits, mut pred_hits, mut abs_err) = (0, 0, 0.0);
    for p in &large {
        let pred = predict::at_size(&report, p.params, p.examples).expect("identified");
        let e = &pred.loss[0];
        abs_err += (e.value / p.loss - 1.0).abs();
        if e.lo.unwrap() <= p.loss && p.loss <= e.hi.unwrap() {
            mean_hits += 1;
        }
        if e.pred_lo.unwrap() <= p.loss && p.loss <= e.pred_hi.unwrap() {
            pred_hits += 1;
        } else {
            println!(
                "  outside: N = {:.3e}, D = {:.3e}, loss {:.4}, predicted {:.4} [{:.4}, {:.4}]",
                p.params,
                p.examples,
                p.loss,
                e.value,
                e.pred_lo.unwrap(),
                e.pred_hi.unwrap()
            );
        }
    }
    let n = large.len();
    println!(
        "Epoch, fitted below 2e9 ({} points), {n} larger runs: mean |error| {:.2} %, \
         interval of the mean holds {mean_hits}, prediction interval holds {pred_hits}",
        small.len(),
        100.0 * abs_err / n as f64
    );
    assert_eq!(n, 52);
    assert!(pred_hits * 100 >= 80 * n, "{pred_hits} of {n}");
    assert!(pred_hits > mean_hits);
}

/// Issue 22, item 5: Porian et al.'s raw IsoFLOP points (RefinedWeb, tuned, no decay: 121 runs,
/// 12 budgets). Approach 2 with each parabola on the sizes within ×e of its budget's best run
/// gives the allocation exponent inside the published interval [0.491, 0.505] (Akima
/// interpolation there); one parabola over each whole budget gave 0.514.
#[test]
fn porian_raw_isoflop_points_give_the_published_exponent() {
    use slaw::fit::{fit_isoflop, BudgetGrouping, IsoFlopPoint, ProfileWindow};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/porian2024/isoflop_points_rw_tuned.csv"
    );
    let points: Vec<IsoFlopPoint> = read_csv(Path::new(path))
        .iter()
        .map(|r| IsoFlopPoint {
            params: num(r, "n"),
            examples: num(r, "t"),
            compute: num(r, "flops"),
            loss: num(r, "loss"),
        })
        .collect();
    assert_eq!(points.len(), 121);
    let grouping = BudgetGrouping::RelativeTolerance(0.05);
    let a = |w| {
        fit_isoflop(&points, &grouping, w, 0.95)
            .unwrap()
            .params_law
            .b
    };
    let (windowed, whole) = (a(ProfileWindow::default()), a(ProfileWindow::Whole));
    println!("Porian RW tuned, raw points: a = {windowed:.4} windowed, {whole:.4} whole budgets");
    assert!((0.491..=0.505).contains(&windowed), "{windowed}");
    assert!((whole - 0.514).abs() < 0.001, "{whole}");
}
