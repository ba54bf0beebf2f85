//! A benchmark of trial claiming: `claimers` concurrent workers, each with its own connection
//! pool (as separate processes have), run the worker's database cycle — reap expired leases,
//! claim the next trial, finish it — on a sweep of no-op trials until none is left. It
//! measures the store, not training: nothing is trained.

use std::time::Instant;

use serde::Serialize;

use slaw::exec::ExecError;
use slaw::store::{Finish, Store, TrialState};

/// What one run of the benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimBench {
    /// Concurrent claimers.
    pub claimers: usize,
    /// Trials claimed and finished.
    pub trials: usize,
    /// Seconds from the first claim to the last finish.
    pub seconds: f64,
    /// Trials claimed and finished per second, all claimers together.
    pub per_second: f64,
    /// Median latency of one claim statement set (ms).
    pub claim_ms_p50: f64,
    /// 99th percentile of the claim latency (ms).
    pub claim_ms_p99: f64,
    /// Trials the same claimer got twice, or that were claimed more than once: must be 0.
    pub duplicates: usize,
}

/// The sweep file of the benchmark: `trials` trials (seeds) of a tiny model.
pub fn bench_sweep_yaml(name: &str, trials: usize) -> String {
    let seeds: Vec<String> = (0..trials).map(|s| s.to_string()).collect();
    format!(
        "name: {name}\n\
         data: {{dataset: synthetic, train: 64, validation: 16}}\n\
         model: {{family: mlp, depth: 1, sizes: [{{name: a, width: 4}}]}}\n\
         train: {{epochs: [1], lr: {{values: [0.01]}}, batch_size: 32, seeds: [{}]}}\n",
        seeds.join(", ")
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Registers a sweep of `trials` no-op trials in the store at `location`, has `claimers`
/// concurrent claimers claim and finish them all, deletes the sweep, and reports.
pub async fn bench_claims(
    location: &str,
    claimers: usize,
    trials: usize,
) -> Result<ClaimBench, ExecError> {
    let name = format!(
        "bench-claims-{}-{}-{}",
        claimers,
        std::process::id(),
        slaw::store::now() as u64
    );
    let yaml = bench_sweep_yaml(&name, trials);
    let spec = slaw::spec::parse(&yaml, "bench-claims")
        .map_err(|e| ExecError::Worker(format!("benchmark sweep: {e}")))?;
    let store = Store::open(location).await?;
    let prepared = slaw::sweep::prepare(&store, &spec, &yaml, None)
        .await
        .map_err(|e| ExecError::Worker(e.to_string()))?;
    let sweep_id = prepared.sweep_id;
    // Every claimer connects before the clock starts.
    let mut stores = Vec::with_capacity(claimers);
    for _ in 0..claimers {
        let s = Store::open(location).await?;
        s.counts(sweep_id).await?;
        stores.push(s);
    }
    let start = Instant::now();
    let mut handles = Vec::with_capacity(claimers);
    for (w, s) in stores.into_iter().enumerate() {
        handles.push(tokio::spawn(async move {
            let me = format!("bench-{w}:0");
            let mut got = Vec::new();
            let mut latencies = Vec::new();
            let finish = Finish {
                step: 1,
                ..Finish::default()
            };
            loop {
                s.reap(sweep_id, 3600.0, "bench").await?;
                let t0 = Instant::now();
                let Some(c) = s.claim(sweep_id, &me, "none").await? else {
                    break;
                };
                latencies.push(t0.elapsed().as_secs_f64() * 1e3);
                if !s
                    .finish(&c, &me, TrialState::Completed, &finish, false)
                    .await?
                {
                    return Err(ExecError::Worker(format!("lost the lease of {}", c.key)));
                }
                got.push(c.trial_id);
            }
            s.close().await;
            Ok::<_, ExecError>((got, latencies))
        }));
    }
    let mut all = Vec::new();
    let mut latencies = Vec::new();
    for h in handles {
        let (got, lat) = h
            .await
            .map_err(|e| ExecError::Worker(format!("claimer: {e}")))??;
        all.extend(got);
        latencies.extend(lat);
    }
    let seconds = start.elapsed().as_secs_f64();
    let claimed = all.len();
    all.sort_unstable();
    all.dedup();
    latencies.sort_by(f64::total_cmp);
    store.delete_sweep(sweep_id).await?;
    store.close().await;
    Ok(ClaimBench {
        claimers,
        trials: claimed,
        seconds,
        per_second: claimed as f64 / seconds.max(1e-9),
        claim_ms_p50: percentile(&latencies, 0.5),
        claim_ms_p99: percentile(&latencies, 0.99),
        duplicates: claimed - all.len(),
    })
}
