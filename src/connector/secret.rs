//! A secret of a side's settings (a token, a key, a password) and where
//! it was read from. Connectors hold the value; summaries and problems
//! name only its source, never the value.

use std::path::PathBuf;

use secrecy::SecretString;

/// A secret and where it was read from (for summaries; never its value).
#[derive(Debug, Clone)]
pub struct Secret {
    pub value: SecretString,
    pub source: SecretSource,
}

/// Where a secret came from, safe to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    ConfigFile,
    Environment(String),
    File(PathBuf),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::ConfigFile => f.write_str("set in the config file"),
            SecretSource::Environment(var) => write!(f, "from environment variable {var}"),
            SecretSource::File(path) => write!(f, "read from {}", path.display()),
        }
    }
}
