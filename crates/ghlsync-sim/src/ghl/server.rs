//! The HTTP side: the request pipeline (faults, authentication, rate
//! limits, `Version` header, scopes, counters, logging) and the router.
//! Connections are served by the shared [`crate::faults`] listener so
//! faults can reset them; the fault and counting steps of the pipeline are
//! the shared [`Exchange`].

use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};

use super::api;
use super::auth::{AuthState, TokenInfo, TokenState, UserType};
use super::error::{
    json_response, ApiError, GhlJson, MSG_AUTH_CLASS, MSG_EXPIRED_JWT, MSG_INVALID_JWT, MSG_SCOPE,
};
use super::limits::{CounterSnapshot, Decision, Limiter};
use super::model::Db;
use super::oauth_api;
use super::webhooks;
use crate::controls::SimCore;
pub(crate) use crate::server::lock;
use crate::server::{bearer, health, matched_route, Exchange};

/// The API version every `/contacts` route (and the OAuth routes that list
/// it) requires in the `Version` header.
pub const API_VERSION: &str = "2021-07-28";

/// State shared by the server and every [`super::SimHandle`].
pub(crate) struct Shared {
    /// Address, seed, faults, counters and webhook queue.
    pub core: SimCore<CounterSnapshot>,
    pub db: Mutex<Db>,
    pub auth: Mutex<AuthState>,
    pub limiter: Mutex<Limiter>,
}

impl Shared {
    /// Runs a mutation under the database lock and queues the webhook
    /// events it produced before releasing the lock.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Db) -> Result<T, E>) -> Result<T, E> {
        let mut db = lock(&self.db);
        let out = f(&mut db);
        for event in db.take_events() {
            webhooks::enqueue(&self.core.webhooks, event);
        }
        out
    }

    pub fn read<T>(&self, f: impl FnOnce(&Db) -> T) -> T {
        f(&lock(&self.db))
    }
}

// ---------------------------------------------------------------------------
// Pipeline.

/// The authenticated caller, available to handlers as an extension.
#[derive(Clone, Debug)]
pub(crate) struct AuthCtx(pub TokenInfo);

impl AuthCtx {
    /// 403 unless the token is for this location.
    pub fn check_location(&self, location_id: &str) -> Result<(), ApiError> {
        if self.0.location_id.as_deref() == Some(location_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    auth: Option<(UserType, &'static str)>,
    version: bool,
}

/// Authentication, scope and `Version` rules per route, from the spec and
/// Scopes.md: reads (GET, and POST /contacts/search) need
/// `contacts.readonly`, every other /contacts route `contacts.write`.
fn rule(method: &Method, route: &str) -> Rule {
    match route {
        "/oauth/token" => Rule {
            auth: None,
            version: false,
        },
        "/oauth/locationToken" => Rule {
            auth: Some((UserType::Company, "oauth.write")),
            version: true,
        },
        "/oauth/installedLocations" => Rule {
            auth: Some((UserType::Company, "oauth.readonly")),
            version: true,
        },
        // `apps/locations.json`, `task-search`: its `security` names
        // `locations/tasks.readonly`, not a contacts scope.
        "/locations/{locationId}/tasks/search" => Rule {
            auth: Some((UserType::Location, "locations/tasks.readonly")),
            version: true,
        },
        _ => {
            let read =
                *method == Method::GET || (*method == Method::POST && route == "/contacts/search");
            Rule {
                auth: Some((
                    UserType::Location,
                    if read {
                        "contacts.readonly"
                    } else {
                        "contacts.write"
                    },
                )),
                version: true,
            }
        }
    }
}

fn rate_headers(response: &mut Response, decision: &Decision) {
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-ratelimit-max", decision.config.burst.to_string());
    set(
        "x-ratelimit-interval-milliseconds",
        decision.config.interval.as_millis().to_string(),
    );
    set("x-ratelimit-remaining", decision.remaining.to_string());
    set("x-ratelimit-limit-daily", decision.config.daily.to_string());
    set(
        "x-ratelimit-daily-remaining",
        decision.daily_remaining.to_string(),
    );
}

/// Normalises axum's matched path to the spec's template.
fn template(matched: &str) -> String {
    match matched {
        "/contacts" => "/contacts/".to_string(),
        other => other.to_string(),
    }
}

async fn pipeline(State(sim): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let route = template(matched_route(&req));
    let rule = rule(req.method(), &route);
    let mut exchange = Exchange::begin(&sim.core, &req, route).await;
    let token = bearer(req.headers()).map(|t| lock(&sim.auth).lookup(t));
    if let Some(TokenState::Valid(info)) = &token {
        lock(&sim.core.counters).arrival(&info.rate_key());
    }

    let mut decision = None;
    let response = 'respond: {
        if let Some((_, response)) = exchange.before(
            &sim.core,
            |status| ApiError::injected(status).into_response(),
            || ApiError::too_many(1).into_response(),
        ) {
            break 'respond response;
        }
        let info = match (rule.auth, token) {
            (None, _) => None,
            (Some(_), Some(TokenState::Valid(info))) => Some(info),
            (Some(_), Some(TokenState::Expired)) => {
                break 'respond ApiError::unauthorized(MSG_EXPIRED_JWT).into_response()
            }
            (Some(_), _) => break 'respond ApiError::unauthorized(MSG_INVALID_JWT).into_response(),
        };
        if let Some(info) = &info {
            let d = lock(&sim.limiter).check(&info.rate_key());
            decision = Some(d);
            if !d.allowed {
                break 'respond ApiError::too_many(d.retry_after).into_response();
            }
        }
        if rule.version {
            let version = req
                .headers()
                .get("version")
                .map(|v| v.to_str().unwrap_or("?").to_string());
            match version.as_deref() {
                Some(API_VERSION) => {}
                None => {
                    break 'respond ApiError::unprocessable(vec![format!(
                        "Version header is missing; send Version: {API_VERSION}"
                    )])
                    .into_response()
                }
                Some(other) => {
                    break 'respond ApiError::unprocessable(vec![format!(
                    "Version header value '{other}' is not supported; send Version: {API_VERSION}"
                )])
                    .into_response()
                }
            }
        }
        if let (Some((class, scope)), Some(info)) = (rule.auth, &info) {
            if info.user_type != class {
                break 'respond ApiError::unauthorized(MSG_AUTH_CLASS).into_response();
            }
            if !info.scopes.contains(scope) {
                break 'respond ApiError::unauthorized(MSG_SCOPE).into_response();
            }
            req.extensions_mut().insert(AuthCtx(info.clone()));
        }
        let response = next.run(req).await;
        exchange
            .after(&sim.core, response, |status| {
                ApiError::injected(status).into_response()
            })
            .await
    };
    let mut response = response;
    if let Some(d) = &decision {
        rate_headers(&mut response, d);
    }
    exchange.finish(&sim.core, response, "ghl sim")
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Cannot {} {}", method, uri.path()),
    )
    .into_response()
}

