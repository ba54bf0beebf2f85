//! Human-readable tables and numbers for the command line.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, CellAlignment, Table};

use crate::exec::worker::WorkerEvent;
use crate::plan::Plan;
use crate::store::{TrialRow, TrialState};
use crate::sweep::SweepStatus;

/// A number with an SI suffix and three significant digits: 1.23G, 45.6M, 789.
pub fn si(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    const UNITS: [(f64, &str); 6] = [
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    for (scale, unit) in UNITS {
        if x.abs() >= scale {
            return format!("{}{unit}", three_digits(x / scale));
        }
    }
    three_digits(x)
}

fn three_digits(x: f64) -> String {
    if x.abs() >= 100.0 || x == x.trunc() && x.abs() < 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A learning rate with three significant digits: `3e-3`, `1.53e-4`, `0.0132`, `1.6`.
pub fn lr(x: f64) -> String {
    if (1e-2..10.0).contains(&x) {
        let digits = (2 - x.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{x:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = m.trim_end_matches('0').trim_end_matches('.');
        format!("{m}e{e}")
    }
}

/// Seconds as `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.iter().map(Cell::new));
    t
}

fn right(t: &mut Table, from: usize) {
    for i in from..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// `slaw plan`'s table.
pub fn plan_table(plan: &Plan) -> String {
    let mut t = table(&[
        "trial", "size", "params", "non-emb", "epochs", "examples", "lr", "seed", "FLOPs/ex",
        "FLOPs",
    ]);
    for tr in &plan.trials {
        t.add_row(vec![
            tr.key.clone(),
            tr.size.clone(),
            si(tr.params as f64),
            si(tr.params_non_embedding as f64),
            format!("{}", tr.epochs),
            si(tr.examples as f64),
            lr(tr.lr),
            tr.seed.to_string(),
            si(tr.flops_per_example as f64),
            si(tr.flops),
        ]);
    }
    t.add_row(vec![
        "total".to_string(),
        format!("{} trials", plan.totals.trials),
        String::new(),
        String::new(),
        String::new(),
        si(plan.totals.examples as f64),
        String::new(),
        String::new(),
        String::new(),
        si(plan.totals.flops),
    ]);
    right(&mut t, 2);
    format!("sweep {}\n{t}", plan.sweep)
}

fn best_table(best: &[TrialRow]) -> Table {
    let mut t = table(&[
        "size", "params", "epochs", "best lr", "val loss", "val acc", "trial", "time",
    ]);
    for b in best {
        t.add_row(vec![
            b.size_name.clone(),
            si(b.params as f64),
            format!("{}", b.epochs),
            lr(b.lr),
            opt(b.final_val_loss, 4),
            opt(b.final_val_accuracy, 4),
            b.key.clone(),
            b.wall_seconds.map_or("–".into(), duration),
        ]);
    }
    right(&mut t, 1);
    t
}

fn counts_line(s: &SweepStatus) -> String {
    let c = &s.counts;
    let mut parts: Vec<String> = TrialState::ALL
        .iter()
        .filter(|st| c.get(**st) > 0)
        .map(|st| format!("{} {st}", c.get(*st)))
        .collect();
    if parts.is_empty() {
        parts.push("no trials".into());
    }
    format!("{} trials: {}", c.total(), parts.join(", "))
}

/// `slaw status` for one sweep.
pub fn status(s: &SweepStatus) -> String {
    let mut out = format!("sweep {}: {}\n", s.name, counts_line(s));
    if s.total_flops > 0.0 {
        out.push_str(&format!(
            "compute: {} of {} training FLOPs done ({:.0} %)\n",
            si(s.total_flops - s.remaining_flops),
            si(s.total_flops),
            100.0 * (1.0 - s.remaining_flops / s.total_flops)
        ));
    }
    if !s.best_per_size.is_empty() {
        out.push_str("best completed trial per model size (lowest final validation loss):\n");
        out.push_str(&best_table(&s.best_per_size).to_string());
        out.push('\n');
    }
    if let Some(r) = &s.slowest_running {
        let t = &r.trial;
        out.push_str(&format!(
            "slowest running: {} (size {}, {} epochs, lr {}) step {}/{} on {} by {}, running {}, {} left\n",
            t.key,
            t.size_name,
            t.epochs,
            lr(t.lr),
            t.progress_step.unwrap_or(0),
            t.steps,
            t.device.as_deref().unwrap_or("?"),
            t.worker.as_deref().unwrap_or("?"),
            duration(r.elapsed),
            r.remaining.map_or("?".into(), duration)
        ));
    }
    for f in &s.failed {
        out.push_str(&format!(
            "failed: {} (size {}, lr {}) after {} attempt(s): {}\n",
            f.key,
            f.size_name,
            lr(f.lr),
            f.attempts,
            f.error.as_deref().unwrap_or("?")
        ));
    }
    out
}

/// What `slaw run` prints at the end.
pub fn run_summary(s: &SweepStatus, wall_seconds: f64) -> String {
    let done = s.counts.completed + s.counts.diverged;
    let rate = if wall_seconds > 0.0 {
        format!(", {:.1} trials/min", 60.0 * done as f64 / wall_seconds)
    } else {
        String::new()
    };
    format!(
        "finished in {}{rate}\n{}",
        duration(wall_seconds),
        status(s)
    )
}

/// A line for each trial that ended.
pub fn finished_line(t: &TrialRow) -> String {
    let mark = match t.state {
        TrialState::Completed => "done",
        TrialState::Diverged => "DIVERGED",
        TrialState::Failed => "FAILED",
        TrialState::Interrupted => "interrupted",
        _ => "?",
    };
    let mut line = format!(
        "{mark:>11} {} size {} epochs {} lr {} seed {}",
        t.key,
        t.size_name,
        t.epochs,
        lr(t.lr),
        t.seed
    );
    if let Some(v) = t.final_val_loss {
        line.push_str(&format!(
            " | val loss {v:.4} acc {}",
            opt(t.final_val_accuracy, 3)
        ));
    }
    if let Some(w) = t.wall_seconds {
        line.push_str(&format!(" | {}", duration(w)));
    }
    if t.state != TrialState::Completed {
        if let Some(e) = &t.error {
            line.push_str(&format!(" | {e}"));
        }
    }
    line
}

/// A line for each worker event (`slaw worker` without `--quiet`).
pub fn worker_event(e: &WorkerEvent) -> String {
    match e {
        WorkerEvent::Claimed { key, attempt } => format!("claimed {key} (attempt {attempt})"),
        WorkerEvent::Finished {
            key,
            state,
            val_loss,
            wall_seconds,
            error,
        } => {
            let mut s = format!("{state} {key} in {}", duration(*wall_seconds));
            if let Some(v) = val_loss {
                s.push_str(&format!(", val loss {v:.4}"));
            }
            if let Some(e) = error {
                s.push_str(&format!(": {e}"));
            }
            s
        }
        WorkerEvent::LeaseLost { key } => {
            format!("lost the lease of {key}: another worker took it over; nothing written")
        }
        WorkerEvent::Reaped { count } => format!("took back {count} trial(s) of dead workers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(si(1.234e12), "1.23T");
        assert_eq!(si(45_600_000.0), "45.6M");
        assert_eq!(si(789.0), "789");
        assert_eq!(si(1000.0), "1k");
        assert_eq!(lr(0.003), "3e-3");
        assert_eq!(lr(0.00015), "1.5e-4");
        assert_eq!(lr(0.009407), "9.41e-3");
        assert_eq!(lr(0.013245), "0.0132");
        assert_eq!(lr(0.1), "0.1");
        assert_eq!(lr(1.6), "1.6");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 05 s");
    }
}

/// Parses a number with an optional SI suffix: `1.86M`, `2.5e9`, `3G`, `600k`.
pub fn parse_si(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (digits, scale) = match t.chars().last() {
        Some('k') | Some('K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G') | Some('B') => (&t[..t.len() - 1], 1e9),
        Some('T') => (&t[..t.len() - 1], 1e12),
        Some('P') => (&t[..t.len() - 1], 1e15),
        Some('E') if !t[..t.len() - 1].is_empty() && !t.ends_with("eE") => {
            (&t[..t.len() - 1], 1e18)
        }
        _ => (t, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "{text:?} is not a positive number (e.g. 1.2e9, 1.2G, 350M, 600k)"
        )),
    }
}

#[cfg(test)]
mod parse_tests {
    use super::parse_si;

    #[test]
    fn si_suffixes() {
        assert_eq!(parse_si("1.5M").unwrap(), 1.5e6);
        assert_eq!(parse_si("2e9").unwrap(), 2e9);
        assert_eq!(parse_si("600k").unwrap(), 6e5);
        assert_eq!(parse_si("3G").unwrap(), 3e9);
        assert!(parse_si("-1").is_err());
        assert!(parse_si("abc").is_err());
    }
}
