-- slaw's result store (PostgreSQL). Times are Unix seconds; use to_timestamp(x).
-- Same tables and columns as the SQLite migration in ../sqlite.

CREATE TABLE sweeps (
    id                  BIGSERIAL PRIMARY KEY,
    name                TEXT    NOT NULL UNIQUE,
    yaml                TEXT    NOT NULL,              -- the sweep file as last run
    spec_json           TEXT    NOT NULL,              -- the resolved sweep (every default filled in)
    source_path         TEXT,                          -- where the sweep file was read from
    retries_failed      BIGINT NOT NULL,
    retries_diverged    BIGINT NOT NULL,
    retries_interrupted BIGINT NOT NULL,
    created_at          DOUBLE PRECISION    NOT NULL,
    updated_at          DOUBLE PRECISION    NOT NULL
);

CREATE TABLE trials (
    id                   BIGSERIAL PRIMARY KEY,
    sweep_id             BIGINT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    key                  TEXT    NOT NULL,             -- content hash of the resolved configuration
    active               BIGINT NOT NULL DEFAULT 1,   -- 1 while the sweep file still contains it
    priority             BIGINT NOT NULL,             -- claim order, 0 first (largest first)
    config_json          TEXT    NOT NULL,             -- the trainer's configuration
    size_name            TEXT    NOT NULL,
    size_index           BIGINT NOT NULL,
    family               TEXT    NOT NULL,
    params               BIGINT NOT NULL,             -- all trainable parameters
    params_non_embedding BIGINT NOT NULL,
    tokens_per_example   BIGINT NOT NULL,
    epochs               DOUBLE PRECISION    NOT NULL,
    batch_size           BIGINT NOT NULL,
    lr                   DOUBLE PRECISION    NOT NULL,             -- peak learning rate
    seed                 BIGINT NOT NULL,
    steps                BIGINT NOT NULL,             -- planned optimiser steps
    examples             BIGINT NOT NULL,             -- planned examples seen
    flops_per_example    DOUBLE PRECISION    NOT NULL,             -- training FLOPs per example (3 x forward)
    flops                DOUBLE PRECISION    NOT NULL,             -- planned training FLOPs
    state                TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'running', 'completed', 'failed', 'diverged', 'interrupted')),
    attempts             BIGINT NOT NULL DEFAULT 0,   -- claims that did not end in a clean Ctrl-C
    worker               TEXT,                         -- host:pid of the worker that holds / held it
    device               TEXT,
    claimed_at           DOUBLE PRECISION,
    heartbeat_at         DOUBLE PRECISION,
    started_at           DOUBLE PRECISION,
    finished_at          DOUBLE PRECISION,
    wall_seconds         DOUBLE PRECISION,
    progress_step        BIGINT,
    progress_loss        DOUBLE PRECISION,
    error                TEXT,
    params_measured      BIGINT,                      -- parameters counted by Burn at start
    final_step           BIGINT,
    final_train_loss     DOUBLE PRECISION,
    final_val_loss       DOUBLE PRECISION,
    final_val_accuracy   DOUBLE PRECISION,
    best_val_loss        DOUBLE PRECISION,
    created_at           DOUBLE PRECISION    NOT NULL,
    UNIQUE (sweep_id, key)
);
CREATE INDEX trials_by_state ON trials (sweep_id, state, priority);

CREATE TABLE metrics (
    trial_id     BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt      BIGINT NOT NULL,                     -- trials.attempts when it was written
    step         BIGINT NOT NULL,
    examples     BIGINT NOT NULL,                     -- examples seen so far
    flops        DOUBLE PRECISION    NOT NULL,                     -- training FLOPs so far
    lr           DOUBLE PRECISION    NOT NULL,
    train_loss   DOUBLE PRECISION,
    val_loss     DOUBLE PRECISION,
    val_accuracy DOUBLE PRECISION,
    wall_seconds DOUBLE PRECISION    NOT NULL,
    PRIMARY KEY (trial_id, attempt, step)
);

CREATE TABLE trial_events (
    id       BIGSERIAL PRIMARY KEY,
    trial_id BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt  BIGINT NOT NULL,
    event    TEXT    NOT NULL,  -- claimed, completed, failed, diverged, interrupted, lease_expired, worker_died
    worker   TEXT,
    at       DOUBLE PRECISION    NOT NULL,
    detail   TEXT
);
CREATE INDEX trial_events_by_trial ON trial_events (trial_id);

-- One row per completed trial of a sweep's current grid.
CREATE VIEW results AS
SELECT s.name                 AS sweep,
       t.key                  AS trial,
       t.size_name            AS size,
       t.family,
       t.params,
       t.params_non_embedding,
       t.epochs,
       t.examples,
       t.lr,
       t.seed,
       t.batch_size,
       t.flops,
       t.final_train_loss     AS train_loss,
       t.final_val_loss       AS val_loss,
       t.final_val_accuracy   AS val_accuracy,
       t.best_val_loss,
       t.wall_seconds,
       t.device
FROM trials t
JOIN sweeps s ON s.id = t.sweep_id
WHERE t.state = 'completed' AND t.active = 1;

-- Every evaluation point of the attempt that produced each trial's current state.
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
       m.wall_seconds
FROM metrics m
JOIN trials t ON t.id = m.trial_id AND m.attempt = t.attempts
JOIN sweeps s ON s.id = t.sweep_id
WHERE t.active = 1;
