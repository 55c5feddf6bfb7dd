//! The GHL simulator (`ghlsync_sim::ghl`) against the official OpenAPI
//! spec and the behaviour the sync engine relies on: pagination, search,
//! headers, tokens, scopes, rate limits, OAuth, faults, webhooks and
//! deterministic seeding. Every test talks HTTP to a simulator on loopback.

#[path = "common/openapi.rs"]
mod openapi;
#[path = "common/sim_helpers.rs"]
mod sim_helpers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use base64::Engine as _;
use chrono::TimeZone as _;
use ghlsync_sim::ghl::{
    FaultKind, GhlSim, RateLimitConfig, RecordShapes, RunningGhlSim, SimHandle, SimOptions,
    API_VERSION,
};
use reqwest::Method;
use serde_json::{json, Value};
use sim_helpers::{
    assert_fault_counts, check_faults, random_faults_follow_the_seed, receiver, Api, Resp,
};

const RW: &[&str] = &["contacts.readonly", "contacts.write"];

fn anchor() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap()
}

async fn start(options: SimOptions) -> (RunningGhlSim, SimHandle, String) {
    let sim = GhlSim::start(options).await.expect("simulator starts");
    let handle = sim.handle();
    let location = handle.location_ids()[0].clone();
    (sim, handle, location)
}

fn options(contacts: usize) -> SimOptions {
    SimOptions {
        contacts_per_location: contacts,
        seed: 42,
        ..SimOptions::default()
    }
}

impl Api {
    /// A client of the GHL simulator: it sends `Version` and checks every
    /// response whose status the spec documents against the operation's
    /// response schema.
    fn ghl(base: &str, token: &str) -> Api {
        Api::new(base, token)
            .with_version(Some(API_VERSION))
            .with_check(conforms)
    }

    fn with_version(&self, version: Option<&str>) -> Api {
        self.with_header("Version", version)
    }
}

