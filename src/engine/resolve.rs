//! An operator's decision on a parked conflict, carried out through the
//! normal write path: the chosen value is queued in the outbox for every
//! side that does not hold it yet (with an idempotency key, `planned`
//! journal rows and the record's new base snapshot), and the conflict is
//! marked resolved in the same transaction. When the writer completes a
//! write it stores that snapshot, so the field equals the base on both
//! sides and is not parked again.

use serde_json::Value;

use super::outbox::{resolution_key, OutboxWrite, WritePayload};
use super::{snapshot, Engine, PairRuntime};
use crate::connector::ConnectorError;
use crate::domain::Side;
use crate::mapping::{Canonical, FieldMap};
use crate::store::{
    Changeset, Conflict, ConflictStatus, Link, LinkRef, LinkUpdate, LinkWrite, OutboxOp, StoreError,
};

/// What the operator chose for the field.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    /// The value that side held when the conflict was parked (or last
    /// refreshed): what `conflicts show` displays.
    Take(Side),
    /// A value of the operator's own.
    Value(Value),
}

/// Why a conflict could not be resolved. Nothing was queued or changed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("conflict {id} does not exist (see `ghlsync conflicts list`)")]
    NotFound { id: i64 },
    #[error("conflict {id} is already resolved ({resolution}); nothing was changed")]
    AlreadyResolved { id: i64, resolution: String },
    #[error("conflict {id} belongs to pair `{pair}`, which is not configured any more")]
    PairGone { id: i64, pair: String },
    #[error("conflict {id}: its {entity} (link {link}) is gone from the mirror or deleted")]
    LinkGone {
        id: i64,
        entity: crate::domain::EntityKind,
        link: i64,
    },
    #[error("conflict {id}: field `{field}` is no longer mapped for {entity}s in pair `{pair}`")]
    FieldGone {
        id: i64,
        pair: String,
        entity: crate::domain::EntityKind,
        field: String,
    },
    #[error("conflict {id}: the value cannot be written to side `{side}`: {message}")]
    Map {
        id: i64,
        side: String,
        message: String,
    },
    #[error("conflict {id}: reading the record on side `{side}` failed: {source}")]
    Side {
        id: i64,
        side: String,
        #[source]
        source: ConnectorError,
    },
    #[error(transparent)]
    Store(StoreError),
}

/// What resolving did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Resolution {
    pub conflict: i64,
    pub pair: String,
    pub field: String,
    /// The value chosen (`null`: the field is cleared).
    pub value: Option<Value>,
    /// What was recorded as the conflict's resolution.
    pub resolution: String,
    /// Writes queued, per side name, with their outbox ids.
    pub queued: Vec<QueuedWrite>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QueuedWrite {
    pub side: String,
    pub outbox_id: Option<i64>,
    pub record_id: String,
}

/// A conflict being resolved, with what resolving it touches.
struct Parked<'e> {
    conflict: Conflict,
    pair: &'e PairRuntime,
    /// The conflict's link, live.
    link: Link,
    /// The field in conflict, as the pair maps it now.
    field: &'e FieldMap,
}

/// A write queued by a resolution: the side's name, the write's
/// idempotency key, and the record it writes.
type Queued = (String, String, String);

impl Engine {
    /// Resolves conflict `id` with `choice`: queues the writes and marks it
    /// resolved, atomically. The writes happen when the writer next runs
    /// (the daemon, or `sync --once`).
    pub async fn resolve_conflict(
        &self,
        id: i64,
        choice: Choice,
    ) -> Result<Resolution, ResolveError> {
        let parked = self.parked(id).await?;
        let (pair, field) = (parked.pair, parked.field);
        let (value, resolution) = chosen(&parked, &choice);

        // The new base: what both sides agree on once the writes are done.
        let mut base = snapshot::canonical(&parked.link.snapshot);
        match &value {
            Some(v) => base.insert(field.name.clone(), v.clone()),
            None => base.remove(&field.name),
        };

        let mut changeset = Changeset::default();
        let mut queued = Vec::new();
        for role in Side::BOTH {
            if let Some(write) = queue_write(&parked, role, &value, &base, &mut changeset).await? {
                queued.push(write);
            }
        }
        if queued.is_empty() {
            // Both sides already hold the chosen value: only the base moves.
            changeset.links.push(LinkWrite::Update(LinkUpdate {
                id: parked.link.id,
                snapshot: Some(snapshot::of(&base)),
                ..LinkUpdate::default()
            }));
        }
        let (_, receipt) = self
            .store
            .resolve_conflict_with(id, &resolution, &changeset)
            .await
            .map_err(|e| match e {
                StoreError::ConflictNotFound { id } => ResolveError::NotFound { id },
                StoreError::ConflictNotOpen { id } => ResolveError::AlreadyResolved {
                    id,
                    resolution: "by someone else just now".to_owned(),
                },
                other => ResolveError::Store(other),
            })?;
        if !queued.is_empty() {
            self.wake.notify_one();
        }
        tracing::info!(
            pair = %pair.name(),
            entity = %parked.conflict.entity,
            conflict = id,
            field = %field.name,
            resolution = %resolution,
            writes = queued.len(),
            "conflict resolved"
        );
        Ok(Resolution {
            conflict: id,
            pair: pair.name().to_owned(),
            field: field.name.clone(),
            value,
            resolution,
            queued: queued
                .into_iter()
                .map(|(side, key, record_id)| QueuedWrite {
                    side,
                    outbox_id: receipt.outbox_new.get(&key).copied(),
                    record_id,
                })
                .collect(),
        })
    }

