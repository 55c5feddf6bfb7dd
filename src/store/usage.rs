//! The day's GHL requests per purpose, as the daemon last counted them
//! (its limiter lives in its memory; `ghlsync status` runs in another
//! process), and the projection of each to the end of the UTC day. The
//! daemon also reads its own rows back at start, so a restart carries the
//! day's count over instead of starting it from zero.

use chrono::{DateTime, NaiveDate, Utc};

use crate::domain::{Purpose, Side};

use super::error::{op_err, Result};
use super::sql::us;
use super::Store;

/// One purpose's requests on one side of a pair on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct RequestUsage {
    pub pair: String,
    pub side: Side,
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    pub purpose: Purpose,
    /// Requests sent that day.
    pub requests: i64,
    /// What the day will have used at UTC midnight at the recent pace.
    pub projected: i64,
    pub recorded_at: DateTime<Utc>,
}

/// The text a UTC day is stored as.
pub fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

impl Store {
    /// Replaces the stored counts of these (pair, side, day, purpose) rows.
    pub async fn record_request_usage(&self, rows: &[RequestUsage]) -> Result<()> {
        const SQL: &str = "INSERT INTO request_usage (pair, side, day, purpose, requests, \
             projected, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (pair, side, day, purpose) DO UPDATE SET \
               requests = excluded.requests, projected = excluded.projected, \
               recorded_at = excluded.recorded_at";
        for r in rows {
            on_pool!(self, |p| {
                sqlx::query(SQL)
                    .bind(r.pair.as_str())
                    .bind(r.side)
                    .bind(r.day.as_str())
                    .bind(r.purpose)
                    .bind(r.requests)
                    .bind(r.projected)
                    .bind(us(r.recorded_at))
                    .execute(p)
                    .await
                    .map(|_| ())
            })
            .map_err(op_err(|| {
                format!(
                    "record_request_usage(pair={}, side={}, purpose={})",
                    r.pair, r.side, r.purpose
                )
            }))?;
        }
        Ok(())
    }

    /// A pair's counts of one UTC day, per side and purpose.
    pub async fn request_usage(&self, pair: &str, day: NaiveDate) -> Result<Vec<RequestUsage>> {
        let day = day_text(day);
        on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT pair, side, day, purpose, requests, projected, recorded_at \
                 FROM request_usage WHERE pair = $1 AND day = $2 ORDER BY side, purpose",
            )
            .bind(pair)
            .bind(day.as_str())
            .fetch_all(p)
            .await
        })
        .map_err(op_err(|| format!("request_usage(pair={pair}, day={day})")))
    }
}
