//! A changed record without a link: which record does it link to? A
//! contact is linked to the other side's contact that verifiably is the
//! same person (by a match key this pair maps); anything else is created
//! on the other side, with the link that will hold both ids.

use std::collections::HashMap;

use serde_json::Value;

use super::reread::{already_decided, seen_side};
use super::settle::{dated, merge_sides, Ids, Settlement};
use super::{from_source, Decider};
use crate::connector::Record;
use crate::domain::{EntityKind, PerSide, Side};
use crate::engine::matching::{self, Search};
use crate::engine::{snapshot, EngineError};
use crate::mapping::Canonical;
use crate::store::{
    DeadLetterStage, Link, LinkRef, LinkSide, LinkUpdate, LinkWrite, NewLink, OutboxItem, OutboxOp,
    OutboxStatus,
};

/// A contact decided on in this batch: children read later in the same
/// batch find their parent here before its link is committed.
#[derive(Debug, Clone)]
pub(super) struct ContactRef {
    /// The contact's id on the other side (none while its create is
    /// pending there; the writer then finds it when the child is written).
    pub other_id: Option<String>,
}

/// A new record and the other side's record it verifiably matched.
struct Matched<'r> {
    source: Side,
    record: &'r Record,
    canonical: &'r Canonical,
    found: Record,
    found_canonical: &'r Canonical,
}

/// What the mirror says of the other side's record a new record matched.
enum MatchedLink {
    /// Linked to nothing, and claimed by nothing in this batch.
    Free,
    /// Linked, without a record on this side yet: its create here is
    /// outstanding, and the new record may be that create coming back.
    PendingCreate(Box<Link>),
    /// Linked to this very record: the writer recorded our create of it
    /// after this batch read its links.
    ThisRecord(Box<Link>),
    /// Linked (or claimed by this batch) to another record.
    Elsewhere,
}

