//! The store test-suite, run against SQLite and PostgreSQL: every test is an `async fn` of the
//! backend, and `on_both!` makes one `#[tokio::test]` per backend (`sqlite::NAME`,
//! `postgres::NAME`). PostgreSQL tests get a fresh database each (see `scratch`) and are skipped
//! with a notice when `SLAW_TEST_POSTGRES` is unset, unless `SLAW_REQUIRE_SERVICES=1`.

use super::claims::local_process_is_gone;
use super::scratch::ScratchDb;
use super::*;
use crate::job::Job;
use crate::plan::expand;
use crate::plan::TrialSpec;
use crate::spec::parse;

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both!(
    sweep_and_trials_round_trip,
    claim_heartbeat_metrics_finish,
    retry_limits_per_state,
    expired_leases_are_reaped_and_fence_the_old_worker,
    a_dead_local_worker_is_reaped_at_once,
    concurrent_claims_never_share_a_trial,
    concurrent_workers_complete_every_trial_exactly_once,
    status_queries_and_flops,
    fits_round_trip,
    query_table_decodes_every_type,
    read_only_store_refuses_writes,
    slurm_jobs_are_recorded,
    merged_points_logs_and_reported_costs,
    matching_trials_join_a_claim,
);

const SWEEP: &str = "\
name: store-test
data: {dataset: synthetic, train: 256, validation: 64}
model: {family: mlp, depth: 1, sizes: [{name: a, width: 8}, {name: b, width: 16}]}
train:
  epochs: [1]
  lr: {values: [0.01, 0.1]}
  batch_size: 32
retries: {failed: 1, diverged: 0, interrupted: 1}
";

/// A fresh store with the 4 trials of `SWEEP`, or `None` when the backend is not available.
async fn fresh(backend: Backend, label: &str) -> Option<(ScratchDb, Store, i64, Vec<TrialSpec>)> {
    let db = ScratchDb::new(backend, label).await?;
    let store = Store::open(&db.url).await.unwrap();
    let spec = parse(SWEEP, "s.yaml").unwrap();
    let plan = expand(&spec);
    let id = store
        .upsert_sweep(&spec, SWEEP, Some("s.yaml"))
        .await
        .unwrap();
    let report = store
        .sync_trials(id, &plan.trials, &|_| false)
        .await
        .unwrap();
    assert_eq!(
        report,
        SyncReport {
            added: 4,
            existing: 0,
            retired: 0
        }
    );
    Some((db, store, id, plan.trials))
}

fn finish(loss: f64) -> Finish {
    Finish {
        step: 8,
        train_loss: Some(loss),
        val_loss: Some(loss + 0.1),
        val_accuracy: Some(0.5),
        best_val_loss: Some(loss + 0.1),
        wall_seconds: 1.5,
        error: None,
    }
}

async fn sweep_and_trials_round_trip(backend: Backend) {
    let Some((_dir, store, id, trials)) = fresh(backend, "sweep_and_trials_round_trip").await
    else {
        return;
    };
    let sweep = store.sweep("store-test").await.unwrap();
    assert_eq!(sweep.id, id);
    assert_eq!(sweep.yaml, SWEEP);
    assert_eq!(sweep.spec().unwrap().name, "store-test");
    let rows = store.trials(id).await.unwrap();
    assert_eq!(rows.len(), 4);
    let first = &rows[0];
    let planned = trials.iter().find(|t| t.key == first.key).unwrap();
    assert_eq!(first.config().unwrap(), planned.config);
    assert_eq!(first.params as u64, planned.params);
    assert_eq!(first.flops, planned.flops);
    assert_eq!(first.state, TrialState::Pending);
    assert!(matches!(
        store.sweep("nope").await,
        Err(StoreError::NoSuchSweep(_))
    ));
    // A second sync changes nothing; dropping a trial retires it.
    let none = |_: &crate::job::Job| false;
    let all = |_: &crate::job::Job| true;
    let report = |added, existing, retired| SyncReport {
        added,
        existing,
        retired,
    };
    assert_eq!(
        store.sync_trials(id, &trials, &none).await.unwrap(),
        report(0, 4, 0)
    );
    assert_eq!(
        store.sync_trials(id, &trials[1..], &none).await.unwrap(),
        report(0, 3, 1)
    );
    assert_eq!(store.trials(id).await.unwrap().len(), 3);
    // A trial outside the file's list that still belongs to the grid (an adaptive search's)
    // stays active.
    assert_eq!(
        store.sync_trials(id, &trials[1..], &all).await.unwrap(),
        report(0, 4, 0)
    );
    assert_eq!(store.trials(id).await.unwrap().len(), 4);
    assert_eq!(store.add_trials(id, &trials).await.unwrap(), 0);
    store.sync_trials(id, &trials[1..], &none).await.unwrap();
    assert_eq!(store.counts(id).await.unwrap().total(), 3);
}

