use super::*;
use crate::plan::expand;
use crate::spec::parse;

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

async fn fresh() -> (tempfile::TempDir, Store, i64, Vec<TrialSpec>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("sub/slaw.db").to_str().unwrap())
        .await
        .unwrap();
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
    (dir, store, id, plan.trials)
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

#[tokio::test]
async fn sweep_and_trials_round_trip() {
    let (_dir, store, id, trials) = fresh().await;
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

#[tokio::test]
async fn claim_heartbeat_metrics_finish() {
    let (_dir, store, id, _) = fresh().await;
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

#[tokio::test]
async fn retry_limits_per_state() {
    let (_dir, store, id, _) = fresh().await;
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

#[tokio::test]
async fn expired_leases_are_reaped_and_fence_the_old_worker() {
    let (_dir, store, id, _) = fresh().await;
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

#[tokio::test]
async fn a_dead_local_worker_is_reaped_at_once() {
    let (_dir, store, id, _) = fresh().await;
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

#[tokio::test]
async fn concurrent_claims_never_share_a_trial() {
    let (dir, store, id, _) = fresh().await;
    let path = dir.path().join("sub/slaw.db");
    let mut handles = Vec::new();
    for w in 0..8 {
        let path = path.clone();
        handles.push(tokio::spawn(async move {
            let s = Store::open(path.to_str().unwrap()).await.unwrap();
            let mut got = Vec::new();
            while let Some(c) = s.claim(id, &format!("w:{w}"), "cpu").await.unwrap() {
                got.push(c.trial_id);
            }
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

#[tokio::test]
async fn merged_points_logs_and_reported_costs() {
    let (_dir, store, id, _) = fresh().await;
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
            "SELECT extra FROM metrics WHERE trial_id = $1 AND step = 5",
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
            "SELECT COUNT(*) FROM trial_logs WHERE trial_id = $1",
            &[c.trial_id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(left.rows[0][0], crate::store::Value::Int(0));
}
