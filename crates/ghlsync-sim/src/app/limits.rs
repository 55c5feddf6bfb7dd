//! Rate limit and request counters.
//!
//! The limiter keeps, per token, a sliding one-second window of the
//! instants of the requests it accepted. A request that would make more
//! than `limit` in the last second is answered 429 with `Retry-After` (whole
//! seconds, at least 1) and is NOT added to the window, so a client that
//! waits `Retry-After` always gets through. Every response carries
//! `X-RateLimit-Limit` (the limit) and `X-RateLimit-Remaining` (requests
//! left in the current window for that token; the limit for a request
//! without a known token).
//!
//! The counters count every request received on an API route, and per
//! token the most requests that arrived (refused ones included) within any
//! one-second span.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::counters::{counter_snapshot, prune, retry_after};

/// The limiter's window.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The outcome of a rate-limit check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until a slot frees (only when refused).
    pub retry_after: u64,
}

/// Sliding-window limiter per token; `limit: None` = no limit.
#[derive(Debug)]
pub(crate) struct Limiter {
    pub limit: Option<u32>,
    windows: HashMap<String, VecDeque<Instant>>,
}

impl Limiter {
    pub fn new(limit: Option<u32>) -> Self {
        Limiter {
            limit: limit.filter(|l| *l > 0),
            windows: HashMap::new(),
        }
    }

    pub fn reset(&mut self) {
        self.windows.clear();
    }

    fn window(&mut self, token: &str, now: Instant) -> &mut VecDeque<Instant> {
        let window = self.windows.entry(token.to_string()).or_default();
        prune(window, now, RATE_WINDOW);
        window
    }

    /// Counts a request of `token` if it fits; `None` when unlimited.
    pub fn check(&mut self, token: &str) -> Option<Decision> {
        let limit = self.limit?;
        let now = Instant::now();
        let window = self.window(token, now);
        if window.len() as u64 >= u64::from(limit) {
            return Some(Decision {
                allowed: false,
                limit,
                remaining: 0,
                retry_after: retry_after(window, now, RATE_WINDOW),
            });
        }
        window.push_back(now);
        Some(Decision {
            allowed: true,
            limit,
            remaining: limit.saturating_sub(window.len() as u32),
            retry_after: 0,
        })
    }

    /// The headers' values without counting a request (`token: None` = a
    /// request without a known token); `None` when unlimited.
    pub fn peek(&mut self, token: Option<&str>) -> Option<Decision> {
        let limit = self.limit?;
        let used = match token {
            Some(token) => self.window(token, Instant::now()).len() as u32,
            None => 0,
        };
        Some(Decision {
            allowed: true,
            limit,
            remaining: limit.saturating_sub(used),
            retry_after: 0,
        })
    }
}

counter_snapshot! {
    /// A copy of the counters (see [`super::AppSimHandle::counters`]).
    pub struct CounterSnapshot {
        /// Per token: the most requests that arrived within any one-second
        /// span (refused ones included).
        pub max_requests_per_second: BTreeMap<String, u32>,
    }
    span: RATE_WINDOW;
    /// The largest one-second peak over all tokens.
    pub fn peak_per_second;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_requests_do_not_count() {
        let mut limiter = Limiter::new(Some(3));
        for left in [2, 1, 0] {
            let d = limiter.check("t").unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let refused = limiter.check("t").unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 1);
        assert!(limiter.check("other").unwrap().allowed);
        assert_eq!(limiter.peek(Some("t")).unwrap().remaining, 0);
        assert_eq!(limiter.peek(None).unwrap().remaining, 3);
        assert!(Limiter::new(None).check("t").is_none());
        assert!(Limiter::new(Some(0)).check("t").is_none());
    }
}
