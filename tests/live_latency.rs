//! Measurement (ignored by default; figures in `docs/BENCHMARKS.md`): how
//! long an edit made in the app takes to reach GHL while the daemon
//! reconciles a 400-contact location at GHL's real pace (96 requests per
//! 10 s). The pair is synced first at a raised pace; the daemon then runs
//! with `reconcile_interval = "2s"`, so a reconciliation is due at once
//! and again as soon as one ends: an edit always lands while one runs.
//!
//! `cargo nextest run --run-ignored only -E 'test(edit_latency_while_reconciling)' --no-capture`

#[path = "common/daemon_helpers.rs"]
mod daemon_helpers;
#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use std::time::{Duration, Instant};

use daemon_helpers::{listener, Daemon};
use ghl_sync::demo::DEMO_CONFIG;
use ghl_sync::engine::{Mode, Reconcile, Shutdown};
use ghlsync_sim::ghl::RateLimitConfig;
use serde_json::json;

const CONTACTS: usize = 400;
const EDITS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement of a few minutes; see docs/BENCHMARKS.md"]
async fn edit_latency_while_reconciling() {
    let dir = tempfile::tempdir().unwrap();
    let listen = listener().await;
    let address = listen.local_addr().unwrap();
    let sims = engine_helpers::start_sims(CONTACTS, 0).await;
    let template = DEMO_CONFIG
        .replace("reconcile_interval = \"5s\"", "reconcile_interval = \"2s\"")
        .replace("bind = \"127.0.0.1:0\"", &format!("bind = \"{address}\""));
    // The initial load at a raised pace (not measured).
    let fast = sims
        .configure(
            &format!(
                "{template}\n[sides.ghl.rate_limit]\nmax_per_interval = 100000\nheadroom = 0\n"
            ),
            dir.path(),
        )
        .unwrap();
    let engine = ghl_sync::demo::engine(&fast).await.unwrap();
    engine
        .cycle(Mode::Apply, Reconcile::Always, &Shutdown::default())
        .await
        .unwrap();
    engine.store.close().await;
    // GHL's real limits from here on.
    sims.ghl.handle().set_rate_limits(RateLimitConfig {
        burst: 100,
        interval: Duration::from_secs(10),
        daily: 200_000,
    });
    let loaded = sims.configure(&template, dir.path()).unwrap();
    let daemon = Daemon::start(&loaded, listen).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let app = sims.app.handle();
    let ghl = sims.ghl.handle();
    let mut latencies = Vec::new();
    for (i, contact) in app.contacts().into_iter().take(EDITS).enumerate() {
        let id = contact["id"].as_str().unwrap().to_owned();
        let email = contact["email_address"].as_str().unwrap().to_lowercase();
        let name = format!("Edited {i}");
        app.update_contact_as_user(&id, json!({ "first_name": name }))
            .unwrap();
        let edited = Instant::now();
        loop {
            let arrived = ghl.contacts(&sims.location).iter().any(|c| {
                c["email"].as_str().map(str::to_lowercase).as_deref() == Some(email.as_str())
                    && c["firstName"] == name.as_str()
            });
            if arrived {
                break;
            }
            assert!(
                edited.elapsed() < Duration::from_secs(600),
                "edit {i} never arrived"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        latencies.push(edited.elapsed());
        eprintln!("edit {i}: reached GHL after {:?}", edited.elapsed());
    }
    daemon.stop().await;
    eprintln!("edit latencies while reconciling {CONTACTS} contacts: {latencies:?}");
}
