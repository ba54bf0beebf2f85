//! Stored fits: each law fitted on a sweep or an imported file, with its method and source.

use sqlx::{AssertSqlSafe, Row};

use super::{now, FitRow, NewFit, Store, StoreError};

impl Store {
    /// Stores a fit; returns its id.
    pub async fn save_fit(&self, fit: &NewFit) -> Result<i64, StoreError> {
        self.check_file()?;
        let row = sqlx::query(
            "INSERT INTO fits (sweep_id, source, method, filter_json, inputs_json, result_json, \
                               n_points, bootstrap, seed, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(fit.sweep_id)
        .bind(&fit.source)
        .bind(&fit.method)
        .bind(fit.filter.to_string())
        .bind(fit.inputs.to_string())
        .bind(fit.result.to_string())
        .bind(fit.n_points as i64)
        .bind(fit.bootstrap as i64)
        .bind(fit.seed as i64)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// The fits of `method` for `source` (`sweep:<name>` or `csv:<path>`), newest first.
    pub async fn fits(&self, source: &str, method: &str) -> Result<Vec<FitRow>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM fits WHERE source = $1 AND method = $2 ORDER BY id DESC",
            FitRow::COLUMNS
        )))
        .bind(source)
        .bind(method)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(FitRow::from_row).collect()
    }

    /// The stored fit with id `id`.
    pub async fn fit(&self, id: i64) -> Result<Option<FitRow>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {} FROM fits WHERE id = $1",
            FitRow::COLUMNS
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(FitRow::from_row).transpose()
    }
}
