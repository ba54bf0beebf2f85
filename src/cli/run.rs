//! `slaw run` (local, Slurm, or registering only) and `slaw worker`: the wiring of the run use
//! case (`slaw::sweep::run`) and of the worker loop to the command line, with what they print.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use slaw::exec::local::LocalOptions;
use slaw::exec::worker::{run_worker, WorkerEvent, WorkerOptions};
use slaw::exec::{parse_devices, ExecError};
use slaw::store::{Store, TrialState};
use slaw::sweep::{self, run};
use slaw_core::ComputeDevice;
use slaw_train::train::trainer::CUDA_BUILT;

use super::args::{ExecutorArg, MpsArg, RunArgs, WorkerArgs};
use super::exit::{self, invalid};
use super::out::{errln, out, outln};
use super::{format, load_spec, located, open_writer, progress, stop_flag, EXIT_INTERRUPTED};
use crate::trainer::BurnTrainer;

pub(super) async fn run(args: RunArgs) -> Result<ExitCode> {
    let (spec, yaml) = load_spec(&args.file, args.max_trials, Some(&args.db.db))?;
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
pub(super) fn registered_line(
    spec: &slaw::spec::SweepSpec,
    registered: &run::Registered,
) -> String {
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
pub(super) async fn register_only(
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
pub(super) async fn finish_run(
    store: &Store,
    spec: &slaw::spec::SweepSpec,
    args: &RunArgs,
    outcome: &slaw::exec::RunOutcome,
) -> Result<ExitCode> {
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| args.db.db.results_dir(&spec.name));
    let fit_dir = (!args.no_fit).then_some(dir.as_path());
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
pub(super) async fn run_on_slurm(
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

pub(super) async fn worker(args: WorkerArgs) -> Result<ExitCode> {
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
        BurnTrainer::shared(super::data_cache(Some(&args.db.db))),
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
pub(super) fn kernel_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLAW_KERNEL_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("slaw")
}
