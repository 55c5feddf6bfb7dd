//! The operator's own app as one side of a pair, described entirely in
//! TOML (`[sides.<name>]` of kind `rest`, see [`RestSide`]):
//! endpoint templates, JSON pointers, a timestamp format and a pagination
//! style per entity. No code per app.
//!
//! * `client.rs`: the one request path (pace → credentials → send → read
//!   capped → classify → retry), redirects refused.
//! * `auth.rs`: static credentials and OAuth 2.0 client-credentials tokens.
//! * `pages.rs`: the six pagination styles as one stream of pages.
//! * `records.rs`: bodies to records, each bad record refused on its own.
//! * `connector.rs`: the [`Connector`] implementation.
//! * `create.rs`: the create that never duplicates.
//! * `lookup.rs`: contacts by email or phone, every answer checked.
//! * `webhook.rs`: signature, timestamp and body checks of a webhook.
//! * `settings.rs`: the side's settings, which the configuration is read into.
//! * `spec.rs`: the API description types the settings hold.

// Errors carry the call they belong to; they are the slow path.
#![allow(clippy::result_large_err)]

mod auth;
mod client;
mod connector;
mod create;
mod lookup;
mod pages;
mod records;
pub mod settings;
pub mod spec;
mod webhook;

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Map, Value};
use url::Url;

pub use settings::{ApiKeyPlacement, ClientAuth, RestAuth, RestRateLimit, RestSide};
pub use spec::{
    EntityApi, JsonPointer, Pagination, SizeParam, Template, TimestampFormat, WebhookSpec,
};

use self::auth::Auth;
use self::client::{CallError, Client, Failure, Pacer, Request};
use self::spec::Part;
use crate::connector::http::{api_client, bounded};
use crate::connector::{Capabilities, ConnectorError, EntityCaps, Secret};
use crate::domain::{EntityKind, MatchKey};

/// Rejected records kept for [`RestConnector::take_rejected`] at most; the
/// oldest are dropped (they were logged).
const MAX_KEPT_REJECTS: usize = 1000;

/// Why a REST side cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("side `{side}`: cannot set up HTTP: {source}")]
    Http {
        side: String,
        source: reqwest::Error,
    },
}

/// A REST app as one side of a pair.
#[derive(Debug)]
pub struct RestConnector {
    side: String,
    client: Client,
    entities: BTreeMap<EntityKind, EntityApi>,
    capabilities: Capabilities,
    webhook: WebhookSpec,
    webhook_secret: Option<Secret>,
    /// Records refused by `all_contacts` and `children`, whose return types
    /// have no room for them (pages of `changes` carry their own).
    rejected: Mutex<Vec<ConnectorError>>,
}

impl RestConnector {
    /// The connector of side `name`, as configured.
    pub fn build(name: &str, side: &RestSide) -> Result<Self, BuildError> {
        let http = api_client(side.timeout).map_err(|source| BuildError::Http {
            side: name.to_owned(),
            source,
        })?;
        Self::with_http(name, side, http)
    }

    /// Shares one connection pool (and TLS set-up) among connectors. The
    /// client must not follow redirects (see
    /// [`crate::connector::http::api_client`]).
    pub fn with_http(
        name: &str,
        side: &RestSide,
        http: reqwest::Client,
    ) -> Result<Self, BuildError> {
        let mut entities = BTreeMap::new();
        entities.insert(EntityKind::Contact, (*side.contacts).clone());
        if let Some(tasks) = &side.tasks {
            entities.insert(EntityKind::Task, (**tasks).clone());
        }
        if let Some(notes) = &side.notes {
            entities.insert(EntityKind::Note, (**notes).clone());
        }
        let capabilities = capabilities(&entities, side);
        Ok(Self {
            side: name.to_owned(),
            client: Client {
                side: name.to_owned(),
                http,
                base_url: side.base_url.clone(),
                auth: Auth::new(&side.auth),
                pacer: Pacer::new(side.rate_limit),
                retry: side.retry,
                max_body_bytes: side.max_body_bytes,
            },
            entities,
            capabilities,
            webhook: side.webhook.clone(),
            webhook_secret: side.webhook_secret.clone(),
            rejected: Mutex::new(Vec::new()),
        })
    }

    /// The records `all_contacts` and `children` refused since the last
    /// call (each was also logged): the engine dead-letters them.
    pub fn take_rejected(&self) -> Vec<ConnectorError> {
        std::mem::take(&mut *self.rejected.lock().expect("rejects lock"))
    }

    fn keep_rejected(&self, rejected: Vec<ConnectorError>) {
        if rejected.is_empty() {
            return;
        }
        for error in &rejected {
            tracing::warn!(side = %self.side, error = %error, "record refused");
        }
        let mut kept = self.rejected.lock().expect("rejects lock");
        kept.extend(rejected);
        let excess = kept.len().saturating_sub(MAX_KEPT_REJECTS);
        kept.drain(..excess);
    }

    fn api(&self, entity: EntityKind) -> Option<&EntityApi> {
        self.entities.get(&entity)
    }

    fn unsupported(
        &self,
        entity: EntityKind,
        operation: &'static str,
        reason: impl Into<String>,
    ) -> ConnectorError {
        ConnectorError::Unsupported {
            side: self.side.clone(),
            entity,
            operation,
            reason: reason.into(),
        }
    }

