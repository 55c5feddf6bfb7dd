//! `[sides.<name>]` of kind `rest`: the operator's own app, described in
//! TOML so that connecting it needs no code.
//!
//! Every key, with its default (`config/connectors/app-sim.toml` is a
//! complete, commented example):
//!
//! ```toml
//! [sides.app]
//! kind = "rest"
//! base_url = "https://api.example.com/v1"  # required; templates are joined to it
//! timeout = "30s"                          # per request
//! max_body_bytes = "10MiB"                 # larger responses are refused (bytes, or "512KiB", "10MiB")
//! read_only = false                        # true: never write to this side
//! webhook_secret_file = "/etc/ghlsync/app-webhook-secret"  # or webhook_secret = "…"
//!
//! [sides.app.auth]                         # absent: no authentication
//! method = "bearer"                        # none | bearer | api_key | basic | oauth2_client_credentials
//! token_file = "/etc/ghlsync/app-token"    # bearer: token / token_file
//! # api_key: key / key_file, and header = "X-Api-Key" or query = "api_key"
//! # basic: username, password / password_file
//! # oauth2_client_credentials: token_url, client_id, client_secret / client_secret_file,
//! #   scopes = ["…"], client_auth = "basic" (HTTP Basic, the default) | "body" (form fields)
//!
//! [sides.app.rate_limit]                   # never more than `requests` in any `per`
//! requests = 10
//! per = "1s"
//!
//! [sides.app.retry]                        # 429, 5xx, timeouts, resets; Retry-After honoured
//! max_attempts = 6                         # in all, the first included
//! min_delay = "250ms"                      # exponential with jitter, up to
//! max_delay = "30s"
//!
//! [sides.app.webhook]                      # needs webhook_secret
//! signature_header = "X-Signature"         # HMAC-SHA256 of the raw body
//! signature_prefix = "sha256="             # before the signature; "" for none
//! signature_encoding = "hex"               # or "base64"
//! timestamp_header = "X-Timestamp"         # optional: epoch s/ms or RFC 3339
//! tolerance = "5m"                         # how old (or early) a timestamp may be
//! entity_pointer = "/entity"               # JSON pointers into the event body
//! id_pointer = "/id"
//! parent_pointer = "/contact_id"           # optional: the owning contact
//!
//! [sides.app.contacts]                     # required; tasks and notes optional
//! list = "GET /contacts"                   # the change feed and full listing
//! updated_since_param = "updated_since"    # the feed's inclusive lower bound
//! timestamp_format = "rfc3339"             # rfc3339 | epoch_seconds | epoch_millis
//! records_pointer = "/data"                # the array in a listing ("" = the body is the array)
//! id_pointer = "/id"
//! updated_at_pointer = "/updated_at"
//! get = "GET /contacts/{id}"               # `{id}`, `{contact_id}`: URL-encoded when substituted
//! create = "POST /contacts"                # POST or PUT
//! update = "PATCH /contacts/{id}"          # PATCH (the patch) or PUT (the merged record)
//! delete = "DELETE /contacts/{id}"
//! wrapper = "data"                         # optional: bodies sent as {"data": …}, records read from under it
//! request_wrapper = "data"                 # optional: overrides `wrapper` for requests ("" = none)
//! record_pointer = "/data"                 # optional: overrides `wrapper` for single-record responses
//! conflict_id_pointer = "/existing_id"     # optional: a 409 to a create names the existing record here
//! lookup_email = "GET /contacts?email={value}"  # first matching record of the listing is the match
//! lookup_phone = "GET /contacts?phone={value}"
//! email_field = "email"                    # native fields holding email and phone (for create's lookup)
//! phone_field = "phone"
//! [sides.app.contacts.pagination]
//! style = "cursor"                         # none | page | offset | cursor | link_header | next_url
//! # page:        page_param (required), size_param + size, first = 1
//! # offset:      offset_param (required), limit_param + limit
//! # cursor:      cursor_param, cursor_pointer (required), limit_param + limit
//! # link_header: limit_param + limit (the next URL is Link: <…>; rel="next")
//! # next_url:    next_pointer (required), limit_param + limit
//! cursor_param = "cursor"
//! cursor_pointer = "/next_cursor"
//! limit_param = "limit"
//! limit = 100
//!
//! [sides.app.tasks]                        # sub-resources of a contact: same keys, plus
//! parent_pointer = "/contact_id"           # required: the record's contact id
//! children = "GET /contacts/{contact_id}/tasks"   # required: one contact's records
//! # `{contact_id}` in create/get/update/delete is optional (flat APIs such as
//! # "GET /tasks/{id}"); a create without it carries the contact at parent_pointer.
//! ```

mod auth;
mod entity;
mod pagination;

use std::time::Duration;

use self::auth::read_rest_auth;
use self::entity::{read_entity, Kind};
use super::reader::{Got, Table};
use crate::connector::rest::settings::{RestAuth, RestRateLimit, RestSide, DEFAULT_MAX_BODY_BYTES};
use crate::connector::rest::spec::{JsonPointer, SignatureEncoding, WebhookSpec};

