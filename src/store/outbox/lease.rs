//! Leases: writers claim due items for a while instead of locking them,
//! so a crashed writer's items become claimable again when the lease runs
//! out, and a writer shutting down hands back what it did not start.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::OutboxItem;
use crate::config::database::Backend;
use crate::domain::Side;
use crate::store::error::{op_err, Result};
use crate::store::sql::{dialect, now, placeholder_list, us, MAX_IDS_PER_LOOKUP};
use crate::store::Store;

/// SQLite: one UPDATE over a LIMITed sub-select is atomic (writers are
/// serialised by the database lock).
const CLAIM_SQLITE: &str =
    "UPDATE outbox SET locked_until = $1, updated_at = $2, attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox \
                  WHERE status = 'pending' AND next_attempt_at <= $2 \
                    AND (locked_until IS NULL OR locked_until <= $2) \
                  ORDER BY id LIMIT $3) \
     RETURNING *";

/// Postgres: lock the chosen rows, skipping rows another replica is
/// claiming right now, so concurrent writers never take the same item.
const CLAIM_POSTGRES: &str = "WITH picked AS ( \
       SELECT id FROM outbox \
       WHERE status = 'pending' AND next_attempt_at <= $2 \
         AND (locked_until IS NULL OR locked_until <= $2) \
       ORDER BY id LIMIT $3 \
       FOR UPDATE SKIP LOCKED) \
     UPDATE outbox SET locked_until = $1, updated_at = $2, attempts = outbox.attempts + 1 \
     FROM picked WHERE outbox.id = picked.id \
     RETURNING outbox.*";

/// Pending writes held under a live lease, for one pair and target side:
/// what a writer has claimed and not finished. At the end of a
/// `sync --once` its own writer holds nothing, so these belong to another
/// process: a daemon running now, or one killed before it could finish
/// (its leases run out at `until`, and the items are claimable again).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeasedWrites {
    pub pair: String,
    /// The side the writes are aimed at.
    pub side: Side,
    pub count: i64,
    /// When the first of these leases runs out.
    pub first_expiry: DateTime<Utc>,
    /// When the last of them runs out.
    pub until: DateTime<Utc>,
}

/// One text for both backends: the same aggregate over the pending rows a
/// claim would skip because of their lease.
const LEASED_OUTBOX: &str = "SELECT pair, target_side, COUNT(*), MIN(locked_until), \
            MAX(locked_until) \
     FROM outbox WHERE status = 'pending' AND locked_until > $1 \
     GROUP BY pair, target_side ORDER BY pair, target_side";

impl Store {
    /// Leases up to `limit` due outbox items (pending, `next_attempt_at`
    /// reached, no live lease) for `lease`, oldest first. Each claim counts
    /// as an attempt, so an item whose write crashes the writer every time
    /// still reaches the attempt limit instead of coming back forever. A writer that dies
    /// holding items loses nothing: once the lease expires they are claimable
    /// again. Concurrent callers never receive the same item while its lease
    /// is live.
    pub async fn claim_outbox(&self, limit: u32, lease: Duration) -> Result<Vec<OutboxItem>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now = now();
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let until = us(now
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC));
        let sql = match self.backend() {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let mut items: Vec<OutboxItem> = on_pool!(self, |p| {
            sqlx::query_as(sql)
                .bind(until)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .map_err(op_err(|| format!("claim_outbox(limit={limit})")))?;
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    /// Gives claimed items back untouched (lease released, the claim not
    /// counted as an attempt): a writer shutting down hands over what it
    /// did not start, so a restart takes them at once instead of waiting
    /// for the lease to expire.
    pub async fn release_outbox(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(MAX_IDS_PER_LOOKUP) {
            let sql = dialect(
                self.backend(),
                format!(
                    "UPDATE outbox SET locked_until = NULL, attempts = attempts - 1 \
                     WHERE status = 'pending' AND locked_until IS NOT NULL AND id IN ({})",
                    placeholder_list(chunk.len(), 1)
                ),
            );
            on_pool!(self, |p| {
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(*id);
                }
                q.execute(p).await.map(|_| ())
            })
            .map_err(op_err(|| format!("release_outbox({} ids)", chunk.len())))?;
        }
        Ok(())
    }

    /// Pending items under a live lease right now, per pair and target
    /// side (see [`LeasedWrites`]); empty when no writer holds anything.
    pub async fn leased_outbox(&self) -> Result<Vec<LeasedWrites>> {
        let now = now();
        type Row = (String, Side, i64, DateTime<Utc>, DateTime<Utc>);
        let rows: Vec<Row> = on_pool!(self, |p| {
            sqlx::query_as(LEASED_OUTBOX).bind(now).fetch_all(p).await
        })
        .map_err(op_err(|| "leased_outbox"))?;
        Ok(rows
            .into_iter()
            .map(|(pair, side, count, first_expiry, until)| LeasedWrites {
                pair,
                side,
                count,
                first_expiry,
                until,
            })
            .collect())
    }
}
