//! Fault injection shared by every simulator: the knobs ([`FaultConfig`],
//! [`FaultKind`], [`FaultArgs`] for the command line), the seeded planner
//! that decides the faults of each request, and the mechanics that apply
//! them (connection resets, truncated bodies, HTML pages, lost responses,
//! the 429 storm). Each simulator words its own JSON error bodies; the rest
//! is here, written once.
//!
//! Faults are drawn from a seeded RNG so a run is reproducible for a given
//! sequence of requests.
//!
//! Where each fault acts in a simulator's request pipeline:
//! 1. `latency` (+ uniform `jitter`) delays the request first;
//! 2. `storm_429`, `reset_rate` and `error_rates` act before
//!    authentication and the handler (nothing is written, nothing counts
//!    toward the rate-limit window);
//! 3. `truncate_rate`, `html_rate` and `lose_response_rate` act after the
//!    handler ran (a write is committed): the body is cut in half (valid
//!    HTTP, invalid JSON), replaced by an HTML page (status 200,
//!    `text/html`), or the connection is reset instead of answering.
//!    `lose_response_rate` applies to writes (POST, PUT, PATCH, DELETE)
//!    only.
//!
//! A connection reset closes the TCP socket with `SO_LINGER` 0 (an RST)
//! without writing a byte of the response: serve with `FaultListener`
//! and `ConnectInfo<ConnCtl>` (see `serve`) so a handler can reset its
//! own connection.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Faults applied at random; all probabilities are in `[0, 1]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// `(status, probability)`, tried in order; 502/503/504 get an HTML
    /// gateway page (as a proxy would send), other statuses the
    /// simulator's JSON error body.
    pub error_rates: Vec<(u16, f64)>,
    /// Added to every request.
    pub latency: Duration,
    /// Up to this much more, uniformly.
    pub jitter: Duration,
    /// Drop the connection before handling.
    pub reset_rate: f64,
    /// Handle, then send half the body.
    pub truncate_rate: f64,
    /// Handle, then send an HTML page with status 200.
    pub html_rate: f64,
    /// Handle a write, then reset the connection instead of answering.
    pub lose_response_rate: f64,
    /// Answer every request 429 until turned off.
    pub storm_429: bool,
}

/// One fault, for `fail_next` on a simulator's handle
/// ([`crate::ghl::SimHandle::fail_next`],
/// [`crate::app::AppSimHandle::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (no handler run).
    Status(u16),
    /// 429 with `Retry-After: 1` (no handler run).
    TooManyRequests,
    /// Drop the connection (no handler run).
    Reset,
    /// Run the handler, send half the body.
    Truncate,
    /// Run the handler, send status 200 with an empty body (seen from
    /// GHL stand-ins built from the spec alone, issue 15: a 2xx whose
    /// promised JSON body never comes).
    EmptyBody,
    /// Run the handler, send an HTML page (200).
    Html,
    /// Run the handler of a write, then drop the connection. Only
    /// POST/PUT/PATCH/DELETE requests consume it.
    LoseResponse,
}

impl FaultKind {
    /// The key of this fault in the simulators' fault counters
    /// (`status_503`, `storm_429`, `reset`, `truncate`, `html`,
    /// `lose_response`).
    pub(crate) fn label(self) -> String {
        match self {
            FaultKind::Status(s) => format!("status_{s}"),
            FaultKind::TooManyRequests => "storm_429".into(),
            FaultKind::Reset => "reset".into(),
            FaultKind::Truncate => "truncate".into(),
            FaultKind::Html => "html".into(),
            FaultKind::EmptyBody => "empty_body".into(),
            FaultKind::LoseResponse => "lose_response".into(),
        }
    }

    fn before_handler(self) -> bool {
        matches!(
            self,
            FaultKind::Status(_) | FaultKind::TooManyRequests | FaultKind::Reset
        )
    }
}

/// What to do to one request.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub latency: Duration,
    pub before: Option<FaultKind>,
    pub after: Option<FaultKind>,
}

