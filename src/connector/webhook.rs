//! What a side's own webhook (`/webhooks/app/<side>`) comes to once it
//! is verified, and why one is refused: the connector layer's vocabulary,
//! so the generic [`Connector`](super::Connector) trait and the server
//! name no particular connector. Each connector verifies its deliveries
//! its own way (the REST side by the HMAC its settings describe).

use chrono::{DateTime, Utc};

use crate::domain::EntityKind;

/// What a verified webhook is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub entity: EntityKind,
    pub id: String,
    /// The owning contact of a task or note, when the event names it.
    pub parent_id: Option<String>,
}

/// Why a webhook was refused. Each is distinct so the endpoint can count
/// them apart; none contains the secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("side `{side}` has no webhook_secret: its webhooks cannot be verified")]
    NotConfigured { side: String },
    #[error("side `{side}`: webhook without the {header} header")]
    MissingSignature { side: String, header: String },
    #[error("side `{side}`: webhook signature in {header} does not match the body")]
    BadSignature { side: String, header: String },
    #[error("side `{side}`: webhook without the {header} header")]
    MissingTimestamp { side: String, header: String },
    #[error("side `{side}`: webhook timestamp {value:?} in {header} is not epoch seconds, milliseconds or RFC 3339")]
    BadTimestamp {
        side: String,
        header: String,
        value: String,
    },
    #[error("side `{side}`: webhook timestamp {sent} is {skew_seconds}s away from now, more than the {tolerance_seconds}s tolerance (replayed or delayed)")]
    StaleTimestamp {
        side: String,
        sent: DateTime<Utc>,
        skew_seconds: i64,
        tolerance_seconds: u64,
    },
    #[error("side `{side}`: webhook body is malformed: {reason}")]
    Malformed { side: String, reason: String },
}
