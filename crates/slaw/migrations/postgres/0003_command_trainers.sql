-- Command trainers (trainer: command): metrics slaw does not know, and each trial's output.

-- A JSON object of the metrics a line reported besides slaw's own columns (NULL: none).
ALTER TABLE metrics ADD COLUMN extra TEXT;

-- Output of command trainers: lines that are not protocol records, stderr, slaw's notes.
CREATE TABLE trial_logs (
    id       BIGSERIAL PRIMARY KEY,
    trial_id BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt  BIGINT  NOT NULL,
    stream   TEXT    NOT NULL,  -- stdout, stderr, metrics (non-record lines of $SLAW_METRICS), slaw
    line     TEXT    NOT NULL,
    at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX trial_logs_by_trial ON trial_logs (trial_id, attempt, id);

-- curves gains the extra metrics.
DROP VIEW curves;
CREATE VIEW curves AS
SELECT s.name       AS sweep,
       t.key        AS trial,
       t.size_name  AS size,
       t.params,
       t.epochs,
       t.lr,
       t.seed,
       t.state,
       m.step,
       m.examples,
       m.flops,
       m.lr         AS lr_now,
       m.train_loss,
       m.val_loss,
       m.val_accuracy,
       m.wall_seconds,
       m.extra
FROM metrics m
JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempts
JOIN sweeps s ON s.id = t.sweep_id
WHERE t.active = 1;
