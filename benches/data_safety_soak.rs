//! The data-safety soak of issue 13: the run that once found a shared phone
//! number overwriting another person's GHL contact and edits lost while the
//! daemon wrote, repeated against the fixed code. It checks outcomes, not
//! speed: every figure it prints is a count.
//!
//! cargo bench --bench data_safety_soak -- [--shared-contacts 1000] [--ghl 300] [--app 100]
//!     [--seconds 90] [--seed 13]
//!
//! 1. Shared phones: `--shared-contacts` app contacts, 33 phone numbers
//!    each shared by two or three of them (families, a switchboard), synced
//!    into a GHL location that refuses duplicate contacts. Counts: GHL
//!    contacts, dead letters, records carrying another person's name.
//! 2. Concurrent edits: `--ghl` + `--app` seeded contacts, synced; then
//!    for `--seconds` both sides are edited (names, tags) while the daemon
//!    runs, every request to either simulator taking 0–1 s; then the edits
//!    stop, the latency goes, and two reconciliations run. Counts: linked
//!    pairs equal under the field map, differences accounted for by an open
//!    conflict or a dead letter, and differences unaccounted for (target 0).
//!
//! The GHL simulator's limits are raised (with the side's pacing) so the
//! run finishes in minutes: these are counts, and pacing is measured by
//! `ghl_rate_limit`.

#[path = "common/args.rs"]
mod args;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use ghl_sync::config::Loaded;
use ghl_sync::demo::{self, Sims};
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::engine::{self, Engine, Mode, Reconcile, Shutdown};

use ghl_sync::store::DeadLetterStatus;
use ghlsync_sim::faults::FaultConfig;
use ghlsync_sim::ghl::RateLimitConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// GHL pacing raised to match the simulator's raised limit.
const FAST_GHL: &str =
    "[sides.ghl.rate_limit]\nmax_per_interval = 100000\ninterval = \"10s\"\n\n[pairs.demo]";

#[tokio::main]
async fn main() {
    let shared = args::number("--shared-contacts", 1000) as usize;
    let ghl_contacts = args::number("--ghl", 300) as usize;
    let app_contacts = args::number("--app", 100) as usize;
    let seconds = args::number("--seconds", 90);
    let seed = args::number("--seed", 13);
    shared_phones(shared).await;
    concurrent_edits(ghl_contacts, app_contacts, seconds, seed).await;
}

/// Both simulators (GHL refusing duplicates, as by default), limits
/// raised, and the demo's engine against them.
async fn start(ghl: usize, app: usize, dir: &std::path::Path) -> (Sims, Loaded, Engine) {
    let sims = Sims::start(ghl, app).await.unwrap();
    sims.ghl.handle().set_rate_limits(RateLimitConfig {
        burst: 100_000,
        interval: Duration::from_secs(10),
        daily: 100_000_000,
    });
    let template = demo::DEMO_CONFIG.replace("[pairs.demo]", FAST_GHL).replace(
        "reconcile_interval = \"5s\"",
        "reconcile_interval = \"24h\"",
    );
    let loaded = sims.configure(&template, dir).unwrap();
    let engine = demo::engine(&loaded).await.unwrap();
    (sims, loaded, engine)
}

/// Cycles (reconciling) until nothing is pending, at most `max`.
async fn settle(engine: &Engine, max: usize) -> usize {
    let stop = Shutdown::default();
    for n in 1..=max {
        let report = engine
            .cycle(Mode::Apply, Reconcile::Always, &stop)
            .await
            .expect("a cycle never fails on bad or shared data");
        let depth = engine.store.outbox_depth().await.unwrap();
        if report.totals().planned() == 0 && depth.pending == 0 {
            return n;
        }
    }
    max
}

async fn shared_phones(count: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (sims, _loaded, engine) = start(0, 0, dir.path()).await;
    let app = sims.app.handle();
    // 33 numbers shared: 22 by two people, 11 by three (77 people).
    let mut family_of = Vec::new();
    for family in 0..33 {
        let members = if family < 22 { 2 } else { 3 };
        family_of.extend(std::iter::repeat_n(family, members));
    }
    let mut people = BTreeMap::new();
    for i in 0..count {
        let number = family_of.get(i).copied().unwrap_or(i);
        let person = (format!("First{i}"), format!("Last{i}"));
        app.create_contact_as_user(json!({
            "email_address": format!("person.{i}@shared.test"),
            "first_name": person.0,
            "last_name": person.1,
            "mobile": format!("+1212555{:04}", number),
        }))
        .unwrap();
        people.insert(format!("person.{i}@shared.test"), person);
    }
    let started = Instant::now();
    let cycles = settle(&engine, 8).await;
    let ghl = sims.ghl.handle().contacts(&sims.location);
    let wrong_identity = ghl
        .iter()
        .filter(|c| {
            let email = c["email"].as_str().unwrap_or_default();
            people.get(email).is_none_or(|(first, last)| {
                c["firstName"].as_str() != Some(first) || c["lastName"].as_str() != Some(last)
            })
        })
        .count();
    let letters = engine
        .store
        .dead_letters(Some(DeadLetterStatus::Open))
        .await
        .unwrap();
    let naming_phone = letters
        .iter()
        .filter(|l| l.reason.contains("phone"))
        .count();
    let sharing = family_of.len() - 33;
    println!("1. shared phones: {count} app contacts, 33 numbers shared by {} of them, into a GHL location refusing duplicates", family_of.len());
    println!(
        "   settled in {cycles} cycle(s), {:.1} s: GHL holds {} contacts (expected {}); {} open dead letter(s), {naming_phone} naming the shared phone (expected {sharing}); records carrying another person's name: {wrong_identity}",
        started.elapsed().as_secs_f64(),
        ghl.len(),
        count - sharing,
        letters.len(),
    );
}

