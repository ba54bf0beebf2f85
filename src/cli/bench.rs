//! `slaw bench`: the time per training step of one model (see `step_bench`), as JSON for
//! `bench/run_gpu.sh` and `docs/PERFORMANCE.md`; `slaw bench-claims`: the claim throughput of
//! concurrent workers on a database (see `bench_claims`, `docs/CLUSTER.md`); `slaw bench-fit`:
//! the seconds every fit and `--audit` take on a planted sweep (issue 22's budget: 30 s).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use slaw_core::config::Precision;

use super::exit::invalid;
use super::host_profile::HostProfile;
use super::out::{errln, outln};
use super::step_bench::{step_time, BenchSpec};
use slaw::exec::parse_devices;

/// What to time.
#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// Model family: vit or mlp.
    #[arg(long, default_value = "vit")]
    model: String,
    /// Width (embedding or hidden).
    #[arg(long)]
    width: usize,
    /// Depth (blocks or hidden layers).
    #[arg(long)]
    depth: usize,
    /// Attention heads (ViT).
    #[arg(long, default_value_t = 4)]
    heads: usize,
    /// Patch side (ViT).
    #[arg(long, default_value_t = 4)]
    patch: usize,
    /// Image side in pixels (one channel): tokens = (side / patch)².
    #[arg(long, default_value_t = 32)]
    image: usize,
    /// Examples per step.
    #[arg(long)]
    batch: usize,
    /// Steps to run.
    #[arg(long, default_value_t = 200)]
    steps: u64,
    /// Untimed steps first (kernel compilation, autotuning).
    #[arg(long, default_value_t = 30)]
    warmup: u64,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// f32, bf16 (bf16 parameters and activations) or bf16-mixed (f32 tensors, bf16 products).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Peak FLOP/s of the device, for the MFU field (e.g. the measured bf16 matmul peak).
    #[arg(long)]
    peak_flops: Option<f64>,
    /// Train without global-norm gradient clipping (the default clips at 1.0, as PyTorch's
    /// reference does).
    #[arg(long)]
    no_clip: bool,
    /// Train this many trials (learning rates spread by factors of 2) as one stack (ViT only);
    /// the time per step is then the stack's, for all its trials.
    #[arg(long, default_value_t = 1)]
    stack: usize,
    /// Sample the host's threads while the benchmark runs and write a flame graph to this SVG
    /// file and the folded stacks beside it (`.folded`); needs `--features host-profile`.
    #[arg(long, value_name = "PATH")]
    host_profile: Option<PathBuf>,
}

pub(super) fn bench(args: BenchArgs) -> Result<ExitCode> {
    let devices = parse_devices(&args.device)?;
    let [device] = devices.as_slice() else {
        invalid!("bench one device at a time");
    };
    let Some(precision) = Precision::from_name(&args.precision) else {
        invalid!(
            "--precision {}: use f32, bf16 or bf16-mixed",
            args.precision
        );
    };
    let spec = BenchSpec {
        family: args.model.clone(),
        width: args.width,
        depth: args.depth,
        heads: args.heads,
        patch: args.patch,
        image: args.image,
        batch: args.batch,
        steps: args.steps,
        warmup: args.warmup,
        precision,
        grad_clip: (!args.no_clip).then_some(1.0),
        stack: args.stack,
    };
    if matches!(device, slaw_core::ComputeDevice::Cuda(_)) {
        super::run::configure_kernel_cache(true);
    }
    let profile = args
        .host_profile
        .as_deref()
        .map(HostProfile::start)
        .transpose()?;
    let r = step_time(&spec, device)?;
    if let Some(profile) = profile {
        let samples = profile.finish()?;
        errln!("host profile: {samples} samples");
    }
    let mut v = serde_json::to_value(&r)?;
    v["framework"] = "slaw (burn 0.21)".into();
    v["device"] = device.to_string().into();
    v["precision"] = args.precision.into();
    v["model"] = args.model.into();
    v["grad_clip"] = (!args.no_clip).into();
    v["stack"] = args.stack.into();
    for (k, x) in [
        ("width", args.width),
        ("depth", args.depth),
        ("heads", args.heads),
        ("patch", args.patch),
        ("image", args.image),
        ("batch", args.batch),
    ] {
        v[k] = x.into();
    }
    v["mfu"] = args.peak_flops.map(|p| r.achieved_tflops * 1e12 / p).into();
    outln!("{}", serde_json::to_string(&v)?);
    Ok(ExitCode::SUCCESS)
}

