//! The journal: the audit history of every decision about every record.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::error::{op_err, Result};
use super::links::LinkRef;
use super::outbox::OutboxItem;
use super::sql::{rows_per_ordered_statement, sqlite_insert, sqlite_time};
use super::{Store, Tx};
use crate::config::database::Backend;
use crate::domain::{text_enum, EntityKind, Side};

text_enum! {
    /// Which way a change flows.
    pub enum Direction as "direction" {
        AToB => "a_to_b",
        BToA => "b_to_a",
    }
}

impl Direction {
    /// The direction of a write that lands on `target`.
    pub fn towards(target: Side) -> Direction {
        match target {
            Side::Ghl => Direction::BToA,
            Side::App => Direction::AToB,
        }
    }
}

text_enum! {
    /// What happened to a record, as recorded in the journal.
    pub enum JournalAction as "journal action" {
        Seen => "seen",
        Planned => "planned",
        Applied => "applied",
        SkippedEcho => "skipped_echo",
        Filtered => "filtered",
        ConflictOpened => "conflict_opened",
        ConflictResolved => "conflict_resolved",
        DeadLettered => "dead_lettered",
        FailedAttempt => "failed_attempt",
        /// A field edited on both sides that its policy settled; the
        /// detail names both values, their times, the policy and the
        /// value kept, so the overwritten edit stays on record.
        Settled => "settled",
    }
}

/// How a journal row names an outbox item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutboxRef {
    Id(i64),
    /// By idempotency key: an item of the same changeset (new or duplicate)
    /// or already in the outbox.
    Key(String),
}

/// A journal row to write; the store stamps `at` with the commit time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJournalEntry {
    pub pair: String,
    pub entity: EntityKind,
    pub link: Option<LinkRef>,
    pub direction: Option<Direction>,
    pub a_id: Option<String>,
    pub b_id: Option<String>,
    pub action: JournalAction,
    /// Canonical names of the fields concerned (may be empty).
    pub fields: Vec<String>,
    pub outbox: Option<OutboxRef>,
    pub detail: Option<String>,
}

impl NewJournalEntry {
    /// A row with only the required parts; set the rest as needed.
    pub fn new(pair: &str, entity: EntityKind, action: JournalAction) -> Self {
        NewJournalEntry {
            pair: pair.to_owned(),
            entity,
            link: None,
            direction: None,
            a_id: None,
            b_id: None,
            action,
            fields: Vec::new(),
            outbox: None,
            detail: None,
        }
    }

    /// Sets the record's id on `side` (`a_id` for the GHL side, `b_id`
    /// for the other).
    pub fn set_id(&mut self, side: Side, id: Option<String>) {
        match side {
            Side::Ghl => self.a_id = id,
            Side::App => self.b_id = id,
        }
    }
}

/// A row of the audit history.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JournalEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub pair: String,
    pub entity: EntityKind,
    pub link_id: Option<i64>,
    pub direction: Option<Direction>,
    pub a_id: Option<String>,
    pub b_id: Option<String>,
    pub action: JournalAction,
    #[sqlx(json)]
    pub fields: Vec<String>,
    pub outbox_id: Option<i64>,
    pub detail: Option<String>,
}

const JOURNAL_COLUMNS: &str =
    "id, at, pair, entity, link_id, direction, a_id, b_id, action, fields, outbox_id, detail";

/// A journal entry with its link and outbox references resolved to ids.
pub(super) struct JournalRow<'a> {
    pub entry: &'a NewJournalEntry,
    pub link_id: Option<i64>,
    pub outbox_id: Option<i64>,
}

const INSERT_COLS: usize = 11;

/// Journals `entry` against one outbox item, then commits: how every
/// change to a single outbox row (a failure, a withdrawal, a re-queue)
/// ends, so the row and its audit line land together.
pub(super) async fn journal_item_and_commit(
    mut tx: Tx,
    op: &str,
    entry: &NewJournalEntry,
    item: &OutboxItem,
    now: DateTime<Utc>,
) -> Result<()> {
    let row = JournalRow {
        entry,
        link_id: item.link_id,
        outbox_id: Some(item.id),
    };
    insert_journal(&mut tx, std::slice::from_ref(&row), now)
        .await
        .map_err(op_err(|| format!("{op}(id={}): journaling", item.id)))?;
    tx.commit(op).await
}

