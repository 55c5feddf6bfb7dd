//! The HTTP plumbing shared by the simulators' servers, written once so
//! both behave alike where their APIs do not differ: the steps of the
//! request pipeline that are not about the API (planning and applying
//! faults, counting, logging: [`Exchange`]), JSON bodies and error
//! answers ([`json_response`], [`ApiError`]), the bearer token, and
//! `GET /sim/health`. Each simulator keeps its own routes, authentication,
//! rate-limit headers and error wording.

use std::marker::PhantomData;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::controls::SimCore;
use super::counters::Snapshot;
use super::faults::{apply_after, apply_before, ConnCtl, FaultKind, Plan};

/// Locks a mutex, ignoring poisoning (a panicking test must not wedge the
/// simulator for the others).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in
/// any case), if there is a non-empty one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The route template axum matched (`?` when none did).
pub(crate) fn matched_route(req: &Request) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("?")
}

/// A JSON response with this content type.
pub(crate) fn json_response(
    status: StatusCode,
    value: &Value,
    content_type: &'static str,
) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(axum::body::Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// `GET /sim/health` (no token, no faults): `{"status": "ok"}`.
pub(crate) async fn health<E: JsonStyle>() -> Response {
    json_response(StatusCode::OK, &json!({"status": "ok"}), E::CONTENT_TYPE)
}

/// How a simulator sends JSON and its error bodies.
pub(crate) trait JsonStyle {
    /// The `Content-Type` of its JSON bodies.
    const CONTENT_TYPE: &'static str;

    /// Completes an error body as it is sent (e.g. with a fresh trace id).
    fn finish(_body: &mut Map<String, Value>) {}
}

/// An HTTP error answer: a status, a JSON object body and extra headers.
/// Each simulator names it for its [`JsonStyle`] and adds its own
/// constructors.
#[derive(Debug)]
pub(crate) struct ApiError<E> {
    pub status: StatusCode,
    pub body: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    style: PhantomData<fn() -> E>,
}

impl<E> ApiError<E> {
    pub fn with_body(status: StatusCode, body: Map<String, Value>) -> Self {
        ApiError {
            status,
            body,
            headers: Vec::new(),
            style: PhantomData,
        }
    }

    /// Adds a field to the body.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.body.insert(key.into(), value);
        self
    }

    /// Adds a header (ignored if `value` is not a valid header value).
    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }
}

impl<E: JsonStyle> IntoResponse for ApiError<E> {
    fn into_response(mut self) -> Response {
        E::finish(&mut self.body);
        let mut response = json_response(self.status, &Value::Object(self.body), E::CONTENT_TYPE);
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// One request through a simulator's pipeline, for the steps every
/// simulator takes: plan the request's faults and sleep the injected
/// latency ([`Exchange::begin`]), apply and count the faults that act
/// before ([`Exchange::before`]) and after ([`Exchange::after`]) the
/// handler, then count the request by method, route and status (`0` when
/// a fault dropped the connection) and log it ([`Exchange::finish`]).
pub(crate) struct Exchange {
    started: Instant,
    method: Method,
    route: String,
    conn: Option<ConnCtl>,
    plan: Plan,
    dropped: bool,
}

impl Exchange {
    /// Plans the faults of `req` (on `route`, the template it is counted
    /// under); the future sleeps the injected latency. It does not borrow
    /// `req` (a request is not `Sync`, so it may not be held across the
    /// sleep).
    pub fn begin<S: Snapshot>(
        core: &SimCore<S>,
        req: &Request,
        route: String,
    ) -> impl std::future::Future<Output = Self> {
        let started = Instant::now();
        let method = req.method().clone();
        let conn = req
            .extensions()
            .get::<ConnectInfo<ConnCtl>>()
            .map(|c| c.0.clone());
        let (plan, hook) = {
            let mut faults = lock(&core.faults);
            (faults.plan(&method), faults.take_hook(&method, &route))
        };
        async move {
            if !plan.latency.is_zero() {
                tokio::time::sleep(plan.latency).await;
            }
            // After the latency: the edit lands as late as it can before
            // the handler, as a person racing the request would.
            if let Some(hook) = hook {
                hook();
            }
            Exchange {
                started,
                method,
                route,
                conn,
                plan,
                dropped: false,
            }
        }
    }

    /// Applies the planned fault that acts before the handler, if any, and
    /// counts it: the fault and the answer to send instead of running the
    /// handler. `json_error` words an injected error status as the
    /// simulator does; `too_many` is its 429 with `Retry-After: 1`.
    pub fn before<S: Snapshot>(
        &mut self,
        core: &SimCore<S>,
        json_error: impl FnOnce(StatusCode) -> Response,
        too_many: impl FnOnce() -> Response,
    ) -> Option<(FaultKind, Response)> {
        let kind = self.plan.before?;
        lock(&core.counters).fault(&kind.label());
        let applied = apply_before(kind, self.conn.as_ref(), json_error, too_many)?;
        self.dropped = applied.dropped;
        Some((kind, applied.response))
    }

    /// Applies the planned fault that acts after the handler, if any, to
    /// its `response`, and counts it. `json_error` words an injected error
    /// status as the simulator does.
    pub async fn after<S: Snapshot>(
        &mut self,
        core: &SimCore<S>,
        response: Response,
        json_error: impl FnOnce(StatusCode) -> Response,
    ) -> Response {
        let Some(kind) = self.plan.after else {
            return response;
        };
        lock(&core.counters).fault(&kind.label());
        let applied = apply_after(kind, response, self.conn.as_ref(), json_error).await;
        self.dropped = applied.dropped;
        applied.response
    }

    /// Counts the request and logs it (`label` names the simulator);
    /// returns the response to send.
    pub fn finish<S: Snapshot>(
        self,
        core: &SimCore<S>,
        response: Response,
        label: &str,
    ) -> Response {
        let status = if self.dropped {
            0
        } else {
            response.status().as_u16()
        };
        lock(&core.counters).record(self.method.as_str(), &self.route, status);
        tracing::debug!(
            method = %self.method,
            route = %self.route,
            status,
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "{label} request"
        );
        response
    }
}
