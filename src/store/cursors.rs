//! Change-detection cursors: where polling stands per (pair, side, entity,
//! stream). They only move inside a [`Changeset`](super::Changeset), in the
//! same transaction as the outbox rows the new position covers.

use chrono::{DateTime, Utc};

use super::error::{op_err, Result};
use super::model::Change;
use super::sql::{us, us_opt};
use super::{Store, Tx};
use crate::domain::{EntityKind, Side};

/// Where change detection stands for one (pair, side, entity, stream).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cursor {
    pub pair: String,
    pub side: Side,
    pub entity: EntityKind,
    /// Distinguishes several feeds of one entity, e.g. `search` vs
    /// `business:<id>`; empty for the default feed.
    pub stream: String,
    /// Newest `updated_at` durably processed (the next poll starts here,
    /// minus the overlap).
    pub watermark: Option<DateTime<Utc>>,
    /// Opaque pagination position (e.g. GHL `searchAfter`) of an unfinished pass.
    pub cursor: Option<String>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Moves a cursor; the row is created if missing. `None` / `Change::Keep`
/// leave the stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorAdvance {
    pub pair: String,
    pub side: Side,
    pub entity: EntityKind,
    pub stream: String,
    pub watermark: Change<DateTime<Utc>>,
    pub cursor: Change<String>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
}

impl CursorAdvance {
    /// An advance that changes nothing yet; set the fields to move.
    pub fn new(pair: &str, side: Side, entity: EntityKind, stream: &str) -> Self {
        CursorAdvance {
            pair: pair.to_owned(),
            side,
            entity,
            stream: stream.to_owned(),
            watermark: Change::Keep,
            cursor: Change::Keep,
            last_poll_at: None,
            last_success_at: None,
            last_full_sync_at: None,
        }
    }

    pub(crate) fn key(&self) -> (&str, Side, EntityKind, &str) {
        (&self.pair, self.side, self.entity, &self.stream)
    }

    pub(crate) fn then(self, later: CursorAdvance) -> CursorAdvance {
        CursorAdvance {
            watermark: self.watermark.then(later.watermark),
            cursor: self.cursor.then(later.cursor),
            last_poll_at: later.last_poll_at.or(self.last_poll_at),
            last_success_at: later.last_success_at.or(self.last_success_at),
            last_full_sync_at: later.last_full_sync_at.or(self.last_full_sync_at),
            ..self
        }
    }
}

const CURSOR_COLUMNS: &str = "pair, side, entity, stream, watermark, cursor, last_poll_at, \
     last_success_at, last_full_sync_at, updated_at";

/// Creates or moves one cursor. `Keep` / `None` leave stored values alone
/// (and store NULL on creation).
pub(super) async fn upsert_cursor(
    tx: &mut Tx,
    adv: &CursorAdvance,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO cursors (pair, side, entity, stream, watermark, cursor, \
         last_poll_at, last_success_at, last_full_sync_at, updated_at) \
         VALUES ($1, $2, $3, $4, $6, $8, $9, $10, $11, $12) \
         ON CONFLICT (pair, side, entity, stream) DO UPDATE SET \
           watermark = CASE WHEN $5 = 0 THEN cursors.watermark ELSE excluded.watermark END, \
           cursor = CASE WHEN $7 = 0 THEN cursors.cursor ELSE excluded.cursor END, \
           last_poll_at = COALESCE(excluded.last_poll_at, cursors.last_poll_at), \
           last_success_at = COALESCE(excluded.last_success_at, cursors.last_success_at), \
           last_full_sync_at = COALESCE(excluded.last_full_sync_at, cursors.last_full_sync_at), \
           updated_at = excluded.updated_at";
    on_tx!(tx, |c| {
        sqlx::query(SQL)
            .bind(adv.pair.as_str())
            .bind(adv.side)
            .bind(adv.entity)
            .bind(adv.stream.as_str())
            .bind(adv.watermark.flag())
            .bind(adv.watermark.value().copied().map(us))
            .bind(adv.cursor.flag())
            .bind(adv.cursor.value().map(String::as_str))
            .bind(us_opt(adv.last_poll_at))
            .bind(us_opt(adv.last_success_at))
            .bind(us_opt(adv.last_full_sync_at))
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ())
    })
}

impl Store {
    /// Where detection stands for one stream; None before its first pass
    /// (the engine then starts with a full sync).
    pub async fn load_cursor(
        &self,
        pair: &str,
        side: Side,
        entity: EntityKind,
        stream: &str,
    ) -> Result<Option<Cursor>> {
        let sql = format!(
            "SELECT {CURSOR_COLUMNS} FROM cursors \
             WHERE pair = $1 AND side = $2 AND entity = $3 AND stream = $4"
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(pair)
                .bind(side)
                .bind(entity)
                .bind(stream)
                .fetch_optional(p)
                .await
        })
        .map_err(op_err(|| {
            format!("load_cursor(pair={pair}, side={side}, entity={entity}, stream={stream:?})")
        }))
    }

    /// Every cursor of a pair: for `status` output (last poll, last success,
    /// last full sync per stream).
    pub async fn cursors(&self, pair: &str) -> Result<Vec<Cursor>> {
        let sql = format!(
            "SELECT {CURSOR_COLUMNS} FROM cursors WHERE pair = $1 ORDER BY side, entity, stream"
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(pair).fetch_all(p).await
        })
        .map_err(op_err(|| format!("cursors(pair={pair})")))
    }
}
