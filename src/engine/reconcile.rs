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
use super::listed::ListedKeys;
use super::report::PairReport;
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::domain::{EntityKind, Purpose, Side};
use crate::store::Change;

/// Contacts whose children are read per commit.
const CHILDREN_PER_COMMIT: usize = 50;
/// Records missing from a lagging listing read by id in one
/// reconciliation, at most (see [`Engine::confirm_gone`]).
const CONFIRM_AT_MOST: usize = 1000;

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
        // Whether this listing stands in for the side's first poll (see
        // `Engine::detect_sides`): then it sets the watermark that poll
        // would have set.
        let first_listing = self.never_polled(pair, source).await?;
        // The first side listed keeps its match keys for the other side's
        // new records (`engine/listed.rs`), brought up to date before it
        // answers for one.
        let mut keys = (decider.listed.is_none()
            && connector.capabilities().of(EntityKind::Contact).change_feed)
            .then(|| ListedKeys::new(source, started, self.sync.overlap));
        let mut newest = None;
        let mut present = HashSet::new();
        // Records the side sent without an id that could be read.
        let mut unnamed = 0usize;
        let mut pages = connector.contact_pages();
        while let Some(page) = pages.next().await {
            let page = page?;
            newest = newest.max(page.watermark);
            // A record that could not be read is still there: dead-lettered,
            // never taken for deleted.
            let (named, without_id) = rejected_ids(&page.rejected);
            unnamed += without_id;
            present.extend(named);
            present.extend(page.records.iter().map(|r| r.id.clone()));
            if let Some(keys) = keys.as_mut() {
                keys.add(pair, &page.records, page.rejected.len());
            }
            // Listed without the pair's turn; decided and committed with
            // it, so no poll or targeted sync decides these records at once.
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
        self.missing(pair, decider, source, &live, present, unnamed)
            .await?;
        decider.listed = decider.listed.take().or(keys);
        let mut advance = self.advance(pair, source, EntityKind::Contact);
        advance.last_full_sync_at = Some(started);
        if first_listing {
            // A poll reads up to `lag` before its start and moves the
            // watermark to the newest change it read: everything changed
            // before that is in this listing (which a lagging index shows
            // by then), so the first poll after it starts there, less the
            // overlap, and reads only what changed since.
            let lag = chrono::Duration::from_std(self.sync.lag).unwrap_or_default();
            if let Some(at) = newest.map(|newest| newest.min(started - lag)) {
                advance.watermark = Change::Set(at);
            }
            // It stood in for that poll: `status` shows it as one.
            advance.last_poll_at = Some(started);
            advance.last_success_at = Some(crate::clock::now());
        }
        self.commit(decider, advance, mode).await
    }

    /// The linked records of `source` missing from its listing: deleted,
    /// unless the listing held records without an id (any of them could
    /// be one of these) or, for a lagging listing, they are still there
    /// when read by id; and never more at once than the guard allows.
    async fn missing(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        live: &[(i64, String)],
        present: HashSet<String>,
        unnamed: usize,
    ) -> Result<(), EngineError> {
        let connector = pair.connector(source);
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
            let gone = self
                .confirm_gone(pair, decider, source, gone, live.len())
                .await?;
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
        Ok(())
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
            // The chunk's children are read and decided under the pair's
            // turn (a few dozen requests): a poll waits for one chunk at
            // most, never for the whole sweep.
            let _turn = pair.signals.turn.lock().await;
            Purpose::ChildrenSweep
                .scope(self.read_children(pair, decider, source, entity, chunk))
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

    /// The links of `gone` (missing from `side`'s listing) whose record is
    /// really gone, when that listing may lag writes
    /// ([`Connector::listing_lags`]: GHL's search index hides a contact
    /// written a moment ago): each is read by its id first, one request
    /// per record the listing missed. Reading stops as soon as so many are
    /// gone that the mass-delete guard will hold them all anyway (the
    /// rest are returned unread, for the guard to count), and after
    /// [`CONFIRM_AT_MOST`] reads: the ones left unread are neither deleted
    /// nor read this time (held; the next reconciliation reads them), so
    /// a bulk edit hiding thousands of contacts costs a bounded number of
    /// requests and deletes nothing.
    ///
    /// [`Connector::listing_lags`]: crate::connector::Connector::listing_lags
    async fn confirm_gone(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        side: Side,
        gone: Vec<i64>,
        live: usize,
    ) -> Result<Vec<i64>, EngineError> {
        if !pair.connector(side).listing_lags() {
            return Ok(gone);
        }
        let allowed = (live as u64 * self.sync.mass_delete_percent / 100)
            .max(self.sync.mass_delete_min.max(1) - 1) as usize;
        let mut confirmed = Vec::new();
        let mut candidates = gone.into_iter().enumerate();
        while let Some((read, id)) = candidates.next() {
            if confirmed.len() > allowed {
                // The guard holds these; no need to read the rest.
                confirmed.push(id);
                confirmed.extend(candidates.map(|(_, id)| id));
                return Ok(confirmed);
            }
            if read == CONFIRM_AT_MOST {
                let held = 1 + candidates.len();
                decider.report.stats.deletes_held += held as u64;
                tracing::warn!(
                    side = %pair.connector(side).side(),
                    held,
                    "more records missing from the listing than are read by id in one reconciliation; \
                     the rest wait for the next one"
                );
                break;
            }
            let Some(link) = self.store.link_by_id(id).await? else {
                continue;
            };
            if !self.still_there(pair, side, &link).await? {
                confirmed.push(id);
            }
        }
        Ok(confirmed)
    }

    /// Whether the record of `link` on `side`, missing from a listing that
    /// may lag writes, is in fact still there: read by its id. A record
    /// that cannot be read is there.
    async fn still_there(
        &self,
        pair: &PairRuntime,
        side: Side,
        link: &crate::store::Link,
    ) -> Result<bool, EngineError> {
        let connector = pair.connector(side);
        let this = link.side(side);
        let Some(id) = this.id.as_deref() else {
            return Ok(false);
        };
        match connector
            .get(link.entity, id, this.parent_id.as_deref())
            .await
        {
            Ok(found) => Ok(found.is_some()),
            // Refused for this record (it cannot be read): it is there.
            Err(error) if error.is_record_error() => Ok(true),
            Err(error) => Err(error.into()),
        }
    }
}