/// The fault configuration in force, the queue of `fail_next` faults, the
/// edits waiting for a request (`before_next`) and the RNG: one per
/// simulator, behind its mutex.
pub(crate) struct FaultState {
    pub config: FaultConfig,
    queue: VecDeque<(FaultKind, u32)>,
    hooks: Vec<Hook>,
    rng: ChaCha8Rng,
}

impl std::fmt::Debug for FaultState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultState")
            .field("config", &self.config)
            .field("queue", &self.queue)
            .field("hooks", &self.hooks.len())
            .field("rng", &self.rng)
            .finish()
    }
}

/// Something a test wants to happen just before the handler of one
/// request: a person editing a record between the daemon's read and its
/// write (the race of issue 13, "an edit made while we wrote was lost").
/// Live GHL and apps have such users; a simulator must be able to be one.
struct Hook {
    method: Method,
    /// The route template the counters use (`/contacts/:contactId`).
    route: String,
    action: Box<dyn FnOnce() + Send>,
}

/// Whether a method writes (the only requests a lost response applies to).
pub(crate) fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    )
}

impl FaultState {
    pub fn new(config: FaultConfig, rng: ChaCha8Rng) -> Self {
        FaultState {
            config,
            queue: VecDeque::new(),
            hooks: Vec::new(),
            rng,
        }
    }

    /// Runs `action` just before the handler of the next `method` request
    /// on `route` (once).
    pub fn before_next(&mut self, method: Method, route: &str, action: Box<dyn FnOnce() + Send>) {
        self.hooks.push(Hook {
            method,
            route: route.to_owned(),
            action,
        });
    }

    /// The action waiting for this request, if any (taken: it runs once).
    pub fn take_hook(&mut self, method: &Method, route: &str) -> Option<Box<dyn FnOnce() + Send>> {
        let index = self
            .hooks
            .iter()
            .position(|h| h.method == *method && h.route == route)?;
        Some(self.hooks.remove(index).action)
    }

    pub fn push(&mut self, kind: FaultKind, count: u32) {
        if count > 0 {
            self.queue.push_back((kind, count));
        }
    }

    pub fn clear_queue(&mut self) {
        self.queue.clear();
        self.hooks.clear();
    }

    /// Decides the faults of one request: a queued fault first (the oldest
    /// this request is eligible for), else the random ones.
    pub fn plan(&mut self, method: &Method) -> Plan {
        let config = self.config.clone();
        let mut plan = Plan {
            latency: config.latency,
            ..Plan::default()
        };
        if !config.jitter.is_zero() {
            let extra = self.rng.gen_range(0..=config.jitter.as_micros() as u64);
            plan.latency += Duration::from_micros(extra);
        }
        let write = is_write(method);
        if let Some(index) = self
            .queue
            .iter()
            .position(|(kind, _)| *kind != FaultKind::LoseResponse || write)
        {
            let (kind, left) = &mut self.queue[index];
            let kind = *kind;
            *left -= 1;
            if *left == 0 {
                self.queue.remove(index);
            }
            if kind.before_handler() {
                plan.before = Some(kind);
            } else {
                plan.after = Some(kind);
            }
            return plan;
        }
        if config.storm_429 {
            plan.before = Some(FaultKind::TooManyRequests);
            return plan;
        }
        if self.hit(config.reset_rate) {
            plan.before = Some(FaultKind::Reset);
            return plan;
        }
        for (status, p) in &config.error_rates {
            if self.hit(*p) {
                plan.before = Some(FaultKind::Status(*status));
                return plan;
            }
        }
        if self.hit(config.truncate_rate) {
            plan.after = Some(FaultKind::Truncate);
        } else if self.hit(config.html_rate) {
            plan.after = Some(FaultKind::Html);
        } else if write && self.hit(config.lose_response_rate) {
            plan.after = Some(FaultKind::LoseResponse);
        }
        plan
    }

    fn hit(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.gen::<f64>() < p
    }
}

// ---------------------------------------------------------------------------
// Applying faults.

/// The HTML page of an HTML fault or a 502/503/504.
pub(crate) fn html_page(status: u16, reason: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\
         <body><center><h1>{status} {reason}</h1></center><hr><center>cloudflare</center></body></html>\n"
    )
}

