//! API economy and propagation latency against both simulators, through
//! the demo's pair (contacts, tasks, notes both ways).
//!
//! cargo bench --bench sync_economy -- [--contacts 50] [--edits 40] [--poll-ms 1000]
//!
//! Targets: one request per location and entity in an idle poll cycle,
//! exactly one write per genuine change, zero writes caused by echoes; and
//! the p50/p99 time from an edit on one side to its arrival on the other
//! with the daemon polling every `--poll-ms`.

#[path = "common/args.rs"]
mod args;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ghl_sync::demo::{self, Sims};
use ghl_sync::engine::{self, Mode, Reconcile, Shutdown};
use ghlsync_sim::RouteKey;
use serde_json::json;

fn by_route(requests: &BTreeMap<RouteKey, u64>) -> String {
    requests
        .iter()
        .map(|(k, n)| format!("{} {} x{n}", k.method, k.route))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() {
    let contacts = args::number("--contacts", 50) as usize;
    let edits = args::number("--edits", 40) as usize;
    let poll_ms = args::number("--poll-ms", 1000);
    let sims = Sims::start(contacts, contacts).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Polling only: reconciliation and its listing would blur the counts.
    let template = demo::DEMO_CONFIG
        .replace(
            "reconcile_interval = \"5s\"",
            "reconcile_interval = \"24h\"",
        )
        .replace(
            "poll_interval = \"1s\"",
            &format!("poll_interval = \"{poll_ms}ms\""),
        );
    let loaded = sims.configure(&template, dir.path()).unwrap();
    let engine = demo::engine(&loaded).await.unwrap();
    let stop = Shutdown::default();
    engine
        .cycle(Mode::Apply, Reconcile::Always, &stop)
        .await
        .unwrap();
    // Let the watermarks pass the initial load's own writes.
    engine
        .cycle(Mode::Apply, Reconcile::Never, &stop)
        .await
        .unwrap();
    let ghl = sims.ghl.handle();
    let app = sims.app.handle();
    let location = sims.location.clone();

    // Idle poll cycle.
    tokio::time::sleep(Duration::from_millis(50)).await;
    ghl.reset_counters();
    app.reset_counters();
    engine
        .cycle(Mode::Apply, Reconcile::Never, &stop)
        .await
        .unwrap();
    let (g, a) = (ghl.counters(), app.counters());
    println!("{contacts} contacts per side, demo pair (GHL: contacts feed; app: contacts, tasks, notes feeds)");
    println!(
        "  idle poll cycle: GHL {} request(s) [{}], app {} request(s) [{}]",
        g.total_requests,
        by_route(&g.requests),
        a.total_requests,
        by_route(&a.requests)
    );

    // One genuine change on each side.
    let contact = ghl.contacts(&location)[0].clone();
    let ghl_id = contact["id"].as_str().unwrap().to_owned();
    let email = contact["email"].as_str().unwrap().to_owned();
    ghl.reset_counters();
    app.reset_counters();
    ghl.update_contact_as_user(&ghl_id, json!({"firstName": "Economy"}))
        .unwrap();
    engine
        .cycle(Mode::Apply, Reconcile::Never, &stop)
        .await
        .unwrap();
    let (g, a) = (ghl.counters(), app.counters());
    println!(
        "  one GHL edit: writes to the app {}, to GHL {}; requests GHL {} [{}], app {} [{}]",
        a.writes(),
        g.writes(),
        g.total_requests,
        by_route(&g.requests),
        a.total_requests,
        by_route(&a.requests)
    );
    ghl.reset_counters();
    app.reset_counters();
    engine
        .cycle(Mode::Apply, Reconcile::Never, &stop)
        .await
        .unwrap();
    engine
        .cycle(Mode::Apply, Reconcile::Never, &stop)
        .await
        .unwrap();
    let (g, a) = (ghl.counters(), app.counters());
    println!(
        "  the next two cycles (the echo of that write): writes GHL {}, app {}",
        g.writes(),
        a.writes()
    );

    // Propagation latency with the daemon running.
    let runner = tokio::spawn(engine::run(engine.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app_id = app
        .contacts()
        .into_iter()
        .find(|c| c["email_address"].as_str() == Some(email.as_str()))
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .unwrap();
    let mut samples = Vec::with_capacity(edits);
    for n in 0..edits {
        let value = format!("Latency{n}");
        let started = Instant::now();
        if n % 2 == 0 {
            ghl.update_contact_as_user(&ghl_id, json!({"lastName": value}))
                .unwrap();
            demo::wait_for("GHL -> app", Duration::from_secs(60), || {
                app.contact(&app_id)
                    .is_some_and(|c| c["last_name"] == value.as_str())
            })
            .await
            .unwrap();
        } else {
            app.update_contact_as_user(&app_id, json!({"last_name": value}))
                .unwrap();
            demo::wait_for("app -> GHL", Duration::from_secs(60), || {
                ghl.contact(&ghl_id)
                    .is_some_and(|c| c["lastName"] == value.as_str())
            })
            .await
            .unwrap();
        }
        samples.push(started.elapsed());
        // Let the echo settle before the next edit.
        tokio::time::sleep(Duration::from_millis(poll_ms.min(1500))).await;
    }
    stop.trigger();
    runner.await.unwrap().unwrap();
    samples.sort();
    let pick =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    println!(
        "  propagation latency, polling every {poll_ms} ms, {edits} edits alternating sides: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        pick(0.50).as_secs_f64() * 1000.0,
        pick(0.99).as_secs_f64() * 1000.0,
        samples.last().unwrap().as_secs_f64() * 1000.0
    );
}
