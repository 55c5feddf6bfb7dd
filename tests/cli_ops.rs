//! The operator's commands (`status`, `history`, `conflicts`,
//! `dead-letters`) as an operator runs them: the real binary, with `--json`
//! and without, against a mirror the engine filled by syncing both
//! simulators (running in this test process).

#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[macro_use]
#[path = "common/store_backends.rs"]
mod store_backends;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use engine_helpers::{start_sims, text, Harness, Template};
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::engine::{Mode, Reconcile, Shutdown};
use ghl_sync::store::{
    Changeset, ConflictStatus, DeadLetterStage, DeadLetterStatus, FailOutcome, JournalAction,
    LinkRef, LinkSide, LinkWrite, NewConflict, NewDeadLetter, NewJournalEntry, NewLink,
    NewOutboxItem, OutboxOp, OutboxRef, OutboxStatus, PairRegistration, PairSide, SideHealth,
    SideOutbox, Snapshot, Store, StoreError,
};
use ghlsync_sim::faults::FaultKind;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_ghlsync");
const PAIR: &str = "main";

// ------------------------------------------------------------- helpers --

/// The engine tests' pair with the first name under the `manual` policy,
/// and tasks and notes mapped.
async fn harness(ghl: usize, app: usize) -> Harness {
    let template = Template {
        first_name_policy: Some("manual"),
        ..Template::with_children()
    };
    Harness::new(start_sims(ghl, app).await, &template.render()).await
}

/// A harness after its first cycle: the seeded contacts on both sides.
async fn synced(ghl: usize, app: usize) -> Harness {
    let h = harness(ghl, app).await;
    cycle(&h).await;
    h
}

