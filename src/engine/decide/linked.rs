//! A changed record that has a link: our own write coming back (an echo),
//! or a change to merge with the other side's current state against the
//! base snapshot.

use super::reread::agrees_with_base;
use super::settle::{dated, merge_sides, Ids, Settlement};
use super::{from_source, Decider};
use crate::connector::Record;
use crate::domain::{EntityKind, PerSide, Side};
use crate::engine::{snapshot, EngineError};
use crate::mapping::Canonical;
use crate::store::{
    DeadLetterStage, Direction, JournalAction, Link, LinkRef, LinkUpdate, LinkWrite,
};

/// The other side's record of a link, as it is now.
enum OtherNow {
    /// Its create there is still pending: there is nothing to read.
    NotCreated,
    Found(Record),
    /// Gone there: reconciliation decides its delete.
    Gone,
    /// The side refused to hand it over.
    Unreadable {
        id: String,
        reason: String,
    },
}

impl Decider<'_> {
    /// A changed record that has a link: merge it with the other side's
    /// current state against the base snapshot.
    pub(super) async fn linked(
        &mut self,
        source: Side,
        record: &Record,
        canonical: Canonical,
        link: &Link,
    ) -> Result<(), EngineError> {
        let entity = record.entity;
        let other = source.other();
        let base = snapshot::canonical(&link.snapshot);
        let mut update = LinkUpdate {
            id: link.id,
            ..LinkUpdate::default()
        };
        update.side_mut(source).saw(record);

        // Nothing this side feeds differs from the base: our own write
        // coming back, or an edit of unmapped fields. Never a write.
        let unchanged = agrees_with_base(self.pair, entity, source, &canonical, &base);
        if unchanged && link.side(other).id.is_some() {
            self.echo(entity, link, other, update);
            return Ok(());
        }

        // The other side as it is now, so that its own edits since the base
        // are merged, not overwritten.
        let other_record = match self.read_other(record, link, other).await? {
            OtherNow::NotCreated => None,
            OtherNow::Found(found) => Some(found),
            OtherNow::Gone => {
                self.changeset.links.push(LinkWrite::Update(update));
                return Ok(());
            }
            OtherNow::Unreadable { id, reason } => {
                self.changeset.links.push(LinkWrite::Update(update));
                return self
                    .dead_letter(other, entity, Some(id), DeadLetterStage::Read, reason, None)
                    .await;
            }
        };
        let other_canonical = match &other_record {
            Some(found) => match self.canonical(other, found, Some(link)).await? {
                Some(c) => Some(c),
                None => {
                    self.changeset.links.push(LinkWrite::Update(update));
                    return Ok(());
                }
            },
            None => None,
        };
        if let Some(found) = &other_record {
            update.side_mut(other).saw(found);
        }
        // Its create there still pending: what the record will hold once
        // made, which the writes planned now expect to find there (an
        // older write applied late, or a user's edit of the new record,
        // then withdraws them instead of being overwritten).
        let pending = match &other_record {
            None => self
                .pending_create(link, other)
                .await?
                .and_then(|item| crate::engine::writer::payload(&item).snapshot),
            Some(_) => None,
        };
        // Once made, the record holds what its create carries, which is
        // what this side held when the create was planned: that is the
        // base this change is merged against, and the other side's state.
        // Against the link's empty base instead, a value this side has
        // since removed (a last tag) would count as never set, and the
        // create would bring it back unopposed.
        let (base, other_state) = match &pending {
            Some(pending) => (pending, Some((pending, record.updated_at))),
            None => (
                &base,
                other_canonical
                    .as_ref()
                    .zip(other_record.as_ref().map(|r| r.updated_at)),
            ),
        };
        let merged = merge_sides(
            self.pair,
            entity,
            Some(base),
            (source, &canonical, record.updated_at),
            other_state,
        );
        let settlement = Settlement {
            link: LinkRef::Existing(link.id),
            base: Some(base),
            entity,
            merged: &merged,
            current: from_source(
                source,
                Some(&canonical),
                other_canonical.as_ref().or(pending.as_ref()),
            ),
            seen_at: from_source(source, dated(record), other_record.as_ref().and_then(dated)),
            ids: Ids {
                source,
                source_id: record.id.clone(),
                updated_at: record.updated_at,
                other_id: link.side(other).id.clone(),
                parents: PerSide::new(link.a.parent_id.clone(), link.b.parent_id.clone()),
            },
        };
        self.settle(&settlement, update);
        Ok(())
    }

    /// Our own write coming back, or an edit of unmapped fields: the
    /// version is recorded as seen and journaled as a skipped echo.
    fn echo(&mut self, entity: EntityKind, link: &Link, other: Side, update: LinkUpdate) {
        self.report.stats.echoes += 1;
        self.changeset.links.push(LinkWrite::Update(update));
        let mut entry = self.journal(entity, JournalAction::SkippedEcho, link);
        entry.direction = Some(Direction::towards(other));
        self.changeset.journal.push(entry);
    }

    /// The record of `link` on the `other` side, fetched now.
    async fn read_other(
        &self,
        record: &Record,
        link: &Link,
        other: Side,
    ) -> Result<OtherNow, EngineError> {
        let Some(other_id) = &link.side(other).id else {
            return Ok(OtherNow::NotCreated);
        };
        let parent = link.side(other).parent_id.as_deref();
        let entity = record.entity;
        match self
            .pair
            .connector(other)
            .get(entity, other_id, parent)
            .await
        {
            Ok(Some(found)) => Ok(OtherNow::Found(found)),
            Ok(None) => {
                // Gone there. Deletes are decided by reconciliation
                // alone, behind its mass-delete guard: a wiped side
                // must not leak its deletes one edit at a time.
                tracing::debug!(
                    pair = %self.name(),
                    entity = %entity,
                    record = %record.id,
                    missing = %other_id,
                    "the other side's record is gone; reconciliation decides its delete"
                );
                Ok(OtherNow::Gone)
            }
            Err(error) if error.is_record_error() => Ok(OtherNow::Unreadable {
                id: other_id.clone(),
                reason: error.to_string(),
            }),
            Err(error) => Err(error.into()),
        }
    }
}
