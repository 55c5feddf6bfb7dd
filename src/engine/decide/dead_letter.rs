//! The records a decision cannot take: unreadable, unmappable, or a
//! duplicate of a record already linked, set aside as dead letters (once
//! each, with a `dead_lettered` journal row) until an operator retries or
//! drops them; and the merged values a target side cannot take.

use std::collections::HashSet;

use serde_json::Value;

use super::Decider;
use crate::connector::Record;
use crate::domain::{EntityKind, Side};
use crate::engine::EngineError;
use crate::mapping::{Canonical, MapError};
use crate::store::{
    DeadLetterStage, JournalAction, Link, LinkUpdate, LinkWrite, NewDeadLetter, NewJournalEntry,
};

/// A dead letter as the decider recognises it again: side, entity, record
/// id and reason.
pub(super) type DeadLetterKey = (Side, EntityKind, String, String);

impl Decider<'_> {
    /// The records among `records` (read from `source`, without a link)
    /// whose very version an open dead letter holds: the letter kept the
    /// record's fields, and they are the same now. A poll reads such a
    /// record again on every pass inside its overlap; deciding it again
    /// would cost the same match lookups and end in the same letter, so
    /// it is skipped before any request. A version changed since (other
    /// fields, or another change time, which the fields hold) is decided.
    /// Reconciliation and deciding again still decide it: they are the
    /// paths that repair what changed elsewhere (an operator's merge of
    /// the duplicates) and an operator's retry.
    pub(super) async fn known_dead(
        &self,
        source: Side,
        entity: EntityKind,
        records: &[&Record],
    ) -> Result<HashSet<String>, EngineError> {
        if records.is_empty() || self.compare_content || self.again {
            return Ok(HashSet::new());
        }
        let ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let letters = self
            .store
            .open_dead_letter_payloads(self.name(), source, entity, &ids)
            .await?;
        Ok(records
            .iter()
            .filter(|record| {
                letters.iter().any(|(id, payload)| {
                    *id == record.id
                        && matches!(payload, Value::Object(fields) if *fields == record.fields)
                })
            })
            .map(|record| record.id.clone())
            .collect())
    }

    /// The canonical form of a record, or `None` after dead-lettering it.
    pub(super) async fn canonical(
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
                    update.side_mut(role).saw(record);
                    self.changeset.links.push(LinkWrite::Update(update));
                }
                Ok(None)
            }
        }
    }

    /// Dead-letters a record (or a read that named none), unless the same
    /// letter is open already: in the mirror, or in the page whose commit
    /// is in flight.
    pub(super) async fn dead_letter(
        &mut self,
        side: Side,
        entity: EntityKind,
        record_id: Option<String>,
        stage: DeadLetterStage,
        reason: String,
        payload: Option<Value>,
    ) -> Result<(), EngineError> {
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
            side = %self.pair.connector(side).side(),
            entity = %entity,
            record = record_id.as_deref().unwrap_or("-"),
            reason = %reason,
            "record dead-lettered"
        );
        self.report.stats.dead_letters += 1;
        let mut entry = NewJournalEntry::new(self.name(), entity, JournalAction::DeadLettered);
        entry.set_id(side, record_id.clone());
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

    /// The merged values `target` should get cannot be mapped to its
    /// fields: the record's write there is a dead letter instead.
    pub(super) fn unwritable(
        &mut self,
        target: Side,
        entity: EntityKind,
        source_id: &str,
        writes: &Canonical,
        error: MapError,
    ) {
        let reason = format!(
            "side `{}`, {entity} {source_id}: {error}",
            self.pair.connector(target).side(),
        );
        self.report.stats.dead_letters += 1;
        self.changeset.dead_letters.push(NewDeadLetter {
            pair: self.name().to_owned(),
            side: target,
            entity,
            record_id: Some(source_id.to_owned()),
            outbox_id: None,
            stage: DeadLetterStage::Map,
            reason,
            payload: serde_json::to_value(writes).ok(),
        });
    }
}
