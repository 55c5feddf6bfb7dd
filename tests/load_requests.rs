//! What an initial load (`ghlsync backfill`: one cycle reconciling, then
//! the outbox drained) and a reconciliation cost in GHL requests, against
//! both simulators: each side's contacts listed once, each contact's
//! children read once, and no per-record duplicate lookup where the
//! contacts were just listed.

#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use ghl_sync::engine::{Mode, Reconcile};
use serde_json::json;

use engine_helpers::{start_sims, text, Harness, Template};

const SEARCH: &str = "/contacts/search";

/// A backfill of 1,200 GHL contacts (with their tasks and notes) into an
/// empty app lists GHL's contacts once, by search at pages of 500 (3
/// requests; the change poll that would list them all too is left to the
/// reconciliation), and reads each contact's tasks and notes once (not
/// once in the poll and again in the reconciliation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_lists_contacts_once_and_reads_children_once() {
    let h = Harness::new(
        start_sims(1200, 0).await,
        &Template::with_children().render(),
    )
    .await;
    h.reset_counters();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    assert_eq!(h.app().contacts().len(), 1200, "the load is complete");
    let counters = h.ghl().counters();
    assert_eq!(counters.count_route("GET", "/contacts/"), 0);
    assert_eq!(counters.count_route("POST", SEARCH), 3, "ceil(1200 / 500)");
    let tasks = counters.count_route("GET", "/contacts/{contactId}/tasks");
    let notes = counters.count_route("GET", "/contacts/{contactId}/notes");
    assert_eq!((tasks, notes), (1200, 1200), "once per contact");
}

/// The watermark a backfill's listing sets is the one its poll would
/// have: the next poll reads only what changed since (one search request,
/// where one from the beginning would list all 700 contacts again in 2),
/// and an edit made after the load arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_poll_after_a_backfill_reads_only_what_changed_since() {
    let h = Harness::new(start_sims(700, 0).await, &Template::contacts().render()).await;
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let contact = h.ghl_contacts()[3].clone();
    h.ghl()
        .update_contact_as_user(&text(&contact, "id"), json!({"firstName": "After"}))
        .unwrap();
    h.reset_counters();
    h.cycle(Mode::Apply, Reconcile::Never).await;
    let app = h.app_by_email(&text(&contact, "email"));
    assert_eq!(text(&app, "first_name"), "After", "the edit arrives");
    let counters = h.ghl().counters();
    assert_eq!(counters.count_route("POST", SEARCH), 1, "one page");
    assert_eq!(counters.total_requests, 1, "nothing else asked of GHL");
}

/// An initial load of app contacts into GHL sends no duplicate lookup
/// (`GET /contacts/search/duplicate`, one or two per record before): each
/// new app contact's keys are resolved against the GHL contacts the
/// reconciliation just listed. A candidate is still read by its id and
/// verified: the three app contacts with a GHL contact's email link to it
/// (one request each), the one sharing only a GHL contact's phone under
/// another email is somebody else and is created, and nobody is
/// duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_load_into_ghl_matches_against_the_listing_not_lookups() {
    let h = Harness::new(start_sims(5, 20).await, &Template::contacts().render()).await;
    let ghl = h.ghl_contacts();
    for (i, contact) in ghl.iter().take(3).enumerate() {
        h.app()
            .create_contact_as_user(json!({
                "email_address": text(contact, "email").to_uppercase(),
                "first_name": format!("Same{i}"),
            }))
            .unwrap();
    }
    let shared_phone = text(&ghl[4], "phone");
    h.app()
        .create_contact_as_user(json!({
            "email_address": "someone.else@app.test",
            "mobile": shared_phone,
        }))
        .unwrap();
    // What deciding costs, alone: a plan writes nothing.
    h.reset_counters();
    // (A plan commits nothing, so the app contacts find the GHL contacts
    // that GHL's own records matched in the app still free, and are
    // matched here through the listing.)
    h.cycle(Mode::Plan, Reconcile::Always).await;
    let counters = h.ghl().counters();
    assert_eq!(
        counters.count_route("GET", "/contacts/search/duplicate"),
        0,
        "no per-record lookup"
    );
    assert_eq!(
        counters.count_route("GET", "/contacts/{contactId}"),
        4,
        "each candidate read by id: 3 matches, 1 somebody else"
    );
    h.reset_counters();
    let report = h.cycle(Mode::Apply, Reconcile::Always).await;
    assert_eq!(report.totals().linked, 3, "{:?}", report.totals());
    let counters = h.ghl().counters();
    assert_eq!(
        counters.count_route("GET", "/contacts/search/duplicate"),
        0,
        "none when writing either"
    );
    assert_eq!(
        counters.count_route("POST", "/contacts/"),
        21,
        "20 + 1 created"
    );
    let emails = h.ghl_emails();
    assert_eq!(emails.len(), 5 + 21);
    assert!(emails.values().all(|n| *n == 1), "nobody twice: {emails:?}");
    let linked = h.ghl_by_email(&text(&ghl[0], "email"));
    assert_eq!(text(&linked, "firstName"), "Same0", "merged, newest wins");
}
