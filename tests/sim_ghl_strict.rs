//! The GHL simulator in spec-strict mode (`RecordShapes::SpecStrict`): every
//! contact, task, note and appointment it sends carries only what the
//! official spec's schema for that answer lists (plus the documented live
//! differences), and the unusual-record generator
//! (`SimHandle::plant_unusual_records`) makes only values those schemas
//! allow. Every test talks HTTP to a simulator on loopback.

#[path = "common/openapi.rs"]
mod openapi;
#[path = "common/sim_helpers.rs"]
mod sim_helpers;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ghlsync_sim::ghl::shapes;
use ghlsync_sim::ghl::{
    GhlSim, RateLimitConfig, RecordShapes, RunningGhlSim, SimHandle, SimOptions, API_VERSION,
    UNUSUAL_VARIANTS,
};
use serde_json::{json, Value};
use sim_helpers::{receiver, Api, Resp};

const RW: &[&str] = &["contacts.readonly", "contacts.write"];

fn options() -> SimOptions {
    SimOptions {
        contacts_per_location: 25,
        seed: 42,
        seed_anchor: Some(chrono::DateTime::from_timestamp(1_748_736_000, 0).unwrap()),
        // Every record is read one by one: more than GHL's 100 per 10 s.
        rate_limit: RateLimitConfig {
            burst: 1_000_000,
            daily: 10_000_000,
            ..RateLimitConfig::default()
        },
        ..SimOptions::default()
    }
}

async fn start(options: SimOptions) -> (RunningGhlSim, SimHandle, String, Api) {
    let sim = GhlSim::start(options).await.expect("simulator starts");
    let handle = sim.handle();
    let location = handle.location_ids()[0].clone();
    let api = Api::new(&sim.base_url(), &handle.issue_token(&location, RW, None))
        .with_header("Version", Some(API_VERSION));
    (sim, handle, location, api)
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn ok(resp: &Resp, what: &str) {
    assert!(
        (200..300).contains(&resp.status),
        "{what} → {}: {}",
        resp.status,
        resp.text
    );
}

// --- the field lists are the spec's ------------------------------------------

/// The `properties` of a component of the vendored contacts spec, sorted
/// (serde_json's maps do not keep the file's order).
fn spec_properties(component: &str) -> Vec<String> {
    let text = std::fs::read_to_string(openapi::CONTACTS_SPEC).unwrap();
    let spec: Value = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<String> = spec["components"]["schemas"][component]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no component {component}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[test]
fn the_field_lists_are_the_spec_schemas_properties() {
    let pairs: &[(&[&str], &str)] = &[
        (shapes::TASK_SCHEMA_FIELDS, "TaskSchema"),
        (shapes::NOTE_SCHEMA_FIELDS, "GetNoteSchema"),
        (shapes::EVENT_SCHEMA_FIELDS, "GetEventSchema"),
        (shapes::CONTACT_BY_ID_SCHEMA_FIELDS, "GetContectByIdSchema"),
        (shapes::CREATED_CONTACT_SCHEMA_FIELDS, "CreateContactSchema"),
        (
            shapes::CONTACTS_SEARCH_SCHEMA_FIELDS,
            "ContactsSearchSchema",
        ),
        (shapes::CUSTOM_FIELD_SCHEMA_FIELDS, "CustomFieldSchema"),
        (shapes::DND_SETTINGS_SCHEMA_FIELDS, "DndSettingsSchema"),
        (shapes::DND_SETTING_SCHEMA_FIELDS, "DndSettingSchema"),
        (shapes::ATTRIBUTION_SOURCE_FIELDS, "AttributionSource"),
    ];
    for (fields, component) in pairs {
        let mut ours: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        ours.sort();
        assert_eq!(ours, spec_properties(component), "{component}");
    }
    // The known differences, and nothing else, on top of the spec.
    assert!(!shapes::TASK_SCHEMA_FIELDS.contains(&"dateAdded"));
    assert!(!shapes::TASK_SCHEMA_FIELDS.contains(&"dateUpdated"));
    assert!(shapes::NOTE_SCHEMA_FIELDS.contains(&"dateAdded"));
    assert!(!shapes::NOTE_SCHEMA_FIELDS.contains(&"dateUpdated"));
}

// --- checking records against their schemas ----------------------------------

/// Properties of `value` that `schema` (JSON Schema with `properties` /
/// `items`, as `openapi` produces) does not list, at any depth, as JSON
/// pointers; `allowed` names extra top-level keys.
fn extra_properties(
    schema: &Value,
    value: &Value,
    path: &str,
    allowed: &[&str],
    out: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return;
            };
            for (key, inner) in map {
                match props.get(key) {
                    Some(sub) => extra_properties(sub, inner, &format!("{path}/{key}"), &[], out),
                    None if allowed.contains(&key.as_str()) => {}
                    None => out.push(format!("{path}/{key}")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    extra_properties(item_schema, item, &format!("{path}/{i}"), &[], out);
                }
            }
        }
        _ => {}
    }
}

