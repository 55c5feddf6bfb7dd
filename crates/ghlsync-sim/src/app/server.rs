//! The HTTP side: the request pipeline (faults, authentication, rate
//! limit, counters, logging) and the router. Connections are served by
//! the shared [`crate::faults`] listener so faults can reset them;
//! the fault and counting steps of the pipeline are the shared
//! [`Exchange`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::api;
use super::error::{ApiError, AppJson};
use super::limits::{CounterSnapshot, Decision, Limiter};
use super::model::Db;
use super::webhooks;
use crate::controls::SimCore;
use crate::faults::FaultKind;
pub(crate) use crate::server::lock;
use crate::server::{bearer, health, matched_route, Exchange};

/// The path every API route lives under.
pub const API_PREFIX: &str = "/api/v1";

/// State shared by the server and every [`super::AppSimHandle`].
pub(crate) struct Shared {
    /// Address, seed, faults, counters and webhook queue.
    pub core: SimCore<CounterSnapshot>,
    pub db: Mutex<Db>,
    pub tokens: Mutex<HashSet<String>>,
    pub limiter: Mutex<Limiter>,
    /// The webhook signing secret (read by the webhook worker).
    pub webhook_secret: Arc<RwLock<String>>,
}

impl Shared {
    /// Runs a mutation under the database lock and queues the webhook
    /// events it produced before releasing the lock (so the queue's order
    /// is the order of the writes).
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Db) -> Result<T, E>) -> Result<T, E> {
        let mut db = lock(&self.db);
        let out = f(&mut db);
        for event in db.take_events() {
            webhooks::enqueue(&self.core.webhooks, &event);
        }
        out
    }

    pub fn read<T>(&self, f: impl FnOnce(&Db) -> T) -> T {
        f(&lock(&self.db))
    }
}

fn rate_headers(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", decision.limit),
        ("x-ratelimit-remaining", decision.remaining),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

async fn pipeline(State(sim): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let route = matched_route(&req).to_string();
    let mut exchange = Exchange::begin(&sim.core, &req, route).await;
    let token = bearer(req.headers())
        .filter(|t| lock(&sim.tokens).contains(*t))
        .map(String::from);
    if let Some(token) = &token {
        lock(&sim.core.counters).arrival(token);
    }

    let mut decision = None;
    let response = 'respond: {
        if let Some((kind, response)) = exchange.before(
            &sim.core,
            |status| ApiError::injected(status).into_response(),
            || ApiError::rate_limited(1).into_response(),
        ) {
            if kind == FaultKind::TooManyRequests {
                decision = lock(&sim.limiter)
                    .peek(token.as_deref())
                    .map(|d| Decision { remaining: 0, ..d });
            }
            break 'respond response;
        }
        let Some(token) = &token else {
            break 'respond ApiError::unauthorized().into_response();
        };
        decision = lock(&sim.limiter).check(token);
        if let Some(d) = decision.filter(|d| !d.allowed) {
            break 'respond ApiError::rate_limited(d.retry_after).into_response();
        }
        let response = next.run(req).await;
        exchange
            .after(&sim.core, response, |status| {
                ApiError::injected(status).into_response()
            })
            .await
    };
    let mut response = response;
    let decision = decision.or_else(|| lock(&sim.limiter).peek(token.as_deref()));
    if let Some(d) = &decision {
        rate_headers(&mut response, d);
    }
    exchange.finish(&sim.core, response, "app sim")
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", method, uri.path()),
    )
    .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", method, uri.path()),
    )
    .into_response()
}

/// The simulator's routes. API routes go through the pipeline;
/// `/sim/health` does not.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let p = |path: &str| format!("{API_PREFIX}{path}");
    let api: Router<Arc<Shared>> = Router::new()
        .route(
            &p("/contacts"),
            get(api::list_contacts).post(api::create_contact),
        )
        .route(
            &p("/contacts/{contact_id}"),
            get(api::get_contact)
                .patch(api::update_contact)
                .delete(api::delete_contact),
        )
        .route(
            &p("/contacts/{contact_id}/tasks"),
            get(api::list_tasks).post(api::create_task),
        )
        .route(
            &p("/contacts/{contact_id}/tasks/{id}"),
            get(api::get_task)
                .patch(api::update_task)
                .delete(api::delete_task),
        )
        .route(
            &p("/contacts/{contact_id}/notes"),
            get(api::list_notes).post(api::create_note),
        )
        .route(
            &p("/contacts/{contact_id}/notes/{id}"),
            get(api::get_note)
                .patch(api::update_note)
                .delete(api::delete_note),
        )
        .route(&p("/tasks"), get(api::task_feed))
        .route(&p("/notes"), get(api::note_feed))
        .route(&p("/deleted"), get(api::deleted_feed))
        .route_layer(middleware::from_fn_with_state(shared.clone(), pipeline));
    Router::new()
        .merge(api)
        .route("/sim/health", get(health::<AppJson>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}
