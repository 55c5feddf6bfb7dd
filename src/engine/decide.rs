//! Deciding what a batch of records read from one side means: for each
//! record, whether it is a re-read, an echo, a change to merge into its
//! link, a new record to link by match key or to create, or bad input to
//! dead-letter. The decisions accumulate in one [`Changeset`], committed by
//! the caller together with the watermark that covers them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::matching::{self, Search};
use super::merge::{merge, Merge, SideState};
use super::outbox::{change_key, link_key, OutboxWrite};
use super::report::{PairReport, PlannedWrite};
use super::{snapshot, Engine, EngineError, Mode, PairRuntime};
use crate::connector::{ConnectorError, Record};
use crate::domain::{EntityKind, PerSide, Side};
use crate::mapping::{Canonical, DeletePolicy};
use crate::store::{
    Change, Changeset, DeadLetterStage, Direction, JournalAction, Link, LinkRef, LinkSide,
    LinkUpdate, LinkWrite, NewConflict, NewDeadLetter, NewJournalEntry, NewLink, OutboxOp,
    SidePatch, Store,
};

/// The outbox payload, where the decision stage's callers have always
/// named it (it lives in `engine::outbox`).
pub(super) use super::outbox::WritePayload;

/// A contact decided on in this batch: children read later in the same
/// batch find their parent here before its link is committed.
#[derive(Debug, Clone)]
struct ContactRef {
    /// The contact's id on the other side (none while its create is
    /// pending there; the writer then finds it when the child is written).
    other_id: Option<String>,
}

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
}

