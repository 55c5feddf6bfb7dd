//! Webhook endpoints. Each delivery is verified over its raw bytes before
//! anything else, then checked for replay, then turned into targeted syncs
//! on the engine's queue; the answer goes back at once. Payloads are
//! triggers, never truth: the record is fetched fresh.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::ServerState;
use crate::connector::ghl::webhook::{EventAction, GhlEvent, WebhookError as GhlWebhookError};
use crate::connector::http::bounded;
use crate::connector::WebhookError as AppWebhookError;
use crate::domain::{EntityKind, Side};

use crate::engine::{Target, TargetSlot};

/// How a delivery ended, for the answer, the log and the metric.
struct Outcome {
    status: StatusCode,
    /// The metric's `result` label.
    result: &'static str,
    /// The event type (GHL: a known one, else `other`) or entity (app);
    /// `unknown` before verification. A metric label: never the sender's
    /// own text.
    kind: &'static str,
    message: String,
}

impl Outcome {
    fn refused(
        status: StatusCode,
        result: &'static str,
        kind: &'static str,
        message: String,
    ) -> Self {
        Outcome {
            status,
            result,
            kind,
            message,
        }
    }

    fn ok(result: &'static str, kind: &'static str, message: impl Into<String>) -> Self {
        Outcome {
            status: StatusCode::OK,
            result,
            kind,
            message: message.into(),
        }
    }

