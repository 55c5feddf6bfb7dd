//! The app simulator (`ghlsync_sim::app`), the reference "your app" the
//! REST connector is configured against: change feeds and cursor paging,
//! lookups, CRUD with tombstones, error bodies, the clock, the rate limit,
//! faults, signed webhooks, deterministic seeding and the CLI banner.
//! Every test talks HTTP to a simulator on loopback.

#[path = "common/sim_helpers.rs"]
mod sim_helpers;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::TimeZone as _;
use ghlsync_sim::app::{
    start_from_args, AppSim, AppSimArgs, AppSimHandle, AppSimOptions, FaultKind, RunningAppSim,
};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use sim_helpers::{
    assert_fault_counts, check_faults, random_faults_follow_the_seed, receiver, Api,
};

const TOKEN: &str = "test-token";

fn options(contacts: usize) -> AppSimOptions {
    AppSimOptions {
        contacts,
        seed: 42,
        tokens: vec![TOKEN.to_string()],
        rate_limit: None,
        ..AppSimOptions::default()
    }
}

async fn start(options: AppSimOptions) -> (RunningAppSim, AppSimHandle, Api) {
    let sim = AppSim::start(options).await.expect("simulator starts");
    let handle = sim.handle();
    let api = Api::new(&sim.api_url(), TOKEN);
    (sim, handle, api)
}

impl Api {
    /// Walks a change feed to its end; returns every item and the number
    /// of pages. `between` runs after each page.
    async fn walk(
        &self,
        path: &str,
        limit: usize,
        mut between: impl FnMut(usize),
    ) -> (Vec<Value>, usize) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let r = self.get(&url).await;
            assert_eq!(r.status, 200, "{url}: {}", r.text);
            let page = r.json["data"].as_array().unwrap().clone();
            assert!(page.len() <= limit);
            items.extend(page);
            pages += 1;
            assert!(pages < 1000, "paging does not end");
            between(pages);
            match r.json["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => {
                    assert!(r.json["next_cursor"].is_null());
                    return (items, pages);
                }
            }
        }
    }
}

fn s<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

fn ms(value: &Value, key: &str) -> i64 {
    value[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} is not an integer in {value}"))
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|v| s(v, "id").to_string()).collect()
}

fn is_id(id: &str, prefix: &str) -> bool {
    id.len() == prefix.len() + 12
        && id.starts_with(prefix)
        && id[prefix.len()..]
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
}

