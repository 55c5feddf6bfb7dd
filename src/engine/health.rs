//! The daemon's readings of each side's request budget, stored for
//! `ghlsync status`: the limiter's state lives in the daemon's memory, and
//! `status` runs as another process.

use crate::domain::Side;

use super::Engine;
use crate::store::SideHealth;

impl Engine {
    /// Stores the current headroom of every side of every pair (sides
    /// without a budget get a row without numbers, so `status` can tell
    /// "no budget" from "the daemon never ran"). A failure is logged, not
    /// returned: a missing reading must never stop syncing.
    pub async fn record_health(&self) {
        let now = crate::clock::now();
        let mut readings = Vec::with_capacity(self.pairs.len() * 2);
        for pair in &self.pairs {
            for role in Side::BOTH {
                let connector = pair.connector(role);
                let budget = connector.budget();
                readings.push(SideHealth {
                    pair: pair.name().to_owned(),
                    side: role,
                    side_name: connector.side().to_owned(),
                    interval_remaining: budget.and_then(|b| b.interval_remaining).map(i64::from),
                    daily_remaining: budget.map(|b| i64::from(b.daily_remaining)),
                    requests: budget.map(|b| i64::try_from(b.requests).unwrap_or(i64::MAX)),
                    throttled: budget.map(|b| i64::try_from(b.throttled).unwrap_or(i64::MAX)),
                    recorded_at: now,
                });
            }
        }
        if let Err(error) = self.store.record_side_health(&readings).await {
            tracing::warn!(error = %error, "cannot store the sides' rate-limit headroom; `status` shows the previous reading");
        }
    }
}
