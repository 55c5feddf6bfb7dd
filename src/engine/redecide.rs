//! Deciding a record again, now: its current state, fetched from its side,
//! run through the decider as a new version even when the mirror has taken
//! this version in already. Used where a decision is known not to have
//! reached the other side: a write withdrawn because the target changed
//! since it was planned (issue 13: when that change was our own earlier
//! write, nothing else would ever decide the edit again), and an operator's
//! dead-letter retry.

use super::decide::Decider;
use super::report::Stats;
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::connector::Record;
use crate::domain::Side;

use crate::store::Changeset;

impl Engine {
    /// Decides `record` (read from `role` just now) and commits the
    /// decision. A version the link has recorded as seen is decided as a
    /// new one, with new idempotency keys (the old ones belong to writes
    /// that did not happen: withdrawn or dead): see `Decider::is_reread`.
    pub(super) async fn decide_again(
        &self,
        pair: &PairRuntime,
        role: Side,
        record: Record,
    ) -> Result<(Stats, Changeset), EngineError> {
        let entity = record.entity;
        let mut decider = Decider::new(self, pair, Mode::Apply).deciding_again();
        decider.records(role, entity, vec![record]).await?;
        let changeset = decider.take_changeset();
        let receipt = self.store.commit(&changeset).await?;
        if !receipt.outbox_new.is_empty() {
            self.wake.notify_one();
        }
        Ok((decider.report.stats.clone(), changeset))
    }
}
