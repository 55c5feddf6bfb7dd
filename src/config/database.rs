//! Settings of the mirror store's database.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

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
        }
    }

    /// The URL with any password replaced by `***`, safe for logs and output.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
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
