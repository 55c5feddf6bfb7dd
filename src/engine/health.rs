//! The daemon's readings of each side's request budget, stored for
//! `ghlsync status`: the limiter's state lives in the daemon's memory, and
//! `status` runs as another process. Besides what is left of the budget,
//! the day's requests per purpose and their projection to UTC midnight
//! (`store::usage`), which a restarted daemon carries over.

use crate::connector::ghl::{Headroom, RateLimiter, PURPOSES};
use crate::domain::{Purpose, Side};

use super::{Engine, PairRuntime};
use crate::store::{day_text, RequestUsage, SideHealth, StoreError};

impl Engine {
    /// Stores the current headroom of every side of every pair (sides
    /// without a budget get a row without numbers, so `status` can tell
    /// "no budget" from "the daemon never ran"), and the day's requests
    /// per purpose. A failure is logged, not returned: a missing reading
    /// must never stop syncing.
    pub async fn record_health(&self) {
        let now = crate::clock::now();
        let mut readings = Vec::with_capacity(self.pairs.len() * 2);
        let mut usage = Vec::new();
        for pair in &self.pairs {
            for role in Side::BOTH {
                let connector = pair.connector(role);
                if let Some(limiter) = connector.limiter() {
                    if let Err(error) = self.resume_day(pair, role, &limiter).await {
                        tracing::warn!(error = %error, "cannot read the day's earlier request counts; counting from now");
                    }
                }
                let budget = connector.budget();
                readings.push(SideHealth {
                    pair: pair.name().to_owned(),
                    side: role,
                    side_name: connector.side().to_owned(),
                    interval_remaining: budget.and_then(|b| b.interval_remaining).map(i64::from),
                    daily_remaining: budget.map(|b| i64::from(b.daily_remaining)),
                    requests: budget.map(|b| i64::try_from(b.requests).unwrap_or(i64::MAX)),
                    throttled: budget.map(|b| i64::try_from(b.throttled).unwrap_or(i64::MAX)),
                    bulk_paused: budget.map(|b| b.usage.bulk_paused),
                    recorded_at: now,
                });
                if let Some(budget) = budget {
                    usage.extend(usage_rows(pair, role, &budget, now));
                    publish(connector.side(), &budget);
                }
            }
        }
        if let Err(error) = self.store.record_side_health(&readings).await {
            tracing::warn!(error = %error, "cannot store the sides' rate-limit headroom; `status` shows the previous reading");
        }
        if let Err(error) = self.store.record_request_usage(&usage).await {
            tracing::warn!(error = %error, "cannot store the day's requests per purpose; `status` shows the previous reading");
        }
    }

    /// Carries the count an earlier run of today recorded into `limiter`,
    /// once: without it a restart would make the day look unused, and the
    /// projection that holds bulk work back would start from zero.
    async fn resume_day(
        &self,
        pair: &PairRuntime,
        role: Side,
        limiter: &RateLimiter,
    ) -> Result<(), StoreError> {
        if !limiter.needs_resume() {
            return Ok(());
        }
        let day = chrono::Utc::now().date_naive();
        let mut earlier = [0u64; PURPOSES];
        for row in self.store.request_usage(pair.name(), day).await? {
            if row.side == role {
                earlier[row.purpose.index()] = u64::try_from(row.requests).unwrap_or(0);
            }
        }
        limiter.resume_day(day, earlier);
        Ok(())
    }
}

/// The rows of one side's day (purposes that sent nothing and project
/// nothing are left out).
fn usage_rows(
    pair: &PairRuntime,
    role: Side,
    budget: &Headroom,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<RequestUsage> {
    let Some(day) = budget.usage.day else {
        return Vec::new();
    };
    Purpose::ALL
        .iter()
        .filter(|p| budget.usage.projected(**p) > 0)
        .map(|purpose| RequestUsage {
            pair: pair.name().to_owned(),
            side: role,
            day: day_text(day),
            purpose: *purpose,
            requests: i64::try_from(budget.usage.today(*purpose)).unwrap_or(i64::MAX),
            projected: i64::try_from(budget.usage.projected(*purpose)).unwrap_or(i64::MAX),
            recorded_at: now,
        })
        .collect()
}

/// The projection in `/metrics` (the counts themselves are counted as they
/// are sent, by the client).
fn publish(side: &str, budget: &Headroom) {
    let side = side.to_owned();
    for purpose in Purpose::ALL {
        metrics::gauge!(
            crate::metrics::DAILY_BUDGET_PROJECTED,
            "side" => side.clone(),
            "purpose" => purpose.as_str(),
        )
        .set(budget.usage.projected(*purpose) as f64);
    }
    metrics::gauge!(crate::metrics::BULK_PAUSED, "side" => side).set(if budget.usage.bulk_paused {
        1.0
    } else {
        0.0
    });
}
