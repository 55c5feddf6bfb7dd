//! Errors: [`AppSimError`] for the in-process API ([`super::AppSimHandle`])
//! and `ApiError`, the JSON error bodies the HTTP API answers with.
//!
//! Every error body is `{"error": CODE, "message": TEXT, ...}` with `CODE`
//! one of `unauthorized` (401), `not_found` (404), `method_not_allowed`
//! (405), `duplicate` (409, plus `existing_id`), `invalid` (422, plus
//! `details`: one string per problem, `"field: problem"`), `rate_limited`
//! (429), `internal` (500) or, for other injected statuses, the status's
//! reason in snake case (`service_unavailable`, ...).

use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::model::Entity;
use crate::server::JsonStyle;

/// Why an operation on the app was refused. The HTTP API maps each
/// variant to its status and body (see `ApiError::from`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppSimError {
    /// No such contact, task or note (HTTP: 404 `not_found`).
    #[error("{entity} {id} not found")]
    NotFound {
        /// `contact`, `task` or `note`.
        entity: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The email address already belongs to another contact (HTTP: 409
    /// `duplicate` with `existing_id`).
    #[error("email_address {email} already belongs to contact {existing_id}")]
    Duplicate {
        /// The contact holding the email.
        existing_id: String,
        /// The email asked for.
        email: String,
    },
    /// The input failed validation; one message per problem (HTTP: 422
    /// `invalid` with `details`).
    #[error("invalid input: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl AppSimError {
    pub(crate) fn not_found(entity: Entity, id: &str) -> Self {
        AppSimError::NotFound {
            entity: entity.name(),
            id: id.to_string(),
        }
    }
}

/// How the app simulator sends JSON: `application/json`.
#[derive(Debug)]
pub(crate) struct AppJson;

impl JsonStyle for AppJson {
    const CONTENT_TYPE: &'static str = "application/json";
}

/// An HTTP error answer of the app simulator.
pub(crate) type ApiError = crate::server::ApiError<AppJson>;

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let mut body = Map::new();
        body.insert("error".into(), json!(code));
        body.insert("message".into(), json!(message.into()));
        Self::with_body(status, body)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or unknown bearer token (send Authorization: Bearer <token>)",
        )
    }

    pub fn invalid(details: Vec<String>) -> Self {
        let message = details.first().cloned().unwrap_or_default();
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            .with("details", json!(details))
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {retry_after} s"),
        )
        .header(header::RETRY_AFTER, &retry_after.to_string())
    }

    /// The body of an injected error status: `internal` for 500, else the
    /// reason in snake case.
    pub fn injected(status: StatusCode) -> Self {
        let reason = status.canonical_reason().unwrap_or("Error");
        let code = if status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal".to_string()
        } else {
            reason.to_lowercase().replace([' ', '-'], "_")
        };
        Self::new(status, &code, reason)
    }
}

impl From<AppSimError> for ApiError {
    fn from(error: AppSimError) -> Self {
        let message = error.to_string();
        match error {
            AppSimError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            AppSimError::Duplicate { existing_id, .. } => {
                ApiError::new(StatusCode::CONFLICT, "duplicate", message)
                    .with("existing_id", json!(existing_id))
            }
            AppSimError::Invalid(details) => ApiError::invalid(details),
        }
    }
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    crate::server::json_response(status, value, AppJson::CONTENT_TYPE)
}
