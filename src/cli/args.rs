//! The command line's arguments (clap): every command and its options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use slaw::store::{Location, DEFAULT_DB};

use super::{bench, format};

#[derive(Debug, Parser)]
#[command(
    name = "slaw",
    about = "Scaling-law sweeps: train a grid of model sizes × budgets × learning rates, keep every curve, fit the laws"
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Args, Clone)]
pub(super) struct DbArg {
    /// The result database: a SQLite file path or a postgres:// URL.
    #[arg(long, env = "SLAW_DB", default_value = DEFAULT_DB, value_parser = parse_location)]
    pub(super) db: Location,
}

/// Parses `--db` once, into the location every command then uses.
pub(super) fn parse_location(text: &str) -> Result<Location, String> {
    Location::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
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
    /// Write a generated labelled image data set (folder, CIFAR or NumPy) to try `dataset: images`.
    GenerateImages(super::images::GenerateImagesArgs),
    /// Claims per second of concurrent workers on a database (for docs/CLUSTER.md).
    #[command(hide = true)]
    BenchClaims(bench::ClaimsArgs),
    /// Points per second when a trial's evaluation points are stored (for docs/CLUSTER.md).
    #[command(hide = true)]
    BenchMetrics(bench::MetricsArgs),
    /// Seconds to fit and audit a planted 144-trial sweep (for docs/PERFORMANCE.md).
    #[command(hide = true)]
    BenchFit(bench::FitBenchArgs),
    /// Examples per second of the images data path alone (for docs/PERFORMANCE.md).
    #[command(hide = true)]
    BenchData(super::bench_data::DataBenchArgs),
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
pub(super) struct RunArgs {
    /// The sweep file.
    pub(super) file: PathBuf,
    /// The most trials the sweep may expand to.
    #[arg(long, default_value_t = slaw::spec::DEFAULT_MAX_TRIALS)]
    pub(super) max_trials: u64,
    #[command(flatten)]
    pub(super) db: DbArg,
    /// cpu, cuda (every visible GPU), cuda:N or cuda:N,M.
    #[arg(long, default_value = "cpu")]
    pub(super) device: String,
    /// Trials run at once on the CPU (default 1).
    #[arg(long)]
    pub(super) jobs: Option<usize>,
    /// Trials run at once on each GPU: a count, or auto (from an estimate of each trial's
    /// memory); overrides the sweep's execution.per_device.
    #[arg(long)]
    pub(super) per_device: Option<slaw::spec::PerDevice>,
    /// The CUDA Multi-Process Service, so that trials packed on one GPU run their kernels
    /// concurrently instead of taking turns: auto (when trials share a GPU and
    /// nvidia-cuda-mps-control is installed), on, or off (full isolation between trials: a
    /// fatal GPU fault under MPS also fails the trials beside it).
    #[arg(long, value_enum, default_value = "auto")]
    pub(super) mps: MpsArg,
    /// The most trials of one shape trained as one stacked model (a count, 1 for none, or
    /// auto: 4 where a worker has a GPU to itself, else 1); overrides execution.stack.
    #[arg(long)]
    pub(super) stack: Option<slaw::spec::Stack>,
    /// A trial whose worker has not heartbeaten for this long is taken back.
    #[arg(long, default_value_t = 60.0)]
    pub(super) lease_seconds: f64,
    /// How often workers renew their lease.
    #[arg(long, default_value_t = 5.0)]
    pub(super) heartbeat_seconds: f64,
    /// Plain log lines instead of a progress bar.
    #[arg(long)]
    pub(super) no_progress: bool,
    /// Do not fit the laws when the sweep has finished.
    #[arg(long)]
    pub(super) no_fit: bool,
    /// Where trials run: local (worker processes on this machine), slurm (job arrays of
    /// workers, sized by the sweep's slurm section; needs a database every node reaches), or
    /// none (register the sweep and return; start `slaw worker`s yourself).
    #[arg(long, value_enum, default_value = "local")]
    pub(super) executor: ExecutorArg,
    /// Where the figures and the report go at the end (default: `<sweep>/` beside a SQLite
    /// database, `results/<sweep>/` for PostgreSQL).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// With --executor slurm: submit the job array and return at once (follow with
    /// `slaw status`; trials of cancelled tasks wait for their lease and the next run).
    #[arg(long)]
    pub(super) detach: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum MpsArg {
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
pub(super) enum ExecutorArg {
    /// Worker processes on this machine.
    Local,
    /// Job arrays of workers on a Slurm cluster.
    Slurm,
    /// Register the sweep and return: workers started by hand (`slaw worker`) run it.
    None,
}

#[derive(Debug, Args)]
pub(super) struct WorkerArgs {
    #[command(flatten)]
    pub(super) db: DbArg,
    /// Only this sweep (default: any sweep in the database).
    #[arg(long)]
    pub(super) sweep: Option<String>,
    /// cpu or cuda:N (one device per worker).
    #[arg(long, default_value = "cpu")]
    pub(super) device: String,
    /// Stop after this many trials.
    #[arg(long)]
    pub(super) max_trials: Option<usize>,
    /// Lease length; trials of workers silent for longer are taken back.
    #[arg(long, default_value_t = 60.0)]
    pub(super) lease_seconds: f64,
    /// How often the lease is renewed.
    #[arg(long, default_value_t = 5.0)]
    pub(super) heartbeat_seconds: f64,
    /// When nothing is left to claim but other workers' trials are running, wait and take
    /// over any whose lease expires, instead of exiting.
    #[arg(long)]
    pub(super) linger: bool,
    /// The most trials of one shape trained as one stacked model (a count, 1 for none, or
    /// auto: 4 where a worker has a GPU to itself, else 1); overrides execution.stack.
    #[arg(long)]
    pub(super) stack: Option<slaw::spec::Stack>,
    /// Print nothing but errors.
    #[arg(long)]
    pub(super) quiet: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum FitMethod {
    Lr,
    Frontier,
    Isoflop,
    Parametric,
    All,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum ParamsArg {
    Total,
    NonEmbedding,
}

#[derive(Debug, Args)]
pub(super) struct FitArgs {
    #[command(flatten)]
    pub(super) db: DbArg,
    /// The sweep (default: the only sweep in the database).
    #[arg(long, conflicts_with = "import")]
    pub(super) sweep: Option<String>,
    /// Fit runs from a CSV file instead of a sweep (needs --columns).
    #[arg(long, requires = "columns")]
    pub(super) import: Option<PathBuf>,
    /// CSV columns: n=COL,d=COL,c=COL,loss=COL[,lr=COL][,size=COL]; two of n, d, c.
    #[arg(long)]
    pub(super) columns: Option<String>,
    /// Which fits.
    #[arg(long, value_enum, default_value = "all")]
    pub(super) method: FitMethod,
    /// Bootstrap resamples behind the intervals (0: none).
    #[arg(long, default_value_t = 1000)]
    pub(super) bootstrap: usize,
    /// Bootstrap seed.
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// Which parameter count is N.
    #[arg(long, value_enum, default_value = "total")]
    pub(super) params: ParamsArg,
    /// Fit without this model size, then predict it and compare with what it gave.
    #[arg(long)]
    pub(super) holdout: Option<String>,
    /// Audit the fit: back-tests without the largest size and without each budget, the
    /// methods' disagreement about N* at the next budget and its cost, the conventions card.
    #[arg(long, conflicts_with = "holdout")]
    pub(super) audit: bool,
    /// Print the full result as JSON.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Args)]
pub(super) struct PredictArgs {
    #[command(flatten)]
    pub(super) db: DbArg,
    /// The sweep whose laws to use (default: the only sweep in the database).
    #[arg(long, conflicts_with = "import")]
    pub(super) sweep: Option<String>,
    /// Use the laws fitted on this CSV file by `slaw fit --import`.
    #[arg(long)]
    pub(super) import: Option<PathBuf>,
    /// Use the stored fit with this id and the other methods fitted with it (default: the
    /// latest fit of the sweep or file that left no size out).
    #[arg(long)]
    pub(super) fit: Option<i64>,
    /// Model size N (SI suffixes allowed: 350M, 1.2G).
    #[arg(long, value_parser = parse_si, required_unless_present = "flops")]
    pub(super) params: Option<f64>,
    /// Training budget in epochs of the sweep's training split.
    #[arg(long, conflicts_with = "examples")]
    pub(super) epochs: Option<f64>,
    /// Training budget in examples (D).
    #[arg(long, value_parser = parse_si)]
    pub(super) examples: Option<f64>,
    /// A compute budget C in training FLOPs: the compute-optimal N and D and their loss.
    #[arg(long, value_parser = parse_si, conflicts_with_all = ["params", "epochs", "examples"])]
    pub(super) flops: Option<f64>,
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum FigureFormat {
    Png,
    Svg,
}

#[derive(Debug, Args)]
pub(super) struct PlotArgs {
    #[command(flatten)]
    pub(super) db: DbArg,
    /// The sweep (default: the only sweep in the database).
    #[arg(long)]
    pub(super) sweep: Option<String>,
    /// Output directory (default: `<sweep>/` beside a SQLite database, else results/<sweep>/).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Image format.
    #[arg(long, value_enum, default_value = "png")]
    pub(super) format: FigureFormat,
    /// Training curves of these trials (keys or prefixes, comma-separated) instead of the best
    /// trial of each size.
    #[arg(long, value_delimiter = ',')]
    pub(super) trials: Vec<String>,
}

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    #[command(flatten)]
    pub(super) db: DbArg,
    /// The sweep (default: the only sweep in the database).
    #[arg(long)]
    pub(super) sweep: Option<String>,
    /// Output file (default: `<sweep>/report.html` beside a SQLite database, else
    /// results/<sweep>/report.html).
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Debug, Args)]
pub(super) struct QueryArgs {
    #[command(flatten)]
    pub(super) db: DbArg,
    /// The SQL (tables: sweeps, trials, metrics, trial_events, trial_logs, fits; views: results, curves).
    pub(super) sql: String,
    /// Output format (table on the terminal by default).
    #[arg(long, value_enum, default_value = "table")]
    pub(super) format: QueryFormat,
    /// Write to this file (needed for parquet); never the database itself.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Stop the query after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub(super) timeout: f64,
    /// Refuse a result of more rows than this (results are also capped at 512 MiB).
    #[arg(long, default_value_t = 1_000_000)]
    pub(super) max_rows: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(super) enum ExportFormat {
    Parquet,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub(super) struct ExportArgs {
    #[command(flatten)]
    pub(super) db: DbArg,
    /// Only this sweep (default: every sweep).
    #[arg(long)]
    pub(super) sweep: Option<String>,
    /// File format.
    #[arg(long, value_enum, default_value = "parquet")]
    pub(super) format: ExportFormat,
    /// Output directory.
    #[arg(long)]
    pub(super) out: PathBuf,
}

pub(super) fn parse_si(text: &str) -> Result<f64, String> {
    format::parse_si(text)
}
