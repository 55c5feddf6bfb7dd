//! Deciding what a batch of records read from one side means: for each
//! record, whether it is a re-read, an echo, a change to merge into its
//! link, a new record to link by match key or to create, or bad input to
//! dead-letter. The decisions accumulate in one [`Changeset`], committed by
//! the caller together with the watermark that covers them.
//!
//! Each question has its file:
//! - `reread`: is this a version already processed (or one recorded as
//!   seen whose content diverged from the base)?
//! - `link`: a record without a link: which record does it link to (a
//!   verified match on the other side), or is it created there?
//! - `linked`: a record with a link: our own write coming back, or a change
//!   to merge with the other side as it is now?
//! - `settle`: how a merge becomes rows (conflicts, planned writes, the new
//!   base snapshot).
//! - `dead_letter`: the records a decision cannot take, set aside once each.

mod dead_letter;
mod link;
mod linked;
mod reread;
mod settle;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use self::dead_letter::DeadLetterKey;
use self::link::ContactRef;
use super::listed::ListedKeys;
use super::outbox::{link_key, OutboxWrite};
use super::report::{PairReport, PlannedWrite};
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::connector::{ConnectorError, Record};
use crate::domain::{EntityKind, PerSide, Side};
use crate::mapping::DeletePolicy;
use crate::store::{
    Change, Changeset, DeadLetterStage, Direction, JournalAction, Link, LinkRef, LinkUpdate,
    LinkWrite, NewJournalEntry, OutboxOp, Store,
};

/// The outbox payload, where the decision stage's callers have always
/// named it (it lives in `engine::outbox`).
use super::outbox::WritePayload;

pub struct Decider<'a> {
    pair: &'a PairRuntime,
    store: &'a Store,
    /// The engine's running count of records read (progress output).
    records_read: &'a AtomicU64,
    mode: Mode,
    changeset: Changeset,
    pub report: PairReport,
    next_ref: u32,
    contacts: HashMap<(Side, String), ContactRef>,
    /// Other-side ids linked by this batch: two records matching the same
    /// record must not both link to it.
    claimed: HashSet<(EntityKind, Side, String)>,
    /// The same for the previous page while its commit is in flight (see
    /// [`Decider::take_page`]): the mirror does not show those links yet.
    claimed_in_flight: HashSet<(EntityKind, Side, String)>,
    /// Dead letters (side, entity, record id, reason) of this batch, and of
    /// the previous page while its commit is in flight: what
    /// `has_open_dead_letter` cannot see yet.
    dead_lettered: HashSet<DeadLetterKey>,
    dead_in_flight: HashSet<DeadLetterKey>,
    /// Reconciliation: a version recorded as seen is still decided when
    /// its content differs from the base snapshot, so a divergence that got
    /// past the polls is repaired (content, not a timestamp, decides).
    compare_content: bool,
    /// Reconciliation: when it began, and the poll overlap (how late the
    /// sides' listings may show a write): a listed version older than the
    /// one its link took in, for a link written since then, is a stale
    /// read, not a divergence (see `reread.rs::seen_but_diverged`).
    pub(super) listing_since: Option<(chrono::DateTime<chrono::Utc>, chrono::Duration)>,
    /// Deciding again (`redecide.rs`): a version recorded as seen is
    /// decided as a new one, because its decision is known not to have
    /// reached the other side.
    again: bool,
    /// Reconciliation: the match keys of the side it listed first, where
    /// the other side's new records find their matches instead of one
    /// lookup each (`engine/listed.rs`).
    pub(super) listed: Option<ListedKeys>,
    /// `sync.overlap`.
    overlap: std::time::Duration,
}

impl<'a> Decider<'a> {
    pub fn new(engine: &'a Engine, pair: &'a PairRuntime, mode: Mode) -> Self {
        Decider {
            pair,
            store: &engine.store,
            records_read: &engine.records_read,
            mode,
            changeset: Changeset::default(),
            report: PairReport::default(),
            next_ref: 0,
            contacts: HashMap::new(),
            claimed: HashSet::new(),
            claimed_in_flight: HashSet::new(),
            dead_lettered: HashSet::new(),
            dead_in_flight: HashSet::new(),
            compare_content: false,
            listing_since: None,
            again: false,
            listed: None,
            overlap: engine.sync.overlap,
        }
    }

    /// A decider for a full reconciliation (see `compare_content`).
    pub fn comparing_content(mut self) -> Self {
        self.compare_content = true;
        let overlap = chrono::Duration::from_std(self.overlap).unwrap_or_default();
        self.listing_since = Some((crate::clock::now(), overlap));
        self
    }

