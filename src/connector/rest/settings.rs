//! The settings of a REST side, as `config` fills them in from
//! `[sides.<name>]` of kind `rest` (`config/rest.rs` documents every key):
//! where the app is, how to authenticate, how fast and how persistently to
//! call it, and the API description of `spec.rs`. The connector owns these
//! types; configuration only reads and validates TOML into them.

use std::time::Duration;

use url::Url;

use super::spec::{EntityApi, WebhookSpec};
use crate::connector::http::RetryPolicy;
use crate::connector::Secret;
use crate::domain::EntityKind;

/// Default largest response body.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// The operator's own app or CRM, reached over its REST API.
#[derive(Debug, Clone)]
pub struct RestSide {
    pub base_url: Url,
    pub auth: RestAuth,
    /// Shared secret of the app's HMAC-signed webhooks, when it sends any.
    pub webhook_secret: Option<Secret>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Larger response bodies are refused rather than buffered.
    pub max_body_bytes: u64,
    pub rate_limit: RestRateLimit,
    pub retry: RetryPolicy,
    /// How webhooks are signed and read (meaningful with `webhook_secret`).
    pub webhook: WebhookSpec,
    /// Never write to this side, whatever the endpoints allow.
    pub read_only: bool,
    /// How contacts are listed, read and written (required). Boxed:
    /// descriptions are large and settings move around in enums.
    pub contacts: Box<EntityApi>,
    pub tasks: Option<Box<EntityApi>>,
    pub notes: Option<Box<EntityApi>>,
}

impl RestSide {
    /// The description of `entity`, when the side has one.
    pub fn entity(&self, entity: EntityKind) -> Option<&EntityApi> {
        match entity {
            EntityKind::Contact => Some(&self.contacts),
            EntityKind::Task => self.tasks.as_deref(),
            EntityKind::Note => self.notes.as_deref(),
            EntityKind::Appointment => None,
        }
    }

    /// Whether the side lists changes of `entity` since a time (its
    /// description has a `list`); the connector's `change_feed`.
    pub fn has_change_feed(&self, entity: EntityKind) -> bool {
        self.entity(entity).is_some_and(|api| api.list.is_some())
    }
}

#[derive(Debug, Clone)]
pub enum RestAuth {
    None,
    Bearer {
        token: Secret,
    },
    /// A key sent in a header (for example `X-Api-Key`) or a query parameter.
    ApiKey {
        placement: ApiKeyPlacement,
        name: String,
        key: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
    OAuth2ClientCredentials {
        token_url: Url,
        client_id: String,
        client_secret: Secret,
        scopes: Vec<String>,
        /// How the client authenticates to the token endpoint.
        client_auth: ClientAuth,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyPlacement {
    Header,
    Query,
}

/// At most `requests` in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestRateLimit {
    pub requests: u32,
    pub per: Duration,
}

impl Default for RestRateLimit {
    fn default() -> Self {
        Self {
            requests: 10,
            per: Duration::from_secs(1),
        }
    }
}

/// How an OAuth 2.0 client sends its credentials to the token endpoint
/// (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    #[default]
    Basic,
    /// `client_id` and `client_secret` form fields (`client_secret_post`).
    Body,
}
