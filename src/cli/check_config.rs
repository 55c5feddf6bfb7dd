//! `ghlsync check-config`: validate and summarise, without touching the
//! database or any remote side.

use std::fmt::Write;

use super::Exit;
use crate::config::{ApiKeyPlacement, GhlAuth, Loaded, RestAuth, Settings, SideKind};

pub fn run(loaded: &Loaded) -> Exit {
    print!("{}", summary(loaded));
    Exit::Ok
}

/// "contacts, tasks (read-only)": what a REST side describes.
fn rest_entities(rest: &crate::config::RestSide) -> String {
    let mut entities = vec!["contacts"];
    if rest.tasks.is_some() {
        entities.push("tasks");
    }
    if rest.notes.is_some() {
        entities.push("notes");
    }
    let mut text = entities.join(", ");
    if rest.read_only {
        text.push_str(" (read-only)");
    }
    text
}

/// The human summary of what would run. Names where secrets come from,
/// never their values.
pub fn summary(loaded: &Loaded) -> String {
    let Settings {
        state_dir,
        log,
        database,
        sides,
        pairs,
        sync,
        server,
        webhooks,
    } = &loaded.settings;
    let mut out = String::new();
    let source = match &loaded.file {
        Some(path) => path.display().to_string(),
        None => "no file (built-in defaults and environment)".to_owned(),
    };
    let _ = writeln!(out, "configuration is valid: {source}");
    let _ = writeln!(out, "  state dir  {}", state_dir.display());
    let _ = writeln!(
        out,
        "  database   {} {} (pool of {})",
        database.backend.as_str(),
        database.redacted_url(),
        database.max_connections
    );
    let _ = writeln!(
        out,
        "  tokens     OAuth tokens {}",
        match &database.token_key {
            Some(key) => format!("encrypted at rest (token_key {})", key.source),
            None => "stored unencrypted (no database.token_key)".to_owned(),
        }
    );
    let _ = writeln!(
        out,
        "  log        level {}, format {:?}",
        log.level, log.format
    );
    let _ = writeln!(
        out,
        "  sync       poll every {} (+ up to {} jitter), overlap {}, lag {}, reconcile every {}",
        humantime::format_duration(sync.poll_interval),
        humantime::format_duration(sync.poll_jitter),
        humantime::format_duration(sync.overlap),
        humantime::format_duration(sync.lag),
        humantime::format_duration(sync.reconcile_interval),
    );
    let _ = match server.bind {
        Some(bind) => writeln!(
            out,
            "  server     http://{bind} (webhooks, /healthz, /readyz, /metrics); webhook replay window {}, polls every {} while a side's webhooks arrive",
            humantime::format_duration(webhooks.replay_window),
            humantime::format_duration(webhooks.safety_poll_interval),
        ),
        None => writeln!(out, "  server     off (server.bind is empty): no webhooks, no health endpoints"),
    };
    for side in sides.values() {
        let _ = match &side.kind {
            SideKind::Ghl(ghl) => writeln!(
                out,
                "  side {:<6} GoHighLevel location {} at {}, {}, scopes: {}",
                side.name,
                ghl.location_id,
                ghl.base_url,
                match &ghl.auth {
                    GhlAuth::PrivateToken { token } => format!("private token {}", token.source),
                    GhlAuth::OAuth {
                        client_id,
                        client_secret,
                        ..
                    } => format!(
                        "OAuth app {client_id} (client secret {})",
                        client_secret.source
                    ),
                },
                ghl.scopes.join(" ")
            ),
            SideKind::Rest(rest) => writeln!(
                out,
                "  side {:<6} REST app at {}, {}, {}{}",
                side.name,
                rest.base_url,
                rest_entities(rest),
                match &rest.auth {
                    RestAuth::None => "no authentication".to_owned(),
                    RestAuth::Bearer { token } => format!("bearer token {}", token.source),
                    RestAuth::ApiKey {
                        placement,
                        name,
                        key,
                    } => format!(
                        "API key in {} `{name}` {}",
                        match placement {
                            ApiKeyPlacement::Header => "header",
                            ApiKeyPlacement::Query => "query parameter",
                        },
                        key.source
                    ),
                    RestAuth::Basic { username, password } =>
                        format!("basic auth as {username} (password {})", password.source),
                    RestAuth::OAuth2ClientCredentials {
                        token_url,
                        client_id,
                        ..
                    } => format!("OAuth 2.0 client credentials {client_id} at {token_url}"),
                },
                match &rest.webhook_secret {
                    Some(secret) => format!(", signed webhooks (secret {})", secret.source),
                    None => String::new(),
                }
            ),
        };
    }
    for pair in pairs.values() {
        let one_way = matches!(
            sides.get(&pair.ghl).map(|s| &s.kind),
            Some(SideKind::Ghl(ghl)) if !ghl.can_write_contacts()
        );
        let _ = writeln!(
            out,
            "  pair {:<6} {} {} {}, {} mapped field(s), default policy {}, deletes {}",
            pair.name,
            pair.ghl,
            if one_way {
                "-> (one-way, read-only GHL scope)"
            } else {
                "<->"
            },
            pair.app,
            pair.map.fields.len(),
            pair.default_policy.as_str(),
            match &pair.deletes {
                crate::mapping::DeletePolicy::Propagate => "propagate".to_owned(),
                crate::mapping::DeletePolicy::Ignore => "ignored".to_owned(),
                crate::mapping::DeletePolicy::Tag(tag) => format!("tagged \"{tag}\""),
            }
        );
    }
    for warning in &loaded.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}
