-- slaw's result store (SQLite). Times are Unix seconds (REAL); use datetime(x, 'unixepoch').
-- The PostgreSQL migration in ../postgres creates the same tables with the same columns.

CREATE TABLE sweeps (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL UNIQUE,
    yaml                TEXT    NOT NULL,              -- the sweep file as last run
    spec_json           TEXT    NOT NULL,              -- the resolved sweep (every default filled in)
    source_path         TEXT,                          -- where the sweep file was read from
    retries_failed      INTEGER NOT NULL,
    retries_diverged    INTEGER NOT NULL,
    retries_interrupted INTEGER NOT NULL,
    created_at          REAL    NOT NULL,
    updated_at          REAL    NOT NULL
);

CREATE TABLE trials (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep_id             INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    key                  TEXT    NOT NULL,             -- content hash of the resolved configuration
    active               INTEGER NOT NULL DEFAULT 1,   -- 1 while the sweep file still contains it
    priority             INTEGER NOT NULL,             -- claim order, 0 first (largest first)
    config_json          TEXT    NOT NULL,             -- the trainer's configuration
    size_name            TEXT    NOT NULL,
    size_index           INTEGER NOT NULL,
    family               TEXT    NOT NULL,
    params               INTEGER NOT NULL,             -- all trainable parameters
    params_non_embedding INTEGER NOT NULL,
    tokens_per_example   INTEGER NOT NULL,
    epochs               REAL    NOT NULL,
    batch_size           INTEGER NOT NULL,
    lr                   REAL    NOT NULL,             -- peak learning rate
    seed                 INTEGER NOT NULL,
    steps                INTEGER NOT NULL,             -- planned optimiser steps
    examples             INTEGER NOT NULL,             -- planned examples seen
    flops_per_example    REAL    NOT NULL,             -- training FLOPs per example (3 x forward)
    flops                REAL    NOT NULL,             -- planned training FLOPs
    state                TEXT    NOT NULL DEFAULT 'pending'
                         CHECK (state IN ('pending', 'running', 'completed', 'failed', 'diverged', 'interrupted')),
    attempts             INTEGER NOT NULL DEFAULT 0,   -- claims that did not end in a clean Ctrl-C
    worker               TEXT,                         -- host:pid of the worker that holds / held it
    device               TEXT,
    claimed_at           REAL,
    heartbeat_at         REAL,
    started_at           REAL,
    finished_at          REAL,
    wall_seconds         REAL,
    progress_step        INTEGER,
    progress_loss        REAL,
    error                TEXT,
    params_measured      INTEGER,                      -- parameters counted by Burn at start
    final_step           INTEGER,
    final_train_loss     REAL,
    final_val_loss       REAL,
    final_val_accuracy   REAL,
    best_val_loss        REAL,
    created_at           REAL    NOT NULL,
    UNIQUE (sweep_id, key)
);
CREATE INDEX trials_by_state ON trials (sweep_id, state, priority);

CREATE TABLE metrics (
    trial_id     INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt      INTEGER NOT NULL,                     -- trials.attempts when it was written
    step         INTEGER NOT NULL,
    examples     INTEGER NOT NULL,                     -- examples seen so far
    flops        REAL    NOT NULL,                     -- training FLOPs so far
    lr           REAL    NOT NULL,
    train_loss   REAL,
    val_loss     REAL,
    val_accuracy REAL,
    wall_seconds REAL    NOT NULL,
    PRIMARY KEY (trial_id, attempt, step)
);

CREATE TABLE trial_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id INTEGER NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    attempt  INTEGER NOT NULL,
    event    TEXT    NOT NULL,  -- claimed, completed, failed, diverged, interrupted, lease_expired, worker_died
    worker   TEXT,
    at       REAL    NOT NULL,
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