    /// Logs, counts and answers. Refusals are warnings: a forged or
    /// replayed delivery is worth an operator's attention. The metric is
    /// labelled by the route's template (`/webhooks/app/:side`) and the
    /// outcome, never by anything the delivery carries.
    fn respond(self, route: &'static str, source: &'static str) -> Response {
        metrics::counter!(
            crate::metrics::WEBHOOK_EVENTS,
            "route" => route,
            "source" => source,
            "type" => self.kind,
            "result" => self.result,
        )
        .increment(1);
        if self.status.is_success() {
            tracing::debug!(source, event = %self.kind, result = self.result, "webhook {}", self.message);
        } else {
            tracing::warn!(
                source,
                event = %self.kind,
                result = self.result,
                status = self.status.as_u16(),
                "webhook refused: {}",
                self.message
            );
        }
        let body = if self.status.is_success() {
            json!({"result": self.result})
        } else {
            json!({"result": self.result, "error": self.message})
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == BUSY {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(BUSY_RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

const UNKNOWN: &str = "unknown";

/// What a delivery that cannot be taken now is answered with: 429, the
/// only status GHL retries (`FIELD-NOTES.md`, "Webhook retries": any other,
/// a 5xx included, is final and the event is lost), with a `Retry-After`
/// in seconds. GHL retries about ten minutes apart whatever it says; a
/// minute is what we would need.
const BUSY: StatusCode = StatusCode::TOO_MANY_REQUESTS;
const BUSY_RETRY_AFTER_SECONDS: u64 = 60;

/// `POST /webhooks/ghl`.
pub(super) async fn ghl(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Instant::now();
    accept_ghl(&state, &headers, &body, Utc::now(), received)
        .await
        .respond("/webhooks/ghl", "ghl")
}

async fn accept_ghl(
    state: &ServerState,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    received: Instant,
) -> Outcome {
    let event = match verified_ghl_event(state, headers, body) {
        Ok(event) => event,
        Err(outcome) => return outcome,
    };
    let kind = event.type_label();
    let webhook_id = match replay_checked_id(state, &event, now) {
        Ok(id) => id,
        Err(outcome) => return outcome,
    };
    let location = event.location_id.clone().unwrap_or_default();
    let routes = state
        .ghl_locations
        .get(&location)
        .cloned()
        .unwrap_or_default();
    let record = match synced_record(&event, &location) {
        Ok(record) => record,
        Err(outcome) => return outcome,
    };
    if routes.is_empty() {
        return Outcome::ok(
            "ignored",
            kind,
            format!("location {} is not synced here", bounded(&location)),
        );
    }
    let slots = match reserve(state, routes.len(), kind) {
        Ok(slots) => slots,
        Err(outcome) => return outcome,
    };
    if let Err(outcome) = remember_delivery(state, &webhook_id, now, kind).await {
        return outcome;
    }
    dispatch(state, routes, slots, &record, now, received);
    Outcome::ok("accepted", kind, "queued")
}

/// The delivery's signature checked with GHL's keys over the raw bytes,
/// then its body read as an event.
fn verified_ghl_event(
    state: &ServerState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<GhlEvent, Outcome> {
    let unauthorized =
        |result, message| Outcome::refused(StatusCode::UNAUTHORIZED, result, UNKNOWN, message);
    match state.webhooks.ghl_keys.verify(headers, body) {
        Ok(_) => {}
        Err(error @ GhlWebhookError::MissingSignature) => {
            return Err(unauthorized("missing_signature", error.to_string()))
        }
        Err(error) => return Err(unauthorized("bad_signature", error.to_string())),
    }
    GhlEvent::parse(body).map_err(|error| {
        Outcome::refused(
            StatusCode::BAD_REQUEST,
            "malformed",
            UNKNOWN,
            error.to_string(),
        )
    })
}

/// Replay protection (WebhookAuthentication.md): a timestamp within the
/// window, and a webhookId (each is accepted once, see
/// [`remember_delivery`]).
fn replay_checked_id(
    state: &ServerState,
    event: &GhlEvent,
    now: DateTime<Utc>,
) -> Result<String, Outcome> {
    let refuse = |result, message: String| {
        Outcome::refused(
            StatusCode::UNAUTHORIZED,
            result,
            event.type_label(),
            message,
        )
    };
    let Some(sent) = event.timestamp else {
        return Err(refuse(
            "stale",
            "the delivery has no timestamp, so its age cannot be checked".into(),
        ));
    };
    let window =
        chrono::Duration::from_std(state.webhooks.replay_window).unwrap_or(chrono::Duration::MAX);
    let skew = (now - sent).abs();
    if skew > window {
        return Err(refuse(
            "stale",
            format!(
                "timestamp {sent} is {}s from now, outside the {}s replay window",
                skew.num_seconds(),
                window.num_seconds()
            ),
        ));
    }
    event
        .webhook_id
        .clone()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            refuse(
                "missing_id",
                "the delivery has no webhookId, so a replay could not be told apart".into(),
            )
        })
}

/// The record an event asks to sync; the other events (install,
/// uninstall, the ones the sync does not use) are answered at once.
fn synced_record(event: &GhlEvent, location: &str) -> Result<Record, Outcome> {
    let kind = event.type_label();
    match event.action() {
        EventAction::Sync {
            entity,
            id,
            parent_id,
        } => Ok(Record {
            entity,
            id,
            parent_id,
        }),
        EventAction::Install => {
            tracing::info!(location = %bounded(location), "GHL reports the app installed on a location");
            Err(Outcome::ok("install", kind, "noted"))
        }
        EventAction::Uninstall => {
            tracing::warn!(location = %bounded(location), "GHL reports the app uninstalled from a location: its tokens stop working and its pairs will turn unready");
            Err(Outcome::ok("uninstall", kind, "noted"))
        }
        EventAction::Ignore => Err(Outcome::ok("ignored", kind, "not an event the sync uses")),
    }
}

/// Notes the delivery as accepted, refusing one whose webhookId was
/// accepted before (a replay).
async fn remember_delivery(
    state: &ServerState,
    webhook_id: &str,
    now: DateTime<Utc>,
    kind: &'static str,
) -> Result<(), Outcome> {
    match state
        .engine
        .store
        .accept_delivery("ghl", webhook_id, now)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Outcome::refused(
            StatusCode::CONFLICT,
            "replayed",
            kind,
            format!("webhookId {} was already accepted", bounded(webhook_id)),
        )),
        Err(error) => Err(Outcome::refused(
            BUSY,
            "store_unavailable",
            kind,
            error.to_string(),
        )),
    }
}

/// The record a verified delivery names.
struct Record {
    entity: EntityKind,
    id: String,
    parent_id: Option<String>,
}

/// Queues a targeted sync of `record` for each (pair, role) the delivery
/// is addressed to, in the slots reserved for them, and notes that the
/// side's webhooks are arriving.
fn dispatch(
    state: &ServerState,
    routes: Vec<(String, Side)>,
    slots: Vec<TargetSlot<'_>>,
    record: &Record,
    now: DateTime<Utc>,
    received: Instant,
) {
    for ((pair, role), slot) in routes.into_iter().zip(slots) {
        if let Some(runtime) = state.engine.pairs.iter().find(|p| p.name() == pair) {
            runtime.signals.webhook_arrived(role, now);
        }
        let target = Target {
            pair,
            source: role,
            entity: record.entity,
            id: record.id.clone(),
            parent_id: record.parent_id.clone(),
        };
        slot.send(target, received);
    }
}

/// Places for `n` targets, or a 429 the sender retries later (before the
/// delivery is remembered, so the retry is not taken for a replay).
fn reserve<'s>(
    state: &'s ServerState,
    n: usize,
    kind: &'static str,
) -> Result<Vec<TargetSlot<'s>>, Outcome> {
    (0..n)
        .map(|_| state.targets.reserve())
        .collect::<Result<_, _>>()
        .map_err(|full| Outcome::refused(BUSY, "queue_full", kind, full.to_string()))
}

