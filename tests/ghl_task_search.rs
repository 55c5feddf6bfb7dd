//! Reconciling GHL tasks through `POST /locations/{locationId}/tasks/search`
//! (`apps/locations.json`; GHL field notes, "Tasks and notes": it needs
//! `locations/tasks.readonly`; use it when granted, read per contact
//! otherwise), against the GHL simulator.

#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use ghl_sync::engine::{Mode, Reconcile};
use serde_json::json;

use engine_helpers::{start_sims, text, Harness, Template};

const TASKS_SCOPE: &str = "locations/tasks.readonly";
const TASK_SEARCH: &str = "/locations/{locationId}/tasks/search";
const PER_CONTACT: &str = "/contacts/{contactId}/tasks";

/// The pair with tasks and notes, its GHL token and scopes with the task
/// search's scope when `granted`.
async fn harness(contacts: usize, granted: bool) -> Harness {
    let mut sims = start_sims(contacts, 0).await;
    let mut template = Template::with_children().render();
    if granted {
        sims.ghl_token = sims.ghl.handle().issue_token(
            &sims.location,
            &["contacts.readonly", "contacts.write", TASKS_SCOPE],
            None,
        );
        let scopes = "scopes = [\"contacts.readonly\", \"contacts.write\"]";
        assert!(template.contains(scopes));
        template = template.replace(
            scopes,
            &format!("scopes = [\"contacts.readonly\", \"contacts.write\", \"{TASKS_SCOPE}\"]"),
        );
    }
    Harness::new(sims, &template).await
}

/// Tasks of the GHL contacts, as (contact id, task id).
fn ghl_tasks(h: &Harness) -> Vec<(String, String)> {
    h.ghl_contacts()
        .iter()
        .flat_map(|c| {
            let contact = text(c, "id");
            h.ghl()
                .tasks(&contact)
                .into_iter()
                .map(move |t| (contact.clone(), text(&t, "id")))
        })
        .collect()
}

/// How many tasks the app holds.
fn app_tasks(h: &Harness) -> usize {
    h.app()
        .contacts()
        .iter()
        .map(|c| h.app().tasks(&text(c, "id")).len())
        .sum()
}

/// With the scope granted, a reconciliation reads the tasks of 120
/// contacts in a few task searches (one per 50 contacts: 3), not 120 reads
/// per contact; a second one with nothing changed plans nothing (tasks
/// have no change time: their fingerprints tell a re-read apart); a task
/// deleted in GHL is still found gone (confirmed by one read of its
/// contact's tasks) and deleted in the app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_lists_tasks_with_the_location_wide_search() {
    let h = harness(120, true).await;
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let tasks = ghl_tasks(&h);
    assert!(tasks.len() > 50, "the seed gives tasks: {}", tasks.len());
    assert_eq!(app_tasks(&h), tasks.len(), "every task synced");

    h.reset_counters();
    let report = h.cycle(Mode::Apply, Reconcile::Always).await;
    assert_eq!(report.totals().planned(), 0, "{:?}", report.totals());
    let counters = h.ghl().counters();
    assert_eq!(
        counters.count_route("GET", PER_CONTACT),
        0,
        "no read per contact"
    );
    assert_eq!(
        counters.count_route("POST", TASK_SEARCH),
        3,
        "one per 50 contacts"
    );

    let (contact, gone) = tasks[0].clone();
    h.ghl().delete_task_as_user(&gone).unwrap();
    h.reset_counters();
    let report = h.cycle(Mode::Apply, Reconcile::Always).await;
    assert_eq!(report.totals().planned_deletes, 1, "{:?}", report.totals());
    assert_eq!(app_tasks(&h), tasks.len() - 1, "deleted in the app");
    let counters = h.ghl().counters();
    assert_eq!(
        counters.count_route("GET", PER_CONTACT),
        1,
        "the missing task confirmed on its contact {contact}"
    );
}

/// Without the scope, tasks are read per contact, as before; the search
/// is never tried (it would be refused: 401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_scope_tasks_are_read_per_contact() {
    let h = harness(30, false).await;
    h.cycle(Mode::Apply, Reconcile::Always).await;
    h.reset_counters();
    h.cycle(Mode::Apply, Reconcile::Always).await;
    let counters = h.ghl().counters();
    assert_eq!(counters.count_route("POST", TASK_SEARCH), 0);
    assert_eq!(
        counters.count_route("GET", PER_CONTACT),
        30,
        "one per contact"
    );
}

/// A token without the scope gets 401 from the simulator, as the spec's
/// `security` says; with it, task objects (not the placeholder schema's
/// arrays) that name their contact, paged by `skip` and `limit`, filtered
/// by `contactId` and `completed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_serves_the_task_search_as_the_spec_and_notes_say() {
    let sims = start_sims(40, 0).await;
    let ghl = sims.ghl.handle();
    let location = sims.location.clone();
    let url = format!("{}/locations/{location}/tasks/search", sims.ghl.base_url());
    let http = reqwest::Client::new();
    let search = |token: String, body: serde_json::Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let answer = http
                .post(&url)
                .bearer_auth(token)
                .header("Version", "2021-07-28")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = answer.status().as_u16();
            (status, answer.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, _) = search(sims.ghl_token.clone(), json!({})).await;
    assert_eq!(status, 401, "contacts scopes only");
    let token = ghl.issue_token(&location, &[TASKS_SCOPE], None);
    let all: usize = ghl
        .contacts(&location)
        .iter()
        .map(|c| ghl.tasks(&text(c, "id")).len())
        .sum();
    let (status, body) = search(token.clone(), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["tasks"].as_array().unwrap().len(),
        25.min(all),
        "default limit"
    );
    let mut seen = Vec::new();
    for skip in (0..all + 10).step_by(10) {
        let (_, body) = search(token.clone(), json!({"limit": 10, "skip": skip})).await;
        for task in body["tasks"].as_array().unwrap() {
            assert!(
                task["id"].is_string() && task["contactId"].is_string(),
                "{task}"
            );
            seen.push(text(task, "id"));
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all, "paging by skip lists each task once");
    let contact = ghl
        .contacts(&location)
        .into_iter()
        .find(|c| !ghl.tasks(&text(c, "id")).is_empty())
        .unwrap();
    let id = text(&contact, "id");
    let (_, body) = search(token.clone(), json!({"contactId": [id], "limit": 100})).await;
    let listed = body["tasks"].as_array().unwrap();
    assert_eq!(listed.len(), ghl.tasks(&id).len());
    assert!(listed.iter().all(|t| t["contactId"] == id.as_str()));
    let (_, body) = search(token.clone(), json!({"completed": true, "limit": 1000})).await;
    assert!(body["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["completed"] == true));
    let (status, _) = search(token, json!({"limit": "many"})).await;
    assert_eq!(status, 422);
}
