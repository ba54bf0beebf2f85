//! Text summaries of fitted laws (`slaw fit`), predictions (`slaw predict`) and back-tests,
//! shared by the command line and the HTML report.

use comfy_table::Table;

use super::units::{lr, si, table};
use crate::analysis::laws::{FitReport, Method, Samples};
use crate::analysis::observations::ParamsCount;
use crate::analysis::predict::{Estimate, Prediction};
use crate::analysis::BacktestRow;
use crate::fit::CellFlag;

fn interval(samples: Option<&Samples>, name: &str, digits: usize) -> String {
    samples
        .and_then(|s| s.intervals.get(name))
        .map_or(String::new(), |iv| {
            format!(" [{:.digits$}, {:.digits$}]", iv.lo, iv.hi)
        })
}

fn not_fitted<T>(m: &Method<T>) -> Option<String> {
    m.problem().map(|p| format!("  {p}\n"))
}

/// `slaw fit`'s summary.
pub fn fit_summary(r: &FitReport) -> String {
    let mut out = format!(
        "fits of {}: {} runs; N = {} parameters, D = examples seen{}\n\
         intervals: 95 % bootstrap percentile (resampling cells, trials or vertices), t intervals for least squares\n",
        r.source,
        r.runs,
        match r.params_count {
            ParamsCount::Total => "all",
            ParamsCount::NonEmbedding => "non-embedding",
        },
        if r.excluded_sizes.is_empty() {
            String::new()
        } else {
            format!("; left out: {}", r.excluded_sizes.join(", "))
        }
    );
    if let Some(m) = &r.lr {
        out.push_str("\noptimal learning rate per cell (parabola in log2 lr through the best rate and its neighbours)\n");
        if let Some(s) = not_fitted(m) {
            out.push_str(&s);
        }
        if let Some(l) = m.fitted() {
            let mut t = table(&[
                "size", "params", "examples", "epochs", "rates", "best lr", "lr*", "loss*", "notes",
            ]);
            for c in &l.cells {
                let (best, star, loss, mut notes) = match &c.optimum {
                    Some(o) => (
                        lr(o.best_lr),
                        lr(o.lr_star),
                        format!("{:.4}", o.loss_star),
                        o.flags
                            .iter()
                            .map(|f| match f {
                                CellFlag::OnLowEdge => "optimum below the grid",
                                CellFlag::OnHighEdge => "optimum above the grid",
                                CellFlag::FewerThanThreeFinite => {
                                    "no parabola (diverged neighbour)"
                                }
                                CellFlag::NotConvex => "not convex",
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    None => (
                        "–".into(),
                        "–".into(),
                        "–".into(),
                        c.error
                            .clone()
                            .unwrap_or_else(|| "every rate diverged".into()),
                    ),
                };
                if c.seeds > 1 {
                    let sd = c
                        .seed_sd
                        .map_or(String::new(), |s| format!(", seed sd {s:.4}"));
                    let sep = if notes.is_empty() { "" } else { "; " };
                    notes = format!("{notes}{sep}mean of {} seeds{sd}", c.seeds);
                }
                t.add_row(vec![
                    c.size.clone(),
                    si(c.params),
                    si(c.examples),
                    c.epochs.map_or("–".into(), |e| e.to_string()),
                    c.rates.to_string(),
                    best,
                    star,
                    loss,
                    notes,
                ]);
            }
            out.push_str(&format!("{t}\n"));
            let used = l.cells.iter().filter(|c| c.used).count();
            out.push_str(&format!(
                "learning-rate laws on the {used} of {} cells whose optimum is inside the grid:\n",
                l.cells.len()
            ));
            match &l.params_law {
                Method::Fitted(law) => out.push_str(&format!(
                    "  log η* = c0 + c1·log N              c1 = {:.4}{}, c0 = {:.4}{}; R² = {:.3}, n = {}\n",
                    law.c1(),
                    interval(l.params_samples.as_ref(), "c1", 3),
                    law.c0(),
                    interval(l.params_samples.as_ref(), "c0", 3),
                    law.fit.r2,
                    law.fit.n
                )),
                other => out.push_str(&format!(
                    "  log η* on log N: {}\n",
                    other.problem().unwrap_or_default()
                )),
            }
            match &l.budget_law {
                Method::Fitted(law) => out.push_str(&format!(
                    "  log η* = c0 + c1·log N + c2·log D   c1 = {:.4}{}, c2 = {:.4}{}, c0 = {:.4}; R² = {:.3}, n = {}\n",
                    law.c1(),
                    interval(l.budget_samples.as_ref(), "c1", 3),
                    law.c2(),
                    interval(l.budget_samples.as_ref(), "c2", 3),
                    law.c0(),
                    law.fit.r2,
                    law.fit.n
                )),
                other => out.push_str(&format!(
                    "  log η* on log N and log D: {}\n",
                    other.problem().unwrap_or_default()
                )),
            }
        }
    }
    if let Some(m) = &r.frontier {
        out.push_str("\ncompute frontier (approach 1: lower envelope of every validation curve)\n");
        if let Some(s) = not_fitted(m) {
            out.push_str(&s);
        }
        if let Some(f) = m.fitted() {
            out.push_str(&format!(
                "  {} frontier points from {} of {} trials, C = {} … {} FLOPs\n",
                f.fit.frontier.points.len(),
                {
                    let mut t = f.frontier_trials.clone();
                    t.sort();
                    t.dedup();
                    t.len()
                },
                f.trials,
                si(f.fit.frontier.points.first().map_or(0.0, |p| p.compute)),
                si(f.fit.frontier.points.last().map_or(0.0, |p| p.compute)),
            ));
            if let Some(p) = &f.fit.power_law {
                out.push_str(&format!(
                    "  L = a·C^b            b = {:.5}{}, a = {:.4}; R² = {:.4}\n",
                    p.b,
                    interval(f.power_samples.as_ref(), "b", 5),
                    p.a(),
                    p.r2
                ));
            }
            if let Some(s) = &f.fit.saturating {
                let ss = f.saturating_samples.as_ref();
                let e_iv = ss
                    .and_then(|s| s.interval_of(|v| v[0].exp()))
                    .map_or(String::new(), |iv| format!(" [{:.4}, {:.4}]", iv.lo, iv.hi));
                out.push_str(&format!(
                    "  L = E + A·C^−α       E = {:.4}{e_iv}, α = {:.4}{}, A = {}\n",
                    s.irreducible_loss(),
                    s.alpha,
                    interval(ss, "alpha", 4),
                    sig(s.amplitude())
                ));
            }
            if let Some(note) = &f.saturating_note {
                out.push_str(&format!("  {note}\n"));
            }
            let alloc = f.allocation_samples.as_ref();
            match &f.params_law {
                Method::Fitted(p) => out.push_str(&format!(
                    "  N*(C) = a·C^b        b = {:.4}{} over the frontier's trials\n",
                    p.b,
                    interval(alloc, "params_b", 4)
                )),
                other => out.push_str(&format!(
                    "  N*(C): {}\n",
                    other.problem().unwrap_or_default()
                )),
            }
            if let Method::Fitted(p) = &f.examples_law {
                out.push_str(&format!(
                    "  D*(C) = a·C^b        b = {:.4}{}\n",
                    p.b,
                    interval(alloc, "examples_b", 4)
                ));
            }
        }
    }
    if let Some(m) = &r.isoflop {
        out.push_str(
            "\nIsoFLOP profiles (approach 2: parabola of loss against log N per compute budget)\n",
        );
        if let Some(s) = not_fitted(m) {
            out.push_str(&s);
        }
        if let Some(i) = m.fitted() {
            if i.interpolated {
                out.push_str("  budgets made by interpolating each size's best loss between its epoch budgets (log C, log L)\n");
            }
            let mut t = table(&["C", "sizes", "N range", "N*", "D*", "L*", "notes"]);
            for b in &i.fit.budgets {
                t.add_row(vec![
                    si(b.compute),
                    b.distinct_sizes.to_string(),
                    format!("{} – {}", si(b.params_range.0), si(b.params_range.1)),
                    b.params_star.map_or("–".into(), si),
                    b.examples_star.map_or("–".into(), si),
                    b.loss_star.map_or("–".into(), |l| format!("{l:.4}")),
                    b.flags
                        .iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                ]);
            }
            out.push_str(&format!("{t}\n"));
            let s = i.samples.as_ref();
            if let Some(w) = i.window {
                out.push_str(&format!(
                    "  each parabola fitted to the sizes within ×{:.1} of its budget's best run\n",
                    w.exp()
                ));
            }
            if let Some(n) = &i.noise {
                out.push_str(&format!(
                    "  bootstrap: every run's loss drawn anew with {:.2} % noise ({}, {} dof)\n",
                    100.0 * n.relative_sd,
                    n.source,
                    n.dof
                ));
            }
            out.push_str(&format!(
                "  N*(C) = a·C^b        b = {:.4}{}\n  D*(C) = a·C^b        b = {:.4}{}\n",
                i.fit.params_law.b,
                interval(s, "params_b", 4),
                i.fit.examples_law.b,
                interval(s, "examples_b", 4),
            ));
        }
    }
    if let Some(m) = &r.parametric {
        out.push_str("\nparametric law (approach 3: L(N, D) = E + A/N^α + B/D^β, Huber δ = 1e-3 on log residuals, L-BFGS from 4500 starts)\n");
        if let Some(s) = not_fitted(m) {
            out.push_str(&s);
        }
        if let Some(p) = m.fitted() {
            let s = p.samples.as_ref();
            let exp_iv = |i: usize| {
                s.and_then(|s| s.interval_of(|v| v[i].exp()))
                    .map_or(String::new(), |iv| {
                        format!(" [{}, {}]", sig(iv.lo), sig(iv.hi))
                    })
            };
            let ratio_iv = s
                .and_then(|s| s.interval_of(|v| v[4] / (v[3] + v[4])))
                .map_or(String::new(), |iv| format!(" [{:.3}, {:.3}]", iv.lo, iv.hi));
            out.push_str(&format!(
                "  E = {}{}  A = {}{}  B = {}{}\n  α = {:.4}{}  β = {:.4}{}  β/(α+β) = {:.3}{ratio_iv} (N* ∝ C^β/(α+β))\n  {} points (best run per cell), objective {:.6}, {} of {} starts converged, k = C/(N·D) = {:.3}\n",
                sig(p.law.irreducible_loss()),
                exp_iv(0),
                sig(p.law.amplitude_params()),
                exp_iv(1),
                sig(p.law.amplitude_examples()),
                exp_iv(2),
                p.law.alpha,
                interval(s, "alpha", 4),
                p.law.beta,
                interval(s, "beta", 4),
                p.law.beta / (p.law.alpha + p.law.beta),
                p.law.n,
                p.law.objective,
                p.law.converged_starts,
                p.law.starts,
                p.flops_per_param_example
            ));
        }
    }
    out
}

/// Four significant digits, in scientific notation outside [0.01, 10⁴).
fn sig(x: f64) -> String {
    if x != 0.0 && !(1e-2..1e4).contains(&x.abs()) {
        format!("{x:.3e}")
    } else {
        let digits = (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{x:.digits$}")
    }
}

fn estimate_cell(e: &Estimate, fmt: &dyn Fn(f64) -> String) -> String {
    match (e.lo, e.hi) {
        (Some(lo), Some(hi)) => format!("{} [{}, {}]", fmt(e.value), fmt(lo), fmt(hi)),
        _ => fmt(e.value),
    }
}

/// `slaw predict`'s table.
pub fn prediction(p: &Prediction) -> String {
    let mut out = String::new();
    let mut head = Vec::new();
    if let Some(n) = p.params {
        head.push(format!("N = {}", si(n)));
    }
    if let Some(d) = p.examples {
        head.push(format!("D = {} examples", si(d)));
    }
    if let Some(c) = p.flops {
        head.push(format!("C = {} FLOPs", si(c)));
    }
    out.push_str(&format!("prediction at {}\n", head.join(", ")));
    if !p.fits.is_empty() {
        let ids: Vec<String> = p
            .fits
            .iter()
            .map(|f| format!("{} ({})", f.id, f.method))
            .collect();
        let when = p.fits.iter().map(|f| f.created_at).fold(0.0, f64::max);
        let without = p
            .fits
            .iter()
            .find(|f| !f.excluded_sizes.is_empty())
            .map_or("all sizes".to_string(), |f| {
                format!("fitted without {}", f.excluded_sizes.join(", "))
            });
        out.push_str(&format!(
            "from stored fits {} of {} UTC, {without}\n",
            ids.join(", "),
            crate::report::utc(when)
        ));
    }
    let mut t: Table = table(&[
        "quantity",
        "prediction [95 % interval of the law]",
        "one new run [95 % prediction interval]",
        "from",
    ]);
    for e in &p.loss {
        t.add_row(vec![
            "validation loss".to_string(),
            estimate_cell(e, &|v| format!("{v:.4}")),
            match (e.pred_lo, e.pred_hi) {
                (Some(lo), Some(hi)) => format!("[{lo:.4}, {hi:.4}]"),
                _ => "–".into(),
            },
            e.method.clone(),
        ]);
    }
    for e in &p.params_star {
        t.add_row(vec![
            "compute-optimal N".to_string(),
            estimate_cell(e, &si),
            "–".into(),
            e.method.clone(),
        ]);
    }
    for e in &p.examples_star {
        t.add_row(vec![
            "compute-optimal D".to_string(),
            estimate_cell(e, &si),
            "–".into(),
            e.method.clone(),
        ]);
    }
    for e in &p.lr {
        t.add_row(vec![
            "optimal learning rate".to_string(),
            estimate_cell(e, &lr),
            "–".into(),
            e.method.clone(),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    if p.loss.iter().any(|e| e.pred_lo.is_some()) {
        out.push_str(
            "the interval of the law: where the mean loss of runs like this lies (the laws' \
             bootstrap); the prediction interval: where one new run will land (the same, plus \
             the scatter of single runs around the law)\n",
        );
    }
    for n in &p.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

/// The back-test table: predictions for a held-out size against what it gave.
pub fn backtest(size: &str, rows: &[BacktestRow]) -> String {
    let mut t = table(&[
        "epochs",
        "actual loss",
        "predicted loss [95 %]",
        "error",
        "actual lr*",
        "predicted lr* [95 %]",
        "ratio",
    ]);
    for r in rows {
        let loss_err = match (r.actual_loss, &r.predicted_loss) {
            (Some(a), Some(p)) => format!("{:+.1} %", 100.0 * (p.value - a) / a),
            _ => "–".into(),
        };
        let lr_ratio = match (r.actual_lr, &r.predicted_lr) {
            (Some(a), Some(p)) => format!(
                "{:.2}×{}",
                p.value / a,
                if r.actual_lr_bracketed {
                    ""
                } else {
                    " (actual on grid edge)"
                }
            ),
            _ => "–".into(),
        };
        t.add_row(vec![
            r.epochs.map_or("–".into(), |e| e.to_string()),
            r.actual_loss.map_or("–".into(), |l| format!("{l:.4}")),
            r.predicted_loss
                .as_ref()
                .map_or("–".into(), |e| estimate_cell(e, &|v| format!("{v:.4}"))),
            loss_err,
            r.actual_lr.map_or("–".into(), lr),
            r.predicted_lr
                .as_ref()
                .map_or("–".into(), |e| estimate_cell(e, &lr)),
            lr_ratio,
        ]);
    }
    format!("back-test: laws fitted without {size}, against what {size} gave\n{t}\n")
}

/// `slaw fit --audit`: back-tests side by side, the disagreement about N* at the next budget,
/// and the conventions card.
pub fn audit(a: &crate::analysis::audit::Audit) -> String {
    let mut out = String::from(
        "audit: every method refitted without the largest size and without each budget, \
         predicting what was left out\n",
    );
    let mut t = table(&[
        "left out",
        "method",
        "predicts",
        "n",
        "mean |error|",
        "bias",
        "inside its 95 % interval",
    ]);
    for b in &a.backtests {
        let pct = |v: Option<f64>, sign: bool| {
            v.map_or("–".into(), |v| {
                if sign {
                    format!("{:+.2} %", 100.0 * v)
                } else {
                    format!("{:.2} %", 100.0 * v)
                }
            })
        };
        t.add_row(vec![
            b.held_out.clone(),
            b.method.clone(),
            b.quantity.clone(),
            b.compared.to_string(),
            pct(b.mean_abs_error, false),
            pct(b.mean_error, true),
            match &b.note {
                Some(n) if b.compared == 0 => n.clone(),
                _ => format!("{} of {}", b.covered, b.compared),
            },
        ]);
    }
    out.push_str(&format!("{t}\n"));
    let al = &a.allocation;
    out.push_str(&format!(
        "\ncompute-optimal N at the next budget, C = {} FLOPs:\n",
        si(al.compute)
    ));
    for e in &al.params_star {
        let wasted = al
            .wasted_compute
            .iter()
            .find(|(m, _)| *m == e.method)
            .map_or(String::new(), |(_, w)| {
                format!("   wastes {:.1} % of the compute", 100.0 * w)
            });
        out.push_str(&format!(
            "  {:<28} N* = {}{wasted}\n",
            e.method,
            estimate_cell(e, &si)
        ));
    }
    if let Some(s) = al.spread {
        out.push_str(&format!(
            "  the methods disagree by {s:.2}× (largest over smallest N*); the waste is priced by \
             the parametric law: 1 − C'/C, C' the compute at which its optimum reaches the same loss\n"
        ));
    }
    for n in &al.notes {
        out.push_str(&format!("  note: {n}\n"));
    }
    out.push_str("\nconventions card:\n");
    for (k, v) in &a.card {
        out.push_str(&format!("  {k:<11} {v}\n"));
    }
    out.push_str(&format!("audit took {:.1} s\n", a.seconds));
    out
}