/// What `slaw bench-claims` measures.
#[derive(Debug, Args)]
pub(super) struct ClaimsArgs {
    /// The database (a SQLite file or a postgres:// URL); the benchmark's sweep is deleted
    /// afterwards.
    #[arg(long)]
    db: String,
    /// Concurrent claimers, one run per count.
    #[arg(long, value_delimiter = ',', default_value = "8,32")]
    workers: Vec<usize>,
    /// No-op trials per run.
    #[arg(long, default_value_t = 2000)]
    trials: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub(super) async fn claims(args: ClaimsArgs) -> Result<ExitCode> {
    use super::bench_claims::bench_claims;
    let mut results = Vec::new();
    for &w in &args.workers {
        if w == 0 {
            invalid!("--workers: counts must be at least 1");
        }
        let db = args.db.clone();
        let trials = args.trials;
        // Claimers run on a runtime of their own with a thread per core, as processes would.
        let result = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(bench_claims(&db, w, trials))
                .map_err(anyhow::Error::from)
        })
        .await??;
        if !args.json {
            outln!(
                "{:>3} claimers: {} trials claimed and finished in {:.2} s = {:.0} per second; \
                 claim latency p50 {:.2} ms, p99 {:.2} ms; {} duplicates",
                result.claimers,
                result.trials,
                result.seconds,
                result.per_second,
                result.claim_ms_p50,
                result.claim_ms_p99,
                result.duplicates
            );
        }
        if result.duplicates > 0 {
            bail!("{} trials were claimed twice", result.duplicates);
        }
        results.push(result);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `slaw bench-metrics` measures.
#[derive(Debug, Args)]
pub(super) struct MetricsArgs {
    /// The database (a SQLite file or a postgres:// URL); the benchmark's sweep is deleted
    /// afterwards.
    #[arg(long)]
    db: String,
    /// Points stored in one flush.
    #[arg(long, default_value_t = 200_000)]
    points: usize,
    /// Points per statement, one measurement each (1: one statement per point).
    #[arg(long, value_delimiter = ',', default_value = "1,400")]
    rows: Vec<usize>,
}

pub(super) async fn metrics(args: MetricsArgs) -> Result<ExitCode> {
    let results = super::bench_metrics::bench_metrics(&args.db, args.points, &args.rows).await?;
    for r in &results {
        outln!(
            "{:>4} points per statement: {} points stored in {:.2} s = {:.0} points per second",
            r.rows_per_statement,
            r.points,
            r.seconds,
            r.per_second
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The planted sweep to fit.
#[derive(Debug, Args)]
pub(super) struct FitBenchArgs {
    /// Model sizes (×2 apart).
    #[arg(long, default_value_t = 6)]
    sizes: usize,
    /// Epoch budgets (×2 apart).
    #[arg(long, default_value_t = 4)]
    budgets: usize,
    /// Learning rates per cell.
    #[arg(long, default_value_t = 6)]
    rates: usize,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
}

pub(super) fn fit(args: FitBenchArgs) -> Result<ExitCode> {
    use slaw::analysis::{audit, laws, planted};
    let obs = planted::sweep(args.sizes, args.budgets, args.rates, 0.005, 1);
    let config = laws::FitConfig {
        bootstrap: args.bootstrap,
        ..laws::FitConfig::default()
    };
    let started = std::time::Instant::now();
    let report = laws::fit_all(&obs, &[], &config);
    let fit_s = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let a = audit::audit(&obs, &report, &config);
    let audit_s = started.elapsed().as_secs_f64();
    outln!(
        "{} trials ({} sizes × {} budgets × {} rates), {} resamples, {} threads: every fit {fit_s:.1} s, \
         audit ({} back-tests) {audit_s:.1} s; together {:.1} s against the 30 s budget",
        obs.runs.len(),
        args.sizes,
        args.budgets,
        args.rates,
        args.bootstrap,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        a.backtests.len(),
        fit_s + audit_s
    );
    Ok(ExitCode::SUCCESS)
}
