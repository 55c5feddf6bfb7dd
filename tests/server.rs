//! The daemon's HTTP server end to end: signed webhooks (accepted, forged,
//! missing, stale, replayed, also after a restart), webhook-driven sync in
//! both directions, `/readyz` turning unready, `/metrics` in Prometheus
//! text format, and the body limit.

#[path = "common/daemon_helpers.rs"]
mod daemon_helpers;
#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use std::time::Duration;

use chrono::Utc;
use daemon_helpers::{
    configure, configure_polling, listener, sim_keys, start_sims, Daemon, Signer,
};
use ghl_sync::demo::wait_for;
use ghl_sync::engine::{run_targets, Shutdown, TargetQueue};
use ghl_sync::server::{self, ServerState};
use serde_json::{json, Value};

/// A `ContactUpdate` delivery about `contact` in `location`.
fn event(location: &str, contact: &str, webhook_id: &str, at: chrono::DateTime<Utc>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "ContactUpdate",
        "locationId": location,
        "id": contact,
        "webhookId": webhook_id,
        "timestamp": at.to_rfc3339(),
    }))
    .unwrap()
}

async fn post(url: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Samples of one metric whose labels include `labels`, summed.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text format");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.last().map_or(0.0, |b| b.count)
            }
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signatures_stale_and_replayed_deliveries_are_refused_also_after_a_restart() {
    let signer = Signer::new(7);
    let forger = Signer::new(8);
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 3, 0).await;
    let loaded = configure(&sims, dir.path(), address, &signer.trusted());
    let daemon = Daemon::start(&loaded, listen).await;
    let url = daemon.url("/webhooks/ghl");
    let location = sims.location.clone();
    let contact = sims.ghl.handle().contacts(&location)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Valid RSA alone, valid Ed25519 alone: accepted.
    let body = event(&location, &contact, "wh-rsa", Utc::now());
    let rsa = ("x-wh-signature", signer.rsa_signature(&body));
    assert_eq!(
        post(&url, std::slice::from_ref(&rsa), body.clone()).await.0,
        200
    );
    let body = event(&location, &contact, "wh-ed", Utc::now());
    let ed = ("x-ghl-signature", signer.ed25519_signature(&body));
    let (status, answer) = post(&url, &[ed], body).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("accepted")));

    // Forged (another key), tampered, missing: 401, never processed.
    let body = event(&location, &contact, "wh-forged", Utc::now());
    let forged = ("x-wh-signature", forger.rsa_signature(&body));
    let (status, answer) = post(&url, &[forged], body.clone()).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (401, Some("bad_signature"))
    );
    let forged_ed = ("x-ghl-signature", forger.ed25519_signature(&body));
    assert_eq!(post(&url, &[forged_ed], body.clone()).await.0, 401);
    let signed = ("x-wh-signature", signer.rsa_signature(&body));
    let tampered = event(&location, &contact, "wh-forged2", Utc::now());
    assert_eq!(post(&url, &[signed], tampered).await.0, 401);
    let (status, answer) = post(&url, &[], body).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (401, Some("missing_signature"))
    );

    // Stale: signed, but ten minutes old (the window is five).
    let body = event(
        &location,
        &contact,
        "wh-old",
        Utc::now() - chrono::Duration::minutes(10),
    );
    let signed = ("x-wh-signature", signer.rsa_signature(&body));
    let (status, answer) = post(&url, &[signed], body).await;
    assert_eq!((status, answer["result"].as_str()), (401, Some("stale")));

    // Replayed: the same delivery again.
    let body = event(&location, &contact, "wh-once", Utc::now());
    let signed = ("x-wh-signature", signer.rsa_signature(&body));
    assert_eq!(
        post(&url, std::slice::from_ref(&signed), body.clone())
            .await
            .0,
        200
    );
    let (status, answer) = post(&url, std::slice::from_ref(&signed), body.clone()).await;
    assert_eq!((status, answer["result"].as_str()), (409, Some("replayed")));

    // Every refusal is counted by result.
    let (_, text) = get(&daemon.url("/metrics")).await;
    let refused = |result| {
        metric(
            &text,
            "ghlsync_webhook_events_total",
            &[("source", "ghl"), ("result", result)],
        )
    };
    assert!(refused("bad_signature") >= 3.0, "{text}");
    assert!(refused("missing_signature") >= 1.0);
    assert!(refused("stale") >= 1.0);
    assert!(refused("replayed") >= 1.0);

    // A restart on the same mirror does not reopen the window.
    daemon.stop().await;
    let listen = tokio::net::TcpListener::bind(address).await.unwrap();
    let daemon = Daemon::start(&loaded, listen).await;
    let (status, answer) = post(&url, &[signed], body).await;
    assert_eq!((status, answer["result"].as_str()), (409, Some("replayed")));
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_propagate_both_ways_without_waiting_for_a_poll() {
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 3, 2).await;
    let loaded = configure(&sims, dir.path(), address, &sim_keys(&sims));
    let daemon = Daemon::start(&loaded, listen).await;
    let (ghl, app) = (sims.ghl.handle(), sims.app.handle());
    let location = sims.location.clone();
    let first = ghl.contacts(&location)[0].clone();
    let email = first["email"].as_str().unwrap().to_owned();
    let in_app = |email: &str| {
        app.contacts()
            .into_iter()
            .find(|c| c["email_address"].as_str() == Some(email))
    };
    wait_for(
        "the first pass to link every contact",
        Duration::from_secs(30),
        || in_app(&email).is_some(),
    )
    .await
    .unwrap();

    // GHL edit -> signed webhook -> fetched, decided, written to the app.
    ghl.update_contact_as_user(
        first["id"].as_str().unwrap(),
        json!({"firstName": "Webhooked"}),
    )
    .unwrap();
    wait_for(
        "the GHL edit to reach the app",
        Duration::from_secs(10),
        || in_app(&email).is_some_and(|c| c["first_name"] == "Webhooked"),
    )
    .await
    .unwrap();

    // App edit -> HMAC webhook -> written to GHL.
    let app_id = in_app(&email).unwrap()["id"].clone();
    let app_id = app_id
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| app_id.to_string());
    app.update_contact_as_user(&app_id, json!({"last_name": "FromTheApp"}))
        .unwrap();
    let ghl_id = first["id"].as_str().unwrap().to_owned();
    wait_for("the app edit to reach GHL", Duration::from_secs(10), || {
        ghl.contact(&ghl_id)
            .is_some_and(|c| c["lastName"] == "FromTheApp")
    })
    .await
    .unwrap();

    // A GHL task created by a user reaches the app through TaskCreate.
    ghl.create_task_as_user(
        &ghl_id,
        json!({"title": "Call back", "dueDate": "2026-12-01T10:00:00Z", "completed": false}),
    )
    .unwrap();
    wait_for(
        "the GHL task to reach the app",
        Duration::from_secs(10),
        || app.tasks(&app_id).iter().any(|t| t["name"] == "Call back"),
    )
    .await
    .unwrap();

    let (status, text) = get(&daemon.url("/metrics")).await;
    assert_eq!(status, 200);
    let accepted = |source| {
        metric(
            &text,
            "ghlsync_webhook_events_total",
            &[("source", source), ("result", "accepted")],
        )
    };
    assert!(accepted("ghl") >= 2.0, "{text}");
    assert!(accepted("app") >= 1.0, "{text}");
    assert!(metric(&text, "ghlsync_api_requests_total", &[("side", "ghl")]) > 0.0);
    // GHL to the app: the first name and the task; the app to GHL: the
    // last name (the first pass wrote more).
    let writes = |direction| metric(&text, "ghlsync_writes_total", &[("direction", direction)]);
    assert!(writes("a_to_b") >= 2.0, "{text}");
    assert!(writes("b_to_a") >= 1.0, "{text}");
    assert!(
        metric(&text, "ghlsync_propagation_seconds", &[]) >= 3.0,
        "{text}"
    );
    // The store's gauges, read at scrape time.
    let lag = [
        ("side", "ghl"),
        ("location", location.as_str()),
        ("entity", "contact"),
    ];
    assert!(
        metric(&text, "ghlsync_sync_lag_seconds", &lag) > 0.0,
        "{text}"
    );
    let samples = |name| {
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        scrape.samples.iter().filter(|s| s.metric == name).count()
    };
    // Pending, in flight and dead, towards each side of the one pair.
    assert_eq!(samples("ghlsync_outbox_depth"), 6, "{text}");
    assert_eq!(samples("ghlsync_dead_letters_open"), 2, "{text}");
    assert_eq!(samples("ghlsync_conflicts_open"), 1, "{text}");
    daemon.stop().await;
}

