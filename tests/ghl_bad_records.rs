//! Issue 13, item 4: one malformed GHL record must not block the pair. A
//! contact whose field has the wrong type (`"phone": 12345`) or that has no
//! `id` used to fail its whole page; the side was then taken for
//! unavailable and retried forever, and nothing was dead-lettered. Now each
//! such record becomes one dead letter naming it, its field and the
//! reason, everything else syncs, the feed moves past it, and reading it
//! again adds nothing. Run on SQLite and on Postgres (which skips with a
//! NOTICE when `GHLSYNC_TEST_DATABASE_URL` is unset).
//!
//! The malformed records are planted with the GHL simulator's
//! `plant_raw_*` methods: the simulator never sends such data on its own.

#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use engine_helpers::{start_sims, text, with_postgres, Harness, Template};
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::engine::{Mode, Reconcile};
use ghl_sync::store::{DeadLetter, DeadLetterStage};
use ghlsync_sim::ghl::UNUSUAL_VARIANTS;
use serde_json::json;

/// The pair every template configures.
const PAIR: &str = "main";

const BAD_PHONE_ID: &str = "badPhone000000000001";
const BAD_PHONE_EMAIL: &str = "bad.phone@example.com";
const NO_ID_EMAIL: &str = "no.id@example.com";

/// The emails of both sides together: who must be on both sides after a
/// sync.
fn everyone(h: &Harness) -> BTreeMap<String, usize> {
    let mut all = h.ghl_emails();
    for email in h.app_emails().into_keys() {
        *all.entry(email).or_default() += 1;
    }
    all
}

async fn dead_letters(h: &Harness) -> Vec<DeadLetter> {
    h.engine
        .store
        .dead_letters(None)
        .await
        .expect("dead letters")
}

/// The GHL contact feed's cursor.
async fn ghl_cursor(h: &Harness) -> ghl_sync::store::Cursor {
    h.engine
        .store
        .load_cursor(PAIR, Side::Ghl, EntityKind::Contact, "")
        .await
        .expect("load the cursor")
        .expect("the GHL contact feed has a cursor")
}

/// Asserts a cycle (reconciling in full) reads the bad records again
/// without a new dead letter, and writes nothing anywhere.
async fn assert_read_again_quietly(h: &Harness, letters: usize, context: &str) {
    h.reset_counters();
    let again = h.cycle(Mode::Apply, Reconcile::Always).await;
    let totals = again.totals();
    assert_eq!(totals.dead_letters, 0, "{context}: {totals:?}");
    assert_eq!(
        totals.planned(),
        0,
        "{context}: nothing planned: {totals:?}"
    );
    assert_eq!(totals.applied, 0, "{context}: nothing applied: {totals:?}");
    assert_eq!(
        h.writes(),
        (0, 0),
        "{context}: write requests (GHL, app); GHL {:?}, app {:?}",
        h.ghl().counters().requests,
        h.app().counters().requests
    );
    assert_eq!(dead_letters(h).await.len(), letters, "{context}");
}