/// Runs the binary with `--config` of the harness, off the async runtime
/// (the simulators live on it).
async fn ghlsync(h: &Harness, args: &[&str]) -> Output {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.push("--config".into());
    args.push(h.config_path.display().to_string());
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .env_remove("GHLSYNC_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The stdout of a command that must succeed.
async fn ok(h: &Harness, args: &[&str]) -> String {
    let output = ghlsync(h, args).await;
    assert!(output.status.success(), "{args:?}: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The JSON stdout of a command that must succeed.
async fn json(h: &Harness, args: &[&str]) -> Value {
    let out = ok(h, args).await;
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}):\n{out}"))
}

/// The stderr of a command that must fail with `code`.
async fn fails(h: &Harness, args: &[&str], code: i32) -> String {
    let output = ghlsync(h, args).await;
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}: {}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed; the write requests each simulator
/// received while it ran: `(ghl, app)`.
async fn writes_of(h: &Harness, args: &[&str]) -> (u64, u64) {
    h.reset_counters();
    ok(h, args).await;
    h.writes()
}

async fn cycle(h: &Harness) {
    h.cycle(Mode::Apply, Reconcile::IfDue).await;
}

/// Lets the simulators' millisecond clocks move between edits.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// The first seeded GHL contact's email and its ids on both sides (after
/// a sync).
fn first_contact(h: &Harness) -> (String, String, String) {
    let mut contacts = h.ghl_contacts();
    contacts.sort_by_key(|c| text(c, "email"));
    let email = text(&contacts[0], "email");
    let ghl_id = text(&contacts[0], "id");
    let app_id = text(&h.app_by_email(&email), "id");
    (email, ghl_id, app_id)
}

fn side<'a>(status: &'a Value, role: &str) -> &'a Value {
    let pair = &status["pairs"][0];
    assert_eq!(pair["pair"], PAIR, "{status:#}");
    pair["sides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["role"] == role)
        .unwrap_or_else(|| panic!("no side {role}: {status:#}"))
}

/// Parks the first name of the first contact: edited differently on both
/// sides, then a cycle. Returns the conflict's id and the contact's ids.
async fn park_first_name(h: &Harness) -> (i64, String, String) {
    let (_, ghl_id, app_id) = first_contact(h);
    tick().await;
    h.ghl()
        .update_contact_as_user(&ghl_id, json!({"firstName": "Name in GHL"}))
        .unwrap();
    tick().await;
    h.app()
        .update_contact_as_user(&app_id, json!({"first_name": "Name in app"}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    let open = h.engine.store.open_conflicts(None).await.unwrap();
    assert_eq!(open.len(), 1, "{open:#?}");
    (open[0].id, ghl_id, app_id)
}

// -------------------------------------------------------------- status --

/// `status` before anything ran says the budget is unknown; after a cycle
/// it shows the last poll, the lag per entity, the backlog, the GHL side's
/// budget as read, and the token kind; open conflicts are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_after_a_cycle() {
    let h = harness(3, 2).await;

    let before = json(&h, &["status", "--json"]).await;
    for role in ["a", "b"] {
        let s = side(&before, role);
        assert_eq!(s["rate_limit"]["state"], "unknown", "{s:#}");
        assert_eq!(s["rate_limit"]["note"], "unknown (daemon has not run)");
        assert!(s["last_poll_at"].is_null(), "{s:#}");
    }
    let text = ok(&h, &["status"]).await;
    assert!(text.contains("unknown (daemon has not run)"), "{text}");
    assert!(text.contains("never"), "no poll yet: {text}");

    ok(&h, &["sync", "--once"]).await;
    let after = json(&h, &["status", "--json"]).await;
    let ghl = side(&after, "a");
    assert_eq!(ghl["side"], "ghl");
    assert_eq!(ghl["location"], h.sims.location.as_str());
    assert!(ghl["last_poll_at"].is_string(), "{ghl:#}");
    assert!(ghl["last_poll_age_secs"].as_i64().unwrap() < 60, "{ghl:#}");
    assert!(
        ghl["lag_secs"]["contact"].is_i64(),
        "lag per entity: {ghl:#}"
    );
    assert_eq!(
        ghl["outbox"],
        json!({"pending": 0, "in_flight": 0, "failed": 0})
    );
    assert_eq!(ghl["dead_letters"], 0);
    assert_eq!(ghl["rate_limit"]["state"], "known", "{ghl:#}");
    assert!(ghl["rate_limit"]["daily_remaining"].as_i64().unwrap() > 0);
    assert!(
        ghl["rate_limit"]["requests"].as_i64().unwrap() > 0,
        "the cycle's requests are counted: {ghl:#}"
    );
    assert_eq!(ghl["token"]["kind"], "private_token");
    // The day's requests per purpose: the first cycle reconciled (never
    // done before: its listing stands in for the first poll) and swept the
    // contacts' children.
    let today = &ghl["requests_today"];
    let purposes: Vec<&str> = today["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["purpose"].as_str().unwrap())
        .collect();
    for purpose in ["reconcile", "children_sweep"] {
        assert!(purposes.contains(&purpose), "{purpose}: {today:#}");
    }
    assert!(today["requests"].as_i64().unwrap() > 0, "{today:#}");
    assert!(
        today["projected"].as_i64().unwrap() >= today["requests"].as_i64().unwrap(),
        "{today:#}"
    );
    assert_eq!(today["outlook"], "within_budget", "{today:#}");
    assert_eq!(today["stop_order"].as_array().unwrap().len(), 3);
    assert!(
        side(&after, "b")["requests_today"].is_null(),
        "an app side has no GHL budget"
    );
    let app = side(&after, "b");
    assert_eq!(app["side"], "app");
    assert_eq!(app["rate_limit"]["state"], "no_budget", "{app:#}");
    assert_eq!(app["token"]["kind"], "not_applicable");
    assert_eq!(after["pairs"][0]["open_conflicts"], 0);

    let text = ok(&h, &["status"]).await;
    for expected in [
        "pair main",
        "last poll",
        "contact ",
        "0 pending, 0 in flight, 0 failed",
        "left in window",
        "daily budget left",
        "private integration token",
        "no budget headers from the app",
        "requests today",
        "stops first: bulk work, then polls at the write reserve, writes last",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(
        !text.contains(&h.sims.ghl_token),
        "the token never appears in status"
    );

    park_first_name(&h).await;
    let parked = json(&h, &["status", "--json"]).await;
    assert_eq!(parked["pairs"][0]["open_conflicts"], 1, "{parked:#}");
}

/// The day's count survives a restart: a second run of the same UTC day
/// carries the first run's requests over instead of starting from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_carries_the_days_requests_over_a_restart() {
    let h = harness(3, 2).await;
    let polls = |status: &Value| -> i64 {
        side(status, "a")["requests_today"]["requests"]
            .as_i64()
            .unwrap()
    };
    ok(&h, &["sync", "--once"]).await;
    let first = polls(&json(&h, &["status", "--json"]).await);
    assert!(first > 0);
    ok(&h, &["sync", "--once"]).await;
    let second = polls(&json(&h, &["status", "--json"]).await);
    assert!(
        second > first,
        "the second run's requests add to the first's {first}, not replace them: {second}"
    );
}

/// `status` says how each side is kept: a REST side that sends no budget
/// headers is paced by its configured `rate_limit` (not "no request
/// budget"), and GHL tasks and notes, which have no change feed, are read
/// with their contacts and by reconciliation: no lag waiting for a
/// watermark that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_how_sides_without_budgets_or_feeds_are_kept() {
    let h = harness(2, 2).await;
    ok(&h, &["sync", "--once"]).await;
    let status = json(&h, &["status", "--json"]).await;

    let ghl = side(&status, "a");
    assert!(ghl["lag_secs"]["contact"].is_i64(), "{ghl:#}");
    for entity in ["task", "note"] {
        assert!(
            ghl["lag_secs"].get(entity).is_none(),
            "no lag for GHL {entity}s, which have no change feed: {ghl:#}"
        );
    }
    assert_eq!(
        ghl["read_with_contacts"],
        json!(["task", "note"]),
        "{ghl:#}"
    );
    assert!(ghl["last_reconciliation_at"].is_string(), "{ghl:#}");
    let app = side(&status, "b");
    for entity in ["contact", "task", "note"] {
        assert!(app["lag_secs"][entity].is_i64(), "app {entity}: {app:#}");
    }
    assert_eq!(app["read_with_contacts"], json!([]), "{app:#}");
    assert_eq!(app["rate_limit"]["state"], "no_budget", "{app:#}");
    // The harness paces the app side at 1000 requests per second.
    assert_eq!(
        app["rate_limit"]["pace"],
        json!({"requests": 1000, "per_secs": 1.0}),
        "{app:#}"
    );

    let text = ok(&h, &["status"]).await;
    for expected in [
        "task, note read with their contacts; last reconciliation ",
        "no budget headers from the app; paced at 1000 per 1s (rate_limit)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for wrong in ["no watermark yet", "no request budget"] {
        assert!(!text.contains(wrong), "{wrong:?} in:\n{text}");
    }
}

/// The daemon records each side's headroom after its detection passes,
/// and `status` shows that reading with its age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_daemons_reading() {
    let h = harness(2, 2).await;
    let mut daemon = Command::new(BIN)
        .args(["run", "--config", &h.config_path.display().to_string()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let store = h.engine.store.clone();
    let mut recorded = false;
    for _ in 0..200 {
        if store.side_health(PAIR).await.unwrap().len() == 2 {
            recorded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = daemon.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let _ = tokio::task::spawn_blocking(move || daemon.wait()).await;
    assert!(recorded, "the daemon stored no reading of both sides");

    let status = json(&h, &["status", "--json"]).await;
    let ghl = side(&status, "a");
    assert_eq!(ghl["rate_limit"]["state"], "known", "{ghl:#}");
    assert!(ghl["rate_limit"]["age_secs"].as_i64().unwrap() < 60);
    let text = ok(&h, &["status"]).await;
    assert!(
        text.contains("(read "),
        "the reading's age is shown: {text}"
    );
}

// ------------------------------------------------------------- history --

/// `history` of a contact edited on both sides: the changes seen, the
/// writes planned in each direction and their results, found by email or
/// by either side's id, with its tasks; an unknown contact is an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_of_a_contact_edited_on_both_sides() {
    let h = synced(3, 2).await;
    let (email, ghl_id, app_id) = first_contact(&h);
    let task = h
        .ghl()
        .create_task_as_user(
            &ghl_id,
            json!({"title": "Call back", "dueDate": "2027-01-05T09:00:00Z", "completed": false}),
        )
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    tick().await;
    h.ghl()
        .update_contact_as_user(&ghl_id, json!({"lastName": "Surname in GHL"}))
        .unwrap();
    tick().await;
    h.app()
        .update_contact_as_user(&app_id, json!({"mobile": "+15125550188"}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    assert_eq!(
        h.app().contact(&app_id).unwrap()["last_name"],
        "Surname in GHL"
    );
    assert_eq!(h.ghl().contact(&ghl_id).unwrap()["phone"], "+15125550188");

    let history = json(&h, &["history", &email, "--json"]).await;
    let contacts = history["contacts"].as_array().unwrap();
    assert_eq!(contacts.len(), 1, "{history:#}");
    let contact = &contacts[0];
    assert_eq!(contact["ghl_id"], ghl_id.as_str());
    assert_eq!(contact["app_id"], app_id.as_str());
    let events = contact["events"].as_array().unwrap();
    let has = |action: &str, from: &str, field: &str| {
        events.iter().any(|e| {
            e["action"] == action
                && e["from"] == from
                && e["fields"].as_array().unwrap().iter().any(|f| f == field)
        })
    };
    assert!(has("planned", "ghl", "last_name"), "{events:#?}");
    assert!(has("applied", "ghl", "last_name"), "{events:#?}");
    assert!(has("planned", "app", "phone"), "{events:#?}");
    assert!(has("applied", "app", "phone"), "{events:#?}");
    let write = events
        .iter()
        .find(|e| e["action"] == "planned" && e["from"] == "app")
        .and_then(|e| e["write"].as_object())
        .expect("the planned row names its write");
    assert_eq!(write["status"], "done", "{write:#?}");
    let applied = events
        .iter()
        .find(|e| e["action"] == "applied" && e["from"] == "app")
        .and_then(|e| e["write"].as_object())
        .expect("the applied row names the write it completed");
    assert_eq!(applied["outbox_id"], write["outbox_id"], "{events:#?}");
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["at"].as_str() <= w[1]["at"].as_str()),
        "oldest first"
    );
    let children = contact["children"].as_array().unwrap();
    assert!(
        children
            .iter()
            .any(|c| c["entity"] == "task" && c["ghl_id"] == task["id"]),
        "the contact's task and its trail: {children:#?}"
    );

    // By either side's id, in the human form.
    for id in [&ghl_id, &app_id] {
        let out = ok(&h, &["history", id]).await;
        for expected in [
            "contact in pair main",
            &ghl_id,
            &app_id,
            "ghl -> app",
            "app -> ghl",
            "last_name",
            "applied",
            "task in pair main",
        ] {
            assert!(
                out.contains(expected),
                "history {id}: missing {expected:?} in:\n{out}"
            );
        }
    }

    let err = fails(&h, &["history", "nobody@nowhere.test"], 1).await;
    assert!(
        err.contains("no contact with email \"nobody@nowhere.test\""),
        "{err}"
    );
    let err = fails(&h, &["history", "NO-SUCH-ID", "--json"], 1).await;
    assert!(err.contains("no contact with id \"NO-SUCH-ID\""), "{err}");
}

/// `history` shows a conflict a policy settled: the `settled` row names
/// the value that was overwritten as well as the one kept, and the policy,
/// in the table and in JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_shows_the_value_a_policy_overwrote() {
    let template = Template {
        first_name_policy: Some("newest"),
        ..Template::with_children()
    };
    let h = Harness::new(start_sims(2, 1).await, &template.render()).await;
    cycle(&h).await;
    let (_, ghl_id, app_id) = first_contact(&h);
    tick().await;
    h.ghl()
        .update_contact_as_user(&ghl_id, json!({"firstName": "Lost in GHL"}))
        .unwrap();
    tick().await;
    h.app()
        .update_contact_as_user(&app_id, json!({"first_name": "Kept from app"}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    assert_eq!(
        h.ghl().contact(&ghl_id).unwrap()["firstName"],
        "Kept from app"
    );

    let history = json(&h, &["history", &ghl_id, "--json"]).await;
    let events = history["contacts"][0]["events"].as_array().unwrap();
    let settled = events
        .iter()
        .find(|e| e["action"] == "settled")
        .unwrap_or_else(|| panic!("no settled row: {events:#?}"));
    assert_eq!(settled["fields"], json!(["first_name"]), "{settled:#}");
    assert_eq!(settled["from"], "app", "{settled:#}");
    assert_eq!(settled["to"], "ghl", "{settled:#}");
    let detail = settled["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("newest kept app \"Kept from app\" (changed ")
            && detail.contains(" over ghl \"Lost in GHL\" (changed "),
        "{detail}"
    );

    let out = ok(&h, &["history", &ghl_id]).await;
    let line = out
        .lines()
        .find(|l| l.contains("settled"))
        .unwrap_or_else(|| panic!("no settled row in:\n{out}"));
    for expected in [
        "app -> ghl",
        "first_name",
        "newest kept app",
        "\"Lost in GHL\"",
    ] {
        assert!(line.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

// ----------------------------------------------------------- conflicts --

/// A `manual` conflict is listed and shown; resolving it by taking the
/// app's value queues one write to GHL (nothing is written yet), which the
/// next `sync --once` applies; the field is not parked again. Resolving it
/// twice, an unknown id and a bad `--take` are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_listed_shown_and_resolved_by_taking_the_app() {
    let h = synced(2, 2).await;
    let (id, ghl_id, app_id) = park_first_name(&h).await;
    let id_text = id.to_string();

    let list = json(&h, &["conflicts", "list", "--json"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    let listed = &list[0];
    assert_eq!(listed["id"], id);
    assert_eq!(listed["field"], "first_name");
    assert_eq!(listed["ghl_id"], ghl_id.as_str());
    assert_eq!(listed["app_id"], app_id.as_str());
    assert_eq!(listed["ghl_value"], "Name in GHL");
    assert_eq!(listed["app_value"], "Name in app");
    let out = ok(&h, &["conflicts", "list"]).await;
    for expected in [
        "first_name",
        "\"Name in GHL\"",
        "\"Name in app\"",
        "1 open conflict",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    let shown = json(&h, &["conflicts", "show", &id_text, "--json"]).await;
    assert_eq!(shown["status"], "open");
    assert!(shown["base_value"].is_string(), "{shown:#}");
    let out = ok(&h, &["conflicts", "show", &id_text]).await;
    assert!(
        out.contains("base (last agreed)") && out.contains("Name in app"),
        "{out}"
    );

    let err = fails(&h, &["conflicts", "resolve", &id_text, "--take", "both"], 2).await;
    assert!(err.contains("possible values: ghl, app"), "{err}");
    let err = fails(&h, &["conflicts", "resolve", &id_text], 2).await;
    assert!(err.contains("--take"), "{err}");

    h.reset_counters();
    let resolved = json(
        &h,
        &["conflicts", "resolve", &id_text, "--take", "app", "--json"],
    )
    .await;
    assert_eq!(resolved["value"], "Name in app");
    let queued = resolved["queued"].as_array().unwrap();
    assert_eq!(
        queued.len(),
        1,
        "only GHL lacks the app's value: {resolved:#}"
    );
    assert_eq!(queued[0]["side"], "ghl");
    assert_eq!(queued[0]["record_id"], ghl_id.as_str());
    assert_eq!(h.writes(), (0, 0), "resolving only queues");
    let conflict = h.engine.store.conflict(id).await.unwrap().unwrap();
    assert_eq!(conflict.status, ConflictStatus::Resolved);
    assert!(conflict.resolution.unwrap().contains("Name in app"));
    assert_eq!(h.engine.store.outbox_depth().await.unwrap().pending, 1);

    ok(&h, &["sync", "--once"]).await;
    assert_eq!(
        h.ghl().contact(&ghl_id).unwrap()["firstName"],
        "Name in app"
    );
    assert_eq!(
        h.app().contact(&app_id).unwrap()["first_name"],
        "Name in app"
    );
    assert_eq!(h.writes(), (1, 0), "one write, to GHL");

    // The field agrees with the base now: nothing parked, nothing written.
    assert_eq!(
        writes_of(&h, &["sync", "--once", "--reconcile"]).await,
        (0, 0)
    );
    assert!(h
        .engine
        .store
        .open_conflicts(None)
        .await
        .unwrap()
        .is_empty());
    let out = ok(&h, &["conflicts", "list"]).await;
    assert!(out.contains("no open conflicts"), "{out}");

    let history = json(&h, &["history", &ghl_id, "--json"]).await;
    let actions: Vec<&str> = history["contacts"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"conflict_opened"), "{actions:?}");
    assert!(actions.contains(&"conflict_resolved"), "{actions:?}");

    let err = fails(&h, &["conflicts", "resolve", &id_text, "--take", "ghl"], 1).await;
    assert!(
        err.contains(&format!("conflict {id} is already resolved")),
        "{err}"
    );
    let err = fails(&h, &["conflicts", "resolve", "9999", "--take", "app"], 1).await;
    assert!(err.contains("conflict 9999 does not exist"), "{err}");
    let err = fails(&h, &["conflicts", "show", "9999"], 1).await;
    assert!(err.contains("conflict 9999 does not exist"), "{err}");
}

/// `--value` writes the operator's own value to both sides at the next
/// `sync --once`, and the conflict does not come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_resolved_with_a_value_reaches_both_sides() {
    let h = synced(2, 2).await;
    let (id, ghl_id, app_id) = park_first_name(&h).await;

    let out = ok(
        &h,
        &["conflicts", "resolve", &id.to_string(), "--value", "Chosen"],
    )
    .await;
    assert!(out.contains("set to \"Chosen\""), "{out}");
    assert!(out.contains("queued: update of"), "{out}");

    let writes = writes_of(&h, &["sync", "--once"]).await;
    assert_eq!(h.ghl().contact(&ghl_id).unwrap()["firstName"], "Chosen");
    assert_eq!(h.app().contact(&app_id).unwrap()["first_name"], "Chosen");
    assert_eq!(writes, (1, 1), "one write to each side");

    assert_eq!(
        writes_of(&h, &["sync", "--once", "--reconcile"]).await,
        (0, 0),
        "nothing more to write"
    );
    let list = json(&h, &["conflicts", "list", "--json"]).await;
    assert_eq!(list, json!([]), "the conflict does not come back");
    let link = h
        .engine
        .store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, &ghl_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        link.snapshot.content["first_name"], "Chosen",
        "the base moved"
    );
}

// -------------------------------------------------------- dead letters --

/// A record that cannot be mapped is dead-lettered; once fixed at the
/// source, `dead-letters retry` fetches it again and syncs it through the
/// normal path (without waiting for a poll), and the letter is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_retried_after_fixing_the_record_at_the_source() {
    let h = harness(2, 2).await;
    let bad_email = "bad.phone@example.com";
    let bad = h
        .ghl()
        .create_contact_as_user(
            &h.sims.location,
            json!({"email": bad_email, "firstName": "Bad", "phone": "+1234567"}),
        )
        .unwrap();
    let bad_id = text(&bad, "id");
    cycle(&h).await;

    let list = json(&h, &["dead-letters", "list", "--json"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    let letter = &list[0];
    assert_eq!(letter["record_id"], bad_id.as_str());
    assert_eq!(letter["stage"], "map");
    assert_eq!(letter["side_name"], "ghl");
    assert_eq!(letter["status"], "open");
    let id = letter["id"].as_i64().unwrap().to_string();
    let out = ok(&h, &["dead-letters", "list"]).await;
    assert!(out.contains(&bad_id) && out.contains("phone"), "{out}");

    // Never linked, so not in the mirror's snapshots: `history` finds it
    // on the side by email, and shows why it did not sync.
    let history = json(&h, &["history", bad_email, "--json"]).await;
    let contact = &history["contacts"][0];
    assert!(contact["link_id"].is_null(), "{history:#}");
    assert_eq!(contact["ghl_id"], bad_id.as_str());
    assert_eq!(
        contact["events"][0]["action"], "dead_lettered",
        "{history:#}"
    );

    // Fixed at the source; no poll runs before the retry.
    tick().await;
    h.ghl()
        .update_contact_as_user(&bad_id, json!({"phone": "+15125550100"}))
        .unwrap();
    let retried = json(&h, &["dead-letters", "retry", &id, "--json"]).await;
    assert_eq!(
        retried["results"][0]["retried"]["outcome"], "reprocessed",
        "{retried:#}"
    );
    assert_eq!(h.app_by_email(bad_email)["mobile"], "+15125550100");
    let letter = h
        .engine
        .store
        .dead_letter(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(letter.status, DeadLetterStatus::Retried);

    let open = json(&h, &["dead-letters", "list", "--json"]).await;
    assert_eq!(open, json!([]));
    let all = json(&h, &["dead-letters", "list", "--all", "--json"]).await;
    assert_eq!(all[0]["status"], "retried");

    let err = fails(&h, &["dead-letters", "retry", &id], 1).await;
    assert!(err.contains("is retried, not open"), "{err}");
    let err = fails(&h, &["dead-letters", "retry", "9999"], 1).await;
    assert!(err.contains("dead letter 9999 does not exist"), "{err}");
}

/// A linked record whose edit the mapping refused is retried after the
/// mapping is fixed in the configuration: the same version (no edit at the
/// source) is synced, and the next cycle has nothing left to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_retried_after_fixing_the_mapping() {
    let h = synced(2, 2).await;
    let (_, ghl_id, app_id) = first_contact(&h);
    tick().await;
    h.ghl()
        .update_contact_as_user(&ghl_id, json!({"phone": "+1234567"}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    let list = json(&h, &["dead-letters", "list", "--json"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list:#}");
    assert_eq!(list[0]["record_id"], ghl_id.as_str());
    let id = list[0]["id"].as_i64().unwrap().to_string();

    // The operator relaxes the phone mapping (no E.164 check any more).
    let config = std::fs::read_to_string(&h.config_path).unwrap();
    let relaxed = config.replace("normalize = [\"e164\"]\n", "");
    assert_ne!(config, relaxed);
    std::fs::write(&h.config_path, relaxed).unwrap();

    let retried = json(&h, &["dead-letters", "retry", &id, "--json"]).await;
    let outcome = &retried["results"][0]["retried"];
    assert_eq!(outcome["outcome"], "reprocessed", "{retried:#}");
    assert_eq!(outcome["planned"], 1, "{retried:#}");
    assert_eq!(h.app().contact(&app_id).unwrap()["mobile"], "+1234567");

    assert_eq!(
        writes_of(&h, &["sync", "--once"]).await,
        (0, 0),
        "the retried version is not synced twice"
    );
}

/// A write refused by its side for good is a write-stage dead letter:
/// `retry` re-queues the same write and the writer applies it; `drop`
/// marks another one dropped, which stays listed under `--all`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_dead_letter_retried_and_another_dropped() {
    let h = synced(2, 2).await;
    let mut contacts = h.ghl_contacts();
    contacts.sort_by_key(|c| text(c, "email"));
    let mut letters = Vec::new();
    for (n, contact) in contacts.iter().take(2).enumerate() {
        let ghl_id = text(contact, "id");
        tick().await;
        h.ghl()
            .update_contact_as_user(&ghl_id, json!({"lastName": format!("Refused {n}")}))
            .unwrap();
        let pair = h.engine.pairs[0].clone();
        h.engine
            .detect_pair(&pair, Mode::Apply, Reconcile::Never)
            .await
            .unwrap();
        // The app refuses this record's write (and its re-read) for good.
        h.app().fail_next(FaultKind::Status(422), 2);
        h.engine.drain_outbox(&Shutdown::default()).await.unwrap();
        h.app().clear_faults();
        let open = h
            .engine
            .store
            .dead_letters(Some(DeadLetterStatus::Open))
            .await
            .unwrap();
        assert_eq!(open.len(), n + 1, "{open:#?}");
        letters.push((
            open[n].id,
            text(&h.app_by_email(&text(contact, "email")), "id"),
        ));
    }
    let (retry_id, app_id) = letters[0].clone();
    let (drop_id, _) = letters[1].clone();

    let list = json(&h, &["dead-letters", "list", "--json"]).await;
    assert_eq!(list[0]["stage"], "write", "{list:#}");
    assert!(list[0]["outbox_id"].is_i64());
    assert_ne!(h.app().contact(&app_id).unwrap()["last_name"], "Refused 0");

    let out = ok(&h, &["dead-letters", "retry", &retry_id.to_string()]).await;
    assert!(out.contains("re-queued; it is now done"), "{out}");
    assert_eq!(h.app().contact(&app_id).unwrap()["last_name"], "Refused 0");

    let dropped = json(
        &h,
        &["dead-letters", "drop", &drop_id.to_string(), "--json"],
    )
    .await;
    assert_eq!(dropped["status"], "dropped");
    let open = json(&h, &["dead-letters", "list", "--json"]).await;
    assert_eq!(open, json!([]), "neither is open any more");
    let all = json(&h, &["dead-letters", "list", "--all", "--json"]).await;
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["retried", "dropped"], "both kept for audit");

    let err = fails(&h, &["dead-letters", "drop", &drop_id.to_string()], 1).await;
    assert!(err.contains("is already dropped"), "{err}");
    let err = fails(&h, &["dead-letters", "retry", &drop_id.to_string()], 1).await;
    assert!(err.contains("is dropped, not open"), "{err}");
    let err = fails(&h, &["dead-letters", "drop", "9999"], 1).await;
    assert!(err.contains("dead letter 9999 does not exist"), "{err}");
    let out = ok(&h, &["dead-letters", "retry", "--all"]).await;
    assert!(out.contains("no open dead letters"), "{out}");
}

// ------------------------------------------- the store under the commands --
//
// What the commands rely on, on both backends (Postgres when
// `GHLSYNC_TEST_DATABASE_URL` is set): the commands above run on SQLite only.

store_cases!(
    resolving_queues_its_writes_in_the_same_transaction,
    dead_letters_are_requeued_or_closed_once,
    side_health_and_backlog_per_side,
    request_usage_per_side_day_and_purpose,
    links_found_by_a_snapshot_value,
);

const STORE_PAIR: &str = "contacts";

/// The day's requests per purpose: one row per (pair, side, day,
/// purpose), replaced by each reading, read back by day.
async fn request_usage_per_side_day_and_purpose(store: Store) {
    use ghl_sync::domain::Purpose;
    use ghl_sync::store::RequestUsage;
    store_pair_with_link(&store).await;
    let at = Utc::now().trunc_subsecs(6);
    let today = at.date_naive();
    let row = |purpose, requests, day: chrono::NaiveDate| RequestUsage {
        pair: STORE_PAIR.to_owned(),
        side: Side::Ghl,
        day: ghl_sync::store::day_text(day),
        purpose,
        requests,
        projected: requests * 10,
        recorded_at: at,
    };
    let yesterday = today.pred_opt().unwrap();
    store
        .record_request_usage(&[
            row(Purpose::Poll, 5, today),
            row(Purpose::Reconcile, 7, today),
            row(Purpose::Poll, 99, yesterday),
        ])
        .await
        .unwrap();
    store
        .record_request_usage(&[row(Purpose::Poll, 6, today)])
        .await
        .unwrap();
    let rows = store.request_usage(STORE_PAIR, today).await.unwrap();
    assert_eq!(
        rows,
        [
            row(Purpose::Poll, 6, today),
            row(Purpose::Reconcile, 7, today)
        ],
        "today's rows, replaced"
    );
    assert_eq!(
        store.request_usage(STORE_PAIR, yesterday).await.unwrap(),
        [row(Purpose::Poll, 99, yesterday)]
    );
}

async fn store_pair_with_link(store: &Store) -> i64 {
    store
        .register_pair(&PairRegistration {
            name: STORE_PAIR.to_owned(),
            a: PairSide {
                side: "ghl".to_owned(),
                kind: "ghl".to_owned(),
                location: Some("loc-1".to_owned()),
            },
            b: PairSide {
                side: "app".to_owned(),
                kind: "rest".to_owned(),
                location: None,
            },
        })
        .await
        .unwrap();
    let side = |id: &str| LinkSide {
        id: Some(id.to_owned()),
        ..LinkSide::default()
    };
    let receipt = store
        .commit(&Changeset {
            links: vec![LinkWrite::Insert {
                local_ref: 1,
                link: NewLink {
                    pair: STORE_PAIR.to_owned(),
                    entity: EntityKind::Contact,
                    a: side("G1"),
                    b: side("P1"),
                    snapshot: Snapshot {
                        content: json!({"email": "ann@example.com", "first_name": "Ann"}),
                        hash: "h".to_owned(),
                    },
                    deleted_at: None,
                },
            }],
            ..Changeset::default()
        })
        .await
        .unwrap();
    receipt.link_id(1).unwrap()
}

fn store_write(key: &str, link: i64) -> NewOutboxItem {
    NewOutboxItem {
        idempotency_key: key.to_owned(),
        pair: STORE_PAIR.to_owned(),
        target_side: Side::Ghl,
        entity: EntityKind::Contact,
        op: OutboxOp::Update,
        link: Some(LinkRef::Existing(link)),
        target_id: Some("G1".to_owned()),
        parent_id: None,
        payload: json!({"fields": {"firstName": "Bo"}, "changed": ["first_name"]}).into(),
        not_before: None,
    }
}

async fn resolving_queues_its_writes_in_the_same_transaction(store: Store) {
    let link = store_pair_with_link(&store).await;
    store
        .commit(&Changeset {
            conflicts: vec![NewConflict {
                pair: STORE_PAIR.to_owned(),
                entity: EntityKind::Contact,
                link: LinkRef::Existing(link),
                field: "first_name".to_owned(),
                base_value: Some(json!("Ann")),
                a_value: Some(json!("Al")),
                b_value: Some(json!("Bo")),
            }],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let id = store.open_conflicts(None).await.unwrap()[0].id;
    let writes = |key: &str| {
        let mut planned =
            NewJournalEntry::new(STORE_PAIR, EntityKind::Contact, JournalAction::Planned);
        planned.link = Some(LinkRef::Existing(link));
        planned.outbox = Some(OutboxRef::Key(key.to_owned()));
        Changeset {
            outbox: vec![store_write(key, link)],
            journal: vec![planned],
            ..Changeset::default()
        }
    };

    // A resolution cannot carry a new link: refused before anything.
    let mut bad = writes("k0");
    bad.outbox[0].link = Some(LinkRef::New(7));
    let err = store
        .resolve_conflict_with(id, "x", &bad)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownLocalRef { .. }), "{err:?}");
    assert_eq!(store.open_conflicts(None).await.unwrap().len(), 1);

    let (conflict, receipt) = store
        .resolve_conflict_with(id, "took side `app`", &writes("k1"))
        .await
        .unwrap();
    assert_eq!(conflict.status, ConflictStatus::Resolved);
    assert_eq!(receipt.outbox_new.len(), 1);
    let actions: Vec<JournalAction> = store
        .journal_for_link(link, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.action)
        .collect();
    assert_eq!(
        actions,
        [JournalAction::ConflictResolved, JournalAction::Planned]
    );

    // Twice: refused, and its writes are not queued.
    let err = store
        .resolve_conflict_with(id, "again", &writes("k2"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ConflictNotOpen { .. }), "{err:?}");
    assert_eq!(store.outbox_depth().await.unwrap().pending, 1);
    assert_eq!(store.outbox_for_link(link).await.unwrap().len(), 1);
}

async fn dead_letters_are_requeued_or_closed_once(store: Store) {
    let link = store_pair_with_link(&store).await;
    store
        .commit(&Changeset {
            outbox: vec![store_write("w1", link)],
            dead_letters: vec![NewDeadLetter {
                pair: STORE_PAIR.to_owned(),
                side: Side::App,
                entity: EntityKind::Contact,
                record_id: Some("P9".to_owned()),
                outbox_id: None,
                stage: DeadLetterStage::Map,
                reason: "bad phone".to_owned(),
                payload: None,
            }],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let claimed = store
        .claim_outbox(10, Duration::from_secs(30))
        .await
        .unwrap();
    let FailOutcome::Dead { dead_letter_id, .. } = store
        .fail_outbox(claimed[0].id, "refused (422)", None)
        .await
        .unwrap()
    else {
        panic!("no retry time: dead")
    };
    let map_letter = store
        .dead_letters(None)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.stage == DeadLetterStage::Map)
        .unwrap()
        .id;

    let item = store.requeue_dead_write(dead_letter_id).await.unwrap();
    assert_eq!(item.id, claimed[0].id);
    assert_eq!(item.status, OutboxStatus::Pending);
    assert_eq!(item.attempts, 0, "a fresh set of attempts");
    assert!(
        item.last_error.is_some(),
        "the last error stays: it tells the writer to look before it re-creates"
    );
    let letter = store.dead_letter(dead_letter_id).await.unwrap().unwrap();
    assert_eq!(letter.status, DeadLetterStatus::Retried);
    let last = store
        .journal_for_link(link, 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.action, JournalAction::Planned);
    assert_eq!(last.outbox_id, Some(item.id));
    assert!(last
        .detail
        .unwrap()
        .contains(&format!("dead letter {dead_letter_id}")));
    assert_eq!(
        store
            .claim_outbox(10, Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        1,
        "the writer takes it again"
    );

    assert!(matches!(
        store.requeue_dead_write(dead_letter_id).await,
        Err(StoreError::DeadLetterNotOpen {
            status: DeadLetterStatus::Retried,
            ..
        })
    ));
    // Not a write: nothing to re-queue, and the letter stays open.
    assert!(matches!(
        store.requeue_dead_write(map_letter).await,
        Err(StoreError::NotRequeueable { .. })
    ));
    assert_eq!(
        store.dead_letter(map_letter).await.unwrap().unwrap().status,
        DeadLetterStatus::Open
    );

    let dropped = store
        .close_dead_letter(map_letter, DeadLetterStatus::Dropped)
        .await
        .unwrap();
    assert_eq!(dropped.status, DeadLetterStatus::Dropped);
    assert!(matches!(
        store
            .close_dead_letter(map_letter, DeadLetterStatus::Retried)
            .await,
        Err(StoreError::DeadLetterNotOpen { .. })
    ));
    assert!(matches!(
        store
            .close_dead_letter(9_999, DeadLetterStatus::Dropped)
            .await,
        Err(StoreError::DeadLetterNotFound { id: 9_999 })
    ));
    assert_eq!(store.dead_letters(None).await.unwrap().len(), 2, "kept");
}

async fn side_health_and_backlog_per_side(store: Store) {
    let link = store_pair_with_link(&store).await;
    assert!(store.side_health(STORE_PAIR).await.unwrap().is_empty());
    let at = Utc::now().trunc_subsecs(6);
    let reading = |side: Side, daily: Option<i64>| SideHealth {
        pair: STORE_PAIR.to_owned(),
        side,
        side_name: side.to_string(),
        interval_remaining: daily.map(|_| 90),
        daily_remaining: daily,
        requests: daily.map(|_| 12),
        throttled: daily.map(|_| 0),
        bulk_paused: daily.map(|_| false),
        recorded_at: at,
    };
    store
        .record_side_health(&[reading(Side::Ghl, Some(1_000)), reading(Side::App, None)])
        .await
        .unwrap();
    store
        .record_side_health(&[reading(Side::Ghl, Some(999))])
        .await
        .unwrap();
    let health = store.side_health(STORE_PAIR).await.unwrap();
    assert_eq!(
        health,
        [reading(Side::Ghl, Some(999)), reading(Side::App, None)],
        "one row per side, replaced"
    );

    store
        .commit(&Changeset {
            outbox: vec![store_write("a1", link), store_write("a2", link), {
                let mut to_b = store_write("b1", link);
                to_b.target_side = Side::App;
                to_b
            }],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let claimed = store
        .claim_outbox(1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let backlog = store.pair_backlog(STORE_PAIR).await.unwrap();
    assert_eq!(
        backlog.outbox(Side::Ghl),
        SideOutbox {
            pending: 2,
            in_flight: 1,
            failed: 0
        }
    );
    assert_eq!(backlog.outbox(Side::App).pending, 1);
    assert_eq!(backlog.open_conflicts, 0);
    assert_eq!(backlog.dead_letters(Side::Ghl), 0);
    assert_eq!(
        store.pair_backlog("other").await.unwrap(),
        Default::default()
    );
}

async fn links_found_by_a_snapshot_value(store: Store) {
    let link = store_pair_with_link(&store).await;
    let found = store
        .links_by_snapshot_field(STORE_PAIR, EntityKind::Contact, "email", "ANN@example.com")
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "found ignoring case");
    assert_eq!(found[0].id, link);
    for (pair, field, value) in [
        (STORE_PAIR, "email", "bo@example.com"),
        (STORE_PAIR, "first_name", "ann@example.com"),
        ("other", "email", "ann@example.com"),
    ] {
        assert!(store
            .links_by_snapshot_field(pair, EntityKind::Contact, field, value)
            .await
            .unwrap()
            .is_empty());
    }
    assert!(store.outbox_for_link(link).await.unwrap().is_empty());
}
