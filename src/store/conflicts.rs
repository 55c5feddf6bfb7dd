//! Field conflicts parked by the `manual` policy until an operator decides.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::changeset::{apply, Changeset, CommitReceipt, Parts};
use super::error::{op_err, Result, StoreError};
use super::journal::{insert_journal, JournalAction, JournalRow, NewJournalEntry};
use super::links::{LinkRef, LinkWrite};
use super::sql::{dialect, now, rows_per_statement, values_with_suffix};
use super::{Store, Tx};
use crate::domain::{text_enum, EntityKind, Side};

text_enum! {
    /// State of a field conflict.
    pub enum ConflictStatus as "conflict status" {
        Open => "open",
        Resolved => "resolved",
    }
}

/// A field edited on both sides that policy parked for an operator. If an
/// open conflict exists for (link, field), its values are updated instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConflict {
    pub pair: String,
    pub entity: EntityKind,
    pub link: LinkRef,
    pub field: String,
    pub base_value: Option<Value>,
    pub a_value: Option<Value>,
    pub b_value: Option<Value>,
}

/// A parked field conflict.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Conflict {
    pub id: i64,
    pub pair: String,
    pub entity: EntityKind,
    pub link_id: i64,
    pub field: String,
    #[sqlx(json(nullable))]
    pub base_value: Option<Value>,
    #[sqlx(json(nullable))]
    pub a_value: Option<Value>,
    #[sqlx(json(nullable))]
    pub b_value: Option<Value>,
    pub status: ConflictStatus,
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Conflict {
    /// The value `side` held when the conflict was parked (or last
    /// refreshed).
    pub fn value_of(&self, side: Side) -> &Option<Value> {
        match side {
            Side::Ghl => &self.a_value,
            Side::App => &self.b_value,
        }
    }
}

const CONFLICT_COLUMNS: &str = "id, pair, entity, link_id, field, base_value, a_value, b_value, \
     status, resolution, created_at, updated_at, resolved_at";

const UPSERT_COLS: usize = 7;

