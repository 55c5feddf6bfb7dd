//! The sync engine end to end, against both simulators on loopback: each
//! test states one invariant of ../shared/DESIGN.md (and the engine's
//! docs) and fails if it breaks. The engine is built from a rendered
//! configuration exactly as the daemon builds it; the kill -9 test runs the
//! real binary.
//!
//! The Postgres variant reads `GHLSYNC_TEST_DATABASE_URL` and skips with a
//! NOTICE when it is unset.

#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::http::Method;
use engine_helpers::{
    app_writes, emails, eventually, ghl_writes, load, render, start_sims, text, with_postgres,
    Harness, Template,
};
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::engine::{Mode, Reconcile, Shutdown};
use ghl_sync::store::{Direction, JournalAction, OutboxDepth, Store};
use ghlsync_sim::faults::{FaultConfig, FaultKind};
use ghlsync_sim::ghl::RecordShapes;
use serde_json::{json, Value};

/// The pair every template configures.
const PAIR: &str = "main";

// ------------------------------------------------------------- helpers --

/// The emails of both sides together: who must be on both sides after a
/// sync.
fn everyone(h: &Harness) -> BTreeMap<String, usize> {
    let mut all = h.ghl_emails();
    for email in h.app_emails().into_keys() {
        *all.entry(email).or_default() += 1;
    }
    assert!(
        !all.contains_key(""),
        "every seeded contact has an email: {all:?}"
    );
    all
}

/// A harness after its first (reconciling) cycle: everyone on both sides.
async fn synced(ghl: usize, app: usize, template: Template) -> (Harness, BTreeMap<String, usize>) {
    let h = Harness::new(start_sims(ghl, app).await, &template.render()).await;
    let expected = everyone(&h);
    assert_eq!(expected.len(), ghl + app, "the seeds are different people");
    h.cycle(Mode::Apply, Reconcile::IfDue).await;
    h.assert_both_sides_hold(&expected, "after the initial sync");
    (h, expected)
}

/// Asserts a cycle writes nothing: none planned, none applied, and no
/// write request reached either simulator.
async fn assert_quiet_cycle(h: &Harness, reconcile: Reconcile, context: &str) {
    h.reset_counters();
    let report = h.cycle(Mode::Apply, reconcile).await;
    let totals = report.totals();
    assert_eq!(
        totals.planned(),
        0,
        "{context}: a cycle after the sides agree plans nothing: {totals:?}"
    );
    assert_eq!(totals.applied, 0, "{context}: nothing applied: {totals:?}");
    assert_eq!(
        h.writes(),
        (0, 0),
        "{context}: write requests (GHL, app) in a cycle that should write nothing; GHL {:?}, app {:?}",
        h.ghl().counters().requests,
        h.app().counters().requests
    );
}

/// Runs cycles (without reconciling) until `done` holds, at most `max`.
async fn cycles_until(h: &Harness, max: usize, mut done: impl FnMut(&Harness) -> bool) -> bool {
    for _ in 0..max {
        h.cycle(Mode::Apply, Reconcile::Never).await;
        if done(h) {
            return true;
        }
    }
    false
}

async fn outbox(store: &Store) -> OutboxDepth {
    store.outbox_depth().await.expect("outbox depth")
}

/// The GHL and app ids of the contact with this email, and asserts the
/// mirror links exactly these two.
async fn linked_ids(h: &Harness, email: &str) -> (String, String) {
    let ghl_id = text(&h.ghl_by_email(email), "id");
    let app_id = text(&h.app_by_email(email), "id");
    let link = h
        .engine
        .store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, &ghl_id)
        .await
        .expect("link lookup")
        .unwrap_or_else(|| panic!("GHL contact {ghl_id} ({email}) has no link"));
    assert_eq!(
        link.b.id.as_deref(),
        Some(app_id.as_str()),
        "{email}: the mirror links GHL {ghl_id} to the app contact with the same email"
    );
    assert!(link.deleted_at.is_none(), "{email}: the link is live");
    (ghl_id, app_id)
}

fn child_texts(records: &[Value], field: &str) -> Vec<String> {
    let mut texts: Vec<String> = records.iter().map(|r| text(r, field)).collect();
    texts.sort();
    texts
}

/// Lets the clock move so that the next edit is strictly newer than the
/// last one (both simulators stamp writes in milliseconds).
async fn tick() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

// ------------------------------------------------------ 1. initial sync --

