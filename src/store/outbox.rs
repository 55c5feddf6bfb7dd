//! The outbox: planned writes, durable before the watermark moves, taken by
//! writers under a lease.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::error::{op_err, Result, StoreError};
use super::journal::journal_item_and_commit;
use super::model::{
    DeadLetterStage, Direction, FailOutcome, JournalAction, NewDeadLetter, NewJournalEntry,
    NewOutboxItem, OutboxDepth, OutboxItem, OutboxStatus,
};
use super::sql::{
    dialect, now, placeholder_list, rows_per_ordered_statement, sqlite_insert, sqlite_time, us,
};
use super::{dead_letters, Store, Tx};
use crate::config::database::Backend;
use crate::domain::Side;

pub(super) const OUTBOX_COLUMNS: &str = "id, idempotency_key, pair, target_side, entity, op, \
     link_id, target_id, parent_id, payload, status, attempts, next_attempt_at, locked_until, \
     last_error, created_at, updated_at, completed_at";

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

const INSERT_COLS: usize = 13;

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

/// Enqueues outbox rows, skipping keys already present; returns the new
/// rows' ids by idempotency key. Every value (`now` too) is bound per row
/// in column order, so SQLite binds them anonymously (see `sql::dialect`).
///
/// On SQLite the rows get ids reserved under the transaction's write lock
/// (`MAX(id)` + 1, .., which SQLite would have given them anyway), so the
/// ids of a statement that inserted every row are known without reading
/// them back: `RETURNING` hands each row over from sqlx's worker thread
/// one message at a time, and that was a third of the commit's insert
/// time. Only a statement that skipped a key (already enqueued) reads the
/// ids it did insert.
pub(super) async fn insert_outbox(
    tx: &mut Tx,
    rows: &[(&NewOutboxItem, Option<i64>)],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let c = match tx {
        Tx::Postgres(t) => return insert_outbox_postgres(t, rows, now).await,
        Tx::Sqlite(t, _) => &mut **t,
    };
    let mut out = HashMap::with_capacity(rows.len());
    let now_text = sqlite_time(now);
    let mut next_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox")
        .fetch_one(&mut *c)
        .await?;
    for chunk in rows.chunks(rows_per_ordered_statement(Backend::Sqlite, INSERT_COLS)) {
        let sql = sqlite_insert(
            "insert_outbox",
            "INSERT INTO outbox (id, idempotency_key, pair, target_side, entity, op, link_id, \
             target_id, parent_id, payload, next_attempt_at, created_at, updated_at, status, \
             attempts)",
            chunk.len(),
            INSERT_COLS,
            "'pending', 0",
            "ON CONFLICT (idempotency_key) DO NOTHING",
        );
        let first = next_id;
        let mut q = sqlx::query(&sql);
        for (item, link_id) in chunk {
            q = q
                .bind(next_id)
                .bind(item.idempotency_key.as_str())
                .bind(item.pair.as_str())
                .bind(item.target_side)
                .bind(item.entity)
                .bind(item.op)
                .bind(*link_id)
                .bind(item.target_id.as_deref())
                .bind(item.parent_id.as_deref())
                .bind(Json(item.payload.raw()))
                .bind(
                    item.not_before
                        .map_or_else(|| now_text.clone(), |t| sqlite_time(us(t))),
                )
                .bind(now_text.as_str())
                .bind(now_text.as_str());
            next_id += 1;
        }
        let inserted = q.execute(&mut *c).await?.rows_affected();
        if inserted == chunk.len() as u64 {
            out.extend(
                chunk
                    .iter()
                    .zip(first..)
                    .map(|((item, _), id)| (item.idempotency_key.clone(), id)),
            );
        } else if inserted > 0 {
            let found: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, idempotency_key FROM outbox WHERE id BETWEEN ?1 AND ?2")
                    .bind(first)
                    .bind(next_id - 1)
                    .fetch_all(&mut *c)
                    .await?;
            out.extend(found.into_iter().map(|(id, key)| (key, id)));
        }
    }
    Ok(out)
}

/// Postgres: one statement of one array per column (see
/// `links::INSERT_LINKS_POSTGRES` for why not a `VALUES` list).
const INSERT_OUTBOX_POSTGRES: &str = "INSERT INTO outbox (idempotency_key, pair, target_side, \
     entity, op, link_id, target_id, parent_id, payload, next_attempt_at, status, attempts, \
     created_at, updated_at) \
     SELECT t.idempotency_key, t.pair, t.target_side, t.entity, t.op, t.link_id, t.target_id, \
            t.parent_id, t.payload, t.next_attempt_at, 'pending', 0, $11, $11 \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], \
                 $7::text[], $8::text[], $9::jsonb[], $10::timestamptz[]) WITH ORDINALITY \
       AS t(idempotency_key, pair, target_side, entity, op, link_id, target_id, parent_id, \
            payload, next_attempt_at, ord) \
     ORDER BY t.ord \
     ON CONFLICT (idempotency_key) DO NOTHING \
     RETURNING id, idempotency_key";

