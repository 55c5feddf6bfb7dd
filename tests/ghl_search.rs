//! `POST /contacts/search` as the daemon uses it, against the GHL simulator,
//! held to the GHL field notes:
//! - "`POST /contacts/search` requires `locationId` and `pageLimit` (at
//!   most 500). Page-number paging stops at 10,000 results; past that,
//!   page with `searchAfter`."
//! - "Search is an index: a write can take a few seconds to become visible
//!   there. Poll with an overlap below the watermark and a lag behind now."
//! - "Reads return `customFields: [{id, value}]`. Writes take
//!   `customFields: [{id | key, field_value}]`, typed per field: a string,
//!   an array for multi-select and checkbox fields, a number for numeric
//!   and monetary fields, an object for file uploads."

#[path = "common/engine_helpers.rs"]
mod engine_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use ghl_sync::connector::ghl::pages::SEARCH_LIMIT_MAX;
use ghl_sync::connector::ghl::{
    ClientOptions, Credentials, GhlClient, GhlConnector, RateLimiter, RateLimits, SearchQuery,
};
use ghl_sync::connector::http::RetryPolicy;
use ghl_sync::connector::Connector;
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::engine::{Mode, Reconcile};
use ghl_sync::mapping::{Binding, FieldMap, Flow, Format, PairMap, Source};
use ghlsync_sim::ghl::{GhlSim, RateLimitConfig, RunningGhlSim, SimOptions};
use secrecy::SecretString;
use serde_json::{json, Value};

use engine_helpers::{start_sims, text, Harness, Template};

const RW: [&str; 2] = ["contacts.readonly", "contacts.write"];
const SEARCH: &str = "/contacts/search";

/// A simulator with `contacts` seeded contacts (every one of them updated
/// in the past year) and no rate limit in the way.
async fn start(contacts: usize, options: SimOptions) -> RunningGhlSim {
    GhlSim::start(SimOptions {
        contacts_per_location: contacts,
        rate_limit: RateLimitConfig {
            burst: 100_000,
            interval: Duration::from_secs(10),
            daily: 100_000_000,
        },
        ..options
    })
    .await
    .expect("simulator starts")
}

fn client(sim: &RunningGhlSim) -> GhlClient {
    let location = sim.handle().location_ids()[0].clone();
    let token = sim.handle().issue_token(&location, &RW, None);
    GhlClient::new(ClientOptions {
        base_url: sim.base_url().parse().unwrap(),
        location_id: location,
        credentials: Credentials::Static(SecretString::from(token)),
        scopes: RW.iter().map(|s| s.to_string()).collect(),
        limiter: RateLimiter::new(RateLimits {
            max_per_interval: 100_000,
            daily: 100_000_000,
            ..RateLimits::default()
        }),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(30),
    })
    .unwrap()
}

/// Every contact id the walk read, with how often.
fn tally(ids: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for id in ids {
        *seen.entry(id).or_default() += 1;
    }
    seen
}

/// 10,600 contacts changed in the window: a walk at `pageLimit` 500 reads
/// each once in 22 requests, all by `searchAfter` (the simulator answers
/// 400 to a page number with `page * pageLimit > 10000`, and no request
/// got one), in both record shapes (the spec-strict answer keeps
/// `searchAfter`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_past_ten_thousand_results_reads_each_contact_once_by_search_after() {
    for options in [SimOptions::default(), SimOptions::default().spec_strict()] {
        let sim = start(10_600, options).await;
        let handle = sim.handle();
        let location = handle.location_ids()[0].clone();
        let expected: Vec<String> = handle
            .contacts(&location)
            .iter()
            .map(|c| text(c, "id"))
            .collect();
        assert_eq!(expected.len(), 10_600);
        let client = client(&sim);
        let query =
            SearchQuery::updated_between(DateTime::UNIX_EPOCH, Utc::now(), SEARCH_LIMIT_MAX);
        let pages: Vec<_> = client
            .search_contact_pages(query)
            .try_collect()
            .await
            .expect("the walk succeeds");
        let seen = tally(
            pages
                .iter()
                .flat_map(|p| p.records.iter().map(|c| c.id.clone())),
        );
        assert_eq!(seen.len(), 10_600, "every contact read");
        assert!(seen.values().all(|n| *n == 1), "none read twice");
        assert!(expected.iter().all(|id| seen.contains_key(id)));
        let counters = handle.counters();
        let requests = counters.count_route("POST", SEARCH);
        assert_eq!(requests, 22, "ceil(10,600 / 500) requests");
        assert_eq!(
            counters.count("POST", SEARCH, 200),
            requests,
            "none refused"
        );
        sim.shutdown().await;
    }
}

