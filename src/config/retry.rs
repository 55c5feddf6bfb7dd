//! `[sides.<name>.retry]`, shared by every kind of side: how transient
//! failures (429, 5xx, timeouts, resets) are retried.

use super::reader::{Got, Table};
use crate::connector::http::RetryPolicy;

/// Reads the side's `retry` table; absent keys take the defaults.
pub(super) fn read_retry(side: &mut Table<'_>) -> Option<RetryPolicy> {
    let defaults = RetryPolicy::default();
    let mut table = match side.table("retry") {
        Got::Value(table) => table,
        Got::Absent => return Some(defaults),
        Got::Invalid => return None,
    };
    let max_attempts = table
        .integer_in("max_attempts", 1, 100)
        .with_default(|| defaults.max_attempts as u64);
    let min_delay = table
        .duration("min_delay")
        .with_default(|| defaults.min_delay);
    let max_delay = table
        .duration("max_delay")
        .with_default(|| defaults.max_delay);
    let mut ordered = true;
    if let (Some(min), Some(max)) = (min_delay, max_delay) {
        if min > max {
            ordered = false;
            table.report(
                "min_delay",
                Some(humantime::format_duration(min).to_string()),
                format!(
                    "must not be longer than max_delay ({})",
                    humantime::format_duration(max)
                ),
            );
        }
    }
    table.finish();
    if !ordered {
        return None;
    }
    Some(RetryPolicy {
        max_attempts: max_attempts? as usize,
        min_delay: min_delay?,
        max_delay: max_delay?,
    })
}
