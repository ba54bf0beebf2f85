//! The `slaw` command line: clap definitions and the wiring of each command to the library.
//! No logic lives here beyond argument handling, output formatting and exit codes.

mod args;
mod bench;
mod bench_claims;
mod bench_data;
mod bench_metrics;
pub mod exit;
mod fit;
mod format;
mod host_profile;
mod images;
pub(crate) mod out;
mod progress;
mod results;
mod run;
mod step_bench;

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use args::{Cli, Command};
use exit::invalid;
use out::{errln, out, outln};
use slaw::spec::{self, SpecError};
use slaw::store::{Location, Store};
use slaw::sweep;

/// Exit code for invalid input (a bad sweep file or argument).
pub const EXIT_INVALID: u8 = exit::INVALID;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = exit::INTERRUPTED;

/// Set by Ctrl-C / SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

/// A flag that Ctrl-C, SIGTERM and SIGHUP set. With `second_signal_exits`, a second signal ends
/// the process at once (for `slaw run`, whose user may not want to wait). Workers never do:
/// the kernel may deliver their parent-death SIGTERM more than once (once per exiting thread
/// of the parent), and a worker must always get to record its trial as interrupted.
fn stop_flag(second_signal_exits: bool) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let shared = flag.clone();
    let _ = ctrlc::set_handler(move || {
        if STOP.swap(true, Ordering::SeqCst) && second_signal_exits {
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
        shared.store(true, Ordering::SeqCst);
    });
    flag
}

/// `slaw --version`: the version, the git commit built from and the compiled backends.
pub fn version() -> String {
    let backends = if cfg!(feature = "cuda") {
        "cpu, cuda"
    } else {
        "cpu"
    };
    format!(
        "{} (commit {}; backends: {backends})",
        env!("CARGO_PKG_VERSION"),
        env!("SLAW_GIT_COMMIT")
    )
}

fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    // clap keeps the version for the life of the command: one small string per process.
    let version: &'static str = Box::leak(version().into_boxed_str());
    Cli::command().version(version)
}