/// The change feed the engine polls asks for pages of 500, the most the
/// notes allow: a catch-up of 10,600 changed contacts takes 22 search
/// requests (so about 200, not 1,000, for 100,000), and reads each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_pages_by_500() {
    let sim = start(10_600, SimOptions::default()).await;
    let connector = GhlConnector::new("ghl", client(&sim));
    let pages: Vec<_> = connector
        .changes(EntityKind::Contact, DateTime::UNIX_EPOCH, Utc::now())
        .try_collect()
        .await
        .expect("the feed is read");
    let seen = tally(
        pages
            .iter()
            .flat_map(|p| p.records.iter().map(|r| r.id.clone())),
    );
    assert_eq!(seen.len(), 10_600);
    assert!(seen.values().all(|n| *n == 1));
    let requests = sim.handle().counters().count_route("POST", SEARCH);
    assert_eq!(requests, 22, "pages of 500");
    sim.shutdown().await;
}

/// The full listing reconciliation reads is the search at pages of 500,
/// paged by `searchAfter` past 10,000 results, never `GET /contacts/` at
/// 100 a page: 10,600 contacts in 22 requests (so about 200 for 100,000,
/// against 1,000), each contact once, in `GET /contacts/{id}`'s spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_listing_is_the_search_at_pages_of_500() {
    let sim = start(10_600, SimOptions::default().spec_strict()).await;
    let connector = GhlConnector::new("ghl", client(&sim));
    let pages: Vec<_> = connector
        .contact_pages()
        .try_collect()
        .await
        .expect("the listing is read");
    let seen = tally(
        pages
            .iter()
            .flat_map(|p| p.records.iter().map(|r| r.id.clone())),
    );
    assert_eq!(seen.len(), 10_600, "every contact listed");
    assert!(seen.values().all(|n| *n == 1), "none listed twice");
    assert!(pages.iter().all(|p| p.rejected.is_empty()));
    let counters = sim.handle().counters();
    assert_eq!(
        counters.count_route("GET", "/contacts/"),
        0,
        "no list endpoint"
    );
    assert_eq!(counters.count_route("POST", SEARCH), 22, "pages of 500");
    assert_eq!(counters.count("POST", SEARCH, 200), 22, "none refused");
    assert!(connector.listing_lags(), "search is an index");
    sim.shutdown().await;
}

/// Reconciliation lists GHL through the search index, which lags writes
/// (the simulator hides a contact from search until `search_lag` after
/// its `dateUpdated`): contacts edited and created in GHL a moment before
/// a reconciliation are missing from its listing, yet none of them is
/// taken for deleted; each is read by its id first (one request each),
/// and the app keeps every contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_hidden_by_the_search_lag_are_not_taken_for_deleted() {
    let sims = start_sims(12, 0).await;
    let h = Harness::new(sims, &Template::contacts().render()).await;
    h.cycle(Mode::Apply, Reconcile::Always).await;
    assert_eq!(h.app().contacts().len(), 12, "the first sync");
    let contacts = h.ghl_contacts();
    h.ghl().set_search_lag(Duration::from_secs(60));
    for contact in contacts.iter().take(4) {
        h.ghl()
            .update_contact_as_user(&text(contact, "id"), json!({"firstName": "Hidden"}))
            .unwrap();
    }
    h.reset_counters();
    let report = h.cycle(Mode::Apply, Reconcile::Always).await;
    let totals = report.totals();
    assert_eq!(totals.planned_deletes, 0, "nothing deleted: {totals:?}");
    assert_eq!(totals.deletes_held, 0, "no false mass delete");
    assert_eq!(h.app().contacts().len(), 12, "the app keeps every contact");
    let by_id = h
        .ghl()
        .counters()
        .count_route("GET", "/contacts/{contactId}");
    assert_eq!(by_id, 4, "each contact the listing missed read by its id");
    h.ghl().set_search_lag(Duration::ZERO);
    h.cycle(Mode::Apply, Reconcile::Always).await;
    for contact in contacts.iter().take(4) {
        let app = h.app_by_email(&text(contact, "email"));
        assert_eq!(text(&app, "first_name"), "Hidden", "the edits arrive later");
    }
}

