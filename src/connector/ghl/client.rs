//! The HTTP core of the GHL client: one place that paces, authenticates,
//! sends, retries and classifies every call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::Retryable;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::auth::Credentials;
use super::error::{Call, GhlError};
use super::limiter::{Access, RateLimiter};
use super::models::API_VERSION;
use crate::connector::http::{self, bounded, looks_like_json, snippet, RetryPolicy};
use crate::domain::Purpose;

/// The scope every write to contacts, tasks, notes and tags needs.
pub const WRITE_SCOPE: &str = "contacts.write";

/// Responses larger than this are refused rather than buffered.
pub const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;

/// What a [`GhlClient`] is built from.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: Url,
    pub location_id: String,
    pub credentials: Credentials,
    /// Scopes the credentials carry; writes without `contacts.write` are
    /// refused locally.
    pub scopes: Vec<String>,
    /// The pacing of this (app, location) budget, shared with every other
    /// client spending it.
    pub limiter: Arc<RateLimiter>,
    pub retry: RetryPolicy,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// A client of the GHL Contacts API v2 for one location.
#[derive(Debug, Clone)]
pub struct GhlClient {
    pub(super) http: reqwest::Client,
    pub(super) options: Arc<ClientOptions>,
}

/// A request's path and the endpoint template it was filled from: the
/// path is sent and named in errors, the template labels metrics (ids in
/// a label would grow the label set without bound).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiPath {
    /// As GHL's reference writes it: `/contacts/:contactId/tasks`. (Not
    /// `{contactId}`: a brace inside a label value breaks common
    /// Prometheus text parsers.)
    pub template: &'static str,
    /// The template with its ids filled in, URL-encoded.
    pub path: String,
}

impl ApiPath {
    /// An endpoint without ids: `/contacts/search`.
    pub fn fixed(template: &'static str) -> Self {
        Self {
            template,
            path: template.to_owned(),
        }
    }

    /// `template` with its `:name` segments replaced, in order, by `ids`.
    /// Ids are alphanumeric in GHL; anything else is escaped so an odd id
    /// from the other side cannot change the path.
    pub fn fill(template: &'static str, ids: &[&str]) -> Self {
        let mut ids = ids.iter();
        let path = template
            .split('/')
            .map(|segment| match segment.strip_prefix(':') {
                Some(_) => {
                    let id = ids.next().expect("one id per placeholder");
                    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
                }
                None => segment.to_owned(),
            })
            .collect::<Vec<String>>()
            .join("/");
        debug_assert!(ids.next().is_none(), "more ids than placeholders");
        Self { template, path }
    }
}

/// One request, described before it is sent (and re-sent).
#[derive(Debug)]
pub(super) struct Request<'a> {
    pub method: Method,
    pub path: ApiPath,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<&'a Value>,
    pub access: Access,
    /// Safe to send again when the outcome of an attempt is unknown.
    pub idempotent: bool,
}

impl<'a> Request<'a> {
    pub fn get(path: ApiPath) -> Self {
        Self {
            method: Method::GET,
            path,
            query: Vec::new(),
            body: None,
            access: Access::Read,
            idempotent: true,
        }
    }