/// Initial sync: every contact of both sides exists on both sides, exactly
/// once, with its tasks and notes; a second cycle (plan, then apply, both
/// reconciling in full) plans nothing and sends no write to either side.
async fn initial_sync_case(database: Option<String>) {
    let template = Template {
        database,
        ..Template::with_children()
    };
    let h = Harness::new(start_sims(5, 5).await, &template.render()).await;
    let expected = everyone(&h);
    assert_eq!(expected.len(), 10, "the seeds are different people");

    let first = h.cycle(Mode::Apply, Reconcile::IfDue).await;
    let totals = first.totals();
    assert!(
        totals.planned_creates >= 10 && totals.applied >= 10,
        "the first cycle creates every contact on the other side: {totals:?}"
    );
    h.assert_both_sides_hold(&expected, "after the first cycle");

    // Tasks and notes followed their contacts.
    for email in expected.keys() {
        let (ghl_id, app_id) = linked_ids(&h, email).await;
        assert_eq!(
            child_texts(&h.ghl().tasks(&ghl_id), "title"),
            child_texts(&h.app().tasks(&app_id), "name"),
            "{email}: the same tasks on both sides"
        );
        assert_eq!(
            child_texts(&h.ghl().notes(&ghl_id), "body"),
            child_texts(&h.app().notes(&app_id), "text"),
            "{email}: the same notes on both sides"
        );
    }
    let depth = outbox(&h.engine.store).await;
    assert_eq!(
        (depth.pending, depth.dead),
        (0, 0),
        "every write done: {depth:?}"
    );

    // No echo: our own writes read back change nothing.
    h.reset_counters();
    let plan = h.cycle(Mode::Plan, Reconcile::Always).await;
    assert_eq!(
        plan.totals().planned(),
        0,
        "a plan after the initial sync: {:#?}",
        plan.pairs
    );
    assert!(plan.pairs.values().all(|p| p.planned.is_empty()));
    assert_quiet_cycle(&h, Reconcile::Always, "the second cycle").await;
    h.assert_both_sides_hold(&expected, "after the second cycle");
    h.engine.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_creates_everyone_once_and_then_writes_nothing() {
    initial_sync_case(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_sync_creates_everyone_once_and_then_writes_nothing_on_postgres() {
    with_postgres("initial_sync_on_postgres", |url| async move {
        initial_sync_case(Some(url)).await;
    })
    .await;
}

// -------------------------------------------------- 2. match keys link --

/// Nothing duplicated by match key: the same person created on both sides
/// before the first sync is linked (the records merged), not created again
/// on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_email_on_both_sides_is_linked_not_duplicated() {
    let h = Harness::new(start_sims(3, 3).await, &Template::contacts().render()).await;
    let email = "shared.person@example.com";
    let ghl_contact = h
        .ghl()
        .create_contact_as_user(
            &h.sims.location,
            json!({"email": email, "firstName": "Shared"}),
        )
        .expect("GHL contact");
    let app_contact = h
        .app()
        .create_contact_as_user(json!({"email_address": email, "last_name": "Person"}))
        .expect("app contact");
    let expected = everyone(&h);
    assert_eq!(expected[email], 2);

    let report = h.cycle(Mode::Apply, Reconcile::IfDue).await;
    assert!(
        report.totals().linked >= 1,
        "linked by email: {:?}",
        report.totals()
    );
    h.assert_both_sides_hold(&expected, "after the first cycle");
    let (ghl_id, app_id) = linked_ids(&h, email).await;
    assert_eq!(ghl_id, text(&ghl_contact, "id"), "the GHL record is kept");
    assert_eq!(app_id, text(&app_contact, "id"), "the app record is kept");
    // Merged as two records that never agreed: each side's field reaches
    // the other.
    assert_eq!(h.ghl_by_email(email)["lastName"], "Person");
    assert_eq!(h.app_by_email(email)["first_name"], "Shared");

    assert_quiet_cycle(&h, Reconcile::Always, "after linking").await;
    h.assert_both_sides_hold(&expected, "after the second cycle");
}

// -------------------------------------------------------- 3. no clobber --

/// No clobber: different fields edited on the two sides since the last
/// sync both survive, on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_to_different_fields_on_both_sides_both_survive() {
    let (h, _) = synced(3, 3, Template::contacts()).await;
    for email in [
        h.ghl_contacts()[0]["email"].as_str().unwrap().to_owned(),
        h.app().contacts()[0]["email_address"]
            .as_str()
            .unwrap()
            .to_owned(),
    ] {
        let (ghl_id, app_id) = linked_ids(&h, &email).await;
        tick().await;
        h.ghl()
            .update_contact_as_user(&ghl_id, json!({"firstName": "Grace"}))
            .unwrap();
        h.app()
            .update_contact_as_user(&app_id, json!({"last_name": "Hopper"}))
            .unwrap();
        let both = |h: &Harness| {
            let g = h.ghl().contact(&ghl_id).unwrap();
            let a = h.app().contact(&app_id).unwrap();
            g["firstName"] == "Grace"
                && g["lastName"] == "Hopper"
                && a["first_name"] == "Grace"
                && a["last_name"] == "Hopper"
        };
        assert!(
            cycles_until(&h, 2, both).await,
            "{email}: both edits on both sides within two cycles: GHL {:#}, app {:#}",
            h.ghl().contact(&ghl_id).unwrap(),
            h.app().contact(&app_id).unwrap()
        );
        assert_quiet_cycle(&h, Reconcile::Never, "after the merge").await;
        // Each side's write is journaled with each side's own id, the write
        // back to the side whose change was decided included.
        let link = h
            .engine
            .store
            .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, &ghl_id)
            .await
            .unwrap()
            .unwrap();
        let planned: Vec<_> = h
            .engine
            .store
            .journal_for_link(link.id, 100)
            .await
            .unwrap()
            .into_iter()
            // Updates: a create is planned before the other side's id exists.
            .filter(|e| {
                e.action == ghl_sync::store::JournalAction::Planned
                    && e.detail.as_deref() != Some("create")
            })
            .collect();
        assert!(!planned.is_empty());
        for entry in &planned {
            assert_eq!(
                (entry.a_id.as_deref(), entry.b_id.as_deref()),
                (Some(ghl_id.as_str()), Some(app_id.as_str())),
                "{entry:?}"
            );
        }
    }
    assert!(h
        .engine
        .store
        .open_conflicts(None)
        .await
        .unwrap()
        .is_empty());
}

// ------------------------------------------------- 4. conflict policies --

/// `newest`: the same field edited on both sides is settled by the later
/// edit, on both sides, whichever side made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_policy_keeps_the_later_edit_on_both_sides() {
    let (h, expected) = synced(3, 3, Template::contacts()).await;
    let emails: Vec<&String> = expected.keys().collect();
    let (x_ghl, x_app) = linked_ids(&h, emails[0]).await;
    let (y_ghl, y_app) = linked_ids(&h, emails[1]).await;

    tick().await;
    // X: GHL first, then the app.
    h.ghl()
        .update_contact_as_user(&x_ghl, json!({"firstName": "Older GHL"}))
        .unwrap();
    // Y: the app first, then GHL.
    h.app()
        .update_contact_as_user(&y_app, json!({"first_name": "Older app"}))
        .unwrap();
    tick().await;
    h.app()
        .update_contact_as_user(&x_app, json!({"first_name": "Newer app"}))
        .unwrap();
    h.ghl()
        .update_contact_as_user(&y_ghl, json!({"firstName": "Newer GHL"}))
        .unwrap();

    let settled = |h: &Harness| {
        h.ghl().contact(&x_ghl).unwrap()["firstName"] == "Newer app"
            && h.app().contact(&x_app).unwrap()["first_name"] == "Newer app"
            && h.ghl().contact(&y_ghl).unwrap()["firstName"] == "Newer GHL"
            && h.app().contact(&y_app).unwrap()["first_name"] == "Newer GHL"
    };
    assert!(
        cycles_until(&h, 2, settled).await,
        "the later edit wins on both sides: X GHL {} app {}; Y GHL {} app {}",
        h.ghl().contact(&x_ghl).unwrap()["firstName"],
        h.app().contact(&x_app).unwrap()["first_name"],
        h.ghl().contact(&y_ghl).unwrap()["firstName"],
        h.app().contact(&y_app).unwrap()["first_name"],
    );
    assert!(
        h.engine
            .store
            .open_conflicts(None)
            .await
            .unwrap()
            .is_empty(),
        "`newest` settles conflicts, it does not park them"
    );
    assert_quiet_cycle(&h, Reconcile::Never, "after settling").await;
}