/// Appends journal rows stamped `now`, one multi-row statement per chunk.
/// Every value (`now` too) is bound per row in column order, so SQLite
/// binds them anonymously (see `sql::dialect`).
pub(super) async fn insert_journal(
    tx: &mut Tx,
    rows: &[JournalRow<'_>],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        return insert_journal_postgres(t, rows, now).await;
    }
    let mut written = 0;
    let now = sqlite_time(now);
    for chunk in rows.chunks(rows_per_ordered_statement(Backend::Sqlite, INSERT_COLS)) {
        let sql = sqlite_insert(
            "insert_journal",
            "INSERT INTO journal (pair, entity, link_id, direction, a_id, b_id, action, fields, \
             outbox_id, detail, at)",
            chunk.len(),
            INSERT_COLS,
            "",
            "",
        );
        written += on_tx!(tx, |c| {
            let mut q = sqlx::query(&sql);
            for row in chunk {
                let e = row.entry;
                q = q
                    .bind(e.pair.as_str())
                    .bind(e.entity)
                    .bind(row.link_id)
                    .bind(e.direction)
                    .bind(e.a_id.as_deref())
                    .bind(e.b_id.as_deref())
                    .bind(e.action)
                    .bind(Json(&e.fields))
                    .bind(row.outbox_id)
                    .bind(e.detail.as_deref())
                    .bind(now.as_str());
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(written)
}

/// Postgres: one statement of one array per column, rows in order (see
/// `links::write::INSERT_LINKS_POSTGRES` for why not a `VALUES` list).
const INSERT_JOURNAL_POSTGRES: &str = "INSERT INTO journal (pair, entity, link_id, direction, \
     a_id, b_id, action, fields, outbox_id, detail, at) \
     SELECT t.pair, t.entity, t.link_id, t.direction, t.a_id, t.b_id, t.action, t.fields, \
            t.outbox_id, t.detail, $11 \
     FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::jsonb[], $9::int8[], $10::text[]) WITH ORDINALITY \
       AS t(pair, entity, link_id, direction, a_id, b_id, action, fields, outbox_id, detail, ord) \
     ORDER BY t.ord";

async fn insert_journal_postgres(
    c: &mut sqlx::PgConnection,
    rows: &[JournalRow<'_>],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    fn col<'r>(
        rows: &'r [JournalRow<'_>],
        f: impl Fn(&'r NewJournalEntry) -> Option<&'r str>,
    ) -> Vec<Option<&'r str>> {
        rows.iter().map(|r| f(r.entry)).collect()
    }
    sqlx::query(INSERT_JOURNAL_POSTGRES)
        .bind(col(rows, |e| Some(e.pair.as_str())))
        .bind(col(rows, |e| Some(e.entity.as_str())))
        .bind(rows.iter().map(|r| r.link_id).collect::<Vec<_>>())
        .bind(col(rows, |e| e.direction.map(|d| d.as_str())))
        .bind(col(rows, |e| e.a_id.as_deref()))
        .bind(col(rows, |e| e.b_id.as_deref()))
        .bind(col(rows, |e| Some(e.action.as_str())))
        .bind(
            rows.iter()
                .map(|r| Json(&r.entry.fields))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.outbox_id).collect::<Vec<_>>())
        .bind(col(rows, |e| e.detail.as_deref()))
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
}

impl Store {
    /// The latest `limit` journal rows of a link, oldest first: the history
    /// an operator reads to see why a record looks the way it does.
    pub async fn journal_for_link(&self, link_id: i64, limit: u32) -> Result<Vec<JournalEntry>> {
        let sql = format!(
            "SELECT {JOURNAL_COLUMNS} FROM (SELECT {JOURNAL_COLUMNS} FROM journal \
             WHERE link_id = $1 ORDER BY id DESC LIMIT $2) AS j ORDER BY id"
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(link_id)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .map_err(op_err(|| format!("journal_for_link(link_id={link_id})")))
    }

    /// The latest `limit` journal rows mentioning a record id on either side
    /// of a pair, oldest first: works for records that never got a link
    /// (filtered, dead-lettered on read).
    pub async fn journal_for_record(
        &self,
        pair: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<JournalEntry>> {
        let sql = format!(
            "SELECT {JOURNAL_COLUMNS} FROM (SELECT {JOURNAL_COLUMNS} FROM journal \
             WHERE pair = $1 AND (a_id = $2 OR b_id = $2) ORDER BY id DESC LIMIT $3) AS j \
             ORDER BY id"
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(pair)
                .bind(id)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
        })
        .map_err(op_err(|| {
            format!("journal_for_record(pair={pair}, id={id})")
        }))
    }
}