    pub fn write(method: Method, path: ApiPath, body: Option<&'a Value>) -> Self {
        let idempotent = method != Method::POST;
        Self {
            method,
            path,
            query: Vec::new(),
            body,
            access: Access::Write,
            idempotent,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    /// A POST that only reads (search).
    pub fn reading(mut self) -> Self {
        self.access = Access::Read;
        self.idempotent = true;
        self
    }
}

impl GhlClient {
    pub fn new(options: ClientOptions) -> Result<Self, reqwest::Error> {
        let http = http_client(options.timeout)?;
        Ok(Self::with_http(http, options))
    }

    /// Shares one connection pool (and TLS set-up) among clients.
    pub fn with_http(http: reqwest::Client, options: ClientOptions) -> Self {
        Self {
            http,
            options: Arc::new(options),
        }
    }

    pub fn location_id(&self) -> &str {
        &self.options.location_id
    }

    pub fn credentials(&self) -> &Credentials {
        &self.options.credentials
    }

    pub fn limiter(&self) -> &Arc<RateLimiter> {
        &self.options.limiter
    }

    /// Whether this side may write to GHL at all.
    pub fn can_write(&self) -> bool {
        self.options.scopes.iter().any(|scope| scope == WRITE_SCOPE)
    }

    pub(super) fn call(&self, method: &Method, path: &ApiPath) -> Call {
        Call {
            method: method_name(method),
            endpoint: path.template,
            path: path.path.clone(),
            location: self.options.location_id.clone(),
        }
    }

    /// Sends a request with pacing, authentication and retries, and decodes
    /// the JSON answer.
    pub(super) async fn execute<T: DeserializeOwned>(
        &self,
        request: &Request<'_>,
    ) -> Result<T, GhlError> {
        let call = self.call(&request.method, &request.path);
        if request.access == Access::Write && !self.can_write() {
            return Err(GhlError::ScopeMissing {
                call,
                scope: WRITE_SCOPE,
            });
        }
        let attempt = || async {
            let (status, body) = self.attempt(request, &call).await?;
            decode(&call, status, &body)
        };
        attempt
            .retry(self.options.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(|error: &GhlError| {
                error.is_transient() && (request.idempotent || !error.maybe_applied())
            })
            .adjust(|error, delay| match error {
                // Wait as long as GHL asked; stop when attempts ran out.
                GhlError::RateLimited {
                    retry_after: Some(wait),
                    ..
                } => delay.map(|_| *wait),
                _ => delay,
            })
            .notify(|error, delay| {
                tracing::warn!(
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "GHL call failed; retrying"
                );
            })
            .await
    }

    /// One attempt: a paced send, and once more with a refreshed token if
    /// GHL answers 401 to an OAuth token.
    async fn attempt(
        &self,
        request: &Request<'_>,
        call: &Call,
    ) -> Result<(StatusCode, Bytes), GhlError> {
        let token = self
            .options
            .credentials
            .access_token()
            .await
            .map_err(|source| GhlError::Auth {
                call: call.clone(),
                source,
            })?;
        let (status, headers, body) = self.send(request, call, &token).await?;
        if status == StatusCode::UNAUTHORIZED {
            if let Some(renewed) = self.options.credentials.after_unauthorized(&token).await {
                let token = renewed.map_err(|source| GhlError::Auth {
                    call: call.clone(),
                    source,
                })?;
                let (status, headers, body) = self.send(request, call, &token).await?;
                return classify(call, status, &headers, body, &self.options.limiter);
            }
        }
        classify(call, status, &headers, body, &self.options.limiter)
    }

    /// Counts a call and publishes what is left of the budget.
    fn count_call(&self, call: &Call, purpose: Purpose, status: Option<u16>) {
        let endpoint = format!("{} {}", call.method, call.endpoint);
        crate::metrics::api_call("ghl", &call.location, &endpoint, status);
        crate::metrics::api_call_purpose("ghl", &call.location, purpose);
        let headroom = self.options.limiter.headroom();
        let location = call.location.clone();
        if let Some(left) = headroom.interval_remaining {
            metrics::gauge!(crate::metrics::RATE_LIMIT_REMAINING, "location" => location.clone())
                .set(f64::from(left));
        }
        metrics::gauge!(crate::metrics::DAILY_BUDGET_REMAINING, "location" => location)
            .set(f64::from(headroom.daily_remaining));
    }

    async fn send(
        &self,
        request: &Request<'_>,
        call: &Call,
        token: &SecretString,
    ) -> Result<(StatusCode, HeaderMap, Bytes), GhlError> {
        // Set by the engine around each kind of work (polls, targeted
        // syncs, writes, reconciliation): the limiter's priority and the
        // per-purpose count.
        let purpose = Purpose::current();
        self.options
            .limiter
            .acquire(request.access, purpose)
            .await
            .map_err(|source| GhlError::Budget {
                call: call.clone(),
                source,
            })?;
        let url = join(&self.options.base_url, &request.path.path);
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .bearer_auth(token.expose_secret())
            .header("Version", API_VERSION)
            .header("Accept", "application/json")
            .timeout(self.options.timeout);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = request.body {
            builder = builder.json(body);
        }
        let started = Instant::now();
        let result = http::read_limited(builder.send().await, MAX_RESPONSE_BYTES).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok((status, headers, body)) => {
                self.options.limiter.observe(headers);
                self.count_call(call, purpose, Some(status.as_u16()));
                tracing::debug!(
                    method = call.method,
                    path = %bounded(&call.path),
                    location = %call.location,
                    status = status.as_u16(),
                    latency_ms,
                    trace_id = %bounded(failed_trace_id(*status, body).as_deref().unwrap_or("")),
                    "GHL call"
                );
            }
            Err(failure) => {
                self.count_call(call, purpose, None);
                tracing::debug!(
                    method = call.method,
                    path = %bounded(&call.path),
                    location = %call.location,
                    latency_ms,
                    error = %failure,
                    "GHL call failed in transport"
                )
            }
        }
        result.map_err(|failure| GhlError::Transport {
            call: call.clone(),
            detail: failure.to_string(),
            // An oversized answer means GHL did process the request.
            maybe_applied: match failure {
                http::ReadFailure::Transport { maybe_applied, .. } => maybe_applied,
                http::ReadFailure::TooLarge { .. } => true,
            },
        })
    }
}

/// The HTTP client GHL calls share (rustls, timeouts, no redirects: an
/// API answer is never a redirect; following one could leak the token).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    http::api_client(timeout)
}

/// Turns an HTTP answer into success or the matching [`GhlError`].
fn classify(
    call: &Call,
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    limiter: &RateLimiter,
) -> Result<(StatusCode, Bytes), GhlError> {
    if status.is_success() {
        return Ok((status, body));
    }
    let call = call.clone();
    let trace_id = trace_id(&body);
    let message = error_message(&body);
    Err(match status.as_u16() {
        400 => GhlError::BadRequest {
            call,
            message,
            trace_id,
            meta: serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("meta").cloned()),
        },
        401 if message.to_ascii_lowercase().contains("expired") => {
            GhlError::TokenExpired { call, trace_id }
        }
        401 => GhlError::Unauthorized {
            call,
            message,
            trace_id,
        },
        403 => GhlError::Forbidden {
            call,
            message,
            trace_id,
        },
        404 => GhlError::NotFound { call, trace_id },
        422 => GhlError::Unprocessable {
            call,
            messages: error_messages(&body),
            trace_id,
        },
        429 => {
            let retry_after = headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .or_else(|| {
                    headers
                        .get("x-ratelimit-interval-milliseconds")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_millis)
                });
            limiter.throttled(retry_after.unwrap_or(limiter.limits().interval));
            tracing::warn!(%call, "GHL answered 429: pacing let too many requests through");
            GhlError::RateLimited { call, retry_after }
        }
        500..=599 => GhlError::Server {
            call,
            status: status.as_u16(),
            message,
            trace_id,
        },
        other => GhlError::Status {
            call,
            status: other,
            message,
        },
    })
}

