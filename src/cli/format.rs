//! Human-readable tables and numbers for the command line.

use comfy_table::{CellAlignment, Table};

use slaw::exec::worker::WorkerEvent;
use slaw::plan::Plan;
pub use slaw::report::units::{duration, lr, parse_si, si, table};
use slaw::store::{TrialRow, TrialState};
use slaw::sweep::SweepStatus;

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".into(), |v| format!("{v:.digits$}"))
}

fn right(t: &mut Table, from: usize) {
    for i in from..t.column_count() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// `slaw plan`'s table. A command trainer's unknown counts (reported by the script as it
/// runs) show as `?`.
pub fn plan_table(plan: &Plan) -> String {
    let mut t = table(&[
        "trial", "size", "params", "non-emb", "epochs", "examples", "lr", "seed", "FLOPs/ex",
        "FLOPs",
    ]);
    let known = |x: f64, command: bool| {
        if command && x == 0.0 {
            "?".to_string()
        } else {
            si(x)
        }
    };
    for tr in &plan.trials {
        let c = tr.config.command().is_some();
        t.add_row(vec![
            tr.key.to_string(),
            tr.size.clone(),
            known(tr.params as f64, c),
            known(tr.params_non_embedding as f64, c),
            format!("{}", tr.epochs),
            known(tr.examples as f64, c),
            lr(tr.lr),
            tr.seed.to_string(),
            known(tr.flops_per_example as f64, c),
            known(tr.flops, c),
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
    let eta = match s.progress.remaining_seconds {
        Some(r) if s.counts.running > 0 || r == 0.0 => {
            format!(", {} left at this pace", duration(r))
        }
        _ => String::new(),
    };
    out.push_str(&format!("progress: {}{eta}", s.progress.describe()));
    if s.progress.basis == slaw::sweep::progress::Basis::Compute && s.total_flops > 0.0 {
        out.push_str(&format!(
            " ({} of {} training FLOPs)",
            si(s.total_flops - s.remaining_flops),
            si(s.total_flops)
        ));
    }
    out.push('\n');
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
    if !s.slurm_jobs.is_empty() {
        let jobs: Vec<String> = s
            .slurm_jobs
            .iter()
            .map(|j| {
                format!(
                    "{} ({} task{}{}, {})",
                    j.job_id,
                    j.tasks,
                    if j.tasks == 1 { "" } else { "s" },
                    j.max_parallel.map_or(String::new(), |m| format!(" %{m}")),
                    j.state
                )
            })
            .collect();
        out.push_str(&format!("slurm jobs: {}\n", jobs.join(", ")));
    }
    if !s.slurm_tasks.is_empty() {
        out.push_str(&format!(
            "running in slurm tasks: {}\n",
            s.slurm_tasks.join(", ")
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
