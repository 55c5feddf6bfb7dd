//! Request counters and sliding windows, shared by the simulators.
//!
//! Both simulators count the same things — every request by method, route
//! template and status, the 429s sent, the faults injected — and keep, per
//! rate-limit key, the most requests that arrived within one limiter
//! window. Only the key (`(app, location)` for GHL, the token for the app)
//! and the span (10 s, 1 s) differ, so the counting is written once here
//! and each simulator declares its public `CounterSnapshot` with
//! [`counter_snapshot!`], which also keeps that simulator's field and
//! method names (`max_requests_per_10s` / `peak_per_10s`,
//! `max_requests_per_second` / `peak_per_second`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// One request counter key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The route template, e.g. `/contacts/{contactId}` (GHL, the spec's
    /// template) or `/api/v1/contacts/{contact_id}` (app).
    pub route: String,
    /// The status sent; `0` when the connection was dropped without a
    /// response (reset and lost-response faults).
    pub status: u16,
}

impl RouteKey {
    pub(crate) fn new(method: &str, route: &str, status: u16) -> Self {
        RouteKey {
            method: method.into(),
            route: route.into(),
            status,
        }
    }
}

/// Requests with this method, route template and status.
pub(crate) fn count(
    requests: &BTreeMap<RouteKey, u64>,
    method: &str,
    route: &str,
    status: u16,
) -> u64 {
    requests
        .get(&RouteKey::new(method, route, status))
        .copied()
        .unwrap_or(0)
}

/// Requests with this method and route template, any status.
pub(crate) fn count_route(requests: &BTreeMap<RouteKey, u64>, method: &str, route: &str) -> u64 {
    requests
        .iter()
        .filter(|(k, _)| k.method == method && k.route == route)
        .map(|(_, n)| n)
        .sum()
}

/// The fields of a snapshot the counters write, borrowed from a
/// simulator's own `CounterSnapshot`.
pub(crate) struct Tallies<'a, K> {
    pub requests: &'a mut BTreeMap<RouteKey, u64>,
    pub total_requests: &'a mut u64,
    pub too_many_requests: &'a mut u64,
    pub faults: &'a mut BTreeMap<String, u64>,
    pub peaks: &'a mut BTreeMap<K, u32>,
}

/// A simulator's `CounterSnapshot` (implemented by [`counter_snapshot!`]).
pub(crate) trait Snapshot: Clone + Default {
    /// What arrivals are counted per (the simulator's rate-limit key).
    type Key: Clone + Ord + Hash;
    /// The span of the arrival peaks.
    const PEAK_SPAN: Duration;
    fn tallies(&mut self) -> Tallies<'_, Self::Key>;
}

