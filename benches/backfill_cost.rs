//! GHL requests of an initial load and of a reconciliation, by route,
//! against both simulators through the demo's pair (contacts, tasks and
//! notes both ways).
//!
//! cargo bench --bench backfill_cost -- [--contacts 10000] [--scenario all|ghl-to-app|app-to-ghl] [--tasks-scope]
//!
//! - `ghl-to-app`: GHL seeded with `--contacts` contacts (the GHL seed
//!   gives each 0 to 2 tasks and some notes), the app empty: the requests
//!   of `ghlsync backfill` (one cycle reconciling, then the outbox
//!   drained), then those of one full reconciliation with nothing changed.
//! - `app-to-ghl`: the app seeded (about 40% of its contacts with 1 to 3
//!   tasks, 40% with notes), GHL empty: the same two figures.
//!
//! `--tasks-scope` grants the GHL token `locations/tasks.readonly` (and
//! lists it in the side's scopes), so tasks are reconciled with the
//! location-wide task search instead of one read per contact.
//!
//! Request counts do not depend on the pace, so both simulators' limits
//! (and the daemon's pacing of them) are raised to finish in minutes.

#[path = "common/args.rs"]
mod args;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ghl_sync::demo::{self, Sims};
use ghl_sync::engine::{Engine, Mode, Reconcile, Shutdown};
use ghlsync_sim::app::{AppSim, AppSimOptions};
use ghlsync_sim::ghl::{GhlSim, RateLimitConfig, SimOptions};
use ghlsync_sim::RouteKey;

/// GHL pacing raised to match the simulator's raised limit, the app's too.
const FAST: &str =
    "[sides.ghl.rate_limit]\nmax_per_interval = 100000\ninterval = \"1s\"\n\n[pairs.demo]";
const TASKS_SCOPE: &str = "locations/tasks.readonly";

#[tokio::main]
async fn main() {
    let contacts = args::number("--contacts", 10_000) as usize;
    let scenario = args::value("--scenario").unwrap_or_else(|| "all".into());
    let tasks_scope = std::env::args().any(|a| a == "--tasks-scope");
    if matches!(scenario.as_str(), "all" | "ghl-to-app") {
        run("GHL -> empty app", contacts, 0, tasks_scope).await;
    }
    if matches!(scenario.as_str(), "all" | "app-to-ghl") {
        run("app -> empty GHL", 0, contacts, tasks_scope).await;
    }
}

