//! The writer's creates: a record is made at most once, and a create never
//! ends on somebody else's record.
//!
//! - A create that may have been sent before (a retried attempt, a lease
//!   taken over from a killed writer, a dead letter retried by the
//!   operator) first looks for the record an earlier attempt made: a
//!   contact by its match keys, verified (`matching`); a task or note
//!   among its contact's children, by the values written.
//! - A create the side refuses as a duplicate (GHL's "This location does
//!   not allow duplicated contacts", an app's 409) is completed on the
//!   existing record only when that record verifies as the same person and
//!   is linked to nothing else. Another person sharing a phone number, or a
//!   record already linked, makes the write a dead letter that names both
//!   records and the shared key; nothing is overwritten.
//! - A create the side refuses for any other reason about the record may
//!   still have made it (GHL answers 422 and creates): it is looked for,
//!   as for a retried create, before the refusal is final.
//! - A record found either way that holds the planned values is ours (a
//!   lost answer); one that does not is linked as it is and merged with
//!   the source under the pair's policies, never overwritten (`adopt`).

use std::time::Duration;

use serde_json::{Map, Value};

use super::matching::{self, Search};
use super::outbox::{change_of_key, WritePayload};
use super::writer::{Failure, Written};
use super::{Engine, EngineError, PairRuntime};
use crate::connector::{ConnectorError, Record};
use crate::domain::EntityKind;
use crate::mapping::Canonical;
use crate::store::OutboxItem;

/// What a look for an existing record found.
enum Existing {
    /// Ours: complete the create on it.
    Found(Record),
    /// Nothing that is ours.
    Nothing,
    /// The write cannot go on (the side could not be asked, or the record
    /// found belongs to somebody else).
    Stop(Failure),
}

impl Engine {
    /// Performs the create of `item` (see the module docs).
    pub(super) async fn create(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
        payload: &WritePayload,
        fields: &Map<String, Value>,
        parent: Option<&str>,
    ) -> Result<Written, EngineError> {
        let target = item.target_side;
        let connector = pair.connector(target);
        let ours = payload.snapshot.clone().unwrap_or_default();
        if may_have_been_sent(item) {
            match self.find_ours(pair, item, payload, parent).await? {
                Existing::Found(record) => {
                    tracing::info!(found = %record.id, "an earlier attempt made the record; completing on it");
                    return Ok(adopt(pair, item, record, payload));
                }
                Existing::Nothing => {}
                Existing::Stop(failure) => return Ok(Written::Failed(failure)),
            }
        }
        match connector.create(item.entity, parent, fields).await {
            Ok(record) => Ok(Written::Done(Some(record))),
            Err(ConnectorError::Duplicate {
                existing_id,
                message,
                ..
            }) if item.entity == EntityKind::Contact => {
                let found = self
                    .refused_as_duplicate(pair, item, &ours, existing_id, &message, parent)
                    .await?;
                Ok(match found {
                    Existing::Found(record) => {
                        tracing::info!(found = %record.id, "refused as a duplicate of the same person; completing on that record");
                        adopt(pair, item, record, payload)
                    }
                    Existing::Nothing => Written::Failed(Failure::Retry {
                        reason: format!(
                            "{message}; no record holding its match keys can be found yet \
                             (the side's search may lag its writes)"
                        ),
                        after: Some(Duration::from_secs(10)),
                    }),
                    Existing::Stop(failure) => Written::Failed(failure),
                })
            }
            Err(error @ ConnectorError::Record { .. }) => {
                // A refused create may still have created (GHL's
                // `POST /contacts/` answers 422 and creates: field notes,
                // "Creates"): what it made is looked for before the
                // refusal is final, so the record is linked, not left
                // beside a dead letter.
                Ok(match self.find_ours(pair, item, payload, parent).await? {
                    Existing::Found(record) => {
                        tracing::info!(found = %record.id, error = %error, "the create was refused yet made the record; completing on it");
                        adopt(pair, item, record, payload)
                    }
                    Existing::Nothing | Existing::Stop(_) => Written::Failed(error.into()),
                })
            }
            Err(error) => Ok(Written::Failed(error.into())),
        }
    }

    /// The record an earlier attempt of this create made, if any.
    async fn find_ours(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
        payload: &WritePayload,
        parent: Option<&str>,
    ) -> Result<Existing, EngineError> {
        let target = item.target_side;
        if item.entity == EntityKind::Contact {
            let ours = payload.snapshot.clone().unwrap_or_default();
            return Ok(match matching::search(pair, target, &ours).await {
                Ok(Search::Found(verified)) => {
                    match self.linked_elsewhere(pair, item, &verified.record).await? {
                        // Somebody else's (a duplicate on the source side,
                        // linked first): not ours to complete on.
                        Some(_) => Existing::Nothing,
                        None => Existing::Found(verified.record),
                    }
                }
                Ok(Search::Nothing { .. }) => Existing::Nothing,
                Err(error) => Existing::Stop(looked_up_failed(error)),
            });
        }
        let Some(parent) = parent else {
            return Ok(Existing::Nothing);
        };
        let children = match pair.connector(target).children(item.entity, parent).await {
            Ok(children) => children,
            Err(error) => return Ok(Existing::Stop(looked_up_failed(error))),
        };
        let written = payload.writes();
        for child in children {
            let Ok(canonical) = pair
                .settings
                .map
                .to_canonical(item.entity, target, &child.fields)
            else {
                continue;
            };
            if holds(&canonical, &written)
                && self.linked_elsewhere(pair, item, &child).await?.is_none()
            {
                return Ok(Existing::Found(child));
            }
        }
        Ok(Existing::Nothing)
    }

