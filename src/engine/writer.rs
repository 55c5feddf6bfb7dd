//! The outbox writer: takes planned writes under a lease, applies each on
//! its target side (paced by that side's limiter inside the connector), and
//! records the outcome atomically: the new id, updated_at and base snapshot
//! with an `applied` journal row, or the failure with a retry time or a
//! dead letter.

use std::time::Duration;

use serde_json::{Map, Value};
use tracing::Instrument;

use super::outbox::{change_of_key, source_in_key, WritePayload};
use super::report::Stats;
use super::{snapshot, Engine, EngineError, PairRuntime};
use crate::connector::http::bounded;
use crate::connector::{ConnectorError, Patch, Record, Stamp};
use crate::domain::{EntityKind, Purpose, Side};

use crate::store::{
    Change, Completion, Direction, JournalAction, Link, LinkRef, LinkUpdate, LinkWrite,
    NewJournalEntry, OutboxItem, OutboxOp, OutboxRef, OutboxStatus, SidePatch, StoreError,
};

/// Why one write did not happen.
pub(super) enum Failure {
    /// Try again later (side unavailable, parent not created yet).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// This write can never succeed as planned: dead letter.
    Permanent(String),
}

impl From<ConnectorError> for Failure {
    fn from(error: ConnectorError) -> Self {
        match &error {
            ConnectorError::Record { .. }
            | ConnectorError::Duplicate { .. }
            | ConnectorError::Unsupported { .. } => Failure::Permanent(error.to_string()),
            ConnectorError::Unavailable { retry_after, .. } => Failure::Retry {
                after: *retry_after,
                reason: error.to_string(),
            },
            ConnectorError::Auth { .. } => {
                tracing::error!(error = %error, "credentials refused; writes wait until they work again");
                Failure::Retry {
                    after: Some(Duration::from_secs(300)),
                    reason: error.to_string(),
                }
            }
        }
    }
}

/// An update planned without seeing its target, as `unseen_target` finds
/// it.
enum Unseen {
    Write(Patch),
    /// It holds the planned values already.
    Holds(Record),
    /// Edited there since the create: withdrawn, decided again.
    Edited(String),
    Failed(ConnectorError),
}

/// The result of one written item.
pub(super) enum Written {
    Done(Option<Record>),
    Failed(Failure),
    /// Not applied: the target changed since the write was planned.
    Withdrawn(String),
    /// A create completed on an existing record of the same person that
    /// holds values the write's decision never saw (`create.rs::adopt`):
    /// linked without a base, the source then decided again.
    Adopted(Record),
}

/// Rounds of re-decisions (and the writes they plan) per drain.
const REDECISION_ROUNDS: u32 = 3;

impl Engine {
    /// Applies due outbox items until none is left (items waiting for a
    /// retry time stay), or until `stop` says so between batches. Returns
    /// what was applied and retried.
    pub async fn drain_outbox(&self, stop: &super::Shutdown) -> Result<Stats, EngineError> {
        let mut stats = Stats::default();
        let mut redecided = 0;
        while !stop.is_stopping() {
            let items = self
                .store
                .claim_outbox(self.sync.writer_batch, self.sync.writer_lease)
                .await?;
            if items.is_empty() {
                // The records these writes left to decide again, then the
                // writes those decisions plan (a bounded number of rounds:
                // a record edited without pause waits for the next drain).
                if redecided == REDECISION_ROUNDS || self.take_redecisions(&mut stats).await? == 0 {
                    break;
                }
                redecided += 1;
                continue;
            }
            let mut pending: Vec<i64> = items.iter().map(|i| i.id).collect();
            for item in items {
                if stop.is_stopping() {
                    break;
                }
                pending.retain(|id| *id != item.id);
                Purpose::Write
                    .scope(self.write_one(item, &mut stats))
                    .await?;
            }
            if !pending.is_empty() {
                // Shutting down: hand back what was not started.
                self.store.release_outbox(&pending).await?;
            }
        }
        Ok(stats)
    }

