//! Pacing of requests to one GHL budget: an app (client) on one location.
//!
//! GHL allows 100 requests per 10 seconds and 200,000 per day for each app
//! on each location (`docs/oauth/Authorization.md`). A 429 means our pacing
//! failed, so the limiter keeps well inside the limits instead of reacting
//! to them:
//!
//! * **Burst window.** A GCRA quota (governor) admits at most
//!   `burst + floor(window / period)` requests in any window. With a burst of
//!   1 and `period = interval / (max - headroom)` that is
//!   `1 + (max - headroom - 1) = max - headroom` per interval: 96 of 100 with
//!   the default headroom of 4, which sustains 96% of the budget.
//! * **Adaptive.** Every response's `X-RateLimit-Remaining` is read: when
//!   another consumer of the same budget leaves us almost nothing, callers
//!   wait for a slot's worth of time (or the whole interval at zero) before
//!   the server has to refuse. A 429 pauses every caller for `Retry-After`.
//! * **Daily.** `X-RateLimit-Daily-Remaining` (or our own count when the
//!   header is missing) is kept; reads stop when only the write reserve is
//!   left, so polling can never starve writes, and writes stop at zero.
//! * **Priority.** Every request carries a [`Purpose`]. Live work (polls,
//!   targeted syncs, writes) waits only for the pace; bulk work
//!   (reconciliation, the children sweep) takes a slot only when no live
//!   request is waiting, so it takes what is left of each window, and it
//!   stops first: as soon as what is left of the day above the write
//!   reserve no longer covers the live work's projected need until UTC
//!   midnight (`usage.rs`). Then polls stop at the write reserve, and
//!   writes last, at zero.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::header::HeaderMap;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::domain::{Priority, Purpose};

mod usage;

pub use usage::{PerPurpose, Usage, PURPOSES};

/// The limits of one budget and how much of it we leave unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests allowed per interval (GHL: 100).
    pub max_per_interval: u32,
    /// The sliding interval (GHL: 10 s).
    pub interval: Duration,
    /// Requests we never use per interval, a margin for jitter and for
    /// other tools sharing the budget.
    pub headroom: u32,
    /// Requests allowed per day (GHL: 200,000).
    pub daily: u32,
    /// Requests of the day kept for writes: reads stop when only this many
    /// are left.
    pub write_reserve: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            max_per_interval: 100,
            interval: Duration::from_secs(10),
            headroom: 4,
            daily: 200_000,
            write_reserve: 20_000,
        }
    }
}

impl RateLimits {
    /// Requests per interval we allow ourselves.
    pub fn paced_per_interval(&self) -> u32 {
        self.max_per_interval.saturating_sub(self.headroom).max(1)
    }
}

/// Whether a request reads or writes: reads may not eat the write reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The day's budget is spent (for this kind of request), or, for bulk
/// work, what is left of it is kept for the live work's projected need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct BudgetExhausted {
    pub remaining: u32,
    pub reserve: u32,
    pub resumes_at: DateTime<Utc>,
    /// Set when bulk work is held back: the requests live work is
    /// projected to need until UTC midnight.
    pub kept_for_live: Option<u64>,
}

impl BudgetExhausted {
    fn describe(&self) -> String {
        match self.kept_for_live {
            Some(need) => format!(
                "bulk work paused: {} requests left today ({} kept for writes), and live work is \
                 projected to need {need} more before UTC midnight; resumes when the projection \
                 allows, at the latest {}",
                self.remaining, self.reserve, self.resumes_at
            ),
            None => format!(
                "daily request budget spent ({} left, {} kept for writes); resumes at {}",
                self.remaining, self.reserve, self.resumes_at
            ),
        }
    }
}

/// What is left of a budget, for `status`, `doctor` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headroom {
    /// The server's last `X-RateLimit-Remaining`, if seen.
    pub interval_remaining: Option<u32>,
    /// The day's remaining requests (server header, else our own count).
    pub daily_remaining: u32,
    /// Requests sent through this limiter since start.
    pub requests: u64,
    /// 429 responses received since start: each is a pacing bug.
    pub throttled: u64,
    /// Today's requests per purpose and their projection.
    pub usage: Usage,
}