    /// A contact create refused as a duplicate: the existing record, when
    /// it verifies as ours and is linked to nothing else.
    async fn refused_as_duplicate(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
        ours: &Canonical,
        existing_id: Option<String>,
        message: &str,
        parent: Option<&str>,
    ) -> Result<Existing, EngineError> {
        let target = item.target_side;
        let connector = pair.connector(target);
        let search = match existing_id {
            Some(id) => match connector.get(item.entity, &id, parent).await {
                Ok(Some(record)) => match matching::verify(pair, target, ours, record.clone()) {
                    Some(verified) => Search::Found(verified),
                    None => Search::Nothing {
                        someone_else: Some((
                            matching::shared_key(pair, target, ours, &record),
                            record,
                        )),
                    },
                },
                Ok(None) => Search::Nothing { someone_else: None },
                Err(error) => return Ok(Existing::Stop(looked_up_failed(error))),
            },
            None => match matching::search(pair, target, ours).await {
                Ok(search) => search,
                Err(error) => return Ok(Existing::Stop(looked_up_failed(error))),
            },
        };
        let source = pair.connector(target.other()).side();
        let source_id = source_id(item);
        Ok(match search {
            Search::Found(verified) => {
                match self.linked_elsewhere(pair, item, &verified.record).await? {
                    None => Existing::Found(verified.record),
                    Some(other) => Existing::Stop(Failure::Permanent(format!(
                        "side `{}` refused to create a contact for {source} contact {source_id} as a \
                         duplicate: {} contact {} has the same {}, and it is already linked to {source} \
                         contact {other}. Two records of side `{source}` are one person: merge them \
                         there, then retry this dead letter ({message})",
                        connector.side(),
                        connector.side(),
                        verified.record.id,
                        verified.key,
                    ))),
                }
            }
            Search::Nothing {
                someone_else: Some((key, record)),
            } => {
                let linked = match self.linked_elsewhere(pair, item, &record).await? {
                    Some(other) => format!(", linked to {source} contact {other}"),
                    None => String::new(),
                };
                Existing::Stop(Failure::Permanent(format!(
                    "side `{}` refused to create a contact for {source} contact {source_id} as a \
                     duplicate: its {key} is already used by {} contact {}{linked}, who is another \
                     person (a stronger match key differs). Nothing was overwritten. Give one of them \
                     another {key}, or let the location hold duplicate contacts, then retry this dead \
                     letter ({message})",
                    connector.side(),
                    connector.side(),
                    record.id,
                )))
            }
            Search::Nothing { someone_else: None } => Existing::Nothing,
        })
    }

    /// The other-side id of the link that already holds `record`, when that
    /// link is not the one this write completes.
    pub(super) async fn linked_elsewhere(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
        record: &Record,
    ) -> Result<Option<String>, EngineError> {
        let link = self
            .store
            .link_by_side_id(pair.name(), item.entity, item.target_side, &record.id)
            .await?;
        Ok(link.filter(|l| Some(l.id) != item.link_id).map(|l| {
            l.side(item.target_side.other())
                .id
                .clone()
                .unwrap_or_else(|| format!("(not created yet, link {})", l.id))
        }))
    }
}

/// Completes a create on the record found for it. When it holds the
/// planned values it is ours (an earlier attempt's, whose answer was
/// lost): done. Otherwise it is the same person (verified) holding values
/// no decision has seen: entered by a user while our create waited, or
/// ours edited since. Writing the planned values over it would clobber
/// them, so it is linked as it is, without a base (the two records never
/// agreed), and the writer decides the source again: every field the two
/// hold differently then goes through the pair's policies, journaled as
/// `settled` (found by the deterministic simulation, issue 16).
fn adopt(pair: &PairRuntime, item: &OutboxItem, record: Record, payload: &WritePayload) -> Written {
    let target = item.target_side;
    let holds = pair
        .settings
        .map
        .to_canonical(item.entity, target, &record.fields)
        .is_ok_and(|canonical| holds(&canonical, &payload.writes()));
    if holds {
        Written::Done(Some(record))
    } else {
        Written::Adopted(record)
    }
}

/// Whether an earlier attempt of this create may have reached the side:
/// a second claim (a retry, or a lease taken over after a crash), or an
/// item that failed before (a dead letter the operator re-queued keeps its
/// last error).
fn may_have_been_sent(item: &OutboxItem) -> bool {
    item.attempts > 1 || item.last_error.is_some()
}

/// A look-up before a create failed: the create waits (sending it blind
/// could duplicate), or dead-letters when the side refuses for good.
fn looked_up_failed(error: ConnectorError) -> Failure {
    match Failure::from(error) {
        Failure::Retry { reason, after } => Failure::Retry {
            reason: format!("looking for an earlier attempt's record before creating: {reason}"),
            after,
        },
        Failure::Permanent(reason) => Failure::Permanent(format!(
            "looking for an earlier attempt's record before creating: {reason}"
        )),
    }
}

/// Whether `record` holds every value of `written` (absent and null alike).
fn holds(record: &Canonical, written: &Canonical) -> bool {
    written
        .iter()
        .all(|(field, value)| record.get(field).unwrap_or(&Value::Null) == value)
}

fn source_id(item: &OutboxItem) -> String {
    change_of_key(&item.idempotency_key)
        .map(|(id, _)| id.to_owned())
        .unwrap_or_else(|| "(unknown)".to_owned())
}
