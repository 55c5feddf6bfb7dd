//! HTTP plumbing any connector can use: a client that never follows
//! redirects, the retry policy of transient failures, a body reader with a
//! size cap, transport errors described with their cause, and
//! `Retry-After`.

use std::time::Duration;

use backon::ExponentialBuilder;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// A reqwest client for an API: rustls, timeouts, and no redirects (an API
/// answer is never a redirect; following one could send credentials to
/// another host).
pub fn api_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("ghlsync/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Exponential delays with jitter between the attempts of this policy.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter()
    }
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailure {
    /// Nothing usable arrived. `maybe_applied` is false only when no
    /// connection was made, so the server cannot have acted on it.
    Transport { detail: String, maybe_applied: bool },
    /// The body is larger than allowed (and was not buffered).
    TooLarge {
        status: StatusCode,
        limit: u64,
        declared: Option<u64>,
    },
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadFailure::Transport { detail, .. } => f.write_str(detail),
            ReadFailure::TooLarge {
                status,
                limit,
                declared: Some(length),
            } => write!(
                f,
                "response {status} of {length} bytes exceeds the {limit}-byte limit (max_body_bytes)"
            ),
            ReadFailure::TooLarge { status, limit, .. } => write!(
                f,
                "response {status} exceeds the {limit}-byte limit (max_body_bytes)"
            ),
        }
    }
}

/// Reads a whole response, refusing bodies over `limit` bytes (by their
/// declared length, or as they stream in).
pub async fn read_limited(
    sent: Result<reqwest::Response, reqwest::Error>,
    limit: u64,
) -> Result<(StatusCode, HeaderMap, Bytes), ReadFailure> {
    let mut response = sent.map_err(|error| ReadFailure::Transport {
        detail: describe(&error),
        // Before a connection exists nothing can have reached the server.
        maybe_applied: !error.is_connect(),
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    if let Some(length) = response.content_length() {
        if length > limit {
            return Err(ReadFailure::TooLarge {
                status,
                limit,
                declared: Some(length),
            });
        }
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(ReadFailure::TooLarge {
                        status,
                        limit,
                        declared: None,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                return Err(ReadFailure::Transport {
                    detail: format!("response {status} broke off: {}", describe(&error)),
                    maybe_applied: true,
                })
            }
        }
    }
    Ok((status, headers, Bytes::from(body)))
}

/// A transport error without the URL (callers name the call) and with the
/// underlying cause, which reqwest hides behind "error sending request".
pub fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "connection failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` as a wait: delay-seconds or an HTTP date (RFC 9110
/// §10.2.3). A date in the past is no wait.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Whether a body could be JSON (an object or array), as opposed to an
/// HTML error page or plain text.
pub fn looks_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// How many characters of a value from outside are echoed.
pub const ECHO_CHARS: usize = 200;

/// A value that came from outside (an id in a webhook, a side's answer or
/// message), bounded for a log field or an error message: its first
/// [`ECHO_CHARS`] characters and its full length. A sender decides how
/// long its values are, and a 100 KB id was echoed whole into every line
/// that named it.
pub fn bounded(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(ECHO_CHARS) {
        None => text.into(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()).into(),
    }
}

/// The start of a body, quoted, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    format!("{:?}", bounded(text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }

    #[test]
    fn html_is_not_json() {
        assert!(looks_like_json(b"  {\"a\":1}"));
        assert!(!looks_like_json(b"<html>"));
        assert_eq!(snippet(b"  <h1>Bad</h1>\n"), "\"<h1>Bad</h1>\"");
    }

    #[test]
    fn values_from_outside_are_bounded() {
        assert_eq!(bounded("abc"), "abc");
        let exact = "é".repeat(ECHO_CHARS);
        assert_eq!(bounded(&exact), exact);
        let long = "é".repeat(50_000);
        let echoed = bounded(&long);
        assert!(echoed.starts_with(&"é".repeat(ECHO_CHARS)));
        assert!(echoed.ends_with("… (100000 bytes)"), "{echoed}");
        assert!(echoed.len() < 500);
    }
}
