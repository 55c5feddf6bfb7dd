//! Enqueuing planned writes: one multi-row statement per chunk, a key
//! already in the outbox skipped (the idempotency that makes re-detecting
//! a change enqueue nothing new).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use super::NewOutboxItem;
use crate::config::database::Backend;
use crate::store::sql::{
    dialect, placeholder_list, rows_per_ordered_statement, sqlite_insert, sqlite_time, us,
    MAX_IDS_PER_LOOKUP,
};
use crate::store::Tx;

const INSERT_COLS: usize = 13;

/// Enqueues outbox rows, skipping keys already present; returns the new
/// rows' ids by idempotency key. Every value (`now` too) is bound per row
/// in column order, so SQLite binds them anonymously (see `sql::dialect`).
///
/// On SQLite the rows get ids reserved under the transaction's write lock
/// (`MAX(id)` + 1, .., which SQLite would have given them anyway), so the
/// ids of a statement that inserted every row are known without reading
/// them back: `RETURNING` hands each row over from sqlx's worker thread
/// one message at a time, and that was a third of the commit's insert
/// time. Only a statement that skipped a key (already enqueued) reads the
/// ids it did insert.
pub(in crate::store) async fn insert_outbox(
    tx: &mut Tx,
    rows: &[(&NewOutboxItem, Option<i64>)],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let c = match tx {
        Tx::Postgres(t) => return insert_outbox_postgres(t, rows, now).await,
        Tx::Sqlite(t, _) => &mut **t,
    };
    let mut out = HashMap::with_capacity(rows.len());
    let now_text = sqlite_time(now);
    let mut next_id: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox")
        .fetch_one(&mut *c)
        .await?;
    for chunk in rows.chunks(rows_per_ordered_statement(Backend::Sqlite, INSERT_COLS)) {
        let sql = sqlite_insert(
            "insert_outbox",
            "INSERT INTO outbox (id, idempotency_key, pair, target_side, entity, op, link_id, \
             target_id, parent_id, payload, next_attempt_at, created_at, updated_at, status, \
             attempts)",
            chunk.len(),
            INSERT_COLS,
            "'pending', 0",
            "ON CONFLICT (idempotency_key) DO NOTHING",
        );
        let first = next_id;
        let mut q = sqlx::query(&sql);
        for (item, link_id) in chunk {
            q = q
                .bind(next_id)
                .bind(item.idempotency_key.as_str())
                .bind(item.pair.as_str())
                .bind(item.target_side)
                .bind(item.entity)
                .bind(item.op)
                .bind(*link_id)
                .bind(item.target_id.as_deref())
                .bind(item.parent_id.as_deref())
                .bind(Json(item.payload.raw()))
                .bind(
                    item.not_before
                        .map_or_else(|| now_text.clone(), |t| sqlite_time(us(t))),
                )
                .bind(now_text.as_str())
                .bind(now_text.as_str());
            next_id += 1;
        }
        let inserted = q.execute(&mut *c).await?.rows_affected();
        if inserted == chunk.len() as u64 {
            out.extend(
                chunk
                    .iter()
                    .zip(first..)
                    .map(|((item, _), id)| (item.idempotency_key.clone(), id)),
            );
        } else if inserted > 0 {
            let found: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, idempotency_key FROM outbox WHERE id BETWEEN ?1 AND ?2")
                    .bind(first)
                    .bind(next_id - 1)
                    .fetch_all(&mut *c)
                    .await?;
            out.extend(found.into_iter().map(|(id, key)| (key, id)));
        }
    }
    Ok(out)
}

/// Postgres: one statement of one array per column (see
/// `links::write::INSERT_LINKS_POSTGRES` for why not a `VALUES` list).
const INSERT_OUTBOX_POSTGRES: &str = "INSERT INTO outbox (idempotency_key, pair, target_side, \
     entity, op, link_id, target_id, parent_id, payload, next_attempt_at, status, attempts, \
     created_at, updated_at) \
     SELECT t.idempotency_key, t.pair, t.target_side, t.entity, t.op, t.link_id, t.target_id, \
            t.parent_id, t.payload, t.next_attempt_at, 'pending', 0, $11, $11 \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], \
                 $7::text[], $8::text[], $9::jsonb[], $10::timestamptz[]) WITH ORDINALITY \
       AS t(idempotency_key, pair, target_side, entity, op, link_id, target_id, parent_id, \
            payload, next_attempt_at, ord) \
     ORDER BY t.ord \
     ON CONFLICT (idempotency_key) DO NOTHING \
     RETURNING id, idempotency_key";

async fn insert_outbox_postgres(
    c: &mut sqlx::PgConnection,
    rows: &[(&NewOutboxItem, Option<i64>)],
    now: DateTime<Utc>,
) -> Result<HashMap<String, i64>, sqlx::Error> {
    let col = |f: &dyn Fn(&NewOutboxItem) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(|(o, _)| f(o)).collect()
    };
    let inserted: Vec<(i64, String)> = sqlx::query_as(INSERT_OUTBOX_POSTGRES)
        .bind(col(&|o| Some(o.idempotency_key.as_str())))
        .bind(col(&|o| Some(o.pair.as_str())))
        .bind(col(&|o| Some(o.target_side.as_str())))
        .bind(col(&|o| Some(o.entity.as_str())))
        .bind(col(&|o| Some(o.op.as_str())))
        .bind(rows.iter().map(|(_, l)| *l).collect::<Vec<Option<i64>>>())
        .bind(col(&|o| o.target_id.as_deref()))
        .bind(col(&|o| o.parent_id.as_deref()))
        .bind(
            rows.iter()
                .map(|(o, _)| Json(o.payload.raw()))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|(o, _)| o.not_before.map(us).unwrap_or(now))
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .fetch_all(&mut *c)
        .await?;
    Ok(inserted.into_iter().map(|(id, key)| (key, id)).collect())
}

/// Ids of existing outbox rows by idempotency key.
pub(in crate::store) async fn outbox_ids_by_key(
    tx: &mut Tx,
    keys: &[&str],
) -> Result<HashMap<String, i64>, sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        let found: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, idempotency_key FROM outbox WHERE idempotency_key = ANY($1::text[])",
        )
        .bind(keys)
        .fetch_all(&mut **t)
        .await?;
        return Ok(found.into_iter().map(|(id, key)| (key, id)).collect());
    }
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_IDS_PER_LOOKUP) {
        let sql = dialect(
            tx.backend(),
            format!(
                "SELECT id, idempotency_key FROM outbox WHERE idempotency_key IN ({})",
                placeholder_list(chunk.len(), 1)
            ),
        );
        let found: Vec<(i64, String)> = on_tx!(tx, |c| {
            let mut q = sqlx::query_as(&sql);
            for key in chunk {
                q = q.bind(*key);
            }
            q.fetch_all(&mut *c).await
        })?;
        out.extend(found.into_iter().map(|(id, key)| (key, id)));
    }
    Ok(out)
}