    async fn write_one(&self, item: OutboxItem, stats: &mut Stats) -> Result<(), EngineError> {
        let Some(pair) = self.pairs.iter().find(|p| p.name() == item.pair) else {
            let reason = format!(
                "pair `{}` is no longer configured; its write was not applied",
                item.pair
            );
            self.store.fail_outbox(item.id, &reason, None).await?;
            return Ok(());
        };
        let target = item.target_side;
        let span = tracing::info_span!(
            "write",
            pair = %item.pair,
            side = %pair.connector(target).side(),
            entity = %item.entity,
            op = %item.op,
            outbox_id = item.id,
            target_id = %bounded(item.target_id.as_deref().unwrap_or("-")),
        );
        let written = self.apply(pair, &item).instrument(span.clone()).await?;
        let _enter = span.enter();
        match written {
            Written::Done(record) => {
                self.complete(pair, &item, record, false, stats).await?;
            }
            Written::Adopted(record) => {
                self.complete(pair, &item, Some(record), true, stats)
                    .await?;
            }
            Written::Failed(Failure::Retry { reason, after }) => {
                if item.attempts as u32 >= self.sync.max_attempts {
                    let reason = format!("gave up after {} attempts: {reason}", item.attempts);
                    tracing::warn!(reason = %reason, "write dead-lettered");
                    self.store.fail_outbox(item.id, &reason, None).await?;
                } else {
                    let wait = after.unwrap_or_else(|| backoff(item.attempts));
                    tracing::debug!(reason = %reason, retry_in = ?wait, "write will be retried");
                    let at =
                        crate::clock::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    self.store.fail_outbox(item.id, &reason, Some(at)).await?;
                    stats.retried += 1;
                }
            }
            Written::Withdrawn(reason) => {
                tracing::info!(reason = %reason, "write withdrawn; the record is decided again with the newer state");
                // The withdrawal schedules its source to be decided again
                // (`take_redecisions`, at the end of this drain).
                match self.store.cancel_outbox(item.id, &reason).await {
                    Ok(()) => {}
                    Err(StoreError::OutboxNotPending { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Written::Failed(Failure::Permanent(reason)) => {
                tracing::warn!(reason = %reason, "write dead-lettered");
                self.store.fail_outbox(item.id, &reason, None).await?;
            }
        }
        Ok(())
    }

    /// Records a write done (or a create `adopted` onto an existing
    /// record): links the record, unless another link holds it; whether
    /// it was recorded.
    async fn complete(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
        record: Option<Record>,
        adopted: bool,
        stats: &mut Stats,
    ) -> Result<bool, EngineError> {
        // A create (or a side) that answers with a record another link
        // holds would make two records share one: refuse it.
        if let Some(found) = record.as_ref().filter(|_| item.link_id.is_some()) {
            if let Some(other) = self.linked_elsewhere(pair, item, found).await? {
                let reason = already_linked(pair, item, found, &other);
                tracing::warn!(reason = %reason, "write dead-lettered");
                self.store.fail_outbox(item.id, &reason, None).await?;
                return Ok(false);
            }
        }
        let payload = payload(item);
        let link = match item.link_id {
            Some(id) => self.store.link_by_id(id).await?,
            None => None,
        };
        let base = match &link {
            // Fields a write to the other side has yet to bring there keep
            // their base (`WritePayload::other_writes`).
            Some(link) if !adopted && !payload.other_writes.is_empty() => {
                let held =
                    serde_json::from_value(link.snapshot.content.clone()).unwrap_or_default();
                payload.base_after(&held)
            }
            _ => payload.snapshot.clone(),
        };
        let overtaken = match &link {
            Some(link) => self.overtaken(item, link).await?,
            None => false,
        };
        let mut completion = completion(pair, item, record.as_ref(), adopted, base.as_ref());
        // The source is decided again (`take_redecisions`, scheduled in the
        // completion's transaction): a record adopted has no base yet, and
        // every field the two hold differently goes through the policies;
        // a write overtaken recorded the old decision's base, and the newer
        // version that agreed with that base was taken as no change.
        let redecide = if adopted {
            Some("its create was completed on a record a user made meanwhile")
        } else if overtaken {
            Some("a newer version of its source was decided while it waited")
        } else {
            None
        };
        completion.redecide = redecide.map(|why| {
            (
                item.target_side.other(),
                format!("write {}: {why}", item.id),
            )
        });
        match self.store.complete_outbox(&completion).await {
            Ok(_) => {
                stats.applied += 1;
                let source_id = self.source_id(pair, item).await;
                applied(pair, item, record.as_ref(), source_id.as_deref());
                Ok(true)
            }
            // Another writer whose lease outlived ours finished it.
            Err(StoreError::OutboxNotPending { .. }) => Ok(false),
            // Linked by another writer between our check and our commit:
            // the same refusal, never an aborted cycle.
            Err(error) if error.is_constraint_violation() && record.is_some() => {
                let found = record.as_ref().expect("checked");
                let reason = already_linked(pair, item, found, "another record");
                tracing::warn!(reason = %reason, error = %error, "write dead-lettered");
                self.store.fail_outbox(item.id, &reason, None).await?;
                Ok(false)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Whether a newer version of the record this write comes from was
    /// decided while it waited, with no later write of the link pending to
    /// carry it: that decision saw the old base, so a change back to it
    /// (a tag added, then removed) planned nothing, and this write's
    /// completion now records a base the source no longer holds. The
    /// source is then decided again at once rather than at the next
    /// reconciliation (found by the deterministic simulation, issue 16).
    async fn overtaken(&self, item: &OutboxItem, link: &Link) -> Result<bool, EngineError> {
        let Some((source_id, changed_at)) = change_of_key(&item.idempotency_key) else {
            return Ok(false);
        };
        let newer = Side::BOTH.iter().any(|side| {
            let seen = link.side(*side);
            seen.id.as_deref() == Some(source_id)
                && seen.updated_at.is_some_and(|at| at > changed_at)
        });
        if !newer {
            return Ok(false);
        }
        let pending = self.store.outbox_for_link(link.id).await?;
        Ok(!pending
            .iter()
            .any(|other| other.id != item.id && other.status == OutboxStatus::Pending))
    }

    /// The id of the record a write comes from, for its log line: named
    /// by its key, else (a merge writing back to the side whose change it
    /// decided) the link's id on the other side; `None` when neither
    /// knows it (deletes and tags name only the link).
    async fn source_id(&self, pair: &PairRuntime, item: &OutboxItem) -> Option<String> {
        let source = item.target_side.other();
        let key = &item.idempotency_key;
        if let Some(id) = source_in_key(key, pair.name(), item.entity, item.target_side) {
            return Some(id.to_owned());
        }
        let link = self.store.link_by_id(item.link_id?).await.ok()??;
        link.side(source).id.clone()
    }

    /// Performs one write on its target side.
    async fn apply(&self, pair: &PairRuntime, item: &OutboxItem) -> Result<Written, EngineError> {
        let target = item.target_side;
        let connector = pair.connector(target);
        let payload = payload(item);
        let fields = match native_fields(pair, item, &payload) {
            Ok(fields) => fields,
            Err(failure) => return Ok(Written::Failed(failure)),
        };
        let parent = match self.parent_id(pair, item).await? {
            Ok(parent) => parent,
            Err(failure) => return Ok(Written::Failed(failure)),
        };
        let target_id = match (&item.target_id, item.op) {
            (Some(id), _) => Some(id.clone()),
            (None, OutboxOp::Create) => None,
            (None, _) => {
                // Planned while the record's create there was pending.
                let link = match item.link_id {
                    Some(id) => self.store.link_by_id(id).await?,
                    None => None,
                };
                let adopted = link
                    .as_ref()
                    .is_some_and(|l| l.snapshot == snapshot::empty());
                match link.and_then(|l| l.side(item.target_side).id.clone()) {
                    // The create was completed on an existing record holding
                    // other values (`create.rs::adopt`), which this write's
                    // decision never saw: writing it would clobber them.
                    // The record is decided again instead.
                    Some(_) if adopted => {
                        return Ok(Written::Withdrawn(
                            "planned while its record's create was pending; the create was \
                             completed on an existing record holding other values"
                                .into(),
                        ))
                    }
                    Some(id) => Some(id),
                    None => {
                        return Ok(Written::Failed(Failure::Retry {
                            reason: "the record is not created on this side yet".into(),
                            after: Some(Duration::from_secs(2)),
                        }))
                    }
                }
            }
        };
        let parent = parent.as_deref();
        let result = match item.op {
            OutboxOp::Create => {
                return self.create(pair, item, &payload, &fields, parent).await;
            }
            OutboxOp::Update | OutboxOp::Complete => {
                let id = target_id.as_deref().unwrap_or_default();
                if let Some(reason) = self.edited_since(pair, item, id, parent, &payload).await {
                    return Ok(match reason {
                        Ok(reason) => Written::Withdrawn(reason),
                        Err(error) => Written::Failed(error.into()),
                    });
                }
                let patch = if item.target_id.is_none() {
                    // Planned while the record's create here was pending: the
                    // decision never saw the record, so it is read now and
                    // only what it lacks is written.
                    match self.unseen_target(pair, item, id, parent, &payload).await? {
                        Unseen::Write(patch) => patch,
                        Unseen::Holds(current) => return Ok(Written::Done(Some(current))),
                        Unseen::Edited(reason) => return Ok(Written::Withdrawn(reason)),
                        Unseen::Failed(error) => return Ok(Written::Failed(error.into())),
                    }
                } else {
                    Patch {
                        before: before(pair, item, &payload),
                        fields,
                    }
                };
                connector
                    .update(item.entity, id, parent, &patch)
                    .await
                    .map(Some)
            }
            OutboxOp::Delete => {
                let id = target_id.as_deref().unwrap_or_default();
                connector
                    .delete(item.entity, id, parent)
                    .await
                    .map(|_| None)
            }
            OutboxOp::AddTags | OutboxOp::RemoveTags => {
                let id = target_id.as_deref().unwrap_or_default();
                self.retag(pair, target, item, id, &payload).await
            }
        };
        Ok(match result {
            Ok(record) => Written::Done(record),
            Err(error) => Written::Failed(error.into()),
        })
    }

    /// The owning contact's id on the target side, for tasks and notes.
    async fn parent_id(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
    ) -> Result<Result<Option<String>, Failure>, EngineError> {
        if item.entity == EntityKind::Contact || item.parent_id.is_some() {
            return Ok(Ok(item.parent_id.clone()));
        }
        let Some(link) = (match item.link_id {
            Some(id) => self.store.link_by_id(id).await?,
            None => None,
        }) else {
            return Ok(Ok(None));
        };
        if let Some(parent) = &link.side(item.target_side).parent_id {
            return Ok(Ok(Some(parent.clone())));
        }
        let source = item.target_side.other();
        let Some(source_parent) = &link.side(source).parent_id else {
            return Ok(Ok(None));
        };
        let contact = self
            .store
            .link_by_side_id(pair.name(), EntityKind::Contact, source, source_parent)
            .await?;
        Ok(
            match contact.and_then(|c| c.side(item.target_side).id.clone()) {
                Some(parent) => Ok(Some(parent)),
                None => Err(Failure::Retry {
                    reason: format!("its contact {source_parent} is not created on this side yet"),
                    after: Some(Duration::from_secs(2)),
                }),
            },
        )
    }

    /// What to do with an update planned while its record's create was
    /// pending (the decision never saw the record): read it now; a field
    /// that does not hold what the create wrote (the write's `expect`) was
    /// changed there since, by a user or by a newer write, so this one is
    /// withdrawn and the record decided again; otherwise only the planned values it lacks are
    /// written, with what it holds as the patch's `before`. Writing a field
    /// the record holds already would overwrite an edit made there
    /// meanwhile for nothing (found by the deterministic simulation,
    /// issue 16).
    async fn unseen_target(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
        id: &str,
        parent: Option<&str>,
        payload: &WritePayload,
    ) -> Result<Unseen, EngineError> {
        let target = item.target_side;
        let map = &pair.settings.map;
        let current = match pair.connector(target).get(item.entity, id, parent).await {
            Ok(Some(current)) => current,
            Ok(None) => return Ok(Unseen::Edited("the record was deleted there".into())),
            Err(error) => return Ok(Unseen::Failed(error)),
        };
        // What the record should hold: what the decision expected its
        // pending create to write, or (rows planned before it said) the
        // link's base.
        let base: crate::mapping::Canonical = match (&payload.expect, item.link_id) {
            (Some(expect), _) => expect.clone(),
            (None, Some(link)) => self
                .store
                .link_by_id(link)
                .await?
                .and_then(|l| serde_json::from_value(l.snapshot.content).ok())
                .unwrap_or_default(),
            (None, None) => Default::default(),
        };
        let held = map
            .to_canonical(item.entity, target, &current.fields)
            .unwrap_or_default();
        let value = |values: &crate::mapping::Canonical, field: &str| {
            values.get(field).cloned().unwrap_or(Value::Null)
        };
        let writes = payload.writes();
        let edited: Vec<&str> = writes
            .keys()
            .filter(|field| value(&held, field) != value(&base, field))
            .map(String::as_str)
            .collect();
        if !edited.is_empty() {
            return Ok(Unseen::Edited(format!(
                "edited there since its create: {}",
                edited.join(", ")
            )));
        }
        let lacking: crate::mapping::Canonical = writes
            .into_iter()
            .filter(|(field, planned)| value(&held, field) != *planned)
            .collect();
        if lacking.is_empty() {
            return Ok(Unseen::Holds(current));
        }
        let before: crate::mapping::Canonical = lacking
            .keys()
            .filter_map(|field| Some((field.clone(), held.get(field)?.clone())))
            .collect();
        let native =
            |values: &crate::mapping::Canonical| map.to_native(item.entity, target, values);
        Ok(match (native(&lacking), native(&before)) {
            (Ok(fields), Ok(before)) => Unseen::Write(Patch { fields, before }),
            (Err(error), _) | (_, Err(error)) => Unseen::Failed(ConnectorError::Record {
                side: pair.connector(target).side().to_owned(),
                entity: item.entity,
                id: Some(id.to_owned()),
                message: error.to_string(),
            }),
        })
    }

    /// Whether the target's written fields still hold what the decision
    /// saw (`None`: they do, go ahead). A record edited meanwhile must not
    /// be overwritten with a merge that did not see the edit.
    async fn edited_since(
        &self,
        pair: &PairRuntime,
        item: &OutboxItem,
        id: &str,
        parent: Option<&str>,
        payload: &WritePayload,
    ) -> Option<Result<String, ConnectorError>> {
        let expect = payload.expect.as_ref()?;
        let target = item.target_side;
        let current = match pair.connector(target).get(item.entity, id, parent).await {
            Ok(Some(current)) => current,
            Ok(None) => return Some(Ok("the record was deleted there".to_owned())),
            Err(error) => return Some(Err(error)),
        };
        let moved = payload
            .expect_at
            .filter(|_| crate::engine::create::may_have_been_sent(item))
            .is_some_and(|at| current.stamp == Stamp::Side && current.updated_at != at);
        if moved {
            return Some(Ok(
                "changed there since the write was planned, and an earlier \
                            attempt may have applied it"
                    .to_owned(),
            ));
        }
        let canonical = pair
            .settings
            .map
            .to_canonical(item.entity, target, &current.fields)
            .unwrap_or_default();
        let edited: Vec<&str> = payload
            .changed
            .iter()
            .filter(|f| canonical.get(*f) != expect.get(*f))
            .map(String::as_str)
            .collect();
        (!edited.is_empty()).then(|| {
            Ok(format!(
                "edited there since the write was planned: {}",
                edited.join(", ")
            ))
        })
    }
}

/// The one `info` event of an applied change (field names only; values
/// at `debug` when `log.values` is on), its propagation time and count.
/// `source_id` is the id of the record on the other side of the target.
fn applied(
    pair: &PairRuntime,
    item: &OutboxItem,
    record: Option<&Record>,
    source_id: Option<&str>,
) {
    let target = item.target_side;
    let source = target.other();
    let direction = Direction::towards(item.target_side);
    let payload = payload(item);
    let location = [source, target]
        .iter()
        .find_map(|role| pair.connector(*role).location())
        .unwrap_or("-");
    let target_id = record
        .map(|r| r.id.as_str())
        .or(item.target_id.as_deref())
        .unwrap_or("-");
    tracing::info!(
        location,
        direction = %direction,
        from = %pair.connector(source).side(),
        source_id = %bounded(source_id.unwrap_or("-")),
        target_id = %bounded(target_id),
        fields = ?payload.changed,
        "change applied"
    );
    if crate::telemetry::log_values() {
        let values = Value::Object(native_fields(pair, item, &payload).unwrap_or_default());
        tracing::debug!(target_id = %bounded(target_id), values = %values, "values written");
    }
    let labels = [
        ("pair", item.pair.clone()),
        ("entity", item.entity.as_str().to_owned()),
        ("direction", direction.as_str().to_owned()),
    ];
    metrics::counter!(crate::metrics::WRITES, &labels).increment(1);
    if let Some((_, changed_at)) = change_of_key(&item.idempotency_key) {
        let seconds = (crate::clock::now() - changed_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::histogram!(crate::metrics::PROPAGATION, &labels).record(seconds);
    }
}

/// The native fields to send: those the row carries (conflict resolutions,
/// rows planned by earlier versions), or else the planned canonical values
/// mapped now, as the decision mapped them when it planned the write. A
/// map that no longer takes them (the configuration changed meanwhile)
/// makes the write a dead letter naming the field.
fn native_fields(
    pair: &PairRuntime,
    item: &OutboxItem,
    payload: &WritePayload,
) -> Result<Map<String, Value>, Failure> {
    if !payload.fields.is_empty() || payload.snapshot.is_none() {
        return Ok(payload.fields.clone());
    }
    let target = item.target_side;
    pair.settings
        .map
        .to_native(item.entity, target, &payload.writes())
        .map_err(|error| {
            Failure::Permanent(format!(
                "side `{}`, {} {}: {error}",
                pair.connector(target).side(),
                item.entity,
                item.target_id.as_deref().unwrap_or("(new)")
            ))
        })
}

/// What the target held of the written fields when the write's decision
/// saw it (`expect`, which `edited_since` has just checked), mapped to
/// native: the update's [`Patch::before`], against which a side that
/// writes lists by deltas (GHL's tags) computes them. Empty, that is
/// unknown, for a write without an `expect` or a map that no longer takes
/// the values; such a side then removes nothing it did not see.
fn before(pair: &PairRuntime, item: &OutboxItem, payload: &WritePayload) -> Map<String, Value> {
    let Some(expect) = &payload.expect else {
        return Map::new();
    };
    let held: crate::mapping::Canonical = payload
        .changed
        .iter()
        .filter_map(|field| Some((field.clone(), expect.get(field)?.clone())))
        .collect();
    pair.settings
        .map
        .to_native(item.entity, item.target_side, &held)
        .unwrap_or_default()
}

pub(super) fn payload(item: &OutboxItem) -> WritePayload {
    serde_json::from_value(item.payload.clone()).unwrap_or_default()
}

/// Why a write answered with a record that another link holds is not
/// completed.
fn already_linked(pair: &PairRuntime, item: &OutboxItem, found: &Record, other: &str) -> String {
    let target = item.target_side;
    format!(
        "side `{}` answered the {} of this {} with {} {}, which is already linked to {} record          {other}: not linking a second record to it (two records of side `{}` may be one person,          or the side matched the wrong record); nothing more was written",
        pair.connector(target).side(),
        item.op,
        item.entity,
        item.entity,
        found.id,
        pair.connector(target.other()).side(),
        pair.connector(target.other()).side(),
    )
}

/// Whether the record a write answered with holds the new base snapshot in
/// every field its side feeds. Only then is its version recorded as seen:
/// an edit to another field made between our read and our write is in that
/// version too, and must still count as a change when it is read (issue
/// 13: "never mark a version seen that you did not read").
fn holds_snapshot(
    pair: &PairRuntime,
    item: &OutboxItem,
    record: &Record,
    payload: &WritePayload,
) -> bool {
    let Some(snapshot) = &payload.snapshot else {
        return true;
    };
    let target = item.target_side;
    let map = &pair.settings.map;
    let Ok(canonical) = map.to_canonical(item.entity, target, &record.fields) else {
        return false;
    };
    map.fields_of(item.entity)
        .filter(|f| f.flow.reads_from(target))
        .all(|f| canonical.get(&f.name) == snapshot.get(&f.name))
}

/// How a completed write changes the mirror. An `adopted` record (a
/// create completed on a record holding values nobody decided) gets no
/// base and no version seen: the two records never agreed on anything.
fn completion(
    pair: &PairRuntime,
    item: &OutboxItem,
    record: Option<&Record>,
    adopted: bool,
    base: Option<&crate::mapping::Canonical>,
) -> Completion {
    let payload = payload(item);
    let mut entry = NewJournalEntry::new(&item.pair, item.entity, JournalAction::Applied);
    // History pairs the `applied` row with its `planned` row by write.
    entry.outbox = Some(OutboxRef::Id(item.id));
    entry.direction = Some(Direction::towards(item.target_side));
    entry.fields = payload.changed.clone();
    entry.detail = Some(item.op.to_string());
    let written_id = record
        .map(|r| r.id.clone())
        .or_else(|| item.target_id.clone());
    entry.set_id(item.target_side, written_id);
    let Some(link_id) = item.link_id else {
        return Completion {
            outbox_id: item.id,
            link: None,
            journal: vec![entry],
            redecide: None,
        };
    };
    entry.link = Some(LinkRef::Existing(link_id));
    let mut update = LinkUpdate {
        id: link_id,
        ..LinkUpdate::default()
    };
    let seen = record.filter(|r| {
        let holds = !adopted && holds_snapshot(pair, item, r, &payload);
        if !holds {
            tracing::info!(record = %r.id, "the written record holds edits the write did not cover; its next read decides them");
        }
        holds
    });
    let written = update.side_mut(item.target_side);
    *written = SidePatch {
        id: record.map(|r| r.id.clone()),
        parent_id: record.and_then(|r| r.parent_id.clone()),
        ..SidePatch::default()
    };
    if let Some(seen) = seen {
        written.saw(seen);
    }
    if item.op == OutboxOp::Delete {
        update.deleted_at = Change::Set(crate::clock::now());
    }
    if adopted {
        update.snapshot = Some(snapshot::empty());
    } else if let Some(base) = base {
        update.snapshot = Some(snapshot::of(base));
    }
    Completion {
        outbox_id: item.id,
        link: Some(LinkWrite::Update(update)),
        journal: vec![entry],
        redecide: None,
    }
}

/// Exponential backoff by attempt: 2 s, 4 s, 8 s, … up to 5 minutes.
pub(super) fn backoff(attempts: i32) -> Duration {
    let exponent = attempts.clamp(1, 8) as u32;
    Duration::from_secs((1u64 << exponent).min(300))
}