/// A GHL location with a contact whose phone is a number and a contact
/// without an id among good ones: after one cycle, one dead letter per bad
/// record naming it, its field and the reason; every good contact of both
/// sides on both sides; the GHL feed succeeded and moved past the bad
/// records. A second cycle (the poll's overlap and a full reconciliation
/// read them again) adds no dead letter and writes nothing.
async fn bad_contacts_case(database: Option<String>) {
    let template = Template {
        database,
        ..Template::contacts()
    };
    let h = Harness::new(start_sims(4, 3).await, &template.render()).await;
    let location = h.sims.location.clone();
    let mut expected = everyone(&h);
    assert_eq!(expected.len(), 7, "the seeds are different people");

    // Planted last, so a change-feed page may hold nothing else.
    h.ghl()
        .plant_raw_contact(
            &location,
            json!({
                "id": BAD_PHONE_ID,
                "email": BAD_PHONE_EMAIL,
                "firstName": "Bad",
                "phone": 12345,
            }),
        )
        .expect("plant the wrong-typed phone");
    h.ghl()
        .plant_raw_contact(
            &location,
            json!({"email": NO_ID_EMAIL, "firstName": "Nobody", "lastName": "Known"}),
        )
        .expect("plant the contact without an id");
    let newest: DateTime<Utc> = text(&h.ghl_by_email(NO_ID_EMAIL), "dateUpdated")
        .parse()
        .expect("the planted contact's dateUpdated");
    // The simulator's clock ticks at least 1 ms per write: let ours pass
    // it, so the poll's window (up to now) holds the planted records.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    let report = h.cycle(Mode::Apply, Reconcile::IfDue).await;
    assert_eq!(report.totals().dead_letters, 2, "{:?}", report.totals());

    let letters = dead_letters(&h).await;
    assert_eq!(
        letters.len(),
        2,
        "one dead letter per bad record: {letters:#?}"
    );
    for letter in &letters {
        assert_eq!(letter.pair, PAIR);
        assert_eq!(letter.side, Side::Ghl, "{letter:#?}");
        assert_eq!(letter.entity, EntityKind::Contact, "{letter:#?}");
        assert_eq!(letter.stage, DeadLetterStage::Read, "{letter:#?}");
    }
    let phone = letters
        .iter()
        .find(|l| l.record_id.as_deref() == Some(BAD_PHONE_ID))
        .unwrap_or_else(|| panic!("a dead letter names {BAD_PHONE_ID}: {letters:#?}"));
    assert!(
        phone.reason.contains(BAD_PHONE_ID)
            && phone.reason.contains("field `phone`")
            && phone.reason.contains("12345")
            && phone.reason.contains("expected a string"),
        "the reason names the record, the field, the value and what is wrong: {}",
        phone.reason
    );
    let nameless = letters
        .iter()
        .find(|l| l.record_id.is_none())
        .unwrap_or_else(|| panic!("a dead letter for the contact without an id: {letters:#?}"));
    assert!(
        nameless.reason.contains("no `id`") && nameless.reason.contains(NO_ID_EMAIL),
        "the reason says the id is missing and what identifies the record: {}",
        nameless.reason
    );

    // Everyone else synced; the bad records did not reach the app.
    for bad in [BAD_PHONE_EMAIL, NO_ID_EMAIL] {
        expected.remove(bad);
    }
    let want: BTreeMap<String, usize> = expected.keys().map(|e| (e.clone(), 1)).collect();
    assert_eq!(
        h.app_emails(),
        want,
        "the app holds every good contact once"
    );
    let mut ghl_want = want.clone();
    ghl_want.insert(BAD_PHONE_EMAIL.to_owned(), 1);
    ghl_want.insert(NO_ID_EMAIL.to_owned(), 1);
    assert_eq!(h.ghl_emails(), ghl_want, "GHL holds every app contact once");

    // The side was read, not taken for unavailable, and its feed moved
    // past the bad records (the newest changes it held).
    let cursor = ghl_cursor(&h).await;
    assert!(cursor.last_success_at.is_some(), "{cursor:#?}");
    assert!(
        cursor.watermark.is_some_and(|w| w >= newest),
        "the watermark passed the bad records ({newest}): {cursor:#?}"
    );

    assert_read_again_quietly(&h, 2, "read again").await;
    assert_read_again_quietly(&h, 2, "and again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ghl_contacts_are_dead_lettered_once_and_the_rest_syncs() {
    bad_contacts_case(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ghl_contacts_are_dead_lettered_once_and_the_rest_syncs_on_postgres() {
    with_postgres("malformed_ghl_contacts_on_postgres", |url| async move {
        bad_contacts_case(Some(url)).await;
    })
    .await;
}

/// A synced contact that GHL starts sending malformed is dead-lettered, and
/// is not taken for deleted: the reconciliation that cannot read it must
/// not delete its counterpart in the app. Once GHL sends it readable
/// again, its change syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_contact_sent_malformed_is_dead_lettered_not_deleted() {
    let h = Harness::new(start_sims(3, 2).await, &Template::contacts().render()).await;
    h.cycle(Mode::Apply, Reconcile::IfDue).await;
    let expected: BTreeMap<String, usize> = everyone(&h).into_keys().map(|e| (e, 1)).collect();
    h.assert_both_sides_hold(&expected, "after the initial sync");

    let mut contact = h.ghl_contacts()[0].clone();
    let email = text(&contact, "email");
    let id = text(&contact, "id");
    let good_phone = contact["phone"].clone();
    contact["phone"] = json!(12345);
    contact.as_object_mut().unwrap().remove("dateUpdated");
    h.ghl()
        .plant_raw_contact(&h.sims.location, contact)
        .expect("overwrite the contact");

    let report = h.cycle(Mode::Apply, Reconcile::Always).await;
    let totals = report.totals();
    assert_eq!(totals.dead_letters, 1, "{totals:?}");
    assert_eq!(
        totals.planned_deletes, 0,
        "nothing taken for deleted: {totals:?}"
    );
    let letters = dead_letters(&h).await;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0].record_id.as_deref(), Some(id.as_str()));
    assert!(
        letters[0].reason.contains("field `phone`"),
        "{}",
        letters[0].reason
    );
    h.assert_both_sides_hold(&expected, "after GHL sent the contact malformed");
    let link = h
        .engine
        .store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, &id)
        .await
        .unwrap()
        .expect("still linked");
    assert!(link.deleted_at.is_none(), "the link is live: {link:#?}");
    assert_read_again_quietly(&h, 1, "read again").await;

    // Readable again, with an edit: the edit syncs.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    h.ghl()
        .update_contact_as_user(&id, json!({"phone": good_phone, "firstName": "Fixed"}))
        .expect("correct the contact");
    h.cycle(Mode::Apply, Reconcile::Never).await;
    assert_eq!(h.app_by_email(&email)["first_name"], "Fixed");
}