async fn sim_keys(State(sim): State<Arc<Shared>>) -> Response {
    let seed = sim.core.seed;
    let keys = tokio::task::spawn_blocking(move || super::webhooks::signing_keys(seed))
        .await
        .map(|k| k.public.clone());
    match keys {
        Ok(keys) => json_response(
            StatusCode::OK,
            &json!({"rsa": keys.rsa_pem, "ed25519": keys.ed25519_pem}),
        ),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The simulator's routes. API routes go through the pipeline; `/sim/*`
/// (keys, health) do not.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let api: Router<Arc<Shared>> = Router::new()
        .route(
            "/contacts/",
            get(api::list_contacts).post(api::create_contact),
        )
        .route(
            "/contacts",
            get(api::list_contacts).post(api::create_contact),
        )
        .route("/contacts/upsert", post(api::upsert_contact))
        .route("/contacts/search", post(api::search_contacts))
        .route("/contacts/search/duplicate", get(api::duplicate))
        .route("/contacts/business/{businessId}", get(api::by_business))
        .route(
            "/contacts/{contactId}",
            get(api::get_contact)
                .put(api::update_contact)
                .delete(api::delete_contact),
        )
        .route(
            "/contacts/{contactId}/tasks",
            get(api::list_tasks).post(api::create_task),
        )
        .route(
            "/contacts/{contactId}/tasks/{taskId}",
            get(api::get_task)
                .put(api::update_task)
                .delete(api::delete_task),
        )
        .route(
            "/contacts/{contactId}/tasks/{taskId}/completed",
            put(api::complete_task),
        )
        .route(
            "/contacts/{contactId}/notes",
            get(api::list_notes).post(api::create_note),
        )
        .route(
            "/contacts/{contactId}/notes/{id}",
            get(api::get_note)
                .put(api::update_note)
                .delete(api::delete_note),
        )
        .route("/contacts/{contactId}/appointments", get(api::appointments))
        .route(
            "/locations/{locationId}/tasks/search",
            post(super::tasks_search::search_tasks),
        )
        .route(
            "/contacts/{contactId}/tags",
            post(api::add_tags).delete(api::remove_tags),
        )
        .route("/oauth/token", post(oauth_api::token))
        .route("/oauth/locationToken", post(oauth_api::location_token))
        .route(
            "/oauth/installedLocations",
            get(oauth_api::installed_locations),
        )
        .route_layer(middleware::from_fn_with_state(shared.clone(), pipeline));
    Router::new()
        .merge(api)
        .route("/sim/keys", get(sim_keys))
        .route("/sim/health", get(health::<GhlJson>))
        .fallback(not_found)
        .with_state(shared)
}

/// A JSON value's body for error-free responses (helper for handlers).
pub(crate) fn ok(status: StatusCode, value: Value) -> Response {
    json_response(status, &value)
}
