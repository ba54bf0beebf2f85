//! The `slaw` command line: clap definitions and the wiring of each command to the library.
//! No logic lives here beyond argument handling, output formatting and exit codes.

mod bench;
mod bench_claims;
mod bench_metrics;
pub mod exit;
mod format;
mod host_profile;
pub(crate) mod out;
mod progress;
mod results;
mod step_bench;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use slaw_core::ComputeDevice;
use slaw_train::train::trainer::CUDA_BUILT;

use crate::trainer::BurnTrainer;

use exit::invalid;
use out::{errln, out, outln};
use slaw::exec::local::LocalOptions;
use slaw::exec::worker::{run_worker, WorkerEvent, WorkerOptions};
use slaw::exec::{parse_devices, ExecError};
use slaw::spec::{self, SpecError};
use slaw::store::{Location, Store, TrialState, DEFAULT_DB};
use slaw::sweep::{self, run};

/// Exit code for invalid input (a bad sweep file or argument).
pub const EXIT_INVALID: u8 = exit::INVALID;
/// Exit code after Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = exit::INTERRUPTED;

#[derive(Debug, Parser)]
#[command(
    name = "slaw",
    about = "Scaling-law sweeps: train a grid of model sizes × budgets × learning rates, keep every curve, fit the laws"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args, Clone)]
struct DbArg {
    /// The result database: a SQLite file path or a postgres:// URL.
    #[arg(long, env = "SLAW_DB", default_value = DEFAULT_DB, value_parser = parse_location)]
    db: Location,
}

