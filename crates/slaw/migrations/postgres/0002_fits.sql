-- Fitted laws: every fit slaw computes is kept with its inputs, method and full-precision result.
CREATE TABLE fits (
    id          BIGSERIAL PRIMARY KEY,
    sweep_id    BIGINT REFERENCES sweeps (id) ON DELETE CASCADE,  -- NULL for fits of imported CSV files
    source      TEXT    NOT NULL,   -- 'sweep:<name>' or 'csv:<path>'
    method      TEXT    NOT NULL,   -- lr_cells, lr_law, frontier, isoflop, parametric
    filter_json TEXT    NOT NULL,   -- how points were chosen: metric, parameter count, budget unit, exclusions
    inputs_json TEXT    NOT NULL,   -- the points the fit used (trial keys and values)
    result_json TEXT    NOT NULL,   -- coefficients at full precision, intervals, diagnostics
    n_points    BIGINT NOT NULL,
    bootstrap   BIGINT NOT NULL,   -- resamples behind the intervals (0: none)
    seed        BIGINT NOT NULL,   -- bootstrap seed
    created_at  DOUBLE PRECISION    NOT NULL
);
CREATE INDEX fits_by_sweep ON fits (sweep_id, method, created_at);