impl Decider<'_> {
    pub(super) fn remember_contact(&mut self, source: Side, id: &str, link: &Link) {
        self.contacts.insert(
            (source, id.to_owned()),
            ContactRef {
                other_id: link.side(source.other()).id.clone(),
            },
        );
    }

    /// The links of the contacts owning these children, from this batch or
    /// the mirror.
    pub(super) async fn parent_links(
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

    /// A changed record without a link: link it to its match on the other
    /// side, or plan its creation there.
    pub(super) async fn unlinked(
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
        let merged = merge_sides(
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
                ..LinkSide::default()
            },
        );
        let settlement = Settlement {
            link: LinkRef::New(local_ref),
            base: None,
            entity,
            merged: &merged,
            current: from_source(source, Some(&canonical), None),
            seen_at: from_source(source, dated(record), None),
            ids: Ids {
                source,
                source_id: record.id.clone(),
                updated_at: record.updated_at,
                other_id: None,
                parents: from_source(source, record.parent_id.clone(), other_parent),
            },
        };
        self.settle(&settlement, LinkUpdate::default());
        Ok(())
    }

    /// The other side's contact that is verifiably the person `canonical`
    /// describes (`matching`): found by a match key this pair maps, and not
    /// somebody else who shares a phone with it. Candidates come from the
    /// other side's listing when this reconciliation holds one
    /// (`engine/listed.rs`), else from a lookup.
    async fn find_match(
        &mut self,
        source: Side,
        canonical: &Canonical,
    ) -> Result<Option<Record>, EngineError> {
        let other = source.other();
        let pair = self.pair;
        let searched = match self.listed.as_mut() {
            Some(listed) if listed.answers_for(other) => {
                listed.refresh(pair).await?;
                listed.search(pair, canonical).await?
            }
            _ => matching::search(pair, other, canonical).await?,
        };
        match searched {
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
        let claim = (record.entity, source.other(), found.id.clone());
        match self.matched_link(source, record, &found, &claim).await? {
            MatchedLink::PendingCreate(link) => {
                if self.pending_create(&link, source).await?.is_some() {
                    // `found`'s create here is still in the outbox (its
                    // answer was lost, or we were killed before recording
                    // it), and this record is that create coming back. The
                    // writer's retry finds it by match key and links it; it
                    // is no duplicate to dead-letter.
                    tracing::debug!(pair = %self.name(), record = %record.id, matched = %found.id, "our own create, not recorded yet");
                    self.report.stats.echoes += 1;
                    return Ok(());
                }
                // The create was given up (dead-lettered): nothing will
                // record this record, made here by a user (or by an attempt
                // whose answer was lost). It is the same person, verified:
                // it completes the link, merged without a base (found by
                // the deterministic simulation, issue 16: such a record
                // stayed unsynced, named by no dead letter).
                let Some(found_canonical) = self.canonical(source.other(), &found, None).await?
                else {
                    return Ok(());
                };
                self.claimed.insert(claim);
                self.complete_link(source, record, &canonical, found, &found_canonical, &link);
                Ok(())
            }
            MatchedLink::ThisRecord(link) => {
                // `found` is linked to this very record: the writer recorded
                // our create of it after this batch read its links. Decide it
                // as the linked record it now is (an echo unless edited since).
                if already_decided(&link, source, record) {
                    self.report.stats.unchanged += 1;
                    return Ok(());
                }
                self.linked(source, record, canonical, &link).await
            }
            MatchedLink::Elsewhere => self.duplicate(source, record, &found).await,
            MatchedLink::Free => {
                let Some(found_canonical) = self.canonical(source.other(), &found, None).await?
                else {
                    return Ok(());
                };
                self.claimed.insert(claim);
                self.link_to(source, record, &canonical, found, &found_canonical);
                Ok(())
            }
        }
    }

    /// Whether (and to what) the other side's record `found` is linked.
    async fn matched_link(
        &self,
        source: Side,
        record: &Record,
        found: &Record,
        claim: &(EntityKind, Side, String),
    ) -> Result<MatchedLink, EngineError> {
        if self.is_claimed(claim) {
            return Ok(MatchedLink::Elsewhere);
        }
        let Some(link) = self
            .store
            .link_by_side_id(self.name(), record.entity, source.other(), &found.id)
            .await?
        else {
            return Ok(MatchedLink::Free);
        };
        let here = link.side(source).id.as_deref();
        Ok(if link.deleted_at.is_none() && here.is_none() {
            MatchedLink::PendingCreate(Box::new(link))
        } else if here == Some(record.id.as_str()) {
            MatchedLink::ThisRecord(Box::new(link))
        } else {
            MatchedLink::Elsewhere
        })
    }

    /// A new record whose match on the other side is linked to another
    /// record: two records of its side are one person. Neither linked nor
    /// created (a duplicate), but dead-lettered for an operator to merge.
    async fn duplicate(
        &mut self,
        source: Side,
        record: &Record,
        found: &Record,
    ) -> Result<(), EngineError> {
        let entity = record.entity;
        let reason = format!(
            "{entity} {} on side `{}` has the same match key as {entity} {} on side `{}`, \
             which is already linked to another record: not linking or creating a duplicate; \
             merge the duplicates on side `{}`",
            record.id,
            self.pair.connector(source).side(),
            found.id,
            self.pair.connector(source.other()).side(),
            self.pair.connector(source).side(),
        );
        self.dead_letter(
            source,
            entity,
            Some(record.id.clone()),
            DeadLetterStage::Map,
            reason,
            Some(Value::Object(record.fields.clone())),
        )
        .await
    }

    /// The newest create of `link`'s record on `side` still in the outbox,
    /// for a writer to finish.
    pub(super) async fn pending_create(
        &self,
        link: &Link,
        side: Side,
    ) -> Result<Option<OutboxItem>, EngineError> {
        Ok(self
            .store
            .outbox_for_link(link.id)
            .await?
            .into_iter()
            .rev()
            .find(|item| {
                item.op == OutboxOp::Create
                    && item.target_side == side
                    && item.status == OutboxStatus::Pending
            }))
    }

    /// Puts `record` on `source`'s side of `link`, whose create there was
    /// given up, and settles the merge of the two records as records that
    /// never agreed.
    fn complete_link(
        &mut self,
        source: Side,
        record: &Record,
        canonical: &Canonical,
        found: Record,
        found_canonical: &Canonical,
        link: &Link,
    ) {
        let mut update = LinkUpdate {
            id: link.id,
            ..LinkUpdate::default()
        };
        let this = update.side_mut(source);
        this.id = Some(record.id.clone());
        this.saw(record);
        let matched = Matched {
            source,
            record,
            canonical,
            found,
            found_canonical,
        };
        self.settle_match(matched, LinkRef::Existing(link.id), update);
    }

    /// Links `record` to `found`, its verified match that nothing links
    /// yet, and settles the merge of the two.
    fn link_to(
        &mut self,
        source: Side,
        record: &Record,
        canonical: &Canonical,
        found: Record,
        found_canonical: &Canonical,
    ) {
        let local_ref = self.insert_link(
            source,
            record,
            LinkSide {
                parent_id: None,
                ..seen_side(&found)
            },
        );
        let matched = Matched {
            source,
            record,
            canonical,
            found,
            found_canonical,
        };
        self.settle_match(matched, LinkRef::New(local_ref), LinkUpdate::default());
    }

    /// Settles the merge of a record and its verified match on the other
    /// side, as records that never agreed (no base), on `link`.
    fn settle_match(&mut self, m: Matched<'_>, link: LinkRef, update: LinkUpdate) {
        self.report.stats.linked += 1;
        let merged = merge_sides(
            self.pair,
            m.record.entity,
            None,
            (m.source, m.canonical, m.record.updated_at),
            Some((m.found_canonical, m.found.updated_at)),
        );
        let settlement = Settlement {
            link,
            base: None,
            entity: m.record.entity,
            merged: &merged,
            current: from_source(m.source, Some(m.canonical), Some(m.found_canonical)),
            seen_at: from_source(m.source, dated(m.record), dated(&m.found)),
            ids: Ids {
                source: m.source,
                source_id: m.record.id.clone(),
                updated_at: m.record.updated_at,
                other_id: Some(m.found.id),
                parents: PerSide::default(),
            },
        };
        self.settle(&settlement, update);
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
        let this = seen_side(record);
        let sides = from_source(source, this, other);
        self.changeset.links.push(LinkWrite::Insert {
            local_ref,
            link: NewLink {
                pair: self.name().to_owned(),
                entity: record.entity,
                a: sides.ghl,
                b: sides.app,
                snapshot: snapshot::empty(),
                deleted_at: None,
            },
        });
        local_ref
    }
}