/// A task GHL sends malformed (`"completed": "yes"`) among a contact's
/// tasks: one dead letter naming it, its linked counterpart in the app not
/// taken for deleted, and a new task of the same contact still syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_ghl_task_is_dead_lettered_and_its_siblings_sync() {
    let h = Harness::new(start_sims(2, 1).await, &Template::with_children().render()).await;
    h.cycle(Mode::Apply, Reconcile::IfDue).await;

    // A synced contact with a synced task.
    let (ghl_id, mut task) = h
        .ghl_contacts()
        .iter()
        .find_map(|c| {
            let id = text(c, "id");
            h.ghl().tasks(&id).into_iter().next().map(|t| (id, t))
        })
        .expect("a seeded GHL contact with a task");
    let email = text(&h.ghl().contact(&ghl_id).unwrap(), "email");
    let app_id = text(&h.app_by_email(&email), "id");
    let app_tasks = h.app().tasks(&app_id).len();
    assert!(app_tasks > 0, "the task synced");
    let task_id = text(&task, "id");
    task["completed"] = json!("yes");
    h.ghl()
        .plant_raw_task(&ghl_id, task)
        .expect("overwrite the task");
    h.ghl()
        .create_task_as_user(
            &ghl_id,
            json!({"title": "Call back", "dueDate": "2027-01-05T09:00:00Z", "completed": false}),
        )
        .expect("a new task");

    let report = h.cycle(Mode::Apply, Reconcile::Always).await;
    assert_eq!(report.totals().dead_letters, 1, "{:?}", report.totals());
    let letters = dead_letters(&h).await;
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let letter = &letters[0];
    assert_eq!(letter.entity, EntityKind::Task);
    assert_eq!(letter.record_id.as_deref(), Some(task_id.as_str()));
    assert!(
        letter.reason.contains("field `completed`") && letter.reason.contains("\"yes\""),
        "{}",
        letter.reason
    );
    let names: Vec<String> = h
        .app()
        .tasks(&app_id)
        .iter()
        .map(|t| text(t, "name"))
        .collect();
    assert_eq!(
        names.len(),
        app_tasks + 1,
        "the malformed task's counterpart stays, the new one arrives: {names:?}"
    );
    assert!(names.iter().any(|n| n == "Call back"), "{names:?}");
    assert_read_again_quietly(&h, 1, "read again").await;
}

/// Issue 15: records the official spec allows but that look unusual
/// (empty strings, absent optional fields, nulls where nullable, 10 KiB
/// notes, 500-character names, emoji and right-to-left text, dates with
/// and without milliseconds, with offsets, and the zoneless
/// `"2021-07-16 11:00:00"` of `GetEventSchema`) are all read: none is set
/// aside as unreadable, and reading them again plans nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_valid_unusual_records_are_all_read() {
    let h = Harness::new(start_sims(2, 1).await, &Template::with_children().render()).await;
    let planted = h.ghl().plant_unusual_records(15, 2 * UNUSUAL_VARIANTS);
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let unreadable: Vec<DeadLetter> = dead_letters(&h)
        .await
        .into_iter()
        .filter(|l| l.side == Side::Ghl && l.stage == DeadLetterStage::Read)
        .collect();
    assert!(
        unreadable.is_empty(),
        "spec-valid GHL records set aside: {unreadable:#?}"
    );
    let linked = h
        .engine
        .store
        .live_side_ids(PAIR, EntityKind::Contact, Side::Ghl)
        .await
        .unwrap();
    let linked: Vec<&String> = linked.iter().map(|(_, id)| id).collect();
    // The app requires an email: the unusual contacts without one (an
    // absent optional field, valid in GHL) stay in GHL only.
    let missing: Vec<&String> = planted
        .iter()
        .filter(|id| {
            h.ghl()
                .contact(id)
                .is_some_and(|c| c.get("email").is_some())
        })
        .filter(|id| !linked.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "unusual contacts with an email not linked: {missing:?}"
    );
    // One round may carry a side's own spelling back (the app simulator
    // trims the trailing space of a 500-character task title); after it,
    // reading everything again plans nothing.
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let again = h.cycle(Mode::Apply, Reconcile::Always).await.totals();
    assert_eq!(
        (
            again.planned_creates,
            again.planned_updates,
            again.dead_letters
        ),
        (0, 0, 0),
        "read again, nothing changes: {again:?}"
    );
}
