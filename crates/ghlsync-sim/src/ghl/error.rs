//! Errors: [`SimError`] for the in-process API ([`super::SimHandle`]) and
//! `ApiError`, the JSON error bodies the HTTP API answers with.
//!
//! Error bodies follow GHL's NestJS shape: `{"statusCode", "message",
//! "error"?, "traceId"}`; `message` is a string, except for validation
//! failures (422) where it is a list of strings, as in `UnprocessableDTO`
//! of `common-schemas.json`. Every error body carries a fresh `traceId`.

use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use crate::server::JsonStyle;

/// Why a simulator operation was refused. The HTTP API maps each variant
/// to the status and message GHL answers with (see `ApiError::from`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// No such location in the simulator.
    #[error("location {0} not found")]
    LocationNotFound(String),
    /// No such contact (HTTP: 400 "Contact not found").
    #[error("contact {0} not found")]
    ContactNotFound(String),
    /// No such task on that contact (HTTP: 400 "Task not found").
    #[error("task {0} not found")]
    TaskNotFound(String),
    /// No such note on that contact (HTTP: 400 "Note not found").
    #[error("note {0} not found")]
    NoteNotFound(String),
    /// No such appointment.
    #[error("appointment {0} not found")]
    AppointmentNotFound(String),
    /// The email or phone already belongs to another contact of the
    /// location, which does not allow duplicates (HTTP: 400 with GHL's
    /// message only: `BadRequestDTO` in the spec is `{statusCode,
    /// message}`, so the existing contact is not named; a client finds
    /// it with a duplicate search).
    #[error("duplicate contact: {field} matches contact {contact_id}")]
    Duplicate {
        /// The existing contact.
        contact_id: String,
        /// `email` or `phone`.
        field: &'static str,
    },
    /// The input failed validation; one message per problem (HTTP: 422).
    #[error("invalid input: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// Message of a 401 for a missing, malformed or unknown bearer token.
pub const MSG_INVALID_JWT: &str = "Invalid JWT";
/// Message of a 401 for a token that was valid but has expired.
pub const MSG_EXPIRED_JWT: &str = "Invalid JWT: token expired";
/// Message of a 401 for a token that lacks the endpoint's scope.
pub const MSG_SCOPE: &str = "The token is not authorized for this scope.";
/// Message of a 401 for a token of the wrong class (a Company token on a
/// Sub-Account endpoint or the reverse), as the live API words it.
pub const MSG_AUTH_CLASS: &str = "This authClass type is not allowed to access this scope. Please reach out to the Platform team to get it added.";
/// Message of a 403 for a token used on another location's data.
pub const MSG_FORBIDDEN_LOCATION: &str = "The token does not have access to this location.";
/// Message of a 400 for a duplicate contact.
pub const MSG_DUPLICATE: &str = "This location does not allow duplicated contacts.";
/// Message of a 429.
pub const MSG_TOO_MANY: &str = "Too Many Requests";

/// How the GHL simulator sends JSON: `application/json; charset=utf-8`,
/// and a fresh `traceId` in every error body.
#[derive(Debug)]
pub(crate) struct GhlJson;

impl JsonStyle for GhlJson {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn finish(body: &mut Map<String, Value>) {
        body.insert("traceId".into(), json!(trace_id()));
    }
}

/// An HTTP error answer of the GHL simulator.
pub(crate) type ApiError = crate::server::ApiError<GhlJson>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<Value>) -> Self {
        let mut body = Map::new();
        body.insert("statusCode".into(), json!(status.as_u16()));
        body.insert("message".into(), message.into());
        if matches!(status.as_u16(), 401 | 404 | 422) {
            if let Some(reason) = status.canonical_reason() {
                body.insert("error".into(), json!(reason));
            }
        }
        Self::with_body(status, body)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message.into())
    }
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, MSG_FORBIDDEN_LOCATION)
    }
    pub fn unprocessable(messages: Vec<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, messages)
    }
    /// A 429 "Too Many Requests" with `Retry-After`.
    pub fn too_many(retry_after: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, MSG_TOO_MANY)
            .header(header::RETRY_AFTER, &retry_after.to_string())
    }
    /// The body of an injected error status (502/503/504 get an HTML
    /// page instead, see [`crate::faults`]).
    pub fn injected(status: StatusCode) -> Self {
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            Self::new(status, "Internal server error")
        } else {
            Self::new(status, status.canonical_reason().unwrap_or("Error"))
        }
    }
}

impl From<SimError> for ApiError {
    fn from(error: SimError) -> Self {
        match error {
            SimError::LocationNotFound(_) => ApiError::bad_request("Location not found"),
            SimError::ContactNotFound(_) => ApiError::bad_request("Contact not found"),
            SimError::TaskNotFound(_) => ApiError::bad_request("Task not found"),
            SimError::NoteNotFound(_) => ApiError::bad_request("Note not found"),
            SimError::AppointmentNotFound(_) => ApiError::bad_request("Appointment not found"),
            SimError::Duplicate { .. } => ApiError::bad_request(MSG_DUPLICATE),
            SimError::Invalid(messages) => ApiError::unprocessable(messages),
        }
    }
}

/// A fresh trace id, formatted like a UUID.
pub(crate) fn trace_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A JSON response with GHL's content type.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    crate::server::json_response(status, value, GhlJson::CONTENT_TYPE)
}