async fn start(ghl: usize, app: usize, tasks_scope: bool) -> Sims {
    let ghl = GhlSim::start(SimOptions {
        contacts_per_location: ghl,
        rate_limit: RateLimitConfig {
            burst: 1_000_000,
            interval: Duration::from_secs(10),
            daily: 1_000_000_000,
        },
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let app = AppSim::start(AppSimOptions {
        contacts: app,
        seed: 2,
        rate_limit: None,
        ..AppSimOptions::default()
    })
    .await
    .unwrap();
    distinct_people(&app.handle());
    let location = ghl.handle().location_ids()[0].clone();
    let mut scopes = vec!["contacts.readonly", "contacts.write"];
    if tasks_scope {
        scopes.push(TASKS_SCOPE);
    }
    let ghl_token = ghl.handle().issue_token(&location, &scopes, None);
    Sims {
        ghl,
        app,
        location,
        ghl_token,
    }
}

/// Every seeded app contact a person of their own (as the end-to-end
/// tests make them): the app seed leaves some without an email and draws
/// mobiles at random, and GHL refuses a second contact with a phone it
/// holds; shared keys are `data_safety_soak`'s subject, not this one's.
fn distinct_people(app: &ghlsync_sim::app::AppSimHandle) {
    let mut mobiles = std::collections::HashSet::new();
    for contact in app.contacts() {
        let id = contact["id"].as_str().unwrap_or_default().to_owned();
        let mut patch = serde_json::Map::new();
        if contact["email_address"].as_str().is_none() {
            patch.insert(
                "email_address".into(),
                format!("no.email.{}@app.test", id.to_lowercase()).into(),
            );
        }
        if let Some(mobile) = contact["mobile"].as_str() {
            if !mobiles.insert(mobile.to_owned()) {
                patch.insert("mobile".into(), serde_json::Value::Null);
            }
        }
        if !patch.is_empty() {
            app.update_contact_as_user(&id, serde_json::Value::Object(patch))
                .unwrap();
        }
    }
}

async fn run(label: &str, ghl: usize, app: usize, tasks_scope: bool) {
    let sims = start(ghl, app, tasks_scope).await;
    let dir = tempfile::tempdir().unwrap();
    let mut template = demo::DEMO_CONFIG
        .replace("[pairs.demo]", FAST)
        .replace(
            "reconcile_interval = \"5s\"",
            "reconcile_interval = \"24h\"",
        )
        .replace("[log]\nlevel = \"warn\"", "[log]\nlevel = \"error\"");
    if tasks_scope {
        template = template.replace(
            "scopes = [\"contacts.readonly\", \"contacts.write\"]",
            &format!("scopes = [\"contacts.readonly\", \"contacts.write\", \"{TASKS_SCOPE}\"]"),
        );
    }
    let text = sims.render(&template, dir.path()).replace(
        "requests = 15\nper = \"1s\"",
        "requests = 100000\nper = \"1s\"",
    );
    let path = dir.path().join("ghlsync.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = ghl_sync::config::load(&ghl_sync::config::LoadOptions {
        file: Some(path),
        env: Some(Default::default()),
        no_search: true,
    })
    .map_err(|e| e.to_string())
    .unwrap();
    let engine = demo::engine(&loaded).await.unwrap();
    let ghl_handle = sims.ghl.handle();
    let location = sims.location.clone();
    let tasks: usize = ghl_handle
        .contacts(&location)
        .iter()
        .filter(|c| !ghl_handle.tasks(c["id"].as_str().unwrap()).is_empty())
        .count();
    let notes: usize = ghl_handle
        .contacts(&location)
        .iter()
        .filter(|c| !ghl_handle.notes(c["id"].as_str().unwrap()).is_empty())
        .count();
    println!("== {label}: {ghl} GHL contacts ({tasks} with tasks, {notes} with notes), {app} app contacts; tasks scope: {tasks_scope}");

    ghl_handle.reset_counters();
    let started = Instant::now();
    let stop = Shutdown::default();
    let report = engine
        .cycle(Mode::Apply, Reconcile::Always, &stop)
        .await
        .unwrap();
    let totals = report.totals();
    println!(
        "backfill: {:.1} s; read {}, linked {}, planned {} create(s), applied {}",
        started.elapsed().as_secs_f64(),
        totals.read,
        totals.linked,
        totals.planned_creates,
        totals.applied
    );
    print_counts("backfill", &ghl_handle.counters().requests);
    let app_handle = sims.app.handle();
    println!(
        "  app: {} requests",
        app_handle.counters().requests.values().sum::<u64>()
    );
    let in_ghl = ghl_handle.contacts(&location).len();
    println!("  GHL now holds {in_ghl} contacts");

    settle(&engine).await;
    ghl_handle.reset_counters();
    let started = Instant::now();
    let report = engine
        .cycle(Mode::Apply, Reconcile::Always, &stop)
        .await
        .unwrap();
    println!(
        "reconciliation, nothing changed: {:.1} s; planned {}",
        started.elapsed().as_secs_f64(),
        report.totals().planned()
    );
    print_counts("reconciliation", &ghl_handle.counters().requests);
    engine.store.close().await;
}

/// Cycles without reconciling until nothing is planned or pending (the
/// load's own writes come back as echoes once).
async fn settle(engine: &Engine) {
    let stop = Shutdown::default();
    for _ in 0..5 {
        let report = engine
            .cycle(Mode::Apply, Reconcile::Never, &stop)
            .await
            .unwrap();
        let depth = engine.store.outbox_depth().await.unwrap();
        if report.totals().planned() == 0 && depth.pending == 0 {
            return;
        }
    }
}

fn print_counts(what: &str, requests: &BTreeMap<RouteKey, u64>) {
    let mut by_route: BTreeMap<String, u64> = BTreeMap::new();
    for (key, n) in requests {
        *by_route
            .entry(format!("{} {}", key.method, key.route))
            .or_default() += n;
    }
    let total: u64 = by_route.values().sum();
    println!("  {what}: GHL {total} requests");
    for (route, n) in by_route {
        println!("    {route}: {n}");
    }
}
