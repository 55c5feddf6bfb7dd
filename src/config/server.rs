//! `[server]` and `[webhooks]`: the daemon's own HTTP server (signed
//! webhooks, `/healthz`, `/readyz`, `/metrics`) and how far webhooks are
//! trusted.

use std::net::SocketAddr;
use std::time::Duration;

use super::reader::{Got, Table};
use crate::connector::ghl::webhook::WebhookKeys;

/// The HTTP server inside `ghlsync run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Where it listens; `None` (an empty `bind`) runs no server, hence no
    /// webhooks and no health endpoints.
    pub bind: Option<SocketAddr>,
    /// Largest request body accepted; bigger ones get 413 unread.
    pub max_body_bytes: usize,
    /// `/readyz` fails when a side's last successful poll is older.
    pub ready_max_poll_age: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            bind: Some(SocketAddr::from(([127, 0, 0, 1], 8686))),
            max_body_bytes: 1024 * 1024,
            ready_max_poll_age: Duration::from_secs(600),
        }
    }
}

/// How webhooks are verified and how much they are trusted.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// A delivery whose `timestamp` is further than this from now is
    /// refused; each `webhookId` is accepted once.
    pub replay_window: Duration,
    /// A side whose last verified webhook is younger than this counts as
    /// "webhooks healthy": its change polls run at `safety_poll_interval`.
    pub trust_for: Duration,
    /// The polling interval of a side while its webhooks are healthy.
    pub safety_poll_interval: Duration,
    /// The keys GHL deliveries are verified with (GHL's published Ed25519
    /// and RSA keys unless configured, for rotation).
    pub ghl_keys: WebhookKeys,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            replay_window: Duration::from_secs(300),
            trust_for: Duration::from_secs(900),
            safety_poll_interval: Duration::from_secs(300),
            ghl_keys: WebhookKeys::ghl_default(),
        }
    }
}

pub(crate) fn read_server(root: &mut Table<'_>) -> Option<ServerSettings> {
    let mut table = match root.table("server") {
        Got::Value(table) => table,
        Got::Absent => return Some(ServerSettings::default()),
        Got::Invalid => return None,
    };
    let defaults = ServerSettings::default();
    let bind = table
        .parse(
            "bind",
            "an address and port such as \"127.0.0.1:8686\", or \"\" for no server",
            |text| {
                let text = text.trim();
                if text.is_empty() {
                    Ok(None)
                } else {
                    text.parse::<SocketAddr>()
                        .map(Some)
                        .map_err(|e| e.to_string())
                }
            },
        )
        .with_default(|| defaults.bind);
    let max_body_bytes = table
        .integer_in("max_body_bytes", 1024, 64 * 1024 * 1024)
        .map(|n| n as usize)
        .with_default(|| defaults.max_body_bytes);
    let ready_max_poll_age = table
        .duration("ready_max_poll_age")
        .with_default(|| defaults.ready_max_poll_age);
    table.finish();
    Some(ServerSettings {
        bind: bind?,
        max_body_bytes: max_body_bytes?,
        ready_max_poll_age: ready_max_poll_age?,
    })
}

pub(crate) fn read_webhooks(root: &mut Table<'_>) -> Option<WebhookSettings> {
    let mut table = match root.table("webhooks") {
        Got::Value(table) => table,
        Got::Absent => return Some(WebhookSettings::default()),
        Got::Invalid => return None,
    };
    let defaults = WebhookSettings::default();
    let replay_window = table
        .duration("replay_window")
        .with_default(|| defaults.replay_window);
    let trust_for = table
        .duration("trust_for")
        .with_default(|| defaults.trust_for);
    let safety_poll_interval = table
        .duration("safety_poll_interval")
        .with_default(|| defaults.safety_poll_interval);
    let rsa = pem(&mut table, "ghl_rsa_public_key", "ghl_rsa_public_key_file");
    let ed25519 = pem(
        &mut table,
        "ghl_ed25519_public_key",
        "ghl_ed25519_public_key_file",
    );
    let ghl_keys = match (rsa, ed25519) {
        (Some(None), Some(None)) => Some(defaults.ghl_keys),
        (Some(rsa), Some(ed25519)) => {
            let rsa = rsa.unwrap_or_else(|| {
                crate::connector::ghl::webhook::GHL_WEBHOOK_PUBLIC_KEY.to_owned()
            });
            let ed25519 = ed25519.unwrap_or_else(|| {
                crate::connector::ghl::webhook::GHL_WEBHOOK_ED25519_PUBLIC_KEY.to_owned()
            });
            match WebhookKeys::from_pem(Some(&rsa), Some(&ed25519)) {
                Ok(keys) => Some(keys),
                Err(error) => {
                    let key = if error.which == "RSA" {
                        "ghl_rsa_public_key"
                    } else {
                        "ghl_ed25519_public_key"
                    };
                    table.report(key, None, format!("not a PEM public key: {}", error.detail));
                    None
                }
            }
        }
        _ => None,
    };
    table.finish();
    Some(WebhookSettings {
        replay_window: replay_window?,
        trust_for: trust_for?,
        safety_poll_interval: safety_poll_interval?,
        ghl_keys: ghl_keys?,
    })
}

/// A PEM given inline as `key` or in the file named by `key_file`:
/// `Some(None)` when neither is set, `None` when invalid (reported).
fn pem(table: &mut Table<'_>, key: &'static str, key_file: &'static str) -> Option<Option<String>> {
    let inline = table.string(key);
    let file = table.path(key_file);
    match (inline, file) {
        (Got::Absent, Got::Absent) => Some(None),
        (Got::Value(_), Got::Value(_)) => {
            table.report(
                key,
                None,
                format!("set either `{key}` or `{key_file}`, not both"),
            );
            None
        }
        (Got::Value(text), Got::Absent) => Some(Some(text)),
        (Got::Absent, Got::Value(path)) => match std::fs::read_to_string(&path) {
            Ok(text) => Some(Some(text)),
            Err(error) => {
                table.report(
                    key_file,
                    Some(path.display().to_string()),
                    format!("cannot read the key file: {error}"),
                );
                None
            }
        },
        _ => None,
    }
}