async fn insert_outbox_postgres(
    c: &mut sqlx::PgConnection,
    rows: &[(&NewOutboxItem, Option<i64>)],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let col = |f: &dyn Fn(&NewOutboxItem) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(|(o, _)| f(o)).collect()
    };
    let inserted: Vec<(i64, String)> = sqlx::query_as(INSERT_OUTBOX_POSTGRES)
        .bind(col(&|o| Some(o.idempotency_key.as_str())))
        .bind(col(&|o| Some(o.pair.as_str())))
        .bind(col(&|o| Some(o.target_side.as_str())))
        .bind(col(&|o| Some(o.entity.as_str())))
        .bind(col(&|o| Some(o.op.as_str())))
        .bind(rows.iter().map(|(_, l)| *l).collect::<Vec<Option<i64>>>())
        .bind(col(&|o| o.target_id.as_deref()))
        .bind(col(&|o| o.parent_id.as_deref()))
        .bind(
            rows.iter()
                .map(|(o, _)| Json(o.payload.raw()))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(o, _)| o.not_before.map(us).unwrap_or(now))
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .fetch_all(&mut *c)
        .await?;
    Ok(inserted.into_iter().map(|(id, key)| (key, id)).collect())
}

/// Ids of existing outbox rows by idempotency key.
pub(super) async fn outbox_ids_by_key(
    tx: &mut Tx,
    keys: &[&str],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        let found: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, idempotency_key FROM outbox WHERE idempotency_key = ANY($1::text[])",
        )
        .bind(keys)
        .fetch_all(&mut **t)
        .await?;
        return Ok(found.into_iter().map(|(id, key)| (key, id)).collect());
    }
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(super::sql::MAX_IDS_PER_LOOKUP) {
        let sql = dialect(
            tx.backend(),
            format!(
                "SELECT id, idempotency_key FROM outbox WHERE idempotency_key IN ({})",
                placeholder_list(chunk.len(), 1)
            ),
        );
        let found: Vec<(i64, String)> = on_tx!(tx, |c| {
            let mut q = sqlx::query_as(&sql);
            for key in chunk {
                q = q.bind(*key);
            }
            q.fetch_all(&mut *c).await
        })?;
        out.extend(found.into_iter().map(|(id, key)| (key, id)));
    }
    Ok(out)
}

