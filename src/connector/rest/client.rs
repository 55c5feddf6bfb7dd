//! The one request path of a REST side: pace → credentials → send → read
//! (capped) → classify → retry.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use backon::Retryable;
use bytes::Bytes;
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota};
use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::auth::{Auth, TokenFailure, Used};
use super::records::parse_json;
use super::settings::RestRateLimit;
use crate::connector::http::{
    bounded, read_limited, retry_after, snippet, ReadFailure, RetryPolicy,
};

/// One request, described before it is sent (and re-sent).
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: Method,
    /// Without the query API key, which is added when sending.
    pub url: Url,
    /// `METHOD /path` for messages and logs (never the query: it may hold
    /// an API key, and is noise).
    pub label: String,
    /// `METHOD /base/path/:id`: the configured template the request was
    /// filled from, under the base URL's path, which labels metrics (the
    /// path sent holds ids, and a label per id grows without bound).
    pub endpoint: String,
    pub body: Option<Value>,
    /// Safe to send again when the outcome of an attempt is unknown.
    pub idempotent: bool,
}

/// A 2xx answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why a call failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// No (complete) answer: timeout, reset, refused connection.
    Transport { detail: String, maybe_applied: bool },
    /// A non-2xx, non-3xx answer.
    Status {
        status: StatusCode,
        message: String,
        retry_after: Option<Duration>,
        body: Bytes,
    },
    /// A 3xx answer: never followed.
    Redirect {
        status: StatusCode,
        location: Option<String>,
    },
    /// The body exceeds `max_body_bytes`.
    TooLarge(String),
    /// No token could be had from the token endpoint.
    Token(TokenFailure),
    /// A 2xx answer to a call whose answer is read as JSON, with a body
    /// that is not JSON: a proxy's or captive portal's login page sent with
    /// 200, a maintenance page, an empty body. Nothing in it can be trusted
    /// as the app's answer, and the next attempt may reach the app, so it
    /// is retried like a 503 (unlike a GHL answer that is JSON but cannot
    /// be read as a record, which no retry changes).
    Unreadable {
        status: StatusCode,
        /// The `Content-Type` header as sent, if any.
        content_type: Option<String>,
        /// The body's length in bytes.
        bytes: usize,
        /// Why it is not JSON, with the first characters of the body.
        detail: String,
    },
}

impl Failure {
    /// Worth another attempt later.
    pub fn transient(&self) -> bool {
        match self {
            Failure::Transport { .. } => true,
            Failure::Status { status, .. } => {
                matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
            }
            Failure::Token(token) => token.transient,
            Failure::Unreadable { .. } => true,
            Failure::Redirect { .. } | Failure::TooLarge(_) => false,
        }
    }

    /// The server may have acted on the request even though we have no
    /// usable answer.
    pub fn maybe_applied(&self) -> bool {
        match self {
            Failure::Transport { maybe_applied, .. } => *maybe_applied,
            Failure::Status { status, .. } => {
                !matches!(status.as_u16(), 408 | 429) && status.is_server_error()
            }
            // A 2xx came back: whatever answered may have passed it on.
            Failure::TooLarge(_) | Failure::Unreadable { .. } => true,
            Failure::Redirect { .. } | Failure::Token(_) => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Status { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport { detail, .. } => f.write_str(detail),
            Failure::Status {
                status, message, ..
            } => write!(f, "answered {status}: {message}"),
            Failure::Redirect {
                status,
                location: Some(location),
            } => write!(
                f,
                "answered {status} redirecting to {location}; redirects are never followed (check base_url and the endpoint templates)"
            ),
            Failure::Redirect {
                status,
                location: None,
            } => write!(
                f,
                "answered {status} (a redirect without Location); redirects are never followed"
            ),
            Failure::TooLarge(detail) => f.write_str(detail),
            Failure::Token(token) => f.write_str(&token.message),
            Failure::Unreadable {
                status,
                content_type,
                bytes,
                detail,
            } => write!(
                f,
                "answered {status} with an unreadable body (content type {}, {bytes} bytes): {detail}",
                content_type.as_deref().unwrap_or("not given")
            ),
        }
    }
}

/// A failure and the call it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct CallError {
    pub label: String,
    pub failure: Failure,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.label, self.failure)
    }
}

