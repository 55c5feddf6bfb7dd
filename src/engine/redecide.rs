//! Deciding a record again, now: its current state, fetched from its side,
//! run through the decider as a new version even when the mirror has taken
//! this version in already. Used where a decision is known not to have
//! reached the other side: a write withdrawn because the target changed
//! since it was planned (issue 13: when that change was our own earlier
//! write, nothing else would ever decide the edit again), and an operator's
//! dead-letter retry.

use chrono::Duration;

use super::decide::Decider;
use super::report::Stats;
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::connector::Record;
use crate::domain::Side;

use crate::store::Changeset;

impl Engine {
    /// Decides `record` (read from `role` just now) and commits the
    /// decision. A version the link has recorded as seen is decided as one
    /// microsecond newer, so the decider takes it as a change and its
    /// writes get new idempotency keys (the old ones belong to writes that
    /// did not happen: withdrawn or dead).
    pub(super) async fn decide_again(
        &self,
        pair: &PairRuntime,
        role: Side,
        mut record: Record,
    ) -> Result<(Stats, Changeset), EngineError> {
        let link = self
            .store
            .link_by_side_id(pair.name(), record.entity, role, &record.id)
            .await?;
        if let Some(seen) = link.and_then(|l| l.side(role).updated_at) {
            if seen >= record.updated_at {
                record.updated_at = seen + Duration::microseconds(1);
            }
        }
        let entity = record.entity;
        let mut decider = Decider::new(self, pair, Mode::Apply);
        decider.records(role, entity, vec![record]).await?;
        let changeset = decider.take_changeset();
        let receipt = self.store.commit(&changeset).await?;
        if !receipt.outbox_new.is_empty() {
            self.wake.notify_one();
        }
        Ok((decider.report.stats.clone(), changeset))
    }
}