/// A side's change time of a contact as the simulator holds it (GHL: ISO
/// text, the app: epoch milliseconds), in the
/// spelling a `settled` journal row gives it.
fn changed_at(contact: &Value, key: &str) -> String {
    let at = match &contact[key] {
        Value::Number(ms) => ms
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis),
        Value::String(iso) => iso.parse().ok(),
        _ => None,
    }
    .unwrap_or_else(|| panic!("{key} of {contact} is no time"));
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A conflict `newest` settles leaves a `settled` journal row naming the
/// overwritten edit: both values, both sides' change times and the policy,
/// so the losing edit is never gone without a trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_policy_journals_the_value_it_overwrote() {
    let (h, expected) = synced(2, 2, Template::contacts()).await;
    let email = expected.keys().next().unwrap().clone();
    let (ghl_id, app_id) = linked_ids(&h, &email).await;

    tick().await;
    h.ghl()
        .update_contact_as_user(&ghl_id, json!({"firstName": "Older GHL"}))
        .unwrap();
    tick().await;
    h.app()
        .update_contact_as_user(&app_id, json!({"first_name": "Newer app"}))
        .unwrap();
    let ghl_at = changed_at(&h.ghl().contact(&ghl_id).unwrap(), "dateUpdated");
    let app_at = changed_at(&h.app().contact(&app_id).unwrap(), "updated_at");
    h.cycle(Mode::Apply, Reconcile::Never).await;
    assert_eq!(h.ghl().contact(&ghl_id).unwrap()["firstName"], "Newer app");

    let link = h
        .engine
        .store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, &ghl_id)
        .await
        .unwrap()
        .unwrap();
    let journal = h.engine.store.journal_for_link(link.id, 100).await.unwrap();
    let settled: Vec<_> = journal
        .iter()
        .filter(|e| e.action == JournalAction::Settled)
        .collect();
    assert_eq!(settled.len(), 1, "one field settled: {journal:#?}");
    let row = settled[0];
    assert_eq!(row.fields, vec!["first_name".to_owned()], "{row:#?}");
    assert_eq!(
        row.direction,
        Some(Direction::BToA),
        "the app's value went to GHL"
    );
    assert_eq!(
        row.detail.as_deref(),
        Some(
            format!(
                "newest kept app \"Newer app\" (changed {app_at}) \
                 over ghl \"Older GHL\" (changed {ghl_at})"
            )
            .as_str()
        ),
        "{row:#?}"
    );
    assert_quiet_cycle(&h, Reconcile::Never, "after settling").await;
}

/// `manual`: a field edited on both sides is parked as an open conflict
/// and neither side is written for it; other fields still sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_policy_parks_the_field_and_syncs_the_others() {
    let template = Template {
        first_name_policy: Some("manual"),
        ..Template::contacts()
    };
    let (h, expected) = synced(3, 3, template).await;
    let email = expected.keys().next().unwrap().clone();
    let (ghl_id, app_id) = linked_ids(&h, &email).await;
    let link = h
        .engine
        .store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, &ghl_id)
        .await
        .unwrap()
        .unwrap();

    tick().await;
    h.ghl()
        .update_contact_as_user(
            &ghl_id,
            json!({"firstName": "Name in GHL", "lastName": "Surname in GHL"}),
        )
        .unwrap();
    tick().await;
    h.app()
        .update_contact_as_user(&app_id, json!({"first_name": "Name in app"}))
        .unwrap();

    let report = h.cycle(Mode::Apply, Reconcile::Never).await;
    assert!(report.totals().conflicts >= 1, "{:?}", report.totals());
    for round in ["first", "second"] {
        let conflicts = h.engine.store.open_conflicts(Some(PAIR)).await.unwrap();
        assert_eq!(
            conflicts.len(),
            1,
            "{round} cycle: one open conflict: {conflicts:#?}"
        );
        let conflict = &conflicts[0];
        assert_eq!(conflict.field, "first_name");
        assert_eq!(conflict.link_id, link.id);
        assert_eq!(conflict.a_value, Some(json!("Name in GHL")), "GHL's value");
        assert_eq!(
            conflict.b_value,
            Some(json!("Name in app")),
            "the app's value"
        );

        let g = h.ghl().contact(&ghl_id).unwrap();
        let a = h.app().contact(&app_id).unwrap();
        assert_eq!(
            g["firstName"], "Name in GHL",
            "{round} cycle: GHL not written for the parked field"
        );
        assert_eq!(
            a["first_name"], "Name in app",
            "{round} cycle: the app not written for the parked field"
        );
        assert_eq!(
            a["last_name"], "Surname in GHL",
            "{round} cycle: the other field still syncs"
        );
        // The next cycle reads everything again and must neither write the
        // parked field nor open the conflict a second time.
        if round == "first" {
            assert_quiet_cycle(&h, Reconcile::Always, "with a parked conflict").await;
        }
    }
}

// ------------------------------------------------ 5. stale writes withdrawn --

/// A write planned from a read that is stale when it is due (the target
/// was edited between the decision and the write) is withdrawn, not
/// applied; its record is decided again at once against the newer edit,
/// which the merge keeps (`newest`) and carries to the other side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_planned_from_a_stale_read_is_withdrawn() {
    let (h, expected) = synced(3, 3, Template::contacts()).await;
    let email = expected.keys().next().unwrap().clone();
    let (ghl_id, app_id) = linked_ids(&h, &email).await;
    let pair = h.engine.pairs[0].clone();

    tick().await;
    h.ghl()
        .update_contact_as_user(&ghl_id, json!({"firstName": "Planned"}))
        .unwrap();
    let detected = h
        .engine
        .detect_pair(&pair, Mode::Apply, Reconcile::Never)
        .await
        .unwrap();
    assert_eq!(
        detected.stats.planned_updates, 1,
        "the GHL edit is planned for the app: {:?}",
        detected.stats
    );

    // The user edits the same field in the app before the write goes out.
    tick().await;
    h.app()
        .update_contact_as_user(&app_id, json!({"first_name": "Typed"}))
        .unwrap();
    h.reset_counters();
    h.engine.drain_outbox(&Shutdown::default()).await.unwrap();
    assert_eq!(
        h.app().contact(&app_id).unwrap()["first_name"],
        "Typed",
        "the user's edit survives"
    );
    assert_eq!(app_writes(&h.app()), 0, "no write request reached the app");
    let depth = outbox(&h.engine.store).await;
    assert_eq!(
        (depth.pending, depth.cancelled, depth.dead),
        (0, 1, 0),
        "the write is withdrawn (cancelled), not retried or dead: {depth:?}"
    );

    // Merged: the app's edit is the later one (`newest`).
    let merged = |h: &Harness| {
        h.ghl().contact(&ghl_id).unwrap()["firstName"] == "Typed"
            && h.app().contact(&app_id).unwrap()["first_name"] == "Typed"
    };
    assert!(
        cycles_until(&h, 2, merged).await,
        "the newer edit reaches GHL: GHL {}, app {}",
        h.ghl().contact(&ghl_id).unwrap()["firstName"],
        h.app().contact(&app_id).unwrap()["first_name"]
    );
    assert_quiet_cycle(&h, Reconcile::Never, "after the merge").await;
}