fn html_response(status: StatusCode, content_type: &'static str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut response = Response::new(Body::from(html_page(status.as_u16(), reason)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The answer of an injected error status: an HTML gateway page for
/// 502/503/504, else what `json_error` makes of the status (the
/// simulator's own error body).
pub(crate) fn status_response(
    status: u16,
    json_error: impl FnOnce(StatusCode) -> Response,
) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if matches!(status, 502..=504) {
        html_response(code, "text/html")
    } else {
        json_error(code)
    }
}

/// What a fault did to a request.
#[derive(Debug)]
pub(crate) struct Applied {
    pub response: Response,
    /// The connection was dropped: the client got no response (counted
    /// as status 0).
    pub dropped: bool,
}

impl Applied {
    fn sent(response: Response) -> Self {
        Applied {
            response,
            dropped: false,
        }
    }
}

/// Applies a fault that acts before the handler (`Status`,
/// `TooManyRequests`, `Reset`); `None` for the other kinds. `json_error`
/// words an error status as the simulator does; `too_many` is its 429
/// (with `Retry-After: 1`).
pub(crate) fn apply_before(
    kind: FaultKind,
    conn: Option<&ConnCtl>,
    json_error: impl FnOnce(StatusCode) -> Response,
    too_many: impl FnOnce() -> Response,
) -> Option<Applied> {
    match kind {
        FaultKind::TooManyRequests => Some(Applied::sent(too_many())),
        FaultKind::Status(status) => Some(Applied::sent(status_response(status, json_error))),
        FaultKind::Reset => Some(Applied {
            response: drop_connection(conn, StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            dropped: true,
        }),
        FaultKind::Truncate | FaultKind::Html | FaultKind::EmptyBody | FaultKind::LoseResponse => {
            None
        }
    }
}

/// Applies a fault that acts after the handler produced `response`
/// (`Truncate`, `Html`, `LoseResponse`); other kinds leave it as is.
pub(crate) async fn apply_after(
    kind: FaultKind,
    response: Response,
    conn: Option<&ConnCtl>,
) -> Applied {
    match kind {
        FaultKind::Truncate => Applied::sent(truncate(response).await),
        FaultKind::Html => Applied::sent(html_response(StatusCode::OK, "text/html; charset=utf-8")),
        FaultKind::EmptyBody => Applied::sent(StatusCode::OK.into_response()),
        FaultKind::LoseResponse => Applied {
            response: drop_connection(conn, response),
            dropped: true,
        },
        _ => Applied::sent(response),
    }
}

/// Resets the connection (the response is never written); without a
/// [`ConnCtl`], answers a body that fails at once instead.
fn drop_connection(conn: Option<&ConnCtl>, response: Response) -> Response {
    match conn {
        Some(conn) => {
            conn.reset();
            response
        }
        None => broken_response(),
    }
}

/// Sends the first half of the body, with a matching `Content-Length`.
pub(crate) async fn truncate(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let cut = bytes.slice(0..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(cut))
}

/// A response whose body fails at once: the fallback way to drop a
/// connection when no [`ConnCtl`] is available.
pub(crate) fn broken_response() -> Response {
    let stream =
        futures::stream::once(async { Err::<axum::body::Bytes, io::Error>(reset_error()) });
    Response::new(Body::from_stream(stream))
}

fn reset_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "sim: connection reset (fault)",
    )
}

// ---------------------------------------------------------------------------
// Listener with resettable connections.

/// A TCP listener whose streams can be reset from a handler.
pub(crate) struct FaultListener(pub TcpListener);

/// A TCP stream that fails every read and write once `kill` is set, after
/// setting `SO_LINGER` 0 so that closing it sends an RST.
pub(crate) struct FaultStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl FaultStream {
    fn killed(&self) -> bool {
        if self.kill.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            true
        } else {
            false
        }
    }
}

