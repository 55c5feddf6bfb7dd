//! Settings of the mirror store's database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use super::reader::SecretSource;

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

/// Replaces the password of a URL with `***`; a string that does not parse
/// as a URL is returned as `<unparseable url>` so nothing secret can leak.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}