async fn claim_heartbeat_metrics_finish(backend: Backend) {
    let Some((_dir, store, id, _)) = fresh(backend, "claim_heartbeat_metrics_finish").await else {
        return;
    };
    let c = store.claim(id, "h:1", "cpu").await.unwrap().unwrap();
    assert_eq!(c.attempt, 1);
    // Largest first: size b.
    let planned = expand(&parse(SWEEP, "s").unwrap());
    assert!(c.config.burn().unwrap().model == planned.trials[2].config.burn().unwrap().model);
    assert!(store.mark_started(&c, "h:1", Some(123)).await.unwrap());
    assert!(store.heartbeat(&c, "h:1", 4, Some(1.0)).await.unwrap());
    // Another worker's heartbeat on this attempt is refused.
    assert!(!store.heartbeat(&c, "h:2", 4, Some(1.0)).await.unwrap());
    let m = MetricRow {
        step: 8,
        examples: 256,
        flops: 1e6,
        lr: 0.01,
        train_loss: Some(1.0),
        val_loss: Some(f64::NAN),
        val_accuracy: Some(0.5),
        wall_seconds: 1.0,
    };
    store.add_metric(&c, &m).await.unwrap();
    assert!(store
        .finish(&c, "h:1", TrialState::Completed, &finish(0.7), false)
        .await
        .unwrap());
    let metrics = store.metrics(c.trial_id).await.unwrap();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].val_loss, None, "NaN is stored as NULL");
    let row = store.trial_by_key(&c.key[..6]).await.unwrap().remove(0);
    assert_eq!(row.state, TrialState::Completed);
    assert!((row.final_val_loss.unwrap() - 0.8).abs() < 1e-12);
    assert_eq!(row.params_measured, Some(123));
    // A finished attempt cannot be finished again.
    assert!(!store
        .finish(&c, "h:1", TrialState::Failed, &finish(0.7), false)
        .await
        .unwrap());
    let events: Vec<String> = store
        .events(c.trial_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, vec!["claimed", "completed"]);
    let counts = store.counts(id).await.unwrap();
    assert_eq!(
        (counts.completed, counts.pending, counts.claimable),
        (1, 3, 3)
    );
}

