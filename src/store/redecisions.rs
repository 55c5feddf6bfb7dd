//! Records to decide again (migration 0011): a change no decision has
//! carried to the other side, on a version the link has already taken in,
//! so that no poll reads it again. Scheduled in the transaction that ends
//! the write that left it (a withdrawal, a create completed on a user's
//! record, a write overtaken by a newer decision), taken in the
//! transaction of the decision that carries it, postponed when the side
//! could not be read: neither an error nor a crash leaves it to the next
//! full reconciliation.

use chrono::{DateTime, Utc};

use crate::domain::Side;

use super::error::{op_err, Result};
use super::sql::{now, us};
use super::{Store, Tx};

/// A link whose record on `side` is to be read and decided again.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Redecision {
    pub link_id: i64,
    pub side: Side,
    /// Why (the write that left it), for logs and `status`.
    pub reason: String,
    /// Attempts that could not read the record.
    pub attempts: i32,
    pub last_error: Option<String>,
    pub due_at: DateTime<Utc>,
}

impl Store {
    /// Re-decisions due now, oldest first, at most `limit`.
    pub async fn due_redecisions(&self, limit: i64) -> Result<Vec<Redecision>> {
        let now = now();
        on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT link_id, side, reason, attempts, last_error, due_at FROM redecisions \
                 WHERE due_at <= $1 ORDER BY due_at, link_id LIMIT $2",
            )
            .bind(now)
            .bind(limit)
            .fetch_all(p)
            .await
        })
        .map_err(op_err(|| "due_redecisions".to_owned()))
    }

    /// A pair's re-decisions waiting (due or not), for `status`.
    pub async fn redecisions_waiting(&self, pair: &str) -> Result<i64> {
        on_pool!(self, |p| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM redecisions r JOIN links l ON l.id = r.link_id \
                 WHERE l.pair = $1",
            )
            .bind(pair)
            .fetch_one(p)
            .await
        })
        .map_err(op_err(|| format!("redecisions_waiting(pair={pair})")))
    }

    /// A re-decision that could not read its record: tried again at `at`.
    pub async fn postpone_redecision(
        &self,
        link_id: i64,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query(
                "UPDATE redecisions SET attempts = attempts + 1, last_error = $1, due_at = $2 \
                 WHERE link_id = $3",
            )
            .bind(error)
            .bind(us(at))
            .bind(link_id)
            .execute(p)
            .await
            .map(|_| ())
        })
        .map_err(op_err(|| format!("postpone_redecision(link={link_id})")))
    }

    /// A re-decision with nothing left to decide (its record is gone:
    /// deletes are the polls' and reconciliation's).
    pub async fn drop_redecision(&self, link_id: i64) -> Result<()> {
        on_pool!(self, |p| {
            sqlx::query("DELETE FROM redecisions WHERE link_id = $1")
                .bind(link_id)
                .execute(p)
                .await
                .map(|_| ())
        })
        .map_err(op_err(|| format!("drop_redecision(link={link_id})")))
    }
}

/// Schedules the record of `link_id` on `side` to be decided again now,
/// inside the transaction that ends the write leaving it (a later
/// schedule of the same link replaces an earlier one).
pub(super) async fn schedule(
    tx: &mut Tx,
    link_id: i64,
    side: Side,
    reason: &str,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<()> {
    on_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO redecisions (link_id, side, reason, attempts, due_at, created_at) \
             VALUES ($1, $2, $3, 0, $4, $4) \
             ON CONFLICT (link_id) DO UPDATE SET side = excluded.side, \
               reason = excluded.reason, attempts = 0, last_error = NULL, \
               due_at = excluded.due_at",
        )
        .bind(link_id)
        .bind(side)
        .bind(reason)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ())
    })
    .map_err(op_err(|| {
        format!("{op}: scheduling link {link_id} to be decided again")
    }))
}

/// Deletes the re-decisions a committed decision took.
pub(super) async fn taken(tx: &mut Tx, links: &[i64], op: &'static str) -> Result<()> {
    for link in links {
        on_tx!(tx, |c| {
            sqlx::query("DELETE FROM redecisions WHERE link_id = $1")
                .bind(*link)
                .execute(&mut *c)
                .await
                .map(|_| ())
        })
        .map_err(op_err(|| {
            format!("{op}: taking the re-decision of link {link}")
        }))?;
    }
    Ok(())
}
