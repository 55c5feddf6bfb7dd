//! Logging set-up: structured `tracing` events as JSON lines for machines
//! (systemd, Docker, log shippers) or a human format on a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{layer::SubscriberExt, EnvFilter};

use crate::config::{LogFormat, LogSettings};

/// `log.values`: whether applied changes are logged with their values (at
/// debug). Process-wide, set once by [`init`]; off unless configured.
static LOG_VALUES: AtomicBool = AtomicBool::new(false);

/// Whether the values of applied changes may be logged (`log.values`).
pub fn log_values() -> bool {
    LOG_VALUES.load(Ordering::Relaxed)
}

/// Whether events will be written as JSON lines.
pub fn uses_json(format: LogFormat) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    }
}

/// The level filter: `RUST_LOG` when set (ad-hoc debugging wins), else the
/// configured `log.level`.
fn filter(level: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(level))
        }
        _ => EnvFilter::new(level),
    }
}

/// Builds the subscriber writing to `writer`. JSON lines carry the current
/// span and the whole span list, so every event is tagged with the pair,
/// location, entity and record ids recorded on its spans.
pub fn subscriber<W>(json: bool, level: &str, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter(level));
    if json {
        Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_target(true)
                    .with_writer(writer),
            ),
        )
    } else {
        Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(writer),
            ),
        )
    }
}

/// Installs the global subscriber, logging to stderr so that command
/// output on stdout stays machine-readable.
pub fn init(settings: &LogSettings) {
    LOG_VALUES.store(settings.values, Ordering::Relaxed);
    let subscriber = subscriber(uses_json(settings.format), &settings.level, std::io::stderr);
    // A second call (tests calling into the CLI twice) keeps the first.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
