//! The outbox: planned writes, durable before the watermark moves, taken by
//! writers under a lease. The records here; enqueuing in `enqueue.rs`,
//! leases in `lease.rs`, and attempts that did not apply a write in
//! `attempts.rs`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::error::{op_err, Result, StoreError};
use super::links::LinkRef;
use super::sql::{now, us};
use super::{Store, Tx};
use crate::domain::{text_enum, EntityKind, Side};

mod attempts;
mod enqueue;
mod lease;

pub(super) use enqueue::{insert_outbox, outbox_ids_by_key};
pub use lease::LeasedWrites;

text_enum! {
    /// The write an outbox item performs on its target side.
    pub enum OutboxOp as "outbox operation" {
        Create => "create",
        Update => "update",
        Delete => "delete",
        Complete => "complete",
        AddTags => "add_tags",
        RemoveTags => "remove_tags",
    }
}

text_enum! {
    /// Lifecycle of an outbox item.
    pub enum OutboxStatus as "outbox status" {
        /// Waiting for (or being worked on by) a writer.
        Pending => "pending",
        /// Applied on the target side.
        Done => "done",
        /// Failed for good; a dead letter holds the reason.
        Dead => "dead",
        /// Superseded or withdrawn before it was applied.
        Cancelled => "cancelled",
    }
}

/// A write's payload as JSON text: serialised once where it is planned and
/// stored verbatim, instead of built as a `Value` tree per record, encoded
/// again by the commit and then freed (a tenth of a backfill's CPU).
#[derive(Debug, Clone)]
pub struct PayloadJson(Box<serde_json::value::RawValue>);

impl PayloadJson {
    /// Serialises `value`; fails only for types serde_json cannot encode
    /// (maps with non-string keys).
    pub fn of<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(PayloadJson)
    }

    pub(crate) fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }
}

impl PartialEq for PayloadJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for PayloadJson {}

impl From<Value> for PayloadJson {
    fn from(value: Value) -> Self {
        PayloadJson::of(&value).expect("a JSON value serialises")
    }
}

/// A write to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxItem {
    /// Derived by the engine from the change (e.g. pair, link, op, content
    /// hash) so that re-detecting the same change enqueues nothing new.
    pub idempotency_key: String,
    pub pair: String,
    pub target_side: Side,
    pub entity: EntityKind,
    pub op: OutboxOp,
    pub link: Option<LinkRef>,
    /// The record's id on the target side (None for a create).
    pub target_id: Option<String>,
    /// The owning contact's id on the target side (tasks, notes, ...).
    pub parent_id: Option<String>,
    pub payload: PayloadJson,
    /// Earliest time a writer may take it; None = now.
    pub not_before: Option<DateTime<Utc>>,
}

/// A queued write.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxItem {
    pub id: i64,
    pub idempotency_key: String,
    pub pair: String,
    pub target_side: Side,
    pub entity: EntityKind,
    pub op: OutboxOp,
    pub link_id: Option<i64>,
    pub target_id: Option<String>,
    pub parent_id: Option<String>,
    #[sqlx(json)]
    pub payload: Value,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Lease of the writer working on it; expired leases are claimable again.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Outbox rows by status, for health output and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxDepth {
    pub pending: i64,
    /// Pending rows currently leased by a writer (a subset of `pending`).
    pub in_flight: i64,
    pub done: i64,
    pub dead: i64,
    pub cancelled: i64,
}

/// What `fail_outbox` did with the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Still pending; a writer may take it again at `next_attempt_at`.
    Retrying {
        attempts: i32,
        next_attempt_at: DateTime<Utc>,
    },
    /// Marked dead; the dead letter holds the reason and payload.
    Dead { attempts: i32, dead_letter_id: i64 },
}

pub(super) const OUTBOX_COLUMNS: &str = "id, idempotency_key, pair, target_side, entity, op, \
     link_id, target_id, parent_id, payload, status, attempts, next_attempt_at, locked_until, \
     last_error, created_at, updated_at, completed_at";

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
