//! What `ghlsync status` reports that no other table answers directly: the
//! rate-limit headroom the daemon last saw on each side (written by the
//! daemon, since the limiter lives in its memory), and a pair's backlog
//! (outbox, dead letters, conflicts) counted per side.

use chrono::{DateTime, Utc};

use crate::domain::{PerSide, Side};

use super::error::{op_err, Result};
use super::outbox::OutboxStatus;
use super::sql::{now, us};
use super::Store;

/// One side's request budget as the daemon last saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SideHealth {
    pub pair: String,
    pub side: Side,
    /// The configured side name, so a reading stays readable after a rename.
    pub side_name: String,
    /// The server's last `X-RateLimit-Remaining` in the burst window.
    pub interval_remaining: Option<i64>,
    /// Requests left today; None for a side without a budget (REST apps).
    pub daily_remaining: Option<i64>,
    /// Requests sent by the daemon since it started (None: no budget).
    pub requests: Option<i64>,
    /// 429 responses since the daemon started (None: no budget).
    pub throttled: Option<i64>,
    /// Whether bulk work was held back for the live work's projected need
    /// (None: no budget, or a reading from before migration 0010).
    pub bulk_paused: Option<bool>,
    /// When the reading was taken: `status` shows its age, because a
    /// stopped daemon leaves its last reading behind.
    pub recorded_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct SideHealthRow {
    pair: String,
    side: Side,
    side_name: String,
    interval_remaining: Option<i64>,
    daily_remaining: Option<i64>,
    requests: Option<i64>,
    throttled: Option<i64>,
    bulk_paused: Option<bool>,
    recorded_at: DateTime<Utc>,
}

impl From<SideHealthRow> for SideHealth {
    fn from(r: SideHealthRow) -> SideHealth {
        SideHealth {
            pair: r.pair,
            side: r.side,
            side_name: r.side_name,
            interval_remaining: r.interval_remaining,
            daily_remaining: r.daily_remaining,
            requests: r.requests,
            throttled: r.throttled,
            bulk_paused: r.bulk_paused,
            recorded_at: r.recorded_at,
        }
    }
}

/// Outbox items aimed at one side, by what an operator acts on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SideOutbox {
    /// Waiting for a writer (including those being written now).
    pub pending: i64,
    /// Pending items a writer holds a live lease on right now.
    pub in_flight: i64,
    /// Failed for good (`dead`): each has a dead letter.
    pub failed: i64,
}

/// A pair's backlog, per side (`a`, `b`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PairBacklog {
    /// Writes aimed at each side.
    outbox: PerSide<SideOutbox>,
    /// Open dead letters of each side's records or writes.
    dead_letters: PerSide<i64>,
    pub open_conflicts: i64,
    /// Records waiting to be decided again (`redecisions.rs`): each a
    /// change no decision has carried yet, held up by a side that could
    /// not be read.
    pub redecisions: i64,
}

impl PairBacklog {
    pub fn outbox(&self, side: Side) -> SideOutbox {
        self.outbox[side]
    }

    pub fn dead_letters(&self, side: Side) -> i64 {
        self.dead_letters[side]
    }
}

impl Store {
    /// Replaces the stored headroom readings of these sides (one row per
    /// (pair, side)), stamping them with `recorded_at`.
    pub async fn record_side_health(&self, readings: &[SideHealth]) -> Result<()> {
        const SQL: &str = "INSERT INTO side_health (pair, side, side_name, interval_remaining, \
             daily_remaining, requests, throttled, bulk_paused, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (pair, side) DO UPDATE SET side_name = excluded.side_name, \
               interval_remaining = excluded.interval_remaining, \
               daily_remaining = excluded.daily_remaining, requests = excluded.requests, \
               throttled = excluded.throttled, bulk_paused = excluded.bulk_paused, \
               recorded_at = excluded.recorded_at";
        for r in readings {
            on_pool!(self, |p| {
                sqlx::query(SQL)
                    .bind(r.pair.as_str())
                    .bind(r.side)
                    .bind(r.side_name.as_str())
                    .bind(r.interval_remaining)
                    .bind(r.daily_remaining)
                    .bind(r.requests)
                    .bind(r.throttled)
                    .bind(r.bulk_paused)
                    .bind(us(r.recorded_at))
                    .execute(p)
                    .await
                    .map(|_| ())
            })
            .map_err(op_err(|| {
                format!("record_side_health(pair={}, side={})", r.pair, r.side)
            }))?;
        }
        Ok(())
    }

    /// The last headroom readings of a pair's sides (none before the
    /// daemon's first pass).
    pub async fn side_health(&self, pair: &str) -> Result<Vec<SideHealth>> {
        let rows: Vec<SideHealthRow> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT pair, side, side_name, interval_remaining, daily_remaining, requests, \
                 throttled, bulk_paused, recorded_at FROM side_health WHERE pair = $1 ORDER BY side",
            )
            .bind(pair)
            .fetch_all(p)
            .await
        })
        .map_err(op_err(|| format!("side_health(pair={pair})")))?;
        Ok(rows.into_iter().map(SideHealth::from).collect())
    }

    /// A pair's outbox depth, open dead letters and open conflicts, per
    /// side: three small aggregate queries.
    pub async fn pair_backlog(&self, pair: &str) -> Result<PairBacklog> {
        let now = now();
        let outbox: Vec<(Side, OutboxStatus, i64, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT target_side, status, COUNT(*), \
                        COALESCE(SUM(CASE WHEN locked_until > $2 THEN 1 ELSE 0 END), 0) \
                 FROM outbox WHERE pair = $1 AND status IN ('pending', 'dead') \
                 GROUP BY target_side, status",
            )
            .bind(pair)
            .bind(now)
            .fetch_all(p)
            .await
        })
        .map_err(op_err(|| format!("pair_backlog(pair={pair}): outbox")))?;
        let letters: Vec<(Side, i64)> = on_pool!(self, |p| {
            sqlx::query_as(
                "SELECT side, COUNT(*) FROM dead_letters WHERE pair = $1 AND status = 'open' \
                 GROUP BY side",
            )
            .bind(pair)
            .fetch_all(p)
            .await
        })
        .map_err(op_err(|| {
            format!("pair_backlog(pair={pair}): dead letters")
        }))?;
        let conflicts: i64 = on_pool!(self, |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM conflicts WHERE pair = $1 AND status = 'open'")
                .bind(pair)
                .fetch_one(p)
                .await
        })
        .map_err(op_err(|| format!("pair_backlog(pair={pair}): conflicts")))?;

        let mut backlog = PairBacklog {
            open_conflicts: conflicts,
            redecisions: self.redecisions_waiting(pair).await?,
            ..PairBacklog::default()
        };
        for (side, status, count, leased) in outbox {
            let slot = &mut backlog.outbox[side];
            match status {
                OutboxStatus::Pending => {
                    slot.pending = count;
                    slot.in_flight = leased;
                }
                OutboxStatus::Dead => slot.failed = count,
                OutboxStatus::Done | OutboxStatus::Cancelled => {}
            }
        }
        for (side, count) in letters {
            backlog.dead_letters[side] = count;
        }
        Ok(backlog)
    }
}