    /// Conflict `id`, open, with its configured pair, its live link and the
    /// field as the pair maps it; or why it cannot be resolved.
    async fn parked(&self, id: i64) -> Result<Parked<'_>, ResolveError> {
        let conflict = self
            .store
            .conflict(id)
            .await
            .map_err(ResolveError::Store)?
            .ok_or(ResolveError::NotFound { id })?;
        if conflict.status == ConflictStatus::Resolved {
            return Err(already_resolved(&conflict));
        }
        let pair = self
            .pairs
            .iter()
            .find(|p| p.name() == conflict.pair)
            .ok_or_else(|| ResolveError::PairGone {
                id,
                pair: conflict.pair.clone(),
            })?;
        let link = self
            .store
            .link_by_id(conflict.link_id)
            .await
            .map_err(ResolveError::Store)?
            .filter(|l| l.deleted_at.is_none())
            .ok_or(ResolveError::LinkGone {
                id,
                entity: conflict.entity,
                link: conflict.link_id,
            })?;
        let entity = conflict.entity;
        let field = pair
            .settings
            .map
            .fields_of(entity)
            .find(|f| f.name == conflict.field)
            .ok_or_else(|| ResolveError::FieldGone {
                id,
                pair: pair.name().to_owned(),
                entity,
                field: conflict.field.clone(),
            })?;
        Ok(Parked {
            conflict,
            pair,
            link,
            field,
        })
    }
}

/// The value `choice` picks (`None`: the field is cleared), and the note
/// recorded as the conflict's resolution.
fn chosen(parked: &Parked<'_>, choice: &Choice) -> (Option<Value>, String) {
    match choice {
        Choice::Take(role) => {
            let value = parked.conflict.value_of(*role).clone();
            let side = parked.pair.connector(*role).side();
            let note = format!("took side `{side}` ({})", shown(&value));
            (value, note)
        }
        Choice::Value(v) => {
            let value = (!v.is_null()).then(|| v.clone());
            let note = format!("set to {}", shown(&value));
            (value, note)
        }
    }
}

/// Queues the write of `value` to the record on `role`'s side, with the
/// new `base` as its snapshot, unless the side does not take the field or
/// holds the value already.
async fn queue_write(
    parked: &Parked<'_>,
    role: Side,
    value: &Option<Value>,
    base: &Canonical,
    changeset: &mut Changeset,
) -> Result<Option<Queued>, ResolveError> {
    let Parked {
        conflict,
        pair,
        link,
        field,
    } = parked;
    let (id, entity) = (conflict.id, conflict.entity);
    let Some(record_id) = link.side(role).id.clone() else {
        return Ok(None);
    };
    let connector = pair.connector(role);
    let caps = connector.capabilities().of(entity);
    if !field.flow.writes_to(role) || !caps.update {
        return Ok(None);
    }
    let parent = link.side(role).parent_id.clone();
    let current = current_value(
        pair,
        role,
        entity,
        &record_id,
        parent.as_deref(),
        &field.name,
    )
    .await
    .map_err(|source| ResolveError::Side {
        id,
        side: connector.side().to_owned(),
        source,
    })?;
    if current == *value {
        return Ok(None);
    }
    let writes: Canonical = [(field.name.clone(), value.clone().unwrap_or(Value::Null))].into();
    let native = pair
        .settings
        .map
        .to_native(entity, role, &writes)
        .map_err(|e| ResolveError::Map {
            id,
            side: connector.side().to_owned(),
            message: e.to_string(),
        })?;
    let payload = WritePayload {
        fields: native,
        snapshot: Some(base.clone()),
        changed: vec![field.name.clone()],
        tag: None,
        // Withdrawn if the side is edited again before the write:
        // that edit is merged (and may park the field anew) rather
        // than overwritten.
        expect: Some(
            current
                .iter()
                .map(|v| (field.name.clone(), v.clone()))
                .collect(),
        ),
        other_writes: Vec::new(),
    };
    let key = resolution_key(pair.name(), entity, id, OutboxOp::Update, role);
    OutboxWrite {
        pair: pair.name(),
        entity,
        link: LinkRef::Existing(link.id),
        target: role,
        op: OutboxOp::Update,
        key: key.clone(),
        target_id: Some(record_id.clone()),
        source_id: link.side(role.other()).id.clone(),
        parent_id: parent,
        payload: &payload,
        note: Some(format!("conflict {id} resolved")),
    }
    .add_to(changeset);
    Ok(Some((connector.side().to_owned(), key, record_id)))
}

fn already_resolved(conflict: &Conflict) -> ResolveError {
    ResolveError::AlreadyResolved {
        id: conflict.id,
        resolution: conflict
            .resolution
            .clone()
            .unwrap_or_else(|| "no resolution recorded".to_owned()),
    }
}

/// The field's canonical value on `role`'s side now (`None`: no value, or
/// the record is gone there and will not be written).
async fn current_value(
    pair: &PairRuntime,
    role: Side,
    entity: crate::domain::EntityKind,
    id: &str,
    parent: Option<&str>,
    field: &str,
) -> Result<Option<Value>, ConnectorError> {
    let Some(record) = pair.connector(role).get(entity, id, parent).await? else {
        return Ok(None);
    };
    Ok(pair
        .settings
        .map
        .to_canonical(entity, role, &record.fields)
        .ok()
        .and_then(|c| c.get(field).cloned()))
}

/// A value as an operator reads it in a resolution note.
fn shown(value: &Option<Value>) -> String {
    match value {
        Some(v) => v.to_string(),
        None => "no value".to_owned(),
    }
}
