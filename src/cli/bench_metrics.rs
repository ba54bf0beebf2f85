//! A benchmark of storing evaluation points: one claimed trial of a throw-away sweep receives
//! `points` points in one flush, as a command trainer that wrote them all at once would give
//! its worker, once with one point per statement (slaw before multi-row inserts) and once with
//! the store's multi-row statements. It measures the store only.

use std::time::Instant;

use serde::Serialize;

use slaw::exec::ExecError;
use slaw::store::{Finish, MetricRow, Store, TrialState};

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsBench {
    /// Points per statement.
    pub rows_per_statement: usize,
    /// Points stored.
    pub points: usize,
    /// Seconds for the flush.
    pub seconds: f64,
    /// Points per second.
    pub per_second: f64,
}

/// Stores `points` points with each of `batches` points per statement on the database at
/// `location`; the benchmark's sweep is deleted afterwards.
pub async fn bench_metrics(
    location: &str,
    points: usize,
    batches: &[usize],
) -> Result<Vec<MetricsBench>, ExecError> {
    let name = format!(
        "bench-metrics-{}-{}",
        std::process::id(),
        slaw::store::now() as u64
    );
    let yaml = super::bench_claims::bench_sweep_yaml(&name, batches.len());
    let spec = slaw::spec::parse(&yaml, "bench-metrics")
        .map_err(|e| ExecError::Worker(format!("benchmark sweep: {e}")))?;
    let store = Store::open(location).await?;
    let prepared = slaw::sweep::prepare(&store, &spec, &yaml, None)
        .await
        .map_err(|e| ExecError::Worker(e.to_string()))?;
    let rows: Vec<(MetricRow, Option<String>)> = (0..points)
        .map(|i| {
            let step = i as i64 + 1;
            let row = MetricRow {
                step,
                examples: step * 32,
                flops: step as f64 * 1e9,
                lr: 1e-3,
                train_loss: Some(2.0 / step as f64),
                val_loss: (step % 100 == 0).then_some(1.0),
                val_accuracy: None,
                wall_seconds: step as f64 * 1e-3,
            };
            (row, None)
        })
        .collect();
    let mut out = Vec::new();
    for &batch in batches {
        let Some(claimed) = store
            .claim(prepared.sweep_id, "bench-metrics", "cpu")
            .await?
        else {
            break;
        };
        let started = Instant::now();
        store.upsert_metrics_by(&claimed, &rows, batch).await?;
        let seconds = started.elapsed().as_secs_f64();
        store
            .finish(
                &claimed,
                "bench-metrics",
                TrialState::Completed,
                &Finish::default(),
                false,
            )
            .await?;
        out.push(MetricsBench {
            rows_per_statement: batch,
            points,
            seconds,
            per_second: points as f64 / seconds.max(1e-9),
        });
    }
    store.delete_sweep(prepared.sweep_id).await?;
    store.close().await;
    Ok(out)
}