/// The tags of a contact as a sorted list (`tags` in GHL, `labels` in the
/// app).
fn tag_set(record: &Value, field: &str) -> Vec<String> {
    let mut tags: Vec<String> = record[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags
}

/// Adds `tag` to GHL contact `id` as a GHL user just before the next
/// contact write reaches GHL, whichever it is (`PUT /contacts/{id}`, or
/// `POST` / `DELETE /contacts/{id}/tags`): after the writer's re-read,
/// before its write. Pending edits of an earlier call (on the routes
/// that were not taken) are dropped first, so they do not take its turn.
fn tag_in_ghl_before_the_next_write(h: &Harness, id: &str, tag: &'static str) {
    h.ghl().clear_faults();
    let edit = std::sync::Arc::new(std::sync::Mutex::new(Some((h.ghl(), id.to_owned()))));
    for (method, route) in [
        (Method::PUT, "/contacts/{contactId}"),
        (Method::POST, "/contacts/{contactId}/tags"),
        (Method::DELETE, "/contacts/{contactId}/tags"),
    ] {
        let edit = edit.clone();
        h.ghl().before_next(method, route, move || {
            if let Some((ghl, id)) = edit.lock().unwrap().take() {
                ghl.add_tags_as_user(&id, &[tag]).expect("the user's tag");
            }
        });
    }
}

/// GHL field notes, "Tags": a contact write carrying `tags` replaces the
/// whole list. Tag changes go to GHL as add/remove deltas, so a tag a
/// GHL user adds after the writer's re-read and before its write is
/// never wiped: neither when the app adds a tag nor when it removes one,
/// and neither write sends a PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_changes_reach_ghl_as_deltas_and_keep_a_tag_added_meanwhile() {
    let (h, expected) = synced(3, 3, Template::contacts()).await;
    let email = expected.keys().next().unwrap().clone();
    let (ghl_id, app_id) = linked_ids(&h, &email).await;
    let held = tag_set(&h.ghl().contact(&ghl_id).unwrap(), "tags");

    // The app adds a tag; a GHL user adds another while it is written.
    tick().await;
    let mut labels = tag_set(&h.app().contact(&app_id).unwrap(), "labels");
    labels.push("from-app".into());
    h.app()
        .update_contact_as_user(&app_id, json!({ "labels": labels }))
        .unwrap();
    tag_in_ghl_before_the_next_write(&h, &ghl_id, "from-ghl");
    h.reset_counters();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    let in_ghl = tag_set(&h.ghl().contact(&ghl_id).unwrap(), "tags");
    let mut want = held.clone();
    want.extend(["from-app".to_owned(), "from-ghl".to_owned()]);
    want.sort();
    assert_eq!(
        in_ghl, want,
        "the app's tag reached GHL and the user's survived"
    );
    let counters = h.ghl().counters();
    assert_eq!(
        counters.count_route("PUT", "/contacts/{contactId}"),
        0,
        "a tags-only change sends no PUT: {:?}",
        counters.requests
    );
    assert_eq!(
        counters.count_route("POST", "/contacts/{contactId}/tags"),
        1
    );
    let both = |h: &Harness| {
        tag_set(&h.app().contact(&app_id).unwrap(), "labels").contains(&"from-ghl".to_owned())
    };
    assert!(
        cycles_until(&h, 2, both).await,
        "the user's tag reached the app"
    );

    // The app removes its tag; a GHL user adds a third while it is written.
    tick().await;
    let labels: Vec<String> = tag_set(&h.app().contact(&app_id).unwrap(), "labels")
        .into_iter()
        .filter(|t| t != "from-app")
        .collect();
    h.app()
        .update_contact_as_user(&app_id, json!({ "labels": labels }))
        .unwrap();
    tag_in_ghl_before_the_next_write(&h, &ghl_id, "second-ghl");
    h.reset_counters();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    let in_ghl = tag_set(&h.ghl().contact(&ghl_id).unwrap(), "tags");
    let mut want = held;
    want.extend(["from-ghl".to_owned(), "second-ghl".to_owned()]);
    want.sort();
    assert_eq!(
        in_ghl, want,
        "the app's removal reached GHL, and only it: every other tag stays"
    );
    let counters = h.ghl().counters();
    assert_eq!(counters.count_route("PUT", "/contacts/{contactId}"), 0);
    assert_eq!(
        counters.count_route("DELETE", "/contacts/{contactId}/tags"),
        1
    );
    let settled = |h: &Harness| {
        let labels = tag_set(&h.app().contact(&app_id).unwrap(), "labels");
        labels.contains(&"second-ghl".to_owned()) && !labels.contains(&"from-app".to_owned())
    };
    assert!(cycles_until(&h, 2, settled).await, "the sides agree again");
    assert_quiet_cycle(&h, Reconcile::Never, "after the tag changes").await;
}

// ------------------------------------------------------------ 6. deletes --

/// `deletes = "propagate"`: a contact deleted on one side, found gone by a
/// reconciliation, is deleted on the other side, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_found_by_reconciliation_propagate() {
    let (h, mut expected) = synced(5, 5, Template::contacts()).await;
    let emails: Vec<String> = expected.keys().cloned().collect();
    let (_, gone_in_app) = linked_ids(&h, &emails[0]).await;
    let (gone_in_ghl, _) = linked_ids(&h, &emails[1]).await;
    h.app().delete_contact_as_user(&gone_in_app).unwrap();
    h.ghl().delete_contact_as_user(&gone_in_ghl).unwrap();
    expected.remove(&emails[0]);
    expected.remove(&emails[1]);

    let report = h.cycle(Mode::Apply, Reconcile::Always).await;
    let totals = report.totals();
    assert_eq!(totals.planned_deletes, 2, "{totals:?}");
    assert_eq!(totals.deletes_held, 0, "2 of 10 is under the guard's 20%");
    h.assert_both_sides_hold(&expected, "after the deletes propagated");
    assert_eq!(
        h.engine
            .store
            .count_links(PAIR, EntityKind::Contact)
            .await
            .unwrap(),
        8,
        "the two links are tombstoned"
    );
    assert_quiet_cycle(&h, Reconcile::Always, "after the deletes").await;
    h.assert_both_sides_hold(&expected, "nothing re-created");
}