impl AsyncRead for FaultStream {
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

impl AsyncWrite for FaultStream {
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

impl axum::serve::Listener for FaultListener {
    type Io = FaultStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (FaultStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        FaultStream {
                            inner: stream,
                            kill: Arc::new(AtomicBool::new(false)),
                        },
                        addr,
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, "sim: accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

/// Per-connection handle given to a pipeline (as `ConnectInfo<ConnCtl>`):
/// resets the connection.
#[derive(Clone, Debug)]
pub(crate) struct ConnCtl {
    kill: Arc<AtomicBool>,
}

impl ConnCtl {
    pub fn reset(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }
}

impl Connected<axum::serve::IncomingStream<'_, FaultListener>> for ConnCtl {
    fn connect_info(stream: axum::serve::IncomingStream<'_, FaultListener>) -> Self {
        ConnCtl {
            kill: stream.io().kill.clone(),
        }
    }
}

/// Serves `router` on `listener` with resettable connections until
/// `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let app = router.into_make_service_with_connect_info::<ConnCtl>();
    axum::serve(FaultListener(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

// ---------------------------------------------------------------------------
// Command line.

fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err("a probability is between 0 and 1".into())
    }
}

pub(crate) fn parse_error_rate(text: &str) -> Result<(u16, f64), String> {
    let (status, p) = text
        .split_once('=')
        .ok_or_else(|| "expected STATUS=PROBABILITY, e.g. 503=0.05".to_string())?;
    let status: u16 = status
        .parse()
        .map_err(|_| format!("not a status: {status}"))?;
    if !(400..=599).contains(&status) {
        return Err("the status must be 4xx or 5xx".into());
    }
    Ok((status, parse_probability(p)?))
}

/// The fault flags of a simulator command (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultArgs {
    /// Answer a share of requests with an error: STATUS=PROBABILITY
    /// (e.g. 503=0.05). Repeatable.
    #[arg(long = "fault-error", value_name = "STATUS=P", value_parser = parse_error_rate)]
    pub fault_errors: Vec<(u16, f64)>,
    /// Latency added to every request.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub fault_latency: Duration,
    /// Extra random latency, up to this much.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub fault_jitter: Duration,
    /// Probability of dropping the connection without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_reset: f64,
    /// Probability of sending half of the JSON body.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_truncate: f64,
    /// Probability of answering an HTML page instead of JSON.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_html: f64,
    /// Probability of committing a write and then dropping the connection.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_lose_response: f64,
    /// Answer every request 429.
    #[arg(long)]
    pub fault_429_storm: bool,
}

impl FaultArgs {
    /// The fault configuration these flags describe.
    pub fn config(&self) -> FaultConfig {
        FaultConfig {
            error_rates: self.fault_errors.clone(),
            latency: self.fault_latency,
            jitter: self.fault_jitter,
            reset_rate: self.fault_reset,
            truncate_rate: self.fault_truncate,
            html_rate: self.fault_html,
            lose_response_rate: self.fault_lose_response,
            storm_429: self.fault_429_storm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn queued_faults_come_first_and_lost_responses_wait_for_a_write() {
        let mut state = FaultState::new(
            FaultConfig {
                storm_429: true,
                ..FaultConfig::default()
            },
            ChaCha8Rng::seed_from_u64(1),
        );
        state.push(FaultKind::LoseResponse, 1);
        state.push(FaultKind::Reset, 1);
        let get = state.plan(&Method::GET);
        assert_eq!(get.before, Some(FaultKind::Reset));
        let get = state.plan(&Method::GET);
        assert_eq!(get.before, Some(FaultKind::TooManyRequests));
        let patch = state.plan(&Method::PATCH);
        assert_eq!(patch.after, Some(FaultKind::LoseResponse));
        assert_eq!(patch.before, None);
        assert_eq!(
            state.plan(&Method::PATCH).before,
            Some(FaultKind::TooManyRequests)
        );
    }

    #[test]
    fn fault_flags_parse() {
        assert_eq!(parse_error_rate("503=0.5").unwrap(), (503, 0.5));
        assert!(parse_error_rate("503=2").is_err());
        assert!(parse_error_rate("200=0.1").is_err());
        assert!(parse_probability("1.5").is_err());
        assert_eq!(parse_probability("0.25").unwrap(), 0.25);
    }
}