/// Explains why an UPDATE guarded by `status = 'pending'` matched nothing.
pub(super) async fn not_pending(tx: &mut Tx, op: &'static str, id: i64) -> StoreError {
    let status: Result<Option<OutboxStatus>, _> = on_tx!(tx, |c| {
        sqlx::query_scalar("SELECT status FROM outbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await
    });
    match status {
        Ok(Some(status)) => StoreError::OutboxNotPending { op, id, status },
        Ok(None) => StoreError::OutboxNotFound { op, id },
        Err(e) => StoreError::query(format!("{op}(id={id}): reading its status"), e),
    }
}

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

    /// Records a failed write attempt (counted when it was claimed): keeps
    /// the error, releases the lease and journals it, in one transaction. With
    /// `retry_at` the item stays pending until then; with `None` it is dead:
    /// a dead letter (stage `write`, the error as reason, the payload) and a
    /// `dead_lettered` journal row are written with it, so the failure is
    /// never silent.
    pub async fn fail_outbox(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<FailOutcome> {
        const OP: &str = "fail_outbox";
        let now = now();
        let mut tx = self.begin(OP).await?;
        let sql = format!(
            "UPDATE outbox SET last_error = $2, locked_until = NULL, \
             updated_at = $1, next_attempt_at = COALESCE($3, next_attempt_at), \
             status = CASE WHEN $3 IS NULL THEN 'dead' ELSE status END \
             WHERE id = $4 AND status = 'pending' RETURNING {OUTBOX_COLUMNS}"
        );
        let retry_at = retry_at.map(us);
        let item: Option<OutboxItem> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(error)
                .bind(retry_at)
                .bind(id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| format!("{OP}(id={id})")))?;
        let Some(item) = item else {
            return Err(not_pending(&mut tx, OP, id).await);
        };

        let mut entry = attempt_entry(&mut tx, &item, error.to_owned()).await?;

        let outcome = match retry_at {
            Some(next_attempt_at) => FailOutcome::Retrying {
                attempts: item.attempts,
                next_attempt_at,
            },
            None => {
                let letter = NewDeadLetter {
                    pair: item.pair.clone(),
                    side: item.target_side,
                    entity: item.entity,
                    record_id: item.target_id.clone(),
                    outbox_id: Some(item.id),
                    stage: DeadLetterStage::Write,
                    reason: error.to_owned(),
                    payload: Some(item.payload.clone()),
                };
                let ids =
                    dead_letters::insert_dead_letters(&mut tx, std::slice::from_ref(&letter), now)
                        .await
                        .map_err(op_err(|| format!("{OP}(id={id}): writing its dead letter")))?;
                entry.action = JournalAction::DeadLettered;
                FailOutcome::Dead {
                    attempts: item.attempts,
                    dead_letter_id: ids[0],
                }
            }
        };
        journal_item_and_commit(tx, OP, &entry, &item, now).await?;
        Ok(outcome)
    }

    /// Withdraws a pending item that must not be applied any more (its
    /// target changed since the write was planned: the next poll merges
    /// that change instead), with a journal row saying why.
    pub async fn cancel_outbox(&self, id: i64, reason: &str) -> Result<()> {
        const OP: &str = "cancel_outbox";
        let now = now();
        let mut tx = self.begin(OP).await?;
        let sql = format!(
            "UPDATE outbox SET status = 'cancelled', locked_until = NULL, last_error = $2, \
             updated_at = $1, completed_at = $1 WHERE id = $3 AND status = 'pending' \
             RETURNING {OUTBOX_COLUMNS}"
        );
        let item: Option<OutboxItem> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(reason)
                .bind(id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| format!("{OP}(id={id})")))?;
        let Some(item) = item else {
            return Err(not_pending(&mut tx, OP, id).await);
        };
        let entry = attempt_entry(&mut tx, &item, format!("write withdrawn: {reason}")).await?;
        journal_item_and_commit(tx, OP, &entry, &item, now).await
    }

    /// Gives claimed items back untouched (lease released, the claim not
    /// counted as an attempt): a writer shutting down hands over what it
    /// did not start, so a restart takes them at once instead of waiting
    /// for the lease to expire.
    pub async fn release_outbox(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(super::sql::MAX_IDS_PER_LOOKUP) {
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

    /// One outbox item by id: for `status`/inspection commands and tests.
    pub async fn outbox_item(&self, id: i64) -> Result<Option<OutboxItem>> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = $1");
        on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await
        })
        .map_err(op_err(|| format!("outbox_item(id={id})")))
    }

    /// Outbox rows by status (and how many pending rows are leased right
    /// now): backlog for health output and metrics.
    pub async fn outbox_depth(&self) -> Result<OutboxDepth> {
        let now = now();
        let rows: Vec<(OutboxStatus, i64, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT status, COUNT(*), \
                        COALESCE(SUM(CASE WHEN locked_until > $1 THEN 1 ELSE 0 END), 0) \
                 FROM outbox GROUP BY status",
            )
            .bind(now)
            .fetch_all(p)
            .await
        })
        .map_err(op_err(|| "outbox_depth"))?;
        let mut depth = OutboxDepth::default();
        for (status, count, leased) in rows {
            match status {
                OutboxStatus::Pending => {
                    depth.pending = count;
                    depth.in_flight = leased;
                }
                OutboxStatus::Done => depth.done = count,
                OutboxStatus::Dead => depth.dead = count,
                OutboxStatus::Cancelled => depth.cancelled = count,
            }
        }
        Ok(depth)
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

    /// Deletes done and cancelled items completed before `older_than`, so
    /// the outbox stays small; the journal keeps their history. Returns how
    /// many rows were deleted.
    pub async fn prune_outbox(&self, older_than: DateTime<Utc>) -> Result<u64> {
        let older_than = us(older_than);
        on_pool!(self, |p| {
            sqlx::query(
                "DELETE FROM outbox WHERE status IN ('done', 'cancelled') AND completed_at < $1",
            )
            .bind(older_than)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(op_err(|| format!("prune_outbox(older_than={older_than})")))
    }
}

/// The journal row of an attempt at an outbox item that did not apply it.
async fn attempt_entry(tx: &mut Tx, item: &OutboxItem, detail: String) -> Result<NewJournalEntry> {
    let (a_id, b_id) = record_ids(tx, item).await?;
    let mut entry = NewJournalEntry::new(&item.pair, item.entity, JournalAction::FailedAttempt);
    entry.direction = Some(Direction::towards(item.target_side));
    entry.a_id = a_id;
    entry.b_id = b_id;
    entry.detail = Some(detail);
    Ok(entry)
}

/// The record's ids on both sides for a journal row about an outbox item:
/// from its link if it has one, else the target id on the target side.
async fn record_ids(tx: &mut Tx, item: &OutboxItem) -> Result<(Option<String>, Option<String>)> {
    if let Some(link_id) = item.link_id {
        let ids: Option<(Option<String>, Option<String>)> = on_tx!(tx, |c| {
            sqlx::query_as("SELECT a_id, b_id FROM links WHERE id = $1")
                .bind(link_id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| {
            format!("reading link {link_id} of outbox item {}", item.id)
        }))?;
        if let Some(ids) = ids {
            return Ok(ids);
        }
    }
    Ok(match item.target_side {
        Side::Ghl => (item.target_id.clone(), None),
        Side::App => (None, item.target_id.clone()),
    })
}
