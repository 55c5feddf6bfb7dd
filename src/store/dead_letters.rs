//! Dead letters: records and writes that failed for good, kept with their
//! reason for an operator to retry or drop.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::error::{op_err, Result, StoreError};
use super::model::{DeadLetter, DeadLetterStatus, EntityKind, NewDeadLetter, SideRole};
use super::sql::{dialect, now, rows_per_statement, values_with_suffix};
use super::{Store, Tx};

const DEAD_LETTER_COLUMNS: &str = "id, pair, side, entity, record_id, outbox_id, stage, reason, \
     payload, status, created_at, updated_at";

const INSERT_COLS: usize = 8;

/// Inserts open dead letters; returns their ids (in no particular order).
pub(super) async fn insert_dead_letters(
    tx: &mut Tx,
    rows: &[NewDeadLetter],
    now: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(rows_per_statement(tx.backend(), INSERT_COLS)) {
        let sql = dialect(
            tx.backend(),
            format!(
            "INSERT INTO dead_letters (pair, side, entity, record_id, outbox_id, stage, reason, \
             payload, status, created_at, updated_at) VALUES {} RETURNING id",
            values_with_suffix(chunk.len(), INSERT_COLS, 2, "'open', $1, $1")
            ),
        );
        let new: Vec<i64> = on_tx!(tx, |c| {
            let mut q = sqlx::query_scalar(&sql).bind(now);
            for d in chunk {
                q = q
                    .bind(d.pair.as_str())
                    .bind(d.side)
                    .bind(d.entity)
                    .bind(d.record_id.as_deref())
                    .bind(d.outbox_id)
                    .bind(d.stage)
                    .bind(d.reason.as_str())
                    .bind(d.payload.as_ref().map(Json));
            }
            q.fetch_all(&mut *c).await
        })?;
        ids.extend(new);
    }
    Ok(ids)
}

impl Store {
    /// Dead letters, optionally only those in one status, oldest first: the
    /// operator's list of what did not sync and why.
    pub async fn dead_letters(&self, status: Option<DeadLetterStatus>) -> Result<Vec<DeadLetter>> {
        let sql = format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters \
             WHERE ($1 IS NULL OR status = $1) ORDER BY id"
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(status).fetch_all(p).await
        })
        .map_err(op_err(|| {
            format!(
                "dead_letters(status={})",
                status.map_or("*", DeadLetterStatus::as_str)
            )
        }))
    }

    /// Whether an open dead letter already holds this record for this
    /// reason: a record that fails to map is read again by every
    /// overlapping poll, and must be dead-lettered once, not every time.
    pub async fn has_open_dead_letter(
        &self,
        pair: &str,
        side: SideRole,
        entity: EntityKind,
        record_id: &str,
        reason: &str,
    ) -> Result<bool> {
        let found: Option<i64> = on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT id FROM dead_letters WHERE pair = $1 AND side = $2 AND entity = $3 \
                 AND record_id = $4 AND reason = $5 AND status = 'open' LIMIT 1",
            )
            .bind(pair)
            .bind(side)
            .bind(entity)
            .bind(record_id)
            .bind(reason)
            .fetch_optional(p)
            .await
        })
        .map_err(op_err(|| {
            format!("has_open_dead_letter(pair={pair}, side={side}, entity={entity}, record={record_id})")
        }))?;
        Ok(found.is_some())
    }

    /// One dead letter by id (for `dead-letters show`).
    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>> {
        let sql = format!("SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id = $1");
        on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await
        })
        .map_err(op_err(|| format!("dead_letter(id={id})")))
    }

    /// Records the operator's decision on a dead letter (retried, dropped,
    /// or re-opened) and returns the updated row.
    pub async fn set_dead_letter_status(
        &self,
        id: i64,
        status: DeadLetterStatus,
    ) -> Result<DeadLetter> {
        let now = now();
        let sql = format!(
            "UPDATE dead_letters SET status = $1, updated_at = $2 WHERE id = $3 \
             RETURNING {DEAD_LETTER_COLUMNS}"
        );
        let row: Option<DeadLetter> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(status)
                .bind(now)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(op_err(|| {
            format!("set_dead_letter_status(id={id}, status={status})")
        }))?;
        row.ok_or(StoreError::DeadLetterNotFound { id })
    }
}