/// The simulator's index lag: a write is found by `POST /contacts/search`
/// only `search_lag` after its `dateUpdated`, by `GET /contacts/{id}` at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_search_index_lags_behind_reads_by_id() {
    let sim = start(5, SimOptions::default()).await;
    let handle = sim.handle();
    handle.set_search_lag(Duration::from_millis(1500));
    let connector = GhlConnector::new("ghl", client(&sim));
    let location = handle.location_ids()[0].clone();
    let written = handle
        .create_contact_as_user(&location, json!({"email": "lagging@example.com"}))
        .unwrap();
    let id = text(&written, "id");
    let found = |connector: &GhlConnector| {
        let id = id.clone();
        let connector = connector.clone();
        async move {
            let pages: Vec<_> = connector
                .changes(
                    EntityKind::Contact,
                    Utc::now() - chrono::Duration::minutes(5),
                    Utc::now() + chrono::Duration::minutes(5),
                )
                .try_collect()
                .await
                .unwrap();
            pages.iter().any(|p| p.records.iter().any(|r| r.id == id))
        }
    };
    assert!(!found(&connector).await, "not indexed yet");
    let got = connector
        .get(EntityKind::Contact, &id, None)
        .await
        .unwrap()
        .expect("read by id at once");
    assert_eq!(got.fields["email"], "lagging@example.com");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(found(&connector).await, "indexed after the lag");
    sim.shutdown().await;
}