/// When the spec documents the status, validates the body against the
/// operation's response schema.
fn conforms(method: &Method, path: &str, resp: &Resp) {
    let spec = openapi::contacts();
    if let Some(op) = spec.operation(method.as_str(), path) {
        if op.response(resp.status).is_some() {
            if let Err(errors) = op.validate_response(resp.status, &resp.json) {
                panic!(
                    "{method} {path} → {}: body does not match the spec:\n{}\n{}",
                    resp.status,
                    errors.join("\n"),
                    resp.text
                );
            }
        }
    }
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn ms(iso: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .unwrap()
        .timestamp_millis()
}

/// Strictly validates a response: its status must be documented and its
/// body must match.
fn strict(method: &str, path: &str, resp: &Resp) {
    let spec = openapi::contacts();
    let op = spec.expect_operation(method, path);
    op.validate_response(resp.status, &resp.json)
        .unwrap_or_else(|e| panic!("{method} {path}: {}\n{}", e.join("\n"), resp.text));
}

fn strict_request(method: &str, path: &str, body: &Value) {
    openapi::contacts()
        .validate_request(method, path, body)
        .unwrap_or_else(|e| {
            panic!(
                "test sends an invalid {method} {path} body: {}",
                e.join("\n")
            )
        });
}

fn component(name: &str, value: &Value) {
    openapi::contacts()
        .validate_component(name, value)
        .unwrap_or_else(|e| panic!("{}\n{value}", e.join("\n")));
}

// ---------------------------------------------------------------------------

#[test]
fn spec_loader_resolves_refs_and_matches_paths() {
    let spec = openapi::contacts();
    let op = spec.expect_operation("GET", "/contacts/abc/tasks");
    assert_eq!(op.template, "/contacts/{contactId}/tasks");
    assert_eq!(op.required_headers(), vec!["Version"]);
    assert_eq!(op.scopes, vec!["contacts.readonly"]);
    assert_eq!(
        spec.expect_operation("GET", "/contacts/search/duplicate?locationId=x")
            .template,
        "/contacts/search/duplicate"
    );
    assert_eq!(
        spec.expect_operation("POST", "/contacts").template,
        "/contacts/"
    );
    assert_eq!(
        spec.expect_operation("GET", "/contacts/?locationId=x")
            .required_query(),
        vec!["locationId"]
    );
    assert!(spec.operation("PATCH", "/contacts/abc").is_none());
    // A $ref into ../common/common-schemas.json is resolved.
    let unauthorized = op.response_schema(401).expect("401 schema");
    assert!(
        unauthorized["properties"]["statusCode"].is_object(),
        "{unauthorized}"
    );
    // nullable: true admits null; a wrong type is caught.
    spec.validate_request("PUT", "/contacts/x", &json!({"firstName": null}))
        .unwrap();
    assert!(spec
        .validate_request("PUT", "/contacts/x", &json!({"firstName": 5}))
        .is_err());
    assert!(
        spec.validate_request("POST", "/contacts/", &json!({"firstName": "a"}))
            .is_err(),
        "locationId is required"
    );
    assert!(
        op.validate_response(418, &json!({})).is_err(),
        "undocumented status"
    );
    // The published dateOfBirth type (object) rejects the documented string
    // format; the default loader relaxes that quirk.
    let strict_spec = openapi::Spec::load_strict(openapi::CONTACTS_SPEC).unwrap();
    let dob = json!({"locationId": "l", "dateOfBirth": "1990-09-25"});
    assert!(strict_spec
        .validate_request("POST", "/contacts/", &dob)
        .is_err());
    spec.validate_request("POST", "/contacts/", &dob).unwrap();
    let oauth = openapi::oauth();
    assert_eq!(
        oauth
            .expect_operation("POST", "/oauth/token")
            .request_body
            .as_ref()
            .unwrap()
            .content_type,
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_data_is_deterministic() {
    let opts = SimOptions {
        seed: 7,
        locations: 2,
        contacts_per_location: 30,
        seed_anchor: Some(anchor()),
        ..SimOptions::default()
    };
    let (a, ha, _) = start(opts.clone()).await;
    let (b, hb, _) = start(opts.clone()).await;
    let (c, hc, _) = start(SimOptions {
        seed: 8,
        ..opts.clone()
    })
    .await;
    assert_eq!(ha.location_ids(), hb.location_ids());
    assert_eq!(ha.company_id(), hb.company_id());
    for location in ha.location_ids() {
        let contacts = ha.contacts(&location);
        assert_eq!(contacts.len(), 30);
        assert_eq!(contacts, hb.contacts(&location), "same seed, same data");
        for contact in &contacts {
            let id = str_of(contact, "id");
            assert_eq!(ha.tasks(id), hb.tasks(id));
            assert_eq!(ha.notes(id), hb.notes(id));
            assert_eq!(ha.appointments(id), hb.appointments(id));
            assert_eq!(id.len(), 20);
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
            let phone = str_of(contact, "phone");
            assert!(
                phone.starts_with('+') && phone[1..].chars().all(|c| c.is_ascii_digit()),
                "{phone}"
            );
            let added = ms(str_of(contact, "dateAdded"));
            let updated = ms(str_of(contact, "dateUpdated"));
            assert!(updated >= added);
            assert!(
                added > anchor().timestamp_millis() - 366 * 86_400_000
                    && updated <= anchor().timestamp_millis()
            );
            assert_eq!(str_of(contact, "locationId"), location);
            component("GetContectByIdSchema", contact);
        }
    }
    let any_business = ha
        .location_ids()
        .iter()
        .flat_map(|l| ha.contacts(l))
        .any(|c| c.get("businessId").is_some());
    assert!(any_business, "a share of contacts have a businessId");
    let ids_a: BTreeSet<String> = ha
        .contacts(&ha.location_ids()[0])
        .iter()
        .map(|c| str_of(c, "id").to_string())
        .collect();
    let ids_c: BTreeSet<String> = hc
        .contacts(&hc.location_ids()[0])
        .iter()
        .map(|c| str_of(c, "id").to_string())
        .collect();
    assert!(ids_a.is_disjoint(&ids_c), "another seed, other ids");
    // Ids of records created at runtime are deterministic too.
    let ta = ha.issue_token(&ha.location_ids()[0], RW, None);
    let tb = hb.issue_token(&hb.location_ids()[0], RW, None);
    let body = json!({"locationId": ha.location_ids()[0], "email": "new@example.com"});
    let ra = Api::ghl(&a.base_url(), &ta)
        .post("/contacts/", body.clone())
        .await;
    let rb = Api::ghl(&b.base_url(), &tb).post("/contacts/", body).await;
    assert_eq!(ra.json["contact"]["id"], rb.json["contact"]["id"]);
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_per_the_spec() {
    // Generous: this test also pins what the simulator holds (unknown
    // fields kept, read after write equal to the create's answer), which
    // spec-strict answers trim to their schemas (`tests/sim_ghl_strict.rs`).
    let (sim, handle, location) =
        start(options(30).with_record_shapes(RecordShapes::Generous)).await;
    let token = handle.issue_token(&location, RW, None);
    let api = Api::ghl(&sim.base_url(), &token);
    let all = handle.contacts(&location);

    // Create, read, update, upsert, duplicate.
    let plan_field = handle
        .custom_fields(&location)
        .into_iter()
        .find(|f| f.key == "contact.plan")
        .unwrap()
        .id;
    let create = json!({
        "locationId": location, "firstName": "Rosan", "lastName": "Deo", "email": "Rosan@Deos.com",
        "phone": "+1 888-888-8888", "tags": ["VIP", "b"], "source": "public api", "companyName": "DGS",
        "customFields": [{"id": plan_field, "field_value": "pro"}], "dateOfBirth": "1990-09-25",
        "x-unknown": {"kept": true}
    });
    strict_request("POST", "/contacts/", &create);
    let created = api.post("/contacts/", create).await;
    strict("POST", "/contacts/", &created);
    assert_eq!(created.status, 201, "{}", created.text);
    let contact = created.json["contact"].clone();
    let id = str_of(&contact, "id").to_string();
    assert_eq!(contact["email"], "rosan@deos.com");
    assert_eq!(contact["phone"], "+18888888888");
    assert_eq!(contact["tags"], json!(["vip", "b"]));
    assert_eq!(
        contact["x-unknown"],
        json!({"kept": true}),
        "unknown fields are kept"
    );
    assert_eq!(contact["customFields"][0]["value"], "pro");

    let got = api.get(&format!("/contacts/{id}")).await;
    strict("GET", "/contacts/x", &got);
    assert_eq!(got.status, 200);
    assert_eq!(got.json["contact"], contact, "read after write");

    let update = json!({"lastName": "Doe", "website": "https://example.com", "custom": 1});
    strict_request("PUT", "/contacts/x", &update);
    let updated = api.put(&format!("/contacts/{id}"), update).await;
    strict("PUT", "/contacts/x", &updated);
    assert_eq!(updated.json["succeded"], true);
    assert_eq!(updated.json["contact"]["lastName"], "Doe");
    assert_eq!(updated.json["contact"]["x-unknown"], json!({"kept": true}));
    assert_eq!(updated.json["contact"]["custom"], 1);

    let upsert = json!({"locationId": location, "email": "rosan@deos.com", "city": "Dolomite"});
    strict_request("POST", "/contacts/upsert", &upsert);
    let upserted = api.post("/contacts/upsert", upsert).await;
    strict("POST", "/contacts/upsert", &upserted);
    assert_eq!(upserted.json["new"], false);
    assert_eq!(upserted.json["contact"]["id"], id.as_str());
    assert!(upserted.json["traceId"].is_string());

    let dup = api
        .get(&format!(
            "/contacts/search/duplicate?locationId={location}&email=ROSAN%40deos.com"
        ))
        .await;
    strict("GET", "/contacts/search/duplicate", &dup);
    assert_eq!(dup.json["contact"]["id"], id.as_str());
    component("GetContectByIdSchema", &dup.json["contact"]);

    // Listings.
    let search = json!({"locationId": location, "pageLimit": 5});
    let found = api.post("/contacts/search", search).await;
    strict("POST", "/contacts/search", &found);
    assert_eq!(found.json["total"], all.len() + 1);
    for c in found.json["contacts"].as_array().unwrap() {
        component("ContactsSearchSchema", c);
    }
    let listed = api
        .get(&format!("/contacts/?locationId={location}&limit=10"))
        .await;
    strict("GET", "/contacts/", &listed);
    assert_eq!(listed.json["contacts"].as_array().unwrap().len(), 10);
    component("ContactsMetaSchema", &listed.json["meta"]);
    let business = all
        .iter()
        .find_map(|c| c.get("businessId"))
        .unwrap()
        .as_str()
        .unwrap();
    let by_business = api
        .get(&format!(
            "/contacts/business/{business}?locationId={location}&limit=5"
        ))
        .await;
    strict("GET", "/contacts/business/x", &by_business);
    assert!(!by_business.json["contacts"].as_array().unwrap().is_empty());

    // Tasks.
    let task_body = json!({"title": "Call", "body": "about renewal", "dueDate": "2025-10-25T11:00:00Z", "completed": false});
    strict_request("POST", "/contacts/x/tasks", &task_body);
    let task = api.post(&format!("/contacts/{id}/tasks"), task_body).await;
    strict("POST", "/contacts/x/tasks", &task);
    assert_eq!(task.status, 201);
    let task_id = str_of(&task.json["task"], "id").to_string();
    assert_eq!(task.json["task"]["dueDate"], "2025-10-25T11:00:00.000Z");
    let tasks = api.get(&format!("/contacts/{id}/tasks")).await;
    strict("GET", "/contacts/x/tasks", &tasks);
    assert_eq!(tasks.json["tasks"].as_array().unwrap().len(), 1);
    let one = api.get(&format!("/contacts/{id}/tasks/{task_id}")).await;
    strict("GET", "/contacts/x/tasks/y", &one);
    let put = api
        .put(
            &format!("/contacts/{id}/tasks/{task_id}"),
            json!({"title": "Call back"}),
        )
        .await;
    strict("PUT", "/contacts/x/tasks/y", &put);
    assert_eq!(put.json["task"]["title"], "Call back");
    strict_request(
        "PUT",
        "/contacts/x/tasks/y/completed",
        &json!({"completed": true}),
    );
    let done = api
        .put(
            &format!("/contacts/{id}/tasks/{task_id}/completed"),
            json!({"completed": true}),
        )
        .await;
    strict("PUT", "/contacts/x/tasks/y/completed", &done);
    assert_eq!(done.json["task"]["completed"], true);
    let deleted = api.delete(&format!("/contacts/{id}/tasks/{task_id}")).await;
    strict("DELETE", "/contacts/x/tasks/y", &deleted);
    assert_eq!(deleted.json["succeded"], true);

    // Notes.
    let note_body = json!({"body": "lorem ipsum", "userId": "u1"});
    strict_request("POST", "/contacts/x/notes", &note_body);
    let note = api.post(&format!("/contacts/{id}/notes"), note_body).await;
    strict("POST", "/contacts/x/notes", &note);
    assert_eq!(note.status, 201);
    let note_id = str_of(&note.json["note"], "id").to_string();
    let notes = api.get(&format!("/contacts/{id}/notes")).await;
    strict("GET", "/contacts/x/notes", &notes);
    let one = api.get(&format!("/contacts/{id}/notes/{note_id}")).await;
    strict("GET", "/contacts/x/notes/y", &one);
    let put = api
        .put(
            &format!("/contacts/{id}/notes/{note_id}"),
            json!({"body": "changed"}),
        )
        .await;
    strict("PUT", "/contacts/x/notes/y", &put);
    assert_eq!(put.json["note"]["body"], "changed");
    let deleted = api.delete(&format!("/contacts/{id}/notes/{note_id}")).await;
    strict("DELETE", "/contacts/x/notes/y", &deleted);

    // Appointments (seeded on some contacts) and tags.
    let with_appointment = all
        .iter()
        .map(|c| str_of(c, "id"))
        .find(|c| !handle.appointments(c).is_empty())
        .expect("a seeded appointment");
    let events = api
        .get(&format!("/contacts/{with_appointment}/appointments"))
        .await;
    strict("GET", "/contacts/x/appointments", &events);
    assert_eq!(
        events.json["events"].as_array().unwrap().len(),
        handle.appointments(with_appointment).len()
    );
    strict_request("POST", "/contacts/x/tags", &json!({"tags": ["x"]}));
    let tags = api
        .post(
            &format!("/contacts/{id}/tags"),
            json!({"tags": ["New ", "vip"]}),
        )
        .await;
    strict("POST", "/contacts/x/tags", &tags);
    assert_eq!(tags.status, 201);
    assert_eq!(tags.json["tags"], json!(["vip", "b", "new"]));
    let tags = api
        .call(
            Method::DELETE,
            &format!("/contacts/{id}/tags"),
            Some(&json!({"tags": ["b"]})),
        )
        .await;
    strict("DELETE", "/contacts/x/tags", &tags);
    assert_eq!(tags.json["tags"], json!(["vip", "new"]));

    // Errors are documented shapes.
    let missing = api.get("/contacts/NoSuchContact0000000").await;
    strict("GET", "/contacts/x", &missing);
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json["message"], "Contact not found");
    assert!(missing.json["traceId"].is_string());
    let missing_task = api.get(&format!("/contacts/{id}/tasks/nope")).await;
    strict("GET", "/contacts/x/tasks/y", &missing_task);
    assert_eq!(missing_task.json["message"], "Task not found");
    let missing_note = api.get(&format!("/contacts/{id}/notes/nope")).await;
    strict("GET", "/contacts/x/notes/y", &missing_note);
    assert_eq!(missing_note.json["message"], "Note not found");
    let invalid = api
        .post(
            "/contacts/",
            json!({"locationId": location, "email": "not-an-email"}),
        )
        .await;
    strict("POST", "/contacts/", &invalid);
    assert_eq!(invalid.status, 422);
    assert_eq!(invalid.json["message"], json!(["email must be an email"]));
    let no_location = api.post("/contacts/", json!({"firstName": "x"})).await;
    assert_eq!(no_location.status, 422);
    let locked = api
        .put(&format!("/contacts/{id}"), json!({"locationId": location}))
        .await;
    assert_eq!(locked.status, 422);
    assert_eq!(
        locked.json["message"],
        json!(["property locationId should not exist"])
    );
    let bad_task = api
        .post(&format!("/contacts/{id}/tasks"), json!({"title": "x"}))
        .await;
    strict("POST", "/contacts/x/tasks", &bad_task);
    assert_eq!(bad_task.status, 422);
    let unauthorized = api.with_token(None).get(&format!("/contacts/{id}")).await;
    strict("GET", "/contacts/x", &unauthorized);
    assert_eq!(unauthorized.status, 401);
    let no_version = api.with_version(None).get(&format!("/contacts/{id}")).await;
    strict("GET", "/contacts/x", &no_version);

    // Delete cascades.
    let child = api
        .post(
            &format!("/contacts/{id}/tasks"),
            json!({"title": "t", "dueDate": "2025-01-01", "completed": false}),
        )
        .await;
    assert_eq!(child.status, 201);
    let deleted = api.delete(&format!("/contacts/{id}")).await;
    strict("DELETE", "/contacts/x", &deleted);
    assert_eq!(deleted.json["succeded"], true);
    assert_eq!(api.get(&format!("/contacts/{id}")).await.status, 400);
    assert!(handle.tasks(&id).is_empty());
    assert_eq!(api.get(&format!("/contacts/{id}/tasks")).await.status, 400);

    // Every route was exercised and counted under its spec template.
    let counters = handle.counters();
    for (method, route) in [
        ("GET", "/contacts/{contactId}"),
        ("POST", "/contacts/"),
        ("GET", "/contacts/"),
        ("POST", "/contacts/search"),
        ("GET", "/contacts/search/duplicate"),
        ("GET", "/contacts/business/{businessId}"),
        ("PUT", "/contacts/{contactId}/tasks/{taskId}/completed"),
        ("DELETE", "/contacts/{contactId}/tags"),
    ] {
        assert!(
            counters.count_route(method, route) > 0,
            "{method} {route} not counted: {counters:?}"
        );
        assert!(openapi::contacts()
            .operations()
            .iter()
            .any(|o| o.method == method && o.template == route));
    }
    assert_eq!(counters.count("GET", "/contacts/{contactId}", 400), 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listing_style_returns_each_contact_once() {
    let (sim, handle, location) = start(options(57)).await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let all: BTreeSet<String> = handle
        .contacts(&location)
        .iter()
        .map(|c| str_of(c, "id").to_string())
        .collect();
    assert_eq!(all.len(), 57);

    // POST /contacts/search with page numbers.
    let mut seen = Vec::new();
    for page in 1.. {
        let r = api
            .post(
                "/contacts/search",
                json!({"locationId": location, "pageLimit": 10, "page": page}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["total"], 57);
        let contacts = r.json["contacts"].as_array().unwrap().clone();
        if contacts.is_empty() {
            break;
        }
        seen.extend(contacts.iter().map(|c| str_of(c, "id").to_string()));
    }
    assert_eq!(seen.len(), 57, "page numbers: every contact once");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);

    // POST /contacts/search with searchAfter.
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({"locationId": location, "pageLimit": 9, "sort": [{"field": "dateAdded", "direction": "asc"}]});
        if let Some(after) = &after {
            body["searchAfter"] = after.clone();
        }
        let r = api.post("/contacts/search", body).await;
        let contacts = r.json["contacts"].as_array().unwrap().clone();
        let Some(last) = contacts.last() else { break };
        after = Some(last["searchAfter"].clone());
        seen.extend(contacts.iter().map(|c| str_of(c, "id").to_string()));
    }
    assert_eq!(seen.len(), 57, "searchAfter: every contact once");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);

    // GET /contacts/ with startAfter + startAfterId, following meta.
    let mut seen = Vec::new();
    let mut query = format!("/contacts/?locationId={location}&limit=8");
    let mut pages = 0;
    loop {
        let r = api.get(&query).await;
        assert_eq!(r.status, 200, "{}", r.text);
        pages += 1;
        let meta = &r.json["meta"];
        assert_eq!(meta["total"], 57);
        assert_eq!(meta["currentPage"], pages);
        seen.extend(
            r.json["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| str_of(c, "id").to_string()),
        );
        if meta["nextPage"].is_null() {
            assert!(meta["nextPageUrl"].is_null());
            break;
        }
        component("ContactsMetaSchema", meta);
        let next = meta["nextPageUrl"].as_str().unwrap();
        assert!(next.starts_with(&sim.base_url()));
        query = next.strip_prefix(&sim.base_url()).unwrap().to_string();
        assert!(
            query.contains(&format!("startAfter={}&", meta["startAfter"])),
            "{query}"
        );
        assert!(
            query.contains(&format!("startAfterId={}", str_of(meta, "startAfterId"))),
            "{query}"
        );
    }
    assert_eq!(pages, 8);
    assert_eq!(seen.len(), 57, "GET /contacts/: every contact once");
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all);

    // GET /contacts/business/:id with skip/limit, per business.
    let mut by_business: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in handle.contacts(&location) {
        if let Some(b) = c.get("businessId").and_then(Value::as_str) {
            by_business
                .entry(b.to_string())
                .or_default()
                .insert(str_of(&c, "id").to_string());
        }
    }
    assert!(!by_business.is_empty());
    for (business, expected) in &by_business {
        let mut seen = Vec::new();
        for skip in (0..).step_by(2) {
            let r = api
                .get(&format!(
                    "/contacts/business/{business}?locationId={location}&skip={skip}&limit=2"
                ))
                .await;
            assert_eq!(r.json["count"], expected.len());
            let contacts = r.json["contacts"].as_array().unwrap().clone();
            if contacts.is_empty() {
                break;
            }
            seen.extend(contacts.iter().map(|c| str_of(c, "id").to_string()));
        }
        assert_eq!(seen.len(), expected.len());
        assert_eq!(&seen.into_iter().collect::<BTreeSet<_>>(), expected);
    }

    // Limits.
    let r = api
        .get(&format!("/contacts/?locationId={location}&limit=101"))
        .await;
    assert_eq!(r.status, 422);
    let r = api.get("/contacts/").await;
    assert_eq!(r.status, 422, "locationId is required");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_date_updated_skips_nothing_while_writes_interleave() {
    let (sim, handle, location) = start(options(60)).await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let initial: Vec<String> = handle
        .contacts(&location)
        .iter()
        .map(|c| str_of(c, "id").to_string())
        .collect();
    let mut last_seen: HashMap<String, String> = HashMap::new();
    let mut deleted = BTreeSet::new();
    let mut previous_key: Option<(i64, String)> = None;
    let mut after: Option<Value> = None;
    let mut round = 0;
    loop {
        let mut body = json!({
            "locationId": location, "pageLimit": 7,
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
        });
        if let Some(after) = &after {
            body["searchAfter"] = after.clone();
        }
        let r = api.post("/contacts/search", body).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let contacts = r.json["contacts"].as_array().unwrap().clone();
        let Some(last) = contacts.last() else { break };
        after = Some(last["searchAfter"].clone());
        for c in &contacts {
            let key = (ms(str_of(c, "dateUpdated")), str_of(c, "id").to_string());
            assert_eq!(c["searchAfter"], json!([key.0, key.1]));
            if let Some(previous) = &previous_key {
                assert!(key > *previous, "strictly after the previous page");
            }
            previous_key = Some(key);
            last_seen.insert(
                str_of(c, "id").to_string(),
                str_of(c, "dateUpdated").to_string(),
            );
        }
        // Between pages: a user edits one seen and one unseen contact, the
        // API edits another, one contact is created, one unseen deleted.
        round += 1;
        assert!(round < 100, "pagination does not terminate");
        if round > 12 {
            continue;
        }
        let unseen: Vec<&String> = initial
            .iter()
            .filter(|id| !last_seen.contains_key(*id) && !deleted.contains(*id))
            .collect();
        let seen_id = contacts[0]["id"].as_str().unwrap().to_string();
        handle
            .update_contact_as_user(&seen_id, json!({"companyName": format!("round {round}")}))
            .unwrap();
        if let Some(id) = unseen.first() {
            handle
                .update_contact_as_user(id, json!({"city": "Elsewhere"}))
                .unwrap();
        }
        if let Some(id) = unseen.get(1) {
            let r = api
                .put(&format!("/contacts/{id}"), json!({"state": "NY"}))
                .await;
            assert_eq!(r.status, 200);
        }
        if let Some(id) = unseen.get(2).map(|s| s.to_string()) {
            if round % 3 == 0 {
                handle.delete_contact_as_user(&id).unwrap();
                deleted.insert(id);
            }
        }
        let r = api
            .post(
                "/contacts/",
                json!({"locationId": location, "email": format!("new{round}@example.com")}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // Every contact that exists now was seen in its latest state.
    let now = handle.contacts(&location);
    assert!(now.len() > 60);
    for c in &now {
        let id = str_of(c, "id");
        assert_eq!(
            last_seen.get(id).map(String::as_str),
            Some(str_of(c, "dateUpdated")),
            "contact {id} skipped or seen stale"
        );
    }
    assert!(!deleted.is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_and_sorts() {
    let (sim, handle, location) = start(options(80)).await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let all = handle.contacts(&location);
    let ids = |r: &Resp| -> Vec<String> {
        r.json["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| str_of(c, "id").to_string())
            .collect()
    };
    let search = |body: Value| {
        let api = api.clone();
        let mut body = body;
        body["locationId"] = json!(location);
        body["pageLimit"] = body.get("pageLimit").cloned().unwrap_or(json!(500));
        async move { api.post("/contacts/search", body).await }
    };

    // dateUpdated range (gt) and (gte + lte).
    let mut updated: Vec<i64> = all.iter().map(|c| ms(str_of(c, "dateUpdated"))).collect();
    updated.sort();
    let pivot = updated[updated.len() / 2];
    let pivot_iso = chrono::DateTime::from_timestamp_millis(pivot)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let r = search(json!({"filters": [{"field": "dateUpdated", "operator": "range", "value": {"gt": pivot_iso}}]})).await;
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|c| ms(str_of(c, "dateUpdated")) > pivot)
        .map(|c| str_of(c, "id").to_string())
        .collect();
    assert_eq!(ids(&r).into_iter().collect::<BTreeSet<_>>(), expected);
    assert_eq!(r.json["total"], expected.len());
    let low = updated[10];
    let high = updated[20];
    let iso = |m: i64| {
        chrono::DateTime::from_timestamp_millis(m)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let r = search(json!({"filters": [{"field": "dateUpdated", "operator": "range", "value": {"gte": iso(low), "lte": iso(high)}}]})).await;
    let expected = all
        .iter()
        .filter(|c| (low..=high).contains(&ms(str_of(c, "dateUpdated"))))
        .count();
    assert_eq!(r.json["total"], expected);
    let r = search(json!({"filters": [{"field": "dateAdded", "operator": "range", "value": {"lt": iso(low)}}]})).await;
    let expected = all
        .iter()
        .filter(|c| ms(str_of(c, "dateAdded")) < low)
        .count();
    assert_eq!(r.json["total"], expected);

    // eq on email (case-insensitive), phone (any format), businessId.
    let target = &all[17];
    let r = search(json!({"filters": [{"field": "email", "operator": "eq", "value": str_of(target, "email").to_uppercase()}]})).await;
    assert_eq!(ids(&r), vec![str_of(target, "id").to_string()]);
    let phone = str_of(target, "phone");
    let formatted = format!("+1 ({}) {}-{}", &phone[2..5], &phone[5..8], &phone[8..]);
    let r = search(json!({"filters": [{"field": "phone", "operator": "eq", "value": formatted}]}))
        .await;
    assert_eq!(ids(&r), vec![str_of(target, "id").to_string()]);
    let business = all
        .iter()
        .find_map(|c| c.get("businessId").and_then(Value::as_str))
        .unwrap();
    let r =
        search(json!({"filters": [{"field": "businessId", "operator": "eq", "value": business}]}))
            .await;
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|c| c.get("businessId").and_then(Value::as_str) == Some(business))
        .map(|c| str_of(c, "id").to_string())
        .collect();
    assert_eq!(ids(&r).into_iter().collect::<BTreeSet<_>>(), expected);

    // contains on tags; filters combine with AND.
    let has = |c: &Value, t: &str| c["tags"].as_array().unwrap().iter().any(|x| x == t);
    let r = search(json!({"filters": [{"field": "tags", "operator": "contains", "value": "vip"}]}))
        .await;
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|c| has(c, "vip"))
        .map(|c| str_of(c, "id").to_string())
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&r).into_iter().collect::<BTreeSet<_>>(), expected);
    let r = search(json!({"filters": [
        {"field": "tags", "operator": "contains", "value": "vip"},
        {"field": "dateUpdated", "operator": "range", "value": {"gt": pivot_iso}}
    ]}))
    .await;
    let both = all
        .iter()
        .filter(|c| has(c, "vip") && ms(str_of(c, "dateUpdated")) > pivot)
        .count();
    assert_eq!(r.json["total"], both);

    // Sort desc by (dateUpdated, id); searchAfter continues strictly after.
    let r = search(json!({"sort": [{"field": "dateUpdated", "direction": "desc"}]})).await;
    let keys: Vec<(i64, String)> = r.json["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (ms(str_of(c, "dateUpdated")), str_of(c, "id").to_string()))
        .collect();
    assert_eq!(keys.len(), 80);
    for pair in keys.windows(2) {
        assert!(pair[0] > pair[1], "{pair:?}");
    }
    let first =
        search(json!({"pageLimit": 5, "sort": [{"field": "dateUpdated", "direction": "desc"}]}))
            .await;
    let after = first.json["contacts"][4]["searchAfter"].clone();
    assert_eq!(after, json!([keys[4].0, keys[4].1]));
    let next = search(json!({"pageLimit": 5, "searchAfter": after, "sort": [{"field": "dateUpdated", "direction": "desc"}]})).await;
    assert_eq!(
        ids(&next),
        keys[5..10].iter().map(|k| k.1.clone()).collect::<Vec<_>>()
    );
    // A sort on another field (the general path) pages through everything once.
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body =
            json!({"pageLimit": 11, "sort": [{"field": "firstName", "direction": "asc"}]});
        if let Some(after) = &after {
            body["searchAfter"] = after.clone();
        }
        let r = search(body).await;
        let contacts = r.json["contacts"].as_array().unwrap().clone();
        let Some(last) = contacts.last() else { break };
        after = Some(last["searchAfter"].clone());
        seen.extend(contacts.iter().map(|c| {
            (
                str_of(c, "firstName").to_lowercase(),
                str_of(c, "id").to_string(),
            )
        }));
    }
    assert_eq!(seen.len(), 80);
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "ordered by (firstName, id)"
    );
    // Default: 20 per page, newest dateAdded first.
    let r = api
        .post("/contacts/search", json!({"locationId": location}))
        .await;
    assert_eq!(r.json["contacts"].as_array().unwrap().len(), 20);
    let added: Vec<i64> = r.json["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ms(str_of(c, "dateAdded")))
        .collect();
    assert!(added.windows(2).all(|w| w[0] >= w[1]));

    // Bad requests.
    let r = search(json!({"pageLimit": 501})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json["message"],
        json!(["pageLimit must not be greater than 500"])
    );
    let r = search(json!({"pageLimit": 500, "page": 21})).await;
    assert_eq!(r.status, 400, "page * pageLimit over 10,000");
    let r =
        search(json!({"filters": [{"field": "email", "operator": "like", "value": "x"}]})).await;
    assert_eq!(r.status, 400);
    let r = api.post("/contacts/search", json!({"pageLimit": 5})).await;
    assert_eq!(r.status, 400, "locationId is required");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_header_is_required() {
    let (sim, handle, location) = start(options(3)).await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let id = str_of(&handle.contacts(&location)[0], "id").to_string();
    let r = api.with_version(None).get(&format!("/contacts/{id}")).await;
    assert_eq!(r.status, 422);
    assert!(r.json["message"].is_array(), "{}", r.text);
    assert!(r.json["message"][0].as_str().unwrap().contains("Version"));
    assert!(r.json["traceId"].is_string());
    let r = api
        .with_version(Some("2021-04-15"))
        .post("/contacts/search", json!({"locationId": location}))
        .await;
    assert_eq!(r.status, 422);
    assert!(r.text.contains("2021-04-15"));
    let r = api.get(&format!("/contacts/{id}")).await;
    assert_eq!(r.status, 200);
    // /oauth/token has no Version parameter in the spec.
    let form = [
        ("client_id", "nope"),
        ("client_secret", "x"),
        ("grant_type", "refresh_token"),
        ("refresh_token", "x"),
    ];
    let r = reqwest::Client::new()
        .post(format!("{}/oauth/token", sim.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_must_be_valid_unexpired_and_scoped() {
    let (sim, handle, location) = start(options(3)).await;
    let id = str_of(&handle.contacts(&location)[0], "id").to_string();
    let path = format!("/contacts/{id}");
    let api = Api::ghl(&sim.base_url(), "unknown-token");
    for resp in [api.get(&path).await, api.with_token(None).get(&path).await] {
        assert_eq!(resp.status, 401);
        assert_eq!(resp.json["message"], "Invalid JWT");
        assert!(resp.json["traceId"].is_string());
        assert!(resp.header("x-ratelimit-remaining").is_none());
    }
    let short = handle.issue_token(&location, RW, Some(Duration::from_millis(400)));
    let api = Api::ghl(&sim.base_url(), &short);
    assert_eq!(api.get(&path).await.status, 200);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let expired = api.get(&path).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json["message"], "Invalid JWT: token expired");

    let readonly = Api::ghl(
        &sim.base_url(),
        &handle.issue_token(&location, &["contacts.readonly"], None),
    );
    assert_eq!(readonly.get(&path).await.status, 200);
    assert_eq!(
        readonly
            .post("/contacts/search", json!({"locationId": location}))
            .await
            .status,
        200
    );
    let writes = [
        readonly.put(&path, json!({"firstName": "x"})).await,
        readonly.delete(&path).await,
        readonly
            .post(
                "/contacts/",
                json!({"locationId": location, "email": "a@b.co"}),
            )
            .await,
        readonly
            .post(
                "/contacts/upsert",
                json!({"locationId": location, "email": "a@b.co"}),
            )
            .await,
        readonly
            .post(&format!("{path}/tags"), json!({"tags": ["a"]}))
            .await,
        readonly
            .post(&format!("{path}/notes"), json!({"body": "a"}))
            .await,
    ];
    for r in writes {
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(
            r.json["message"],
            "The token is not authorized for this scope."
        );
    }
    assert_eq!(handle.contacts(&location).len(), 3, "nothing was written");
    let writeonly = Api::ghl(
        &sim.base_url(),
        &handle.issue_token(&location, &["contacts.write"], None),
    );
    assert_eq!(
        writeonly.get(&path).await.status,
        401,
        "reads need contacts.readonly"
    );
    let company = Api::ghl(
        &sim.base_url(),
        &handle.issue_company_token("app", RW, None),
    );
    let r = company.get(&path).await;
    assert_eq!(r.status, 401);
    assert!(r.json["message"].as_str().unwrap().contains("authClass"));
    handle.revoke_token(&short);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_locations_data_is_forbidden() {
    let (sim, handle, _) = start(SimOptions {
        locations: 2,
        ..options(5)
    })
    .await;
    let [a, b] = <[String; 2]>::try_from(handle.location_ids()).unwrap();
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&a, RW, None));
    let theirs = str_of(&handle.contacts(&b)[0], "id").to_string();
    let responses = [
        api.get(&format!("/contacts/{theirs}")).await,
        api.get(&format!("/contacts/{theirs}/tasks")).await,
        api.put(&format!("/contacts/{theirs}"), json!({"firstName": "x"}))
            .await,
        api.delete(&format!("/contacts/{theirs}")).await,
        api.post("/contacts/search", json!({"locationId": b})).await,
        api.get(&format!("/contacts/?locationId={b}")).await,
        api.post("/contacts/", json!({"locationId": b, "email": "x@y.co"}))
            .await,
        api.get(&format!(
            "/contacts/search/duplicate?locationId={b}&email=x%40y.co"
        ))
        .await,
    ];
    for r in responses {
        assert_eq!(r.status, 403, "{}", r.text);
        assert_eq!(
            r.json["message"],
            "The token does not have access to this location."
        );
        assert!(r.json["traceId"].is_string());
    }
    assert!(handle.contact(&theirs).is_some());
    assert_eq!(handle.contacts(&b).len(), 5);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refuses_the_request_over_the_burst() {
    let limits = RateLimitConfig {
        burst: 10,
        interval: Duration::from_secs(2),
        daily: 1000,
    };
    let (sim, handle, location) = start(SimOptions {
        rate_limit: limits,
        ..options(3)
    })
    .await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let path = format!("/contacts/{}", str_of(&handle.contacts(&location)[0], "id"));
    for i in 0..10u32 {
        let r = api.get(&path).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-max"), Some("10"));
        assert_eq!(r.header("x-ratelimit-interval-milliseconds"), Some("2000"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((9 - i).to_string().as_str())
        );
        assert_eq!(r.header("x-ratelimit-limit-daily"), Some("1000"));
        assert_eq!(
            r.header("x-ratelimit-daily-remaining"),
            Some((999 - i).to_string().as_str())
        );
    }
    // The 11th and later are refused, and refused requests do not count.
    for _ in 0..15 {
        let r = api.get(&path).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.json["statusCode"], 429);
        assert_eq!(r.json["message"], "Too Many Requests");
        assert_eq!(r.header("retry-after"), Some("2"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(r.header("x-ratelimit-daily-remaining"), Some("990"));
    }
    // Another app has its own window on the same location.
    let other = Api::ghl(
        &sim.base_url(),
        &handle.issue_token_for_app("other-app", &location, RW, None),
    );
    assert_eq!(other.get(&path).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let r = api.get(&path).await;
    assert_eq!(r.status, 200, "after Retry-After the window has room");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("9"));
    let counters = handle.counters();
    assert_eq!(counters.too_many_requests, 15);
    assert_eq!(counters.count("GET", "/contacts/{contactId}", 429), 15);
    assert_eq!(counters.count("GET", "/contacts/{contactId}", 200), 12);
    let key = ("sim-app".to_string(), location.clone());
    assert_eq!(
        counters.max_requests_per_10s[&key], 26,
        "every arrival counts toward the 10 s peak"
    );
    handle.reset_counters();
    assert_eq!(handle.counters().total_requests, 0);

    // The daily limit.
    handle.set_rate_limits(RateLimitConfig {
        burst: 100,
        interval: Duration::from_secs(10),
        daily: 11,
    });
    let r = api.get(&path).await;
    assert_eq!(r.status, 429, "11 requests already counted today");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    assert_eq!(r.header("x-ratelimit-daily-remaining"), Some("0"));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_code_exchange_and_refresh_rotation() {
    let (sim, handle, location) = start(options(3)).await;
    let base = sim.base_url();
    let http = reqwest::Client::new();
    handle.register_oauth_client("client-1", "secret-1");
    handle.set_access_token_ttl(Duration::from_secs(3600));
    let token_op = openapi::oauth().expect_operation("POST", "/oauth/token");
    let exchange = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{base}/oauth/token");
        async move {
            let map: serde_json::Map<String, Value> = form
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            let r = http.post(url).form(&form).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            token_op
                .validate_response(status, &body)
                .unwrap_or_else(|e| panic!("{}\n{body}", e.join("\n")));
            (status, body, Value::Object(map))
        }
    };

    let code = handle.authorization_code("client-1", &location, RW);
    let (status, first, request) = exchange(vec![
        ("client_id", "client-1".into()),
        ("client_secret", "secret-1".into()),
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("user_type", "Location".into()),
        ("redirect_uri", "https://app.example.com/cb".into()),
    ])
    .await;
    token_op.validate_request_body(&request).unwrap();
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["userType"], "Location");
    assert_eq!(first["locationId"], location.as_str());
    assert_eq!(first["expires_in"], 3599);
    assert_eq!(first["scope"], "contacts.readonly contacts.write");
    let contact = str_of(&handle.contacts(&location)[0], "id").to_string();
    let api = Api::ghl(&base, first["access_token"].as_str().unwrap());
    assert_eq!(api.get(&format!("/contacts/{contact}")).await.status, 200);

    // A code is single-use.
    let (status, body, _) = exchange(vec![
        ("client_id", "client-1".into()),
        ("client_secret", "secret-1".into()),
        ("grant_type", "authorization_code".into()),
        ("code", code),
    ])
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Refresh rotates: the old refresh token is spent.
    let refresh = |token: &str| {
        vec![
            ("client_id", "client-1".to_string()),
            ("client_secret", "secret-1".to_string()),
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token.to_string()),
        ]
    };
    let r1 = first["refresh_token"].as_str().unwrap().to_string();
    let (status, second, _) = exchange(refresh(&r1)).await;
    assert_eq!(status, 200);
    let r2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(r1, r2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert_eq!(second["locationId"], location.as_str());
    let (status, reused, _) = exchange(refresh(&r1)).await;
    assert_eq!(status, 400);
    assert_eq!(reused["error"], "invalid_grant");
    assert_eq!(
        reused["message"],
        "Invalid grant: refresh token has already been used"
    );
    let (status, _, _) = exchange(refresh(&r2)).await;
    assert_eq!(status, 200, "the rotated token works once");
    let (status, unknown, _) = exchange(refresh("sim-rt-unknown")).await;
    assert_eq!(status, 400);
    assert_eq!(
        unknown["message"],
        "Invalid grant: refresh token is invalid"
    );
    let api2 = Api::ghl(&base, second["access_token"].as_str().unwrap());
    assert_eq!(api2.get(&format!("/contacts/{contact}")).await.status, 200);

    // Wrong secret → 401; missing fields → 422.
    let (status, _, _) = exchange(vec![
        ("client_id", "client-1".into()),
        ("client_secret", "wrong".into()),
        ("grant_type", "refresh_token".into()),
        ("refresh_token", r2.clone()),
    ])
    .await;
    assert_eq!(status, 401);
    let (status, body, _) = exchange(vec![("client_id", "client-1".into())]).await;
    assert_eq!(status, 422);
    assert_eq!(body["message"].as_array().unwrap().len(), 2);

    // Access tokens expire after the configured TTL.
    handle.set_access_token_ttl(Duration::from_millis(100));
    let code = handle.authorization_code("client-1", &location, RW);
    let (_, short, _) = exchange(vec![
        ("client_id", "client-1".into()),
        ("client_secret", "secret-1".into()),
        ("grant_type", "authorization_code".into()),
        ("code", code),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = Api::ghl(&base, short["access_token"].as_str().unwrap())
        .get(&format!("/contacts/{contact}"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["message"], "Invalid JWT: token expired");
    handle.set_access_token_ttl(Duration::from_secs(3600));

    // Company token → location token; installed locations.
    let code = handle.company_authorization_code(
        "client-1",
        &["contacts.readonly", "oauth.readonly", "oauth.write"],
    );
    let (status, company, _) = exchange(vec![
        ("client_id", "client-1".into()),
        ("client_secret", "secret-1".into()),
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("user_type", "Company".into()),
    ])
    .await;
    assert_eq!(status, 200);
    assert_eq!(company["userType"], "Company");
    assert_eq!(company["companyId"], handle.company_id().as_str());
    let company_token = company["access_token"].as_str().unwrap();
    let r = http
        .post(format!("{base}/oauth/locationToken"))
        .bearer_auth(company_token)
        .header("Version", API_VERSION)
        .form(&[
            ("companyId", handle.company_id()),
            ("locationId", location.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    openapi::oauth()
        .validate_response("POST", "/oauth/locationToken", 200, &body)
        .unwrap();
    assert_eq!(body["locationId"], location.as_str());
    let location_api = Api::ghl(&base, body["access_token"].as_str().unwrap());
    assert_eq!(
        location_api
            .get(&format!("/contacts/{contact}"))
            .await
            .status,
        200
    );
    let r = http
        .post(format!("{base}/oauth/locationToken"))
        .bearer_auth(company_token)
        .form(&[
            ("companyId", handle.company_id()),
            ("locationId", location.clone()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "Version is required here");
    let r = http
        .get(format!(
            "{base}/oauth/installedLocations?companyId={}&appId=client-1",
            handle.company_id()
        ))
        .bearer_auth(company_token)
        .header("Version", API_VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    openapi::oauth()
        .validate_response("GET", "/oauth/installedLocations", 200, &body)
        .unwrap_or_else(|e| panic!("{}", e.join("\n")));
    assert_eq!(body["locations"][0]["_id"], location.as_str());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_observable_by_a_client() {
    let (sim, handle, location) = start(options(3)).await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let path = format!("/contacts/{}", str_of(&handle.contacts(&location)[0], "id"));

    check_faults(
        &handle,
        &api,
        &path,
        |r| assert_eq!(r.json["statusCode"], 500),
        |_| {},
    )
    .await;

    assert_fault_counts(
        &handle.counters().faults,
        &[
            ("reset", 1),
            ("truncate", 1),
            ("html", 1),
            ("status_500", 1),
            ("status_503", 3),
            ("storm_429", 3),
        ],
    );
    assert_eq!(
        handle.counters().count("GET", "/contacts/{contactId}", 0),
        1,
        "a reset is counted as status 0"
    );

    sim.shutdown().await;

    random_faults_follow_the_seed(|faults| async move {
        let (sim, handle, location) = start(SimOptions {
            faults,
            ..options(1)
        })
        .await;
        let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
        let path = format!("/contacts/{}", str_of(&handle.contacts(&location)[0], "id"));
        (sim, api, path)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_response_is_lost_leaves_one_record() {
    let (sim, handle, location) = start(options(3)).await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let body = json!({"locationId": location, "firstName": "Lost", "email": "lost@example.com", "phone": "+15550009999"});

    handle.fail_next(FaultKind::LoseResponse, 1);
    // A read first: LoseResponse waits for a write.
    assert_eq!(
        api.get(&format!("/contacts/?locationId={location}"))
            .await
            .status,
        200
    );
    let lost = api.try_call(Method::POST, "/contacts/", Some(&body)).await;
    assert!(lost.is_err(), "the client sees no response: {lost:?}");
    let matching = |h: &SimHandle| {
        h.contacts(&location)
            .into_iter()
            .filter(|c| c["email"] == "lost@example.com")
            .collect::<Vec<_>>()
    };
    assert_eq!(matching(&handle).len(), 1, "the write was committed once");
    let id = str_of(&matching(&handle)[0], "id").to_string();

    // The documented recovery: look it up, or upsert; a blind retry is refused.
    let dup = api
        .get(&format!(
            "/contacts/search/duplicate?locationId={location}&email=lost%40example.com"
        ))
        .await;
    assert_eq!(dup.json["contact"]["id"], id.as_str());
    let retry = api.post("/contacts/", body.clone()).await;
    assert_eq!(retry.status, 400);
    assert_eq!(
        retry.json["message"],
        "This location does not allow duplicated contacts."
    );
    // The spec's BadRequestDTO is {statusCode, message}: the refusal names
    // no contact (a client finds it with the duplicate search above).
    assert!(retry.json.get("meta").is_none(), "{}", retry.json);
    let by_phone = api
        .post(
            "/contacts/",
            json!({"locationId": location, "phone": "(555) 000-9999"}),
        )
        .await;
    assert_eq!(by_phone.status, 400);
    assert_eq!(
        by_phone.json["message"],
        "This location does not allow duplicated contacts."
    );
    let upsert = api.post("/contacts/upsert", body).await;
    assert_eq!(upsert.json["new"], false);
    assert_eq!(upsert.json["contact"]["id"], id.as_str());
    let fresh = api
        .post(
            "/contacts/upsert",
            json!({"locationId": location, "email": "fresh@example.com"}),
        )
        .await;
    assert_eq!(fresh.json["new"], true);
    assert_eq!(matching(&handle).len(), 1);
    assert_eq!(handle.contacts(&location).len(), 5);
    assert_eq!(handle.counters().count("POST", "/contacts/", 0), 1);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_keep_dates_strictly_increasing() {
    let (sim, handle, location) = start(options(2)).await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    let id = str_of(&handle.contacts(&location)[0], "id").to_string();
    let mut stamps = Vec::new();
    for i in 0..20 {
        let contact = handle
            .update_contact_as_user(&id, json!({"firstName": format!("n{i}")}))
            .unwrap();
        stamps.push(str_of(&contact, "dateUpdated").to_string());
    }
    let created = api
        .post(
            "/contacts/",
            json!({"locationId": location, "email": "t@example.com"}),
        )
        .await;
    stamps.push(str_of(&created.json["contact"], "dateUpdated").to_string());
    assert_eq!(
        created.json["contact"]["dateAdded"],
        created.json["contact"]["dateUpdated"]
    );
    let re = regex_like_iso(&stamps);
    assert!(re, "ISO 8601 with milliseconds and Z: {stamps:?}");
    for pair in stamps.windows(2) {
        assert!(ms(&pair[1]) > ms(&pair[0]), "{pair:?}");
    }
    let got = api.get(&format!("/contacts/{id}")).await;
    assert_eq!(got.json["contact"]["firstName"], "n19");
    assert_eq!(got.json["contact"]["dateUpdated"], stamps[19].as_str());
    sim.shutdown().await;
}

fn regex_like_iso(stamps: &[String]) -> bool {
    stamps.iter().all(|s| {
        s.len() == 24
            && s.ends_with('Z')
            && s.as_bytes()[10] == b'T'
            && s.as_bytes()[19] == b'.'
            && chrono::DateTime::parse_from_rfc3339(s).is_ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_in_order_and_verify_with_the_published_keys() {
    use ed25519_dalek::pkcs8::DecodePublicKey as _;
    let (url, received, receiver_task) = receiver().await;
    let (sim, handle, location) = start(SimOptions {
        webhook_url: Some(url),
        seed: 5,
        // As GHL signed before 2026-07-01: both schemes.
        legacy_rsa_signature: true,
        ..options(3)
    })
    .await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));

    // Through the API.
    let c = api
        .post("/contacts/", json!({"locationId": location, "firstName": "Web", "lastName": "Hook", "email": "wh@example.com"}))
        .await;
    let id = str_of(&c.json["contact"], "id").to_string();
    api.put(&format!("/contacts/{id}"), json!({"city": "Austin"}))
        .await;
    api.post(&format!("/contacts/{id}/tags"), json!({"tags": ["hot"]}))
        .await;
    let task = api
        .post(
            &format!("/contacts/{id}/tasks"),
            json!({"title": "t", "dueDate": "2025-01-01T00:00:00Z", "completed": false}),
        )
        .await;
    let task_id = str_of(&task.json["task"], "id").to_string();
    api.put(
        &format!("/contacts/{id}/tasks/{task_id}/completed"),
        json!({"completed": true}),
    )
    .await;
    let note = api
        .post(&format!("/contacts/{id}/notes"), json!({"body": "n"}))
        .await;
    let note_id = str_of(&note.json["note"], "id").to_string();
    // As a user in the UI.
    handle
        .update_note_as_user(&note_id, json!({"body": "m"}))
        .unwrap();
    handle
        .update_contact_as_user(&id, json!({"dnd": true}))
        .unwrap();
    let appointment = handle
        .create_appointment_as_user(
            &id,
            json!({"title": "Demo", "startTime": "2025-02-01T10:00:00Z"}),
        )
        .unwrap();
    handle
        .update_appointment_as_user(str_of(&appointment, "id"), json!({"title": "Demo 2"}))
        .unwrap();
    handle
        .delete_appointment_as_user(str_of(&appointment, "id"))
        .unwrap();
    handle.delete_task_as_user(&task_id).unwrap();
    api.delete(&format!("/contacts/{id}/notes/{note_id}")).await;
    api.delete(&format!("/contacts/{id}")).await;
    let expected = [
        "ContactCreate",
        "ContactUpdate",
        "ContactTagUpdate",
        "TaskCreate",
        "TaskComplete",
        "NoteCreate",
        "NoteUpdate",
        "ContactUpdate",
        "ContactDndUpdate",
        "AppointmentCreate",
        "AppointmentUpdate",
        "AppointmentDelete",
        "TaskDelete",
        "NoteDelete",
        "ContactDelete",
    ];
    assert!(
        handle.flush_webhooks(Duration::from_secs(20)).await,
        "deliveries finish"
    );
    let stats = handle.webhook_stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.dropped),
        (expected.len() as u64, 0, 0)
    );

    let keys = handle.webhook_public_keys();
    let served: Value = reqwest::get(format!("{}/sim/keys", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served["rsa"], keys.rsa_pem.as_str());
    assert_eq!(served["ed25519"], keys.ed25519_pem.as_str());
    assert!(keys.rsa_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
    let rsa_key =
        <rsa::RsaPublicKey as rsa::pkcs8::DecodePublicKey>::from_public_key_pem(&keys.rsa_pem)
            .unwrap();
    let ed_key = ed25519_dalek::VerifyingKey::from_public_key_pem(&keys.ed25519_pem).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;

    let deliveries = received.all();
    let mut kinds = Vec::new();
    let mut webhook_ids = BTreeSet::new();
    for (headers, body) in &deliveries {
        let rsa_sig = b64
            .decode(headers["x-wh-signature"].to_str().unwrap())
            .unwrap();
        let digest = <sha2::Sha256 as sha2::Digest>::digest(body);
        rsa_key
            .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, &rsa_sig)
            .expect("x-wh-signature verifies with the RSA key");
        let ed_sig = b64
            .decode(headers["x-ghl-signature"].to_str().unwrap())
            .unwrap();
        let ed_sig = ed25519_dalek::Signature::from_slice(&ed_sig).unwrap();
        ed_key
            .verify_strict(body, &ed_sig)
            .expect("x-ghl-signature verifies with the Ed25519 key");
        // A tampered body does not verify.
        let mut tampered = body.clone();
        tampered[1] ^= 1;
        assert!(ed_key.verify_strict(&tampered, &ed_sig).is_err());
        let payload: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(payload["locationId"], location.as_str());
        assert!(chrono::DateTime::parse_from_rfc3339(str_of(&payload, "timestamp")).is_ok());
        assert!(
            webhook_ids.insert(str_of(&payload, "webhookId").to_string()),
            "webhookId is unique"
        );
        let kind = str_of(&payload, "type").to_string();
        match kind.as_str() {
            k if k.starts_with("Contact") => {
                assert_eq!(payload["id"], id.as_str());
                assert_eq!(payload["name"], "Web Hook");
                assert_eq!(payload["email"], "wh@example.com");
            }
            k if k.starts_with("Task") => {
                assert_eq!(payload["id"], task_id.as_str());
                assert_eq!(payload["contactId"], id.as_str());
                assert_eq!(payload["title"], "t");
                assert!(payload["dueDate"].is_string());
            }
            k if k.starts_with("Note") => {
                assert_eq!(payload["id"], note_id.as_str());
                assert_eq!(payload["contactId"], id.as_str());
            }
            k if k.starts_with("Appointment") => {
                assert_eq!(payload["appointment"]["id"], appointment["id"]);
                assert_eq!(payload["appointment"]["contactId"], id.as_str());
            }
            other => panic!("unexpected event {other}"),
        }
        kinds.push(kind);
    }
    assert_eq!(kinds, expected, "in order per contact");

    // A failing receiver is counted, not retried forever.
    handle.set_webhook_url(Some("http://127.0.0.1:9/unreachable".into()));
    handle
        .upsert_contact_as_user(&location, json!({"email": "another@example.com"}))
        .unwrap();
    assert!(handle.flush_webhooks(Duration::from_secs(20)).await);
    assert_eq!(handle.webhook_stats().failed, 1);
    receiver_task.abort();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_writes_can_touch_the_contact() {
    for touch in [false, true] {
        let (sim, handle, location) = start(SimOptions {
            child_writes_touch_contact: touch,
            ..options(5)
        })
        .await;
        let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
        let contact = handle.contacts(&location)[2].clone();
        let id = str_of(&contact, "id");
        let before = str_of(&contact, "dateUpdated").to_string();
        let latest = handle
            .contacts(&location)
            .iter()
            .map(|c| str_of(c, "dateUpdated").to_string())
            .max()
            .unwrap();
        let note = handle
            .create_note_as_user(id, json!({"body": "x"}))
            .unwrap();
        let since = json!({"locationId": location, "filters": [
            {"field": "dateUpdated", "operator": "range", "value": {"gt": latest}}
        ]});
        let r = api.post("/contacts/search", since).await;
        let after = str_of(&handle.contact(id).unwrap(), "dateUpdated").to_string();
        if touch {
            assert_eq!(after, str_of(&note, "dateAdded"));
            assert_eq!(
                r.json["total"], 1,
                "the contact is found by its new dateUpdated"
            );
            assert_eq!(r.json["contacts"][0]["id"], id);
        } else {
            assert_eq!(after, before);
            assert_eq!(r.json["total"], 0);
        }
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_edit_through_the_handle() {
    let (sim, handle, location) = start(options(2)).await;
    let contact = handle
        .upsert_contact_as_user(
            &location,
            json!({"firstName": "Ui", "email": "ui@example.com", "tags": ["A"]}),
        )
        .unwrap();
    let id = str_of(&contact, "id").to_string();
    assert_eq!(contact["source"], "crm ui");
    let again = handle
        .upsert_contact_as_user(
            &location,
            json!({"email": "UI@example.com", "lastName": "User"}),
        )
        .unwrap();
    assert_eq!(again["id"], id.as_str());
    assert_eq!(again["contactName"], "ui user");
    assert!(ms(str_of(&again, "dateUpdated")) > ms(str_of(&contact, "dateUpdated")));
    assert_eq!(
        handle.add_tags_as_user(&id, &["B"]).unwrap(),
        vec!["a", "b"]
    );
    // Custom fields may be named by key; they are stored by id.
    let plan = handle
        .custom_fields(&location)
        .into_iter()
        .find(|f| f.key == "contact.plan")
        .unwrap();
    let with_plan = handle
        .update_contact_as_user(
            &id,
            json!({"customFields": [{"key": "plan", "field_value": "basic"}]}),
        )
        .unwrap();
    assert_eq!(
        with_plan["customFields"],
        json!([{"id": plan.id, "value": "basic"}])
    );
    let cleared = handle
        .update_contact_as_user(
            &id,
            json!({"customFields": [{"id": plan.id, "field_value": ""}]}),
        )
        .unwrap();
    assert_eq!(cleared["customFields"], json!([]));
    assert_eq!(handle.remove_tags_as_user(&id, &["a"]).unwrap(), vec!["b"]);
    let task = handle
        .create_task_as_user(
            &id,
            json!({"title": "x", "dueDate": "2025-03-01", "completed": false}),
        )
        .unwrap();
    let updated = handle
        .update_task_as_user(str_of(&task, "id"), json!({"completed": true}))
        .unwrap();
    assert_eq!(updated["completed"], true);
    let note = handle
        .create_note_as_user(&id, json!({"body": "hello"}))
        .unwrap();
    assert_eq!(handle.notes(&id).len(), 1);
    handle.delete_note_as_user(str_of(&note, "id")).unwrap();
    assert!(handle.notes(&id).is_empty());
    assert!(handle
        .create_task_as_user(&id, json!({"title": "no due date"}))
        .is_err());
    assert!(handle.update_contact_as_user("missing", json!({})).is_err());
    let other = handle
        .upsert_contact_as_user(&location, json!({"email": "other@example.com"}))
        .unwrap();
    let clash =
        handle.update_contact_as_user(str_of(&other, "id"), json!({"email": "ui@example.com"}));
    assert!(
        matches!(
            clash,
            Err(ghlsync_sim::ghl::SimError::Duplicate { field: "email", .. })
        ),
        "{clash:?}"
    );
    handle.delete_contact_as_user(&id).unwrap();
    assert!(handle.contact(&id).is_none());
    assert!(handle.tasks(&id).is_empty());
    sim.shutdown().await;
}

#[derive(Debug, clap::Parser)]
struct SimCli {
    #[command(flatten)]
    args: ghlsync_sim::ghl::GhlSimArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_banner_lists_what_a_client_needs() {
    use clap::Parser as _;
    let cli = SimCli::try_parse_from([
        "sim",
        "--contacts",
        "4",
        "--locations",
        "2",
        "--seed",
        "3",
        "--token",
        "pit-readonly@2=contacts.readonly",
        "--oauth-client",
        "demo-app=demo-secret",
    ])
    .unwrap();
    let (sim, banner) = ghlsync_sim::ghl::start_from_args(&cli.args).await.unwrap();
    let handle = sim.handle();
    let ids = handle.location_ids();
    assert!(banner.starts_with(&format!("GHL simulator listening on {}\n", sim.base_url())));
    for id in &ids {
        assert!(banner.contains(&format!("location {id} ")), "{banner}");
        assert!(banner.contains(&format!("oauth client=demo-app location={id} code=")));
    }
    assert!(banner.contains(&format!(
        "token pit-readonly location={} scopes=contacts.readonly\n",
        ids[1]
    )));
    assert!(banner.contains("-----BEGIN PUBLIC KEY-----"));
    assert_eq!(banner.matches("-----BEGIN PUBLIC KEY-----").count(), 2);
    let api = Api::ghl(&sim.base_url(), "pit-readonly");
    let r = api
        .post("/contacts/search", json!({"locationId": ids[1]}))
        .await;
    assert_eq!(r.json["total"], 4, "the static token reads its location");
    assert_eq!(
        api.post("/contacts/search", json!({"locationId": ids[0]}))
            .await
            .status,
        403
    );
    let bad = SimCli::try_parse_from(["sim", "--token", "x@9=contacts.readonly"]).unwrap();
    assert!(
        ghlsync_sim::ghl::start_from_args(&bad.args).await.is_err(),
        "unknown location index"
    );
    sim.shutdown().await;
}

/// GHL signs webhooks with Ed25519 only since 2026-07-01, the legacy
/// header holding `N/A` (field notes, "Webhook signatures"): so does the
/// simulator by default.
#[tokio::test]
async fn webhooks_are_signed_with_ed25519_only_by_default() {
    let (url, received, receiver_task) = receiver().await;
    let (sim, handle, location) = start(SimOptions {
        webhook_url: Some(url),
        ..options(1)
    })
    .await;
    let api = Api::ghl(&sim.base_url(), &handle.issue_token(&location, RW, None));
    api.post(
        "/contacts/",
        json!({"locationId": location, "email": "ed@example.com"}),
    )
    .await;
    assert!(handle.flush_webhooks(Duration::from_secs(20)).await);
    let keys = handle.webhook_public_keys();
    let ed_key = <ed25519_dalek::VerifyingKey as ed25519_dalek::pkcs8::DecodePublicKey>::from_public_key_pem(&keys.ed25519_pem).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let deliveries = received.all();
    assert!(!deliveries.is_empty());
    for (headers, body) in &deliveries {
        assert_eq!(headers["x-wh-signature"], "N/A");
        let signature = b64
            .decode(headers["x-ghl-signature"].to_str().unwrap())
            .unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&signature).unwrap();
        ed_key.verify_strict(body, &signature).unwrap();
    }
    receiver_task.abort();
    sim.shutdown().await;
}