    /// The request for a template with its placeholders filled in.
    fn request(&self, template: &Template, vars: &[(&str, &str)], body: Option<Value>) -> Request {
        let path = render(&template.path, vars, encode_path_segment);
        let mut url = join(&self.client.base_url, &path);
        if !template.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, parts) in &template.query {
                pairs.append_pair(name, &render(parts, vars, |s| s.to_owned()));
            }
        }
        Request {
            idempotent: template.method != reqwest::Method::POST,
            label: format!("{} {}", template.method, bounded(&path)),
            endpoint: self.endpoint(template),
            method: template.method.clone(),
            url,
            body,
        }
    }

    /// The metric label of a template: its method and path as configured,
    /// placeholders kept, under the base URL's path (`GET
    /// /api/v1/people/:id`): the same for every record, whatever its id.
    fn endpoint(&self, template: &Template) -> String {
        let base = self.client.base_url.path().trim_end_matches('/');
        let path = render_template(&template.path);
        format!("{} {base}{path}", template.method)
    }

    /// A failure that concerns the side or the whole call (a listing).
    fn side_error(&self, error: CallError) -> ConnectorError {
        self.classify(error, None)
    }

    /// A failure of a call about one record: what only that record can
    /// cause (a 4xx, an oversized body) is a record error.
    fn record_error(
        &self,
        entity: EntityKind,
        id: Option<&str>,
        error: CallError,
    ) -> ConnectorError {
        self.classify(error, Some((entity, id)))
    }

    fn classify(
        &self,
        error: CallError,
        record: Option<(EntityKind, Option<&str>)>,
    ) -> ConnectorError {
        let side = self.side.clone();
        let message = error.to_string();
        match &error.failure {
            Failure::Token(token) if !token.transient => ConnectorError::Auth { side, message },
            Failure::Status { status, .. } if matches!(status.as_u16(), 401 | 403) => {
                ConnectorError::Auth { side, message }
            }
            failure if failure.transient() => ConnectorError::Unavailable {
                side,
                message,
                retry_after: failure.retry_after(),
            },
            Failure::Status { .. } | Failure::TooLarge(_) => match record {
                Some((entity, id)) => ConnectorError::Record {
                    side,
                    entity,
                    id: id.map(str::to_owned),
                    message,
                },
                None => ConnectorError::Unavailable {
                    side,
                    message,
                    retry_after: None,
                },
            },
            _ => ConnectorError::Unavailable {
                side,
                message,
                retry_after: None,
            },
        }
    }

    /// A problem with what the app answered about one record.
    fn bad_record(
        &self,
        entity: EntityKind,
        id: Option<&str>,
        label: &str,
        message: impl std::fmt::Display,
    ) -> ConnectorError {
        ConnectorError::Record {
            side: self.side.clone(),
            entity,
            id: id.map(str::to_owned),
            message: format!("{label}: {message}"),
        }
    }

    /// A request body: the fields, under the request wrapper if any.
    fn wrap(api: &EntityApi, fields: Value) -> Value {
        match &api.request_wrapper {
            Some(wrapper) => {
                let mut outer = Map::new();
                outer.insert(wrapper.clone(), fields);
                Value::Object(outer)
            }
            None => fields,
        }
    }
}

fn capabilities(entities: &BTreeMap<EntityKind, EntityApi>, side: &RestSide) -> Capabilities {
    let writable = !side.read_only;
    let caps = entities
        .iter()
        .map(|(entity, api)| {
            (
                *entity,
                EntityCaps {
                    read: api.get.is_some() || api.list.is_some() || api.children.is_some(),
                    create: writable && api.create.is_some(),
                    update: writable && api.update.is_some(),
                    delete: writable && api.delete.is_some(),
                    change_feed: api.list.is_some(),
                },
            )
        })
        .collect();
    let contacts = entities.get(&EntityKind::Contact);
    let mut match_keys = Vec::new();
    if contacts.is_some_and(|c| c.lookup_email.is_some()) {
        match_keys.push(MatchKey::Email);
    }
    if contacts.is_some_and(|c| c.lookup_phone.is_some()) {
        match_keys.push(MatchKey::Phone);
    }
    Capabilities {
        entities: caps,
        webhooks: side.webhook_secret.is_some(),
        match_keys,
    }
}

fn render(parts: &[Part], vars: &[(&str, &str)], encode: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Placeholder(name) => {
                let value = vars
                    .iter()
                    .find(|(var, _)| var == name)
                    .map(|(_, value)| *value)
                    .unwrap_or_default();
                out.push_str(&encode(value));
            }
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so an id
/// stays one path segment whatever it holds.
fn encode_path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A template's path as written, with its placeholders as `:name` (a
/// brace inside a label value breaks common Prometheus text parsers).
fn render_template(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.clone(),
            Part::Placeholder(name) => format!(":{name}"),
        })
        .collect()
}

/// An id that can be put in a path: not empty, and not a dot segment
/// (which URL normalisation would turn into another resource).
fn usable_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".."
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}{path}"));
    url.set_query(None);
    url
}

/// Whether `url` is on the same origin as the side's base URL: the only
/// place credentials may be sent.
fn same_origin(url: &Url, base: &Url) -> bool {
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
}