/// Every record a run sent, with what it broke.
#[derive(Default)]
struct Audit {
    records: usize,
    /// By schema: the violations and extra properties found.
    problems: BTreeMap<String, BTreeSet<String>>,
}

impl Audit {
    /// Checks one record against a component schema: it must validate
    /// and (unless `allowed`) carry no property the schema does not list.
    fn record(&mut self, component: &str, record: &Value, allowed: &[&str]) {
        self.records += 1;
        let spec = openapi::contacts();
        if let Err(errors) = spec.validate_component(component, record) {
            for e in errors {
                self.problem(component, format!("invalid: {e}"));
            }
        }
        let schema = spec.component(component).unwrap();
        let mut extra = Vec::new();
        extra_properties(schema, record, "", allowed, &mut extra);
        for e in extra {
            self.problem(component, format!("not in the schema: {e}"));
        }
    }

    fn records(&mut self, component: &str, list: &Value, allowed: &[&str]) {
        for record in list
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {list}"))
        {
            self.record(component, record, allowed);
        }
    }

    /// Checks a whole answer against the operation's documented schema.
    /// `GET path`, its answer checked.
    async fn get(&mut self, api: &Api, path: &str) -> Resp {
        let r = api.get(path).await;
        self.answer("GET", path, &r);
        r
    }

    fn answer(&mut self, method: &str, path: &str, resp: &Resp) {
        ok(resp, &format!("{method} {path}"));
        if let Err(errors) =
            openapi::contacts().validate_response(method, path, resp.status, &resp.json)
        {
            for e in errors {
                self.problem(&format!("{method} {path}"), e);
            }
        }
    }

    fn problem(&mut self, schema: &str, text: String) {
        self.problems
            .entry(schema.to_string())
            .or_default()
            .insert(text);
    }

    fn extras(&self) -> BTreeSet<String> {
        self.problems
            .iter()
            .flat_map(|(schema, p)| p.iter().map(move |p| format!("{schema}: {p}")))
            .filter(|p| p.contains("not in the schema"))
            .collect()
    }
}

/// What a searched contact may carry beyond `ContactsSearchSchema`: the
/// contact's own fields, `address` as search spells `address1`, and the
/// `searchAfter` cursor (field notes, "Search").
fn searched_extras() -> Vec<&'static str> {
    let mut extras = shapes::CONTACT_BY_ID_SCHEMA_FIELDS.to_vec();
    extras.extend(["address", "searchAfter"]);
    extras
}