/// `deletes = "tag"` on GHL: the counterpart of a contact deleted in the
/// app gets the tag with one `POST /contacts/{id}/tags`, no whole list
/// written, so a tag a GHL user adds meanwhile stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policy_tag_adds_its_tag_to_ghl_and_keeps_the_others() {
    let config = Template::contacts().render().replace(
        "deletes = \"propagate\"",
        "deletes = \"tag\"\ndelete_tag = \"deleted-in-app\"",
    );
    let h = Harness::new(start_sims(3, 3).await, &config).await;
    h.cycle(Mode::Apply, Reconcile::IfDue).await;
    let email = text(&h.app().contacts()[0], "email_address");
    let (ghl_id, app_id) = linked_ids(&h, &email).await;
    let held = tag_set(&h.ghl().contact(&ghl_id).unwrap(), "tags");

    h.app().delete_contact_as_user(&app_id).unwrap();
    tag_in_ghl_before_the_next_write(&h, &ghl_id, "meanwhile");
    h.reset_counters();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let mut want = held;
    want.extend(["deleted-in-app".to_owned(), "meanwhile".to_owned()]);
    want.sort();
    assert_eq!(tag_set(&h.ghl().contact(&ghl_id).unwrap(), "tags"), want);
    let counters = h.ghl().counters();
    assert_eq!(
        (
            counters.count_route("POST", "/contacts/{contactId}/tags"),
            counters.count_route("PUT", "/contacts/{contactId}"),
            counters.count_route("GET", "/contacts/{contactId}"),
        ),
        (1, 0, 0),
        "one tag request: no PUT, no read: {:?}",
        counters.requests
    );
}

/// The mass-delete guard: when more than `sync.mass_delete_percent` of a
/// side's linked contacts disappear at once, none of those deletes is
/// propagated (and the next reconciliation still holds them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_delete_guard_holds_a_wave_of_deletes() {
    let (h, expected) = synced(5, 5, Template::contacts()).await;
    // 3 of 10 (30% > 20%).
    let victims: Vec<String> = expected.keys().take(3).cloned().collect();
    for email in &victims {
        let (_, app_id) = linked_ids(&h, email).await;
        h.app().delete_contact_as_user(&app_id).unwrap();
    }
    for round in ["first", "second"] {
        h.reset_counters();
        let report = h.cycle(Mode::Apply, Reconcile::Always).await;
        let totals = report.totals();
        assert_eq!(
            totals.deletes_held, 3,
            "{round} reconciliation holds the wave: {totals:?}"
        );
        assert_eq!(totals.planned_deletes, 0, "{round}: {totals:?}");
        assert_eq!(ghl_writes(&h.ghl()), 0, "{round}: nothing written to GHL");
        assert_eq!(
            h.ghl_emails(),
            expected.keys().map(|e| (e.clone(), 1)).collect(),
            "{round}: every GHL contact is still there"
        );
    }
    // Nor does it leak one edit at a time: a GHL contact whose app copy is
    // gone is edited, and polling leaves the delete to reconciliation.
    let ghl_id = text(&h.ghl_by_email(&victims[0]), "id");
    h.ghl()
        .update_contact_as_user(&ghl_id, json!({"firstName": "Edited"}))
        .unwrap();
    h.reset_counters();
    let report = h.cycle(Mode::Apply, Reconcile::Never).await;
    assert_eq!(report.totals().planned_deletes, 0, "{:?}", report.totals());
    assert_eq!(ghl_writes(&h.ghl()), 0, "the edit deleted nothing in GHL");
    assert!(h.ghl().contact(&ghl_id).is_some());
    assert_eq!(
        h.engine
            .store
            .count_links(PAIR, EntityKind::Contact)
            .await
            .unwrap(),
        10,
        "no link tombstoned"
    );
}

// -------------------------------------------------- 7. bad input contained --

