//! Prometheus metrics: every name in one place, the recorder, and the
//! label helpers. Instrumented code uses the `metrics` facade (a no-op
//! until [`install`] runs, so commands other than `run` pay nothing); the
//! daemon renders the text format at `GET /metrics` with
//! `metrics-exporter-prometheus`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// API requests by `side`, `location`, `endpoint` (ids replaced by `:id`)
/// and `status` (`transport` when no response came back).
pub const API_REQUESTS: &str = "ghlsync_api_requests_total";
/// 429 answers by `side` and `location`: each is a pacing bug.
pub const API_THROTTLED: &str = "ghlsync_api_throttled_total";
/// GHL's last `X-RateLimit-Remaining` of the 10 s window, by `location`.
pub const RATE_LIMIT_REMAINING: &str = "ghlsync_rate_limit_remaining";
/// Requests left today, by `location` (GHL's header, else our own count).
pub const DAILY_BUDGET_REMAINING: &str = "ghlsync_daily_budget_remaining";
/// Outbox items by `pair`, target `side` and `status` (pending,
/// in_flight, dead), at scrape time.
pub const OUTBOX_DEPTH: &str = "ghlsync_outbox_depth";
/// Open dead letters by `pair` and `side`, at scrape time.
pub const DEAD_LETTERS: &str = "ghlsync_dead_letters_open";
/// Open conflicts by `pair`, at scrape time.
pub const OPEN_CONFLICTS: &str = "ghlsync_conflicts_open";
/// Seconds between now and the newest change processed, by `pair`,
/// `side`, `location` (GHL sides) and `entity`, at scrape time.
pub const SYNC_LAG: &str = "ghlsync_sync_lag_seconds";
/// Seconds from a change on its side (its `updated_at`) to its write on
/// the other side, by `pair`, `entity` and `direction`.
pub const PROPAGATION: &str = "ghlsync_propagation_seconds";
/// Writes done by `pair`, `entity`, `direction` and `result`.
pub const WRITES: &str = "ghlsync_writes_total";
/// Webhook deliveries by `source`, `type` and `result` (accepted,
/// bad_signature, missing_signature, stale, replayed, malformed, ignored,
/// queue_full, ...).
pub const WEBHOOK_EVENTS: &str = "ghlsync_webhook_events_total";

/// Propagation buckets: webhooks land in the first few, polling in the
/// middle, retries and outages at the end.
const PROPAGATION_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
];

/// Installs the process-wide recorder once and returns its handle; later
/// calls return the same handle (tests run several daemons in one
/// process).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(PROPAGATION.into()), &PROPAGATION_BUCKETS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (a test harness's) may already be installed;
            // the handle then renders an empty registry, which is honest.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The endpoint label of a request path: segments that are not plain
/// words (ids, emails, numbers) become `:id`, so the label set stays
/// bounded whatever the ids.
pub fn endpoint_label(path: &str) -> String {
    let mut label = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        label.push('/');
        let word = segment.len() <= 32
            && segment
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-' || c == '_');
        label.push_str(if word { segment } else { ":id" });
    }
    if label.is_empty() {
        label.push('/');
    }
    label
}

/// Counts one API call.
pub fn api_call(side: &str, location: &str, method: &str, path: &str, status: Option<u16>) {
    let status = status.map_or_else(|| "transport".to_owned(), |s| s.to_string());
    if status == "429" {
        metrics::counter!(API_THROTTLED, "side" => side.to_owned(), "location" => location.to_owned())
            .increment(1);
    }
    metrics::counter!(
        API_REQUESTS,
        "side" => side.to_owned(),
        "location" => location.to_owned(),
        "endpoint" => format!("{method} {}", endpoint_label(path)),
        "status" => status,
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::endpoint_label;

    #[test]
    fn ids_never_become_labels() {
        assert_eq!(
            endpoint_label("/contacts/aBc123xYz9/tasks/Zz9"),
            "/contacts/:id/tasks/:id"
        );
        assert_eq!(endpoint_label("/contacts/search"), "/contacts/search");
        assert_eq!(endpoint_label("/api/people/12345"), "/api/people/:id");
        assert_eq!(endpoint_label("/contacts/"), "/contacts");
        assert_eq!(endpoint_label(""), "/");
    }
}
