//! Fault injection shared by every simulator: the knobs ([`FaultConfig`],
//! [`FaultKind`], [`FaultArgs`] for the command line), the seeded planner
//! that decides the faults of each request, and the mechanics that apply
//! them (connection resets, truncated bodies, HTML pages, lost responses,
//! the 429 storm). Each simulator words its own JSON error bodies; the rest
//! is here, written once.
//!
//! Faults are drawn from a seeded RNG so a run is reproducible for a given
//! sequence of requests.
//!
//! Where each fault acts in a simulator's request pipeline:
//! 1. `latency` (+ uniform `jitter`) delays the request first;
//! 2. `storm_429`, `reset_rate` and `error_rates` act before
//!    authentication and the handler (nothing is written, nothing counts
//!    toward the rate-limit window);
//! 3. `truncate_rate`, `html_rate` and `lose_response_rate` act after the
//!    handler ran (a write is committed): the body is cut in half (valid
//!    HTTP, invalid JSON), replaced by an HTML page (status 200,
//!    `text/html`), or the connection is reset instead of answering.
//!    `lose_response_rate` applies to writes (POST, PUT, PATCH, DELETE)
//!    only.
//!
//! A connection reset closes the TCP socket with `SO_LINGER` 0 (an RST)
//! without writing a byte of the response: serve with `FaultListener`
//! and `ConnectInfo<ConnCtl>` (see `serve`) so a handler can reset its
//! own connection.
//!
//! Split by job: this file holds the knobs and the planner; `apply` makes
//! the responses a fault calls for; `listener` serves with connections a
//! handler can reset; `args` reads the knobs from the command line.

mod apply;
mod args;
mod listener;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::Method;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub(crate) use apply::{apply_after, apply_before};
/// For the simulator commands' own argument tests.
#[cfg(test)]
pub(crate) use args::parse_error_rate;
pub use args::FaultArgs;
pub(crate) use listener::{serve, ConnCtl};

/// Faults applied at random; all probabilities are in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// `(status, probability)`, tried in order; 502/503/504 get an HTML
    /// gateway page (as a proxy would send), other statuses the
    /// simulator's JSON error body.
    pub error_rates: Vec<(u16, f64)>,
    /// Added to every request.
    pub latency: Duration,
    /// Up to this much more, uniformly.
    pub jitter: Duration,
    /// Drop the connection before handling.
    pub reset_rate: f64,
    /// Handle, then send half the body.
    pub truncate_rate: f64,
    /// Handle, then send an HTML page with status 200.
    pub html_rate: f64,
    /// Handle a write, then reset the connection instead of answering.
    pub lose_response_rate: f64,
    /// Answer every request 429 until turned off.
    pub storm_429: bool,
}

/// One fault, for `fail_next` on a simulator's handle
/// ([`crate::ghl::SimHandle::fail_next`],
/// [`crate::app::AppSimHandle::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (no handler run).
    Status(u16),
    /// 429 with `Retry-After: 1` (no handler run).
    TooManyRequests,
    /// Drop the connection (no handler run).
    Reset,
    /// Run the handler, send half the body.
    Truncate,
    /// Run the handler, send status 200 with an empty body (seen from
    /// GHL stand-ins built from the spec alone, issue 15: a 2xx whose
    /// promised JSON body never comes).
    EmptyBody,
    /// Run the handler, send an HTML page (200).
    Html,
    /// Run the handler of a write, then drop the connection. Only
    /// POST/PUT/PATCH/DELETE requests consume it.
    LoseResponse,
    /// Run the handler of a write (it is committed), then answer this
    /// error status instead of its answer: GHL's `POST /contacts/` "has
    /// been reported to answer 422 (and other errors) while still
    /// creating the contact" (FIELD-NOTES.md, "Creates"). Only writes
    /// consume it.
    StatusAfterWrite(u16),
}

impl FaultKind {
    /// The key of this fault in the simulators' fault counters
    /// (`status_503`, `storm_429`, `reset`, `truncate`, `html`,
    /// `lose_response`).
    pub(crate) fn label(self) -> String {
        match self {
            FaultKind::Status(s) => format!("status_{s}"),
            FaultKind::TooManyRequests => "storm_429".into(),
            FaultKind::Reset => "reset".into(),
            FaultKind::Truncate => "truncate".into(),
            FaultKind::Html => "html".into(),
            FaultKind::EmptyBody => "empty_body".into(),
            FaultKind::LoseResponse => "lose_response".into(),
            FaultKind::StatusAfterWrite(s) => format!("status_{s}_after_write"),
        }
    }

