//! Pairs: each configured pair is registered at start-up with the
//! locations of its two sides.

use chrono::{DateTime, Utc};

use super::error::{op_err, Result, StoreError};
use super::sql::now;
use super::Store;
use crate::domain::Side;

/// One side of a pair as configured: recorded so that a pair is never
/// silently re-pointed at another location under its existing links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSide {
    /// The configured side name (e.g. `ghl_main`).
    pub side: String,
    /// The connector kind (e.g. `ghl`, `rest`).
    pub kind: String,
    /// The GHL location id (None for sides without one).
    pub location: Option<String>,
}

/// What the engine registers for each configured pair at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRegistration {
    pub name: String,
    pub a: PairSide,
    pub b: PairSide,
}

/// A registered pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub name: String,
    pub a: PairSide,
    pub b: PairSide,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PAIR_COLUMNS: &str =
    "name, a_side, a_kind, a_location, b_side, b_kind, b_location, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct PairRow {
    name: String,
    a_side: String,
    a_kind: String,
    a_location: Option<String>,
    b_side: String,
    b_kind: String,
    b_location: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PairRow> for Pair {
    fn from(r: PairRow) -> Pair {
        Pair {
            name: r.name,
            a: PairSide {
                side: r.a_side,
                kind: r.a_kind,
                location: r.a_location,
            },
            b: PairSide {
                side: r.b_side,
                kind: r.b_kind,
                location: r.b_location,
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl Store {
    /// Registers a configured pair (links, cursors and outbox rows refer to
    /// it). Re-registering with the same locations is a no-op apart from
    /// renamed sides or kinds being recorded; a different location on either
    /// side is refused with [`StoreError::PairRebound`], because the
    /// existing links hold ids of the old location's records.
    pub async fn register_pair(&self, reg: &PairRegistration) -> Result<Pair> {
        const OP: &str = "register_pair";
        let name = reg.name.as_str();
        let ctx = || format!("{OP}(pair={name})");
        let now = now();
        let mut tx = self.begin(OP).await?;
        on_tx!(&mut tx, |c| {
            sqlx::query(
                "INSERT INTO pairs (name, a_side, a_kind, a_location, b_side, b_kind, \
                 b_location, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(reg.a.side.as_str())
            .bind(reg.a.kind.as_str())
            .bind(reg.a.location.as_deref())
            .bind(reg.b.side.as_str())
            .bind(reg.b.kind.as_str())
            .bind(reg.b.location.as_deref())
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ())
        })
        .map_err(op_err(ctx))?;
        let select = format!("SELECT {PAIR_COLUMNS} FROM pairs WHERE name = $1");
        let stored: Pair = on_tx!(&mut tx, |c| {
            sqlx::query_as::<_, PairRow>(&select)
                .bind(name)
                .fetch_one(&mut *c)
                .await
        })
        .map_err(op_err(ctx))?
        .into();
        for (side, was, wanted) in [
            (Side::Ghl, &stored.a.location, &reg.a.location),
            (Side::App, &stored.b.location, &reg.b.location),
        ] {
            if was != wanted {
                return Err(StoreError::PairRebound {
                    pair: name.to_owned(),
                    side,
                    was: was.clone(),
                    now: wanted.clone(),
                });
            }
        }
        if stored.a == reg.a && stored.b == reg.b {
            tx.commit(OP).await?;
            return Ok(stored);
        }
        let updated: Pair = on_tx!(&mut tx, |c| {
            sqlx::query_as::<_, PairRow>(&format!(
                "UPDATE pairs SET a_side = $2, a_kind = $3, b_side = $4, b_kind = $5, \
                 updated_at = $6 WHERE name = $1 RETURNING {PAIR_COLUMNS}"
            ))
            .bind(name)
            .bind(reg.a.side.as_str())
            .bind(reg.a.kind.as_str())
            .bind(reg.b.side.as_str())
            .bind(reg.b.kind.as_str())
            .bind(now)
            .fetch_one(&mut *c)
            .await
        })
        .map_err(op_err(ctx))?
        .into();
        tx.commit(OP).await?;
        Ok(updated)
    }

    /// A registered pair by name.
    pub async fn pair(&self, name: &str) -> Result<Option<Pair>> {
        let sql = format!("SELECT {PAIR_COLUMNS} FROM pairs WHERE name = $1");
        let row: Option<PairRow> = on_pool!(self, |p| {
            sqlx::query_as(&sql).bind(name).fetch_optional(p).await
        })
        .map_err(op_err(|| format!("pair(name={name})")))?;
        Ok(row.map(Pair::from))
    }
}
