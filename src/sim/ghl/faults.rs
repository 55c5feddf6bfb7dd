//! Fault injection, drawn from a seeded RNG so a run is reproducible for a
//! given sequence of requests.
//!
//! Where each fault acts in the request pipeline:
//! 1. `latency` (+ uniform `jitter`) delays the request first;
//! 2. `storm_429`, `reset_rate` and `error_rates` act before
//!    authentication and the handler (nothing is written, nothing counts
//!    toward the rate-limit window);
//! 3. `truncate_rate`, `html_rate` and `lose_response_rate` act after the
//!    handler ran (a write is committed): the body is cut in half (valid
//!    HTTP, invalid JSON), replaced by an HTML page (status 200,
//!    `text/html`), or the connection is reset instead of answering.
//!    `lose_response_rate` applies to writes (POST, PUT, DELETE) only.
//!
//! A connection reset closes the TCP socket with `SO_LINGER` 0 (an RST)
//! without writing a byte of the response.

use std::collections::VecDeque;
use std::time::Duration;

use axum::http::Method;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Faults applied at random; all probabilities are in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// `(status, probability)`, tried in order; 500 gets a JSON body,
    /// 502/503/504 an HTML gateway page (as a proxy would send).
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

/// One fault, for [`super::SimHandle::fail_next`].
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
    /// Run the handler, send an HTML page (200).
    Html,
    /// Run the handler of a write, then drop the connection. Only
    /// POST/PUT/DELETE requests consume it.
    LoseResponse,
}

impl FaultKind {
    pub(crate) fn label(self) -> String {
        match self {
            FaultKind::Status(s) => format!("status_{s}"),
            FaultKind::TooManyRequests => "storm_429".into(),
            FaultKind::Reset => "reset".into(),
            FaultKind::Truncate => "truncate".into(),
            FaultKind::Html => "html".into(),
            FaultKind::LoseResponse => "lose_response".into(),
        }
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

#[derive(Debug)]
pub(crate) struct FaultState {
    pub config: FaultConfig,
    queue: VecDeque<(FaultKind, u32)>,
    rng: ChaCha8Rng,
}

fn is_write(method: &Method) -> bool {
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
            rng,
        }
    }

    pub fn push(&mut self, kind: FaultKind, count: u32) {
        if count > 0 {
            self.queue.push_back((kind, count));
        }
    }

    pub fn clear_queue(&mut self) {
        self.queue.clear();
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
            .position(|(kind, _)| *kind != FaultKind::LoseResponse || write)
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

/// The HTML page of an HTML fault or a 502/503/504.
pub(crate) fn html_page(status: u16, reason: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\
         <body><center><h1>{status} {reason}</h1></center><hr><center>cloudflare</center></body></html>\n"
    )
}
