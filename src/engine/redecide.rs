//! Deciding a record again, now: its current state, fetched from its side,
//! run through the decider as a new version even when the mirror has taken
//! this version in already. Used where a decision is known not to have
//! reached the other side, and no poll will read the version again:
//!
//! - a write withdrawn because the target changed since it was planned
//!   (issue 13: when that change was our own earlier write, nothing else
//!   would ever decide the edit again);
//! - a create completed on a record a user made meanwhile (linked without
//!   a base: the fields the two hold differently go through the policies);
//! - a write overtaken by a newer decision of its source, whose base it
//!   would otherwise leave behind;
//! - an operator's dead-letter retry.
//!
//! The writer's cases are scheduled in the mirror in the transaction that
//! ends the write (`store/redecisions.rs`) and taken here at the end of
//! each drain of the outbox: a side that cannot be read, or a crash,
//! postpones the decision (with backoff) instead of leaving it to the next
//! full reconciliation, hours later (found by the deterministic
//! simulation, issue 16).

use tracing::Instrument;

use super::decide::Decider;
use super::report::Stats;
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::connector::Record;
use crate::domain::{Purpose, Side};

use crate::store::{Changeset, Redecision};

/// Re-decisions taken per drain of the outbox (the rest wait for the next).
const REDECISIONS_PER_DRAIN: i64 = 100;

impl Engine {
    /// Decides `record` (read from `role` just now) and commits the
    /// decision. A version the link has recorded as seen is decided as a
    /// new one, with new idempotency keys (the old ones belong to writes
    /// that did not happen: withdrawn or dead): see `Decider::is_reread`.
    /// `taking` names the link whose scheduled re-decision this is: it is
    /// deleted in the decision's own commit.
    pub(super) async fn decide_again(
        &self,
        pair: &PairRuntime,
        role: Side,
        record: Record,
        taking: Option<i64>,
    ) -> Result<(Stats, Changeset), EngineError> {
        let entity = record.entity;
        let mut decider = Decider::new(self, pair, Mode::Apply).deciding_again();
        decider.records(role, entity, vec![record]).await?;
        let mut changeset = decider.take_changeset();
        changeset.redecided.extend(taking);
        let receipt = self.store.commit(&changeset).await?;
        if !receipt.outbox_new.is_empty() {
            self.wake.notify_one();
        }
        Ok((decider.report.stats.clone(), changeset))
    }
}

impl Engine {
    /// Takes the re-decisions that are due: each record is read from its
    /// side and decided again; one that cannot be read waits (backoff by
    /// attempt, as a write does), one that is gone is dropped (its delete
    /// is the polls' and reconciliation's).
    /// Returns how many were taken (decided, or dropped as gone).
    pub(super) async fn take_redecisions(&self, stats: &mut Stats) -> Result<usize, EngineError> {
        let mut taken = 0;
        for due in self.store.due_redecisions(REDECISIONS_PER_DRAIN).await? {
            if Purpose::Write.scope(self.redecide(due, stats)).await? {
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// One re-decision; whether it was taken (false: postponed).
    async fn redecide(&self, due: Redecision, stats: &mut Stats) -> Result<bool, EngineError> {
        let Some(link) = self.store.link_by_id(due.link_id).await? else {
            return Ok(true);
        };
        let (Some(pair), Some(id)) = (
            self.pairs.iter().find(|p| p.name() == link.pair),
            link.side(due.side).id.clone(),
        ) else {
            // Its pair is no longer configured, or the record was never
            // made: nothing to decide.
            self.store.drop_redecision(due.link_id).await?;
            return Ok(true);
        };
        let span = tracing::info_span!(
            "redecide",
            pair = %link.pair,
            side = %pair.connector(due.side).side(),
            entity = %link.entity,
            record = %id,
            link = link.id,
        );
        let parent = link.side(due.side).parent_id.clone();
        async move {
        let read = pair
            .connector(due.side)
            .get(link.entity, &id, parent.as_deref())
            .await;
        let failed = match read {
            Ok(Some(record)) => match self.decide_again(pair, due.side, record, Some(link.id)).await {
                Ok((decided, _)) => {
                    tracing::debug!(reason = %due.reason, "decided again");
                    stats.add(&decided);
                    return Ok(true);
                }
                Err(EngineError::Side(error)) => error.to_string(),
                Err(error) => return Err(error),
            },
            Ok(None) => {
                self.store.drop_redecision(due.link_id).await?;
                return Ok(true);
            }
            Err(error) => error.to_string(),
        };
        let wait = super::writer::backoff(due.attempts + 1);
        tracing::warn!(error = %failed, retry_in = ?wait, reason = %due.reason, "deciding the record again failed; tried again later");
        let at = crate::clock::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        self.store.postpone_redecision(due.link_id, &failed, at).await?;
        Ok(false)
        }
        .instrument(span)
        .await
    }
}