    /// A decider that decides versions already seen again (see `again`).
    pub fn deciding_again(mut self) -> Self {
        self.again = true;
        self
    }

    /// The pair's name, borrowed from the pair rather than from the
    /// decider, so rows can carry it while the decider adds them.
    fn name(&self) -> &'a str {
        self.pair.name()
    }

    /// The decisions so far, leaving the decider empty for the next batch.
    pub fn take_changeset(&mut self) -> Changeset {
        self.contacts.clear();
        self.claimed.clear();
        self.dead_lettered.clear();
        self.page_committed();
        std::mem::take(&mut self.changeset)
    }

    /// Like [`take_changeset`](Self::take_changeset), for a page whose
    /// commit runs while the next page is decided: what this page linked
    /// and dead-lettered stays known to the decider until
    /// [`page_committed`](Self::page_committed), so the next page decides
    /// as if the mirror already held it. (A record of the committing page
    /// that comes again must wait for the commit: see `detect.rs`.)
    pub fn take_page(&mut self) -> Changeset {
        self.contacts.clear();
        self.claimed_in_flight = std::mem::take(&mut self.claimed);
        self.dead_in_flight = std::mem::take(&mut self.dead_lettered);
        std::mem::take(&mut self.changeset)
    }

    /// The page taken by [`take_page`](Self::take_page) is committed: the
    /// mirror shows it now.
    pub fn page_committed(&mut self) {
        self.claimed_in_flight.clear();
        self.dead_in_flight.clear();
    }

    fn is_claimed(&self, claim: &(EntityKind, Side, String)) -> bool {
        self.claimed.contains(claim) || self.claimed_in_flight.contains(claim)
    }

    /// Decides a batch of records of `entity` read from `source`. Returns
    /// the ids of the records that changed (neither re-reads nor filtered),
    /// whose children the caller may want to read.
    pub async fn records(
        &mut self,
        source: Side,
        entity: EntityKind,
        mut records: Vec<Record>,
    ) -> Result<Vec<String>, EngineError> {
        // The newest version of each id only.
        records.sort_by(|a, b| a.id.cmp(&b.id).then(b.updated_at.cmp(&a.updated_at)));
        records.dedup_by(|later, kept| later.id == kept.id);
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let links = self
            .store
            .links_by_side_ids(self.name(), entity, source, &ids)
            .await?;
        let parents = if entity == EntityKind::Contact {
            HashMap::new()
        } else {
            self.parent_links(source, &records).await?
        };
        let unlinked: Vec<&Record> = records
            .iter()
            .filter(|r| !links.contains_key(&r.id))
            .collect();
        let known_dead = self.known_dead(source, entity, &unlinked).await?;
        let mut changed = Vec::new();
        self.records_read
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        for mut record in records {
            self.report.stats.read += 1;
            let link = links.get(&record.id);
            if let Some(link) = link {
                if entity == EntityKind::Contact {
                    self.remember_contact(source, &record.id, link);
                }
                if self.is_reread(source, &mut record, link) {
                    self.report.stats.unchanged += 1;
                    continue;
                }
            }
            if link.is_none() && known_dead.contains(&record.id) {
                // This version is dead-lettered already: no lookup again.
                self.report.stats.unchanged += 1;
                continue;
            }
            if entity == EntityKind::Contact
                && source == Side::Ghl
                && !self.pair.settings.filter.admits(&record.fields)
            {
                self.report.stats.filtered += 1;
                continue;
            }
            let Some(canonical) = self.canonical(source, &record, link).await? else {
                continue;
            };
            changed.push(record.id.clone());
            match link {
                Some(link) => self.linked(source, &record, canonical, link).await?,
                None => match owner(&record, &parents) {
                    Some(parent) => self.unlinked(source, &record, canonical, parent).await?,
                    None => self.report.stats.orphans += 1,
                },
            }
        }
        Ok(changed)
    }

    /// Records a side refused to hand over (no id, malformed timestamps):
    /// dead letters, once each.
    pub async fn rejected(
        &mut self,
        source: Side,
        entity: EntityKind,
        errors: Vec<ConnectorError>,
    ) -> Result<(), EngineError> {
        for error in errors {
            let id = match &error {
                ConnectorError::Record { id, .. } => id.clone(),
                _ => None,
            };
            self.dead_letter(
                source,
                entity,
                id,
                DeadLetterStage::Read,
                error.to_string(),
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// `gone` no longer holds the record of `link`: applies the pair's
    /// delete policy to the other side, and tombstones the link so neither
    /// side's copy is synced again.
    pub async fn deletion(&mut self, gone: Side, link: &Link) -> Result<(), EngineError> {
        if link.deleted_at.is_some() {
            return Ok(());
        }
        let target = gone.other();
        let caps = self.pair.connector(target).capabilities().of(link.entity);
        self.changeset.links.push(LinkWrite::Update(LinkUpdate {
            id: link.id,
            deleted_at: Change::Set(crate::clock::now()),
            ..LinkUpdate::default()
        }));
        let mut entry = self.journal(link.entity, JournalAction::Seen, link);
        entry.direction = Some(Direction::towards(target));
        entry.detail = Some(format!(
            "deleted on side `{}`",
            self.pair.connector(gone).side()
        ));
        self.changeset.journal.push(entry);
        self.report.stats.planned_deletes += 1;
        let target_id = match link.side(target).id.clone() {
            Some(id) => Some(id),
            // Its create there is still in the outbox: the record is about
            // to exist, so its delete follows (the writer takes the id from
            // the link once the create has recorded it). Without it the
            // create made a record nobody deletes (found by the
            // deterministic simulation, issue 16).
            None if self.pending_create(link, target).await?.is_some() => None,
            None => return Ok(()),
        };
        let (op, payload) = match &self.pair.settings.deletes {
            DeletePolicy::Propagate if caps.delete => (OutboxOp::Delete, WritePayload::default()),
            DeletePolicy::Tag(tag) if link.entity == EntityKind::Contact && caps.update => (
                OutboxOp::AddTags,
                WritePayload {
                    tag: Some(tag.clone()),
                    changed: vec!["tags".to_owned()],
                    ..WritePayload::default()
                },
            ),
            _ => return Ok(()),
        };
        self.enqueue(OutboxWrite {
            pair: self.name(),
            entity: link.entity,
            link: LinkRef::Existing(link.id),
            target,
            op,
            key: link_key(self.name(), link.entity, link.id, op, target),
            target_id,
            source_id: link.side(gone).id.clone(),
            parent_id: link.side(target).parent_id.clone(),
            payload: &payload,
            note: None,
        });
        Ok(())
    }

    /// Plans a write: counted, shown by `plan`, and added to the changeset
    /// with its `planned` journal row.
    fn enqueue(&mut self, write: OutboxWrite<'_>) {
        match write.op {
            OutboxOp::Create => self.report.stats.planned_creates += 1,
            OutboxOp::Delete => {}
            _ => self.report.stats.planned_updates += 1,
        }
        if self.mode == Mode::Plan {
            let shown = self.shown(&write);
            self.report.planned.push(shown);
        }
        write.add_to(&mut self.changeset);
    }

    /// How `plan` shows a write: the canonical values it sets.
    fn shown(&self, write: &OutboxWrite<'_>) -> PlannedWrite {
        let payload = write.payload;
        let fields = match (&payload.snapshot, write.op) {
            (Some(_), _) => payload.writes(),
            (None, OutboxOp::AddTags) => [(
                "tags".to_owned(),
                Value::from(payload.tag.clone().unwrap_or_default()),
            )]
            .into(),
            _ => Default::default(),
        };
        PlannedWrite {
            pair: self.name().to_owned(),
            side: self.pair.connector(write.target).side().to_owned(),
            entity: write.entity,
            op: write.op,
            target_id: write.target_id.clone(),
            source_id: write.source_id.clone(),
            fields,
        }
    }

    /// A journal row about an existing link, naming its records.
    fn journal(&self, entity: EntityKind, action: JournalAction, link: &Link) -> NewJournalEntry {
        let mut entry = NewJournalEntry::new(self.name(), entity, action);
        entry.link = Some(LinkRef::Existing(link.id));
        entry.a_id = link.a.id.clone();
        entry.b_id = link.b.id.clone();
        entry
    }

    fn next_ref(&mut self) -> u32 {
        self.next_ref += 1;
        self.next_ref
    }
}

/// The contact owning a record without a link, as its decision needs it:
/// `Some(None)` for a record that names none (a contact), `None` for an
/// orphan, a child whose contact is not synced.
fn owner(record: &Record, parents: &HashMap<String, ContactRef>) -> Option<Option<ContactRef>> {
    match &record.parent_id {
        Some(parent) if record.entity != EntityKind::Contact => {
            parents.get(parent).cloned().map(Some)
        }
        _ => Some(None),
    }
}

/// A value for each side, given as the source side's and the other's.
fn from_source<T>(source: Side, this: T, that: T) -> PerSide<T> {
    match source {
        Side::Ghl => PerSide::new(this, that),
        Side::App => PerSide::new(that, this),
    }
}
