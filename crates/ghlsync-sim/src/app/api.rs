//! Handlers of the `/api/v1` routes (the contract is listed in the module
//! docs of [`super`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{json, Value};

use super::error::{json_response, ApiError};
use super::model::{normalize_mobile, str_field, validate_contact, Child, FeedQuery, Page, Record};
use super::server::{Shared, API_PREFIX};

type Sim = State<Arc<Shared>>;
type Result<T = Response> = std::result::Result<T, ApiError>;

/// Page size of the change feeds when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` accepted.
pub const MAX_LIMIT: usize = 200;

const CURSOR_VERSION: &str = "c1";

fn encode_cursor(at: i64, id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}:{at}:{id}"))
}

fn decode_cursor(text: &str) -> Option<(i64, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, ':');
    if parts.next()? != CURSOR_VERSION {
        return None;
    }
    let at = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_string();
    Some((at, id))
}

fn parse_json(body: &Bytes) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(vec![
            "body: expected a JSON object, got nothing".into(),
        ]));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(vec![format!("body: invalid JSON: {e}")]))
}

fn query_map(query: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `updated_since`, `limit` and `cursor`, every problem reported.
fn feed_query(params: &HashMap<String, String>, errors: &mut Vec<String>) -> FeedQuery {
    let mut query = FeedQuery {
        limit: DEFAULT_LIMIT,
        ..FeedQuery::default()
    };
    if let Some(text) = params.get("updated_since") {
        match text.trim().parse::<i64>() {
            Ok(ms) => query.since = Some(ms),
            Err(_) => errors.push(format!(
                "updated_since: {text:?} is not epoch milliseconds (an integer)"
            )),
        }
    }
    if let Some(text) = params.get("limit") {
        match text.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => query.limit = n,
            _ => errors.push(format!(
                "limit: {text:?} is not an integer from 1 to {MAX_LIMIT}"
            )),
        }
    }
    if let Some(text) = params.get("cursor") {
        match decode_cursor(text) {
            Some(after) => query.after = Some(after),
            None => errors.push("cursor: not a cursor this API returned".into()),
        }
    }
    query
}

/// `{"data": [...], "next_cursor": ...}`; the cursor is the last item's
/// `(time_key, id)`.
fn feed_response(page: Page, time_key: &str) -> Response {
    let next_cursor = match page.items.last() {
        Some(last) if page.more => {
            let at = last.get(time_key).and_then(Value::as_i64).unwrap_or(0);
            json!(encode_cursor(at, str_field(last, "id").unwrap_or_default()))
        }
        _ => Value::Null,
    };
    let data: Vec<Value> = page.items.into_iter().map(Value::Object).collect();
    json_response(
        StatusCode::OK,
        &json!({"data": data, "next_cursor": next_cursor}),
    )
}

fn data(status: StatusCode, record: Record) -> Response {
    json_response(status, &json!({"data": Value::Object(record)}))
}