/// Paces requests: never more than `requests` in any window of `per`.
///
/// A GCRA with a burst of one spaces requests evenly at `per / requests`,
/// so any window of `per` holds at most `requests` of them; the spacing is
/// stretched by 2% so jitter (a first request that waited for its
/// connection, a scheduler hiccup) cannot squeeze one more into a window
/// as the server counts it. A 429 pauses every caller for `Retry-After`.
#[derive(Debug)]
pub(crate) struct Pacer {
    gcra: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(limit: RestRateLimit) -> Self {
        let spacing = limit.per / limit.requests.max(1);
        let spacing = spacing + (spacing / 50).max(Duration::from_micros(100));
        let quota = Quota::with_period(spacing)
            .expect("spacing is non-zero")
            .allow_burst(NonZeroU32::MIN);
        Self {
            gcra: DefaultDirectRateLimiter::direct(quota),
            paused_until: Mutex::new(None),
        }
    }

    pub async fn acquire(&self) {
        loop {
            let paused = *self.paused_until.lock().expect("pacer lock");
            match paused.filter(|until| *until > Instant::now()) {
                Some(until) => tokio::time::sleep_until(until).await,
                None => break,
            }
        }
        self.gcra.until_ready().await;
    }

    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().expect("pacer lock");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
        }
    }
}

/// The HTTP core of one REST side.
#[derive(Debug)]
pub(crate) struct Client {
    pub side: String,
    pub http: reqwest::Client,
    pub base_url: Url,
    pub auth: Auth,
    pub pacer: Pacer,
    pub retry: RetryPolicy,
    pub max_body_bytes: u64,
}

impl Client {
    /// Sends a request with pacing, credentials and retries; a 2xx answer
    /// is returned whole, anything else as a [`CallError`].
    pub async fn execute(&self, request: &Request) -> Result<Reply, CallError> {
        self.with_retries(request, || self.attempt(request)).await
    }

    /// Like [`Client::execute`], for a call whose answer must be JSON (a
    /// listing): a 2xx whose body is not JSON is a failed attempt
    /// ([`Failure::Unreadable`]), retried under the same policy, and the
    /// last one names the call, the status, the content type and the first
    /// characters of what came back.
    pub async fn execute_json(&self, request: &Request) -> Result<(Reply, Value), CallError> {
        self.with_retries(request, || async {
            let reply = self.attempt(request).await?;
            match read_json(&reply) {
                Ok(json) => Ok((reply, json)),
                Err(failure) => Err(CallError {
                    label: request.label.clone(),
                    failure,
                }),
            }
        })
        .await
    }

