//! Settings of the mirror store's database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::connector::SecretSource;

/// Which SQL engine holds the mirror. Chosen by the scheme of `database.url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded, single file, the default: no server to run.
    Sqlite,
    /// For scale and for several replicas sharing one mirror.
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Validated `[database]` settings.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub backend: Backend,
    /// Full connection URL, password included, so it is held as a secret.
    pub url: SecretString,
    /// Upper bound on pooled connections (SQLite serialises writers anyway).
    pub max_connections: u32,
    /// How long a caller waits for a pooled connection before failing.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits on a locked database file.
    pub sqlite_busy_timeout: Duration,
    /// `database.token_key`: encrypts OAuth tokens at rest. Without it they
    /// are stored in plain text (and start-up warns about it).
    pub token_key: Option<TokenKey>,
}

impl DatabaseSettings {
    /// SQLite settings for a database file: used by tests, `demo` and
    /// benchmarks that build settings without a config file.
    pub fn sqlite_file(path: &std::path::Path) -> Self {
        Self {
            backend: Backend::Sqlite,
            url: SecretString::from(format!("sqlite://{}", path.display())),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(30),
            sqlite_busy_timeout: Duration::from_secs(5),
            token_key: None,
        }
    }

    /// Postgres settings for a URL (tests read it from
    /// `GHLSYNC_TEST_DATABASE_URL`).
    pub fn postgres_url(url: &str) -> Self {
        Self {
            backend: Backend::Postgres,
            url: SecretString::from(url.to_owned()),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            sqlite_busy_timeout: Duration::from_secs(5),
            token_key: None,
        }
    }

    /// The URL with any password replaced by `***`, safe for logs and output.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// The 32-byte key that seals OAuth tokens in the mirror, decoded and
/// checked once at load so a malformed key is a config error, not a failure
/// at the first token refresh. Cheap to clone; never printed.
#[derive(Clone)]
pub struct TokenKey {
    bytes: Arc<SecretBox<[u8; TokenKey::LEN]>>,
    /// Where it came from, for summaries.
    pub source: SecretSource,
}

impl TokenKey {
    /// XChaCha20-Poly1305 takes a 256-bit key.
    pub const LEN: usize = 32;

    /// Decodes standard base64 (padding optional, surrounding whitespace
    /// ignored) of exactly 32 bytes. The error never quotes the value.
    pub fn from_base64(text: &SecretString, source: SecretSource) -> Result<TokenKey, String> {
        let text = text.expose_secret().trim();
        let decoded = KEY_BASE64
            .decode(text)
            .map_err(|_| "is not valid base64 (value hidden: secret)".to_owned())?;
        let bytes: [u8; TokenKey::LEN] = decoded.as_slice().try_into().map_err(|_| {
            format!(
                "decodes to {} bytes instead of {} (value hidden: secret)",
                decoded.len(),
                TokenKey::LEN
            )
        })?;
        Ok(TokenKey {
            bytes: Arc::new(SecretBox::new(Box::new(bytes))),
            source,
        })
    }

    /// The raw key, for the cipher only.
    pub fn expose_bytes(&self) -> &[u8; TokenKey::LEN] {
        self.bytes.expose_secret()
    }
}

/// Standard base64; `openssl rand -base64 32` pads, hand-trimmed keys may not.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenKey([REDACTED], {})", self.source)
    }
}

/// What a secret part of a database URL is replaced with.
const MASK: &str = "***";

/// Replaces every secret part of a database URL with `***`: the password of
/// its user info and the value of any query parameter named like a password
/// (sqlx also reads the Postgres password from `?password=`). A URL that
/// does not parse (the very case a configuration error reports) is masked
/// textually, from the first `:` of its user info to its last `@`, so even
/// a password holding `/`, `?` or `#` is covered: more may be masked than
/// the password, never less.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some(MASK));
            }
            if url.query_pairs().any(|(key, _)| secret_param(&key)) {
                let pairs: Vec<(String, String)> = url
                    .query_pairs()
                    .map(|(key, value)| {
                        let value = if secret_param(&key) {
                            MASK.to_owned()
                        } else {
                            value.into_owned()
                        };
                        (key.into_owned(), value)
                    })
                    .collect();
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        Err(_) => {
            let mut out = raw.to_owned();
            // Right to left, so the earlier ranges stay valid.
            for span in unparsed_secret_spans(raw).into_iter().rev() {
                out.replace_range(span, MASK);
            }
            out
        }
    }
}