#[derive(Debug)]
struct Observed {
    /// No request may start before this instant (429 or exhausted window).
    paused_until: Option<Instant>,
    /// Spacing imposed while the server reports almost no slots left.
    slow_until: Option<Instant>,
    interval_remaining: Option<u32>,
    day: NaiveDate,
    /// Requests we sent today (UTC), for when the daily header is missing.
    sent_today: u32,
    /// The server's last `X-RateLimit-Daily-Remaining` for `day`.
    daily_remaining: Option<u32>,
    /// Today's requests per purpose, and their recent pace.
    counts: usage::Counts,
}

/// The pacing state of one (app, location) budget. Share it (`Arc`) among
/// every client that spends that budget.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    gcra: DefaultDirectRateLimiter,
    observed: Mutex<Observed>,
    requests: AtomicU64,
    throttled: AtomicU64,
    /// Live requests waiting for a slot: bulk requests wait while any do.
    live_waiting: watch::Sender<usize>,
}

/// A live request waiting for its slot, counted while it waits.
struct LiveWaiting<'a>(&'a watch::Sender<usize>);

impl<'a> LiveWaiting<'a> {
    fn new(waiting: &'a watch::Sender<usize>) -> Self {
        waiting.send_modify(|n| *n += 1);
        LiveWaiting(waiting)
    }
}

