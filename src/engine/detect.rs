//! Change detection: one poll of a side's change feed for one entity,
//! between the watermark (minus the overlap) and now (minus the lag). Each
//! page is decided and committed with its watermark in one transaction, so
//! the watermark never passes a change that is not durably recorded.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::Instrument;

use super::decide::Decider;
use super::report::PairReport;
use super::{side_of, Engine, EngineError, Mode, PairRuntime};
use crate::connector::EntityKind;
use crate::mapping::Role;
use crate::store::{Change, Changeset, CursorAdvance};

/// Detection of the default feed of an entity.
pub(super) const STREAM: &str = "";

impl Engine {
    /// Polls `source`'s change feed of `entity` once. Entities without a
    /// feed on that side (GHL tasks and notes) are read as the children of
    /// the contacts that changed, and by reconciliation.
    pub async fn poll(
        &self,
        pair: &PairRuntime,
        source: Role,
        entity: EntityKind,
        mode: Mode,
    ) -> Result<PairReport, EngineError> {
        let connector = pair.connector(source);
        let caps = connector.capabilities().of(entity);
        if !caps.read || !caps.change_feed {
            return Ok(PairReport::default());
        }
        let span = tracing::info_span!(
            "poll",
            pair = %pair.name(),
            side = %connector.side(),
            entity = %entity,
        );
        self.poll_feed(pair, source, entity, mode)
            .instrument(span)
            .await
    }

    async fn poll_feed(
        &self,
        pair: &PairRuntime,
        source: Role,
        entity: EntityKind,
        mode: Mode,
    ) -> Result<PairReport, EngineError> {
        let side = side_of(source);
        let started = Utc::now();
        let cursor = self
            .store
            .load_cursor(pair.name(), side, entity, STREAM)
            .await?;
        let stored = cursor.and_then(|c| c.watermark);
        let overlap = chrono::Duration::from_std(self.sync.overlap).unwrap_or_default();
        let lag = chrono::Duration::from_std(self.sync.lag).unwrap_or_default();
        let since = stored.map_or(DateTime::UNIX_EPOCH, |w| w - overlap);
        let until = started - lag;
        if until < since {
            return Ok(PairReport::default());
        }
        let mut decider = Decider::new(self, pair, mode);
        let mut watermark = stored;
        let mut pages = pair.connector(source).changes(entity, since, until);
        while let Some(page) = pages.next().await {
            let page = page?;
            decider.rejected(source, entity, page.rejected).await?;
            let changed = decider.records(source, entity, page.records).await?;
            if entity == EntityKind::Contact {
                self.children_of(pair, &mut decider, source, &changed)
                    .await?;
            }
            watermark = watermark.max(page.watermark);
            let mut advance = self.advance(pair, source, entity);
            if let Some(w) = watermark.filter(|w| Some(*w) > stored) {
                advance.watermark = Change::Set(w);
            }
            advance.last_poll_at = Some(started);
            self.commit(&mut decider, advance, mode).await?;
        }
        let mut done = self.advance(pair, source, entity);
        done.last_poll_at = Some(started);
        done.last_success_at = Some(Utc::now());
        self.commit(&mut decider, done, mode).await?;
        let stats = &decider.report.stats;
        if stats.read > stats.unchanged {
            tracing::debug!(read = stats.read, planned = stats.planned(), "poll done");
        }
        Ok(decider.report)
    }

    /// Reads the tasks, notes (and appointments) of contacts that changed
    /// on a side without a change feed for them, and notices children gone
    /// from those contacts.
    pub(super) async fn children_of(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Role,
        contacts: &[String],
    ) -> Result<(), EngineError> {
        if contacts.is_empty() {
            return Ok(());
        }
        let connector = pair.connector(source);
        for entity in pair.entities() {
            let caps = connector.capabilities().of(entity);
            if entity == EntityKind::Contact || !caps.read || caps.change_feed {
                continue;
            }
            self.read_children(pair, decider, source, entity, contacts)
                .await?;
        }
        Ok(())
    }

    /// Lists the `entity` children of `contacts` on `source`, decides them,
    /// and plans the deletion of linked children no longer there.
    pub(super) async fn read_children(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Role,
        entity: EntityKind,
        contacts: &[String],
    ) -> Result<(), EngineError> {
        let connector = pair.connector(source);
        // The links as they are before the listings: a child the writer
        // creates and links meanwhile may not be listed, and is not gone.
        let linked = self
            .store
            .links_by_parent_ids(pair.name(), entity, side_of(source), contacts)
            .await?;
        let mut present = HashSet::new();
        let mut listed = HashSet::with_capacity(contacts.len());
        for contact in contacts {
            let children = match connector.children(entity, contact).await {
                Ok(children) => children,
                // The contact is gone: its own deletion is found by
                // reconciliation; its children are not "deleted" here.
                Err(error) if error.is_record_error() => {
                    tracing::debug!(contact = %contact, error = %error, "children not listed");
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            listed.insert(contact.clone());
            present.extend(children.iter().map(|c| c.id.clone()));
            decider.records(source, entity, children).await?;
        }
        for link in linked {
            let side = link.side(side_of(source));
            let gone = side.parent_id.as_ref().is_some_and(|p| listed.contains(p))
                && side.id.as_ref().is_some_and(|id| !present.contains(id));
            if gone {
                // As it is now (the writer may have tombstoned it).
                if let Some(link) = self.store.link_by_id(link.id).await? {
                    decider.deletion(source, &link).await?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn advance(
        &self,
        pair: &PairRuntime,
        source: Role,
        entity: EntityKind,
    ) -> CursorAdvance {
        CursorAdvance::new(pair.name(), side_of(source), entity, STREAM)
    }

    /// Commits what the decider holds, with `advance`: one transaction.
    /// In plan mode nothing is written.
    pub(super) async fn commit(
        &self,
        decider: &mut Decider<'_>,
        advance: CursorAdvance,
        mode: Mode,
    ) -> Result<(), EngineError> {
        let mut changeset: Changeset = decider.take_changeset();
        changeset.cursors.push(advance);
        if mode == Mode::Apply {
            let receipt = self.store.commit(&changeset).await?;
            if !receipt.outbox_new.is_empty() {
                self.wake.notify_one();
            }
        }
        Ok(())
    }
}