async fn concurrent_edits(ghl_contacts: usize, app_contacts: usize, seconds: u64, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (sims, loaded, engine) = start(ghl_contacts, app_contacts, dir.path()).await;
    let pair = engine.pairs[0].clone();
    settle(&engine, 8).await;
    let ghl = sims.ghl.handle();
    let app = sims.app.handle();
    let links: Vec<(String, String)> = {
        let live = engine
            .store
            .live_side_ids(pair.name(), EntityKind::Contact, Side::Ghl)
            .await
            .unwrap();
        let mut both = Vec::new();
        for (link_id, ghl_id) in live {
            let link = engine.store.link_by_id(link_id).await.unwrap().unwrap();
            if let Some(app_id) = link.b.id {
                both.push((ghl_id, app_id));
            }
        }
        both
    };
    let latency = FaultConfig {
        jitter: Duration::from_secs(1),
        ..FaultConfig::default()
    };
    ghl.set_faults(latency.clone());
    app.set_faults(latency);
    let stop = Shutdown::default();
    let daemon = tokio::spawn(engine::run(engine.clone(), stop.clone()));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut edits = (0u64, 0u64);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        n += 1;
        let (ghl_id, app_id) = &links[rng.gen_range(0..links.len())];
        let field = rng.gen_range(0..3);
        if rng.gen_bool(0.5) {
            let patch = match field {
                0 => json!({"firstName": format!("G{n}")}),
                1 => json!({"lastName": format!("Gl{n}")}),
                _ => json!({"tags": [format!("g{n}")]}),
            };
            if ghl.update_contact_as_user(ghl_id, patch).is_ok() {
                edits.0 += 1;
            }
        } else {
            let patch = match field {
                0 => json!({"first_name": format!("A{n}")}),
                1 => json!({"last_name": format!("Al{n}")}),
                _ => json!({"labels": [format!("a{n}")]}),
            };
            if app.update_contact_as_user(app_id, patch).is_ok() {
                edits.1 += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..400))).await;
    }
    stop.trigger();
    daemon.await.unwrap().unwrap();
    ghl.clear_faults();
    app.clear_faults();
    let shutdown = Shutdown::default();
    for _ in 0..2 {
        engine
            .cycle(Mode::Apply, Reconcile::Always, &shutdown)
            .await
            .unwrap();
    }

    // Both sides under the field map.
    let map = &pair.settings.map;
    let both_ways: Vec<String> = map
        .fields_of(EntityKind::Contact)
        .filter(|f| f.flow.reads_from(Side::Ghl) && f.flow.reads_from(Side::App))
        .map(|f| f.name.clone())
        .collect();
    let conflicts: HashSet<i64> = engine
        .store
        .open_conflicts(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.link_id)
        .collect();
    let letters = engine
        .store
        .dead_letters(Some(DeadLetterStatus::Open))
        .await
        .unwrap();
    let named: BTreeSet<String> = letters
        .iter()
        .filter_map(|l| l.record_id.clone())
        .chain(letters.iter().map(|l| l.reason.clone()))
        .collect();
    let (mut equal, mut accounted, mut unaccounted, mut wrong_identity) = (0, 0, 0, 0);
    for (ghl_id, app_id) in &links {
        let (Some(g), Some(a)) = (ghl.contact(ghl_id), app.contact(app_id)) else {
            continue;
        };
        let canonical = |role, record: &Value| {
            let fields: Map<String, Value> = record.as_object().cloned().unwrap_or_default();
            map.to_canonical(EntityKind::Contact, role, &fields)
                .unwrap_or_default()
        };
        let (g, a) = (canonical(Side::Ghl, &g), canonical(Side::App, &a));
        if g.get("email") != a.get("email") {
            wrong_identity += 1;
        }
        let differs: Vec<&String> = both_ways
            .iter()
            .filter(|f| g.get(*f) != a.get(*f))
            .collect();
        if differs.is_empty() {
            equal += 1;
            continue;
        }
        let link = engine
            .store
            .link_by_side_id(pair.name(), EntityKind::Contact, Side::Ghl, ghl_id)
            .await
            .unwrap()
            .unwrap();
        let by_letter = named
            .iter()
            .any(|t| t.contains(ghl_id.as_str()) || t.contains(app_id.as_str()));
        if conflicts.contains(&link.id) || by_letter {
            accounted += 1;
        } else {
            unaccounted += 1;
            println!(
                "   UNACCOUNTED {ghl_id} / {app_id}: {differs:?}\n     GHL {g:?}\n     app {a:?}\n     base {:?}",
                link.snapshot
            );
            for item in engine.store.outbox_for_link(link.id).await.unwrap() {
                println!(
                    "     outbox {} {:?} {} {:?} attempts {} {:?} {}",
                    item.id,
                    item.status,
                    item.op,
                    item.target_side,
                    item.attempts,
                    item.last_error,
                    item.idempotency_key
                );
            }
        }
    }
    let ghl_requests = ghl.counters().total_requests;
    let depth = engine.store.outbox_depth().await.unwrap();
    println!("   outbox after: {depth:?}");
    println!(
        "2. concurrent edits: {ghl_contacts} GHL + {app_contacts} app contacts ({} linked pairs), {seconds} s of edits at 0-1 s latency ({} in GHL, {} in the app), then two reconciliations",
        links.len(),
        edits.0,
        edits.1
    );
    println!(
        "   equal under the field map: {equal}; different but accounted for (open conflict or dead letter): {accounted}; unaccounted for: {unaccounted}; linked records with different emails: {wrong_identity}; open conflicts {}, open dead letters {}; GHL requests {ghl_requests}",
        conflicts.len(),
        letters.len()
    );
    drop(loaded);
}
