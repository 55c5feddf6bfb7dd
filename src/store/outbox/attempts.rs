//! Attempts that did not apply a write: a failure (kept for a retry, or
//! dead-lettered for good) or a withdrawal, each journaled in the same
//! transaction as the outbox row it changes.

use chrono::{DateTime, Utc};

use super::{not_pending, FailOutcome, OutboxItem, OUTBOX_COLUMNS};
use crate::store::dead_letters::{self, DeadLetterStage, NewDeadLetter};
use crate::store::error::{op_err, Result};
use crate::store::journal::{journal_item_and_commit, Direction, JournalAction, NewJournalEntry};
use crate::store::sql::{now, us};
use crate::store::{Store, Tx};

impl Store {
    /// Records a failed write attempt (counted when it was claimed): keeps
    /// the error, releases the lease and journals it, in one transaction. With
    /// `retry_at` the item stays pending until then; with `None` it is dead:
    /// a dead letter (stage `write`, the error as reason, the payload) and a
    /// `dead_lettered` journal row are written with it, so the failure is
    /// never silent.
    pub async fn fail_outbox(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<FailOutcome> {
        const OP: &str = "fail_outbox";
        let now = now();
        let mut tx = self.begin(OP).await?;
        let sql = format!(
            "UPDATE outbox SET last_error = $2, locked_until = NULL, \
             updated_at = $1, next_attempt_at = COALESCE($3, next_attempt_at), \
             status = CASE WHEN $3 IS NULL THEN 'dead' ELSE status END \
             WHERE id = $4 AND status = 'pending' RETURNING {OUTBOX_COLUMNS}"
        );
        let retry_at = retry_at.map(us);
        let item: Option<OutboxItem> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(error)
                .bind(retry_at)
                .bind(id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| format!("{OP}(id={id})")))?;
        let Some(item) = item else {
            return Err(not_pending(&mut tx, OP, id).await);
        };

        let mut entry = attempt_entry(&mut tx, &item, error.to_owned()).await?;

        let outcome = match retry_at {
            Some(next_attempt_at) => FailOutcome::Retrying {
                attempts: item.attempts,
                next_attempt_at,
            },
            None => {
                let letter = NewDeadLetter {
                    pair: item.pair.clone(),
                    side: item.target_side,
                    entity: item.entity,
                    record_id: item.target_id.clone(),
                    outbox_id: Some(item.id),
                    stage: DeadLetterStage::Write,
                    reason: error.to_owned(),
                    payload: Some(item.payload.clone()),
                };
                let ids =
                    dead_letters::insert_dead_letters(&mut tx, std::slice::from_ref(&letter), now)
                        .await
                        .map_err(op_err(|| format!("{OP}(id={id}): writing its dead letter")))?;
                entry.action = JournalAction::DeadLettered;
                FailOutcome::Dead {
                    attempts: item.attempts,
                    dead_letter_id: ids[0],
                }
            }
        };
        journal_item_and_commit(tx, OP, &entry, &item, now).await?;
        Ok(outcome)
    }

    /// Withdraws a pending item that must not be applied any more (its
    /// target changed since the write was planned), with a journal row
    /// saying why, and schedules its source to be decided again with the
    /// newer state in the same transaction (`redecisions.rs`).
    pub async fn cancel_outbox(&self, id: i64, reason: &str) -> Result<()> {
        const OP: &str = "cancel_outbox";
        let now = now();
        let mut tx = self.begin(OP).await?;
        let sql = format!(
            "UPDATE outbox SET status = 'cancelled', locked_until = NULL, last_error = $2, \
             updated_at = $1, completed_at = $1 WHERE id = $3 AND status = 'pending' \
             RETURNING {OUTBOX_COLUMNS}"
        );
        let item: Option<OutboxItem> = on_tx!(&mut tx, |c| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(reason)
                .bind(id)
                .fetch_optional(&mut *c)
                .await
        })
        .map_err(op_err(|| format!("{OP}(id={id})")))?;
        let Some(item) = item else {
            return Err(not_pending(&mut tx, OP, id).await);
        };
        let entry = attempt_entry(&mut tx, &item, format!("write withdrawn: {reason}")).await?;
        if let Some(link) = item.link_id {
            // The change it carried still has to reach the other side.
            let why = format!("write {id} withdrawn: {reason}");
            let source = item.target_side.other();
            super::super::redecisions::schedule(&mut tx, link, source, &why, now, OP).await?;
        }
        journal_item_and_commit(tx, OP, &entry, &item, now).await
    }
}

/// The journal row of an attempt at an outbox item that did not apply it,
/// with the record's ids on both sides: from its link if it has one, else
/// the target id on the target side.
async fn attempt_entry(tx: &mut Tx, item: &OutboxItem, detail: String) -> Result<NewJournalEntry> {
    let mut entry = NewJournalEntry::new(&item.pair, item.entity, JournalAction::FailedAttempt);
    entry.direction = Some(Direction::towards(item.target_side));
    match linked_ids(tx, item).await? {
        Some((a_id, b_id)) => (entry.a_id, entry.b_id) = (a_id, b_id),
        None => entry.set_id(item.target_side, item.target_id.clone()),
    }
    entry.detail = Some(detail);
    Ok(entry)
}

/// The record's ids on both sides (`a_id`, `b_id`) from the link of an
/// outbox item; `None` when it has no link (any more).
async fn linked_ids(
    tx: &mut Tx,
    item: &OutboxItem,
) -> Result<Option<(Option<String>, Option<String>)>> {
    let Some(link_id) = item.link_id else {
        return Ok(None);
    };
    on_tx!(tx, |c| {
        sqlx::query_as("SELECT a_id, b_id FROM links WHERE id = $1")
            .bind(link_id)
            .fetch_optional(&mut *c)
            .await
    })
    .map_err(op_err(|| {
        format!("reading link {link_id} of outbox item {}", item.id)
    }))
}