fn created(record: Record, location: String) -> Response {
    let mut response = data(StatusCode::CREATED, record);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------
// Contacts.

/// `GET /api/v1/contacts?updated_since=&limit=&cursor=&email_address=&mobile=`
///
/// The change feed of contacts, by `(updated_at, id)` ascending;
/// `updated_since` is inclusive. `email_address` (exact, case-insensitive)
/// and `mobile` (E.164 after removing spaces, dashes, dots and
/// parentheses; a leading `+` decoded as a space is tolerated) filter it.
/// An empty filter value is refused (422) rather than matching everything.
pub(crate) async fn list_contacts(State(sim): Sim, RawQuery(raw): RawQuery) -> Result {
    let params = query_map(raw);
    let mut errors = Vec::new();
    let query = feed_query(&params, &mut errors);
    let email = params.get("email_address").map(|e| e.trim().to_lowercase());
    if email.as_deref() == Some("") {
        errors.push("email_address: an empty filter matches nothing; omit it instead".into());
    }
    let mobile = match params.get("mobile") {
        None => None,
        Some(text) => {
            let text = text.trim();
            let text = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
                format!("+{text}")
            } else {
                text.to_string()
            };
            match normalize_mobile(&text) {
                Some(m) => Some(m),
                None => {
                    errors.push(format!("mobile: {text:?} is not an E.164 number"));
                    None
                }
            }
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let page = sim.read(|db| {
        db.contacts.page(&query, |c| {
            email.as_deref().is_none_or(|e| {
                str_field(c, "email_address").is_some_and(|x| x.to_lowercase() == e)
            }) && mobile
                .as_deref()
                .is_none_or(|m| str_field(c, "mobile") == Some(m))
        })
    });
    Ok(feed_response(page, "updated_at"))
}

/// `GET /api/v1/contacts/{contact_id}` → `{"data": contact}`.
pub(crate) async fn get_contact(State(sim): Sim, Path(id): Path<String>) -> Result {
    let record = sim.read(|db| db.contact(&id).cloned())?;
    Ok(data(StatusCode::OK, record))
}

/// `POST /api/v1/contacts` → 201 `{"data": contact}` with `Location`; an
/// email already used → 409 `duplicate` with `existing_id`.
pub(crate) async fn create_contact(State(sim): Sim, body: Bytes) -> Result {
    let fields = validate_contact(&parse_json(&body)?, true).map_err(ApiError::invalid)?;
    let record = sim.write(|db| db.create_contact(&fields))?;
    let location = format!(
        "{API_PREFIX}/contacts/{}",
        str_field(&record, "id").unwrap_or_default()
    );
    Ok(created(record, location))
}

/// `PATCH /api/v1/contacts/{contact_id}` (partial; `null` clears) →
/// `{"data": contact}`; taking another contact's email → 409.
pub(crate) async fn update_contact(State(sim): Sim, Path(id): Path<String>, body: Bytes) -> Result {
    let value = parse_json(&body)?;
    // 404 before 422: the record's existence is checked first.
    sim.read(|db| db.contact(&id).map(|_| ()))?;
    let fields = validate_contact(&value, false).map_err(ApiError::invalid)?;
    let record = sim.write(|db| db.update_contact(&id, &fields))?;
    Ok(data(StatusCode::OK, record))
}

/// `DELETE /api/v1/contacts/{contact_id}` → 204, with its tasks and notes.
pub(crate) async fn delete_contact(State(sim): Sim, Path(id): Path<String>) -> Result {
    sim.write(|db| db.delete_contact(&id))?;
    Ok(no_content())
}

// ---------------------------------------------------------------------------
// Tasks and notes.

fn list_children(sim: &Shared, contact_id: &str, child: Child) -> Result {
    let records = sim.read(|db| db.children(contact_id, child))?;
    let data: Vec<Value> = records.into_iter().map(Value::Object).collect();
    Ok(json_response(StatusCode::OK, &json!({"data": data})))
}

fn get_child(sim: &Shared, contact_id: &str, child: Child, id: &str) -> Result {
    let record = sim.read(|db| db.child(contact_id, child, id).cloned())?;
    Ok(data(StatusCode::OK, record))
}

fn create_child(sim: &Shared, contact_id: &str, child: Child, body: &Bytes) -> Result {
    let value = parse_json(body)?;
    sim.read(|db| db.contact(contact_id).map(|_| ()))?;
    let fields = child.validate(&value, true).map_err(ApiError::invalid)?;
    let record = sim.write(|db| db.create_child(contact_id, child, &fields))?;
    let location = format!(
        "{API_PREFIX}/contacts/{contact_id}/{}s/{}",
        child.entity().name(),
        str_field(&record, "id").unwrap_or_default()
    );
    Ok(created(record, location))
}

fn update_child(sim: &Shared, contact_id: &str, child: Child, id: &str, body: &Bytes) -> Result {
    let value = parse_json(body)?;
    sim.read(|db| db.child(contact_id, child, id).map(|_| ()))?;
    let fields = child.validate(&value, false).map_err(ApiError::invalid)?;
    let record = sim.write(|db| db.update_child(contact_id, child, id, &fields))?;
    Ok(data(StatusCode::OK, record))
}

fn delete_child(sim: &Shared, contact_id: &str, child: Child, id: &str) -> Result {
    sim.write(|db| db.delete_child(contact_id, child, id))?;
    Ok(no_content())
}

fn child_feed(sim: &Shared, raw: Option<String>, child: Child) -> Result {
    let mut errors = Vec::new();
    let query = feed_query(&query_map(raw), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let page = sim.read(|db| match child {
        Child::Task => db.tasks.page(&query, |_| true),
        Child::Note => db.notes.page(&query, |_| true),
    });
    Ok(feed_response(page, "updated_at"))
}

/// `GET /api/v1/contacts/{contact_id}/tasks` → `{"data": [task]}` in
/// creation order (no paging).
pub(crate) async fn list_tasks(State(sim): Sim, Path(contact_id): Path<String>) -> Result {
    list_children(&sim, &contact_id, Child::Task)
}

/// `POST /api/v1/contacts/{contact_id}/tasks` → 201 `{"data": task}`.
pub(crate) async fn create_task(
    State(sim): Sim,
    Path(contact_id): Path<String>,
    body: Bytes,
) -> Result {
    create_child(&sim, &contact_id, Child::Task, &body)
}

/// `GET /api/v1/contacts/{contact_id}/tasks/{id}` → `{"data": task}`.
pub(crate) async fn get_task(State(sim): Sim, Path((c, id)): Path<(String, String)>) -> Result {
    get_child(&sim, &c, Child::Task, &id)
}

/// `PATCH /api/v1/contacts/{contact_id}/tasks/{id}` → `{"data": task}`.
pub(crate) async fn update_task(
    State(sim): Sim,
    Path((c, id)): Path<(String, String)>,
    body: Bytes,
) -> Result {
    update_child(&sim, &c, Child::Task, &id, &body)
}

/// `DELETE /api/v1/contacts/{contact_id}/tasks/{id}` → 204.
pub(crate) async fn delete_task(State(sim): Sim, Path((c, id)): Path<(String, String)>) -> Result {
    delete_child(&sim, &c, Child::Task, &id)
}

/// `GET /api/v1/contacts/{contact_id}/notes` → `{"data": [note]}` in
/// creation order (no paging).
pub(crate) async fn list_notes(State(sim): Sim, Path(contact_id): Path<String>) -> Result {
    list_children(&sim, &contact_id, Child::Note)
}

/// `POST /api/v1/contacts/{contact_id}/notes` → 201 `{"data": note}`.
pub(crate) async fn create_note(
    State(sim): Sim,
    Path(contact_id): Path<String>,
    body: Bytes,
) -> Result {
    create_child(&sim, &contact_id, Child::Note, &body)
}

/// `GET /api/v1/contacts/{contact_id}/notes/{id}` → `{"data": note}`.
pub(crate) async fn get_note(State(sim): Sim, Path((c, id)): Path<(String, String)>) -> Result {
    get_child(&sim, &c, Child::Note, &id)
}

/// `PATCH /api/v1/contacts/{contact_id}/notes/{id}` → `{"data": note}`.
pub(crate) async fn update_note(
    State(sim): Sim,
    Path((c, id)): Path<(String, String)>,
    body: Bytes,
) -> Result {
    update_child(&sim, &c, Child::Note, &id, &body)
}

/// `DELETE /api/v1/contacts/{contact_id}/notes/{id}` → 204.
pub(crate) async fn delete_note(State(sim): Sim, Path((c, id)): Path<(String, String)>) -> Result {
    delete_child(&sim, &c, Child::Note, &id)
}

/// `GET /api/v1/tasks?updated_since=&limit=&cursor=`: the change feed of
/// every task, paged like contacts.
pub(crate) async fn task_feed(State(sim): Sim, RawQuery(raw): RawQuery) -> Result {
    child_feed(&sim, raw, Child::Task)
}

/// `GET /api/v1/notes?updated_since=&limit=&cursor=`: the change feed of
/// every note, paged like contacts.
pub(crate) async fn note_feed(State(sim): Sim, RawQuery(raw): RawQuery) -> Result {
    child_feed(&sim, raw, Child::Note)
}

/// `GET /api/v1/deleted?updated_since=&limit=&cursor=`: tombstones
/// `{entity, id, contact_id, deleted_at}` by `(deleted_at, id)`;
/// `updated_since` compares with `deleted_at`.
pub(crate) async fn deleted_feed(State(sim): Sim, RawQuery(raw): RawQuery) -> Result {
    let mut errors = Vec::new();
    let query = feed_query(&query_map(raw), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let page = sim.read(|db| db.deleted_page(&query));
    Ok(feed_response(page, "deleted_at"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(1_717_000_000_123, "ct_abc");
        assert_eq!(
            decode_cursor(&c),
            Some((1_717_000_000_123, "ct_abc".into()))
        );
        assert_eq!(decode_cursor("nonsense!"), None);
        assert_eq!(decode_cursor(&encode_cursor(1, "x")[1..]), None);
    }
}
