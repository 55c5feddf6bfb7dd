//! Rate limits and request counters.
//!
//! The limiter keeps, per `(app, location)`, a sliding window of the
//! instants of the requests it accepted (burst limit, 100 per 10 s by
//! default) and a daily count that resets at 00:00 UTC (200,000 by
//! default). A request over either limit is answered 429 and is NOT added
//! to the window or the daily count, so a client that backs off for
//! `Retry-After` seconds always gets through.
//!
//! The counters are separate: they count every request received, and for
//! each `(app, location)` the largest number of requests that arrived
//! (including refused ones) within any 10-second span, which is what the
//! sync engine promises to keep at or under 100.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;

/// Limits per `(app, location)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests allowed in any `interval` (`X-RateLimit-Max`).
    pub burst: u32,
    /// The sliding window (`X-RateLimit-Interval-Milliseconds`).
    pub interval: Duration,
    /// Requests allowed per UTC day (`X-RateLimit-Limit-Daily`).
    pub daily: u64,
}

impl Default for RateLimitConfig {
    /// GHL's published limits: 100 per 10 s, 200,000 per day.
    fn default() -> Self {
        RateLimitConfig {
            burst: 100,
            interval: Duration::from_secs(10),
            daily: 200_000,
        }
    }
}

/// The outcome of a rate-limit check, with the values for the headers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub config: RateLimitConfig,
    pub remaining: u32,
    pub daily_remaining: u64,
    /// Seconds until a slot frees (only when refused).
    pub retry_after: u64,
}

#[derive(Debug, Default)]
struct Bucket {
    window: VecDeque<Instant>,
    day: i64,
    daily_used: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Limiter {
    pub config: RateLimitConfig,
    buckets: HashMap<(String, String), Bucket>,
}

fn today() -> i64 {
    Utc::now().timestamp().div_euclid(86_400)
}

fn secs_to_midnight() -> u64 {
    let now = Utc::now().timestamp();
    (86_400 - now.rem_euclid(86_400)) as u64
}

impl Limiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Limiter {
            config,
            buckets: HashMap::new(),
        }
    }

    pub fn reset(&mut self) {
        self.buckets.clear();
    }

    pub fn check(&mut self, key: &(String, String)) -> Decision {
        let config = self.config;
        let now = Instant::now();
        let bucket = self.buckets.entry(key.clone()).or_default();
        while bucket
            .window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= config.interval)
        {
            bucket.window.pop_front();
        }
        let day = today();
        if bucket.day != day {
            bucket.day = day;
            bucket.daily_used = 0;
        }
        let burst_full = bucket.window.len() as u64 >= u64::from(config.burst);
        let daily_full = bucket.daily_used >= config.daily;
        if burst_full || daily_full {
            let retry_after = if daily_full {
                secs_to_midnight()
            } else {
                let oldest = bucket.window.front().copied().unwrap_or(now);
                let wait = config.interval.saturating_sub(now.duration_since(oldest));
                wait.as_millis().div_ceil(1000).max(1) as u64
            };
            return Decision {
                allowed: false,
                config,
                remaining: 0,
                daily_remaining: config.daily.saturating_sub(bucket.daily_used),
                retry_after,
            };
        }
        bucket.window.push_back(now);
        bucket.daily_used += 1;
        Decision {
            allowed: true,
            config,
            remaining: config.burst.saturating_sub(bucket.window.len() as u32),
            daily_remaining: config.daily.saturating_sub(bucket.daily_used),
            retry_after: 0,
        }
    }
}

/// The span of [`CounterSnapshot::max_requests_per_10s`].
pub const PEAK_WINDOW: Duration = Duration::from_secs(10);

/// One request counter key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The spec's path template, e.g. `/contacts/{contactId}`.
    pub route: String,
    /// The status sent; `0` when the connection was dropped without a
    /// response (reset and lost-response faults).
    pub status: u16,
}

/// A copy of the counters (see [`super::SimHandle::counters`]).
#[derive(Debug, Clone, Default)]
pub struct CounterSnapshot {
    /// Requests by method, route template and status.
    pub requests: BTreeMap<RouteKey, u64>,
    /// Every request received on an API route.
    pub total_requests: u64,
    /// 429 answers sent (limiter and 429 storm).
    pub too_many_requests: u64,
    /// Per `(app, location)`: the most requests that arrived within any
    /// 10 s span (including refused ones).
    pub max_requests_per_10s: BTreeMap<(String, String), u32>,
    /// Faults injected, by kind (`status_500`, `reset`, `truncate`, ...).
    pub faults: BTreeMap<String, u64>,
}

impl CounterSnapshot {
    /// Requests with this method, route template and status.
    pub fn count(&self, method: &str, route: &str, status: u16) -> u64 {
        self.requests
            .get(&RouteKey {
                method: method.into(),
                route: route.into(),
                status,
            })
            .copied()
            .unwrap_or(0)
    }

    /// Requests with this method and route template, any status.
    pub fn count_route(&self, method: &str, route: &str) -> u64 {
        self.requests
            .iter()
            .filter(|(k, _)| k.method == method && k.route == route)
            .map(|(_, n)| n)
            .sum()
    }

    /// The largest 10 s peak over all keys.
    pub fn peak_per_10s(&self) -> u32 {
        self.max_requests_per_10s
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    snapshot: CounterSnapshot,
    arrivals: HashMap<(String, String), VecDeque<Instant>>,
}

impl Counters {
    pub fn record(&mut self, method: &str, route: &str, status: u16) {
        self.snapshot.total_requests += 1;
        *self
            .snapshot
            .requests
            .entry(RouteKey {
                method: method.into(),
                route: route.into(),
                status,
            })
            .or_default() += 1;
        if status == 429 {
            self.snapshot.too_many_requests += 1;
        }
    }

    pub fn fault(&mut self, kind: &str) {
        *self.snapshot.faults.entry(kind.into()).or_default() += 1;
    }

    pub fn arrival(&mut self, key: &(String, String)) {
        let now = Instant::now();
        let window = self.arrivals.entry(key.clone()).or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= PEAK_WINDOW)
        {
            window.pop_front();
        }
        window.push_back(now);
        let n = window.len() as u32;
        let max = self
            .snapshot
            .max_requests_per_10s
            .entry(key.clone())
            .or_default();
        *max = (*max).max(n);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        self.snapshot.clone()
    }

    pub fn reset(&mut self) {
        *self = Counters::default();
    }
}