/// Reads every record of the location through every answer that carries
/// one, and makes one of each write, auditing every record sent.
async fn audit_everything(handle: &SimHandle, location: &str, api: &Api) -> Audit {
    let mut audit = Audit::default();
    let contacts: Vec<String> = handle
        .contacts(location)
        .iter()
        .map(|c| str_of(c, "id").to_string())
        .collect();
    for id in &contacts {
        let r = audit.get(api, &format!("/contacts/{id}")).await;
        audit.record("GetContectByIdSchema", &r.json["contact"], &[]);

        let r = audit.get(api, &format!("/contacts/{id}/tasks")).await;
        audit.records("TaskSchema", &r.json["tasks"], &[]);
        for task in r.json["tasks"].as_array().unwrap() {
            let r = audit
                .get(api, &format!("/contacts/{id}/tasks/{}", str_of(task, "id")))
                .await;
            audit.record("TaskSchema", &r.json["task"], &[]);
        }

        let r = audit.get(api, &format!("/contacts/{id}/notes")).await;
        audit.records("GetNoteSchema", &r.json["notes"], &[]);
        for note in r.json["notes"].as_array().unwrap() {
            let r = audit
                .get(api, &format!("/contacts/{id}/notes/{}", str_of(note, "id")))
                .await;
            audit.record("GetNoteSchema", &r.json["note"], &[]);
        }

        let r = audit
            .get(api, &format!("/contacts/{id}/appointments"))
            .await;
        audit.records("GetEventSchema", &r.json["events"], &[]);
    }

    // Listings: ContactsSearchSchema plus the contact's own fields (field
    // notes: "dateUpdated (and more fields)"; search spells `address`).
    let r = audit
        .get(api, &format!("/contacts/?locationId={location}&limit=100"))
        .await;
    audit.records(
        "ContactsSearchSchema",
        &r.json["contacts"],
        shapes::CONTACT_BY_ID_SCHEMA_FIELDS,
    );
    let businesses: BTreeSet<String> = handle
        .contacts(location)
        .iter()
        .filter_map(|c| {
            c.get("businessId")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .collect();
    assert!(!businesses.is_empty());
    for business in businesses {
        let r = audit
            .get(
                api,
                &format!("/contacts/business/{business}?locationId={location}&limit=100"),
            )
            .await;
        audit.records(
            "ContactsSearchSchema",
            &r.json["contacts"],
            shapes::CONTACT_BY_ID_SCHEMA_FIELDS,
        );
    }
    let r = api
        .post(
            "/contacts/search",
            json!({"locationId": location, "pageLimit": 500}),
        )
        .await;
    audit.answer("POST", "/contacts/search", &r);
    assert_eq!(r.json["contacts"].as_array().unwrap().len(), contacts.len());
    audit.records(
        "ContactsSearchSchema",
        &r.json["contacts"],
        &searched_extras(),
    );
    let email = handle
        .contacts(location)
        .iter()
        .filter_map(|c| c.get("email").and_then(Value::as_str))
        .find(|e| {
            e.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".@".contains(c))
        })
        .unwrap()
        .to_string();
    let r = audit
        .get(
            api,
            &format!("/contacts/search/duplicate?locationId={location}&email={email}"),
        )
        .await;
    assert!(r.json["contact"].is_object(), "{}", r.text);
    audit.record(
        "ContactsSearchSchema",
        &r.json["contact"],
        shapes::CONTACT_BY_ID_SCHEMA_FIELDS,
    );

    // Writes and their answers.
    let r = api
        .post(
            "/contacts/",
            json!({"locationId": location, "firstName": "Strict", "lastName": "Shape",
                   "email": "strict.shape@example.com", "tags": ["a"],
                   "dndSettings": {"Email": {"status": "active", "message": "m", "code": "c"}}}),
        )
        .await;
    audit.answer("POST", "/contacts/", &r);
    audit.record("CreateContactSchema", &r.json["contact"], &[]);
    let id = str_of(&r.json["contact"], "id").to_string();
    let path = format!("/contacts/{id}");
    let r = api.put(&path, json!({"city": "Austin"})).await;
    audit.answer("PUT", &path, &r);
    audit.record("GetContectByIdSchema", &r.json["contact"], &[]);
    let r = api
        .post(
            "/contacts/upsert",
            json!({"locationId": location, "email": "strict.shape@example.com", "city": "Boston"}),
        )
        .await;
    audit.answer("POST", "/contacts/upsert", &r);
    audit.record("GetContectByIdSchema", &r.json["contact"], &[]);

    // A task with a field GHL does not know: generous mode echoes it.
    let path = format!("/contacts/{id}/tasks");
    let r = api
        .post(
            &path,
            json!({"title": "t", "dueDate": "2025-01-01T00:00:00Z", "completed": false, "priority": "high"}),
        )
        .await;
    audit.answer("POST", &path, &r);
    audit.record("TaskSchema", &r.json["task"], &[]);
    let task = str_of(&r.json["task"], "id").to_string();
    let path = format!("/contacts/{id}/tasks/{task}");
    let r = api.put(&path, json!({"title": "u"})).await;
    audit.answer("PUT", &path, &r);
    audit.record("TaskSchema", &r.json["task"], &[]);
    let path = format!("/contacts/{id}/tasks/{task}/completed");
    let r = api.put(&path, json!({"completed": true})).await;
    audit.answer("PUT", &path, &r);
    audit.record("TaskSchema", &r.json["task"], &[]);

    let path = format!("/contacts/{id}/notes");
    let r = api
        .post(
            &path,
            json!({"body": "n", "title": "t", "color": "#FFAA00", "pinned": true}),
        )
        .await;
    audit.answer("POST", &path, &r);
    audit.record("GetNoteSchema", &r.json["note"], &[]);
    let note = str_of(&r.json["note"], "id").to_string();
    let path = format!("/contacts/{id}/notes/{note}");
    let r = api.put(&path, json!({"body": "m"})).await;
    audit.answer("PUT", &path, &r);
    audit.record("GetNoteSchema", &r.json["note"], &[]);
    audit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_records_validate_and_carry_only_schema_properties() {
    let (sim, handle, location, api) = start(options().spec_strict()).await;
    assert_eq!(handle.record_shapes(), RecordShapes::SpecStrict);
    handle.plant_unusual_records(7, 2 * UNUSUAL_VARIANTS);
    let audit = audit_everything(&handle, &location, &api).await;
    assert!(audit.records > 150, "{} records audited", audit.records);
    assert!(
        audit.problems.is_empty(),
        "strict answers break their schemas:\n{:#?}",
        audit.problems
    );
    sim.shutdown().await;

    // The same data sent generously has properties no schema lists: the
    // audit would catch a strict mode that trimmed nothing.
    let (sim, handle, location, api) =
        start(options().with_record_shapes(RecordShapes::Generous)).await;
    assert_eq!(handle.record_shapes(), RecordShapes::Generous);
    handle.plant_unusual_records(7, 2 * UNUSUAL_VARIANTS);
    let extras = audit_everything(&handle, &location, &api).await.extras();
    for expected in [
        "TaskSchema: not in the schema: /dateAdded",
        "TaskSchema: not in the schema: /dateUpdated",
        "TaskSchema: not in the schema: /priority",
        "GetNoteSchema: not in the schema: /dateUpdated",
        "GetContectByIdSchema: not in the schema: /contactName",
        "ContactsSearchSchema: not in the schema: /contactName",
    ] {
        assert!(extras.contains(expected), "{expected} in {extras:#?}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_tasks_have_no_timestamps() {
    let (sim, handle, location, api) = start(options().spec_strict()).await;
    let contact = str_of(&handle.contacts(&location)[0], "id").to_string();
    let created = api
        .post(
            &format!("/contacts/{contact}/tasks"),
            json!({"title": "Call", "dueDate": "2025-01-01T00:00:00Z", "completed": false}),
        )
        .await;
    ok(&created, "create task");
    let task = str_of(&created.json["task"], "id").to_string();
    let listed = api.get(&format!("/contacts/{contact}/tasks")).await;
    let got = api.get(&format!("/contacts/{contact}/tasks/{task}")).await;
    let completed = api
        .put(
            &format!("/contacts/{contact}/tasks/{task}/completed"),
            json!({"completed": true}),
        )
        .await;
    let mut seen = vec![
        created.json["task"].clone(),
        got.json["task"].clone(),
        completed.json["task"].clone(),
    ];
    seen.extend(listed.json["tasks"].as_array().unwrap().iter().cloned());
    assert!(seen.iter().any(|t| str_of(t, "id") == task));
    for t in &seen {
        if str_of(t, "id") == task {
            assert_eq!(str_of(t, "title"), "Call", "{t}");
        }
        for key in ["dateAdded", "dateUpdated"] {
            assert!(t.get(key).is_none(), "strict task carries {key}: {t}");
        }
    }
    // The simulator still keeps them, and sends them when generous.
    assert!(handle
        .tasks(&contact)
        .iter()
        .all(|t| t.get("dateUpdated").is_some()));
    handle.set_record_shapes(RecordShapes::Generous);
    let got = api.get(&format!("/contacts/{contact}/tasks/{task}")).await;
    assert!(got.json["task"].get("dateAdded").is_some(), "{}", got.text);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_notes_have_date_added_only() {
    let (sim, handle, location, api) = start(options().spec_strict()).await;
    let contact = str_of(&handle.contacts(&location)[0], "id").to_string();
    let created = api
        .post(
            &format!("/contacts/{contact}/notes"),
            json!({"body": "first"}),
        )
        .await;
    ok(&created, "create note");
    let note = str_of(&created.json["note"], "id").to_string();
    let updated = api
        .put(
            &format!("/contacts/{contact}/notes/{note}"),
            json!({"body": "second"}),
        )
        .await;
    let listed = api.get(&format!("/contacts/{contact}/notes")).await;
    let got = api.get(&format!("/contacts/{contact}/notes/{note}")).await;
    let mut seen = vec![
        created.json["note"].clone(),
        updated.json["note"].clone(),
        got.json["note"].clone(),
    ];
    seen.extend(listed.json["notes"].as_array().unwrap().iter().cloned());
    assert!(seen.len() >= 4);
    for n in &seen {
        assert!(n.get("dateAdded").and_then(Value::as_str).is_some(), "{n}");
        assert!(
            n.get("dateUpdated").is_none(),
            "strict note carries dateUpdated: {n}"
        );
    }
    assert_eq!(str_of(&got.json["note"], "body"), "second");
    handle.set_record_shapes(RecordShapes::Generous);
    let got = api.get(&format!("/contacts/{contact}/notes/{note}")).await;
    assert!(
        got.json["note"].get("dateUpdated").is_some(),
        "{}",
        got.text
    );
    sim.shutdown().await;
}

// --- webhooks -----------------------------------------------------------------

/// The payload properties of each event: the simulator's lists of them,
/// copied from the `json_schema` blocks of GHL's webhook docs
/// (`shared/ghl-api/docs/webhooks/*.md`, not vendored, so no test can read
/// them), plus `webhookId` and `timestamp`
/// (`docs/oauth/WebhookAuthentication.md`).
fn documented_webhook_fields(event: &str) -> Vec<&'static str> {
    let mut fields = match event {
        "ContactDndUpdate" => shapes::WEBHOOK_CONTACT_DND_FIELDS.to_vec(),
        e if e.starts_with("Contact") => shapes::WEBHOOK_CONTACT_FIELDS.to_vec(),
        e if e.starts_with("Task") => shapes::WEBHOOK_TASK_FIELDS.to_vec(),
        e if e.starts_with("Note") => shapes::WEBHOOK_NOTE_FIELDS.to_vec(),
        e if e.starts_with("Appointment") => shapes::WEBHOOK_APPOINTMENT_ENVELOPE_FIELDS.to_vec(),
        other => panic!("unexpected event {other}"),
    };
    fields.extend(["webhookId", "timestamp"]);
    fields
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_webhooks_carry_only_documented_fields() {
    let (url, received, receiver_task) = receiver().await;
    let (sim, handle, location, api) = start(SimOptions {
        webhook_url: Some(url),
        seed: 5,
        ..options().spec_strict()
    })
    .await;
    let c = api
        .post(
            "/contacts/",
            json!({"locationId": location, "firstName": "Web", "lastName": "Hook", "email": "wh@example.com"}),
        )
        .await;
    let id = str_of(&c.json["contact"], "id").to_string();
    api.put(&format!("/contacts/{id}"), json!({"city": "Austin"}))
        .await;
    api.post(&format!("/contacts/{id}/tags"), json!({"tags": ["hot"]}))
        .await;
    handle
        .update_contact_as_user(
            &id,
            json!({"dnd": true, "dndSettings": {"SMS": {"status": "active"}}}),
        )
        .unwrap();
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
    handle
        .update_note_as_user(&note_id, json!({"body": "m"}))
        .unwrap();
    let appointment = handle
        .create_appointment_as_user(
            &id,
            json!({"title": "Demo", "startTime": "2025-02-01T10:00:00Z"}),
        )
        .unwrap();
    handle
        .delete_appointment_as_user(str_of(&appointment, "id"))
        .unwrap();
    handle.delete_task_as_user(&task_id).unwrap();
    api.delete(&format!("/contacts/{id}/notes/{note_id}")).await;
    api.delete(&format!("/contacts/{id}")).await;
    assert!(handle.flush_webhooks(Duration::from_secs(30)).await);

    let mut events = BTreeSet::new();
    for (_, body) in received.all() {
        let payload: Value = serde_json::from_slice(&body).unwrap();
        let event = str_of(&payload, "type").to_string();
        let documented = documented_webhook_fields(&event);
        for key in payload.as_object().unwrap().keys() {
            assert!(
                documented.contains(&key.as_str()),
                "{event} carries undocumented {key}: {payload}"
            );
        }
        if let Some(appointment) = payload.get("appointment") {
            for key in appointment.as_object().unwrap().keys() {
                assert!(
                    shapes::WEBHOOK_APPOINTMENT_FIELDS.contains(&key.as_str()),
                    "{event} appointment carries undocumented {key}: {payload}"
                );
            }
        }
        assert!(payload.get("webhookId").is_some() && payload.get("timestamp").is_some());
        events.insert(event);
    }
    for event in [
        "ContactCreate",
        "ContactUpdate",
        "ContactTagUpdate",
        "ContactDndUpdate",
        "ContactDelete",
        "TaskCreate",
        "TaskComplete",
        "TaskDelete",
        "NoteCreate",
        "NoteUpdate",
        "NoteDelete",
        "AppointmentCreate",
        "AppointmentDelete",
    ] {
        assert!(events.contains(event), "{event} delivered: {events:?}");
    }
    sim.shutdown().await;
    receiver_task.abort();
}

// --- unusual records ------------------------------------------------------------

/// Everything the simulator holds for some contacts, children included.
fn dump(handle: &SimHandle, ids: &[String]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| {
                json!([
                    handle.contact(id),
                    handle.tasks(id),
                    handle.notes(id),
                    handle.appointments(id)
                ])
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_records_are_deterministic_per_seed() {
    let (a, ha, _, _) = start(options()).await;
    let (b, hb, _, _) = start(options()).await;
    let ids_a = ha.plant_unusual_records(11, 12);
    let ids_b = hb.plant_unusual_records(11, 12);
    assert_eq!(ids_a.len(), 12);
    assert_eq!(ids_a, ids_b);
    assert_eq!(dump(&ha, &ids_a), dump(&hb, &ids_b));
    let ids_c = ha.plant_unusual_records(12, 12);
    assert_ne!(dump(&ha, &ids_a), dump(&ha, &ids_c));
    a.shutdown().await;
    b.shutdown().await;
}

/// Each kind of unusual value the generator promises, and whether a value
/// is one.
fn kinds_of(key: &str, value: &Value, found: &mut BTreeSet<&'static str>) {
    use chrono::NaiveDateTime as T;
    match value {
        Value::Null => {
            found.insert("null");
        }
        Value::Array(items) => {
            if items.is_empty() {
                found.insert(if key == "tags" {
                    "empty tags"
                } else {
                    "empty array"
                });
            }
            for item in items {
                kinds_of(key, item, found);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                kinds_of(k, v, found);
            }
        }
        Value::String(s) => {
            if s.is_empty() {
                found.insert("empty string");
            }
            if s.len() >= 10 * 1024 {
                found.insert("10 KiB text");
            }
            if key == "firstName" && s.chars().count() == 500 {
                found.insert("500-char name");
            }
            for c in s.chars() {
                match c as u32 {
                    0x1F000..=0x1FAFF | 0x2600..=0x27BF => found.insert("emoji"),
                    0x0590..=0x08FF => found.insert("right-to-left"),
                    0x0300..=0x036F => found.insert("combining mark"),
                    _ => false,
                };
            }
            if T::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok() && s.contains('.') {
                found.insert("date with ms Z");
            }
            if T::parse_from_str(s, "%Y-%m-%dT%H:%M:%SZ").is_ok() {
                found.insert("date without ms Z");
            }
            if chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.ends_with("+00:00") {
                found.insert("date with +00:00");
            }
            if matches!(key, "startTime" | "endTime")
                && T::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok()
            {
                found.insert("appointment time with a space");
            }
            if matches!(key, "postalCode" | "value") && s.parse::<f64>().is_ok() {
                found.insert("digits in a string field");
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusual_records_validate_and_have_every_kind() {
    let (sim, handle, location, api) = start(options().spec_strict()).await;
    let ids = handle.plant_unusual_records(3, UNUSUAL_VARIANTS);
    let mut audit = Audit::default();
    let mut found = BTreeSet::new();
    let mut absent_email = false;
    for id in &ids {
        let r = api.get(&format!("/contacts/{id}")).await;
        audit.answer("GET", &format!("/contacts/{id}"), &r);
        audit.record("GetContectByIdSchema", &r.json["contact"], &[]);
        absent_email |= r.json["contact"].get("email").is_none();
        kinds_of("", &r.json, &mut found);
        for (what, key, component) in [
            ("tasks", "tasks", "TaskSchema"),
            ("notes", "notes", "GetNoteSchema"),
            ("appointments", "events", "GetEventSchema"),
        ] {
            let r = audit.get(&api, &format!("/contacts/{id}/{what}")).await;
            audit.records(component, &r.json[key], &[]);
            kinds_of("", &r.json, &mut found);
        }
    }
    let r = api
        .post(
            "/contacts/search",
            json!({"locationId": location, "pageLimit": 500}),
        )
        .await;
    let planted: Vec<Value> = r.json["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| ids.contains(&str_of(c, "id").to_string()))
        .cloned()
        .collect();
    assert_eq!(planted.len(), ids.len());
    audit.records(
        "ContactsSearchSchema",
        &Value::Array(planted.clone()),
        &searched_extras(),
    );
    kinds_of("", &Value::Array(planted), &mut found);
    assert!(
        audit.problems.is_empty(),
        "unusual records break the spec:\n{:#?}",
        audit.problems
    );
    assert!(absent_email, "an optional field is absent");
    let expected: BTreeSet<&str> = [
        "null",
        "empty string",
        "empty tags",
        "empty array",
        "10 KiB text",
        "500-char name",
        "emoji",
        "right-to-left",
        "combining mark",
        "date with ms Z",
        "date without ms Z",
        "date with +00:00",
        "appointment time with a space",
        "digits in a string field",
    ]
    .into_iter()
    .collect();
    let missing: Vec<_> = expected.difference(&found).collect();
    assert!(missing.is_empty(), "kinds never produced: {missing:?}");
    // Generously sent, they still validate (the schemas are open).
    handle.set_record_shapes(RecordShapes::Generous);
    for id in &ids {
        let r = api.get(&format!("/contacts/{id}")).await;
        openapi::contacts()
            .validate_component("GetContectByIdSchema", &r.json["contact"])
            .unwrap_or_else(|e| panic!("{e:?}"));
    }
    sim.shutdown().await;
}