impl Drop for LiveWaiting<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Arc<Self> {
        let per_interval = limits.paced_per_interval();
        let period = limits.interval / per_interval;
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .expect("period is non-zero")
            .allow_burst(NonZeroU32::MIN);
        Arc::new(Self {
            limits,
            gcra: DefaultDirectRateLimiter::direct(quota),
            observed: Mutex::new(Observed {
                paused_until: None,
                slow_until: None,
                interval_remaining: None,
                day: Utc::now().date_naive(),
                sent_today: 0,
                daily_remaining: None,
                counts: usage::Counts::new(Utc::now()),
            }),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            live_waiting: watch::Sender::new(0),
        })
    }

    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Waits until a request for `purpose` may be sent, then counts it.
    /// Fails without waiting when the day's budget for this access (or,
    /// for bulk work, what live work leaves of it) is spent.
    pub async fn acquire(&self, access: Access, purpose: Purpose) -> Result<(), BudgetExhausted> {
        loop {
            let wait = {
                let mut observed = self.observed.lock().expect("limiter lock");
                roll_day(&mut observed);
                self.check_daily(&observed, access, purpose, Utc::now())?;
                let now = Instant::now();
                [observed.paused_until, observed.slow_until]
                    .into_iter()
                    .flatten()
                    .max()
                    .filter(|until| *until > now)
            };
            match wait {
                Some(until) => tokio::time::sleep_until(until).await,
                None => break,
            }
        }
        match purpose.priority() {
            Priority::Live => {
                let _waiting = LiveWaiting::new(&self.live_waiting);
                self.gcra.until_ready().await;
            }
            Priority::Bulk => self.bulk_slot().await,
        }
        // A pause may have started while we waited for the GCRA slot.
        let paused = self.observed.lock().expect("limiter lock").paused_until;
        if let Some(until) = paused.filter(|until| *until > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
        let mut observed = self.observed.lock().expect("limiter lock");
        roll_day(&mut observed);
        observed.sent_today = observed.sent_today.saturating_add(1);
        if let Some(left) = observed.daily_remaining.as_mut() {
            *left = left.saturating_sub(1);
        }
        observed.counts.count(purpose, Utc::now());
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A slot for a bulk request: taken only while no live request waits,
    /// and never queued inside the GCRA (a queued bulk request would hold
    /// the next slot against a live one arriving after it).
    async fn bulk_slot(&self) {
        let mut live = self.live_waiting.subscribe();
        loop {
            // The sender lives as long as `self`: this cannot fail.
            let _ = live.wait_for(|waiting| *waiting == 0).await;
            match self.gcra.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let clock = governor::clock::DefaultClock::default();
                    tokio::time::sleep(not_until.wait_time_from(clock.now())).await;
                }
            }
        }
    }

    fn check_daily(
        &self,
        observed: &Observed,
        access: Access,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<(), BudgetExhausted> {
        let remaining = daily_remaining(observed, self.limits.daily);
        let floor = match access {
            Access::Read => self.limits.write_reserve,
            Access::Write => 0,
        };
        let tomorrow = observed.day.succ_opt().unwrap_or(observed.day);
        let exhausted = |kept_for_live| BudgetExhausted {
            remaining,
            reserve: self.limits.write_reserve,
            resumes_at: tomorrow.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
            kept_for_live,
        };
        if remaining <= floor {
            return Err(exhausted(None));
        }
        if purpose.priority() == Priority::Bulk {
            let need = observed.counts.live_need(now);
            let above_reserve = u64::from(remaining.saturating_sub(self.limits.write_reserve));
            if above_reserve <= need {
                return Err(exhausted(Some(need)));
            }
        }
        Ok(())
    }

    /// Whether an earlier run's count of today is still to be added (see
    /// [`resume_day`](Self::resume_day)).
    pub fn needs_resume(&self) -> bool {
        !self.observed.lock().expect("limiter lock").counts.resumed()
    }

    /// Adds what an earlier run recorded of `day`, once per limiter (two
    /// pairs sharing the budget report the same counts).
    pub fn resume_day(&self, day: NaiveDate, earlier: PerPurpose) -> bool {
        let mut observed = self.observed.lock().expect("limiter lock");
        observed.counts.resume(day, earlier, Utc::now())
    }

    /// Learns from a response's rate-limit headers.
    pub fn observe(&self, headers: &HeaderMap) {
        let number =
            |name: &str| -> Option<u32> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
        let mut observed = self.observed.lock().expect("limiter lock");
        roll_day(&mut observed);
        if let Some(daily) = number("x-ratelimit-daily-remaining") {
            observed.daily_remaining = Some(daily);
        }
        let Some(remaining) = number("x-ratelimit-remaining") else {
            return;
        };
        observed.interval_remaining = Some(remaining);
        let max = number("x-ratelimit-max")
            .unwrap_or(self.limits.max_per_interval)
            .max(1);
        let interval = number("x-ratelimit-interval-milliseconds")
            .map(|ms| Duration::from_millis(u64::from(ms)))
            .unwrap_or(self.limits.interval);
        let now = Instant::now();
        if remaining == 0 {
            // Nothing left: the oldest request of the window must age out.
            observed.paused_until = Some(
                observed
                    .paused_until
                    .map_or(now + interval, |p| p.max(now + interval)),
            );
        } else if remaining <= LOW_WATER {
            // Someone else shares this budget: leave one slot's time
            // between requests until the window refills.
            observed.slow_until = Some(now + interval / max);
        }
    }

    /// A 429 arrived: pause every caller of this budget for `wait`.
    pub fn throttled(&self, wait: Duration) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + wait;
        let mut observed = self.observed.lock().expect("limiter lock");
        observed.paused_until = Some(observed.paused_until.map_or(until, |p| p.max(until)));
    }

    pub fn headroom(&self) -> Headroom {
        let mut observed = self.observed.lock().expect("limiter lock");
        roll_day(&mut observed);
        let now = Utc::now();
        let mut usage = observed.counts.usage(now);
        usage.bulk_paused = self
            .check_daily(&observed, Access::Read, Purpose::Reconcile, now)
            .is_err();
        Headroom {
            interval_remaining: observed.interval_remaining,
            daily_remaining: daily_remaining(&observed, self.limits.daily),
            requests: self.requests.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            usage,
        }
    }
}

/// Remaining slots at or below which we slow down.
const LOW_WATER: u32 = 2;

fn daily_remaining(observed: &Observed, daily: u32) -> u32 {
    observed
        .daily_remaining
        .unwrap_or_else(|| daily.saturating_sub(observed.sent_today))
}

/// Starts a new budget at UTC midnight.
fn roll_day(observed: &mut Observed) {
    let today = Utc::now().date_naive();
    if observed.day != today {
        observed.day = today;
        observed.sent_today = 0;
        observed.daily_remaining = None;
    }
}

/// One limiter per (app, location), shared by every client spending that
/// budget, so two pairs on the same location never add up past the limit.
#[derive(Debug, Default)]
pub struct LimiterRegistry {
    limiters: Mutex<std::collections::HashMap<(String, String), Arc<RateLimiter>>>,
}

impl LimiterRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The limiter of `app` on `location`, created with `limits` on first use.
    pub fn get(&self, app: &str, location: &str, limits: RateLimits) -> Arc<RateLimiter> {
        let mut limiters = self.limiters.lock().expect("registry lock");
        limiters
            .entry((app.to_owned(), location.to_owned()))
            .or_insert_with(|| RateLimiter::new(limits))
            .clone()
    }
}

#[cfg(test)]
mod tests;
