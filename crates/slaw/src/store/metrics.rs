//! A trial's evaluation points, events and log lines: written by workers (one row, or many rows
//! per statement for command trainers' floods of points) and read back by the analysis.

use sqlx::{AssertSqlSafe, Row};

use super::{
    distinct_step_chunks, finite, placeholders, Claimed, EventRow, LogLine, LogRow, MetricRow,
    Store, StoreError, ROWS_PER_INSERT,
};

impl Store {
    /// The evaluation points of a trial's current attempt.
    pub async fn metrics(&self, trial_id: i64) -> Result<Vec<MetricRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM metrics m JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempts \
             WHERE m.trial_id = $1 ORDER BY m.step",
            MetricRow::COLUMNS
        )))
        .bind(trial_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(MetricRow::from_row).collect()
    }

    /// The event log of a trial.
    pub async fn events(&self, trial_id: i64) -> Result<Vec<EventRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM trial_events WHERE trial_id = $1 ORDER BY id",
            EventRow::COLUMNS
        )))
        .bind(trial_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(EventRow::from_row).collect()
    }

    /// Every evaluation point of the active trials of a sweep (current attempts), by trial id.
    pub async fn sweep_metrics(&self, sweep_id: i64) -> Result<Vec<(i64, MetricRow)>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT m.trial_id, {} FROM metrics m \
             JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempts \
             WHERE t.sweep_id = $1 AND t.active = 1 ORDER BY m.trial_id, m.step",
            MetricRow::COLUMNS
        )))
        .bind(sweep_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("trial_id")?, MetricRow::from_row(r)?)))
            .collect()
    }

    /// Stores one evaluation point of the claimed attempt.
    pub async fn add_metric(&self, c: &Claimed, m: &MetricRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO metrics (trial_id, attempt, step, examples, flops, lr, train_loss, \
                                  val_loss, val_accuracy, wall_seconds) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (trial_id, attempt, step) DO NOTHING",
        )
        .bind(c.trial_id)
        .bind(c.attempt)
        .bind(m.step)
        .bind(m.examples)
        .bind(m.flops)
        .bind(m.lr)
        .bind(finite(m.train_loss))
        .bind(finite(m.val_loss))
        .bind(finite(m.val_accuracy))
        .bind(m.wall_seconds)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores evaluation points of the claimed attempt, each with a JSON object of further
    /// metrics. A point whose step is stored already is merged into it: values given now
    /// replace stored ones, missing ones keep them. Points go in multi-row statements of up to
    /// `ROWS_PER_INSERT` (one transaction), so that a trainer's 200 000 points take seconds,
    /// not minutes.
    pub async fn upsert_metrics(
        &self,
        c: &Claimed,
        points: &[(MetricRow, Option<String>)],
    ) -> Result<(), StoreError> {
        self.upsert_metrics_by(c, points, ROWS_PER_INSERT).await
    }

    /// [`Store::upsert_metrics`] with `rows` points per statement (for the benchmark that
    /// compares batch sizes).
    #[doc(hidden)]
    pub async fn upsert_metrics_by(
        &self,
        c: &Claimed,
        points: &[(MetricRow, Option<String>)],
        rows: usize,
    ) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        const COLUMNS: usize = 11;
        let mut tx = self.pool.begin().await?;
        for chunk in distinct_step_chunks(points, rows.clamp(1, ROWS_PER_INSERT)) {
            let sql = format!(
                "INSERT INTO metrics (trial_id, attempt, step, examples, flops, lr, train_loss, \
                                      val_loss, val_accuracy, wall_seconds, extra) \
                 VALUES {} \
                 ON CONFLICT (trial_id, attempt, step) DO UPDATE SET \
                     examples = excluded.examples, flops = excluded.flops, lr = excluded.lr, \
                     train_loss = COALESCE(excluded.train_loss, metrics.train_loss), \
                     val_loss = COALESCE(excluded.val_loss, metrics.val_loss), \
                     val_accuracy = COALESCE(excluded.val_accuracy, metrics.val_accuracy), \
                     wall_seconds = excluded.wall_seconds, \
                     extra = COALESCE(excluded.extra, metrics.extra)",
                placeholders(self.backend, chunk.len(), COLUMNS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (m, extra) in chunk {
                q = q
                    .bind(c.trial_id)
                    .bind(c.attempt)
                    .bind(m.step)
                    .bind(m.examples)
                    .bind(m.flops)
                    .bind(m.lr)
                    .bind(finite(m.train_loss))
                    .bind(finite(m.val_loss))
                    .bind(finite(m.val_accuracy))
                    .bind(m.wall_seconds)
                    .bind(extra.as_deref());
            }
            // Not cached: through the Any driver a parameter bound as NULL in one execution
            // and as a number in another breaks PostgreSQL's cached statement ("incorrect
            // binary data format in bind parameter").
            q.persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Appends lines to the claimed attempt's log (multi-row statements, one transaction).
    pub async fn add_logs(&self, c: &Claimed, lines: &[LogLine]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO trial_logs (trial_id, attempt, stream, line, at) VALUES {}",
                placeholders(self.backend, chunk.len(), 5)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for l in chunk {
                q = q
                    .bind(c.trial_id)
                    .bind(c.attempt)
                    .bind(l.stream)
                    .bind(&l.line)
                    .bind(l.at);
            }
            q.persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The last `limit` log lines of a trial's current attempt, oldest first.
    pub async fn logs(&self, trial_id: i64, limit: usize) -> Result<Vec<LogRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM trial_logs l JOIN trials t ON t.id = l.trial_id AND l.attempt = t.attempts \
             WHERE l.trial_id = $1 ORDER BY l.id DESC LIMIT $2",
            LogRow::COLUMNS
        )))
        .bind(trial_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(LogRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}