/// Parses `--db` once, into the location every command then uses.
fn parse_location(text: &str) -> Result<Location, String> {
    Location::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and check a sweep file; nothing is written.
    Validate {
        /// The sweep file.
        file: PathBuf,
        /// The most trials the sweep may expand to.
        #[arg(long, default_value_t = slaw::spec::DEFAULT_MAX_TRIALS)]
        max_trials: u64,
    },
    /// Print the expanded grid: every trial with its parameters and FLOPs.
    Plan {
        /// The sweep file.
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// The most trials the sweep may expand to.
        #[arg(long, default_value_t = slaw::spec::DEFAULT_MAX_TRIALS)]
        max_trials: u64,
    },
    /// Run every trial of a sweep that has not completed yet.
    Run(RunArgs),
    /// Claim and run trials from the database until none is left (one process per device).
    Worker(WorkerArgs),
    /// Fit the scaling laws of a sweep (or of a CSV file of runs) and store them.
    Fit(FitArgs),
    /// Predict loss, optimal learning rate and compute-optimal size from the stored laws.
    Predict(PredictArgs),
    /// Draw the figures of a sweep (PNG or SVG).
    Plot(PlotArgs),
    /// Write a self-contained HTML report of a sweep.
    Report(ReportArgs),
    /// Run one reading SQL statement (never a write); print a table or write CSV/JSON/Parquet.
    Query(QueryArgs),
    /// Write a sweep's trials, metrics and fits as Parquet, CSV or JSON files.
    Export(ExportArgs),
    /// One trial: configuration, state, timings, events and curve.
    Show {
        #[command(flatten)]
        db: DbArg,
        /// The trial key (a unique prefix is enough).
        key: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Time one model's training step (for docs/PERFORMANCE.md).
    Bench(bench::BenchArgs),
    /// Claims per second of concurrent workers on a database (for docs/CLUSTER.md).
    #[command(hide = true)]
    BenchClaims(bench::ClaimsArgs),
    /// Points per second when a trial's evaluation points are stored (for docs/CLUSTER.md).
    #[command(hide = true)]
    BenchMetrics(bench::MetricsArgs),
    /// Seconds to fit and audit a planted 144-trial sweep (for docs/PERFORMANCE.md).
    #[command(hide = true)]
    BenchFit(bench::FitBenchArgs),
    /// Print a shell's completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Counts by state, the best trial per model size, the slowest running trial.
    Status {
        #[command(flatten)]
        db: DbArg,
        /// Only this sweep (default: every sweep).
        #[arg(long)]
        sweep: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The sweep file.
    file: PathBuf,
    /// The most trials the sweep may expand to.
    #[arg(long, default_value_t = slaw::spec::DEFAULT_MAX_TRIALS)]
    max_trials: u64,
    #[command(flatten)]
    db: DbArg,
    /// cpu, cuda (every visible GPU), cuda:N or cuda:N,M.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Trials run at once on the CPU (default 1).
    #[arg(long)]
    jobs: Option<usize>,
    /// Trials run at once on each GPU: a count, or auto (from an estimate of each trial's
    /// memory); overrides the sweep's execution.per_device.
    #[arg(long)]
    per_device: Option<slaw::spec::PerDevice>,
    /// The CUDA Multi-Process Service, so that trials packed on one GPU run their kernels
    /// concurrently instead of taking turns: auto (when trials share a GPU and
    /// nvidia-cuda-mps-control is installed), on, or off (full isolation between trials: a
    /// fatal GPU fault under MPS also fails the trials beside it).
    #[arg(long, value_enum, default_value = "auto")]
    mps: MpsArg,
    /// The most trials of one shape trained as one stacked model (a count, 1 for none, or
    /// auto: 4 where a worker has a GPU to itself, else 1); overrides execution.stack.
    #[arg(long)]
    stack: Option<slaw::spec::Stack>,
    /// A trial whose worker has not heartbeaten for this long is taken back.
    #[arg(long, default_value_t = 60.0)]
    lease_seconds: f64,
    /// How often workers renew their lease.
    #[arg(long, default_value_t = 5.0)]
    heartbeat_seconds: f64,
    /// Plain log lines instead of a progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Do not fit the laws when the sweep has finished.
    #[arg(long)]
    no_fit: bool,
    /// Where trials run: local (worker processes on this machine), slurm (job arrays of
    /// workers, sized by the sweep's slurm section; needs a database every node reaches), or
    /// none (register the sweep and return; start `slaw worker`s yourself).
    #[arg(long, value_enum, default_value = "local")]
    executor: ExecutorArg,
    /// Where the figures and the report go at the end (default: `<sweep>/` beside a SQLite
    /// database, `results/<sweep>/` for PostgreSQL).
    #[arg(long)]
    out: Option<PathBuf>,
    /// With --executor slurm: submit the job array and return at once (follow with
    /// `slaw status`; trials of cancelled tasks wait for their lease and the next run).
    #[arg(long)]
    detach: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MpsArg {
    /// When trials share a GPU and the MPS control program is installed.
    Auto,
    /// For every GPU run; an error if the daemon cannot start.
    On,
    /// Never.
    Off,
}

impl From<MpsArg> for slaw::exec::mps::MpsMode {
    fn from(a: MpsArg) -> Self {
        match a {
            MpsArg::Auto => Self::Auto,
            MpsArg::On => Self::On,
            MpsArg::Off => Self::Off,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorArg {
    /// Worker processes on this machine.
    Local,
    /// Job arrays of workers on a Slurm cluster.
    Slurm,
    /// Register the sweep and return: workers started by hand (`slaw worker`) run it.
    None,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    #[command(flatten)]
    db: DbArg,
    /// Only this sweep (default: any sweep in the database).
    #[arg(long)]
    sweep: Option<String>,
    /// cpu or cuda:N (one device per worker).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Stop after this many trials.
    #[arg(long)]
    max_trials: Option<usize>,
    /// Lease length; trials of workers silent for longer are taken back.
    #[arg(long, default_value_t = 60.0)]
    lease_seconds: f64,
    /// How often the lease is renewed.
    #[arg(long, default_value_t = 5.0)]
    heartbeat_seconds: f64,
    /// When nothing is left to claim but other workers' trials are running, wait and take
    /// over any whose lease expires, instead of exiting.
    #[arg(long)]
    linger: bool,
    /// The most trials of one shape trained as one stacked model (a count, 1 for none, or
    /// auto: 4 where a worker has a GPU to itself, else 1); overrides execution.stack.
    #[arg(long)]
    stack: Option<slaw::spec::Stack>,
    /// Print nothing but errors.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FitMethod {
    Lr,
    Frontier,
    Isoflop,
    Parametric,
    All,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ParamsArg {
    Total,
    NonEmbedding,
}

#[derive(Debug, Args)]
struct FitArgs {
    #[command(flatten)]
    db: DbArg,
    /// The sweep (default: the only sweep in the database).
    #[arg(long, conflicts_with = "import")]
    sweep: Option<String>,
    /// Fit runs from a CSV file instead of a sweep (needs --columns).
    #[arg(long, requires = "columns")]
    import: Option<PathBuf>,
    /// CSV columns: n=COL,d=COL,c=COL,loss=COL[,lr=COL][,size=COL]; two of n, d, c.
    #[arg(long)]
    columns: Option<String>,
    /// Which fits.
    #[arg(long, value_enum, default_value = "all")]
    method: FitMethod,
    /// Bootstrap resamples behind the intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Which parameter count is N.
    #[arg(long, value_enum, default_value = "total")]
    params: ParamsArg,
    /// Fit without this model size, then predict it and compare with what it gave.
    #[arg(long)]
    holdout: Option<String>,
    /// Audit the fit: back-tests without the largest size and without each budget, the
    /// methods' disagreement about N* at the next budget and its cost, the conventions card.
    #[arg(long, conflicts_with = "holdout")]
    audit: bool,
    /// Print the full result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct PredictArgs {
    #[command(flatten)]
    db: DbArg,
    /// The sweep whose laws to use (default: the only sweep in the database).
    #[arg(long, conflicts_with = "import")]
    sweep: Option<String>,
    /// Use the laws fitted on this CSV file by `slaw fit --import`.
    #[arg(long)]
    import: Option<PathBuf>,
    /// Use the stored fit with this id and the other methods fitted with it (default: the
    /// latest fit of the sweep or file that left no size out).
    #[arg(long)]
    fit: Option<i64>,
    /// Model size N (SI suffixes allowed: 350M, 1.2G).
    #[arg(long, value_parser = parse_si, required_unless_present = "flops")]
    params: Option<f64>,
    /// Training budget in epochs of the sweep's training split.
    #[arg(long, conflicts_with = "examples")]
    epochs: Option<f64>,
    /// Training budget in examples (D).
    #[arg(long, value_parser = parse_si)]
    examples: Option<f64>,
    /// A compute budget C in training FLOPs: the compute-optimal N and D and their loss.
    #[arg(long, value_parser = parse_si, conflicts_with_all = ["params", "epochs", "examples"])]
    flops: Option<f64>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FigureFormat {
    Png,
    Svg,
}

#[derive(Debug, Args)]
struct PlotArgs {
    #[command(flatten)]
    db: DbArg,
    /// The sweep (default: the only sweep in the database).
    #[arg(long)]
    sweep: Option<String>,
    /// Output directory (default: `<sweep>/` beside a SQLite database, else results/<sweep>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Image format.
    #[arg(long, value_enum, default_value = "png")]
    format: FigureFormat,
    /// Training curves of these trials (keys or prefixes, comma-separated) instead of the best
    /// trial of each size.
    #[arg(long, value_delimiter = ',')]
    trials: Vec<String>,
}

#[derive(Debug, Args)]
struct ReportArgs {
    #[command(flatten)]
    db: DbArg,
    /// The sweep (default: the only sweep in the database).
    #[arg(long)]
    sweep: Option<String>,
    /// Output file (default: `<sweep>/report.html` beside a SQLite database, else
    /// results/<sweep>/report.html).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, Args)]
struct QueryArgs {
    #[command(flatten)]
    db: DbArg,
    /// The SQL (tables: sweeps, trials, metrics, trial_events, trial_logs, fits; views: results, curves).
    sql: String,
    /// Output format (table on the terminal by default).
    #[arg(long, value_enum, default_value = "table")]
    format: QueryFormat,
    /// Write to this file (needed for parquet); never the database itself.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Stop the query after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Refuse a result of more rows than this (results are also capped at 512 MiB).
    #[arg(long, default_value_t = 1_000_000)]
    max_rows: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Parquet,
    Csv,
    Json,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    db: DbArg,
    /// Only this sweep (default: every sweep).
    #[arg(long)]
    sweep: Option<String>,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    format: ExportFormat,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
}

fn parse_si(text: &str) -> Result<f64, String> {
    format::parse_si(text)
}

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
        Command::Run(args) => run(args).await,
        Command::Worker(args) => worker(args).await,
        Command::Fit(args) => fit(args).await,
        Command::Predict(args) => predict(args).await,
        Command::Plot(args) => results::plot(args).await,
        Command::Report(args) => results::report(args).await,
        Command::Query(args) => results::query(args).await,
        Command::Export(args) => results::export(args).await,
        Command::Show { db, key, json } => results::show(&db.db, &key, json).await,
        Command::Bench(args) => bench::bench(args),
        Command::BenchClaims(args) => bench::claims(args).await,
        Command::BenchMetrics(args) => bench::metrics(args).await,
        Command::BenchFit(args) => bench::fit(args),
        Command::Status { db, sweep, json } => status(&db.db, sweep.as_deref(), json).await,
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cli_command(), "slaw", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads a sweep file allowing up to `max_trials` trials.
fn load_spec(file: &Path, max_trials: u64) -> Result<(slaw::spec::SweepSpec, String)> {
    Ok(spec::load_with(file, &spec::Limits { max_trials })?)
}

fn validate(file: &Path, max_trials: u64) -> Result<ExitCode> {
    let (spec, _) = load_spec(file, max_trials)?;
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
    let (spec, _) = load_spec(file, max_trials)?;
    let plan = slaw::plan::expand(&spec);
    if json {
        outln!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        outln!("{}", format::plan_table(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(args: RunArgs) -> Result<ExitCode> {
    let (spec, yaml) = load_spec(&args.file, args.max_trials)?;
    if args.executor == ExecutorArg::Slurm {
        return run_on_slurm(args, spec, yaml).await;
    }
    if args.detach {
        invalid!("--detach is for --executor slurm (a local run needs this process)");
    }
    if args.executor == ExecutorArg::None {
        return register_only(&args, &spec, &yaml).await;
    }
    let devices = parse_devices(&args.device)?;
    sweep::preflight(&spec, &devices, CUDA_BUILT)?;
    let layout =
        slaw::exec::packing::layout(&spec, &devices, args.jobs, args.per_device, args.stack);
    let store = open_writer(&args.db.db).await?;
    let registered = run::register(&store, &spec, &yaml, &args.file).await?;
    outln!(
        "{} on {} with {} job{}{}; database {}",
        registered_line(&spec, &registered),
        args.device,
        layout.slots.len(),
        if layout.slots.len() == 1 { "" } else { "s" },
        layout
            .per_device
            .map_or(String::new(), |k| format!(" ({k} per GPU)")),
        args.db.db
    );
    if registered.prepared.sync.retired > 0 {
        outln!(
            "  {} stored trials are no longer in the sweep file; they are kept but left out",
            registered.prepared.sync.retired
        );
    }
    // Dropped at the end of this function: the daemon outlives every worker of the run.
    let mps = slaw::exec::mps::prepare(args.mps.into(), &layout.slots)?;
    if layout.per_device.is_some() {
        outln!("  {}", mps.describe());
    }
    if layout.stack > 1 {
        outln!(
            "  trials of one shape train in stacks of up to {} (execution.stack, --stack)",
            layout.stack
        );
    }
    let stop = stop_flag(true);
    let exe = std::env::current_exe().context("locating the slaw executable")?;
    let options = LocalOptions {
        exe,
        db: args.db.db.clone(),
        sweep_name: spec.name.clone(),
        sweep_id: registered.prepared.sweep_id,
        slots: layout.slots.clone(),
        threads_per_job: layout.threads_per_job,
        worker_env: mps.worker_env(),
        lease_seconds: args.lease_seconds,
        heartbeat_seconds: args.heartbeat_seconds,
        poll: Duration::from_millis(500),
        stack: Some(slaw::spec::Stack::Count(layout.stack as u32)),
    };
    let interactive = std::io::stderr().is_terminal() && !args.no_progress;
    let mut view = progress::RunView::new(interactive, layout.slots.len());
    let result = run::execute(
        &store,
        &spec,
        registered.prepared.sweep_id,
        &options,
        stop,
        &mut view,
    )
    .await;
    view.finish();
    drop(mps);
    finish_run(&store, &spec, &args, &result?).await
}

/// The first line of a run: the sweep and its trials by what they need.
fn registered_line(spec: &slaw::spec::SweepSpec, registered: &run::Registered) -> String {
    let counts = &registered.counts;
    format!(
        "sweep {}: {} trials ({} new, {} completed, {} to run)",
        spec.name,
        registered.prepared.plan.trials.len(),
        registered.prepared.sync.added,
        counts.completed,
        counts.claimable + counts.running,
    )
}

/// `slaw run --executor none`: the sweep and its trials are stored; workers run them.
async fn register_only(
    args: &RunArgs,
    spec: &slaw::spec::SweepSpec,
    yaml: &str,
) -> Result<ExitCode> {
    let store = open_writer(&args.db.db).await?;
    let registered = run::register(&store, spec, yaml, &args.file).await?;
    store.close().await;
    outln!(
        "{} registered in {}; start workers with `slaw worker --db ... --sweep {}`",
        registered_line(spec, &registered),
        args.db.db,
        spec.name
    );
    Ok(ExitCode::SUCCESS)
}

/// The summary, the fits and the exit code at the end of a run.
async fn finish_run(
    store: &Store,
    spec: &slaw::spec::SweepSpec,
    args: &RunArgs,
    outcome: &slaw::exec::RunOutcome,
) -> Result<ExitCode> {
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| args.db.db.results_dir(&spec.name));
    let fit_dir = (!args.no_fit).then_some(&dir);
    let end = run::conclude(store, &spec.name, outcome, fit_dir).await?;
    outln!(
        "{}",
        format::run_summary(&end.status, outcome.run.wall_seconds)
    );
    if let Some(fits) = &end.fits {
        out!("\n{}", slaw::report::text::fit_summary(&fits.report));
        outln!(
            "stored as fits {:?}; `slaw predict --sweep {} ...` uses them",
            fits.ids,
            spec.name
        );
        // The sweep and its fits are stored: a figure that cannot be drawn is reported, not fatal.
        match &fits.figures {
            Ok(written) => {
                outln!("\nfigures and report in {}/:", dir.display());
                for f in &written.figures {
                    outln!("  {}  {}", f.path.display(), f.title);
                }
                outln!("  {}  the HTML report", written.report.display());
            }
            Err(e) => errln!("slaw: warning: figures and report not written: {e}"),
        }
    }
    store.close().await;
    if outcome.run.interrupted {
        outln!("interrupted: run the same command again to finish the sweep");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if outcome.left > 0 {
        outln!(
            "{} trial(s) were not run: run the same command again to submit them",
            outcome.left
        );
        return Ok(ExitCode::FAILURE);
    }
    if outcome.run.counts.failed > 0 {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `slaw run --executor slurm`: job arrays of workers against a shared database.
async fn run_on_slurm(
    args: RunArgs,
    spec: slaw::spec::SweepSpec,
    yaml: String,
) -> Result<ExitCode> {
    use slaw::exec::slurm::SlurmOptions;
    let slurm = spec.slurm.clone().unwrap_or_default();
    let device = if slurm.gpus_per_trial > 0 {
        ComputeDevice::Cuda(0)
    } else {
        ComputeDevice::Cpu
    };
    sweep::preflight(&spec, std::slice::from_ref(&device), CUDA_BUILT)?;
    if args.device != "cpu"
        || args.jobs.is_some()
        || args.per_device.is_some()
        || args.mps == MpsArg::On
    {
        invalid!(
            "--device, --jobs, --per-device and --mps are for the local executor; with --executor slurm \
             the sweep's slurm section sets the resources (gpus_per_trial, cpus, max_parallel)"
        );
    }
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let db = args.db.db.absolute(&cwd);
    if let Some(path) = db.sqlite_path() {
        errln!(
            "slaw: warning: the tasks use the SQLite file {}: every node must see it on a file \
             system with working locks (not NFS); use a postgres:// database on a cluster",
            path.display()
        );
    }
    let store = open_writer(&db).await?;
    let registered = run::register(&store, &spec, &yaml, &args.file).await?;
    let log_dir = cwd.join(
        slurm
            .log_dir
            .clone()
            .unwrap_or_else(|| Path::new("results").join(&spec.name).join("slurm")),
    );
    outln!(
        "{} on Slurm ({} CPU{}{} per task); database {}",
        registered_line(&spec, &registered),
        slurm.cpus,
        if slurm.cpus == 1 { "" } else { "s" },
        if slurm.gpus_per_trial > 0 {
            ", 1 GPU"
        } else {
            ""
        },
        db
    );
    let options = SlurmOptions {
        exe: std::env::current_exe().context("locating the slaw executable")?,
        db,
        sweep_name: spec.name.clone(),
        sweep_id: registered.prepared.sweep_id,
        spec: slurm,
        log_dir,
        lease_seconds: args.lease_seconds,
        heartbeat_seconds: args.heartbeat_seconds,
        poll: Duration::from_secs(1),
        detach: args.detach,
    };
    let stop = stop_flag(true);
    let interactive = std::io::stderr().is_terminal() && !args.no_progress;
    let mut view = progress::RunView::new(interactive, 0);
    let result = run::execute(
        &store,
        &spec,
        registered.prepared.sweep_id,
        &options,
        stop,
        &mut view,
    )
    .await;
    view.finish();
    let outcome = result?;
    if args.detach {
        outln!(
            "submitted job array {}; follow with `slaw status --sweep {}`",
            outcome.jobs.join(", "),
            spec.name
        );
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    finish_run(&store, &spec, &args, &outcome).await
}

async fn worker(args: WorkerArgs) -> Result<ExitCode> {
    let devices = parse_devices(&args.device)?;
    let [device] = devices.as_slice() else {
        invalid!("a worker runs on one device; start one worker per GPU");
    };
    // Before the store's connection threads start: this sets the CUDA driver's cache variables.
    if matches!(device, ComputeDevice::Cuda(_)) && CUDA_BUILT {
        slaw::exec::worker::install_device_panic_hook();
        configure_kernel_cache(args.quiet);
    }
    // A worker never creates a database: where the file of a running sweep was deleted, a
    // fresh one would hide the loss.
    let store = Store::open_existing(&args.db.db)
        .await
        .map_err(|e| located(e, &args.db.db))?;
    let sweep_id = match &args.sweep {
        Some(name) => {
            let row = store.sweep(name).await?;
            sweep::preflight(&row.spec()?, &devices, CUDA_BUILT)?;
            row.id
        }
        None => -1,
    };
    let stop = stop_flag(false);
    let options = WorkerOptions {
        sweep_id,
        device: device.clone(),
        lease_seconds: args.lease_seconds,
        heartbeat_seconds: args.heartbeat_seconds,
        max_trials: args.max_trials,
        identity: slaw::store::worker_identity(),
        exit_after_failure: matches!(device, ComputeDevice::Cuda(_)),
        slurm_job: slaw::store::slurm_task(),
        linger: args.linger,
        stack: args.stack,
    };
    let quiet = args.quiet;
    let mut log = move |event: WorkerEvent| {
        if quiet {
            if let WorkerEvent::Finished {
                key,
                state: TrialState::Failed,
                error,
                ..
            } = &event
            {
                errln!("trial {key} failed: {}", error.as_deref().unwrap_or("?"));
            }
            return;
        }
        outln!("{}", format::worker_event(&event));
    };
    let report = match run_worker(
        &store,
        &options,
        BurnTrainer::shared(),
        stop.clone(),
        &mut log,
    )
    .await
    {
        Ok(r) => r,
        Err(ExecError::DeviceFailed(e)) => {
            // The trial is recorded; a training thread may be stuck on the dead device, so
            // end the process now (the executor starts a fresh worker).
            errln!("slaw worker: {e}; trial recorded as failed, worker exits");
            std::process::exit(i32::from(exit::WORKER_DEVICE_FAILED));
        }
        Err(ExecError::Store(e)) if e.fault().is_some() => {
            // The database failed under the worker: `slaw run` stops the whole run.
            errln!(
                "slaw worker: {}",
                e.fault().map_or(e.to_string(), |f| f.to_string())
            );
            return Ok(ExitCode::from(exit::WORKER_STORE_FAILED));
        }
        Err(e) => return Err(anyhow::anyhow!(e)),
    };
    store.close().await;
    if !quiet {
        outln!(
            "worker done: {} completed, {} diverged, {} failed, {} interrupted, {} lost leases",
            report.completed,
            report.diverged,
            report.failed,
            report.interrupted,
            report.lost
        );
    }
    if stop.load(Ordering::SeqCst) {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
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

/// Points a CUDA process at the kernel caches: `$SLAW_KERNEL_CACHE` selects the directory
/// (`off`: CubeCL's defaults), `$SLAW_PTX_CACHE=off` keeps autotune results but not compiled
/// kernels.
pub(crate) fn configure_kernel_cache(quiet: bool) {
    use slaw_train::train::trainer::{set_kernel_cache, KernelCache};
    if std::env::var_os("SLAW_KERNEL_CACHE").is_some_and(|v| v == "off") {
        return;
    }
    let which = if std::env::var_os("SLAW_PTX_CACHE").is_some_and(|v| v == "off") {
        KernelCache::AutotuneOnly
    } else {
        KernelCache::All
    };
    let cache = kernel_cache_dir();
    if !set_kernel_cache(&cache, which) && !quiet {
        errln!(
            "slaw: warning: could not use {} for the kernel caches",
            cache.display()
        );
    }
}

/// Where CUDA workers keep Burn's autotune results and compiled kernels:
/// `$SLAW_KERNEL_CACHE`, else `$XDG_CACHE_HOME/slaw`, else `~/.cache/slaw`.
fn kernel_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLAW_KERNEL_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("slaw")
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

async fn fit(args: FitArgs) -> Result<ExitCode> {
    use slaw::analysis::{self, laws, observations};
    let store = if args.import.is_some() {
        open_writer(&args.db.db).await?
    } else {
        Store::open_existing(&args.db.db)
            .await
            .map_err(|e| located(e, &args.db.db))?
    };
    let params_count = match args.params {
        ParamsArg::Total => observations::ParamsCount::Total,
        ParamsArg::NonEmbedding => observations::ParamsCount::NonEmbedding,
    };
    let obs = match (&args.import, &args.columns) {
        (Some(path), Some(columns)) => {
            observations::from_csv(path, &observations::Columns::parse(columns)?)?
        }
        _ => {
            let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
            observations::from_sweep(&store, &sweep, params_count).await?
        }
    };
    if let Some(size) = &args.holdout {
        if !obs.runs.iter().any(|r| &r.size == size) {
            invalid!(
                "--holdout {size}: no completed run of that size in {}",
                obs.source
            );
        }
    }
    let all = matches!(args.method, FitMethod::All);
    let config = laws::FitConfig {
        lr: all || matches!(args.method, FitMethod::Lr),
        frontier: all || matches!(args.method, FitMethod::Frontier),
        isoflop: all || matches!(args.method, FitMethod::Isoflop),
        parametric: all || matches!(args.method, FitMethod::Parametric),
        bootstrap: args.bootstrap,
        seed: args.seed,
        level: 0.95,
    };
    let excluded: Vec<String> = args.holdout.iter().cloned().collect();
    let report = laws::fit_all(&obs, &excluded, &config);
    let ids = analysis::save(&store, &obs, &report, &config).await?;
    let backtest = args
        .holdout
        .as_ref()
        .map(|size| (size.clone(), analysis::backtest(&obs, &report, size)));
    let audit = args
        .audit
        .then(|| analysis::audit::audit(&obs, &report, &config));
    if let Some(a) = &audit {
        analysis::stored::save_audit(&store, &obs, a).await?;
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "report": report,
                "backtest": backtest.as_ref().map(|(_, rows)| rows),
                "audit": audit,
                "fit_ids": ids,
            }))?
        );
    } else {
        out!("{}", slaw::report::text::fit_summary(&report));
        if let Some((size, rows)) = &backtest {
            out!("\n{}", slaw::report::text::backtest(size, rows));
        }
        if let Some(a) = &audit {
            out!("\n{}", slaw::report::text::audit(a));
        }
        outln!("\nstored as fits {:?} in {}", ids, args.db.db);
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn predict(args: PredictArgs) -> Result<ExitCode> {
    use slaw::analysis::stored;
    use slaw::analysis::{self, predict};
    let store = open_reader(&args.db.db).await?;
    let (source, per_epoch, file_hash) = match &args.import {
        Some(path) => {
            let (source, hash) = analysis::observations::csv_source(path)?;
            (source, None, Some(hash))
        }
        None if args.fit.is_some() && args.sweep.is_none() => (String::new(), None, None),
        None => {
            let sweep = pick_sweep(&store, args.sweep.as_deref()).await?;
            let per_epoch = sweep.spec()?.examples_per_epoch();
            (format!("sweep:{}", sweep.name), per_epoch, None)
        }
    };
    let report = match args.fit {
        Some(id) => {
            let report = stored::load_batch(&store, id).await?;
            if !source.is_empty() && report.source != source {
                invalid!("--fit {id} is a fit of {}, not of {source}", report.source);
            }
            report
        }
        None => analysis::load_report(&store, &source).await?,
    };
    let per_epoch = per_epoch.or(report.examples_per_epoch);
    let notes = stored::provenance_notes(&store, &report, file_hash.as_deref()).await?;
    let mut prediction = match (args.flops, args.params) {
        (Some(c), _) => predict::at_compute(&report, c).map_err(exit::Invalid)?,
        (None, Some(n)) => {
            let d = match (args.examples, args.epochs) {
                (Some(d), _) => d,
                (None, Some(e)) => {
                    let Some(per_epoch) = per_epoch else {
                        invalid!("--epochs needs the examples in an epoch (a sweep of slaw's trainer, or train.examples_per_epoch in a command sweep); give --examples");
                    };
                    e * per_epoch
                }
                (None, None) => invalid!("--params needs a budget: --epochs E or --examples D"),
            };
            predict::at_size(&report, n, d).map_err(exit::Invalid)?
        }
        (None, None) => invalid!("give --params N with --epochs/--examples, or --flops C"),
    };
    prediction.notes.extend(notes);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&prediction)?);
    } else {
        out!("{}", slaw::report::text::prediction(&prediction));
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
