//! The journal: the audit history of every decision about every record.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::error::{op_err, Result};
use super::model::{JournalEntry, NewJournalEntry};
use super::sql::{dialect, rows_per_statement, values_with_suffix};
use super::{Store, Tx};

const JOURNAL_COLUMNS: &str =
    "id, at, pair, entity, link_id, direction, a_id, b_id, action, fields, outbox_id, detail";

/// A journal entry with its link and outbox references resolved to ids.
pub(super) struct JournalRow<'a> {
    pub entry: &'a NewJournalEntry,
    pub link_id: Option<i64>,
    pub outbox_id: Option<i64>,
}

const INSERT_COLS: usize = 10;

/// Appends journal rows stamped `now`, one multi-row statement per chunk.
pub(super) async fn insert_journal(
    tx: &mut Tx,
    rows: &[JournalRow<'_>],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    for chunk in rows.chunks(rows_per_statement(tx.backend(), INSERT_COLS)) {
        let sql = dialect(
            tx.backend(),
            format!(
            "INSERT INTO journal (pair, entity, link_id, direction, a_id, b_id, action, fields, \
             outbox_id, detail, at) VALUES {}",
            values_with_suffix(chunk.len(), INSERT_COLS, 2, "$1")
            ),
        );
        written += on_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(now);
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
                    .bind(e.detail.as_deref());
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(written)
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