type DeadLetterKey = (Side, EntityKind, String, String);

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
        }
    }

    /// A decider for a full reconciliation (see `compare_content`).
    pub fn comparing_content(mut self) -> Self {
        self.compare_content = true;
        self
    }

    /// For a version already recorded as seen: whether a reconciliation
    /// must decide it anyway because what it holds is not the base.
    fn seen_but_diverged(&self, source: Side, record: &Record, link: &Link) -> bool {
        // A link whose other record is still being created has no base
        // yet: its create is on its way, nothing diverged.
        if !self.compare_content
            || link.deleted_at.is_some()
            || link.side(source.other()).id.is_none()
        {
            return false;
        }
        let map = &self.pair.settings.map;
        let Ok(canonical) = map.to_canonical(record.entity, source, &record.fields) else {
            // Unreadable: its dead letter was written when it was read.
            return false;
        };
        let base = snapshot::canonical(&link.snapshot);
        let diverged = !agrees_with_base(self.pair, record.entity, source, &canonical, &base);
        if diverged {
            tracing::info!(pair = %self.name(), entity = %record.entity, record = %record.id, "a version recorded as seen differs from the base; deciding it again");
        }
        diverged
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
        let src = source;
        let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let links = self
            .store
            .links_by_side_ids(self.name(), entity, src, &ids)
            .await?;
        let parents = if entity == EntityKind::Contact {
            HashMap::new()
        } else {
            self.parent_links(source, &records).await?
        };
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
                if already_decided(link, src, &record) {
                    if !self.seen_but_diverged(source, &record, link) {
                        self.report.stats.unchanged += 1;
                        continue;
                    }
                    // Decided again from its content, as a newer version:
                    // the writes of the old one did not happen, and their
                    // idempotency keys are taken.
                    if let Some(seen) = link.side(src).updated_at {
                        record.updated_at = record
                            .updated_at
                            .max(seen + chrono::Duration::microseconds(1));
                    }
                }
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
                None => {
                    let parent = match &record.parent_id {
                        Some(parent) if entity != EntityKind::Contact => {
                            match parents.get(parent) {
                                Some(parent) => Some(parent.clone()),
                                None => {
                                    self.report.stats.orphans += 1;
                                    continue;
                                }
                            }
                        }
                        _ => None,
                    };
                    self.unlinked(source, &record, canonical, parent).await?
                }
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
        let target_id = link.side(target).id.clone();
        let caps = self.pair.connector(target).capabilities().of(link.entity);
        let now = Utc::now();
        self.changeset.links.push(LinkWrite::Update(LinkUpdate {
            id: link.id,
            deleted_at: Change::Set(now),
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
        let Some(target_id) = target_id else {
            return Ok(());
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
            target_id: Some(target_id),
            source_id: link.side(gone).id.clone(),
            parent_id: link.side(target).parent_id.clone(),
            payload: &payload,
            note: None,
        });
        Ok(())
    }

    // ------------------------------------------------------------------

    /// The canonical form of a record, or `None` after dead-lettering it.
    async fn canonical(
        &mut self,
        role: Side,
        record: &Record,
        link: Option<&Link>,
    ) -> Result<Option<Canonical>, EngineError> {
        match self
            .pair
            .settings
            .map
            .to_canonical(record.entity, role, &record.fields)
        {
            Ok(canonical) => Ok(Some(canonical)),
            Err(error) => {
                let reason = format!(
                    "side `{}`, {} {}: {error}",
                    self.pair.connector(role).side(),
                    record.entity,
                    record.id
                );
                self.dead_letter(
                    role,
                    record.entity,
                    Some(record.id.clone()),
                    DeadLetterStage::Map,
                    reason,
                    Some(Value::Object(record.fields.clone())),
                )
                .await?;
                // This version is handled (dead-lettered): re-reads skip it.
                if let Some(link) = link {
                    let mut update = LinkUpdate {
                        id: link.id,
                        ..LinkUpdate::default()
                    };
                    *side_patch(&mut update, role) = SidePatch {
                        updated_at: Some(record.updated_at),
                        ..SidePatch::default()
                    };
                    self.changeset.links.push(LinkWrite::Update(update));
                }
                Ok(None)
            }
        }
    }

    async fn dead_letter(
        &mut self,
        role: Side,
        entity: EntityKind,
        record_id: Option<String>,
        stage: DeadLetterStage,
        reason: String,
        payload: Option<Value>,
    ) -> Result<(), EngineError> {
        let side = role;
        if let Some(id) = &record_id {
            let key = (side, entity, id.clone(), reason.clone());
            if self.dead_in_flight.contains(&key)
                || self
                    .store
                    .has_open_dead_letter(self.name(), side, entity, id, &reason)
                    .await?
            {
                return Ok(());
            }
            self.dead_lettered.insert(key);
        }
        tracing::warn!(
            pair = %self.name(),
            side = %self.pair.connector(role).side(),
            entity = %entity,
            record = record_id.as_deref().unwrap_or("-"),
            reason = %reason,
            "record dead-lettered"
        );
        self.report.stats.dead_letters += 1;
        let mut entry = NewJournalEntry::new(self.name(), entity, JournalAction::DeadLettered);
        match side {
            crate::domain::Side::Ghl => entry.a_id = record_id.clone(),
            crate::domain::Side::App => entry.b_id = record_id.clone(),
        }
        entry.detail = Some(reason.clone());
        self.changeset.journal.push(entry);
        self.changeset.dead_letters.push(NewDeadLetter {
            pair: self.name().to_owned(),
            side,
            entity,
            record_id,
            outbox_id: None,
            stage,
            reason,
            payload,
        });
        Ok(())
    }

    fn remember_contact(&mut self, source: Side, id: &str, link: &Link) {
        self.contacts.insert(
            (source, id.to_owned()),
            ContactRef {
                other_id: link.side(source.other()).id.clone(),
            },
        );
    }

    /// The links of the contacts owning these children, from this batch or
    /// the mirror.
    async fn parent_links(
        &mut self,
        source: Side,
        records: &[Record],
    ) -> Result<HashMap<String, ContactRef>, EngineError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        for parent in records.iter().filter_map(|r| r.parent_id.as_ref()) {
            match self.contacts.get(&(source, parent.clone())) {
                Some(contact) => {
                    found.insert(parent.clone(), contact.clone());
                }
                None => missing.push(parent.clone()),
            }
        }
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            let links = self
                .store
                .links_by_side_ids(self.name(), EntityKind::Contact, source, &missing)
                .await?;
            for (id, link) in links {
                if link.deleted_at.is_none() {
                    found.insert(
                        id,
                        ContactRef {
                            other_id: link.side(source.other()).id.clone(),
                        },
                    );
                }
            }
        }
        Ok(found)
    }

    /// A changed record that has a link: merge it with the other side's
    /// current state against the base snapshot.
    async fn linked(
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
        *side_patch(&mut update, source) = SidePatch {
            updated_at: Some(record.updated_at),
            ..SidePatch::default()
        };

        // Nothing this side feeds differs from the base: our own write
        // coming back, or an edit of unmapped fields. Never a write.
        let unchanged = agrees_with_base(self.pair, entity, source, &canonical, &base);
        if unchanged && link.side(other).id.is_some() {
            self.report.stats.echoes += 1;
            self.changeset.links.push(LinkWrite::Update(update));
            let mut entry = self.journal(entity, JournalAction::SkippedEcho, link);
            entry.direction = Some(Direction::towards(other));
            self.changeset.journal.push(entry);
            return Ok(());
        }

        // The other side as it is now, so that its own edits since the base
        // are merged, not overwritten.
        let other_record = match &link.side(other).id {
            None => None,
            Some(other_id) => {
                let parent = link.side(other).parent_id.as_deref();
                match self
                    .pair
                    .connector(other)
                    .get(entity, other_id, parent)
                    .await
                {
                    Ok(Some(found)) => Some(found),
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
                        self.changeset.links.push(LinkWrite::Update(update));
                        return Ok(());
                    }
                    Err(error) if error.is_record_error() => {
                        self.changeset.links.push(LinkWrite::Update(update));
                        return self
                            .dead_letter(
                                other,
                                entity,
                                Some(other_id.clone()),
                                DeadLetterStage::Read,
                                error.to_string(),
                                None,
                            )
                            .await;
                    }
                    Err(error) => return Err(error.into()),
                }
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
            side_patch(&mut update, other).updated_at = Some(found.updated_at);
        }
        let merged = merge_roles(
            self.pair,
            entity,
            Some(&base),
            (source, &canonical, record.updated_at),
            other_canonical
                .as_ref()
                .zip(other_record.as_ref().map(|r| r.updated_at)),
        );
        let ids = Ids {
            source,
            source_id: record.id.clone(),
            updated_at: record.updated_at,
            other_id: link.side(other).id.clone(),
            ghl_parent: link.a.parent_id.clone(),
            app_parent: link.b.parent_id.clone(),
        };
        let current = Sides::of(source, Some(&canonical), other_canonical.as_ref());
        self.settle(
            LinkRef::Existing(link.id),
            Some(&base),
            entity,
            (&merged, current),
            &ids,
            update,
        );
        Ok(())
    }

    /// A changed record without a link: link it to its match on the other
    /// side, or plan its creation there.
    async fn unlinked(
        &mut self,
        source: Side,
        record: &Record,
        canonical: Canonical,
        parent: Option<ContactRef>,
    ) -> Result<(), EngineError> {
        let entity = record.entity;
        let other = source.other();
        if entity == EntityKind::Contact {
            if let Some(found) = self.find_match(source, &canonical).await? {
                return self.link_match(source, record, canonical, found).await;
            }
        }
        let caps = self.pair.connector(other).capabilities().of(entity);
        let flows = self
            .pair
            .settings
            .map
            .fields_of(entity)
            .any(|f| f.flow.reads_from(source) && f.flow.writes_to(other));
        if !caps.create || !flows {
            // One-way the other way, or a side that cannot hold it.
            self.report.stats.filtered += 1;
            return Ok(());
        }
        let merged = merge_roles(
            self.pair,
            entity,
            None,
            (source, &canonical, record.updated_at),
            None,
        );
        let other_parent = parent.and_then(|p| p.other_id);
        let local_ref = self.insert_link(
            source,
            record,
            LinkSide {
                id: None,
                parent_id: other_parent.clone(),
                updated_at: None,
            },
        );
        let ids = Ids {
            source,
            source_id: record.id.clone(),
            updated_at: record.updated_at,
            other_id: None,
            ghl_parent: if source == Side::Ghl {
                record.parent_id.clone()
            } else {
                other_parent.clone()
            },
            app_parent: if source == Side::App {
                record.parent_id.clone()
            } else {
                other_parent
            },
        };
        self.settle(
            LinkRef::New(local_ref),
            None,
            entity,
            (&merged, Sides::of(source, Some(&canonical), None)),
            &ids,
            LinkUpdate::default(),
        );
        Ok(())
    }

    /// The other side's contact that is verifiably the person `canonical`
    /// describes (`matching`): found by a match key this pair maps, and not
    /// somebody else who shares a phone with it.
    async fn find_match(
        &mut self,
        source: Side,
        canonical: &Canonical,
    ) -> Result<Option<Record>, EngineError> {
        match matching::search(self.pair, source.other(), canonical).await? {
            Search::Found(verified) => Ok(Some(verified.record)),
            Search::Nothing { .. } => Ok(None),
        }
    }

    /// Links a new record to the other side's record with the same match
    /// key, merging the two as records that never agreed (no base).
    async fn link_match(
        &mut self,
        source: Side,
        record: &Record,
        canonical: Canonical,
        found: Record,
    ) -> Result<(), EngineError> {
        let entity = record.entity;
        let other = source.other();
        let claim = (entity, other, found.id.clone());
        let found_link = if self.is_claimed(&claim) {
            None
        } else {
            self.store
                .link_by_side_id(self.name(), entity, other, &found.id)
                .await?
        };
        if found_link
            .as_ref()
            .is_some_and(|l| l.deleted_at.is_none() && l.side(source).id.is_none())
        {
            // `found` is linked but has no record on this side yet: its
            // create here is outstanding (its answer was lost, or we were
            // killed before recording it), and this record is that create
            // coming back. The writer's retry finds it by match key and
            // links it; it is no duplicate to dead-letter.
            tracing::debug!(pair = %self.name(), record = %record.id, matched = %found.id, "our own create, not recorded yet");
            self.report.stats.echoes += 1;
            return Ok(());
        }
        if let Some(link) = found_link
            .as_ref()
            .filter(|l| l.side(source).id.as_deref() == Some(record.id.as_str()))
        {
            // `found` is linked to this very record: the writer recorded
            // our create of it after this batch read its links. Decide it
            // as the linked record it now is (an echo unless edited since).
            if already_decided(link, source, record) {
                self.report.stats.unchanged += 1;
                return Ok(());
            }
            return self.linked(source, record, canonical, link).await;
        }
        let linked_elsewhere = self.is_claimed(&claim) || found_link.is_some();
        if linked_elsewhere {
            let reason = format!(
                "{entity} {} on side `{}` has the same match key as {entity} {} on side `{}`, \
                 which is already linked to another record: not linking or creating a duplicate; \
                 merge the duplicates on side `{}`",
                record.id,
                self.pair.connector(source).side(),
                found.id,
                self.pair.connector(other).side(),
                self.pair.connector(source).side(),
            );
            return self
                .dead_letter(
                    source,
                    entity,
                    Some(record.id.clone()),
                    DeadLetterStage::Map,
                    reason,
                    Some(Value::Object(record.fields.clone())),
                )
                .await;
        }
        let Some(found_canonical) = self.canonical(other, &found, None).await? else {
            return Ok(());
        };
        self.claimed.insert(claim);
        self.report.stats.linked += 1;
        let merged = merge_roles(
            self.pair,
            entity,
            None,
            (source, &canonical, record.updated_at),
            Some((&found_canonical, found.updated_at)),
        );
        let local_ref = self.insert_link(
            source,
            record,
            LinkSide {
                id: Some(found.id.clone()),
                parent_id: None,
                updated_at: Some(found.updated_at),
            },
        );
        let ids = Ids {
            source,
            source_id: record.id.clone(),
            updated_at: record.updated_at,
            other_id: Some(found.id),
            ghl_parent: None,
            app_parent: None,
        };
        let current = Sides::of(source, Some(&canonical), Some(&found_canonical));
        self.settle(
            LinkRef::New(local_ref),
            None,
            entity,
            (&merged, current),
            &ids,
            LinkUpdate::default(),
        );
        Ok(())
    }

    /// Inserts the link of a record first seen on `source`, with `other`
    /// as its state on the other side; a contact is remembered for its
    /// children in this batch. Returns the link's local reference.
    fn insert_link(&mut self, source: Side, record: &Record, other: LinkSide) -> u32 {
        let local_ref = self.next_ref();
        if record.entity == EntityKind::Contact {
            self.contacts.insert(
                (source, record.id.clone()),
                ContactRef {
                    other_id: other.id.clone(),
                },
            );
        }
        let this = LinkSide {
            id: Some(record.id.clone()),
            parent_id: record.parent_id.clone(),
            updated_at: Some(record.updated_at),
        };
        let (a, b) = match source {
            Side::Ghl => (this, other),
            Side::App => (other, this),
        };
        self.changeset.links.push(LinkWrite::Insert {
            local_ref,
            link: NewLink {
                pair: self.name().to_owned(),
                entity: record.entity,
                a,
                b,
                snapshot: snapshot::empty(),
                deleted_at: None,
            },
        });
        local_ref
    }

    /// Turns a merge into link, outbox, conflict and journal rows.
    fn settle(
        &mut self,
        link: LinkRef,
        base: Option<&Canonical>,
        entity: EntityKind,
        (merged, current): (&Merge, Sides<'_>),
        ids: &Ids,
        mut update: LinkUpdate,
    ) {
        let map = &self.pair.settings.map;
        for conflict in &merged.conflicts {
            self.report.stats.conflicts += 1;
            self.changeset.conflicts.push(NewConflict {
                pair: self.name().to_owned(),
                entity,
                link,
                field: conflict.field.clone(),
                base_value: conflict.base.clone(),
                a_value: conflict.ghl.clone(),
                b_value: conflict.app.clone(),
            });
        }
        if !merged.conflicts.is_empty() {
            let mut opened =
                NewJournalEntry::new(self.name(), entity, JournalAction::ConflictOpened);
            opened.link = Some(link);
            ids.fill(&mut opened);
            opened.fields = merged.conflicts.iter().map(|c| c.field.clone()).collect();
            self.changeset.journal.push(opened);
        }

        let mut planned = false;
        for target in Side::BOTH {
            let writes = merged.writes_to(target);
            if writes.is_empty() {
                continue;
            }
            let target_exists = if target == ids.source {
                true
            } else {
                ids.other_id.is_some()
            };
            let caps = self.pair.connector(target).capabilities().of(entity);
            let creating = !target_exists && base.is_none() && matches!(link, LinkRef::New(_));
            let (op, allowed) = if creating {
                (OutboxOp::Create, caps.create)
            } else {
                (OutboxOp::Update, caps.update)
            };
            if !allowed {
                continue;
            }
            // Mapped now so that a record whose values the target cannot
            // take is dead-lettered here; the writer maps them again from
            // the payload when the write is due.
            match map.to_native(entity, target, writes) {
                Ok(_) => {}
                Err(error) => {
                    let reason = format!(
                        "side `{}`, {entity} {}: {error}",
                        self.pair.connector(target).side(),
                        ids.source_id
                    );
                    self.report.stats.dead_letters += 1;
                    self.changeset.dead_letters.push(NewDeadLetter {
                        pair: self.name().to_owned(),
                        side: target,
                        entity,
                        record_id: Some(ids.source_id.clone()),
                        outbox_id: None,
                        stage: DeadLetterStage::Map,
                        reason,
                        payload: serde_json::to_value(writes).ok(),
                    });
                    continue;
                }
            }
            let target_id = if target == ids.source {
                Some(ids.source_id.clone())
            } else {
                ids.other_id.clone()
            };
            let parent = match target {
                Side::Ghl => ids.ghl_parent.clone(),
                Side::App => ids.app_parent.clone(),
            };
            let key = change_key(
                self.name(),
                entity,
                ids.source,
                &ids.source_id,
                ids.updated_at,
                op,
                target,
            );
            let expect = current.get(target).map(|now| {
                writes
                    .keys()
                    .filter_map(|f| Some((f.clone(), now.get(f)?.clone())))
                    .collect()
            });
            let payload = WritePayload {
                fields: Map::new(),
                snapshot: Some(merged.merged.clone()),
                changed: writes.keys().cloned().collect(),
                tag: None,
                expect,
            };
            self.enqueue(OutboxWrite {
                pair: self.name(),
                entity,
                link,
                target,
                op,
                key,
                target_id,
                source_id: Some(ids.source_id.clone()),
                parent_id: parent,
                payload: &payload,
                note: None,
            });
            planned = true;
        }
        if !planned {
            // Nothing to write (the planned rows say what changed when
            // there is): the change is still part of the record's history.
            let mut seen = NewJournalEntry::new(self.name(), entity, JournalAction::Seen);
            seen.link = Some(link);
            ids.fill(&mut seen);
            seen.fields = merged.changed.clone();
            seen.direction = Some(Direction::towards(ids.source.other()));
            self.changeset.journal.push(seen);
        }
        match link {
            LinkRef::Existing(_) => {
                if !planned && base != Some(&merged.merged) {
                    update.snapshot = Some(snapshot::of(&merged.merged));
                }
                self.changeset.links.push(LinkWrite::Update(update));
            }
            LinkRef::New(local_ref) => {
                if !planned {
                    // Linked by match key with nothing to write: the
                    // sides agree now.
                    if let Some(LinkWrite::Insert { link, .. }) =
                        self.changeset.links.iter_mut().rev().find(
                            |w| matches!(w, LinkWrite::Insert { local_ref: r, .. } if *r == local_ref),
                        )
                    {
                        link.snapshot = snapshot::of(&merged.merged);
                    }
                }
            }
        }
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

/// The ids a decision's rows carry.
struct Ids {
    source: Side,
    source_id: String,
    updated_at: DateTime<Utc>,
    other_id: Option<String>,
    ghl_parent: Option<String>,
    app_parent: Option<String>,
}

impl Ids {
    fn fill(&self, entry: &mut NewJournalEntry) {
        let (ghl, app) = match self.source {
            Side::Ghl => (Some(self.source_id.clone()), self.other_id.clone()),
            Side::App => (self.other_id.clone(), Some(self.source_id.clone())),
        };
        entry.a_id = ghl;
        entry.b_id = app;
    }
}

/// Each side's canonical record as the decision saw it (none: not there,
/// or not read).
#[derive(Clone, Copy)]
struct Sides<'c> {
    ghl: Option<&'c Canonical>,
    app: Option<&'c Canonical>,
}

impl<'c> Sides<'c> {
    fn of(source: Side, this: Option<&'c Canonical>, that: Option<&'c Canonical>) -> Self {
        match source {
            Side::Ghl => Sides {
                ghl: this,
                app: that,
            },
            Side::App => Sides {
                ghl: that,
                app: this,
            },
        }
    }

    fn get(self, role: Side) -> Option<&'c Canonical> {
        match role {
            Side::Ghl => self.ghl,
            Side::App => self.app,
        }
    }
}

