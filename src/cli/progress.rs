//! The live view of `slaw run`: an indicatif progress bar on a terminal (compute done with ETA,
//! trials done / total, one line per running trial with its step and loss), or plain log lines
//! when standard error is not a terminal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format::{duration, finished_line, lr};
use super::out::{escape_controls, outln};
use slaw::exec::local::{Note, Observer, Snapshot};
use slaw::sweep::progress::{estimate, TrialWork};

/// Resolution of the compute bar.
const BAR_UNITS: u64 = 1_000_000;

/// Draws a local run's progress.
pub struct RunView {
    interactive: bool,
    /// Trials that run at once (job slots; 0: as many as workers are alive).
    slots: usize,
    multi: MultiProgress,
    main: ProgressBar,
    trials: HashMap<i64, ProgressBar>,
    last_log: Instant,
}

impl RunView {
    /// A view drawing bars when `interactive`, log lines otherwise, of a run with `slots`
    /// trials at once (0 when the executor decides: Slurm).
    pub fn new(interactive: bool, slots: usize) -> Self {
        let multi = MultiProgress::with_draw_target(if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let main = multi.add(ProgressBar::new(BAR_UNITS));
        main.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        main.enable_steady_tick(Duration::from_millis(200));
        RunView {
            interactive,
            slots,
            multi,
            main,
            trials: HashMap::new(),
            last_log: Instant::now(),
        }
    }

    fn println(&self, line: &str) {
        if self.interactive {
            let _ = self.multi.println(escape_controls(line));
        } else {
            outln!("{line}");
        }
    }

    /// Clears the bars.
    pub fn finish(&mut self) {
        for (_, bar) in self.trials.drain() {
            bar.finish_and_clear();
        }
        self.main.finish_and_clear();
    }
}

impl Observer for RunView {
    fn snapshot(&mut self, s: &Snapshot) {
        for r in &s.reaped {
            self.println(&format!("  took back trial {}: {}", r.trial_id, r.reason));
        }
        for t in &s.finished {
            if let Some(bar) = self.trials.remove(&t.id) {
                bar.finish_and_clear();
            }
            self.println(&finished_line(t));
        }
        let c = &s.counts;
        let ended = c.finished();
        let msg = format!(
            "{ended}/{} trials ended · {} running{}{}",
            c.total(),
            c.running,
            if c.diverged > 0 {
                format!(" · {} diverged", c.diverged)
            } else {
                String::new()
            },
            if c.failed > 0 {
                format!(" · {} failed", c.failed)
            } else {
                String::new()
            },
        );
        let work: Vec<TrialWork> = s.work.iter().map(TrialWork::from).collect();
        let parallel = if self.slots > 0 {
            self.slots
        } else {
            s.workers
        };
        let progress = estimate(&work, parallel);
        let fraction = progress.fraction;
        let eta = progress.remaining_seconds.map_or("?".into(), duration);
        self.main.set_position((fraction * BAR_UNITS as f64) as u64);
        self.main.set_message(
            escape_controls(&format!("{} · ETA {eta} · {msg}", progress.describe())).into_owned(),
        );

        if self.interactive {
            let running: std::collections::HashSet<i64> = s.running.iter().map(|t| t.id).collect();
            self.trials.retain(|id, bar| {
                let keep = running.contains(id);
                if !keep {
                    bar.finish_and_clear();
                }
                keep
            });
            for t in &s.running {
                let bar = self.trials.entry(t.id).or_insert_with(|| {
                    let b = self.multi.add(ProgressBar::new(t.steps.max(1) as u64));
                    b.set_style(
                        ProgressStyle::with_template("  {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar()),
                    );
                    b
                });
                bar.set_message(
                    escape_controls(&format!(
                        "{} size {} · epochs {} · lr {} · step {}/{} · loss {}",
                        t.key,
                        t.size_name,
                        t.epochs,
                        lr(t.lr),
                        t.progress_step.unwrap_or(0),
                        t.steps,
                        t.progress_loss.map_or("–".into(), |l| format!("{l:.4}"))
                    ))
                    .into_owned(),
                );
            }
        } else if self.last_log.elapsed() >= Duration::from_secs(30) {
            self.last_log = Instant::now();
            outln!(
                "[{}] {msg} · {} · ETA {eta}",
                duration(s.elapsed),
                progress.describe()
            );
        }
    }

    fn note(&mut self, note: &Note) {
        match note {
            Note::WorkerLine { slot, line } => self.println(&format!("  [worker {slot}] {line}")),
            Note::WorkerFailed { slot, status } => {
                self.println(&format!("  [worker {slot}] ended with {status}"))
            }
            Note::Message(line) => self.println(&format!("  {line}")),
        }
    }
}