pub(crate) fn read_rest(table: &mut Table<'_>) -> Option<RestSide> {
    let base_url = table.http_url("base_url");
    let base_url = table.required(
        "base_url",
        base_url,
        "the app's API root, for example \"https://api.example.com/v1\"",
    );
    let webhook_secret = table.secret("webhook_secret", "webhook_secret_file");
    let webhook_secret = match webhook_secret {
        Got::Value(secret) => Some(Some(secret)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    };
    let auth = match table.table("auth") {
        Got::Value(mut auth) => {
            let read = read_rest_auth(&mut auth);
            if auth.was_valid("method") {
                auth.finish();
            }
            read
        }
        Got::Absent => Some(RestAuth::None),
        Got::Invalid => None,
    };
    let timeout = table
        .duration("timeout")
        .with_default(|| Duration::from_secs(30));
    let max_body_bytes = table
        .parse(
            "max_body_bytes",
            "a size in bytes such as 1048576, \"512KiB\" or \"10MiB\"",
            parse_size,
        )
        .with_default(|| DEFAULT_MAX_BODY_BYTES);
    let read_only = table
        .parse("read_only", "true or false", |text| {
            text.trim().parse::<bool>().map_err(|_| String::new())
        })
        .with_default(|| false);
    let rate_limit = read_rate_limit(table);
    let retry = super::retry::read_retry(table);
    let webhook = match table.table("webhook") {
        Got::Value(mut webhook) => {
            let read = read_webhook(&mut webhook);
            if matches!(webhook_secret, Some(None)) {
                webhook.report_table(
                    "webhook settings need `webhook_secret` (or `webhook_secret_file`) on the side",
                );
            }
            webhook.finish();
            read
        }
        Got::Absent => Some(WebhookSpec::default()),
        Got::Invalid => None,
    };
    let contacts = match read_entity(table, "contacts", Kind::Contacts) {
        Some(Some(contacts)) => Some(contacts),
        Some(None) => {
            table.report_table(
                "missing required table `contacts`: describe at least how contacts are listed (`list`) or read (`get`); see config/connectors/app-sim.toml",
            );
            None
        }
        None => None,
    };
    let tasks = read_entity(table, "tasks", Kind::Child);
    let notes = read_entity(table, "notes", Kind::Child);
    Some(RestSide {
        base_url: base_url?,
        auth: auth?,
        webhook_secret: webhook_secret?,
        timeout: timeout?,
        max_body_bytes: max_body_bytes?,
        rate_limit: rate_limit?,
        retry: retry?,
        webhook: webhook?,
        read_only: read_only?,
        contacts: contacts?,
        tasks: tasks?,
        notes: notes?,
    })
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| String::new())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1024,
        "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown unit `{other}`")),
    };
    match number.checked_mul(factor) {
        Some(0) => Err("must be more than zero".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err("too large".to_owned()),
    }
}

fn read_rate_limit(side: &mut Table<'_>) -> Option<RestRateLimit> {
    let defaults = RestRateLimit::default();
    let mut table = match side.table("rate_limit") {
        Got::Value(table) => table,
        Got::Absent => return Some(defaults),
        Got::Invalid => return None,
    };
    let requests = table
        .integer_in("requests", 1, 1_000_000)
        .with_default(|| defaults.requests.into());
    let per = table.duration("per").with_default(|| defaults.per);
    table.finish();
    Some(RestRateLimit {
        requests: u32::try_from(requests?).ok()?,
        per: per?,
    })
}

fn pointer(table: &mut Table<'_>, key: &'static str) -> Got<JsonPointer> {
    table.parse(
        key,
        "an RFC 6901 JSON pointer such as \"/id\" or \"/data/0/id\"",
        JsonPointer::parse,
    )
}

fn pointer_or(table: &mut Table<'_>, key: &'static str, default: &str) -> Option<JsonPointer> {
    pointer(table, key).with_default(|| JsonPointer::parse(default).expect("default pointer"))
}

/// A top-level key name (a wrapper, a field name).
fn key_name(table: &mut Table<'_>, key: &'static str) -> Got<String> {
    table.parse(key, "a field name such as \"data\"", |text| {
        Ok(text.trim().to_owned())
    })
}

fn read_webhook(table: &mut Table<'_>) -> Option<WebhookSpec> {
    let defaults = WebhookSpec::default();
    let signature_header =
        header_name(table, "signature_header").with_default(|| defaults.signature_header.clone());
    let signature_prefix = table
        .string("signature_prefix")
        .with_default(|| defaults.signature_prefix.clone());
    let signature_encoding = table
        .one_of("signature_encoding", &["hex", "base64"])
        .map(|e| match e {
            "base64" => SignatureEncoding::Base64,
            _ => SignatureEncoding::Hex,
        })
        .with_default(|| defaults.signature_encoding);
    let timestamp_header = header_name(table, "timestamp_header");
    let timestamp_header = match timestamp_header {
        Got::Value(h) => Some(Some(h)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    };
    let tolerance = table
        .duration("tolerance")
        .with_default(|| defaults.tolerance);
    let entity_pointer = pointer_or(table, "entity_pointer", "/entity");
    let id_pointer = pointer_or(table, "id_pointer", "/id");
    let parent_pointer = match pointer(table, "parent_pointer") {
        Got::Value(p) => Some(Some(p)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    };
    Some(WebhookSpec {
        signature_header: signature_header?,
        signature_prefix: signature_prefix?,
        signature_encoding: signature_encoding?,
        timestamp_header: timestamp_header?,
        tolerance: tolerance?,
        entity_pointer: entity_pointer?,
        id_pointer: id_pointer?,
        parent_pointer: parent_pointer?,
    })
}

fn header_name(table: &mut Table<'_>, key: &'static str) -> Got<String> {
    table.parse(key, "an HTTP header name such as \"X-Signature\"", |text| {
        let text = text.trim();
        reqwest::header::HeaderName::from_bytes(text.as_bytes())
            .map(|_| text.to_owned())
            .map_err(|_| "not a valid header name".to_owned())
    })
}

fn optional<T>(got: Got<T>) -> Option<Option<T>> {
    match got {
        Got::Value(v) => Some(Some(v)),
        Got::Absent => Some(None),
        Got::Invalid => None,
    }
}