async fn retry_limits_per_state(backend: Backend) {
    let Some((_dir, store, id, _)) = fresh(backend, "retry_limits_per_state").await else {
        return;
    };
    // failed: 1 retry → two attempts in all.
    let c = store.claim(id, "w:1", "cpu").await.unwrap().unwrap();
    let key = c.key.clone();
    let mut failed = finish(1.0);
    failed.error = Some("boom".into());
    store
        .finish(&c, "w:1", TrialState::Failed, &failed, false)
        .await
        .unwrap();
    let again = store.claim(id, "w:1", "cpu").await.unwrap().unwrap();
    assert_eq!((again.key.as_str(), again.attempt), (key.as_str(), 2));
    store
        .finish(&again, "w:1", TrialState::Failed, &failed, false)
        .await
        .unwrap();
    let next = store.claim(id, "w:1", "cpu").await.unwrap().unwrap();
    assert_ne!(next.key, key, "retries of the failed trial are used up");
    // diverged: 0 retries.
    store
        .finish(&next, "w:1", TrialState::Diverged, &finish(f64::NAN), false)
        .await
        .unwrap();
    // A clean interrupt refunds its attempt: the trial comes back with the same number.
    let c3 = store.claim(id, "w:1", "cpu").await.unwrap().unwrap();
    assert!(c3.key != key && c3.key != next.key);
    store
        .finish(&c3, "w:1", TrialState::Interrupted, &finish(1.0), true)
        .await
        .unwrap();
    let c3b = store.claim(id, "w:1", "cpu").await.unwrap().unwrap();
    assert_eq!((c3b.key.as_str(), c3b.attempt), (c3.key.as_str(), 1));
    let counts = store.counts(id).await.unwrap();
    assert_eq!(
        (
            counts.failed,
            counts.diverged,
            counts.running,
            counts.pending
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(counts.claimable, 1);
    assert_eq!(counts.finished(), 2);
}

async fn expired_leases_are_reaped_and_fence_the_old_worker(backend: Backend) {
    let Some((_dir, store, id, _)) = fresh(
        backend,
        "expired_leases_are_reaped_and_fence_the_old_worker",
    )
    .await
    else {
        return;
    };
    let c = store
        .claim(id, "elsewhere:42", "cpu")
        .await
        .unwrap()
        .unwrap();
    // Not expired yet.
    assert!(store.reap(id, 60.0, "here").await.unwrap().is_empty());
    sqlx::query("UPDATE trials SET heartbeat_at = heartbeat_at - 100 WHERE id = $1")
        .bind(c.trial_id)
        .execute(store.pool())
        .await
        .unwrap();
    let reaped = store.reap(id, 60.0, "here").await.unwrap();
    assert_eq!(reaped.len(), 1);
    assert!(
        reaped[0].reason.contains("lease expired"),
        "{}",
        reaped[0].reason
    );
    // The trial is claimable again (interrupted: 1 retry) and goes to a new attempt.
    let c2 = store.claim(id, "here:7", "cpu").await.unwrap().unwrap();
    assert_eq!((c2.trial_id, c2.attempt), (c.trial_id, 2));
    // The old worker wakes up: its heartbeat and its finish are refused.
    assert!(!store.heartbeat(&c, "elsewhere:42", 9, None).await.unwrap());
    assert!(!store
        .finish(
            &c,
            "elsewhere:42",
            TrialState::Completed,
            &finish(0.1),
            false
        )
        .await
        .unwrap());
    let events: Vec<String> = store
        .events(c.trial_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, vec!["claimed", "lease_expired", "claimed"]);
}

async fn a_dead_local_worker_is_reaped_at_once(backend: Backend) {
    let Some((_dir, store, id, _)) = fresh(backend, "a_dead_local_worker_is_reaped_at_once").await
    else {
        return;
    };
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let host = hostname();
    let worker = format!("{host}:{pid}");
    store.claim(id, &worker, "cpu").await.unwrap().unwrap();
    let me = worker_identity();
    store.claim(id, &me, "cpu").await.unwrap().unwrap();
    let reaped = store.reap(id, 3600.0, &host).await.unwrap();
    assert_eq!(reaped.len(), 1, "only the dead worker's trial");
    assert_eq!(reaped[0].worker, worker);
}

async fn concurrent_claims_never_share_a_trial(backend: Backend) {
    let Some((db, store, id, _)) = fresh(backend, "concurrent_claims_never_share_a_trial").await
    else {
        return;
    };
    let mut handles = Vec::new();
    for w in 0..8 {
        let url = db.url.clone();
        handles.push(tokio::spawn(async move {
            let s = Store::open(&url).await.unwrap();
            let mut got = Vec::new();
            while let Some(c) = s.claim(id, &format!("w:{w}"), "cpu").await.unwrap() {
                got.push(c.trial_id);
            }
            s.close().await;
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort();
    assert_eq!(all.len(), 4, "{all:?}");
    all.dedup();
    assert_eq!(all.len(), 4);
    assert_eq!(store.counts(id).await.unwrap().running, 4);
}

/// A sweep of `n` trials (one size, one budget, one rate, `n` seeds).
async fn many(store: &Store, name: &str, n: usize) -> i64 {
    let seeds: Vec<String> = (0..n).map(|s| s.to_string()).collect();
    let yaml = format!(
        "name: {name}\n\
         data: {{dataset: synthetic, train: 64, validation: 16}}\n\
         model: {{family: mlp, depth: 1, sizes: [{{name: a, width: 4}}]}}\n\
         train: {{epochs: [1], lr: {{values: [0.01]}}, batch_size: 32, seeds: [{}]}}\n",
        seeds.join(", ")
    );
    let spec = parse(&yaml, "many.yaml").unwrap();
    let plan = expand(&spec);
    assert_eq!(plan.trials.len(), n);
    let id = store.upsert_sweep(&spec, &yaml, None).await.unwrap();
    store
        .sync_trials(id, &plan.trials, &|_| false)
        .await
        .unwrap();
    id
}

async fn concurrent_workers_complete_every_trial_exactly_once(backend: Backend) {
    let Some(db) = ScratchDb::new(
        backend,
        "concurrent_workers_complete_every_trial_exactly_once",
    )
    .await
    else {
        return;
    };
    let store = Store::open(&db.url).await.unwrap();
    let id = many(&store, "many", 120).await;
    // 8 claimers, each with its own pool (as separate processes would have), claim and finish
    // until nothing is left; every trial must be completed exactly once.
    let mut handles = Vec::new();
    for w in 0..8 {
        let url = db.url.clone();
        handles.push(tokio::spawn(async move {
            let s = Store::open(&url).await.unwrap();
            let me = format!("w:{w}");
            let mut done = Vec::new();
            loop {
                s.reap(id, 60.0, "here").await.unwrap();
                let Some(c) = s.claim(id, &me, "cpu").await.unwrap() else {
                    break;
                };
                assert!(s.heartbeat(&c, &me, 1, Some(1.0)).await.unwrap());
                assert!(s
                    .finish(&c, &me, TrialState::Completed, &finish(0.5), false)
                    .await
                    .unwrap());
                done.push(c.trial_id);
            }
            s.close().await;
            done
        }));
    }
    let mut all = Vec::new();
    let mut per_worker = Vec::new();
    for h in handles {
        let got = h.await.unwrap();
        per_worker.push(got.len());
        all.extend(got);
    }
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!((n, all.len()), (120, 120), "per worker: {per_worker:?}");
    let counts = store.counts(id).await.unwrap();
    assert_eq!(
        (counts.completed, counts.claimable, counts.running),
        (120, 0, 0)
    );
    for t in store.trials(id).await.unwrap() {
        assert_eq!(t.attempts, 1);
        let events: Vec<String> = store
            .events(t.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, vec!["claimed", "completed"], "trial {}", t.key);
    }
    store.close().await;
}

async fn status_queries_and_flops(backend: Backend) {
    let Some((_db, store, id, trials)) = fresh(backend, "status_queries_and_flops").await else {
        return;
    };
    let total: f64 = trials.iter().map(|t| t.flops).sum();
    let (all, remaining) = store.flops_remaining(id).await.unwrap();
    assert!((all - total).abs() < 1e-6 * total && (remaining - total).abs() < 1e-6 * total);
    let c = store.claim(id, "h:1", "cpu").await.unwrap().unwrap();
    let steps = store.trial_by_key(&c.key).await.unwrap()[0].steps;
    // Halfway through: half of its FLOPs remain.
    assert!(store
        .heartbeat(&c, "h:1", (steps / 2) as u64, Some(1.0))
        .await
        .unwrap());
    let (_, remaining) = store.flops_remaining(id).await.unwrap();
    let this = trials.iter().find(|t| t.key == c.key).unwrap();
    let expected = total - this.flops * (steps / 2) as f64 / steps as f64;
    assert!(
        (remaining - expected).abs() < 1e-6 * total,
        "{remaining} vs {expected}"
    );
    let live = store.live_trials(id, 0.0).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].state, TrialState::Running);
    assert_eq!(live[0].worker.as_deref(), Some("h:1"));
    assert!(store
        .finish(&c, "h:1", TrialState::Completed, &finish(0.3), false)
        .await
        .unwrap());
    let live = store.live_trials(id, 0.0).await.unwrap();
    assert_eq!((live.len(), live[0].state), (1, TrialState::Completed));
    assert!(store.live_trials(id, now() + 1.0).await.unwrap().is_empty());
    let m = MetricRow {
        step: 4,
        examples: 128,
        flops: 1e5,
        lr: 0.01,
        train_loss: Some(1.0),
        val_loss: Some(1.1),
        val_accuracy: Some(0.4),
        wall_seconds: 0.5,
    };
    let c2 = store.claim(id, "h:1", "cpu").await.unwrap().unwrap();
    store.add_metric(&c2, &m).await.unwrap();
    // The same point twice is stored once.
    store.add_metric(&c2, &m).await.unwrap();
    let sm = store.sweep_metrics(id).await.unwrap();
    assert_eq!(sm, vec![(c2.trial_id, m.clone())]);
    assert_eq!(store.sweeps().await.unwrap().len(), 1);
}

async fn fits_round_trip(backend: Backend) {
    let Some((_db, store, id, _)) = fresh(backend, "fits_round_trip").await else {
        return;
    };
    let fit = NewFit {
        sweep_id: Some(id),
        source: "sweep:store-test".into(),
        method: "frontier".into(),
        filter: serde_json::json!({"metric": "val_loss"}),
        inputs: serde_json::json!([{"trial": "abc", "c": 1e12}]),
        result: serde_json::json!({"a": 0.123_456_789_012_345_67, "b": -0.05}),
        n_points: 7,
        bootstrap: 1000,
        seed: u64::from(u32::MAX) + 5,
    };
    let first = store.save_fit(&fit).await.unwrap();
    let second = store.save_fit(&fit).await.unwrap();
    assert!(second > first);
    let rows = store.fits("sweep:store-test", "frontier").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, second, "newest first");
    assert_eq!(rows[0].result, fit.result, "full precision");
    assert_eq!((rows[0].n_points, rows[0].bootstrap), (7, 1000));
    // An imported fit has no sweep.
    let csv = NewFit {
        sweep_id: None,
        source: "csv:x.csv".into(),
        ..fit
    };
    store.save_fit(&csv).await.unwrap();
    assert_eq!(store.fits("csv:x.csv", "frontier").await.unwrap().len(), 1);
}

async fn query_table_decodes_every_type(backend: Backend) {
    let Some((_db, store, _, _)) = fresh(backend, "query_table_decodes_every_type").await else {
        return;
    };
    let t = store
        .query_table(
            "SELECT COUNT(*) AS n, SUM(params) AS params, SUM(flops) AS flops, \
                    MIN(key) AS first, MAX(error) AS error, 1.5 AS real, 2 AS int \
             FROM trials",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        t.columns,
        vec!["n", "params", "flops", "first", "error", "real", "int"]
    );
    let row = &t.rows[0];
    assert_eq!(row[0], Value::Int(4));
    // PostgreSQL sums BIGINT as NUMERIC: still an integer here.
    assert!(matches!(row[1], Value::Int(p) if p > 0), "{:?}", row[1]);
    assert!(matches!(row[2], Value::Real(f) if f > 0.0), "{:?}", row[2]);
    assert!(
        matches!(&row[3], Value::Text(k) if k.len() == 16),
        "{:?}",
        row[3]
    );
    assert_eq!(row[4], Value::Null);
    assert_eq!(row[5], Value::Real(1.5));
    assert_eq!(row[6], Value::Int(2));
    // Text parameters.
    let t = store
        .query_table(
            "SELECT name FROM sweeps WHERE name = $1",
            &["store-test".to_string()],
        )
        .await
        .unwrap();
    assert_eq!(t.rows, vec![vec![Value::Text("store-test".into())]]);
    // The views exist on both databases.
    let t = store
        .query_table("SELECT COUNT(*) AS n FROM results", &[])
        .await
        .unwrap();
    assert_eq!(t.rows, vec![vec![Value::Int(0)]]);
    if backend == Backend::Postgres {
        // Types the Any driver cannot decode are shown through the text protocol.
        let t = store
            .query_table(
                "SELECT round(CAST(2.345 AS numeric), 1) AS r, true AS b, \
                        to_timestamp(0) AT TIME ZONE 'UTC' AS ts, '{\"a\": 1}'::jsonb AS j",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            t.rows,
            vec![vec![
                Value::Real(2.3),
                Value::Int(1),
                Value::Text("1970-01-01 00:00:00".into()),
                Value::Text("{\"a\": 1}".into()),
            ]]
        );
    }
}

async fn read_only_store_refuses_writes(backend: Backend) {
    let Some((db, store, _, _)) = fresh(backend, "read_only_store_refuses_writes").await else {
        return;
    };
    let ro = Store::open_read_only(&db.url).await.unwrap();
    assert_eq!(ro.sweeps().await.unwrap().len(), 1);
    let err = ro
        .query_table("DELETE FROM trials", &[])
        .await
        .expect_err("a write on a read-only store");
    let text = err.to_string();
    assert!(
        text.contains("readonly") || text.contains("read-only"),
        "{text}"
    );
    ro.close().await;
    assert_eq!(
        store
            .trials(store.sweep("store-test").await.unwrap().id)
            .await
            .unwrap()
            .len(),
        4
    );
}

async fn slurm_jobs_are_recorded(backend: Backend) {
    let Some((_db, store, id, _)) = fresh(backend, "slurm_jobs_are_recorded").await else {
        return;
    };
    let job = NewSlurmJob {
        sweep_id: id,
        job_id: "4242".into(),
        tasks: 4,
        max_parallel: Some(2),
        trials_per_task: 1,
        script: "#!/bin/sh\n".into(),
    };
    let row = store.add_slurm_job(&job).await.unwrap();
    store
        .add_slurm_job(&NewSlurmJob {
            job_id: "4250".into(),
            max_parallel: None,
            ..job
        })
        .await
        .unwrap();
    let c = store
        .claim_in_job(id, "slurm:4242_3@node1:77", "cpu", Some("4242_3"))
        .await
        .unwrap()
        .unwrap();
    let t = &store.trial_by_key(&c.key).await.unwrap()[0];
    assert_eq!(t.slurm_job.as_deref(), Some("4242_3"));
    // The executor's check of the queue takes the trial back at once (no lease wait).
    let reaped = store
        .reap_with(id, 3600.0, "here", &|h| {
            (h.slurm_job.as_deref() == Some("4242_3")).then(|| "task 4242_3 left the queue".into())
        })
        .await
        .unwrap();
    assert_eq!(reaped.len(), 1);
    assert_eq!(reaped[0].reason, "task 4242_3 left the queue");
    store.end_slurm_job(row, false).await.unwrap();
    store.end_slurm_job(row, true).await.unwrap();
    let jobs = store.slurm_jobs(id).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (
            jobs[0].job_id.as_str(),
            jobs[0].state.as_str(),
            jobs[0].max_parallel
        ),
        ("4242", "ended", Some(2))
    );
    assert!(jobs[0].ended_at.is_some());
    assert_eq!(
        (jobs[1].state.as_str(), jobs[1].max_parallel),
        ("submitted", None)
    );
    // A claim outside Slurm clears the column.
    let again = store.claim(id, "h:1", "cpu").await.unwrap().unwrap();
    let t = &store.trial_by_key(&again.key).await.unwrap()[0];
    assert_eq!(t.slurm_job, None);
}

#[test]
fn worker_identities_name_their_slurm_task() {
    // Local processes are recognised behind a label.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(local_process_is_gone(&format!("slurm:1_2@h:{pid}"), "h"));
    assert!(!local_process_is_gone(
        &format!("slurm:1_2@h:{}", std::process::id()),
        "h"
    ));
    assert!(!local_process_is_gone(
        &format!("slurm:1_2@other:{pid}"),
        "h"
    ));
}

async fn merged_points_logs_and_reported_costs(backend: Backend) {
    let Some((_db, store, id, _)) = fresh(backend, "merged_points_logs_and_reported_costs").await
    else {
        return;
    };
    let c = store.claim(id, "h:1", "cpu").await.unwrap().unwrap();
    let point = |step: i64, train: Option<f64>, val: Option<f64>| MetricRow {
        step,
        examples: step * 10,
        flops: 0.0,
        lr: 0.01,
        train_loss: train,
        val_loss: val,
        val_accuracy: None,
        wall_seconds: 1.0,
    };
    store
        .upsert_metrics(&c, &[(point(5, Some(2.0), None), None)])
        .await
        .unwrap();
    // A second write of step 5 merges: the validation loss joins the training loss.
    store
        .upsert_metrics(
            &c,
            &[
                (
                    point(5, None, Some(2.5)),
                    Some(r#"{"grad_norm":0.5}"#.into()),
                ),
                (point(9, Some(1.0), Some(1.5)), None),
            ],
        )
        .await
        .unwrap();
    let m = store.metrics(c.trial_id).await.unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!((m[0].train_loss, m[0].val_loss), (Some(2.0), Some(2.5)));
    let extra = store
        .query_table(
            "SELECT extra FROM metrics WHERE trial_id = CAST($1 AS BIGINT) AND step = 5",
            &[c.trial_id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(
        extra.rows[0][0],
        crate::store::Value::Text(r#"{"grad_norm":0.5}"#.into())
    );
    let line = |stream, text: &str| LogLine {
        stream,
        line: text.to_string(),
        at: 1.0,
    };
    store
        .add_logs(&c, &[line("stdout", "hello"), line("stderr", "warn")])
        .await
        .unwrap();
    let logs = store.logs(c.trial_id, 1).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(
        (logs[0].stream.as_str(), logs[0].line.as_str()),
        ("stderr", "warn")
    );
    // What the trainer reported replaces the plan: FLOPs follow, in the curve too.
    let a = Accounting {
        params: Some(1000),
        params_non_embedding: None,
        flops_per_example: Some(6000.0),
        examples: Some(90),
        steps: Some(9),
    };
    assert!(!store.record_accounting(&c, "other:1", &a).await.unwrap());
    assert!(store.record_accounting(&c, "h:1", &a).await.unwrap());
    let row = store.trial_by_key(&c.key).await.unwrap().remove(0);
    assert_eq!((row.params, row.examples, row.steps), (1000, 90, 9));
    assert_eq!(row.params_measured, Some(1000));
    assert_eq!(row.flops, 6000.0 * 90.0);
    let m = store.metrics(c.trial_id).await.unwrap();
    assert_eq!(m[1].flops, 6000.0 * 90.0);
    // A clean interrupt refunds the attempt: its curve and log go.
    store
        .finish(&c, "h:1", TrialState::Interrupted, &finish(1.0), true)
        .await
        .unwrap();
    let left = store
        .query_table(
            "SELECT COUNT(*) FROM trial_logs WHERE trial_id = CAST($1 AS BIGINT)",
            &[c.trial_id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(left.rows[0][0], crate::store::Value::Int(0));
}

/// `claim_matching` claims the claimable trials that the predicate accepts (the other learning
/// rate of the same size), each with its own attempt and `claimed` event, and never a trial
/// another worker holds.
async fn matching_trials_join_a_claim(backend: Backend) {
    let Some((_dir, store, id, _)) = fresh(backend, "matching_trials_join_a_claim").await else {
        return;
    };
    let first = store.claim(id, "h:1", "cuda:0").await.unwrap().unwrap();
    let model = first.config.burn().unwrap().model.clone();
    let same_size = |job: &Job| job.burn().is_some_and(|c| c.model == model);
    let more = store
        .claim_matching(id, "h:1", "cuda:0", None, 3, same_size)
        .await
        .unwrap();
    assert_eq!(more.len(), 1, "one other learning rate of this size");
    let other = &more[0];
    assert_ne!(other.key, first.key);
    assert_eq!(other.config.burn().unwrap().model, model);
    assert_ne!(
        other.config.burn().unwrap().optim.lr,
        first.config.burn().unwrap().optim.lr
    );
    assert_eq!(other.attempt, 1);
    assert!(store.heartbeat(other, "h:1", 1, None).await.unwrap());
    let events = store.events(other.trial_id).await.unwrap();
    assert_eq!(events[0].event, "claimed");
    // Nothing of this size is left; a second worker's matching claim gets nothing.
    let none = store
        .claim_matching(id, "h:2", "cuda:0", None, 3, same_size)
        .await
        .unwrap();
    assert!(none.is_empty());
    // The predicate decides: the other size's two trials for the second worker.
    let rest = store
        .claim_matching(id, "h:2", "cuda:0", None, 5, |_| true)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|c| c.config.burn().unwrap().model != model));
    let counts = store.counts(id).await.unwrap();
    assert_eq!((counts.running, counts.claimable), (4, 0));
}