/// `POST /webhooks/app`: the one app side, when there is exactly one.
pub(super) async fn only_app(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let sides = &state.app_sides;
    match sides.as_slice() {
        [side] => {
            let side = side.clone();
            accept_app(&state, &side, &headers, &body)
                .await
                .respond("/webhooks/app", "app")
        }
        _ => Outcome::refused(
            StatusCode::NOT_FOUND,
            "unknown_side",
            UNKNOWN,
            format!(
                "{} app sides are configured ({}): post to /webhooks/app/<side>",
                sides.len(),
                sides.join(", ")
            ),
        )
        .respond("/webhooks/app", "app"),
    }
}

/// `POST /webhooks/app/<side>`.
pub(super) async fn app(
    State(state): State<Arc<ServerState>>,
    Path(side): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    accept_app(&state, &side, &headers, &body)
        .await
        .respond("/webhooks/app/:side", "app")
}

async fn accept_app(state: &ServerState, side: &str, headers: &HeaderMap, body: &[u8]) -> Outcome {
    let received = Instant::now();
    let now = Utc::now();
    let routes: Vec<(String, Side)> = state
        .engine
        .pairs
        .iter()
        .flat_map(|pair| Side::BOTH.map(|role| (pair.clone(), role)))
        .filter(|(pair, role)| pair.connector(*role).side() == side)
        .map(|(pair, role)| (pair.name().to_owned(), role))
        .collect();
    let Some((first_pair, first_role)) = routes.first().cloned() else {
        return Outcome::refused(
            StatusCode::NOT_FOUND,
            "unknown_side",
            UNKNOWN,
            format!("no side named `{}` takes part in a pair", bounded(side)),
        );
    };
    let connector = state
        .engine
        .pairs
        .iter()
        .find(|p| p.name() == first_pair)
        .map(|p| p.connector(first_role));
    let verified = connector.and_then(|c| c.verify_webhook(headers, body, now));
    let event = match verified {
        None => {
            return Outcome::refused(
                StatusCode::NOT_FOUND,
                "unknown_side",
                UNKNOWN,
                format!("side `{}` has no webhooks of its own", bounded(side)),
            );
        }
        Some(Ok(event)) => event,
        Some(Err(error)) => {
            let (status, result) = match &error {
                AppWebhookError::NotConfigured { .. } => {
                    (StatusCode::UNAUTHORIZED, "not_configured")
                }
                AppWebhookError::MissingSignature { .. } => {
                    (StatusCode::UNAUTHORIZED, "missing_signature")
                }
                AppWebhookError::BadSignature { .. } => (StatusCode::UNAUTHORIZED, "bad_signature"),
                AppWebhookError::MissingTimestamp { .. }
                | AppWebhookError::BadTimestamp { .. }
                | AppWebhookError::StaleTimestamp { .. } => (StatusCode::UNAUTHORIZED, "stale"),
                AppWebhookError::Malformed { .. } => (StatusCode::BAD_REQUEST, "malformed"),
            };
            return Outcome::refused(status, result, UNKNOWN, error.to_string());
        }
    };
    let kind = event.entity.as_str();
    let slots = match reserve(state, routes.len(), kind) {
        Ok(slots) => slots,
        Err(outcome) => return outcome,
    };
    let record = Record {
        entity: event.entity,
        id: event.id,
        parent_id: event.parent_id,
    };
    dispatch(state, routes, slots, &record, now, received);
    Outcome::ok("accepted", kind, "queued")
}