/// With the index lagging more than the daemon's `lag` (2 s against 4 s),
/// contacts edited in GHL just before each poll are not found by that
/// poll, yet every edit reaches the app by the following polls: the
/// watermark only moves to the newest `dateUpdated` a poll read (a poll
/// that finds nothing leaves it where it was), and the next poll starts
/// an overlap below it. No reconciliation runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_hidden_by_the_search_lag_are_synced_by_later_polls() {
    let sims = start_sims(12, 0).await;
    let template = Template::contacts().render();
    assert!(template.contains("overlap = \"5s\"\nlag = \"0s\""));
    // The defaults of `[sync]`.
    let template = template.replace(
        "overlap = \"5s\"\nlag = \"0s\"",
        "overlap = \"60s\"\nlag = \"2s\"",
    );
    let h = Harness::new(sims, &template).await;
    h.cycle(Mode::Apply, Reconcile::Never).await;
    let contacts = h.ghl_contacts();
    assert_eq!(h.app().contacts().len(), 12, "the first sync");
    h.ghl().set_search_lag(Duration::from_secs(4));

    let mut edited = Vec::new();
    for (round, contact) in contacts.iter().take(6).enumerate() {
        let name = format!("Lagging{round}");
        h.ghl()
            .update_contact_as_user(&text(contact, "id"), json!({"firstName": name}))
            .unwrap();
        edited.push((text(contact, "email"), name));
        h.cycle(Mode::Apply, Reconcile::Never).await;
        let (email, name) = &edited[round];
        assert_ne!(
            text(&h.app_by_email(email), "first_name"),
            *name,
            "the edit just made is not searchable yet"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // The last edit becomes searchable 4 s after it was made.
    tokio::time::sleep(Duration::from_secs(4)).await;
    h.cycle(Mode::Apply, Reconcile::Never).await;
    for (email, name) in &edited {
        assert_eq!(
            text(&h.app_by_email(email), "first_name"),
            *name,
            "{email}: the lagging edit reached the app"
        );
    }
    h.engine.store.close().await;
}

/// One canonical field per custom field of the location, each bound with
/// `custom_field = "<id>"` (the TOML field map's spelling), read from and
/// written to GHL only.
fn custom_field_map(sim: &RunningGhlSim) -> (PairMap, HashMap<String, String>) {
    let location = sim.handle().location_ids()[0].clone();
    let mut ids = HashMap::new();
    let fields = sim
        .handle()
        .custom_fields(&location)
        .into_iter()
        .map(|def| {
            let name = def.key.trim_start_matches("contact.").to_owned();
            ids.insert(name.clone(), def.id.clone());
            FieldMap {
                entity: EntityKind::Contact,
                name,
                flow: Flow::Both,
                ghl: Some(Binding {
                    source: Source::CustomField(def.id),
                    format: Format::Plain,
                    default: None,
                }),
                app: None,
                normalize: Vec::new(),
                match_key: None,
                policy: None,
            }
        })
        .collect();
    (PairMap { fields }, ids)
}

/// Writes `value` to the custom field `name` through the mapping and the
/// connector (a create, then an update to `updated`), and reads it back
/// through both: the value keeps its type both ways.
async fn round_trip(name: &str, value: Value, updated: Value) {
    let sim = start(1, SimOptions::default()).await;
    let (map, ids) = custom_field_map(&sim);
    let connector = GhlConnector::new("ghl", client(&sim));
    let canonical = [(name.to_owned(), value.clone())].into_iter().collect();
    let mut fields = map
        .to_native(EntityKind::Contact, Side::Ghl, &canonical)
        .unwrap();
    assert_eq!(
        fields["customFields"],
        json!([{"id": ids[name], "field_value": value}]),
        "written as {{id, field_value}} with its type"
    );
    fields.insert("email".into(), json!(format!("{name}@example.com")));
    let created = connector
        .create(EntityKind::Contact, None, &fields)
        .await
        .unwrap_or_else(|e| panic!("{name} = {value}: {e}"));
    let read = |id: String| {
        let connector = connector.clone();
        let map = map.clone();
        async move {
            let record = connector
                .get(EntityKind::Contact, &id, None)
                .await
                .unwrap()
                .unwrap();
            (
                record.fields["customFields"].clone(),
                map.to_canonical(EntityKind::Contact, Side::Ghl, &record.fields)
                    .unwrap(),
            )
        }
    };
    let (raw, back) = read(created.id.clone()).await;
    assert_eq!(
        raw,
        json!([{"id": ids[name], "value": value}]),
        "read as {{id, value}}"
    );
    assert_eq!(back.get(name), Some(&value), "read back with its type");

    let canonical = [(name.to_owned(), updated.clone())].into_iter().collect();
    let patch = map
        .to_native(EntityKind::Contact, Side::Ghl, &canonical)
        .unwrap();
    connector
        .update(
            EntityKind::Contact,
            &created.id,
            None,
            &patch.clone().into(),
        )
        .await
        .unwrap();
    let (_, back) = read(created.id.clone()).await;
    assert_eq!(back.get(name), Some(&updated), "updated with its type");

    // Cleared: sent as "" (null is none of the types a write takes).
    let canonical = [(name.to_owned(), Value::Null)].into_iter().collect();
    let patch = map
        .to_native(EntityKind::Contact, Side::Ghl, &canonical)
        .unwrap();
    assert_eq!(patch["customFields"][0]["field_value"], "");
    connector
        .update(
            EntityKind::Contact,
            &created.id,
            None,
            &patch.clone().into(),
        )
        .await
        .unwrap();
    let (raw, back) = read(created.id).await;
    assert_eq!(raw, json!([]), "cleared");
    assert_eq!(back.get(name), None);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_custom_field_round_trips_as_a_string() {
    round_trip("plan", json!("pro"), json!("42")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_select_custom_field_round_trips_as_an_array() {
    round_trip("interests", json!(["golf", "sailing"]), json!(["chess"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkbox_custom_field_round_trips_as_an_array() {
    round_trip("consent", json!(["yes"]), json!(["no"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numeric_custom_field_round_trips_as_a_number() {
    round_trip("score", json!(42), json!(7.5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monetary_custom_field_round_trips_as_a_number() {
    round_trip("budget", json!(1234.5), json!(99)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_upload_custom_field_round_trips_as_an_object() {
    let file = json!({"f31175d4": {
        "meta": {"originalname": "contract.pdf", "mimetype": "application/pdf", "size": 1024},
        "url": "https://example.com/contract.pdf",
        "documentId": "doc1",
    }});
    round_trip(
        "contract",
        file,
        json!({"other": {"url": "https://example.com/b.pdf"}}),
    )
    .await;
}

/// A `field_value` of the wrong type for its field, or of no type a write
/// takes, is refused with a 422 naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_field_values_of_the_wrong_shape_are_refused_naming_the_field() {
    let sim = start(1, SimOptions::default()).await;
    let location = sim.handle().location_ids()[0].clone();
    let token = sim.handle().issue_token(&location, &RW, None);
    let (_, ids) = custom_field_map(&sim);
    let http = reqwest::Client::new();
    let create = |custom: Value| {
        let body = json!({
            "locationId": location,
            "email": "shape@example.com",
            "customFields": custom,
        });
        http.post(format!("{}/contacts/", sim.base_url()))
            .bearer_auth(&token)
            .header("Version", "2021-07-28")
            .json(&body)
            .send()
    };
    let cases = [
        (
            json!([{"id": ids["score"], "field_value": "42"}]),
            "contact.score",
        ),
        (
            json!([{"key": "contact.interests", "field_value": "golf"}]),
            "contact.interests",
        ),
        (
            json!([{"id": ids["budget"], "field_value": [1]}]),
            "contact.budget",
        ),
        (
            json!([{"id": ids["contract"], "field_value": "a.pdf"}]),
            "contact.contract",
        ),
        (
            json!([{"id": ids["plan"], "field_value": 3}]),
            "contact.plan",
        ),
        (
            json!([{"id": ids["plan"], "field_value": null}]),
            &ids["plan"],
        ),
        (
            json!([{"id": ids["plan"], "field_value": true}]),
            &ids["plan"],
        ),
        (json!([{"id": ids["plan"], "value": "pro"}]), &ids["plan"]),
    ];
    for (custom, named) in cases {
        let resp = create(custom.clone()).await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 422, "{custom}: {body}");
        assert!(
            body.to_string().contains(named),
            "{custom}: {body} names {named}"
        );
    }
    assert!(
        sim.handle()
            .contacts(&location)
            .iter()
            .all(|c| c["email"] != "shape@example.com"),
        "nothing was created"
    );
    sim.shutdown().await;
}
