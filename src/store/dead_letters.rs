//! Dead letters: records and writes that failed for good, kept with their
//! reason for an operator to retry or drop.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::error::{op_err, Result, StoreError};
use super::journal::{journal_item_and_commit, Direction, JournalAction, NewJournalEntry};
use super::outbox::{OutboxItem, OUTBOX_COLUMNS};
use super::sql::{dialect, now, rows_per_statement, values_with_suffix};
use super::{Store, Tx};
use crate::config::database::Backend;
use crate::domain::{text_enum, EntityKind, Side};

text_enum! {
    /// Operator-facing state of a dead letter.
    pub enum DeadLetterStatus as "dead letter status" {
        Open => "open",
        Retried => "retried",
        Dropped => "dropped",
    }
}

text_enum! {
    /// Where in the data path a dead-lettered record failed.
    pub enum DeadLetterStage as "dead letter stage" {
        Read => "read",
        Map => "map",
        Write => "write",
    }
}

/// A record or write that failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub pair: String,
    /// The side whose record (read, map) or write failed.
    pub side: Side,
    pub entity: EntityKind,
    pub record_id: Option<String>,
    pub outbox_id: Option<i64>,
    pub stage: DeadLetterStage,
    pub reason: String,
    pub payload: Option<Value>,
}

/// A dead-lettered record or write.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub pair: String,
    pub side: Side,
    pub entity: EntityKind,
    pub record_id: Option<String>,
    pub outbox_id: Option<i64>,
    pub stage: DeadLetterStage,
    pub reason: String,
    #[sqlx(json(nullable))]
    pub payload: Option<Value>,
    pub status: DeadLetterStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

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
        side: Side,
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

    /// The payloads of the open read and map dead letters of these records
    /// of `side` (a record may have more than one): what a decision checks
    /// to skip a version it dead-lettered already. One statement, however
    /// many ids: they travel as one JSON array.
    pub async fn open_dead_letter_payloads(
        &self,
        pair: &str,
        side: Side,
        entity: EntityKind,
        record_ids: &[&str],
    ) -> Result<Vec<(String, Value)>> {
        if record_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = Value::from(record_ids.to_vec()).to_string();
        let each_id = match self.backend() {
            Backend::Sqlite => "SELECT value FROM json_each($4)",
            Backend::Postgres => "SELECT jsonb_array_elements_text($4::jsonb)",
        };
        let sql = format!(
            "SELECT record_id, payload FROM dead_letters WHERE pair = $1 AND side = $2 \
             AND entity = $3 AND status = 'open' AND stage <> 'write' \
             AND payload IS NOT NULL AND record_id IN ({each_id})"
        );
        let rows: Vec<(String, Json<Value>)> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(pair)
                .bind(side)
                .bind(entity)
                .bind(ids.as_str())
                .fetch_all(p)
                .await
        })
        .map_err(op_err(|| {
            format!(
                "open_dead_letter_payloads(pair={pair}, side={side}, entity={entity}, {} ids)",
                record_ids.len()
            )
        }))?;
        Ok(rows.into_iter().map(|(id, Json(v))| (id, v)).collect())
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
        self.update_dead_letter_status("set_dead_letter_status", id, status, "")
            .await?
            .ok_or(StoreError::DeadLetterNotFound { id })
    }

    /// Sets dead letter `id` to `status` where it also meets `condition`
    /// (SQL appended to `WHERE id = $3`, empty for none); the updated row,
    /// or `None` if no row matched. `op` names the caller in errors.
    async fn update_dead_letter_status(
        &self,
        op: &str,
        id: i64,
        status: DeadLetterStatus,
        condition: &str,
    ) -> Result<Option<DeadLetter>> {
        let now = now();
        let sql = format!(
            "UPDATE dead_letters SET status = $1, updated_at = $2 WHERE id = $3{condition} \
             RETURNING {DEAD_LETTER_COLUMNS}"
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(status)
                .bind(now)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(op_err(|| format!("{op}(id={id}, status={status})")))
    }

    /// Why dead letter `id` was not changed by an update that only applies
    /// to open ones: it is not open any more, or it does not exist.
    async fn not_open_dead_letter(&self, id: i64) -> Result<StoreError> {
        Ok(match self.dead_letter(id).await? {
            Some(letter) => StoreError::DeadLetterNotOpen {
                id,
                status: letter.status,
            },
            None => StoreError::DeadLetterNotFound { id },
        })
    }
}

impl Store {
    /// Moves an open dead letter to `status` (an operator's `retry` or
    /// `drop`), refusing one that is not open any more, so a decision is
    /// taken once. The row is kept for audit either way.
    pub async fn close_dead_letter(&self, id: i64, status: DeadLetterStatus) -> Result<DeadLetter> {
        let row = self
            .update_dead_letter_status("close_dead_letter", id, status, " AND status = 'open'")
            .await?;
        match row {
            Some(row) => Ok(row),
            None => Err(self.not_open_dead_letter(id).await?),
        }
    }

    /// Retries a write-stage dead letter: its outbox item goes back to
    /// pending (attempts reset, due now), the letter is marked retried, and
    /// a `planned` journal row says who re-queued it, in one transaction.
    /// The writer then takes the item like any other.
    pub async fn requeue_dead_write(&self, id: i64) -> Result<OutboxItem> {
        const OP: &str = "requeue_dead_write";
        let now = now();
        let mut tx = self.begin(OP).await?;
        let sql = format!(
            "UPDATE dead_letters SET status = 'retried', updated_at = $1 WHERE id = $2 \
             AND status = 'open' RETURNING {DEAD_LETTER_COLUMNS}"
        );
        let letter: Option<DeadLetter> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| format!("{OP}(id={id})")))?;
        let Some(letter) = letter else {
            drop(tx);
            return Err(self.not_open_dead_letter(id).await?);
        };
        let not_requeueable = |reason: String| StoreError::NotRequeueable { id, reason };
        let Some(outbox_id) = letter
            .outbox_id
            .filter(|_| letter.stage == DeadLetterStage::Write)
        else {
            return Err(not_requeueable(format!(
                "it failed at the {} stage, not on a queued write",
                letter.stage
            )));
        };
        // `last_error` stays: it tells the writer that this write was sent
        // before, so a create looks for the record it may have made
        // instead of sending it blind (issue 13: a retried dead letter
        // made a task twice).
        let sql = format!(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, \
             locked_until = NULL, completed_at = NULL, updated_at = $1 \
             WHERE id = $2 AND status = 'dead' RETURNING {OUTBOX_COLUMNS}"
        );
        let item: Option<OutboxItem> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(outbox_id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| {
            format!("{OP}(id={id}): re-queuing outbox item {outbox_id}")
        }))?;
        let Some(item) = item else {
            return Err(not_requeueable(format!(
                "its outbox item {outbox_id} is gone or no longer dead"
            )));
        };
        let mut entry = NewJournalEntry::new(&item.pair, item.entity, JournalAction::Planned);
        entry.direction = Some(Direction::towards(item.target_side));
        entry.set_id(item.target_side, item.target_id.clone());
        entry.fields = item
            .payload
            .get("changed")
            .and_then(|c| serde_json::from_value(c.clone()).ok())
            .unwrap_or_default();
        entry.detail = Some(format!("{} re-queued from dead letter {id}", item.op));
        journal_item_and_commit(tx, OP, &entry, &item, now).await?;
        Ok(item)
    }
}
