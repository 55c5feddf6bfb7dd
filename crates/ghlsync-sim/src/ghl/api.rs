//! Handlers of the `/contacts` routes.
//!
//! Choices where the spec is silent (each documented on its handler):
//! - An unknown contact, task or note id is answered 400 ("Contact not
//!   found", "Task not found", "Note not found"): the spec lists 400 and
//!   no 404 for these routes, and the live API answers 400.
//! - A record of another location is answered 403 "The token does not
//!   have access to this location.".
//! - Validation failures are 422 with a list of messages (400 for
//!   `POST /contacts/search`, whose spec lists no 422); a body that is not
//!   JSON is 400.
//!
//! Every record goes out through `db.record_shapes` with the shape of its
//! answer's schema (see [`super::shapes`]): trimmed in the default
//! spec-strict mode, whole in generous mode.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::error::{trace_id, ApiError, SimError};
use super::model::{
    now_ms, validate_contact, validate_note, validate_tags, validate_task, Child, Mode,
};
use super::query::{self, ListParams, Search, LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT};
use super::server::{ok, AuthCtx, Shared};
use super::shapes::{Shape, CONTACT_BY_ID, CREATED_CONTACT, EVENT, LISTED_CONTACT, NOTE, TASK};

type Sim = State<Arc<Shared>>;
type Auth = Extension<AuthCtx>;
type Result<T = Response> = std::result::Result<T, ApiError>;

/// The source recorded on contacts created through the API.
const API_SOURCE: &str = "public api";

fn parse_json(body: &Bytes) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))
}

