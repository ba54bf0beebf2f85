-- Running on a cluster: the Slurm job arrays that `slaw run --executor slurm` submitted, the
-- array task that holds (or last held) each trial, and the index claims walk. The SQLite
-- migration in ../sqlite is the same.

ALTER TABLE trials ADD COLUMN slurm_job TEXT;          -- "JOBID_TASK" of the array task that claimed it

CREATE TABLE slurm_jobs (
    id              BIGSERIAL PRIMARY KEY,
    sweep_id        BIGINT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
    job_id          TEXT    NOT NULL,                  -- Slurm's id of the job array
    tasks           BIGINT NOT NULL,                   -- array tasks (0 .. tasks-1)
    max_parallel    BIGINT,                            -- the array's %N throttle (NULL: none)
    trials_per_task BIGINT NOT NULL,                   -- --max-trials of each task's worker
    script          TEXT    NOT NULL,                  -- the batch script as submitted
    submitted_at    DOUBLE PRECISION NOT NULL,
    ended_at        DOUBLE PRECISION,                  -- when slaw saw its last task leave the queue
    state           TEXT    NOT NULL DEFAULT 'submitted'
                    CHECK (state IN ('submitted', 'ended', 'cancelled'))
);
CREATE INDEX slurm_jobs_by_sweep ON slurm_jobs (sweep_id, submitted_at);

-- Claiming walks this index in claim order (largest first) over the rows that can still be
-- claimed, instead of scanning and sorting every trial of the sweep.
CREATE INDEX trials_claimable ON trials (sweep_id, priority, id)
    WHERE state IN ('pending', 'failed', 'diverged', 'interrupted');
