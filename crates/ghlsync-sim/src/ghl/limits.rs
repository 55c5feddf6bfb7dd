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

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::counters::{counter_snapshot, prune, retry_after};

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
        prune(&mut bucket.window, now, config.interval);
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
                retry_after(&bucket.window, now, config.interval)
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

counter_snapshot! {
    /// A copy of the counters (see [`super::SimHandle::counters`]).
    pub struct CounterSnapshot {
        /// Per `(app, location)`: the most requests that arrived within any
        /// 10 s span (including refused ones).
        pub max_requests_per_10s: BTreeMap<(String, String), u32>,
    }
    span: PEAK_WINDOW;
    /// The largest 10 s peak over all keys.
    pub fn peak_per_10s;
}
