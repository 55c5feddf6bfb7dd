//! Drift from the official contract fails CI: every request the GHL client
//! can build is captured by a recording server and checked against
//! `spec/ghl-api/apps/contacts.json`, the vendored official spec (the operation exists for that
//! method and path, required headers and query parameters are present, and
//! the body matches the request schema).

#[path = "common/openapi.rs"]
mod openapi;

#[path = "common/client_inputs.rs"]
mod client_inputs;

use client_inputs::Inputs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method};
use axum::Json;
use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use ghl_sync::connector::ghl::SearchQuery;
use ghl_sync::connector::http::RetryPolicy;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

/// Answers every call with one body that satisfies every decoder of the
/// client, and records the request.
async fn record(
    State(log): State<Log>,
    method: Method,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Json<Value> {
    let query = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    log.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: serde_json::from_slice(&body).ok(),
    });
    Json(json!({
        "contact": {"id": "c0000000000000000001", "email": "a@example.com"},
        "contacts": [],
        "task": {"id": "t0000000000000000001"},
        "tasks": [],
        "note": {"id": "n0000000000000000001"},
        "notes": [],
        "events": [],
        "tags": ["vip"],
        "new": false,
        "meta": {},
        "succeded": true
    }))
}

#[tokio::test]
async fn every_request_the_client_builds_matches_the_official_spec() {
    let log: Log = Arc::default();
    let app = axum::Router::new().fallback(record).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let client = client_inputs::client(&base, RetryPolicy::default(), Duration::from_secs(5));
    let Inputs {
        contact: c,
        task_id: t,
        note_id: n,
        fields,
        task,
        note,
        tags,
    } = Inputs::new();

    client.get_contact(c).await.unwrap();
    client.create_contact(&fields).await.unwrap();
    client.upsert_contact(&fields).await.unwrap();
    client.update_contact(c, &fields).await.unwrap();
    client.delete_contact(c).await.unwrap();
    client
        .find_duplicate(Some("ada@example.com"), Some("+14155550100"))
        .await
        .unwrap();
    let _: Vec<Vec<_>> = client
        .search_contacts(SearchQuery::updated_between(
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc::now(),
            100,
        ))
        .try_collect()
        .await
        .unwrap();
    let _: Vec<Vec<_>> = client.list_contacts(100).try_collect().await.unwrap();
    let _: Vec<Vec<_>> = client
        .list_business_contacts("b0000000000000000001", 100)
        .try_collect()
        .await
        .unwrap();
    client.list_tasks(c).await.unwrap();
    client.get_task(c, t).await.unwrap();
    client.create_task(c, &task).await.unwrap();
    client.update_task(c, t, &task).await.unwrap();
    client.complete_task(c, t, true).await.unwrap();
    client.delete_task(c, t).await.unwrap();
    client.list_notes(c).await.unwrap();
    client.get_note(c, n).await.unwrap();
    client.create_note(c, &note).await.unwrap();
    client.update_note(c, n, &note).await.unwrap();
    client.delete_note(c, n).await.unwrap();
    client.list_appointments(c).await.unwrap();
    client.add_tags(c, &tags).await.unwrap();
    client.remove_tags(c, &tags).await.unwrap();
    server.abort();

    let spec = openapi::contacts();
    let recorded = log.lock().unwrap().clone();
    let mut problems = Vec::new();
    let mut templates = std::collections::BTreeSet::new();
    for request in &recorded {
        let Some(operation) = spec.operation(&request.method, &request.path) else {
            problems.push(format!(
                "{} {}: no such operation in contacts.json",
                request.method, request.path
            ));
            continue;
        };
        templates.insert(format!("{} {}", request.method, operation.template));
        if let Err(missing) = operation.check_params(&request.query, &request.headers) {
            problems.extend(
                missing
                    .into_iter()
                    .map(|m| format!("{} {}: {m}", request.method, request.path)),
            );
        }
        let version = request
            .headers
            .iter()
            .find(|(k, _)| k == "version")
            .map(|(_, v)| v.as_str());
        if version != Some("2021-07-28") {
            problems.push(format!(
                "{} {}: Version header is {version:?}",
                request.method, request.path
            ));
        }
        if let Some(body) = &request.body {
            if let Err(errors) = operation.validate_request_body(body) {
                problems.extend(errors);
            }
        }
    }
    assert!(
        problems.is_empty(),
        "contract violations:\n{}",
        problems.join("\n")
    );
    // The sixteen endpoints of Scopes.md plus search, upsert, duplicate
    // lookup, tag removal and notes create/update/delete.
    assert_eq!(templates.len(), 23, "operations exercised: {templates:#?}");
}

/// The location-wide task search (`connector/ghl/task_search.rs`) against
/// `spec/ghl-api/apps/locations.json`, the vendored official spec of that
/// operation: the path, the `Version` header, and a body that matches
/// `TaskSearchParamsDto`.
#[tokio::test]
async fn the_task_search_matches_the_official_spec() {
    let log: Log = Arc::default();
    let app = axum::Router::new().fallback(record).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = client_inputs::client(&base, RetryPolicy::default(), Duration::from_secs(5));
    client
        .search_tasks(&["c0000000000000000001".to_owned()])
        .await
        .unwrap();
    server.abort();

    let spec = openapi::Spec::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/spec/ghl-api/apps/locations.json"
    ))
    .unwrap();
    let recorded = log.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1, "one page: the answer holds no task");
    let request = &recorded[0];
    let operation = spec
        .operation(&request.method, &request.path)
        .unwrap_or_else(|| panic!("{} {}: not in locations.json", request.method, request.path));
    operation
        .check_params(&request.query, &request.headers)
        .unwrap();
    let body = request.body.as_ref().expect("a JSON body");
    operation.validate_request_body(body).unwrap();
    assert_eq!(body["contactId"], json!(["c0000000000000000001"]));
}