    /// Only a write (POST, PUT, PATCH, DELETE) can take this fault.
    fn writes_only(self) -> bool {
        matches!(
            self,
            FaultKind::LoseResponse | FaultKind::StatusAfterWrite(_)
        )
    }

    fn before_handler(self) -> bool {
        matches!(
            self,
            FaultKind::Status(_) | FaultKind::TooManyRequests | FaultKind::Reset
        )
    }
}

/// What to do to one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub latency: Duration,
    pub before: Option<FaultKind>,
    pub after: Option<FaultKind>,
}

/// The fault configuration in force, the queue of `fail_next` faults, the
/// edits waiting for a request (`before_next`) and the RNG: one per
/// simulator, behind its mutex.
pub(crate) struct FaultState {
    pub config: FaultConfig,
    queue: VecDeque<(FaultKind, u32)>,
    hooks: Vec<Hook>,
    rng: ChaCha8Rng,
}

impl std::fmt::Debug for FaultState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultState")
            .field("config", &self.config)
            .field("queue", &self.queue)
            .field("hooks", &self.hooks.len())
            .field("rng", &self.rng)
            .finish()
    }
}

/// Something a test wants to happen just before the handler of one
/// request: a person editing a record between the daemon's read and its
/// write (the race of issue 13, "an edit made while we wrote was lost").
/// Live GHL and apps have such users; a simulator must be able to be one.
struct Hook {
    method: Method,
    /// The route template the counters use (`/contacts/:contactId`).
    route: String,
    action: Box<dyn FnOnce() + Send>,
}

/// Whether a method writes (the only requests a lost response applies to).
pub(crate) fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    )
}

impl FaultState {
    pub fn new(config: FaultConfig, rng: ChaCha8Rng) -> Self {
        FaultState {
            config,
            queue: VecDeque::new(),
            hooks: Vec::new(),
            rng,
        }
    }

    /// Runs `action` just before the handler of the next `method` request
    /// on `route` (once).
    pub fn before_next(&mut self, method: Method, route: &str, action: Box<dyn FnOnce() + Send>) {
        self.hooks.push(Hook {
            method,
            route: route.to_owned(),
            action,
        });
    }

    /// The action waiting for this request, if any (taken: it runs once).
    pub fn take_hook(&mut self, method: &Method, route: &str) -> Option<Box<dyn FnOnce() + Send>> {
        let index = self
            .hooks
            .iter()
            .position(|h| h.method == *method && h.route == route)?;
        Some(self.hooks.remove(index).action)
    }

    pub fn push(&mut self, kind: FaultKind, count: u32) {
        if count > 0 {
            self.queue.push_back((kind, count));
        }
    }

    pub fn clear_queue(&mut self) {
        self.queue.clear();
        self.hooks.clear();
    }

    /// Decides the faults of one request: a queued fault first (the oldest
    /// this request is eligible for), else the random ones.
    pub fn plan(&mut self, method: &Method) -> Plan {
        let config = self.config.clone();
        let mut plan = Plan {
            latency: config.latency,
            ..Plan::default()
        };
        if !config.jitter.is_zero() {
            let extra = self.rng.gen_range(0..=config.jitter.as_micros() as u64);
            plan.latency += Duration::from_micros(extra);
        }
        let write = is_write(method);
        if let Some(index) = self
            .queue
            .iter()
            .position(|(kind, _)| !kind.writes_only() || write)
        {
            let (kind, left) = &mut self.queue[index];
            let kind = *kind;
            *left -= 1;
            if *left == 0 {
                self.queue.remove(index);
            }
            if kind.before_handler() {
                plan.before = Some(kind);
            } else {
                plan.after = Some(kind);
            }
            return plan;
        }
        if config.storm_429 {
            plan.before = Some(FaultKind::TooManyRequests);
            return plan;
        }
        if self.hit(config.reset_rate) {
            plan.before = Some(FaultKind::Reset);
            return plan;
        }
        for (status, p) in &config.error_rates {
            if self.hit(*p) {
                plan.before = Some(FaultKind::Status(*status));
                return plan;
            }
        }
        if self.hit(config.truncate_rate) {
            plan.after = Some(FaultKind::Truncate);
        } else if self.hit(config.html_rate) {
            plan.after = Some(FaultKind::Html);
        } else if write && self.hit(config.lose_response_rate) {
            plan.after = Some(FaultKind::LoseResponse);
        }
        plan
    }

    fn hit(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen::<f64>() < p
    }
}