/// Bad input is contained: a GHL contact whose phone is not a phone number
/// is dead-lettered, once, with a reason naming the field and the record,
/// while everyone else syncs; once corrected it syncs too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_record_is_dead_lettered_once_and_the_rest_syncs() {
    let h = Harness::new(start_sims(3, 3).await, &Template::contacts().render()).await;
    let bad_email = "bad.phone@example.com";
    // The GHL simulator accepts 7 to 15 digits; "+1 234567" is no valid
    // North American number, which the mapping's `e164` refuses. ("12"
    // itself is refused by the simulator, like GHL does.)
    let bad = h
        .ghl()
        .create_contact_as_user(
            &h.sims.location,
            json!({"email": bad_email, "firstName": "Bad", "phone": "+1234567"}),
        )
        .expect("the simulator takes the phone");
    let bad_id = text(&bad, "id");
    let mut expected = everyone(&h);
    expected.remove(bad_email);

    let report = h.cycle(Mode::Apply, Reconcile::IfDue).await;
    assert_eq!(report.totals().dead_letters, 1, "{:?}", report.totals());
    let letters = h.engine.store.dead_letters(None).await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter = &letters[0];
    assert_eq!(letter.side, Side::Ghl);
    assert_eq!(letter.entity, EntityKind::Contact);
    assert_eq!(letter.record_id.as_deref(), Some(bad_id.as_str()));
    assert!(
        letter.reason.contains("phone") && letter.reason.contains(&bad_id),
        "the reason names the field and the record: {}",
        letter.reason
    );
    // Everyone else synced; the bad record did not reach the app.
    assert_eq!(
        h.app_emails(),
        expected.keys().map(|e| (e.clone(), 1)).collect(),
        "the app holds everyone but the bad record"
    );
    let mut ghl_expected: BTreeMap<String, usize> =
        expected.keys().map(|e| (e.clone(), 1)).collect();
    ghl_expected.insert(bad_email.to_owned(), 1);
    assert_eq!(h.ghl_emails(), ghl_expected);

    // Read again (poll overlap and a full reconciliation): not again.
    let again = h.cycle(Mode::Apply, Reconcile::Always).await;
    assert_eq!(again.totals().dead_letters, 0, "{:?}", again.totals());
    assert_eq!(h.engine.store.dead_letters(None).await.unwrap().len(), 1);

    // Corrected, it syncs.
    tick().await;
    h.ghl()
        .update_contact_as_user(&bad_id, json!({"phone": "+15125550100"}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    expected.insert(bad_email.to_owned(), 1);
    h.assert_both_sides_hold(&expected, "after the phone was corrected");
    assert_eq!(h.app_by_email(bad_email)["mobile"], "+15125550100");
}

// -------------------------------------------------------------- 8. tasks --

/// Tasks: a task created in GHL on a synced contact reaches the app at the
/// next reconciliation; completing it in GHL marks it done in the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ghl_task_reaches_the_app_and_its_completion_follows() {
    let (h, _) = synced(2, 2, Template::with_children()).await;
    let email = text(&h.ghl_contacts()[0], "email");
    let (ghl_id, app_id) = linked_ids(&h, &email).await;
    let title = "Send the contract";
    let task = h
        .ghl()
        .create_task_as_user(
            &ghl_id,
            json!({"title": title, "dueDate": "2027-01-05T09:00:00Z", "completed": false}),
        )
        .unwrap();
    let task_id = text(&task, "id");

    let app_task = |h: &Harness| -> Vec<Value> {
        h.app()
            .tasks(&app_id)
            .into_iter()
            .filter(|t| t["name"] == title)
            .collect()
    };
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let tasks = app_task(&h);
    assert_eq!(tasks.len(), 1, "the task reached the app once: {tasks:#?}");
    assert_eq!(tasks[0]["done"], false);
    assert!(
        text(&tasks[0], "due_on").starts_with("2027-01-05"),
        "{:#}",
        tasks[0]
    );

    tick().await;
    h.ghl()
        .update_task_as_user(&task_id, json!({"completed": true}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let tasks = app_task(&h);
    assert_eq!(tasks.len(), 1, "still one task: {tasks:#?}");
    assert_eq!(
        tasks[0]["done"], true,
        "completed in the app: {:#}",
        tasks[0]
    );
    assert_quiet_cycle(&h, Reconcile::Always, "after the task synced").await;
}

/// GHL tasks carry no change time and notes only `dateAdded` (the
/// official `TaskSchema` and `GetNoteSchema`, which the spec-strict
/// simulator answers with): created and edited in place on either side,
/// they still sync both ways, found by content, and a task or note read
/// again unchanged plans nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_notes_without_change_times_sync_both_ways() {
    let (h, _) = synced(2, 2, Template::with_children()).await;
    assert_eq!(h.ghl().record_shapes(), RecordShapes::SpecStrict);
    let email = text(&h.ghl_contacts()[0], "email");
    let (ghl_id, app_id) = linked_ids(&h, &email).await;
    let ghl_task = h
        .ghl()
        .create_task_as_user(
            &ghl_id,
            json!({"title": "GHL task", "dueDate": "2027-01-05T09:00:00Z", "completed": false}),
        )
        .unwrap();
    let ghl_note = h
        .ghl()
        .create_note_as_user(&ghl_id, json!({"body": "GHL note"}))
        .unwrap();
    let app_task = h
        .app()
        .create_task_as_user(
            &app_id,
            json!({"name": "App task", "done": false, "due_on": "2027-02-01T09:00:00Z"}),
        )
        .unwrap();
    let app_note = h
        .app()
        .create_note_as_user(&app_id, json!({"text": "App note"}))
        .unwrap();
    let both_hold = |h: &Harness, tasks: [&str; 2], notes: [&str; 2]| {
        let has = |list: Vec<String>, want: &str| list.iter().filter(|t| *t == want).count() == 1;
        tasks.iter().all(|t| {
            has(child_texts(&h.ghl().tasks(&ghl_id), "title"), t)
                && has(child_texts(&h.app().tasks(&app_id), "name"), t)
        }) && notes.iter().all(|n| {
            has(child_texts(&h.ghl().notes(&ghl_id), "body"), n)
                && has(child_texts(&h.app().notes(&app_id), "text"), n)
        })
    };
    h.cycle(Mode::Apply, Reconcile::Always).await;
    assert!(
        both_hold(&h, ["GHL task", "App task"], ["GHL note", "App note"]),
        "created on either side, each reached the other once: GHL {:#?} app {:#?}",
        h.ghl().tasks(&ghl_id),
        h.app().tasks(&app_id)
    );
    assert_quiet_cycle(&h, Reconcile::Always, "tasks and notes read again").await;

    // Edited in place: GHL's task and note get no new change time.
    h.ghl()
        .update_task_as_user(&text(&ghl_task, "id"), json!({"title": "GHL task, edited"}))
        .unwrap();
    h.ghl()
        .update_note_as_user(&text(&ghl_note, "id"), json!({"body": "GHL note, edited"}))
        .unwrap();
    tick().await;
    h.app()
        .update_task_as_user(&text(&app_task, "id"), json!({"name": "App task, edited"}))
        .unwrap();
    h.app()
        .update_note_as_user(&text(&app_note, "id"), json!({"text": "App note, edited"}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    assert!(
        both_hold(
            &h,
            ["GHL task, edited", "App task, edited"],
            ["GHL note, edited", "App note, edited"]
        ),
        "edits in place reached the other side: GHL {:#?} {:#?} app {:#?} {:#?}",
        h.ghl().tasks(&ghl_id),
        h.ghl().notes(&ghl_id),
        h.app().tasks(&app_id),
        h.app().notes(&app_id)
    );
    assert_quiet_cycle(&h, Reconcile::Always, "after the edits synced").await;
}

/// `newest` where one side gives no change time: a GHL task's change
/// counts as made when it was read (the latest it can have been made), so
/// the same field edited on both sides before a read keeps GHL's edit,
/// even when the app's was made after it (`connector::Stamp::ReadAt`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_counts_a_change_without_change_time_as_made_when_read() {
    let (h, _) = synced(2, 2, Template::with_children()).await;
    let email = text(&h.ghl_contacts()[0], "email");
    let (ghl_id, app_id) = linked_ids(&h, &email).await;
    let task = h
        .ghl()
        .create_task_as_user(
            &ghl_id,
            json!({"title": "Call back", "dueDate": "2027-01-05T09:00:00Z", "completed": false}),
        )
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let app_task = h
        .app()
        .tasks(&app_id)
        .into_iter()
        .find(|t| t["name"] == "Call back")
        .expect("the task reached the app");

    h.ghl()
        .update_task_as_user(&text(&task, "id"), json!({"title": "Call back (GHL)"}))
        .unwrap();
    tick().await;
    h.app()
        .update_task_as_user(&text(&app_task, "id"), json!({"name": "Call back (app)"}))
        .unwrap();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let ghl_titles = child_texts(&h.ghl().tasks(&ghl_id), "title");
    let app_names = child_texts(&h.app().tasks(&app_id), "name");
    for titles in [&ghl_titles, &app_names] {
        assert!(
            titles.contains(&"Call back (GHL)".to_owned())
                && !titles.iter().any(|t| t.starts_with("Call back (app)")),
            "GHL's edit, read last, wins on both sides: GHL {ghl_titles:?} app {app_names:?}"
        );
    }
    assert_quiet_cycle(&h, Reconcile::Always, "after settling").await;
}

/// A reconciliation running while the writer works (as in the daemon)
/// takes nothing the writer creates meanwhile for deleted: a task created
/// in the app after the reconciliation listed that contact's tasks, and
/// linked before it finished, is not "gone", and its GHL original is not
/// deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_racing_the_writer_deletes_nothing() {
    let (h, _) = synced(3, 3, Template::with_children()).await;
    let store = &h.engine.store;
    let pair = h.engine.pairs[0].clone();
    // The contact whose app tasks a reconciliation lists first.
    let live = store
        .live_side_ids(PAIR, EntityKind::Contact, Side::App)
        .await
        .unwrap();
    let (link_id, app_id) = live[0].clone();
    let link = store.link_by_id(link_id).await.unwrap().unwrap();
    let ghl_id = link.a.id.clone().unwrap();
    let task = h
        .ghl()
        .create_task_as_user(
            &ghl_id,
            json!({"title": "Race the reconciliation", "dueDate": "2027-02-01T09:00:00Z", "completed": false}),
        )
        .unwrap();
    let task_id = text(&task, "id");
    let planned = h.engine.reconcile(&pair, Mode::Apply).await.unwrap();
    assert_eq!(
        planned.stats.planned_creates, 1,
        "the task's create in the app is planned: {:?}",
        planned.stats
    );

    // Every app request now takes 200 ms: the reconciliation lists the
    // contacts' app tasks one after the other, and the writer creates the
    // task once the first listing (the one of its contact) is done.
    h.app().set_faults(FaultConfig {
        latency: Duration::from_millis(200),
        ..FaultConfig::default()
    });
    let route = "/api/v1/contacts/{contact_id}/tasks";
    let listed = h.app().counters().count_route("GET", route);
    let reconciling = tokio::spawn({
        let engine = h.engine.clone();
        let pair = pair.clone();
        async move { engine.reconcile(&pair, Mode::Apply).await }
    });
    assert!(
        eventually(Duration::from_secs(30), || {
            h.app().counters().count_route("GET", route) > listed
        })
        .await,
        "the reconciliation lists app tasks"
    );
    let written = h.engine.drain_outbox(&Shutdown::default()).await.unwrap();
    assert_eq!(written.applied, 1, "the task is created in the app");
    let report = reconciling.await.unwrap().unwrap();
    h.app().clear_faults();
    assert_eq!(
        report.stats.planned_deletes, 0,
        "nothing was deleted anywhere: {:?}",
        report.stats
    );
    h.cycle(Mode::Apply, Reconcile::Never).await;
    assert!(
        h.ghl()
            .tasks(&ghl_id)
            .iter()
            .any(|t| text(t, "id") == task_id),
        "the GHL task survives: {:#?}",
        h.ghl().tasks(&ghl_id)
    );
    let in_app = h
        .app()
        .tasks(&app_id)
        .into_iter()
        .filter(|t| t["name"] == "Race the reconciliation")
        .count();
    assert_eq!(in_app, 1, "the app has the task once");
    assert_quiet_cycle(&h, Reconcile::Always, "after the race").await;
}

// ------------------------------------------------------- 9. plan is dry --

/// `Mode::Plan` reports the writes a cycle would make and writes nothing:
/// no links, outbox rows, conflicts, dead letters or watermarks in the
/// store, no write request to either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reports_writes_and_writes_nothing() {
    let h = Harness::new(start_sims(4, 4).await, &Template::with_children().render()).await;
    let expected = everyone(&h);
    let before = (h.ghl_emails(), h.app_emails());

    let report = h.cycle(Mode::Plan, Reconcile::IfDue).await;
    let totals = report.totals();
    assert!(totals.planned_creates >= 8, "{totals:?}");
    let planned = &report.pairs[PAIR].planned;
    for side in ["ghl", "app"] {
        let creates = planned
            .iter()
            .filter(|w| w.side == side && w.entity == EntityKind::Contact)
            .count();
        assert_eq!(
            creates, 4,
            "contact creates planned on `{side}`: {planned:#?}"
        );
    }

    let store = &h.engine.store;
    assert_eq!(
        store.count_links(PAIR, EntityKind::Contact).await.unwrap(),
        0
    );
    assert_eq!(outbox(store).await, OutboxDepth::default());
    assert!(store.open_conflicts(None).await.unwrap().is_empty());
    assert!(store.dead_letters(None).await.unwrap().is_empty());
    let cursors = store.cursors(PAIR).await.unwrap();
    assert!(
        cursors
            .iter()
            .all(|c| c.watermark.is_none() && c.last_full_sync_at.is_none()),
        "plan moves no watermark: {cursors:#?}"
    );
    assert_eq!(h.writes(), (0, 0), "no write request to either side");
    assert_eq!((h.ghl_emails(), h.app_emails()), before);

    // The plan left the next real cycle everything to do.
    h.cycle(Mode::Apply, Reconcile::IfDue).await;
    h.assert_both_sides_hold(&expected, "the cycle after the plan");
}