/// Runs the command line; the binary's `main` calls only this.
pub fn main() -> ExitCode {
    use clap::FromArgMatches;
    let cli = match Cli::from_arg_matches(&cli_command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("slaw: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(err) => {
            if let Some(SpecError::Invalid(problems)) = err.downcast_ref::<SpecError>() {
                for p in problems {
                    errln!("{p}");
                }
                return ExitCode::from(EXIT_INVALID);
            }
            errln!("slaw: {}", exit::render(&err));
            exit::exit_code_for(&err)
        }
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    if matches!(command, Command::Run(_) | Command::Worker(_)) {
        // Trials go on when nobody reads the output any more (`slaw run … | head`).
        out::keep_going_when_output_closes();
    }
    match command {
        Command::Validate { file, max_trials } => validate(&file, max_trials),
        Command::Plan {
            file,
            json,
            max_trials,
        } => plan(&file, json, max_trials),
        Command::Run(args) => run::run(args).await,
        Command::Worker(args) => run::worker(args).await,
        Command::Fit(args) => fit::fit(args).await,
        Command::Predict(args) => fit::predict(args).await,
        Command::Plot(args) => results::plot(args).await,
        Command::Report(args) => results::report(args).await,
        Command::Query(args) => results::query(args).await,
        Command::Export(args) => results::export(args).await,
        Command::Show { db, key, json } => results::show(&db.db, &key, json).await,
        Command::Bench(args) => bench::bench(args),
        Command::GenerateImages(args) => images::generate(args),
        Command::BenchClaims(args) => bench::claims(args).await,
        Command::BenchMetrics(args) => bench::metrics(args).await,
        Command::BenchFit(args) => bench::fit(args),
        Command::BenchData(args) => bench_data::bench_data(args),
        Command::Status { db, sweep, json } => status(&db.db, sweep.as_deref(), json).await,
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cli_command(), "slaw", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads a sweep file allowing up to `max_trials` trials; an images data set is decoded into
/// the cache of database `db` (see [`data_cache`]), with a progress bar.
fn load_spec(
    file: &Path,
    max_trials: u64,
    db: Option<&Location>,
) -> Result<(slaw::spec::SweepSpec, String)> {
    let bar = std::sync::OnceLock::<indicatif::ProgressBar>::new();
    let progress = move |done: u64, total: u64| {
        let bar = bar.get_or_init(|| {
            let b = indicatif::ProgressBar::new(total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "decoding images {bar:30} {pos}/{len} ({per_sec}, {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    };
    let limits = spec::Limits {
        max_trials,
        data: spec::DataOptions {
            cache: Some(data_cache(db)),
            progress: Some(std::sync::Arc::new(progress)),
        },
    };
    Ok(spec::load_with(file, &limits)?)
}

/// Where image data sets are decoded: `$SLAW_CACHE`, else `slaw-cache` beside the SQLite
/// database (`db`, else `$SLAW_DB` or the default), else `~/.cache/slaw` (PostgreSQL: set
/// `SLAW_CACHE` to a shared folder on a cluster).
pub(crate) fn data_cache(db: Option<&Location>) -> std::path::PathBuf {
    let fallback = std::env::var("SLAW_DB")
        .ok()
        .and_then(|v| Location::parse(&v).ok())
        .unwrap_or_else(|| Location::Sqlite(slaw::store::DEFAULT_DB.into()));
    match db.unwrap_or(&fallback) {
        Location::Sqlite(path) => slaw_data::cache_root(Some(path)),
        Location::Postgres(_) => slaw_data::cache_root(None),
    }
}

fn validate(file: &Path, max_trials: u64) -> Result<ExitCode> {
    let (spec, _) = load_spec(file, max_trials, None)?;
    let plan = slaw::plan::expand(&spec);
    let lrs = match spec.adaptive {
        Some(_) => format!(
            "an adaptive learning-rate search (coarse grid of {})",
            spec.lrs.len()
        ),
        None => format!("{} learning rates", spec.lrs.len()),
    };
    let planned = if spec.adaptive.is_some() {
        "planned so far"
    } else {
        "trials"
    };
    let flops = if plan.totals.flops == 0.0 && spec.command().is_some() {
        "training FLOPs reported by the command".to_string()
    } else {
        format!("{} training FLOPs", format::si(plan.totals.flops))
    };
    outln!(
        "{}: sweep {:?} is valid: {} sizes × {} budgets × {lrs} × {} seeds; {} {planned}, {flops}",
        file.display(),
        spec.name,
        spec.size_count(),
        spec.epochs.len(),
        spec.seeds.len(),
        plan.trials.len(),
    );
    if let Some(job) = plan.trials.first().and_then(|t| t.config.command()) {
        outln!("first trial runs: {}", job.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn plan(file: &Path, json: bool, max_trials: u64) -> Result<ExitCode> {
    let (spec, _) = load_spec(file, max_trials, None)?;
    let plan = slaw::plan::expand(&spec);
    if json {
        outln!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        outln!("{}", format::plan_table(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(db: &Location, sweep_name: Option<&str>, json: bool) -> Result<ExitCode> {
    let store = open_reader(db).await?;
    let sweeps = match sweep_name {
        Some(name) => vec![store.sweep(name).await?],
        None => store.sweeps().await?,
    };
    let mut all = Vec::new();
    for s in &sweeps {
        all.push(sweep::status(&store, s).await?);
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&all)?);
    } else if all.is_empty() {
        outln!("no sweeps in {db}");
    } else {
        for s in &all {
            outln!("{}", format::status(s));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The sweep named `name`, or the only sweep in the store.
async fn pick_sweep(store: &Store, name: Option<&str>) -> Result<slaw::store::SweepRow> {
    if let Some(name) = name {
        return Ok(store.sweep(name).await?);
    }
    let mut sweeps = store.sweeps().await?;
    match sweeps.len() {
        1 => Ok(sweeps.remove(0)),
        0 => invalid!("the database has no sweeps"),
        _ => invalid!(
            "the database has several sweeps ({}): choose one with --sweep",
            sweeps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Opens the database for a command that only reads: nothing is created, migrated or
/// written (a missing, empty or foreign database is an error, exit code 2).
async fn open_reader(db: &Location) -> Result<Store> {
    Store::open_read_only(db).await.map_err(|e| located(e, db))
}

/// Opens (creating and migrating as needed) the database for a command that writes.
async fn open_writer(db: &Location) -> Result<Store> {
    Store::open(db).await.map_err(|e| located(e, db))
}

/// A store error with the location added where the error does not name it.
fn located(e: slaw::store::StoreError, db: &Location) -> anyhow::Error {
    use slaw::store::StoreError;
    match e {
        StoreError::Sql(_) | StoreError::Migrate(_) => {
            anyhow::Error::new(e).context(format!("opening {db}"))
        }
        other => other.into(),
    }
}
