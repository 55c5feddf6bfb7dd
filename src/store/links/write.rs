//! The statements a commit writes links with: ids reserved up front so
//! other rows of the changeset can point at new links, multi-row inserts,
//! and updates that only touch what they are given.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::{LinkUpdate, NewLink};
use crate::config::database::Backend;
use crate::store::error::{op_err, Result, StoreError};
use crate::store::sql::{
    dialect, rows_per_ordered_statement, sqlite_insert, sqlite_time, us, us_opt, values_rows,
};
use crate::store::Tx;

/// Reserves `n` link ids inside the transaction, so rows of the same
/// changeset can reference links before they are inserted. SQLite holds the
/// write lock (`BEGIN IMMEDIATE`), so `MAX(id)` is stable; Postgres draws
/// from the identity sequence.
pub(in crate::store) async fn reserve_link_ids(
    tx: &mut Tx,
    n: usize,
) -> Result<Vec<i64>, sqlx::Error> {
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

const INSERT_COLS: usize = 16;

/// Inserts new links with their reserved ids, one multi-row statement per
/// chunk. Every value (`now` too) is bound per row in column order, so
/// SQLite binds them anonymously (see `sql::dialect`).
pub(in crate::store) async fn insert_links(
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
             content_hash, a_updated_at, b_updated_at, a_fingerprint, b_fingerprint, deleted_at, \
             created_at, updated_at)",
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
                    .bind(link.a.fingerprint.as_deref())
                    .bind(link.b.fingerprint.as_deref())
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
     a_parent_id, b_parent_id, content, content_hash, a_updated_at, b_updated_at, a_fingerprint, \
     b_fingerprint, deleted_at, created_at, updated_at) \
     SELECT t.id, t.pair, t.entity, t.a_id, t.b_id, t.a_parent_id, t.b_parent_id, t.content, \
            t.content_hash, t.a_updated_at, t.b_updated_at, t.a_fingerprint, t.b_fingerprint, \
            t.deleted_at, $15, $15 \
     FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::jsonb[], $9::text[], $10::timestamptz[], $11::timestamptz[], \
                 $12::text[], $13::text[], $14::timestamptz[]) WITH ORDINALITY \
       AS t(id, pair, entity, a_id, b_id, a_parent_id, b_parent_id, content, content_hash, \
            a_updated_at, b_updated_at, a_fingerprint, b_fingerprint, deleted_at, ord) \
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
        .bind(col(&|l| l.a.fingerprint.as_deref()))
        .bind(col(&|l| l.b.fingerprint.as_deref()))
        .bind(time(&|l| l.deleted_at))
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ())
}

const UPDATE_COLS: usize = 13;

/// Applies updates to existing links (already merged to one per id), one
/// `UPDATE .. FROM (VALUES ..)` per chunk. Fields not given keep their
/// stored value. Fails with [`StoreError::LinkNotFound`] if an id does not
/// exist, so the caller's transaction rolls back.
pub(in crate::store) async fn update_links(
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
               a_fingerprint = COALESCE(v.column12, links.a_fingerprint), \
               b_fingerprint = COALESCE(v.column13, links.b_fingerprint), \
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
                    .bind(u.deleted_at.value().copied().map(us))
                    .bind(u.a.fingerprint.as_deref())
                    .bind(u.b.fingerprint.as_deref());
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