// ------------------------------------------------------------ 10. kill -9 --

/// Spawns the binary with `args`, output to files in `dir`.
fn spawn(dir: &Path, config: &Path, args: &[&str], label: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("{label}.out"))).unwrap();
    let err = std::fs::File::create(dir.join(format!("{label}.err"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ghlsync"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn ghlsync")
}

fn output(dir: &Path, label: &str) -> String {
    let read = |ext: &str| std::fs::read_to_string(dir.join(format!("{label}.{ext}")));
    format!(
        "stdout:\n{}\nstderr:\n{}",
        read("out").unwrap_or_default(),
        read("err").unwrap_or_default()
    )
}

/// The emails whose count differs from `want` (missing: 0).
fn off(have: &BTreeMap<String, usize>, want: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    let mut off: BTreeMap<String, usize> = have
        .iter()
        .filter(|(email, n)| want.get(*email) != Some(n))
        .map(|(email, n)| (email.clone(), *n))
        .collect();
    for email in want.keys().filter(|e| !have.contains_key(*e)) {
        off.insert(email.clone(), 0);
    }
    off
}

/// Runs `ghlsync sync --once --reconcile --json` to completion.
async fn sync_once(dir: &Path, config: &Path, label: &str) -> Value {
    let mut child = spawn(
        dir,
        config,
        &["sync", "--once", "--reconcile", "--json"],
        label,
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "{label} failed ({status}):\n{}",
        output(dir, label)
    );
    let out = std::fs::read_to_string(dir.join(format!("{label}.out"))).unwrap();
    let start = out.find('{').unwrap_or(0);
    serde_json::from_str(&out[start..])
        .unwrap_or_else(|e| panic!("{label}: the report is not JSON ({e}):\n{out}"))
}

/// Nothing lost, nothing duplicated across kill -9: the daemon is killed
/// three times while the initial sync of 300 + 300 contacts is in flight,
/// twice of them while a create it sent to GHL is applied there but not
/// yet recorded (its answer lost, the connector backing off before asking
/// again). After restarts every contact exists exactly once on both sides
/// (the GHL location allows duplicates, so a create sent twice would
/// show), nothing is dead-lettered, no write is pending or dead, and a
/// further cycle writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_daemon_resumes_without_losing_or_duplicating() {
    const PER_SIDE: usize = 300;
    let sims = start_sims(PER_SIDE, PER_SIDE).await;
    let dir = tempfile::tempdir().unwrap();
    let text = render(&sims, &Template::contacts().render(), dir.path(), 200);
    let (config, loaded) = load(&text, dir.path());
    let ghl = sims.ghl.handle();
    let app = sims.app.handle();
    let location = sims.location.clone();
    let mut expected = emails(&ghl.contacts(&location), "email");
    expected.extend(emails(&app.contacts(), "email_address"));
    assert_eq!(
        expected.len(),
        2 * PER_SIDE,
        "the seeds are different people"
    );
    let want: BTreeMap<String, usize> = expected.keys().map(|e| (e.clone(), 1)).collect();
    let done = || {
        emails(&ghl.contacts(&location), "email") == want
            && emails(&app.contacts(), "email_address") == want
    };
    let lost = || {
        ghl.counters()
            .faults
            .get("lose_response")
            .copied()
            .unwrap_or(0)
    };

    // 1. Killed while creating contacts in the app, some of whose answers
    //    are lost at random (applied, then the connection reset).
    app.set_faults(FaultConfig {
        lose_response_rate: 0.05,
        ..FaultConfig::default()
    });
    let mut daemon = spawn(dir.path(), &config, &["run"], "run-1");
    let reached = eventually(Duration::from_secs(60), || {
        app.contact_count() >= PER_SIDE + 100
    })
    .await;
    daemon.kill().expect("SIGKILL");
    daemon.wait().unwrap();
    assert!(
        reached,
        "run-1 made no progress:\n{}",
        output(dir.path(), "run-1")
    );
    app.clear_faults();

    // 2, 3. Killed while creating contacts in GHL, right after a create
    //    and the upsert that checks it both lost their answers: the
    //    contact is in GHL, the connector is waiting to ask again, and
    //    nothing is recorded.
    for (label, at) in [("run-2", 30), ("run-3", 150)] {
        let mut daemon = spawn(dir.path(), &config, &["run"], label);
        let reached = eventually(Duration::from_secs(60), || {
            ghl.contacts(&location).len() >= PER_SIDE + at
        })
        .await;
        let before = lost();
        ghl.fail_next(FaultKind::LoseResponse, 2);
        let in_window =
            reached && eventually(Duration::from_secs(30), || lost() >= before + 2).await;
        daemon.kill().expect("SIGKILL");
        daemon.wait().unwrap();
        assert!(
            in_window,
            "{label}: no GHL create in flight to kill ({} GHL contacts):\n{}",
            ghl.contacts(&location).len(),
            output(dir.path(), label)
        );
        ghl.clear_faults();
        assert!(
            !done(),
            "{label} finished the whole sync before it was killed; the test needs more contacts"
        );
    }

    // Restarted, it finishes (the killed writers' leases expire first).
    let mut daemon = spawn(dir.path(), &config, &["run"], "run-4");
    let duplicated = || {
        let twice = |counts: BTreeMap<String, usize>| counts.values().any(|n| *n > 1);
        twice(emails(&ghl.contacts(&location), "email"))
            || twice(emails(&app.contacts(), "email_address"))
    };
    let finished = eventually(Duration::from_secs(120), || done() || duplicated()).await && done();
    let settled = finished && {
        // Let the writer record the last outcomes, then kill it again.
        tokio::time::sleep(Duration::from_secs(1)).await;
        true
    };
    daemon.kill().expect("SIGKILL");
    daemon.wait().unwrap();
    assert!(
        settled,
        "not converged after restart: GHL {:?}, app {:?}:\n{}",
        off(&emails(&ghl.contacts(&location), "email"), &want),
        off(&emails(&app.contacts(), "email_address"), &want),
        output(dir.path(), "run-4")
    );

    // Whatever the last kill interrupted is finished by a cycle.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sync_once(dir.path(), &config, "once-1").await;
    ghl.reset_counters();
    app.reset_counters();
    let report = sync_once(dir.path(), &config, "once-2").await;
    assert_eq!(
        (ghl_writes(&ghl), app_writes(&app)),
        (0, 0),
        "a cycle after convergence writes nothing: {report:#}"
    );
    assert_eq!(emails(&ghl.contacts(&location), "email"), want, "GHL");
    assert_eq!(emails(&app.contacts(), "email_address"), want, "app");

    let store = Store::connect(&loaded.settings.database).await.unwrap();
    let depth = outbox(&store).await;
    assert_eq!(
        (depth.pending, depth.dead),
        (0, 0),
        "nothing pending or dead in the outbox: {depth:?}"
    );
    let letters = store.dead_letters(None).await.unwrap();
    assert!(letters.is_empty(), "no dead letters: {letters:#?}");
    assert_eq!(
        store.count_links(PAIR, EntityKind::Contact).await.unwrap(),
        2 * PER_SIDE as i64,
        "one link per person"
    );
    store.close().await;
}