/// Opens conflicts, or refreshes the values of the open conflict on the
/// same (link, field). `rows` must not repeat a (link, field).
pub(super) async fn upsert_conflicts(
    tx: &mut Tx,
    rows: &[(&NewConflict, i64)],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    for chunk in rows.chunks(rows_per_statement(tx.backend(), UPSERT_COLS)) {
        let sql = dialect(
            tx.backend(),
            format!(
            "INSERT INTO conflicts (pair, entity, link_id, field, base_value, a_value, b_value, \
             status, created_at, updated_at) VALUES {} \
             ON CONFLICT (link_id, field) WHERE status = 'open' DO UPDATE SET \
               base_value = excluded.base_value, a_value = excluded.a_value, \
               b_value = excluded.b_value, updated_at = excluded.updated_at",
            values_with_suffix(chunk.len(), UPSERT_COLS, 2, "'open', $1, $1")
            ),
        );
        written += on_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(now);
            for (conflict, link_id) in chunk {
                q = q
                    .bind(conflict.pair.as_str())
                    .bind(conflict.entity)
                    .bind(*link_id)
                    .bind(conflict.field.as_str())
                    .bind(conflict.base_value.as_ref().map(Json))
                    .bind(conflict.a_value.as_ref().map(Json))
                    .bind(conflict.b_value.as_ref().map(Json));
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(written)
}

impl Store {
    /// Open conflicts (of one pair, or all), oldest first: the operator's
    /// to-do list, and what the engine consults to keep parked fields
    /// unwritten.
    pub async fn open_conflicts(&self, pair: Option<&str>) -> Result<Vec<Conflict>> {
        let sql = format!(
            "SELECT {CONFLICT_COLUMNS} FROM conflicts \
             WHERE status = 'open' AND ($1 IS NULL OR pair = $1) ORDER BY id"
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(pair).fetch_all(p).await
        })
        .map_err(op_err(|| {
            format!("open_conflicts(pair={})", pair.unwrap_or("*"))
        }))
    }

    /// One conflict by id, open or resolved (for `conflicts show`).
    pub async fn conflict(&self, id: i64) -> Result<Option<Conflict>> {
        let sql = format!("SELECT {CONFLICT_COLUMNS} FROM conflicts WHERE id = $1");
        on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await
        })
        .map_err(op_err(|| format!("conflict(id={id})")))
    }

    /// Marks an open conflict resolved with the operator's decision (e.g.
    /// `a`, `b`, or a value description) and journals `conflict_resolved`,
    /// atomically. Errors if the conflict does not exist or is not open, so
    /// a decision is never applied twice.
    pub async fn resolve_conflict(&self, id: i64, resolution: &str) -> Result<Conflict> {
        self.resolve_conflict_with(id, resolution, &Changeset::default())
            .await
            .map(|(conflict, _)| conflict)
    }

    /// [`Store::resolve_conflict`] together with the writes that carry the
    /// decision out (outbox items, their journal rows, a new base
    /// snapshot), all in one transaction: a conflict is never marked
    /// resolved without its writes queued, nor its writes queued twice.
    /// The changeset may only name existing links (`LinkRef::Existing`).
    pub async fn resolve_conflict_with(
        &self,
        id: i64,
        resolution: &str,
        changeset: &Changeset,
    ) -> Result<(Conflict, CommitReceipt)> {
        const OP: &str = "resolve_conflict";
        if let Some(local_ref) = new_link_ref(changeset) {
            return Err(StoreError::UnknownLocalRef { op: OP, local_ref });
        }
        let now = now();
        let mut tx = self.begin(OP).await?;
        let sql = format!(
            "UPDATE conflicts SET status = 'resolved', resolution = $2, resolved_at = $1, \
             updated_at = $1 WHERE id = $3 AND status = 'open' RETURNING {CONFLICT_COLUMNS}"
        );
        let resolved: Option<Conflict> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(resolution)
                .bind(id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| format!("{OP}(id={id})")))?;
        let Some(conflict) = resolved else {
            let exists: Option<i64> = on_tx!(&mut tx, |c| {
                sqlx::query_scalar("SELECT id FROM conflicts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *c)
                    .await
            })
            .map_err(op_err(|| format!("{OP}(id={id})")))?;
            return Err(match exists {
                Some(_) => StoreError::ConflictNotOpen { id },
                None => StoreError::ConflictNotFound { id },
            });
        };
        let ids: Option<(Option<String>, Option<String>)> = on_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT a_id, b_id FROM links WHERE id = $1")
                .bind(conflict.link_id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| {
            format!("{OP}(id={id}): reading link {}", conflict.link_id)
        }))?;
        let (a_id, b_id) = ids.unwrap_or_default();
        let mut entry = NewJournalEntry::new(
            &conflict.pair,
            conflict.entity,
            JournalAction::ConflictResolved,
        );
        entry.a_id = a_id;
        entry.b_id = b_id;
        entry.fields = vec![conflict.field.clone()];
        entry.detail = Some(format!("conflict {id} resolved: {resolution}"));
        let row = JournalRow {
            entry: &entry,
            link_id: Some(conflict.link_id),
            outbox_id: None,
        };
        insert_journal(&mut tx, std::slice::from_ref(&row), now)
            .await
            .map_err(op_err(|| format!("{OP}(id={id}): journaling")))?;
        let parts = Parts {
            links: &changeset.links,
            outbox: &changeset.outbox,
            journal: &changeset.journal,
            conflicts: &changeset.conflicts,
            dead_letters: &changeset.dead_letters,
            cursors: &changeset.cursors,
            redecided: &changeset.redecided,
        };
        let receipt = apply(&mut tx, parts, now, OP).await?;
        tx.commit(OP).await?;
        Ok((conflict, receipt))
    }
}

/// A `LinkRef::New` or inserted link in `changeset`, which a resolution
/// cannot carry (the conflict's link exists already).
fn new_link_ref(changeset: &Changeset) -> Option<u32> {
    let inserted = changeset.links.iter().find_map(|w| match w {
        LinkWrite::Insert { local_ref, .. } => Some(*local_ref),
        LinkWrite::Update(_) => None,
    });
    let referenced = changeset
        .outbox
        .iter()
        .filter_map(|o| o.link)
        .chain(changeset.journal.iter().filter_map(|j| j.link))
        .chain(changeset.conflicts.iter().map(|c| c.link))
        .find_map(|l| match l {
            LinkRef::New(local_ref) => Some(local_ref),
            LinkRef::Existing(_) => None,
        });
    inserted.or(referenced)
}
