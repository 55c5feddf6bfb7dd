//! `POST /locations/{locationId}/tasks/search`: the tasks of a whole
//! location (or of the contacts named), `apps/locations.json`
//! (`operationId: task-search`, body `TaskSearchParamsDto`).
//!
//! What the spec leaves open, and what the simulator does:
//! - The 200 schema (`LocationTaskListSuccessfulResponseDto`) is a
//!   placeholder, `tasks` as an array of arrays; the GHL field notes
//!   ("Tasks and notes") say to expect task objects. Each task goes out in
//!   the shape of `TaskSchema` of `contacts.json` (see [`TASK`]), the only
//!   task object either document describes; `contactId` is part of it.
//! - The order is not specified. Here: contacts by `dateAdded`, then each
//!   contact's tasks in the order they were created, so `skip` pages
//!   through a stable list while nothing is written.
//! - `limit` has a default (25) and no documented maximum: any whole
//!   number of at least 1 is taken. `assignedTo` and `businessId` filter
//!   (by the task's `assignedTo`; nothing here carries a business, so a
//!   `businessId` finds nothing); `query` matches title or body, without
//!   case. A field of the wrong type is 422, like the spec's other DTOs.
//! - The scope is `locations/tasks.readonly` (the operation's `security`),
//!   which a Contacts-only token does not have: 401 (see `server::rule`).
//! - The simulator's search lag ([`super::SimOptions::search_lag`]) is a
//!   note about contact search; this listing shows tasks at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Value};

use super::error::ApiError;
use super::server::{ok, AuthCtx, Shared};
use super::shapes::TASK;

/// `limit`'s default in `TaskSearchParamsDto`.
const DEFAULT_LIMIT: usize = 25;

/// A parsed `TaskSearchParamsDto`.
struct TaskSearch {
    contacts: Option<Vec<String>>,
    completed: Option<bool>,
    assigned_to: Option<Vec<String>>,
    query: Option<String>,
    business: Option<String>,
    limit: usize,
    skip: usize,
}

fn strings(body: &Value, field: &str, errors: &mut Vec<String>) -> Option<Vec<String>> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        Some(_) => {
            errors.push(format!("{field} must be an array of strings"));
            None
        }
    }
}

fn count(body: &Value, field: &str, default: usize, min: u64, errors: &mut Vec<String>) -> usize {
    match body.get(field) {
        None | Some(Value::Null) => default,
        Some(value) => match value.as_u64() {
            Some(n) if n >= min => n as usize,
            _ => {
                errors.push(format!("{field} must be a number not less than {min}"));
                default
            }
        },
    }
}

impl TaskSearch {
    fn parse(body: &Value) -> Result<TaskSearch, Vec<String>> {
        let mut errors = Vec::new();
        if !body.is_object() {
            return Err(vec!["the body must be an object".into()]);
        }
        let completed = match body.get("completed") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => {
                errors.push("completed must be a boolean value".into());
                None
            }
        };
        let text = |field: &str, errors: &mut Vec<String>| match body.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(format!("{field} must be a string"));
                None
            }
        };
        let query = text("query", &mut errors).filter(|q| !q.is_empty());
        let business = text("businessId", &mut errors).filter(|b| !b.is_empty());
        let search = TaskSearch {
            contacts: strings(body, "contactId", &mut errors),
            completed,
            assigned_to: strings(body, "assignedTo", &mut errors),
            query,
            business,
            limit: count(body, "limit", DEFAULT_LIMIT, 1, &mut errors),
            skip: count(body, "skip", 0, 0, &mut errors),
        };
        if errors.is_empty() {
            Ok(search)
        } else {
            Err(errors)
        }
    }

    fn matches(&self, task: &serde_json::Map<String, Value>) -> bool {
        let text = |field: &str| task.get(field).and_then(Value::as_str).unwrap_or_default();
        self.completed
            .is_none_or(|c| task.get("completed").and_then(Value::as_bool) == Some(c))
            && self
                .assigned_to
                .as_ref()
                .is_none_or(|users| users.iter().any(|u| u == text("assignedTo")))
            && self.query.as_deref().is_none_or(|q| {
                let q = q.to_lowercase();
                text("title").to_lowercase().contains(&q)
                    || text("body").to_lowercase().contains(&q)
            })
            && self.business.is_none()
    }
}

/// `POST /locations/{locationId}/tasks/search` → `{tasks}` (see the
/// module docs).
pub(crate) async fn search_tasks(
    State(sim): State<Arc<Shared>>,
    Extension(auth): Extension<AuthCtx>,
    Path(location_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Invalid JSON body: {e}")))?
    };
    let search = TaskSearch::parse(&value).map_err(ApiError::unprocessable)?;
    auth.check_location(&location_id)?;
    let tasks = sim.read(|db| -> Result<Vec<Value>, ApiError> {
        let location = db.location(&location_id)?;
        let wanted = search.contacts.as_ref().map(|ids| {
            ids.iter()
                .map(String::as_str)
                .collect::<std::collections::HashSet<_>>()
        });
        Ok(location
            .contacts_by_added()
            .filter(|contact| {
                wanted.as_ref().is_none_or(|wanted| {
                    contact
                        .data
                        .get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| wanted.contains(id))
                })
            })
            .flat_map(|contact| contact.tasks.iter())
            .filter(|task| search.matches(task))
            .skip(search.skip)
            .take(search.limit)
            .map(|task| Value::Object(db.record_shapes.apply(task.clone(), &TASK)))
            .collect())
    })?;
    Ok(ok(StatusCode::OK, json!({"tasks": tasks})))
}