fn query_map(query: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn require_location_param(params: &HashMap<String, String>) -> Result<String> {
    match params.get("locationId") {
        Some(l) if !l.is_empty() => Ok(l.clone()),
        _ => Err(ApiError::unprocessable(vec![
            "locationId should not be empty".into(),
        ])),
    }
}

fn parse_limit(
    params: &HashMap<String, String>,
    name: &str,
    default: u64,
    max: u64,
    errors: &mut Vec<String>,
) -> usize {
    match params.get(name) {
        None => default as usize,
        Some(text) => match text.parse::<u64>() {
            Ok(n) if n > max => {
                errors.push(format!("{name} must not be greater than {max}"));
                default as usize
            }
            Ok(n) if n >= 1 => n as usize,
            _ => {
                errors.push(format!("{name} must not be less than 1"));
                default as usize
            }
        },
    }
}

/// The contact's location, checked against the token.
fn contact_in_scope(sim: &Shared, auth: &AuthCtx, contact_id: &str) -> Result<()> {
    let location = sim.read(|db| db.contact_location(contact_id).map(String::from))?;
    auth.check_location(&location)
}

// --- contacts --------------------------------------------------------------

/// `GET /contacts/{contactId}` → `{contact}`.
pub(crate) async fn get_contact(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(id): Path<String>,
) -> Result {
    let contact = sim.read(|db| -> Result<_> {
        let contact = db.contact(&id)?;
        auth.check_location(contact.data["locationId"].as_str().unwrap_or_default())?;
        Ok(db.record_shapes.apply(contact.data.clone(), &CONTACT_BY_ID))
    })?;
    Ok(ok(StatusCode::OK, json!({"contact": contact})))
}

/// `POST /contacts/` → 201 `{contact}`; a duplicate email or phone is 400
/// "This location does not allow duplicated contacts." (no contact named).
pub(crate) async fn create_contact(State(sim): Sim, Extension(auth): Auth, body: Bytes) -> Result {
    let value = parse_json(&body)?;
    let input = validate_contact(&value, Mode::Create).map_err(ApiError::unprocessable)?;
    let location = input.location_id.clone().unwrap_or_default();
    auth.check_location(&location)?;
    let contact = sim.write(|db| {
        let contact = db.create_contact(&location, &input, API_SOURCE)?;
        Ok::<_, SimError>(db.record_shapes.apply(contact, &CREATED_CONTACT))
    })?;
    Ok(ok(StatusCode::CREATED, json!({"contact": contact})))
}

/// `PUT /contacts/{contactId}` → `{succeded: true, contact}`.
pub(crate) async fn update_contact(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result {
    let value = parse_json(&body)?;
    let input = validate_contact(&value, Mode::Update).map_err(ApiError::unprocessable)?;
    let contact = sim.write(|db| -> Result<_> {
        auth.check_location(db.contact_location(&id)?)?;
        let contact = db.update_contact(&id, &input)?;
        Ok(db.record_shapes.apply(contact, &CONTACT_BY_ID))
    })?;
    Ok(ok(
        StatusCode::OK,
        json!({"succeded": true, "contact": contact}),
    ))
}

/// `DELETE /contacts/{contactId}` → `{succeded: true}`; its tasks, notes
/// and appointments go with it.
pub(crate) async fn delete_contact(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(id): Path<String>,
) -> Result {
    sim.write(|db| -> Result<_> {
        auth.check_location(db.contact_location(&id)?)?;
        Ok(db.delete_contact(&id)?)
    })?;
    Ok(ok(StatusCode::OK, json!({"succeded": true})))
}

/// `POST /contacts/upsert` → 200 `{new, contact, traceId}`: matches by
/// email first, then phone; updates the match or creates.
pub(crate) async fn upsert_contact(State(sim): Sim, Extension(auth): Auth, body: Bytes) -> Result {
    let mut value = parse_json(&body)?;
    let create_new = value
        .as_object_mut()
        .and_then(|o| o.remove("createNewIfDuplicateAllowed"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let input = validate_contact(&value, Mode::Create).map_err(ApiError::unprocessable)?;
    let location = input.location_id.clone().unwrap_or_default();
    auth.check_location(&location)?;
    let (new, contact) = sim.write(|db| {
        let (new, contact) = db.upsert_contact(&location, &input, create_new, API_SOURCE)?;
        Ok::<_, SimError>((new, db.record_shapes.apply(contact, &CONTACT_BY_ID)))
    })?;
    Ok(ok(
        StatusCode::OK,
        json!({"new": new, "contact": contact, "traceId": trace_id()}),
    ))
}

/// `GET /contacts/search/duplicate?locationId&email|number` →
/// `{contact: <contact or null>}`; email is tried first.
pub(crate) async fn duplicate(
    State(sim): Sim,
    Extension(auth): Auth,
    RawQuery(q): RawQuery,
) -> Result {
    let params = query_map(q);
    let location = require_location_param(&params)?;
    auth.check_location(&location)?;
    let email = params
        .get("email")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let number = params
        .get("number")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let contact = sim.read(|db| -> Result<_> {
        db.location(&location)?;
        let found = db.find_duplicate(&location, email.as_deref(), number.as_deref(), None);
        Ok(match found {
            // No answer schema; a search answer (see `LISTED_CONTACT`).
            Some((id, _)) => Value::Object(
                db.record_shapes
                    .apply(db.contact(&id)?.data.clone(), &LISTED_CONTACT),
            ),
            None => Value::Null,
        })
    })?;
    Ok(ok(
        StatusCode::OK,
        json!({"contact": contact, "traceId": trace_id()}),
    ))
}

/// `POST /contacts/search` (see [`Search`]) → `{contacts, total}`.
pub(crate) async fn search_contacts(State(sim): Sim, Extension(auth): Auth, body: Bytes) -> Result {
    let value = parse_json(&body)?;
    let search =
        Search::parse(&value).map_err(|errors| ApiError::new(StatusCode::BAD_REQUEST, errors))?;
    auth.check_location(&search.location_id)?;
    let result = sim.read(|db| -> Result<_> {
        // The index lag of the field notes (see `SimOptions::search_lag`).
        let search = match db.search_lag_ms {
            0 => search,
            lag => search.visible_until(now_ms().saturating_sub(lag)),
        };
        let mut result = search.run(db.location(&search.location_id)?);
        db.record_shapes.apply_to_search(&mut result);
        Ok(result)
    })?;
    Ok(ok(StatusCode::OK, result))
}

/// `GET /contacts/` (deprecated): see [`query::list`].
pub(crate) async fn list_contacts(
    State(sim): Sim,
    Extension(auth): Auth,
    RawQuery(q): RawQuery,
) -> Result {
    let params = query_map(q);
    let location = require_location_param(&params)?;
    let mut errors = Vec::new();
    let limit = parse_limit(
        &params,
        "limit",
        LIST_DEFAULT_LIMIT,
        LIST_MAX_LIMIT,
        &mut errors,
    );
    let start_after = match params.get("startAfter").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match text.parse::<i64>() {
            Ok(ms) => Some(ms),
            Err(_) => {
                errors.push("startAfter must be a number (epoch milliseconds)".into());
                None
            }
        },
    };
    if !errors.is_empty() {
        return Err(ApiError::unprocessable(errors));
    }
    auth.check_location(&location)?;
    let list = ListParams {
        limit,
        start_after,
        start_after_id: params
            .get("startAfterId")
            .filter(|s| !s.is_empty())
            .cloned(),
        query: params.get("query").filter(|s| !s.is_empty()).cloned(),
    };
    let result = sim.read(|db| -> Result<_> {
        let mut result = query::list(db.location(&location)?, &list, &sim.core.base_url);
        db.record_shapes
            .apply_to_list(&mut result, "contacts", &LISTED_CONTACT);
        Ok(result)
    })?;
    Ok(ok(StatusCode::OK, result))
}

/// `GET /contacts/business/{businessId}?locationId&skip&limit&query` →
/// `{contacts, count}`.
pub(crate) async fn by_business(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(business): Path<String>,
    RawQuery(q): RawQuery,
) -> Result {
    let params = query_map(q);
    let location = require_location_param(&params)?;
    let mut errors = Vec::new();
    let limit = parse_limit(
        &params,
        "limit",
        LIST_DEFAULT_LIMIT,
        LIST_MAX_LIMIT,
        &mut errors,
    );
    let skip = match params.get("skip").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            errors.push("skip must be a non-negative integer".into());
            0
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::unprocessable(errors));
    }
    auth.check_location(&location)?;
    let query = params.get("query").filter(|s| !s.is_empty()).cloned();
    let result = sim.read(|db| -> Result<_> {
        let mut result = query::by_business(
            db.location(&location)?,
            &business,
            skip,
            limit,
            query.as_deref(),
        );
        db.record_shapes
            .apply_to_list(&mut result, "contacts", &LISTED_CONTACT);
        Ok(result)
    })?;
    Ok(ok(StatusCode::OK, result))
}

/// `POST /contacts/{contactId}/tags` → 201 `{tags}` (the resulting tags).
pub(crate) async fn add_tags(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result {
    change_tags(sim, auth, id, body, true).await
}

/// `DELETE /contacts/{contactId}/tags` → 200 `{tags}` (the remaining tags).
pub(crate) async fn remove_tags(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result {
    change_tags(sim, auth, id, body, false).await
}

async fn change_tags(
    sim: Arc<Shared>,
    auth: AuthCtx,
    id: String,
    body: Bytes,
    add: bool,
) -> Result {
    let value = parse_json(&body)?;
    let tags = validate_tags(&value).map_err(ApiError::unprocessable)?;
    let tags = sim.write(|db| -> Result<_> {
        auth.check_location(db.contact_location(&id)?)?;
        Ok(db.change_tags(&id, &tags, add)?)
    })?;
    let status = if add {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(ok(status, json!({"tags": tags})))
}

// --- tasks, notes, appointments --------------------------------------------

fn list_children(
    sim: &Shared,
    auth: &AuthCtx,
    contact_id: &str,
    kind: Child,
) -> Result<Vec<Value>> {
    contact_in_scope(sim, auth, contact_id)?;
    let records = sim.read(|db| {
        db.children(contact_id, kind).map(|records| {
            records
                .into_iter()
                .map(|r| Value::Object(db.record_shapes.apply(r, child_shape(kind))))
                .collect()
        })
    })?;
    Ok(records)
}

/// The schema of a task, note or appointment in its answers.
fn child_shape(kind: Child) -> &'static Shape {
    match kind {
        Child::Task => &TASK,
        Child::Note => &NOTE,
        Child::Appointment => &EVENT,
    }
}

fn get_child(
    sim: &Shared,
    auth: &AuthCtx,
    contact_id: &str,
    kind: Child,
    id: &str,
) -> Result<Value> {
    contact_in_scope(sim, auth, contact_id)?;
    Ok(Value::Object(sim.read(|db| {
        db.child(contact_id, kind, id)
            .map(|r| db.record_shapes.apply(r, child_shape(kind)))
    })?))
}

fn write_child(
    sim: &Shared,
    auth: &AuthCtx,
    contact_id: &str,
    kind: Child,
    f: impl FnOnce(&mut super::model::Db) -> std::result::Result<super::model::Record, SimError>,
) -> Result<Value> {
    let record = sim.write(|db| -> Result<_> {
        auth.check_location(db.contact_location(contact_id)?)?;
        let record = f(db)?;
        Ok(db.record_shapes.apply(record, child_shape(kind)))
    })?;
    Ok(Value::Object(record))
}

/// `GET /contacts/{contactId}/tasks` → `{tasks}`.
pub(crate) async fn list_tasks(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(contact): Path<String>,
) -> Result {
    let tasks = list_children(&sim, &auth, &contact, Child::Task)?;
    Ok(ok(StatusCode::OK, json!({"tasks": tasks})))
}

/// `GET /contacts/{contactId}/tasks/{taskId}` → `{task}`.
pub(crate) async fn get_task(
    State(sim): Sim,
    Extension(auth): Auth,
    Path((contact, task)): Path<(String, String)>,
) -> Result {
    let task = get_child(&sim, &auth, &contact, Child::Task, &task)?;
    Ok(ok(StatusCode::OK, json!({"task": task})))
}

/// `POST /contacts/{contactId}/tasks` → 201 `{task}`.
pub(crate) async fn create_task(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(contact): Path<String>,
    body: Bytes,
) -> Result {
    let fields =
        validate_task(&parse_json(&body)?, Mode::Create).map_err(ApiError::unprocessable)?;
    let task = write_child(&sim, &auth, &contact, Child::Task, |db| {
        db.create_child(&contact, Child::Task, &fields)
    })?;
    Ok(ok(StatusCode::CREATED, json!({"task": task})))
}

/// `PUT /contacts/{contactId}/tasks/{taskId}` → `{task}`.
pub(crate) async fn update_task(
    State(sim): Sim,
    Extension(auth): Auth,
    Path((contact, task)): Path<(String, String)>,
    body: Bytes,
) -> Result {
    let fields =
        validate_task(&parse_json(&body)?, Mode::Update).map_err(ApiError::unprocessable)?;
    let task = write_child(&sim, &auth, &contact, Child::Task, |db| {
        db.update_child(&contact, Child::Task, &task, &fields)
    })?;
    Ok(ok(StatusCode::OK, json!({"task": task})))
}

/// `PUT /contacts/{contactId}/tasks/{taskId}/completed` (body
/// `{completed}`) → `{task}`.
pub(crate) async fn complete_task(
    State(sim): Sim,
    Extension(auth): Auth,
    Path((contact, task)): Path<(String, String)>,
    body: Bytes,
) -> Result {
    let value = parse_json(&body)?;
    let completed = value
        .get("completed")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::unprocessable(vec!["completed must be a boolean value".into()]))?;
    let mut fields = super::model::Record::new();
    fields.insert("completed".into(), json!(completed));
    let task = write_child(&sim, &auth, &contact, Child::Task, |db| {
        db.update_child(&contact, Child::Task, &task, &fields)
    })?;
    Ok(ok(StatusCode::OK, json!({"task": task})))
}

/// `DELETE /contacts/{contactId}/tasks/{taskId}` → `{succeded: true}`.
pub(crate) async fn delete_task(
    State(sim): Sim,
    Extension(auth): Auth,
    Path((contact, task)): Path<(String, String)>,
) -> Result {
    write_child(&sim, &auth, &contact, Child::Task, |db| {
        db.delete_child(&contact, Child::Task, &task)
    })?;
    Ok(ok(StatusCode::OK, json!({"succeded": true})))
}

/// `GET /contacts/{contactId}/notes` → `{notes}`.
pub(crate) async fn list_notes(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(contact): Path<String>,
) -> Result {
    let notes = list_children(&sim, &auth, &contact, Child::Note)?;
    Ok(ok(StatusCode::OK, json!({"notes": notes})))
}

/// `GET /contacts/{contactId}/notes/{id}` → `{note}`.
pub(crate) async fn get_note(
    State(sim): Sim,
    Extension(auth): Auth,
    Path((contact, note)): Path<(String, String)>,
) -> Result {
    let note = get_child(&sim, &auth, &contact, Child::Note, &note)?;
    Ok(ok(StatusCode::OK, json!({"note": note})))
}

/// `POST /contacts/{contactId}/notes` → 201 `{note}`.
pub(crate) async fn create_note(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(contact): Path<String>,
    body: Bytes,
) -> Result {
    let fields =
        validate_note(&parse_json(&body)?, Mode::Create).map_err(ApiError::unprocessable)?;
    let note = write_child(&sim, &auth, &contact, Child::Note, |db| {
        db.create_child(&contact, Child::Note, &fields)
    })?;
    Ok(ok(StatusCode::CREATED, json!({"note": note})))
}

/// `PUT /contacts/{contactId}/notes/{id}` → `{note}`.
pub(crate) async fn update_note(
    State(sim): Sim,
    Extension(auth): Auth,
    Path((contact, note)): Path<(String, String)>,
    body: Bytes,
) -> Result {
    let fields =
        validate_note(&parse_json(&body)?, Mode::Update).map_err(ApiError::unprocessable)?;
    let note = write_child(&sim, &auth, &contact, Child::Note, |db| {
        db.update_child(&contact, Child::Note, &note, &fields)
    })?;
    Ok(ok(StatusCode::OK, json!({"note": note})))
}

/// `DELETE /contacts/{contactId}/notes/{id}` → `{succeded: true}`.
pub(crate) async fn delete_note(
    State(sim): Sim,
    Extension(auth): Auth,
    Path((contact, note)): Path<(String, String)>,
) -> Result {
    write_child(&sim, &auth, &contact, Child::Note, |db| {
        db.delete_child(&contact, Child::Note, &note)
    })?;
    Ok(ok(StatusCode::OK, json!({"succeded": true})))
}

/// `GET /contacts/{contactId}/appointments` → `{events}`.
pub(crate) async fn appointments(
    State(sim): Sim,
    Extension(auth): Auth,
    Path(contact): Path<String>,
) -> Result {
    let events = list_children(&sim, &auth, &contact, Child::Appointment)?;
    Ok(ok(StatusCode::OK, json!({"events": events})))
}
