//! Look-ups for `ghlsync history`: the links whose base snapshot holds a
//! value (a contact found by email), and the writes queued for a link. The
//! journal itself is read through `journal.rs`.

use super::error::{op_err, Result};
use super::links::{Link, LinkRow, LINK_COLUMNS};
use super::outbox::{OutboxItem, OUTBOX_COLUMNS};
use super::Store;
use crate::config::database::Backend;
use crate::domain::EntityKind;

impl Store {
    /// The links of a pair and entity whose base snapshot has `field` equal
    /// to `value`, ignoring case (emails are compared as people type them).
    /// A full scan of the pair's links: an operator's look-up, not a hot
    /// path.
    pub async fn links_by_snapshot_field(
        &self,
        pair: &str,
        entity: EntityKind,
        field: &str,
        value: &str,
    ) -> Result<Vec<Link>> {
        // SQLite stores the snapshot as TEXT and reads it with a JSON path;
        // Postgres stores JSONB and takes the key as a parameter.
        let (sql, key) = match self.backend() {
            Backend::Sqlite => (
                format!(
                    "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND entity = $2 \
                     AND lower(json_extract(content, $3)) = lower($4) ORDER BY id"
                ),
                format!("$.\"{}\"", field.replace('"', "")),
            ),
            Backend::Postgres => (
                format!(
                    "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND entity = $2 \
                     AND lower(content ->> $3) = lower($4) ORDER BY id"
                ),
                field.to_owned(),
            ),
        };
        let rows: Vec<LinkRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(pair)
                .bind(entity)
                .bind(key.as_str())
                .bind(value)
                .fetch_all(p)
                .await
        })
        .map_err(op_err(|| {
            format!("links_by_snapshot_field(pair={pair}, entity={entity}, field={field})")
        }))?;
        Ok(rows.into_iter().map(Link::from).collect())
    }

    /// Every outbox item of a link that is still in the outbox (done and
    /// cancelled ones are pruned after a while; the journal keeps them),
    /// oldest first.
    pub async fn outbox_for_link(&self, link_id: i64) -> Result<Vec<OutboxItem>> {
        let sql = format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE link_id = $1 ORDER BY id");
        on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(link_id).fetch_all(p).await
        })
        .map_err(op_err(|| format!("outbox_for_link(link_id={link_id})")))
    }
}
