//! Applying a planned fault: the error answers that replace the handler
//! (an injected status, the 429 storm, a reset), and what a fault does to
//! the handler's answer (cut in half, an HTML page, an empty body, a lost
//! response).

use std::io;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::listener::{reset_error, ConnCtl};
use super::FaultKind;

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
        FaultKind::Truncate
        | FaultKind::Html
        | FaultKind::EmptyBody
        | FaultKind::LoseResponse
        | FaultKind::StatusAfterWrite(_) => None,
    }
}

/// Applies a fault that acts after the handler produced `response`
/// (`Truncate`, `Html`, `LoseResponse`, `StatusAfterWrite`, worded by
/// `json_error` as the simulator words errors); other kinds leave it as
/// is.
pub(crate) async fn apply_after(
    kind: FaultKind,
    response: Response,
    conn: Option<&ConnCtl>,
    json_error: impl FnOnce(StatusCode) -> Response,
) -> Applied {
    match kind {
        FaultKind::StatusAfterWrite(status) => Applied::sent(status_response(status, json_error)),
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
