//! Finding links: by mirror id, by a record's id on one side, by the
//! contacts that own them, and whole listings for reconciliation.

use std::collections::HashMap;

use super::{Link, LinkRow, ID_COLUMN, LINK_COLUMNS, PARENT_ID_COLUMN};
use crate::domain::{EntityKind, Side};
use crate::store::error::{op_err, Result};
use crate::store::sql::{dialect, placeholder_list, MAX_IDS_PER_LOOKUP};
use crate::store::{Pool, Store};

impl Store {
    /// Loads one link by its mirror id: used when an outbox item or journal
    /// row names a link.
    pub async fn link_by_id(&self, id: i64) -> Result<Option<Link>> {
        let sql = format!("SELECT {LINK_COLUMNS} FROM links WHERE id = $1");
        let row: Option<LinkRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(id).fetch_optional(p).await
        })
        .map_err(op_err(|| format!("link_by_id(id={id})")))?;
        Ok(row.map(Link::from))
    }

    /// Finds the link of a record by its id on one side: how a change seen
    /// on that side (webhook, single fetch) finds its counterpart and base.
    pub async fn link_by_side_id(
        &self,
        pair: &str,
        entity: EntityKind,
        side: Side,
        id: &str,
    ) -> Result<Option<Link>> {
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND entity = $2 AND {} = $3",
            ID_COLUMN[side]
        );
        let row: Option<LinkRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(pair)
                .bind(entity)
                .bind(id)
                .fetch_optional(p)
                .await
        })
        .map_err(op_err(|| {
            format!("link_by_side_id(pair={pair}, entity={entity}, side={side}, id={id})")
        }))?;
        Ok(row.map(Link::from))
    }

    /// Loads the links of a batch of records seen on one side, keyed by
    /// their id on that side; ids without a link are absent. One query per
    /// 500 ids, so a poll page costs one round trip, not one per record.
    pub async fn links_by_side_ids(
        &self,
        pair: &str,
        entity: EntityKind,
        side: Side,
        ids: &[String],
    ) -> Result<HashMap<String, Link>> {
        let links = self
            .links_where_in(pair, entity, ID_COLUMN[side], ids, "links_by_side_ids")
            .await?;
        Ok(links
            .into_iter()
            .filter_map(|link| Some((link.side(side).id.clone()?, link)))
            .collect())
    }

    /// The links of the tasks, notes or appointments owned by these
    /// contacts (ids on `side`): how a child deleted on that side is found
    /// when its contact's children are listed again.
    pub async fn links_by_parent_ids(
        &self,
        pair: &str,
        entity: EntityKind,
        side: Side,
        parent_ids: &[String],
    ) -> Result<Vec<Link>> {
        let column = PARENT_ID_COLUMN[side];
        self.links_where_in(pair, entity, column, parent_ids, "links_by_parent_ids")
            .await
    }

    async fn links_where_in(
        &self,
        pair: &str,
        entity: EntityKind,
        column: &str,
        values: &[String],
        op: &str,
    ) -> Result<Vec<Link>> {
        let mut out = Vec::with_capacity(values.len());
        if let Pool::Postgres(p) = &self.pool {
            // One array parameter: planned in microseconds, unlike a list
            // of 500 placeholders planned afresh on every call.
            let sql = format!(
                "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND entity = $2 \
                 AND {column} = ANY($3::text[])"
            );
            let rows: Vec<LinkRow> = sqlx::query_as(&sql)
                .bind(pair)
                .bind(entity)
                .bind(values)
                .fetch_all(p)
                .await
                .map_err(op_err(|| {
                    format!(
                        "{op}(pair={pair}, entity={entity}, {column}: {} values)",
                        values.len()
                    )
                }))?;
            out.extend(rows.into_iter().map(Link::from));
            return Ok(out);
        }
        for chunk in values.chunks(MAX_IDS_PER_LOOKUP) {
            let sql = dialect(
                self.backend(),
                format!(
                    "SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND entity = $2 AND {column} IN ({})",
                    placeholder_list(chunk.len(), 3)
                ),
            );
            let rows: Vec<LinkRow> = on_pool!(self, |p| {
                let mut q = sqlx::query_as(&sql).bind(pair).bind(entity);
                for value in chunk {
                    q = q.bind(value.as_str());
                }
                q.fetch_all(p).await
            })
            .map_err(op_err(|| {
                format!(
                    "{op}(pair={pair}, entity={entity}, {column}: {} values)",
                    chunk.len()
                )
            }))?;
            out.extend(rows.into_iter().map(Link::from));
        }
        Ok(out)
    }

    /// The live (not tombstoned) links of a pair and entity that have an id
    /// on `side`: `(link id, id on that side)`, ordered by link id. What a
    /// reconciliation compares a side's full listing against, without
    /// loading every snapshot into memory.
    pub async fn live_side_ids(
        &self,
        pair: &str,
        entity: EntityKind,
        side: Side,
    ) -> Result<Vec<(i64, String)>> {
        let sql = format!(
            "SELECT id, {col} FROM links WHERE pair = $1 AND entity = $2 \
             AND deleted_at IS NULL AND {col} IS NOT NULL ORDER BY id",
            col = ID_COLUMN[side]
        );
        on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(pair)
                .bind(entity)
                .fetch_all(p)
                .await
        })
        .map_err(op_err(|| {
            format!("live_side_ids(pair={pair}, entity={entity}, side={side})")
        }))
    }

    /// Every link of a pair and entity, tombstones included, ordered by id:
    /// what a full reconciliation compares the sides' id lists against.
    pub async fn all_links(&self, pair: &str, entity: EntityKind) -> Result<Vec<Link>> {
        let sql =
            format!("SELECT {LINK_COLUMNS} FROM links WHERE pair = $1 AND entity = $2 ORDER BY id");
        let rows: Vec<LinkRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql)
                .bind(pair)
                .bind(entity)
                .fetch_all(p)
                .await
        })
        .map_err(op_err(|| {
            format!("all_links(pair={pair}, entity={entity})")
        }))?;
        Ok(rows.into_iter().map(Link::from).collect())
    }

    /// Number of live (not tombstoned) links of a pair and entity: the
    /// denominator of the "too many records disappeared at once" guard and
    /// of status output.
    pub async fn count_links(&self, pair: &str, entity: EntityKind) -> Result<i64> {
        on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM links WHERE pair = $1 AND entity = $2 AND deleted_at IS NULL",
            )
            .bind(pair)
            .bind(entity)
            .fetch_one(p)
            .await
        })
        .map_err(op_err(|| {
            format!("count_links(pair={pair}, entity={entity})")
        }))
    }
}