fn decode<T: DeserializeOwned>(
    call: &Call,
    status: StatusCode,
    body: &[u8],
) -> Result<T, GhlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(GhlError::EmptyBody {
            call: call.clone(),
            status: status.as_u16(),
        });
    }
    serde_json::from_slice(body).map_err(|error| GhlError::Decode {
        call: call.clone(),
        status: status.as_u16(),
        detail: if looks_like_json(body) {
            error.to_string()
        } else {
            format!("not JSON: {}", snippet(body))
        },
    })
}

/// GHL's `traceId` of an error answer (success bodies are not parsed twice).
fn failed_trace_id(status: StatusCode, body: &[u8]) -> Option<String> {
    if status.is_success() {
        None
    } else {
        trace_id(body)
    }
}

fn trace_id(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("traceId")?
        .as_str()
        .map(str::to_owned)
}

/// How many of a 422's messages are kept; the rest are counted.
const MAX_MESSAGES: usize = 10;

/// GHL's error messages: `message` is a string or (422) a list of strings,
/// each bounded (they may echo what we sent, or anything a proxy says),
/// and at most [`MAX_MESSAGES`] of them.
fn error_messages(body: &[u8]) -> Vec<String> {
    let mut messages: Vec<String> = raw_error_messages(body)
        .iter()
        .map(|message| bounded(message).into_owned())
        .collect();
    if messages.len() > MAX_MESSAGES {
        let more = messages.len() - MAX_MESSAGES;
        messages.truncate(MAX_MESSAGES);
        messages.push(format!("… and {more} more"));
    }
    messages
}

fn raw_error_messages(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => match value.get("message") {
            Some(Value::String(message)) => vec![message.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_owned)
                })
                .collect(),
            _ => match value.get("error") {
                Some(Value::String(error)) => vec![error.clone()],
                _ => vec![snippet(body)],
            },
        },
        Err(_) if body.is_empty() => vec!["empty body".to_owned()],
        Err(_) => vec![format!("non-JSON body {}", snippet(body))],
    }
}

/// One line summarising an error body.
pub fn error_message(body: &[u8]) -> String {
    error_messages(body).join("; ")
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{prefix}{path}"));
    url
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}
