//! Full reconciliation: list every record of both sides and compare with
//! the mirror. Catches deletes (no side announces them in its change feed)
//! and anything a poll missed. A mass-delete guard refuses to propagate a
//! suspicious wave of deletes: a wiped, restored or mis-pointed side must
//! not empty the other one.

use std::collections::HashSet;

use futures::StreamExt;
use tracing::Instrument;

use super::decide::Decider;
use super::detect::rejected_ids;
use super::report::PairReport;
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::domain::{EntityKind, Purpose, Side};

/// Contacts whose children are read per commit.
const CHILDREN_PER_COMMIT: usize = 50;

impl Engine {
    /// Reconciles one pair: contacts of both sides, then their children.
    pub async fn reconcile(
        &self,
        pair: &PairRuntime,
        mode: Mode,
    ) -> Result<PairReport, EngineError> {
        let span = tracing::info_span!("reconcile", pair = %pair.name());
        let work = async {
            let mut decider = Decider::new(self, pair, mode).comparing_content();
            for source in Side::BOTH {
                self.reconcile_contacts(pair, &mut decider, source, mode)
                    .await?;
            }
            for entity in pair.entities() {
                if entity == EntityKind::Contact {
                    continue;
                }
                for source in Side::BOTH {
                    if pair.connector(source).capabilities().of(entity).read {
                        self.reconcile_children(pair, &mut decider, source, entity, mode)
                            .await?;
                    }
                }
            }
            tracing::info!(stats = ?decider.report.stats, "reconciliation done");
            Ok(decider.report)
        };
        Purpose::Reconcile.scope(work.instrument(span)).await
    }

    async fn reconcile_contacts(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        mode: Mode,
    ) -> Result<(), EngineError> {
        let connector = pair.connector(source);
        if !connector.capabilities().of(EntityKind::Contact).read {
            return Ok(());
        }
        let started = crate::clock::now();
        // The links as they are before the listing: a record the writer
        // creates and links while the listing runs may not be listed, and
        // is not gone.
        let live = self
            .store
            .live_side_ids(pair.name(), EntityKind::Contact, source)
            .await?;
        let mut present = HashSet::new();
        // Records the side sent without an id that could be read.
        let mut unnamed = 0usize;
        let mut pages = connector.contact_pages();
        while let Some(page) = pages.next().await {
            let page = page?;
            // A record that could not be read is still there: dead-lettered,
            // never taken for deleted.
            let (named, without_id) = rejected_ids(&page.rejected);
            unnamed += without_id;
            present.extend(named);
            present.extend(page.records.iter().map(|r| r.id.clone()));
            let _turn = pair.signals.turn.lock().await;
            self.set_aside(pair, decider, source, EntityKind::Contact, page.rejected)
                .await?;
            decider
                .records(source, EntityKind::Contact, page.records)
                .await?;
            let advance = self.advance(pair, source, EntityKind::Contact);
            self.commit(decider, advance, mode).await?;
        }
        let _turn = pair.signals.turn.lock().await;
        let gone: Vec<i64> = live
            .iter()
            .filter(|(_, id)| !present.contains(id))
            .map(|(link, _)| *link)
            .collect();
        drop(present);
        if unnamed > 0 && !gone.is_empty() {
            // Any of them could be the record that came without an id:
            // deleting its counterpart would lose it. They wait until the
            // listing names every record again.
            decider.report.stats.deletes_held += gone.len() as u64;
            tracing::warn!(
                side = %connector.side(),
                gone = gone.len(),
                without_id = unnamed,
                "records missing from the listing are not taken for deleted while the side \
                 sends records without an id (see `ghlsync dead-letters list`)"
            );
        } else {
            self.deletions(
                pair,
                decider,
                source,
                EntityKind::Contact,
                &gone,
                live.len(),
            )
            .await?;
        }
        let mut advance = self.advance(pair, source, EntityKind::Contact);
        advance.last_full_sync_at = Some(started);
        self.commit(decider, advance, mode).await
    }

    async fn reconcile_children(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        entity: EntityKind,
        mode: Mode,
    ) -> Result<(), EngineError> {
        let contacts: Vec<String> = self
            .store
            .live_side_ids(pair.name(), EntityKind::Contact, source)
            .await?
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        for chunk in contacts.chunks(CHILDREN_PER_COMMIT) {
            let listing = Purpose::ChildrenSweep
                .scope(self.list_children(pair, source, entity, chunk))
                .await?;
            let _turn = pair.signals.turn.lock().await;
            self.decide_children(pair, decider, source, entity, listing)
                .await?;
            let advance = self.advance(pair, source, entity);
            self.commit(decider, advance, mode).await?;
        }
        Ok(())
    }

    /// Plans the deletes found by a reconciliation, unless there are too
    /// many of them.
    async fn deletions(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        gone_from: Side,
        entity: EntityKind,
        gone: &[i64],
        live: usize,
    ) -> Result<(), EngineError> {
        if gone.is_empty() {
            return Ok(());
        }
        let share = gone.len() as u64 * 100;
        let limit = live as u64 * self.sync.mass_delete_percent;
        if gone.len() as u64 >= self.sync.mass_delete_min.max(1) && share > limit {
            decider.report.stats.deletes_held += gone.len() as u64;
            tracing::error!(
                alert = "mass_delete_held",
                side = %pair.connector(gone_from).side(),
                entity = %entity,
                gone = gone.len(),
                linked = live,
                threshold_percent = self.sync.mass_delete_percent,
                "too many records disappeared at once; none of these deletes is propagated \
                 (check the side, then raise sync.mass_delete_percent for one run if they are genuine)"
            );
            return Ok(());
        }
        for id in gone {
            if let Some(link) = self.store.link_by_id(*id).await? {
                decider.deletion(gone_from, &link).await?;
            }
        }
        Ok(())
    }
}