/// Whether `record`, read from side `src`, is a version its link has
/// already taken in (or the link is a tombstone): a re-read, not a change.
fn already_decided(link: &Link, src: Side, record: &Record) -> bool {
    let seen = link.side(src).updated_at;
    link.deleted_at.is_some() || seen.is_some_and(|seen| seen >= record.updated_at)
}

/// Whether every field `source` feeds holds its base value: nothing of
/// this record is a change (our own write coming back, or an edit of
/// unmapped fields).
fn agrees_with_base(
    pair: &PairRuntime,
    entity: EntityKind,
    source: Side,
    canonical: &Canonical,
    base: &Canonical,
) -> bool {
    pair.settings
        .map
        .fields_of(entity)
        .filter(|f| f.flow.reads_from(source))
        .all(|f| canonical.get(&f.name) == base.get(&f.name))
}

/// The patch of `role`'s side of a link update.
fn side_patch(update: &mut LinkUpdate, role: Side) -> &mut SidePatch {
    match role {
        Side::Ghl => &mut update.a,
        Side::App => &mut update.b,
    }
}

/// [`merge`] with the sides given by role.
fn merge_roles(
    pair: &PairRuntime,
    entity: EntityKind,
    base: Option<&Canonical>,
    source: (Side, &Canonical, DateTime<Utc>),
    other: Option<(&Canonical, DateTime<Utc>)>,
) -> Merge {
    let (role, canonical, updated_at) = source;
    let this = Some(SideState {
        canonical,
        updated_at,
    });
    let that = other.map(|(canonical, updated_at)| SideState {
        canonical,
        updated_at,
    });
    let sides = match role {
        Side::Ghl => PerSide::new(this, that),
        Side::App => PerSide::new(that, this),
    };
    merge(
        &pair.settings.map,
        entity,
        pair.settings.default_policy,
        base,
        sides,
    )
}
