//! Errors of the GHL client. Each names the call (method, path and
//! location) and carries GHL's `traceId` when the response had one, so an
//! operator can quote it to GHL support.

use std::fmt;
use std::time::Duration;

use super::limiter::BudgetExhausted;
use crate::connector::http::bounded;

/// Which call failed: `PUT /contacts/abc123 (location ve9E…)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: &'static str,
    /// The endpoint's template (`/contacts/{contactId}`): metrics label
    /// calls by it.
    pub endpoint: &'static str,
    /// The concrete path, ids included.
    pub path: String,
    pub location: String,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GHL {} {} (location {})",
            self.method,
            bounded(&self.path),
            self.location
        )
    }
}

fn trace(trace_id: &Option<String>) -> String {
    trace_id
        .as_ref()
        .map(|id| format!(" [traceId {}]", bounded(id)))
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum GhlError {
    /// 400: the request was wrong for this record (dead-letter it).
    #[error("{call}: rejected (400): {message}{}", trace(.trace_id))]
    BadRequest {
        call: Call,
        message: String,
        trace_id: Option<String>,
        /// GHL's `meta`, e.g. the id of the existing contact on a duplicate.
        meta: Option<serde_json::Value>,
    },
    /// 401 because the access token expired: refresh and retry.
    #[error("{call}: access token expired (401){}", trace(.trace_id))]
    TokenExpired {
        call: Call,
        trace_id: Option<String>,
    },
    /// 401 otherwise: the token is invalid or revoked, or lacks the scope.
    #[error("{call}: unauthorized (401): {message}; check the token and its scopes{}", trace(.trace_id))]
    Unauthorized {
        call: Call,
        message: String,
        trace_id: Option<String>,
    },
    #[error("{call}: forbidden (403): {message}{}", trace(.trace_id))]
    Forbidden {
        call: Call,
        message: String,
        trace_id: Option<String>,
    },
    /// Refused before sending: the credentials lack a scope the call needs.
    #[error("{call}: needs scope `{scope}`, which this side's credentials do not have; nothing was sent")]
    ScopeMissing { call: Call, scope: &'static str },
    #[error("{call}: not found (404){}", trace(.trace_id))]
    NotFound {
        call: Call,
        trace_id: Option<String>,
    },
    /// 422 with GHL's list of validation messages.
    #[error("{call}: unprocessable (422): {}{}", messages.join("; "), trace(.trace_id))]
    Unprocessable {
        call: Call,
        messages: Vec<String>,
        trace_id: Option<String>,
    },
    /// 429: our pacing failed; waited and retried until attempts ran out.
    #[error("{call}: rate limited (429){}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        call: Call,
        retry_after: Option<Duration>,
    },
    #[error("{call}: GHL server error {status}: {message}{}", trace(.trace_id))]
    Server {
        call: Call,
        status: u16,
        message: String,
        trace_id: Option<String>,
    },
    #[error("{call}: unexpected HTTP status {status}: {message}")]
    Status {
        call: Call,
        status: u16,
        message: String,
    },
    /// The request may or may not have reached GHL (timeout, reset).
    #[error("{call}: {detail}")]
    Transport {
        call: Call,
        detail: String,
        /// True when GHL may have processed the request (the connection
        /// was established): a create must be looked up, not re-sent.
        maybe_applied: bool,
    },
    /// A 2xx with no body at all where the contract promises JSON. Asking
    /// again gets the same: a failure of this call, named, not retried
    /// (issue 15: it was retried six times as if it were transient).
    #[error("{call}: response {status} has an empty body where GHL's contract promises JSON")]
    EmptyBody { call: Call, status: u16 },
    /// A 2xx whose body is not the JSON the contract promises.
    #[error("{call}: response {status} is not the expected JSON: {detail}")]
    Decode {
        call: Call,
        status: u16,
        detail: String,
    },
    #[error("{call}: {source}")]
    Budget {
        call: Call,
        #[source]
        source: BudgetExhausted,
    },
    /// Getting or refreshing the access token failed.
    #[error("{call}: {source}")]
    Auth {
        call: Call,
        #[source]
        source: super::auth::AuthError,
    },
}

impl GhlError {
    pub fn call(&self) -> &Call {
        match self {
            GhlError::BadRequest { call, .. }
            | GhlError::TokenExpired { call, .. }
            | GhlError::Unauthorized { call, .. }
            | GhlError::Forbidden { call, .. }
            | GhlError::ScopeMissing { call, .. }
            | GhlError::NotFound { call, .. }
            | GhlError::Unprocessable { call, .. }
            | GhlError::RateLimited { call, .. }
            | GhlError::Server { call, .. }
            | GhlError::Status { call, .. }
            | GhlError::Transport { call, .. }
            | GhlError::Decode { call, .. }
            | GhlError::EmptyBody { call, .. }
            | GhlError::Budget { call, .. }
            | GhlError::Auth { call, .. } => call,
        }
    }

    /// Worth retrying: the condition is temporary. Whether a retry is
    /// *safe* is the caller's question (see [`GhlError::maybe_applied`]).
    pub fn is_transient(&self) -> bool {
        // A body that does not parse is most often a proxy or a connection
        // cut short; idempotent calls simply ask again.
        matches!(
            self,
            GhlError::RateLimited { .. }
                | GhlError::Server { .. }
                | GhlError::Transport { .. }
                | GhlError::Decode { .. }
        )
    }

    /// Whether GHL may have applied the request although we saw no success:
    /// a non-idempotent call in this state must be checked, not re-sent.
    pub fn maybe_applied(&self) -> bool {
        match self {
            GhlError::Transport { maybe_applied, .. } => *maybe_applied,
            // A 2xx: GHL took the request; a create must be looked up.
            GhlError::Server { .. } | GhlError::Decode { .. } | GhlError::EmptyBody { .. } => true,
            _ => false,
        }
    }

    /// GHL refused a contact write because the location does not allow
    /// duplicated contacts and another contact already holds its email or
    /// phone ("This location does not allow duplicated contacts.").
    pub fn is_duplicate(&self) -> bool {
        matches!(self, GhlError::BadRequest { message, .. } if message.to_ascii_lowercase().contains("duplicate"))
    }

    /// A problem with this one record (dead-letter it, keep syncing).
    pub fn is_record_error(&self) -> bool {
        matches!(
            self,
            GhlError::BadRequest { .. }
                | GhlError::NotFound { .. }
                | GhlError::Unprocessable { .. }
        )
    }

    pub fn trace_id(&self) -> Option<&str> {
        match self {
            GhlError::BadRequest { trace_id, .. }
            | GhlError::TokenExpired { trace_id, .. }
            | GhlError::Unauthorized { trace_id, .. }
            | GhlError::Forbidden { trace_id, .. }
            | GhlError::NotFound { trace_id, .. }
            | GhlError::Unprocessable { trace_id, .. }
            | GhlError::Server { trace_id, .. } => trace_id.as_deref(),
            _ => None,
        }
    }
}
