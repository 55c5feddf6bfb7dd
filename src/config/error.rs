//! Configuration errors that say where the bad value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value (or the table it is missing from) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The defaults compiled into the binary (`config/default.toml`).
    BuiltIn,
    /// The operator's config file, with the line when it is known.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable such as `GHLSYNC__DATABASE__URL`.
    Env { var: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::BuiltIn => f.write_str("built-in defaults"),
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{}:{line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// Dotted key path, for example `sides.ghl.auth.token_file`.
    pub key: String,
    /// The offending value as written, or `None` when absent or secret.
    pub value: Option<String>,
    /// What is wrong and what is expected instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.key)?;
        if let Some(value) = &self.value {
            write!(f, " = {value:?}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why configuration could not be loaded. Never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: not valid TOML: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot merge configuration layers: {0}")]
    Layering(String),
    #[error("{}", render_problems(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The individual problems of an `Invalid` error (empty for the others).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

fn render_problems(problems: &[Problem]) -> String {
    let mut out = format!(
        "invalid configuration ({} problem{}):",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for problem in problems {
        out.push_str("\n  - ");
        out.push_str(&problem.to_string());
    }
    out
}
