//! The state and the controls every simulator has, written once: its
//! address and seed, fault injection, request counters and webhook queue
//! ([`SimCore`]), and the methods of the simulators' handles that drive
//! them ([`sim_controls!`]: `set_faults`, `fail_next`, `counters`,
//! `flush_webhooks`, ...), so that `SimHandle` and `AppSimHandle` offer
//! the same controls with the same behaviour.

use std::sync::Mutex;

use rand_chacha::ChaCha8Rng;

use super::counters::{Counters, Snapshot};
use super::faults::{FaultConfig, FaultState};
use super::webhook_queue::WebhookQueue;

/// What every simulator keeps besides its data: shared by its server and
/// its handles. `S` is the simulator's `CounterSnapshot`.
pub(crate) struct SimCore<S: Snapshot> {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    /// The seed everything was derived from.
    pub seed: u64,
    pub faults: Mutex<FaultState>,
    pub counters: Mutex<Counters<S>>,
    pub webhooks: WebhookQueue,
}

impl<S: Snapshot> SimCore<S> {
    pub fn new(
        base_url: String,
        seed: u64,
        faults: FaultConfig,
        fault_rng: ChaCha8Rng,
        webhooks: WebhookQueue,
    ) -> Self {
        SimCore {
            base_url,
            seed,
            faults: Mutex::new(FaultState::new(faults, fault_rng)),
            counters: Mutex::new(Counters::default()),
            webhooks,
        }
    }
}

/// The controls every simulator handle offers, as its public methods.
/// Expand inside `impl Handle { … }` of a handle holding
/// `shared: Arc<Shared>` whose `core` is a [`SimCore`] of the simulator's
/// `CounterSnapshot`, named in the call (`sim_controls!(CounterSnapshot)`).
macro_rules! sim_controls {
    ($snapshot:ty) => {
        /// The seed everything was derived from.
        pub fn seed(&self) -> u64 {
            self.shared.core.seed
        }

        /// Replaces the random faults.
        pub fn set_faults(&self, faults: $crate::faults::FaultConfig) {
            $crate::server::lock(&self.shared.core.faults).config = faults;
        }

        /// The random faults in force.
        pub fn faults(&self) -> $crate::faults::FaultConfig {
            $crate::server::lock(&self.shared.core.faults)
                .config
                .clone()
        }

        /// Applies `kind` to the next `count` eligible requests (before any
        /// random fault).
        /// [`FaultKind::LoseResponse`](crate::faults::FaultKind::LoseResponse)
        /// is consumed by writes only.
        pub fn fail_next(&self, kind: $crate::faults::FaultKind, count: u32) {
            $crate::server::lock(&self.shared.core.faults).push(kind, count);
        }

        /// Runs `edit` just before the handler of the next `method` request
        /// on `route` (the template the counters use, e.g.
        /// `/contacts/:contactId`), once: a person editing a record
        /// between the daemon's read and its write. `edit` typically
        /// calls one of the handle's `*_as_user` methods on a clone of the
        /// handle.
        pub fn before_next(
            &self,
            method: ::axum::http::Method,
            route: &str,
            edit: impl FnOnce() + Send + 'static,
        ) {
            $crate::server::lock(&self.shared.core.faults).before_next(
                method,
                route,
                Box::new(edit),
            );
        }

        /// Turns every fault off (random and queued, and pending
        /// `before_next` edits).
        pub fn clear_faults(&self) {
            let mut faults = $crate::server::lock(&self.shared.core.faults);
            faults.config = $crate::faults::FaultConfig::default();
            faults.clear_queue();
        }

        /// The "429 storm" switch.
        pub fn set_429_storm(&self, on: bool) {
            $crate::server::lock(&self.shared.core.faults)
                .config
                .storm_429 = on;
        }

        /// A copy of the counters.
        pub fn counters(&self) -> $snapshot {
            $crate::server::lock(&self.shared.core.counters).snapshot()
        }

        /// Zeroes the counters (not the rate limiter).
        pub fn reset_counters(&self) {
            $crate::server::lock(&self.shared.core.counters).reset();
        }

        /// Where webhooks go (`None` stops deliveries; queued ones still go).
        pub fn set_webhook_url(&self, url: Option<String>) {
            self.shared.core.webhooks.set_url(url);
        }

        /// Webhook delivery counters.
        pub fn webhook_stats(&self) -> $crate::webhook_queue::WebhookStats {
            self.shared.core.webhooks.stats()
        }

        /// Waits until no webhook is queued or in flight; `false` on timeout.
        pub async fn flush_webhooks(&self, timeout: ::std::time::Duration) -> bool {
            self.shared.core.webhooks.flush(timeout).await
        }
    };
}
pub(crate) use sim_controls;
