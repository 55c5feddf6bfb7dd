//! What the daemon's parts tell each other about one pair while it runs:
//! each side's last successful poll, whether its credentials were refused,
//! when its last verified webhook arrived, and requests for an early
//! detection pass. Read by `/readyz`, `/metrics` and the poll schedule.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::domain::{PerSide, Side};

/// One side of a pair as the running daemon sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SideSignals {
    /// End of the last detection pass that polled this side without error.
    pub last_success: Option<DateTime<Utc>>,
    /// Set when the side refused our credentials; cleared by a good poll.
    pub credentials_refused: Option<String>,
    /// Arrival of the last webhook from this side that verified.
    pub last_webhook: Option<DateTime<Utc>>,
}

/// The shared state of one pair.
#[derive(Debug, Default)]
pub struct PairSignals {
    sides: Mutex<PerSide<SideSignals>>,
    reconcile_requested: AtomicBool,
    /// When the reconciliation running now began (None: none runs).
    reconciling_since: Mutex<Option<DateTime<Utc>>>,
    wake: Notify,
    /// Detection passes and targeted syncs of one pair take turns: two
    /// deciders working on one new record at once could both link it.
    pub(crate) turn: tokio::sync::Mutex<()>,
}

impl PairSignals {
    /// Waits for the pair's turn, as the daemon's polls and its
    /// targeted-sync worker do before they decide anything (for a harness
    /// that plays the scheduler: the deterministic simulation). Not around
    /// [`Engine::reconcile`](super::Engine::reconcile): it takes the turn
    /// itself for each page it decides, and the turn is not reentrant.
    pub async fn take_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    pub fn side(&self, role: Side) -> SideSignals {
        self.lock()[role].clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PerSide<SideSignals>> {
        self.sides.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A pass polled `role` without error.
    pub fn polled(&self, role: Side, at: DateTime<Utc>) {
        let mut sides = self.lock();
        let side = &mut sides[role];
        side.last_success = Some(at);
        side.credentials_refused = None;
    }

    /// `role` refused our credentials.
    pub fn credentials_refused(&self, role: Side, message: String) {
        self.lock()[role].credentials_refused = Some(message);
    }

    /// A verified webhook from `role` arrived.
    pub fn webhook_arrived(&self, role: Side, at: DateTime<Utc>) {
        self.lock()[role].last_webhook = Some(at);
    }

    /// Whether `role`'s webhooks are arriving: one verified within
    /// `trust_for`. Polling then only runs as the safety net.
    pub fn webhooks_healthy(&self, role: Side, trust_for: Duration, now: DateTime<Utc>) -> bool {
        let trust_for = chrono::Duration::from_std(trust_for).unwrap_or(chrono::Duration::MAX);
        self.side(role)
            .last_webhook
            .is_some_and(|at| now - at <= trust_for)
    }

    /// Asks the pair's detection loop for a reconciliation now (a delete
    /// event: deletes are decided by reconciliation, behind the
    /// mass-delete guard). Many requests coalesce into one pass.
    pub fn request_reconcile(&self) {
        self.reconcile_requested.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// A reconciliation began at `at` (None: it ended).
    pub fn reconciling(&self, at: Option<DateTime<Utc>>) {
        *self
            .reconciling_since
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = at;
    }

    /// When the reconciliation running now began, if one runs: polls and
    /// targeted syncs go on beside it.
    pub fn reconciling_since(&self) -> Option<DateTime<Utc>> {
        *self
            .reconciling_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a pending reconciliation request.
    pub fn take_reconcile_request(&self) -> bool {
        self.reconcile_requested.swap(false, Ordering::SeqCst)
    }

    /// Resolves when a request wakes the detection loop.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
