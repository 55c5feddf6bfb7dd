//! Links: the id of each synced record on both sides plus its base snapshot.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;

use super::error::{op_err, Result, StoreError};
use super::model::{Link, LinkSide, LinkUpdate, NewLink, Snapshot};
use super::sql::{
    dialect, placeholder_list, rows_per_ordered_statement, sqlite_insert, sqlite_time, us, us_opt,
    values_rows, MAX_IDS_PER_LOOKUP,
};
use super::{Pool, Store, Tx};
use crate::config::database::Backend;
use crate::domain::{EntityKind, Side};

pub(super) const LINK_COLUMNS: &str = "id, pair, entity, a_id, b_id, a_parent_id, b_parent_id, \
     content, content_hash, a_updated_at, b_updated_at, deleted_at, created_at, updated_at";

/// A `links` row as stored (flat), turned into a [`Link`].
#[derive(sqlx::FromRow)]
pub(super) struct LinkRow {
    id: i64,
    pair: String,
    entity: EntityKind,
    a_id: Option<String>,
    b_id: Option<String>,
    a_parent_id: Option<String>,
    b_parent_id: Option<String>,
    #[sqlx(json)]
    content: Value,
    content_hash: String,
    a_updated_at: Option<DateTime<Utc>>,
    b_updated_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<LinkRow> for Link {
    fn from(r: LinkRow) -> Link {
        Link {
            id: r.id,
            pair: r.pair,
            entity: r.entity,
            a: LinkSide {
                id: r.a_id,
                parent_id: r.a_parent_id,
                updated_at: r.a_updated_at,
            },
            b: LinkSide {
                id: r.b_id,
                parent_id: r.b_parent_id,
                updated_at: r.b_updated_at,
            },
            snapshot: Snapshot {
                content: r.content,
                hash: r.content_hash,
            },
            deleted_at: r.deleted_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

fn id_column(side: Side) -> &'static str {
    match side {
        Side::Ghl => "a_id",
        Side::App => "b_id",
    }
}

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
            id_column(side)
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
            .links_where_in(pair, entity, id_column(side), ids, "links_by_side_ids")
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
        let column = match side {
            Side::Ghl => "a_parent_id",
            Side::App => "b_parent_id",
        };
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
            col = id_column(side)
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

/// Reserves `n` link ids inside the transaction, so rows of the same
/// changeset can reference links before they are inserted. SQLite holds the
/// write lock (`BEGIN IMMEDIATE`), so `MAX(id)` is stable; Postgres draws
/// from the identity sequence.
pub(super) async fn reserve_link_ids(tx: &mut Tx, n: usize) -> Result<Vec<i64>, sqlx::Error> {
    if n == 0 {
        return Ok(Vec::new());
    }
    match tx {
        Tx::Sqlite(t, _) => {
            let max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM links")
                .fetch_one(&mut **t)
                .await?;
            Ok((1..=n as i64).map(|i| max + i).collect())
        }
        Tx::Postgres(t) => {
            sqlx::query_scalar(
                "SELECT nextval(pg_get_serial_sequence('links', 'id')) FROM generate_series(1, $1)",
            )
            .bind(n as i64)
            .fetch_all(&mut **t)
            .await
        }
    }
}

const INSERT_COLS: usize = 14;

/// Inserts new links with their reserved ids, one multi-row statement per
/// chunk. Every value (`now` too) is bound per row in column order, so
/// SQLite binds them anonymously (see `sql::dialect`).
pub(super) async fn insert_links(
    tx: &mut Tx,
    rows: &[(i64, &NewLink)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        return insert_links_postgres(t, rows, now).await;
    }
    let now = sqlite_time(now);
    for chunk in rows.chunks(rows_per_ordered_statement(Backend::Sqlite, INSERT_COLS)) {
        let sql = sqlite_insert(
            "insert_links",
            "INSERT INTO links (id, pair, entity, a_id, b_id, a_parent_id, b_parent_id, content, \
             content_hash, a_updated_at, b_updated_at, deleted_at, created_at, updated_at)",
            chunk.len(),
            INSERT_COLS,
            "",
            "",
        );
        on_tx!(tx, |c| {
            let mut q = sqlx::query(&sql);
            for (id, link) in chunk {
                q = q
                    .bind(*id)
                    .bind(link.pair.as_str())
                    .bind(link.entity)
                    .bind(link.a.id.as_deref())
                    .bind(link.b.id.as_deref())
                    .bind(link.a.parent_id.as_deref())
                    .bind(link.b.parent_id.as_deref())
                    .bind(Json(&link.snapshot.content))
                    .bind(link.snapshot.hash.as_str())
                    .bind(us_opt(link.a.updated_at))
                    .bind(us_opt(link.b.updated_at))
                    .bind(us_opt(link.deleted_at))
                    .bind(now.as_str())
                    .bind(now.as_str());
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// Postgres: one statement of one array per column, whatever the number
/// of rows. A multi-row `VALUES` list with thousands of parameters is
/// planned again on every execution (`plan_cache_mode = force_custom_plan`,
/// see `Store::connect`), which cost more than the insert itself.
const INSERT_LINKS_POSTGRES: &str = "INSERT INTO links (id, pair, entity, a_id, b_id, \
     a_parent_id, b_parent_id, content, content_hash, a_updated_at, b_updated_at, deleted_at, \
     created_at, updated_at) \
     SELECT t.id, t.pair, t.entity, t.a_id, t.b_id, t.a_parent_id, t.b_parent_id, t.content, \
            t.content_hash, t.a_updated_at, t.b_updated_at, t.deleted_at, $13, $13 \
     FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::jsonb[], $9::text[], $10::timestamptz[], $11::timestamptz[], \
                 $12::timestamptz[]) WITH ORDINALITY \
       AS t(id, pair, entity, a_id, b_id, a_parent_id, b_parent_id, content, content_hash, \
            a_updated_at, b_updated_at, deleted_at, ord) \
     ORDER BY t.ord";

async fn insert_links_postgres(
    c: &mut sqlx::PgConnection,
    rows: &[(i64, &NewLink)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let col = |f: &dyn Fn(&NewLink) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(|(_, l)| f(l)).collect()
    };
    let time = |f: &dyn Fn(&NewLink) -> Option<DateTime<Utc>>| -> Vec<Option<DateTime<Utc>>> {
        rows.iter().map(|(_, l)| us_opt(f(l))).collect()
    };
    sqlx::query(INSERT_LINKS_POSTGRES)
        .bind(rows.iter().map(|(id, _)| *id).collect::<Vec<i64>>())
        .bind(col(&|l| Some(l.pair.as_str())))
        .bind(col(&|l| Some(l.entity.as_str())))
        .bind(col(&|l| l.a.id.as_deref()))
        .bind(col(&|l| l.b.id.as_deref()))
        .bind(col(&|l| l.a.parent_id.as_deref()))
        .bind(col(&|l| l.b.parent_id.as_deref()))
        .bind(
            rows.iter()
                .map(|(_, l)| Json(&l.snapshot.content))
                .collect::<Vec<_>>(),
        )
        .bind(col(&|l| Some(l.snapshot.hash.as_str())))
        .bind(time(&|l| l.a.updated_at))
        .bind(time(&|l| l.b.updated_at))
        .bind(time(&|l| l.deleted_at))
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ())
}

const UPDATE_COLS: usize = 11;

/// Applies updates to existing links (already merged to one per id), one
/// `UPDATE .. FROM (VALUES ..)` per chunk. Fields not given keep their
/// stored value. Fails with [`StoreError::LinkNotFound`] if an id does not
/// exist, so the caller's transaction rolls back.
pub(super) async fn update_links(
    tx: &mut Tx,
    updates: &[LinkUpdate],
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<u64> {
    let mut total = 0;
    // `$1` (now) comes first in the text, the rows' values after it in
    // order: SQLite binds them anonymously.
    for chunk in updates.chunks(rows_per_ordered_statement(tx.backend(), UPDATE_COLS + 1)) {
        let sql = dialect(
            tx.backend(),
            format!(
                "UPDATE links SET \
               a_id = COALESCE(v.column2, links.a_id), \
               a_parent_id = COALESCE(v.column3, links.a_parent_id), \
               a_updated_at = COALESCE(v.column4, links.a_updated_at), \
               b_id = COALESCE(v.column5, links.b_id), \
               b_parent_id = COALESCE(v.column6, links.b_parent_id), \
               b_updated_at = COALESCE(v.column7, links.b_updated_at), \
               content = COALESCE(v.column8, links.content), \
               content_hash = COALESCE(v.column9, links.content_hash), \
               deleted_at = CASE v.column10 WHEN 0 THEN links.deleted_at ELSE v.column11 END, \
               updated_at = $1 \
             FROM (VALUES {}) AS v \
             WHERE links.id = v.column1",
                values_rows(chunk.len(), UPDATE_COLS, 2)
            ),
        );
        let affected = on_tx!(tx, |c| {
            let mut q = sqlx::query(&sql).bind(now);
            for u in chunk {
                q = q
                    .bind(u.id)
                    .bind(u.a.id.as_deref())
                    .bind(u.a.parent_id.as_deref())
                    .bind(us_opt(u.a.updated_at))
                    .bind(u.b.id.as_deref())
                    .bind(u.b.parent_id.as_deref())
                    .bind(us_opt(u.b.updated_at))
                    .bind(u.snapshot.as_ref().map(|s| Json(&s.content)))
                    .bind(u.snapshot.as_ref().map(|s| s.hash.as_str()))
                    .bind(u.deleted_at.flag())
                    .bind(u.deleted_at.value().copied().map(us));
            }
            q.execute(&mut *c).await.map(|r| r.rows_affected())
        })
        .map_err(op_err(|| format!("{op}: updating {} link(s)", chunk.len())))?;
        if affected != chunk.len() as u64 {
            let missing = first_missing_link(tx, chunk.iter().map(|u| u.id)).await?;
            return Err(StoreError::LinkNotFound { op, id: missing });
        }
        total += affected;
    }
    Ok(total)
}

/// The first of `ids` that is not in `links` (for the error message).
async fn first_missing_link(tx: &mut Tx, ids: impl Iterator<Item = i64>) -> Result<i64> {
    for id in ids {
        let found: Option<i64> = on_tx!(tx, |c| {
            sqlx::query_scalar("SELECT id FROM links WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| format!("checking link {id}")))?;
        if found.is_none() {
            return Ok(id);
        }
    }
    Ok(-1)
}
