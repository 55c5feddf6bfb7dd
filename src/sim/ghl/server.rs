//! The HTTP side: a TCP listener whose connections can be reset on
//! purpose, the request pipeline (faults, authentication, rate limits,
//! `Version` header, scopes, counters, logging) and the router.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::api;
use super::auth::{AuthState, TokenInfo, TokenState, UserType};
use super::error::{
    json_response, ApiError, MSG_AUTH_CLASS, MSG_EXPIRED_JWT, MSG_INVALID_JWT, MSG_SCOPE,
    MSG_TOO_MANY,
};
use super::faults::{html_page, FaultKind, FaultState};
use super::limits::{Counters, Decision, Limiter};
use super::model::Db;
use super::oauth_api;
use super::webhooks::Dispatcher;

/// The API version every `/contacts` route (and the OAuth routes that list
/// it) requires in the `Version` header.
pub const API_VERSION: &str = "2021-07-28";

/// Locks a mutex, ignoring poisoning (a panicking test must not wedge the
/// simulator for the others).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the server and every [`super::SimHandle`].
pub(crate) struct Shared {
    pub base_url: String,
    pub seed: u64,
    pub db: Mutex<Db>,
    pub auth: Mutex<AuthState>,
    pub limiter: Mutex<Limiter>,
    pub counters: Mutex<Counters>,
    pub faults: Mutex<FaultState>,
    pub webhooks: Dispatcher,
}

impl Shared {
    /// Runs a mutation under the database lock and queues the webhook
    /// events it produced before releasing the lock.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Db) -> Result<T, E>) -> Result<T, E> {
        let mut db = lock(&self.db);
        let out = f(&mut db);
        for event in db.take_events() {
            self.webhooks.enqueue(event);
        }
        out
    }

    pub fn read<T>(&self, f: impl FnOnce(&Db) -> T) -> T {
        f(&lock(&self.db))
    }
}

// ---------------------------------------------------------------------------
// Listener with resettable connections.

/// A TCP listener whose streams can be reset from a handler.
pub(crate) struct SimListener(pub TcpListener);

/// A TCP stream that fails every read and write once `kill` is set, after
/// setting `SO_LINGER` 0 so that closing it sends an RST.
pub(crate) struct SimStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl SimStream {
    fn killed(&self) -> bool {
        if self.kill.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            true
        } else {
            false
        }
    }
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "ghl sim: connection reset (fault)",
    )
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(reset_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl axum::serve::Listener for SimListener {
    type Io = SimStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SimStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        SimStream {
                            inner: stream,
                            kill: Arc::new(AtomicBool::new(false)),
                        },
                        addr,
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "ghl sim: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Per-connection handle given to the pipeline: resets the connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnCtl {
    kill: Arc<AtomicBool>,
}

impl ConnCtl {
    fn reset(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

impl Connected<axum::serve::IncomingStream<'_, SimListener>> for ConnCtl {
    fn connect_info(stream: axum::serve::IncomingStream<'_, SimListener>) -> Self {
        ConnCtl {
            kill: stream.io().kill.clone(),
        }
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
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

fn too_many(retry_after: u64) -> Response {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, MSG_TOO_MANY)
        .header(header::RETRY_AFTER, &retry_after.to_string())
        .into_response()
}

fn fault_status(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = code.canonical_reason().unwrap_or("Error");
    if matches!(status, 502..=504) {
        let mut response = Response::new(Body::from(html_page(status, reason)));
        *response.status_mut() = code;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        response
    } else if status == 500 {
        ApiError::new(code, "Internal server error").into_response()
    } else {
        ApiError::new(code, reason).into_response()
    }
}

/// A response whose body fails at once: the fallback way to drop a
/// connection when no [`ConnCtl`] is available.
fn broken_response() -> Response {
    let stream =
        futures::stream::once(async { Err::<axum::body::Bytes, io::Error>(reset_error()) });
    Response::new(Body::from_stream(stream))
}

/// Normalises axum's matched path to the spec's template.
fn template(matched: &str) -> String {
    match matched {
        "/contacts" => "/contacts/".to_string(),
        other => other.to_string(),
    }
}

async fn pipeline(State(sim): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = template(
        req.extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str)
            .unwrap_or("?"),
    );
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnCtl>>()
        .map(|c| c.0.clone());
    let rule = rule(&method, &route);
    let plan = lock(&sim.faults).plan(&method);
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let token = bearer(req.headers()).map(|t| lock(&sim.auth).lookup(t));
    if let Some(TokenState::Valid(info)) = &token {
        lock(&sim.counters).arrival(&info.rate_key());
    }

    let mut decision = None;
    let mut dropped = false;
    let response = 'respond: {
        if let Some(kind) = plan.before {
            lock(&sim.counters).fault(&kind.label());
            match kind {
                FaultKind::TooManyRequests => break 'respond too_many(1),
                FaultKind::Reset => {
                    dropped = true;
                    break 'respond match &conn {
                        Some(conn) => {
                            conn.reset();
                            StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        }
                        None => broken_response(),
                    };
                }
                FaultKind::Status(status) => break 'respond fault_status(status),
                _ => {}
            }
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
                break 'respond too_many(d.retry_after);
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
        match plan.after {
            Some(FaultKind::Truncate) => {
                lock(&sim.counters).fault("truncate");
                truncate(response).await
            }
            Some(FaultKind::Html) => {
                lock(&sim.counters).fault("html");
                let mut page = Response::new(Body::from(html_page(200, "OK")));
                page.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                page
            }
            Some(FaultKind::LoseResponse) => {
                lock(&sim.counters).fault("lose_response");
                dropped = true;
                match &conn {
                    Some(conn) => {
                        conn.reset();
                        response
                    }
                    None => broken_response(),
                }
            }
            _ => response,
        }
    };
    let mut response = response;
    if let Some(d) = &decision {
        rate_headers(&mut response, d);
    }
    let status = if dropped {
        0
    } else {
        response.status().as_u16()
    };
    lock(&sim.counters).record(method.as_str(), &route, status);
    tracing::debug!(
        method = %method,
        route = %route,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "ghl sim request"
    );
    response
}

/// Sends the first half of the body, with a matching `Content-Length`.
async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let cut = bytes.slice(0..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Cannot {} {}", method, uri.path()),
    )
    .into_response()
}

async fn sim_keys(State(sim): State<Arc<Shared>>) -> Response {
    let seed = sim.webhooks.seed();
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

async fn sim_health() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
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
        .route("/sim/health", get(sim_health))
        .fallback(not_found)
        .with_state(shared)
}

/// Serves until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router(shared).into_make_service_with_connect_info::<ConnCtl>();
    axum::serve(SimListener(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A JSON value's body for error-free responses (helper for handlers).
pub(crate) fn ok(status: StatusCode, value: Value) -> Response {
    json_response(status, &value)
}