/// Removes a database URL and each of its secrets (as written and
/// percent-decoded) from a message that did not come from us, such as a
/// driver's connect error, before it goes into an error or a log line.
pub fn scrub_url_secrets(message: &str, raw_url: &str) -> String {
    let mut out = message.replace(raw_url, &redact_url(raw_url));
    let mut secrets: Vec<String> = Vec::new();
    match url::Url::parse(raw_url) {
        Ok(url) => {
            secrets.extend(url.password().map(str::to_owned));
            for (key, value) in url.query_pairs() {
                if secret_param(&key) {
                    secrets.push(value.into_owned());
                }
            }
            for (key, value) in raw_query_pairs(url.query().unwrap_or_default()) {
                if secret_param(key) {
                    secrets.push(value.to_owned());
                }
            }
        }
        Err(_) => secrets.extend(
            unparsed_secret_spans(raw_url)
                .into_iter()
                .map(|span| raw_url[span].to_owned()),
        ),
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty() && s != MASK);
    // Longest first: a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    for secret in &secrets {
        out = out.replace(secret.as_str(), MASK);
    }
    out
}

/// A query parameter whose value is a password (`password`, `sslpassword`).
fn secret_param(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// `key=value` pairs of a query as written (not decoded).
fn raw_query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query.split('&').filter_map(|pair| pair.split_once('='))
}

/// Byte ranges of the secrets of a URL that `url` cannot parse, found
/// without trusting its structure: the user info's password runs from the
/// first `:` after `scheme://` to the last `@`; a password parameter's
/// value runs to the next `&` or `#`. Sorted and merged.
fn unparsed_secret_spans(raw: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = Vec::new();
    let start = raw.find("://").map_or(0, |i| i + 3);
    if let Some(at) = raw[start..].rfind('@').map(|i| start + i) {
        if let Some(colon) = raw[start..at].find(':').map(|i| start + i) {
            spans.push(colon + 1..at);
        }
    }
    let mut search = start;
    while let Some(found) = raw[search..].find(['?', '&']).map(|i| search + i) {
        let key_start = found + 1;
        let rest = &raw[key_start..];
        let key_end = rest
            .find(['=', '&', '#'])
            .map_or(raw.len(), |i| key_start + i);
        if raw[key_end..].starts_with('=') && secret_param(&raw[key_start..key_end]) {
            let value_start = key_end + 1;
            let value_end = raw[value_start..]
                .find(['&', '#'])
                .map_or(raw.len(), |i| value_start + i);
            spans.push(value_start..value_end);
        }
        search = key_start;
    }
    spans.retain(|span| !span.is_empty());
    spans.sort_by_key(|span| span.start);
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// `%XX` escapes decoded (invalid ones kept as written), for matching a
/// secret as a driver may print it.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsed_urls_lose_the_password_and_password_parameters() {
        assert_eq!(
            redact_url("postgres://u:s3cret@db:5432/x?sslmode=require&password=q%2Fx"),
            "postgres://u:***@db:5432/x?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://u@db/x?application_name=a%20b"),
            "postgres://u@db/x?application_name=a%20b",
            "a URL without secrets keeps its spelling"
        );
    }

    #[test]
    fn unparseable_urls_are_masked_from_the_user_info_colon_to_the_last_at() {
        for (raw, masked) in [
            (
                "postgres://u:pw@host:notaport/db",
                "postgres://u:***@host:notaport/db",
            ),
            ("postgres://u:p/w?#x@/db", "postgres://u:***@/db"),
            (
                "postgres://u:pw@h:x/db?password=zz&a=1",
                "postgres://u:***@h:x/db?password=***&a=1",
            ),
            ("mysql ://u:pw@h", "mysql ://u:***@h"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(raw), masked, "{raw}");
        }
    }

    #[test]
    fn scrub_removes_every_spelling_of_the_secrets() {
        let raw = "postgres://u:s%40cret@db:5432/x?password=p%26q";
        let msg = format!("failed for {raw}: password s@cret rejected (s%40cret), p&q too");
        let out = scrub_url_secrets(&msg, raw);
        for secret in ["s@cret", "s%40cret", "p&q", "p%26q"] {
            assert!(!out.contains(secret), "{out}");
        }
        let raw = "postgres://u:pw@h:x/db";
        assert_eq!(
            scrub_url_secrets("bad port in postgres://u:pw@h:x/db (pw)", raw),
            "bad port in postgres://u:***@h:x/db (***)"
        );
    }
}
