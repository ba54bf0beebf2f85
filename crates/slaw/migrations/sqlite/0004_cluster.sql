-- Running on a cluster: the Slurm job arrays that `slaw run --executor slurm` submitted, the
-- array task that holds (or last held) each trial, and the index claims walk. The PostgreSQL
-- migration in ../postgres is the same.

ALTER TABLE trials ADD COLUMN slurm_job TEXT;          -- "JOBID_TASK" of the array task that claimed it

CREATE TABLE slurm_jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    sweep_id        INTEGER NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    job_id          TEXT    NOT NULL,                  -- Slurm's id of the job array
    tasks           INTEGER NOT NULL,                  -- array tasks (0 .. tasks-1)
    max_parallel    INTEGER,                           -- the array's %N throttle (NULL: none)
    trials_per_task INTEGER NOT NULL,                  -- --max-trials of each task's worker
    script          TEXT    NOT NULL,                  -- the batch script as submitted
    submitted_at    REAL    NOT NULL,
    ended_at        REAL,                              -- when slaw saw its last task leave the queue
    state           TEXT    NOT NULL DEFAULT 'submitted'
                    CHECK (state IN ('submitted', 'ended', 'cancelled'))
);
CREATE INDEX slurm_jobs_by_sweep ON slurm_jobs (sweep_id, submitted_at);

-- Claiming walks this index in claim order (largest first) over the rows that can still be
-- claimed, instead of scanning and sorting every trial of the sweep.
CREATE INDEX trials_claimable ON trials (sweep_id, priority, id)
    WHERE state IN ('pending', 'failed', 'diverged', 'interrupted');
