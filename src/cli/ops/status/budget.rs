//! `status`'s view of a GHL side's day: requests per purpose since UTC
//! midnight, their projection to the next midnight at the recent pace, and
//! what the daemon stops first when that projection crosses the budget
//! (the order the limiter enforces: bulk work, then polls, writes last).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::connector::ghl::RateLimits;
use crate::domain::Purpose;
use crate::store::{RequestUsage, SideHealth};

/// The order in which work stops as the day's budget runs short.
pub const STOP_ORDER: [&str; 3] = [
    "bulk work (reconcile, children_sweep): as soon as what is left above the write reserve \
     no longer covers the live work's projected need until UTC midnight",
    "polls and webhook syncs: when only the write reserve is left",
    "writes: when nothing is left",
];

/// One purpose's day.
#[derive(Debug, Serialize)]
pub struct PurposeUse {
    purpose: Purpose,
    requests: i64,
    projected: i64,
}

/// Whether the day's projection fits the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outlook {
    /// The projection stays below the budget less the write reserve.
    WithinBudget,
    /// The projection crosses it: bulk work stops first.
    CrossesBudget,
}

/// A GHL side's requests today (UTC).
#[derive(Debug, Serialize)]
pub struct DayBudget {
    day: String,
    purposes: Vec<PurposeUse>,
    requests: i64,
    projected: i64,
    daily_limit: u32,
    write_reserve: u32,
    outlook: Outlook,
    /// Whether the daemon held bulk work back at its last reading.
    bulk_paused: Option<bool>,
    recorded_at: Option<DateTime<Utc>>,
    stop_order: [&'static str; 3],
}

impl DayBudget {
    /// The day of `rows` (one side's, of today) against `limits`.
    pub fn of(
        rows: &[&RequestUsage],
        health: Option<&SideHealth>,
        limits: RateLimits,
        now: DateTime<Utc>,
    ) -> DayBudget {
        let purposes: Vec<PurposeUse> = rows
            .iter()
            .map(|row| PurposeUse {
                purpose: row.purpose,
                requests: row.requests,
                projected: row.projected,
            })
            .collect();
        let requests = purposes.iter().map(|p| p.requests).sum();
        let projected = purposes.iter().map(|p| p.projected).sum();
        let usable = i64::from(limits.daily.saturating_sub(limits.write_reserve));
        DayBudget {
            day: crate::store::day_text(now.date_naive()),
            purposes,
            requests,
            projected,
            daily_limit: limits.daily,
            write_reserve: limits.write_reserve,
            outlook: if projected > usable {
                Outlook::CrossesBudget
            } else {
                Outlook::WithinBudget
            },
            bulk_paused: health.and_then(|h| h.bulk_paused),
            recorded_at: rows.iter().map(|r| r.recorded_at).max(),
            stop_order: STOP_ORDER,
        }
    }

    /// The human table's cell.
    pub fn describe(&self) -> String {
        if self.purposes.is_empty() {
            return format!("none recorded for {} (UTC)", self.day);
        }
        let per_purpose: Vec<String> = self
            .purposes
            .iter()
            .map(|p| format!("{} {}", p.purpose, p.requests))
            .collect();
        let outlook = match self.outlook {
            Outlook::WithinBudget => "within budget".to_owned(),
            Outlook::CrossesBudget => format!(
                "crosses the budget less the {} write reserve",
                self.write_reserve
            ),
        };
        let paused = match self.bulk_paused {
            Some(true) => "bulk work paused now; ",
            _ => "",
        };
        format!(
            "{} so far ({}); projected {} of {} by UTC midnight: {outlook}; {paused}stops first: \
             bulk work, then polls at the write reserve, writes last",
            self.requests,
            per_purpose.join(", "),
            self.projected,
            self.daily_limit
        )
    }
}