    /// Runs `attempt` under the side's retry policy: transient failures
    /// again after a backoff (or the app's `Retry-After`), a write whose
    /// outcome is unknown only when it is idempotent.
    async fn with_retries<T, F, Fut>(&self, request: &Request, attempt: F) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CallError>>,
    {
        attempt
            .retry(self.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(|error: &CallError| {
                error.failure.transient() && (request.idempotent || !error.failure.maybe_applied())
            })
            .adjust(
                |error: &CallError, delay| match error.failure.retry_after() {
                    // Wait as long as the app asked; stop when attempts ran out.
                    Some(wait) => delay.map(|_| wait),
                    None => delay,
                },
            )
            .notify(|error: &CallError, delay| {
                tracing::warn!(
                    side = %self.side,
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "app call failed; retrying"
                );
            })
            .await
    }

    /// One attempt, and once more with a renewed token after a 401.
    async fn attempt(&self, request: &Request) -> Result<Reply, CallError> {
        let fail = |failure| CallError {
            label: request.label.clone(),
            failure,
        };
        let used = self
            .auth
            .current(&self.http)
            .await
            .map_err(|token| fail(Failure::Token(token)))?;
        let result = self.send(request, &used).await;
        if let Err(CallError {
            failure: Failure::Status { status, .. },
            ..
        }) = &result
        {
            if *status == StatusCode::UNAUTHORIZED {
                if let Some(renewed) = self.auth.renew(&self.http, &used).await {
                    let used = renewed.map_err(|token| fail(Failure::Token(token)))?;
                    return self.send(request, &used).await;
                }
            }
        }
        result
    }

    async fn send(&self, request: &Request, used: &Used) -> Result<Reply, CallError> {
        let fail = |failure| CallError {
            label: request.label.clone(),
            failure,
        };
        self.pacer.acquire().await;
        let mut url = request.url.clone();
        self.auth.apply_query(&mut url);
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .header("Accept", "application/json");
        builder = self.auth.apply(builder, used);
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let started = std::time::Instant::now();
        let read = read_limited(builder.send().await, self.max_body_bytes).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let (status, headers, body) = match read {
            Ok(read) => read,
            Err(failure) => {
                self.unanswered(request, latency_ms, &failure);
                return Err(fail(match failure {
                    ReadFailure::Transport {
                        detail,
                        maybe_applied,
                    } => Failure::Transport {
                        detail,
                        maybe_applied,
                    },
                    too_large @ ReadFailure::TooLarge { .. } => {
                        Failure::TooLarge(too_large.to_string())
                    }
                }));
            }
        };
        self.answered(request, latency_ms, status);
        self.outcome(request, status, headers, body).map_err(fail)
    }

    /// Counts and logs a call that got no (complete) answer.
    fn unanswered(&self, request: &Request, latency_ms: u64, failure: &ReadFailure) {
        crate::metrics::api_call(&self.side, "", &request.endpoint, None);
        tracing::debug!(
            side = %self.side,
            method = %request.method,
            path = %bounded(request.url.path()),
            latency_ms,
            error = %failure,
            "app call failed"
        );
    }

    /// Counts and logs a call the app answered.
    fn answered(&self, request: &Request, latency_ms: u64, status: StatusCode) {
        crate::metrics::api_call(&self.side, "", &request.endpoint, Some(status.as_u16()));
        tracing::debug!(
            side = %self.side,
            method = %request.method,
            path = %bounded(request.url.path()),
            status = status.as_u16(),
            latency_ms,
            "app call"
        );
    }

    /// An answer as a [`Reply`] (a whole 2xx) or the [`Failure`] it is; a
    /// 429 also pauses every caller of the side for its `Retry-After`.
    fn outcome(
        &self,
        request: &Request,
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Reply, Failure> {
        if status.is_success() {
            if truncated_json(&body) {
                // A JSON body that stops mid-way is a broken transfer (a
                // proxy or the app gave up), not a malformed record.
                return Err(Failure::Transport {
                    detail: format!(
                        "response {status} broke off: the JSON body of {} bytes ends early",
                        body.len()
                    ),
                    maybe_applied: true,
                });
            }
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
        if status.is_redirection() {
            return Err(Failure::Redirect {
                status,
                location: headers
                    .get(LOCATION)
                    .map(|v| bounded(&String::from_utf8_lossy(v.as_bytes())).into_owned()),
            });
        }
        let retry_after = match status.as_u16() {
            429 | 503 => retry_after(&headers, Utc::now()),
            _ => None,
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after.unwrap_or(Duration::from_secs(1));
            self.pacer.pause(wait);
            tracing::warn!(
                side = %self.side,
                call = %request.label,
                retry_after_ms = wait.as_millis() as u64,
                "the app answered 429: rate_limit lets more through than it accepts"
            );
        }
        Err(Failure::Status {
            status,
            message: error_message(&body),
            retry_after,
            body,
        })
    }
}

/// One line summarising an error body: its `message`, `error`,
/// `error_description` or `detail`, else a snippet.
pub(crate) fn error_message(body: &[u8]) -> String {
    if body.iter().all(u8::is_ascii_whitespace) {
        return "empty body".to_owned();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let mut parts = Vec::new();
            for key in ["error", "message", "error_description", "detail", "title"] {
                match value.get(key) {
                    Some(Value::String(text)) => parts.push(text.clone()),
                    Some(Value::Array(items)) => parts.extend(items.iter().map(|item| {
                        item.as_str()
                            .map_or_else(|| item.to_string(), str::to_owned)
                    })),
                    Some(Value::Object(inner)) => {
                        if let Some(Value::String(text)) = inner.get("message") {
                            parts.push(text.clone());
                        }
                    }
                    _ => {}
                }
            }
            if parts.is_empty() {
                snippet(body)
            } else {
                // The app's own text, which may echo what we sent.
                bounded(&parts.join(": ")).into_owned()
            }
        }
        Err(_) => format!("non-JSON body {}", snippet(body)),
    }
}

/// The JSON of a 2xx answer, or why it is unreadable.
fn read_json(reply: &Reply) -> Result<Value, Failure> {
    parse_json(&reply.body).map_err(|detail| Failure::Unreadable {
        status: reply.status,
        content_type: reply
            .headers
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        bytes: reply.body.len(),
        detail,
    })
}

/// A body that starts as JSON and ends before the document does.
fn truncated_json(body: &[u8]) -> bool {
    crate::connector::http::looks_like_json(body)
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err_and(|e| e.is_eof())
}