/// Ready after the first successful poll of each side, not after the
/// first full reconciliation, which reads every contact's tasks and notes
/// and can take far longer than a poll at a real location's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_is_ready_after_the_first_polls_before_the_reconciliation_ends() {
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 8, 8).await;
    // Every GHL request takes 100 ms: the poll is one search, the
    // reconciliation's per-contact reads of tasks and notes take seconds.
    sims.ghl
        .handle()
        .set_faults(ghlsync_sim::faults::FaultConfig {
            latency: Duration::from_millis(100),
            ..Default::default()
        });
    let loaded = configure(&sims, dir.path(), address, &sim_keys(&sims));
    let daemon = Daemon::start(&loaded, listen).await;
    let readyz = daemon.url("/readyz");
    let started = std::time::Instant::now();
    while get(&readyz).await.0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reconciled = daemon
        .engine
        .store
        .load_cursor(
            daemon.engine.pairs[0].name(),
            ghl_sync::domain::Side::Ghl,
            ghl_sync::domain::EntityKind::Contact,
            "",
        )
        .await
        .unwrap()
        .and_then(|c| c.last_full_sync_at);
    assert_eq!(
        reconciled, None,
        "ready only once the first reconciliation had finished"
    );
    // The reconciliation does finish, and is recorded (the check above
    // reads the right cursor).
    let pair = daemon.engine.pairs[0].name().to_owned();
    let started = std::time::Instant::now();
    loop {
        let cursor = daemon
            .engine
            .store
            .load_cursor(
                &pair,
                ghl_sync::domain::Side::Ghl,
                ghl_sync::domain::EntityKind::Contact,
                "",
            )
            .await
            .unwrap();
        if cursor.is_some_and(|c| c.last_full_sync_at.is_some()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the first reconciliation never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;
}

/// A reconciliation never blocks the polls: it runs beside them, taking
/// the pair's turn only for each page it decides, so an edit made while it
/// runs is decided by the next poll once the page or chunk of 50
/// contacts' children being decided is done (here up to 60 requests of
/// 150 ms), not after the whole pass (which at a real location's size takes minutes to hours;
/// here every GHL request takes 150 ms and the children sweep alone reads
/// 2 × 30 contacts). Fails when the daemon holds the turn for the polls and
/// the whole reconciliation after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poll_decides_an_edit_while_a_reconciliation_runs() {
    use ghl_sync::domain::{EntityKind, Side};
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    // No webhooks: only a poll can find the edit.
    let sims = engine_helpers::start_sims(30, 30).await;
    sims.ghl
        .handle()
        .set_faults(ghlsync_sim::faults::FaultConfig {
            latency: Duration::from_millis(150),
            ..Default::default()
        });
    let loaded = configure_polling(&sims, dir.path(), address, &sim_keys(&sims), "1s");
    let daemon = Daemon::start(&loaded, listen).await;
    let pair = daemon.engine.pairs[0].clone();
    let started = std::time::Instant::now();
    let since = loop {
        if let Some(since) = pair.signals.reconciling_since() {
            break since;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no reconciliation started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let app = sims.app.handle();
    let contact = app.contacts()[0].clone();
    let id = contact["id"].as_str().unwrap().to_owned();
    let edited = app
        .update_contact_as_user(&id, json!({ "first_name": "Edited During Reconciliation" }))
        .unwrap();
    let edited_at =
        chrono::DateTime::from_timestamp_millis(edited["updated_at"].as_i64().unwrap()).unwrap();
    let edit_made = std::time::Instant::now();
    loop {
        let cursor = daemon
            .engine
            .store
            .load_cursor(pair.name(), Side::App, EntityKind::Contact, "")
            .await
            .unwrap();
        if cursor
            .and_then(|c| c.watermark)
            .is_some_and(|w| w >= edited_at)
        {
            break;
        }
        assert!(
            edit_made.elapsed() < Duration::from_secs(30),
            "the edit was never polled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let latency = edit_made.elapsed();
    assert_eq!(
        pair.signals.reconciling_since(),
        Some(since),
        "the edit was decided only after the reconciliation ended ({latency:?})"
    );
    assert!(
        latency < Duration::from_secs(20),
        "the edit waited {latency:?} for a poll"
    );
    // The reconciliation still finishes.
    let started = std::time::Instant::now();
    while pair.signals.reconciling_since().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the reconciliation never finished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every kind of work was counted under its purpose.
    daemon.engine.record_health().await;
    let usage = daemon
        .engine
        .store
        .request_usage(pair.name(), Utc::now().date_naive())
        .await
        .unwrap();
    for purpose in ["poll", "reconcile", "children_sweep", "write"] {
        assert!(
            usage
                .iter()
                .any(|u| u.purpose.as_str() == purpose && u.side == Side::Ghl && u.requests > 0),
            "{purpose}: {usage:#?}"
        );
    }
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_turns_unready_when_a_token_or_the_store_fails() {
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 2, 1).await;
    let loaded = configure(&sims, dir.path(), address, &sim_keys(&sims));
    let daemon = Daemon::start(&loaded, listen).await;
    let readyz = daemon.url("/readyz");
    assert_eq!(get(&daemon.url("/healthz")).await, (200, "ok\n".to_owned()));

    let started = std::time::Instant::now();
    loop {
        let (status, body) = get(&readyz).await;
        if status == 200 {
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["ready"], true);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The GHL token is revoked: the next pass is refused, and readiness
    // names the side and why.
    assert!(sims.ghl.handle().revoke_token(&sims.ghl_token));
    daemon.engine.pairs[0].signals.request_reconcile();
    let started = std::time::Instant::now();
    let body = loop {
        let (status, body) = get(&readyz).await;
        if status == 503 {
            break serde_json::from_str::<Value>(&body).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still ready: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["ready"], false);
    let failed: Vec<&Value> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(failed[0]["check"], "credentials");
    assert_eq!(failed[0]["side"], "ghl");

    // The store goes away: the store check fails too.
    daemon.engine.store.close().await;
    let (status, body) = get(&readyz).await;
    assert_eq!(status, 503);
    let body: Value = serde_json::from_str(&body).unwrap();
    let store = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "store")
        .unwrap()
        .clone();
    assert_eq!(store["ok"], false, "{body}");
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_routes_and_bodies_over_the_limit_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 1, 0).await;
    let loaded = configure(&sims, dir.path(), address, &sim_keys(&sims));
    let daemon = Daemon::start(&loaded, listen).await;
    // `/webhooks/app` reaches the one app side (its HMAC is then missing);
    // a side that takes no part in a pair is not found.
    let (status, answer) = post(&daemon.url("/webhooks/app"), &[], b"{}".to_vec()).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (401, Some("missing_signature"))
    );
    let (status, answer) = post(&daemon.url("/webhooks/app/nope"), &[], b"{}".to_vec()).await;
    assert_eq!(
        (status, answer["result"].as_str()),
        (404, Some("unknown_side"))
    );
    let huge = vec![b' '; 2 * 1024 * 1024];
    let (status, _) = post(
        &daemon.url("/webhooks/ghl"),
        &[("x-wh-signature", "AAAA".into())],
        huge,
    )
    .await;
    assert_eq!(status, 413);
    daemon.stop().await;
}

/// A delivery that finds the targeted-sync queue full gets 429 with a
/// `Retry-After` (GHL retries a webhook only on 429: FIELD-NOTES.md,
/// "Webhook retries"; a 503 would lose the event) and is not remembered:
/// once the worker has made room, the sender's retry of the same delivery
/// is accepted, not refused as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_429_and_its_retry_is_no_replay() {
    let signer = Signer::new(9);
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = start_sims(address, 2, 0).await;
    let loaded = configure(&sims, dir.path(), address, &signer.trusted());
    let engine = ghl_sync::demo::engine(&loaded).await.unwrap();
    // Room for one target, and no worker draining it yet.
    let (targets, receiver) = TargetQueue::with_capacity(1);
    let state = ServerState::new(engine.clone(), &loaded.settings, targets);
    let stop = Shutdown::default();
    let server = tokio::spawn({
        let stop = stop.clone();
        async move { server::serve(listen, state, stop).await.unwrap() }
    });
    let url = format!("http://{address}/webhooks/ghl");
    let location = sims.location.clone();
    let contacts = sims.ghl.handle().contacts(&location);
    let id = |i: usize| contacts[i]["id"].as_str().unwrap().to_owned();
    let signed = |body: &[u8]| [("x-wh-signature", signer.rsa_signature(body))];

    let first = event(&location, &id(0), "wh-first", Utc::now());
    let (status, _) = post(&url, &signed(&first), first).await;
    assert_eq!(status, 200);
    let second = event(&location, &id(1), "wh-second", Utc::now());
    let busy = reqwest::Client::new()
        .post(&url)
        .header("x-wh-signature", signer.rsa_signature(&second))
        .body(second.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status().as_u16(), 429);
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("60"),
        "a 429 says when to come back"
    );
    let answer: Value = busy.json().await.unwrap();
    assert_eq!(answer["result"], "queue_full", "{answer}");

    // The worker takes the queued target; the retry gets in.
    let worker = tokio::spawn(run_targets(engine.clone(), receiver, stop.clone()));
    let started = std::time::Instant::now();
    let (status, answer) = loop {
        let (status, answer) = post(&url, &signed(&second), second.clone()).await;
        if status != 429 || started.elapsed() > Duration::from_secs(20) {
            break (status, answer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (status, answer["result"].as_str()),
        (200, Some("accepted")),
        "{answer}"
    );
    stop.trigger();
    let _ = server.await;
    let _ = worker.await;
    engine.store.close().await;
}
