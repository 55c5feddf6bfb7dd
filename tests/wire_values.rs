//! What comes from outside (ids in webhooks, answers of the sides) never
//! becomes a metric label and is bounded where it is echoed into logs: a
//! daemon in this process, both simulators, and deliveries the tests shape.

#[path = "common/daemon_helpers.rs"]
mod daemon_helpers;
#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use chrono::Utc;
use daemon_helpers::{configure, listener, start_sims, Daemon, Signer};
use ghl_sync::demo::{wait_for, Sims};
use serde_json::json;

/// Every log line of this test binary, at debug and above.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Captured;

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the logs of every thread (the daemon's tasks run on the
/// runtime's workers), once for the binary.
fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("ghl_sync=debug")
            .with_ansi(false)
            .with_writer(|| Captured)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    });
}

fn log_lines() -> Vec<String> {
    String::from_utf8_lossy(&LOGS.lock().unwrap())
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A signed GHL `ContactUpdate` about `id`, posted to the daemon.
async fn ghl_event(daemon: &Daemon, signer: &Signer, location: &str, id: &str, webhook_id: &str) {
    let body = serde_json::to_vec(&json!({
        "type": "ContactUpdate",
        "locationId": location,
        "id": id,
        "webhookId": webhook_id,
        "timestamp": Utc::now().to_rfc3339(),
    }))
    .unwrap();
    let signature = signer.ed25519_signature(&body);
    let status = reqwest::Client::new()
        .post(daemon.url("/webhooks/ghl"))
        .header("x-ghl-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the GHL delivery is accepted");
}

/// A signed app delivery about contact `id`, posted to the daemon.
async fn app_event(daemon: &Daemon, sims: &Sims, id: &str) {
    let body = serde_json::to_vec(&json!({"entity": "contact", "id": id})).unwrap();
    let secret = sims.app.handle().webhook_secret();
    let status = reqwest::Client::new()
        .post(daemon.url("/webhooks/app"))
        .header(
            "x-app-signature",
            ghlsync_sim::app::webhook_signature(&secret, &body),
        )
        .header("x-app-timestamp", Utc::now().timestamp().to_string())
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200, "the app delivery is accepted");
}

/// Every label value of every sample in a Prometheus text scrape.
fn label_values(text: &str) -> Vec<(String, String, String)> {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    scrape
        .samples
        .iter()
        .flat_map(|s| {
            s.labels
                .iter()
                .map(|(k, v)| (s.metric.clone(), k.clone(), v.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn endpoints(text: &str) -> Vec<String> {
    label_values(text)
        .into_iter()
        .filter(|(metric, key, _)| metric == "ghlsync_api_requests_total" && key == "endpoint")
        .map(|(_, _, value)| value)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_are_labelled_by_their_template_never_by_ids_from_the_wire() {
    capture_logs();
    let signer = Signer::new(11);
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 2, 1).await;
    let loaded = configure(&sims, dir.path(), address, &signer.trusted());
    let daemon = Daemon::start(&loaded, listen).await;
    let handle = ghl_sync::metrics::install();

    // Plain lowercase words: the old guess took them for path words.
    ghl_event(&daemon, &signer, &sims.location, "nosuchcontact", "wh-1").await;
    app_event(&daemon, &sims, "nosuchrecord").await;
    let fetched = |template: &str| endpoints(&handle.render()).iter().any(|e| e == template);
    wait_for(
        "both records to be fetched",
        Duration::from_secs(20),
        || {
            let text = handle.render();
            let seen = |id| text.contains(id) || endpoints(&text).iter().any(|e| e.contains(id));
            (fetched("GET /contacts/:contactId") || seen("nosuchcontact"))
                && (fetched("GET /api/v1/contacts/:id") || seen("nosuchrecord"))
        },
    )
    .await
    .unwrap_or_else(|error| {
        let lines: Vec<_> = log_lines()
            .into_iter()
            .filter(|l| l.contains("nosuch"))
            .collect();
        panic!(
            "{error}: {:?}\n{}",
            endpoints(&handle.render()),
            lines.join("\n")
        )
    });

    let response = reqwest::get(daemon.url("/metrics")).await.unwrap();
    let text = response.text().await.unwrap();
    for (metric, key, value) in label_values(&text) {
        assert!(
            !value.contains("nosuch"),
            "{metric}{{{key}=\"{value}\"}} carries an id from a webhook"
        );
    }
    let endpoints = endpoints(&text);
    // The old guess: `v1` taken for an id.
    assert!(
        !endpoints.iter().any(|e| e.starts_with("GET /api/:id")),
        "{endpoints:?}"
    );
    // The app's base path is `/api/v1`: `v1` is part of the path, not an id.
    assert!(
        endpoints.iter().any(|e| e == "GET /api/v1/contacts"),
        "{endpoints:?}"
    );
    assert!(
        endpoints.iter().any(|e| e == "GET /contacts/:contactId"),
        "{endpoints:?}"
    );
    assert!(
        endpoints.iter().any(|e| e == "GET /api/v1/contacts/:id"),
        "{endpoints:?}"
    );
    // Webhooks are counted by route.
    let routes: Vec<_> = label_values(&text)
        .into_iter()
        .filter(|(metric, key, _)| metric == "ghlsync_webhook_events_total" && key == "route")
        .map(|(_, _, value)| value)
        .collect();
    assert!(routes.iter().any(|r| r == "/webhooks/ghl"), "{routes:?}");
    assert!(routes.iter().any(|r| r == "/webhooks/app"), "{routes:?}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_100_kb_id_in_a_webhook_is_logged_bounded() {
    capture_logs();
    let signer = Signer::new(12);
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 2, 1).await;
    let loaded = configure(&sims, dir.path(), address, &signer.trusted());
    let daemon = Daemon::start(&loaded, listen).await;

    let huge = "a1".repeat(50_000);
    let marker = "a1a1a1a1a1a1a1a1a1a1";
    ghl_event(&daemon, &signer, &sims.location, &huge, "wh-huge").await;
    app_event(&daemon, &sims, &huge).await;
    let mentions = || {
        log_lines()
            .iter()
            .filter(|line| line.contains(marker))
            .count()
    };
    wait_for("the id to be logged", Duration::from_secs(20), || {
        mentions() >= 2
    })
    .await
    .unwrap();
    // Let the retries of both fetches run their course.
    tokio::time::sleep(Duration::from_secs(5)).await;

    for line in log_lines() {
        assert!(
            line.len() < 4096,
            "a log line of {} bytes: {}…",
            line.len(),
            &line[..300]
        );
    }
    daemon.stop().await;
}
