//! The daemon's HTTP server (axum): signed webhooks that queue targeted
//! syncs, and `/healthz`, `/readyz`, `/metrics` for operators. It shares
//! the engine with the daemon and never syncs inside a request.
//!
//! ```text
//! POST /webhooks/ghl            GHL deliveries (RSA / Ed25519 signatures)
//! POST /webhooks/app[/<side>]   the app's deliveries (its HMAC)
//! GET  /healthz                 the process answers
//! GET  /readyz                  store, credentials, poll freshness (JSON)
//! GET  /metrics                 Prometheus text format
//! ```

mod health;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use crate::config::{ServerSettings, Settings, SideKind, WebhookSettings};
use crate::domain::Side;
use crate::engine::{Engine, Shutdown, TargetQueue};

pub use health::{readiness, Readiness};

/// What the handlers share.
pub struct ServerState {
    engine: Engine,
    targets: TargetQueue,
    server: ServerSettings,
    webhooks: WebhookSettings,
    /// GHL location id -> the (pair, role) it is a side of.
    ghl_locations: HashMap<String, Vec<(String, Side)>>,
    /// The other sides (REST apps), which take `/webhooks/app/<side>`.
    app_sides: Vec<String>,
    metrics: PrometheusHandle,
}

impl ServerState {
    pub fn new(engine: Engine, settings: &Settings, targets: TargetQueue) -> Arc<ServerState> {
        let mut ghl_locations: HashMap<String, Vec<(String, Side)>> = HashMap::new();
        let mut app_sides = Vec::new();
        for pair in &engine.pairs {
            for role in Side::BOTH {
                let name = pair.settings.side_name(role);
                match settings.sides.get(name).map(|s| &s.kind) {
                    Some(SideKind::Ghl(ghl)) => ghl_locations
                        .entry(ghl.location_id.clone())
                        .or_default()
                        .push((pair.name().to_owned(), role)),
                    _ if !app_sides.iter().any(|known| known == name) => {
                        app_sides.push(name.to_owned())
                    }
                    _ => {}
                }
            }
        }
        Arc::new(ServerState {
            engine,
            targets,
            server: settings.server.clone(),
            webhooks: settings.webhooks.clone(),
            ghl_locations,
            app_sides,
            metrics: crate::metrics::install(),
        })
    }
}

/// The routes, with the body limit on every one of them.
pub fn router(state: Arc<ServerState>) -> Router {
    let limit = state.server.max_body_bytes;
    Router::new()
        .route("/webhooks/ghl", post(webhooks::ghl))
        .route("/webhooks/app", post(webhooks::only_app))
        .route("/webhooks/app/{side}", post(webhooks::app))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves until `stop`; requests in progress finish first.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    stop: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stop.stopped().await })
        .await
}