/// Declares a simulator's public `CounterSnapshot`: the shared fields
/// (`requests`, `total_requests`, `too_many_requests`, `faults`), the
/// per-key arrival peaks under the simulator's own field name, and
/// `count`, `count_route` and the peak method.
macro_rules! counter_snapshot {
    (
        $(#[$doc:meta])*
        pub struct $name:ident {
            $(#[$peaks_doc:meta])*
            pub $peaks:ident: BTreeMap<$key:ty, u32>,
        }
        span: $span:expr;
        $(#[$peak_doc:meta])*
        pub fn $peak:ident;
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default)]
        pub struct $name {
            /// Requests by method, route template and status.
            pub requests: ::std::collections::BTreeMap<$crate::counters::RouteKey, u64>,
            /// Every request received on an API route.
            pub total_requests: u64,
            /// 429 answers sent (limiter and 429 storm).
            pub too_many_requests: u64,
            /// Faults injected, by kind (`status_500`, `reset`, `truncate`,
            /// `html`, `lose_response`, `storm_429`).
            pub faults: ::std::collections::BTreeMap<String, u64>,
            $(#[$peaks_doc])*
            pub $peaks: ::std::collections::BTreeMap<$key, u32>,
        }

        impl $name {
            /// Requests with this method, route template and status.
            pub fn count(&self, method: &str, route: &str, status: u16) -> u64 {
                $crate::counters::count(&self.requests, method, route, status)
            }

            /// Requests with this method and route template, any status.
            pub fn count_route(&self, method: &str, route: &str) -> u64 {
                $crate::counters::count_route(&self.requests, method, route)
            }

            /// Requests that may change data: every method but GET, except
            /// searches (POSTs that only read). How tests and benchmarks
            /// count writes, echoes and one-way guarantees.
            pub fn writes(&self) -> u64 {
                self.requests
                    .iter()
                    .filter(|(key, _)| key.method != "GET" && !key.route.ends_with("/search"))
                    .map(|(_, n)| n)
                    .sum()
            }

            $(#[$peak_doc])*
            pub fn $peak(&self) -> u32 {
                self.$peaks.values().copied().max().unwrap_or(0)
            }
        }

        impl $crate::counters::Snapshot for $name {
            type Key = $key;
            const PEAK_SPAN: ::std::time::Duration = $span;
            fn tallies(&mut self) -> $crate::counters::Tallies<'_, $key> {
                $crate::counters::Tallies {
                    requests: &mut self.requests,
                    total_requests: &mut self.total_requests,
                    too_many_requests: &mut self.too_many_requests,
                    faults: &mut self.faults,
                    peaks: &mut self.$peaks,
                }
            }
        }
    };
}
pub(crate) use counter_snapshot;

/// The live counters behind a simulator's `CounterSnapshot`.
#[derive(Debug)]
pub(crate) struct Counters<S: Snapshot> {
    snapshot: S,
    arrivals: HashMap<S::Key, VecDeque<Instant>>,
}

impl<S: Snapshot> Default for Counters<S> {
    fn default() -> Self {
        Counters {
            snapshot: S::default(),
            arrivals: HashMap::new(),
        }
    }
}

impl<S: Snapshot> Counters<S> {
    /// Counts a request answered with `status` (`0`: dropped).
    pub fn record(&mut self, method: &str, route: &str, status: u16) {
        let tallies = self.snapshot.tallies();
        *tallies.total_requests += 1;
        *tallies
            .requests
            .entry(RouteKey::new(method, route, status))
            .or_default() += 1;
        if status == 429 {
            *tallies.too_many_requests += 1;
        }
    }

    /// Counts an injected fault (see `FaultKind::label`).
    pub fn fault(&mut self, kind: &str) {
        *self
            .snapshot
            .tallies()
            .faults
            .entry(kind.into())
            .or_default() += 1;
    }

    /// Counts the arrival of a request of `key` toward its peak, refused
    /// or not.
    pub fn arrival(&mut self, key: &S::Key) {
        let now = Instant::now();
        let window = self.arrivals.entry(key.clone()).or_default();
        prune(window, now, S::PEAK_SPAN);
        window.push_back(now);
        let n = window.len() as u32;
        let max = self
            .snapshot
            .tallies()
            .peaks
            .entry(key.clone())
            .or_default();
        *max = (*max).max(n);
    }

    pub fn snapshot(&self) -> S {
        self.snapshot.clone()
    }

    pub fn reset(&mut self) {
        *self = Counters::default();
    }
}

/// Drops from the front of a sliding window the instants at least `span`
/// before `now`.
pub(crate) fn prune(window: &mut VecDeque<Instant>, now: Instant, span: Duration) {
    while window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= span)
    {
        window.pop_front();
    }
}

/// Whole seconds, at least 1, until the oldest instant of a full window
/// leaves it: the `Retry-After` of a refused request.
pub(crate) fn retry_after(window: &VecDeque<Instant>, now: Instant, span: Duration) -> u64 {
    let oldest = window.front().copied().unwrap_or(now);
    let wait = span.saturating_sub(now.duration_since(oldest));
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}