fn assert_feed_order(items: &[Value], time_key: &str) {
    for pair in items.windows(2) {
        let a = (ms(&pair[0], time_key), s(&pair[0], "id"));
        let b = (ms(&pair[1], time_key), s(&pair[1], "id"));
        assert!(a < b, "feed out of order: {a:?} then {b:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_contact_exactly_once() {
    let (sim, handle, api) = start(options(60)).await;
    let expected: BTreeSet<String> = ids(&handle.contacts()).into_iter().collect();
    assert_eq!(expected.len(), 60);
    for limit in [1, 7, 60, 200] {
        let (items, pages) = api.walk("/contacts", limit, |_| {}).await;
        let seen = ids(&items);
        assert_eq!(seen.len(), 60, "limit {limit}: every contact once");
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), expected);
        assert_feed_order(&items, "updated_at");
        assert_eq!(pages, 60usize.div_ceil(limit), "limit {limit}");
    }
    // Default page size 50, then the rest.
    let first = api.get("/contacts").await;
    assert_eq!(first.json["data"].as_array().unwrap().len(), 50);
    let cursor = s(&first.json, "next_cursor").to_string();
    let rest = api.get(&format!("/contacts?cursor={cursor}")).await;
    assert_eq!(rest.json["data"].as_array().unwrap().len(), 10);
    assert!(rest.json["next_cursor"].is_null());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_with_interleaved_updates_never_loses_a_record() {
    let (sim, handle, api) = start(options(40)).await;
    let original = ids(&handle.contacts());
    // The order the feed will serve them in, before any change.
    let mut by_feed = handle.contacts();
    by_feed.sort_by_key(|c| (ms(c, "updated_at"), s(c, "id").to_string()));
    let feed_order = ids(&by_feed);
    let mut updated = Vec::new();
    let (items, _) = api
        .walk("/contacts", 5, |page| {
            // After each page: touch one record already served and one not
            // yet served, and create one.
            let seen = feed_order[(page * 5 - 1).min(39)].clone();
            let ahead = feed_order[(page * 5 + 2).min(39)].clone();
            for id in [seen, ahead] {
                handle
                    .update_contact_as_user(&id, json!({"company": format!("Page {page}")}))
                    .unwrap();
                updated.push(id);
            }
            if page <= 8 {
                handle
                    .create_contact_as_user(json!({"first_name": format!("New {page}")}))
                    .unwrap();
            }
        })
        .await;
    let seen: HashMap<String, usize> = ids(&items).into_iter().fold(HashMap::new(), |mut m, id| {
        *m.entry(id).or_default() += 1;
        m
    });
    for id in &original {
        assert!(seen.contains_key(id), "{id} was never served");
    }
    // A record updated after it was served is served again, at the end.
    let again = &updated[0];
    assert!(seen[again] >= 2, "{again} was updated after being served");
    // Every created record was served too.
    for contact in handle.contacts() {
        assert!(seen.contains_key(s(&contact, "id")));
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updated_since_is_inclusive_and_queries_are_checked() {
    let (sim, handle, api) = start(options(20)).await;
    let mut contacts = handle.contacts();
    contacts.sort_by_key(|c| ms(c, "updated_at"));
    let pivot = &contacts[10];
    let t = ms(pivot, "updated_at");
    let r = api.get(&format!("/contacts?updated_since={t}")).await;
    let data = r.json["data"].as_array().unwrap();
    assert_eq!(s(&data[0], "id"), s(pivot, "id"), "inclusive bound");
    assert_eq!(data.len(), 10);
    let r = api.get(&format!("/contacts?updated_since={}", t + 1)).await;
    let data = r.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 9);
    assert!(data.iter().all(|c| ms(c, "updated_at") > t));
    // A cursor plus updated_since: both bounds hold.
    let first = api.get("/contacts?limit=2").await;
    let cursor = s(&first.json, "next_cursor");
    let r = api
        .get(&format!(
            "/contacts?limit=200&cursor={cursor}&updated_since={t}"
        ))
        .await;
    assert_eq!(r.json["data"].as_array().unwrap().len(), 10);

    for bad in [
        "/contacts?updated_since=yesterday",
        "/contacts?updated_since=2025-01-01T00:00:00Z",
        "/contacts?limit=0",
        "/contacts?limit=201",
        "/contacts?cursor=garbage",
        "/tasks?limit=x",
        "/deleted?cursor=%%%",
    ] {
        let r = api.get(bad).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
        assert_eq!(r.json["error"], "invalid");
        assert!(!r.json["details"].as_array().unwrap().is_empty(), "{bad}");
    }
    let r = api.get("/contacts?limit=0&updated_since=x").await;
    assert_eq!(r.json["details"].as_array().unwrap().len(), 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_by_email_and_mobile() {
    let (sim, handle, api) = start(options(10)).await;
    let created = api
        .post(
            "/contacts",
            json!({"first_name": "Lookup", "email_address": "Mixed.Case@Example.com", "mobile": "+1 (512) 555-0199"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = s(&created.json["data"], "id").to_string();
    assert_eq!(created.json["data"]["mobile"], "+15125550199");
    handle
        .create_contact_as_user(json!({"first_name": "Twin", "mobile": "+15125550199"}))
        .unwrap();

    let r = api
        .get("/contacts?email_address=mixed.case%40example.COM")
        .await;
    assert_eq!(ids(r.json["data"].as_array().unwrap()), vec![id.clone()]);
    assert!(r.json["next_cursor"].is_null());
    let r = api
        .get("/contacts?email_address=nobody%40example.com")
        .await;
    assert_eq!(r.json["data"], json!([]));

    for query in [
        "mobile=%2B15125550199",
        "mobile=+15125550199",
        "mobile=%2B1%20512%20555%200199",
    ] {
        let r = api.get(&format!("/contacts?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        assert_eq!(r.json["data"].as_array().unwrap().len(), 2, "{query}");
    }
    // Filters combine with paging.
    let (items, pages) = api.walk("/contacts?mobile=%2B15125550199", 1, |_| {}).await;
    assert_eq!((items.len(), pages), (2, 2));
    assert!(items.iter().all(|c| c["mobile"] == "+15125550199"));

    for bad in ["/contacts?email_address=", "/contacts?mobile=abc"] {
        assert_eq!(api.get(bad).await.status, 422, "{bad}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_patch_delete_and_tombstones() {
    let (sim, handle, api) = start(options(5)).await;
    let before = handle.clock_ms();
    let r = api
        .post(
            "/contacts",
            json!({
                "first_name": " Ada ", "last_name": "Lovelace", "email_address": "ada@example.com",
                "mobile": "+447700900123", "company": "Analytical", "labels": ["vip", "vip", "math"],
                "id": "ct_ignored", "updated_at": 1,
                "plan": "gold", "score": 7, "prefs": {"newsletter": true}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let c = r.json["data"].clone();
    let id = s(&c, "id").to_string();
    assert!(is_id(&id, "ct_"), "{id}");
    assert_eq!(
        r.header("location"),
        Some(format!("/api/v1/contacts/{id}").as_str())
    );
    assert_eq!(c["first_name"], "Ada");
    assert_eq!(c["labels"], json!(["vip", "math"]));
    assert!(ms(&c, "updated_at") > before);
    assert_eq!(ms(&c, "created_at"), ms(&c, "updated_at"));
    // Extra fields are kept and returned.
    assert_eq!(c["plan"], "gold");
    assert_eq!(c["score"], 7);
    assert_eq!(c["prefs"], json!({"newsletter": true}));
    assert_eq!(api.get(&format!("/contacts/{id}")).await.json["data"], c);

    // PATCH is partial; null clears a known field and removes an extra one.
    let r = api
        .patch(
            &format!("/contacts/{id}"),
            json!({"company": null, "labels": null, "plan": null, "first_name": "Augusta", "tier": 2}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let p = r.json["data"].clone();
    assert_eq!(p["company"], Value::Null);
    assert!(p.as_object().unwrap().contains_key("company"));
    assert_eq!(p["labels"], json!([]));
    assert!(!p.as_object().unwrap().contains_key("plan"));
    assert_eq!(p["first_name"], "Augusta");
    assert_eq!(p["last_name"], "Lovelace");
    assert_eq!(p["score"], 7);
    assert_eq!(p["tier"], 2);
    assert_eq!(ms(&p, "created_at"), ms(&c, "created_at"));
    assert!(ms(&p, "updated_at") > ms(&c, "updated_at"));
    assert_eq!(handle.contact(&id).unwrap(), p);

    // Delete: its task and note go too; all three leave tombstones.
    let task = handle
        .create_task_as_user(&id, json!({"name": "Call"}))
        .unwrap();
    let note = handle
        .create_note_as_user(&id, json!({"text": "Hi"}))
        .unwrap();
    let mark = handle.clock_ms();
    let r = api.delete(&format!("/contacts/{id}")).await;
    assert_eq!(r.status, 204);
    assert!(r.text.is_empty());
    let r = api.get(&format!("/contacts/{id}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json["error"], "not_found");
    assert_eq!(api.delete(&format!("/contacts/{id}")).await.status, 404);
    assert!(handle.task(s(&task, "id")).is_none());
    assert!(handle.note(s(&note, "id")).is_none());

    let r = api.get(&format!("/deleted?updated_since={mark}")).await;
    let tombs = r.json["data"].as_array().unwrap().clone();
    assert_feed_order(&tombs, "deleted_at");
    let got: Vec<(String, String, Value)> = tombs
        .iter()
        .map(|t| {
            (
                s(t, "entity").to_string(),
                s(t, "id").to_string(),
                t["contact_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("task".into(), s(&task, "id").into(), json!(id)),
            ("note".into(), s(&note, "id").into(), json!(id)),
            ("contact".into(), id.clone(), Value::Null),
        ]
    );
    assert!(tombs.iter().all(|t| ms(t, "deleted_at") > mark));
    assert_eq!(handle.deleted().len(), 3);
    // The tombstones page like the other feeds.
    let (all, pages) = api.walk("/deleted", 2, |_| {}).await;
    assert_eq!((all.len(), pages), (3, 2));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_email_is_409_with_the_existing_id() {
    let (sim, handle, api) = start(options(10)).await;
    let with_email = handle
        .contacts()
        .into_iter()
        .find(|c| c["email_address"].is_string())
        .unwrap();
    let existing = s(&with_email, "id").to_string();
    let email = s(&with_email, "email_address").to_uppercase();
    let r = api
        .post(
            "/contacts",
            json!({"first_name": "Dup", "email_address": email}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json["error"], "duplicate");
    assert_eq!(r.json["existing_id"], existing.as_str());
    assert!(r.json["message"].is_string());
    assert_eq!(handle.contact_count(), 10);

    let other = api
        .post("/contacts", json!({"first_name": "Other"}))
        .await
        .json["data"]
        .clone();
    let r = api
        .patch(
            &format!("/contacts/{}", s(&other, "id")),
            json!({"email_address": email}),
        )
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json["existing_id"], existing.as_str());
    // Its own email again is fine.
    let r = api
        .patch(
            &format!("/contacts/{existing}"),
            json!({"email_address": email}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let err = handle
        .create_contact_as_user(json!({"email_address": email.to_lowercase()}))
        .unwrap_err();
    assert!(
        matches!(err, ghlsync_sim::app::AppSimError::Duplicate { existing_id, .. } if existing_id == existing)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_bodies_401_404_405_422() {
    let (sim, handle, api) = start(options(3)).await;
    let id = s(&handle.contacts()[0], "id").to_string();

    for token in [None, Some("wrong")] {
        let r = api.with_token(token).get("/contacts").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json["error"], "unauthorized");
        assert!(r.json["message"].is_string());
    }
    handle.add_token("later");
    assert_eq!(
        api.with_token(Some("later")).get("/contacts").await.status,
        200
    );
    assert!(handle.revoke_token("later"));
    assert_eq!(
        api.with_token(Some("later")).get("/contacts").await.status,
        401
    );

    for path in [
        "/contacts/ct_000000000000".to_string(),
        "/contacts/ct_000000000000/tasks".to_string(),
        format!("/contacts/{id}/tasks/tk_000000000000"),
        format!("/contacts/{id}/notes/nt_000000000000"),
        "/nothing/here".to_string(),
    ] {
        let r = api.get(&path).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.json["error"], "not_found", "{path}");
        assert!(r.json["message"].is_string());
    }
    let r = api
        .call(Method::PUT, &format!("/contacts/{id}"), None)
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json["error"], "method_not_allowed");

    let r = api
        .try_send(
            Method::POST,
            "/contacts",
            Some(b"{\"first_name\": ".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 422);
    assert_eq!(r.json["error"], "invalid");
    assert!(r.json["details"][0].as_str().unwrap().starts_with("body"));
    let r = api
        .post(
            "/contacts",
            json!({"first_name": 5, "labels": "vip", "email_address": "not-an-email", "mobile": "0123"}),
        )
        .await;
    assert_eq!(r.status, 422);
    let details: Vec<&str> = r.json["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 4, "{details:?}");
    for field in ["first_name", "labels", "email_address", "mobile"] {
        assert!(
            details.iter().any(|d| d.starts_with(field)),
            "{field}: {details:?}"
        );
    }
    for body in [json!([1, 2]), json!({}), json!({"labels": ["x"]})] {
        let r = api.post("/contacts", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
    }
    let r = api
        .post(
            &format!("/contacts/{id}/tasks"),
            json!({"name": "x", "title": "y"}),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.json["details"][0].as_str().unwrap().starts_with("title"));
    let r = api
        .post(
            &format!("/contacts/{id}/tasks"),
            json!({"due_on": "soon", "done": "no"}),
        )
        .await;
    assert_eq!(r.json["details"].as_array().unwrap().len(), 2, "{}", r.text);
    // Unknown id wins over a bad body.
    let r = api
        .patch("/contacts/ct_000000000000", json!({"first_name": 1}))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(handle.contact_count(), 3, "nothing was written");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_and_notes_crud_and_change_feeds() {
    let (sim, handle, api) = start(options(30)).await;
    let contacts = handle.contacts();
    let cid = s(&contacts[0], "id").to_string();
    let other = s(&contacts[1], "id").to_string();
    let contact_before = handle.contact(&cid).unwrap();
    // The first timestamp the writes below can get.
    let mark = handle.clock_ms() + 1;

    // Tasks.
    let r = api
        .post(
            &format!("/contacts/{cid}/tasks"),
            json!({"name": "Send quote", "due_on": "2025-07-01T09:00:00+02:00"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let task = r.json["data"].clone();
    let tid = s(&task, "id").to_string();
    assert!(is_id(&tid, "tk_"));
    assert_eq!(task["contact_id"], cid.as_str());
    assert_eq!(task["done"], false);
    assert_eq!(task["details"], Value::Null);
    assert_eq!(task["due_on"], "2025-07-01T09:00:00+02:00");
    let listed = api.get(&format!("/contacts/{cid}/tasks")).await;
    assert!(listed.json.get("next_cursor").is_none());
    assert_eq!(
        listed.json["data"].as_array().unwrap().last().unwrap()["id"],
        tid.as_str()
    );
    assert_eq!(
        api.get(&format!("/contacts/{cid}/tasks/{tid}")).await.json["data"],
        task
    );
    assert_eq!(
        api.get(&format!("/contacts/{other}/tasks/{tid}"))
            .await
            .status,
        404,
        "a task is reached through its own contact only"
    );
    let r = api
        .patch(
            &format!("/contacts/{cid}/tasks/{tid}"),
            json!({"done": true, "details": "v2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"]["done"], true);
    assert_eq!(r.json["data"]["name"], "Send quote");
    assert!(ms(&r.json["data"], "updated_at") > ms(&task, "updated_at"));

    // Notes.
    let r = api
        .post(
            &format!("/contacts/{cid}/notes"),
            json!({"text": "Met at the fair."}),
        )
        .await;
    assert_eq!(r.status, 201);
    let note = r.json["data"].clone();
    let nid = s(&note, "id").to_string();
    assert!(is_id(&nid, "nt_"));
    let r = api
        .patch(
            &format!("/contacts/{cid}/notes/{nid}"),
            json!({"text": "Edited."}),
        )
        .await;
    assert_eq!(r.json["data"]["text"], "Edited.");
    assert_eq!(
        api.get(&format!("/contacts/{cid}/notes")).await.json["data"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["text"],
        "Edited."
    );

    // Child writes leave the contact alone.
    assert_eq!(handle.contact(&cid).unwrap(), contact_before);

    // The global feeds show the changes since the mark.
    let r = api.get(&format!("/tasks?updated_since={mark}")).await;
    assert_eq!(ids(r.json["data"].as_array().unwrap()), vec![tid.clone()]);
    let r = api.get(&format!("/notes?updated_since={mark}")).await;
    assert_eq!(ids(r.json["data"].as_array().unwrap()), vec![nid.clone()]);
    let (all_tasks, _) = api.walk("/tasks", 3, |_| {}).await;
    let expected: usize = contacts
        .iter()
        .map(|c| handle.tasks(s(c, "id")).len())
        .sum();
    assert_eq!(all_tasks.len(), expected);
    assert_eq!(
        ids(&all_tasks).into_iter().collect::<HashSet<_>>().len(),
        expected
    );
    assert_feed_order(&all_tasks, "updated_at");
    let (all_notes, _) = api.walk("/notes", 4, |_| {}).await;
    assert_feed_order(&all_notes, "updated_at");
    assert!(all_notes.len() > 1);

    // Deletes.
    assert_eq!(
        api.delete(&format!("/contacts/{cid}/tasks/{tid}"))
            .await
            .status,
        204
    );
    assert_eq!(
        api.get(&format!("/contacts/{cid}/tasks/{tid}"))
            .await
            .status,
        404
    );
    assert_eq!(
        api.delete(&format!("/contacts/{cid}/notes/{nid}"))
            .await
            .status,
        204
    );
    let r = api.get(&format!("/deleted?updated_since={mark}")).await;
    let tombs = r.json["data"].as_array().unwrap();
    assert_eq!(ids(tombs), vec![tid.clone(), nid.clone()]);
    assert_eq!(tombs[0]["entity"], "task");
    assert_eq!(tombs[0]["contact_id"], cid.as_str());
    assert_eq!(handle.contact(&cid).unwrap(), contact_before);

    // The handle's user actions go the same way.
    let t = handle
        .create_task_as_user(&other, json!({"name": "UI task", "done": true}))
        .unwrap();
    let t2 = handle
        .update_task_as_user(s(&t, "id"), json!({"done": false}))
        .unwrap();
    assert_eq!(t2["done"], false);
    handle.delete_task_as_user(s(&t, "id")).unwrap();
    assert!(handle.task(s(&t, "id")).is_none());
    assert!(handle
        .create_note_as_user(&other, json!({"text": ""}))
        .is_err());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_are_strictly_increasing_epoch_ms() {
    let (sim, handle, api) = start(options(3)).await;
    let id = s(&handle.contacts()[0], "id").to_string();
    let now = chrono::Utc::now().timestamp_millis();
    let mut last = handle.clock_ms();
    let mut stamps = Vec::new();
    // Many writes within the same millisecond: each still gets its own.
    for i in 0..40 {
        let r = if i % 2 == 0 {
            api.patch(&format!("/contacts/{id}"), json!({"n": i}))
                .await
                .json["data"]
                .clone()
        } else {
            handle
                .create_note_as_user(&id, json!({"text": format!("n{i}")}))
                .unwrap()
        };
        let at = ms(&r, "updated_at");
        assert!(at > last, "{at} after {last}");
        last = at;
        stamps.push(at);
    }
    // Epoch milliseconds, not seconds.
    assert!(
        (stamps[0] - now).abs() < 60_000,
        "{} vs now {now}",
        stamps[0]
    );
    // Seeded records are distinct and in the past.
    let mut seeded: Vec<i64> = handle
        .contacts()
        .iter()
        .map(|c| ms(c, "created_at"))
        .collect();
    seeded.sort();
    seeded.dedup();
    assert_eq!(seeded.len(), 3);
    assert!(seeded.iter().all(|t| *t <= now));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_answers_429_with_retry_after() {
    let (sim, handle, api) = start(AppSimOptions {
        rate_limit: Some(5),
        tokens: vec![TOKEN.into(), "other".into()],
        ..options(3)
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..8u32 {
        let r = api.get("/contacts?limit=1").await;
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        let remaining: u32 = r.header("x-ratelimit-remaining").unwrap().parse().unwrap();
        if r.status == 200 {
            assert_eq!(remaining, 4 - i);
        } else {
            assert_eq!(r.status, 429);
            assert_eq!(remaining, 0);
            assert_eq!(r.json["error"], "rate_limited");
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!(retry >= 1);
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);
    // Another token has its own budget; errors carry the headers too.
    let other = api.with_token(Some("other"));
    assert_eq!(other.get("/contacts").await.status, 200);
    let r = api.with_token(None).get("/contacts").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
    // Waiting Retry-After gets through (refused requests did not count).
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(api.get("/contacts").await.status, 200);
    let counters = handle.counters();
    assert_eq!(counters.too_many_requests, 3);
    assert_eq!(counters.count("GET", "/api/v1/contacts", 429), 3);
    assert!(counters.max_requests_per_second[TOKEN] >= 8);
    handle.set_rate_limit(None);
    let r = api.get("/contacts").await;
    assert!(r.header("x-ratelimit-limit").is_none());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_is_observable_by_a_client() {
    let (sim, handle, api) = start(options(3)).await;
    let path = format!("/contacts/{}", s(&handle.contacts()[0], "id"));

    check_faults(
        &handle,
        &api,
        &path,
        |r| assert_eq!(r.json["error"], "internal"),
        |r| assert_eq!(r.json["error"], "rate_limited"),
    )
    .await;

    handle.fail_next(FaultKind::TooManyRequests, 1);
    let r = api.get(&path).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1"));

    // A lost response: the PATCH is committed, the client sees an error.
    handle.fail_next(FaultKind::LoseResponse, 1);
    assert_eq!(api.get(&path).await.status, 200, "reads do not consume it");
    let lost = api
        .try_call(Method::PATCH, &path, Some(&json!({"company": "Committed"})))
        .await;
    assert!(lost.is_err(), "{lost:?}");
    assert_eq!(api.get(&path).await.json["data"]["company"], "Committed");

    assert_fault_counts(
        &handle.counters().faults,
        &[
            ("reset", 1),
            ("truncate", 1),
            ("html", 1),
            ("status_500", 1),
            ("status_503", 3),
            ("storm_429", 4),
            ("lose_response", 1),
        ],
    );
    let counters = handle.counters();
    assert_eq!(
        counters.count("GET", "/api/v1/contacts/{contact_id}", 0),
        1,
        "a reset is counted as status 0"
    );
    assert_eq!(
        counters.count("PATCH", "/api/v1/contacts/{contact_id}", 0),
        1
    );
    handle.reset_counters();
    assert_eq!(handle.counters().total_requests, 0);

    sim.shutdown().await;

    random_faults_follow_the_seed(|faults| async move {
        let (sim, handle, api) = start(AppSimOptions {
            faults,
            ..options(1)
        })
        .await;
        let path = format!("/contacts/{}", s(&handle.contacts()[0], "id"));
        (sim, api, path)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_response_is_lost_leaves_one_record() {
    let (sim, handle, api) = start(options(3)).await;
    let body = json!({"first_name": "Lost", "email_address": "lost@example.com"});
    handle.fail_next(FaultKind::LoseResponse, 1);
    let lost = api.try_call(Method::POST, "/contacts", Some(&body)).await;
    assert!(lost.is_err(), "the client sees no response: {lost:?}");
    let matching: Vec<Value> = handle
        .contacts()
        .into_iter()
        .filter(|c| c["email_address"] == "lost@example.com")
        .collect();
    assert_eq!(matching.len(), 1, "the write was committed once");
    let id = s(&matching[0], "id");
    // Recovery: a lookup finds it; a blind retry is refused with its id.
    let found = api.get("/contacts?email_address=lost%40example.com").await;
    assert_eq!(
        ids(found.json["data"].as_array().unwrap()),
        vec![id.to_string()]
    );
    let retry = api.post("/contacts", body).await;
    assert_eq!(retry.status, 409);
    assert_eq!(retry.json["existing_id"], id);
    assert_eq!(handle.contact_count(), 4);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_arrive_in_order_with_a_valid_signature() {
    let (url, received, _receiver_task) = receiver().await;
    let secret = "whsec-test-123";
    let (sim, handle, api) = start(AppSimOptions {
        webhook_url: Some(url),
        webhook_secret: secret.into(),
        ..options(3)
    })
    .await;
    assert_eq!(handle.webhook_secret(), secret);
    let c = api
        .post(
            "/contacts",
            json!({"first_name": "Hook", "email_address": "hook@example.com"}),
        )
        .await
        .json["data"]
        .clone();
    let cid = s(&c, "id").to_string();
    api.patch(&format!("/contacts/{cid}"), json!({"last_name": "Line"}))
        .await;
    let t = handle
        .create_task_as_user(&cid, json!({"name": "Ring"}))
        .unwrap();
    let tid = s(&t, "id").to_string();
    let n = api
        .post(&format!("/contacts/{cid}/notes"), json!({"text": "hello"}))
        .await
        .json["data"]
        .clone();
    let nid = s(&n, "id").to_string();
    handle
        .update_task_as_user(&tid, json!({"done": true}))
        .unwrap();
    handle
        .update_note_as_user(&nid, json!({"text": "bye"}))
        .unwrap();
    api.delete(&format!("/contacts/{cid}")).await;
    assert!(handle.flush_webhooks(Duration::from_secs(5)).await);

    let expected = [
        ("contact.created", &cid),
        ("contact.updated", &cid),
        ("task.created", &tid),
        ("note.created", &nid),
        ("task.updated", &tid),
        ("note.updated", &nid),
        ("task.deleted", &tid),
        ("note.deleted", &nid),
        ("contact.deleted", &cid),
    ];
    let got = received.all();
    assert_eq!(got.len(), expected.len());
    let now = chrono::Utc::now().timestamp();
    let mut delivery_ids = HashSet::new();
    let mut last_at = 0;
    for ((headers, body), (event, id)) in got.iter().zip(expected) {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(
            headers["x-app-signature"].to_str().unwrap(),
            want,
            "signature over the raw body"
        );
        let ts: i64 = headers["x-app-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((ts - now).abs() < 60, "epoch seconds: {ts}");
        let v: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event"], event, "{v}");
        assert_eq!(v["entity"], event.split('.').next().unwrap());
        assert_eq!(v["id"], id.as_str());
        if v["entity"] == "contact" {
            assert!(v.get("contact_id").is_none());
        } else {
            assert_eq!(v["contact_id"], cid.as_str());
        }
        let at = ms(&v, "occurred_at");
        assert!(at > last_at, "occurred_at increases");
        last_at = at;
        assert!(delivery_ids.insert(s(&v, "delivery_id").to_string()));
    }
    let stats = handle.webhook_stats();
    assert_eq!((stats.delivered, stats.failed, stats.pending), (9, 0, 0));

    // A receiver that is down: failures are counted, nothing blocks.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    handle.set_webhook_url(Some(format!("http://{closed}/hook")));
    handle
        .update_contact_as_user(s(&handle.contacts()[0], "id"), json!({"x": 1}))
        .unwrap();
    assert!(handle.flush_webhooks(Duration::from_secs(5)).await);
    assert_eq!(handle.webhook_stats().failed, 1);
    handle.set_webhook_url(None);
    handle
        .update_contact_as_user(s(&handle.contacts()[0], "id"), json!({"x": 2}))
        .unwrap();
    assert_eq!(handle.webhook_stats().queued, 10);
    sim.shutdown().await;
}

/// A contact with its tasks and notes.
type Seeded = (Value, Vec<Value>, Vec<Value>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_data() {
    let anchor = chrono::Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
    let snapshot = |h: &AppSimHandle| {
        h.contacts()
            .into_iter()
            .map(|c| {
                let id = s(&c, "id").to_string();
                (c, h.tasks(&id), h.notes(&id))
            })
            .collect::<Vec<_>>()
    };
    let mut runs = Vec::new();
    for seed in [7, 7, 8] {
        let sim = AppSim::start(AppSimOptions {
            seed,
            contacts: 40,
            seed_anchor: Some(anchor),
            ..options(0)
        })
        .await
        .unwrap();
        runs.push(snapshot(&sim.handle()));
        sim.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0], runs[2]);

    let data = &runs[0];
    assert_eq!(data.len(), 40);
    let count = |f: &dyn Fn(&Seeded) -> bool| data.iter().filter(|x| f(x)).count();
    assert!(
        count(&|(c, _, _)| c["email_address"].is_null()) > 0,
        "some without email"
    );
    assert!(
        count(&|(c, _, _)| c["mobile"].is_null()) > 0,
        "some without mobile"
    );
    assert!(count(&|(_, t, _)| !t.is_empty()) > 0, "some with tasks");
    assert!(count(&|(_, _, n)| !n.is_empty()) > 0, "some with notes");
    assert!(count(&|(c, _, _)| !c["labels"].as_array().unwrap().is_empty()) > 0);
    let anchor_ms = anchor.timestamp_millis();
    let mut stamps = HashSet::new();
    for (c, tasks, notes) in data {
        assert!(is_id(s(c, "id"), "ct_"));
        if let Some(m) = c["mobile"].as_str() {
            assert!(m.starts_with('+') && m[1..].chars().all(|d| d.is_ascii_digit()));
        }
        for r in std::iter::once(c).chain(tasks).chain(notes) {
            assert!(ms(r, "created_at") < ms(r, "updated_at"));
            assert!(ms(r, "created_at") >= anchor_ms - 366 * 86_400_000);
            assert!(stamps.insert(ms(r, "updated_at")), "distinct updated_at");
        }
        for t in tasks {
            assert!(is_id(s(t, "id"), "tk_"));
            assert!(chrono::DateTime::parse_from_rfc3339(s(t, "due_on")).is_ok());
        }
    }
    // Seeded contacts are served with the same shape as created ones.
    let (sim, handle, api) = start(options(1)).await;
    let id = s(&handle.contacts()[0], "id").to_string();
    let served = api.get(&format!("/contacts/{id}")).await.json["data"].clone();
    let keys: BTreeSet<&String> = served.as_object().unwrap().keys().collect();
    let want: BTreeSet<String> = [
        "id",
        "first_name",
        "last_name",
        "email_address",
        "mobile",
        "company",
        "labels",
        "created_at",
        "updated_at",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    assert_eq!(keys, want.iter().collect());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_banner_names_the_url_tokens_and_secret_source() {
    use clap::Parser;
    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: AppSimArgs,
    }
    let args = Wrapper::try_parse_from([
        "sim",
        "--contacts",
        "4",
        "--token",
        "cli-one",
        "--token",
        "cli-two",
        "--webhook-secret",
        "cli-secret",
        "--rate-limit",
        "7",
    ])
    .unwrap()
    .args;
    let (sim, banner) = start_from_args(&args).await.unwrap();
    let url = format!("http://127.0.0.1:{}/api/v1", sim.addr().port());
    assert!(
        banner.starts_with(&format!("app simulator listening on {url}\n")),
        "{banner}"
    );
    for line in [
        "contacts 4 seed 1",
        "token cli-one",
        "token cli-two",
        "rate limit 7 requests per second per token",
        "webhooks off (no --webhook-url)",
        "webhook secret cli-secret (from --webhook-secret)",
    ] {
        assert!(banner.lines().any(|l| l == line), "{line:?} in\n{banner}");
    }
    let r = Api::new(&url, "cli-two").get("/contacts").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["data"].as_array().unwrap().len(), 4);
    assert_eq!(r.header("x-ratelimit-limit"), Some("7"));
    sim.shutdown().await;

    let defaults = Wrapper::try_parse_from(["sim"]).unwrap().args;
    let (sim, banner) = start_from_args(&defaults).await.unwrap();
    assert!(banner.contains("token app-sim-token\n"), "{banner}");
    assert!(banner.contains("webhook secret app-sim-webhook-secret (default)\n"));
    assert!(banner.contains("contacts 25 seed 1\n"));
    sim.shutdown().await;
}
