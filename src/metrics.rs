//! Prometheus metrics: every name in one place, the recorder, and the
//! label helpers. Instrumented code uses the `metrics` facade (a no-op
//! until [`install`] runs, so commands other than `run` pay nothing); the
//! daemon renders the text format at `GET /metrics` with
//! `metrics-exporter-prometheus`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// API requests by `side`, `location`, `endpoint` (the method and the
/// endpoint's template, `GET /contacts/:contactId/tasks`, never a path
/// filled with ids) and `status` (`transport` when no response came back).
pub const API_REQUESTS: &str = "ghlsync_api_requests_total";
/// API requests by `side`, `location` and `purpose` (poll, webhook_sync,
/// reconcile, children_sweep, write, other): where the day's budget goes.
pub const API_REQUESTS_BY_PURPOSE: &str = "ghlsync_api_requests_by_purpose_total";
/// Requests of today (UTC) projected to midnight at the recent pace, by
/// `side` (its configured name) and `purpose`, as the daemon last computed
/// them.
pub const DAILY_BUDGET_PROJECTED: &str = "ghlsync_daily_budget_projected";
/// 1 while bulk work is held back for the live work's projected need, by
/// `side`.
pub const BULK_PAUSED: &str = "ghlsync_bulk_paused";
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
/// Webhook deliveries by `route` (the server's route template,
/// `/webhooks/app/:side`), `source`, `type` (a known GHL event type, else
/// `other`; the entity for app deliveries) and `result` (accepted,
/// bad_signature, missing_signature, stale, replayed, malformed, ignored,
/// queue_full, ...). Nothing a delivery carries becomes a label value.
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

/// Counts one API call. `endpoint` is the method and the template the
/// request was filled from (`PUT /contacts/:contactId`), never the path
/// sent: a path holds ids, and a label per id grows without bound (an id
/// from a webhook naming a record that does not exist is still an id).
pub fn api_call(side: &str, location: &str, endpoint: &str, status: Option<u16>) {
    let status = status.map_or_else(|| "transport".to_owned(), |s| s.to_string());
    if status == "429" {
        metrics::counter!(API_THROTTLED, "side" => side.to_owned(), "location" => location.to_owned())
            .increment(1);
    }
    metrics::counter!(
        API_REQUESTS,
        "side" => side.to_owned(),
        "location" => location.to_owned(),
        "endpoint" => endpoint.to_owned(),
        "status" => status,
    )
    .increment(1);
}

/// Counts one API call by its purpose (six values: the label set stays
/// bounded).
pub fn api_call_purpose(side: &str, location: &str, purpose: crate::domain::Purpose) {
    metrics::counter!(
        API_REQUESTS_BY_PURPOSE,
        "side" => side.to_owned(),
        "location" => location.to_owned(),
        "purpose" => purpose.as_str(),
    )
    .increment(1);
}
