//! Targeted sync: a webhook names one record; it is fetched fresh from its
//! side and run through the normal decision path (so a partial or
//! out-of-order payload never matters), then the writer is woken. The
//! webhook endpoint only queues: it answers at once and never syncs inside
//! the request.

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::connector::http::bounded;

use super::decide::Decider;
use super::report::PairReport;
use super::{Engine, EngineError, Mode, PairRuntime, Shutdown};
use crate::domain::{EntityKind, Purpose, Side};

/// One record to sync now.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub pair: String,
    /// The side whose webhook named the record.
    pub source: Side,
    pub entity: EntityKind,
    pub id: String,
    /// The owning contact of a task, note or appointment.
    pub parent_id: Option<String>,
}

/// A target and when its webhook arrived (for the latency histogram).
#[derive(Debug)]
struct Queued {
    target: Target,
    received: Instant,
}

/// The sending half, held by the webhook endpoint.
#[derive(Debug, Clone)]
pub struct TargetQueue {
    sender: mpsc::Sender<Queued>,
}

/// The queue is full: the caller answers 503 so the sender retries later;
/// polling finds the change meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the targeted-sync queue is full")]
pub struct QueueFull;

/// Targets waiting at most; beyond this webhooks get 503 (and polling,
/// the safety net, still finds every change).
pub const QUEUE_CAPACITY: usize = 10_000;

/// Targets taken from the queue and synced as one batch.
const BATCH: usize = 200;

impl TargetQueue {
    /// A queue of [`QUEUE_CAPACITY`] and the receiving half for
    /// [`run_targets`].
    pub fn new() -> (TargetQueue, TargetReceiver) {
        TargetQueue::with_capacity(QUEUE_CAPACITY)
    }

    /// The same with room for `capacity` targets (at least one).
    pub fn with_capacity(capacity: usize) -> (TargetQueue, TargetReceiver) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (TargetQueue { sender }, TargetReceiver(receiver))
    }

    /// A slot for one target, reserved before the delivery is recorded as
    /// seen: a delivery refused for lack of room can be retried.
    pub fn reserve(&self) -> Result<TargetSlot<'_>, QueueFull> {
        self.sender
            .try_reserve()
            .map(TargetSlot)
            .map_err(|_| QueueFull)
    }
}

/// A reserved place in the queue.
pub struct TargetSlot<'a>(mpsc::Permit<'a, Queued>);

impl TargetSlot<'_> {
    pub fn send(self, target: Target, received: Instant) {
        self.0.send(Queued { target, received });
    }
}

/// The receiving half: one worker drains it.
#[derive(Debug)]
pub struct TargetReceiver(mpsc::Receiver<Queued>);

/// The worker: takes what is queued (coalescing repeats of one record),
/// syncs each target, until `stop`.
pub async fn run_targets(engine: Engine, mut receiver: TargetReceiver, stop: Shutdown) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let taken = tokio::select! {
            taken = receiver.0.recv_many(&mut batch, BATCH) => taken,
            _ = stop.stopped() => 0,
        };
        if taken == 0 {
            return;
        }
        // Several events about one record (create, then updates) need one
        // fetch: the record's current state covers them all.
        let mut first_seen: HashMap<Target, Instant> = HashMap::new();
        let mut order = Vec::new();
        for queued in batch.drain(..) {
            if !first_seen.contains_key(&queued.target) {
                order.push(queued.target.clone());
            }
            first_seen.entry(queued.target).or_insert(queued.received);
        }
        for target in order {
            let Some(pair) = engine.pairs.iter().find(|p| p.name() == target.pair) else {
                continue;
            };
            let span = tracing::info_span!(
                "targeted_sync",
                pair = %target.pair,
                side = %pair.connector(target.source).side(),
                entity = %target.entity,
                id = %bounded(&target.id),
            );
            let result = async {
                let _turn = pair.signals.turn.lock().await;
                Purpose::WebhookSync
                    .scope(engine.sync_record(pair, &target))
                    .await
            }
            .instrument(span.clone())
            .await;
            let waited = first_seen[&target].elapsed();
            let _enter = span.enter();
            match result {
                Ok(report) => {
                    tracing::debug!(
                        planned = report.stats.planned(),
                        waited_ms = waited.as_millis() as u64,
                        "targeted sync decided"
                    );
                }
                Err(error) => tracing::warn!(
                    error = %error,
                    "targeted sync failed; the next poll picks the change up"
                ),
            }
        }
    }
}

impl Engine {
    /// Fetches one record and decides it like a poll would, without moving
    /// any watermark; a record gone from its side is handled like a
    /// reconciliation would (contacts by reconciliation itself, behind the
    /// mass-delete guard).
    pub async fn sync_record(
        &self,
        pair: &PairRuntime,
        target: &Target,
    ) -> Result<PairReport, EngineError> {
        let source = target.source;
        let entity = target.entity;
        let connector = pair.connector(source);
        if !connector.capabilities().of(entity).read || !pair.entities().contains(&entity) {
            return Ok(PairReport::default());
        }
        // A task or note is read under its contact. An event may not name
        // it (GHL's `TaskCreate` has been seen without `contactId`: field
        // notes, "Tasks and notes"): the mirror knows it for a linked
        // record; a new one is found with its contact's next read or by
        // reconciliation, never fetched blind (that would fail, and a
        // failure is not a deletion).
        let parent = match (&target.parent_id, entity) {
            (Some(parent), _) => Some(parent.clone()),
            (None, EntityKind::Contact) => None,
            (None, _) => {
                let link = self
                    .store
                    .link_by_side_id(pair.name(), entity, source, &target.id)
                    .await?;
                match link.and_then(|l| l.side(source).parent_id.clone()) {
                    Some(parent) => Some(parent),
                    None => {
                        tracing::info!(pair = %pair.name(), %entity, record = %bounded(&target.id), "the event does not name the record's contact, and the mirror does not know it yet: left to its contact's next read and to reconciliation");
                        return Ok(PairReport::default());
                    }
                }
            }
        };
        let mut decider = Decider::new(self, pair, Mode::Apply);
        let fetched = connector.get(entity, &target.id, parent.as_deref()).await;
        match fetched {
            Ok(Some(record)) => {
                let changed = decider.records(source, entity, vec![record]).await?;
                if entity == EntityKind::Contact {
                    self.children_of(pair, &mut decider, source, &changed)
                        .await?;
                }
            }
            Ok(None) => self.gone(pair, &mut decider, target).await?,
            // Unreadable is not gone (a gone record is `Ok(None)`): taking
            // it for deleted would delete its counterpart on the other
            // side. It is one dead letter, as when a poll reads it.
            Err(error) if error.is_record_error() => {
                tracing::warn!(error = %error, "record not readable; dead-lettered, not taken for deleted");
                decider.rejected(source, entity, vec![error]).await?;
            }
            Err(error) => return Err(error.into()),
        }
        let changeset = decider.take_changeset();
        if !changeset.is_empty() {
            let receipt = self.store.commit(&changeset).await?;
            if !receipt.outbox_new.is_empty() {
                self.wake.notify_one();
            }
        }
        Ok(decider.report)
    }

    async fn gone(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        target: &Target,
    ) -> Result<(), EngineError> {
        if target.entity == EntityKind::Contact {
            pair.signals.request_reconcile();
            return Ok(());
        }
        let link = self
            .store
            .link_by_side_id(pair.name(), target.entity, target.source, &target.id)
            .await?;
        if let Some(link) = link {
            decider.deletion(target.source, &link).await?;
        }
        Ok(())
    }
}
