//! `/healthz`, `/readyz` and `/metrics`.
//!
//! Ready means the daemon is doing its job: the store answers, no side has
//! refused our credentials since its last good poll, and every side of
//! every pair was polled successfully within `server.ready_max_poll_age`.

use crate::domain::Side;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ServerState;
use crate::engine::Engine;

/// `GET /healthz`: the process answers.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// The `/readyz` body.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    pub checks: Vec<Check>,
}

/// One check; `detail` says what failed and where.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Check {
    pub check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pair: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
    pub ok: bool,
    pub detail: String,
}

/// Runs every readiness check.
pub async fn readiness(
    engine: &Engine,
    max_poll_age: std::time::Duration,
    now: DateTime<Utc>,
) -> Readiness {
    let mut checks = Vec::new();
    checks.push(match engine.store.ping().await {
        Ok(_) => check("store", None, None, true, "reachable".into()),
        Err(error) => check("store", None, None, false, error.to_string()),
    });
    let max_age = chrono::Duration::from_std(max_poll_age).unwrap_or(chrono::Duration::MAX);
    for pair in &engine.pairs {
        for role in Side::BOTH {
            let side = pair.connector(role).side().to_owned();
            let signals = pair.signals.side(role);
            let name = Some(pair.name().to_owned());
            checks.push(match &signals.credentials_refused {
                Some(why) => check(
                    "credentials",
                    name.clone(),
                    Some(side.clone()),
                    false,
                    why.clone(),
                ),
                None => check(
                    "credentials",
                    name.clone(),
                    Some(side.clone()),
                    true,
                    "accepted".into(),
                ),
            });
            checks.push(match signals.last_success {
                None => check(
                    "poll",
                    name,
                    Some(side),
                    false,
                    "no successful poll yet".into(),
                ),
                Some(at) if now - at > max_age => check(
                    "poll",
                    name,
                    Some(side),
                    false,
                    format!(
                        "last successful poll {}s ago, more than {}s",
                        (now - at).num_seconds(),
                        max_age.num_seconds()
                    ),
                ),
                Some(at) => check(
                    "poll",
                    name,
                    Some(side),
                    true,
                    format!("last successful poll {}s ago", (now - at).num_seconds()),
                ),
            });
        }
    }
    Readiness {
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

fn check(
    check: &'static str,
    pair: Option<String>,
    side: Option<String>,
    ok: bool,
    detail: String,
) -> Check {
    Check {
        check,
        pair,
        side,
        ok,
        detail,
    }
}

/// `GET /readyz`: 200 when ready, 503 otherwise; the body says which check
/// failed.
pub(super) async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    let readiness = readiness(&state.engine, state.server.ready_max_poll_age, Utc::now()).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `GET /metrics`: the counters kept as things happen, plus the store's
/// gauges read now.
pub(super) async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    if let Err(error) = store_gauges(&state.engine).await {
        tracing::warn!(error = %error, "metrics: the store's gauges could not be read");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Outbox depth, dead letters and open conflicts (counted per pair and
/// side by `Store::pair_backlog`), and sync lag, from the store.
async fn store_gauges(engine: &Engine) -> Result<(), crate::store::StoreError> {
    use crate::metrics::{DEAD_LETTERS, OPEN_CONFLICTS, OUTBOX_DEPTH, SYNC_LAG};
    let now = Utc::now();
    for pair in &engine.pairs {
        let name = pair.name().to_owned();
        let backlog = engine.store.pair_backlog(&name).await?;
        metrics::gauge!(OPEN_CONFLICTS, "pair" => name.clone()).set(backlog.open_conflicts as f64);
        for role in Side::BOTH {
            let side = pair.connector(role).side().to_owned();
            let outbox = backlog.outbox(role);
            for (status, count) in [
                ("pending", outbox.pending - outbox.in_flight),
                ("in_flight", outbox.in_flight),
                ("dead", outbox.failed),
            ] {
                metrics::gauge!(OUTBOX_DEPTH, "pair" => name.clone(), "side" => side.clone(), "status" => status)
                    .set(count as f64);
            }
            metrics::gauge!(DEAD_LETTERS, "pair" => name.clone(), "side" => side)
                .set(backlog.dead_letters(role) as f64);
        }
        for cursor in engine.store.cursors(&name).await? {
            let Some(watermark) = cursor.watermark else {
                continue;
            };
            let Some(role) = Side::BOTH.into_iter().find(|r| *r == cursor.side) else {
                continue;
            };
            let connector = pair.connector(role);
            let lag = (now - watermark).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!(
                SYNC_LAG,
                "pair" => name.clone(),
                "side" => connector.side().to_owned(),
                "location" => connector.location().unwrap_or("").to_owned(),
                "entity" => cursor.entity.as_str(),
            )
            .set(lag);
        }
    }
    Ok(())
}
