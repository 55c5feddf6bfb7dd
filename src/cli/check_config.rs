//! `ghlsync check-config`: validate and summarise, without touching the
//! database or any remote side (a SQLite mirror's missing directories are
//! only planned, with one probe directory created and removed).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::Exit;
use crate::config::{
    ApiKeyPlacement, GhlAuth, Loaded, PairSettings, RestAuth, Settings, SideKind, SideSettings,
};

pub fn run(loaded: &Loaded) -> Exit {
    // Only a look (and a probe directory created and removed): the SQLite
    // directories are created by `migrate` and the daemon, which fail on a
    // parent this user cannot create; better to learn that before a deploy.
    match crate::store::sqlite_dirs_to_create(&loaded.settings.database) {
        Ok(dirs) => {
            print!("{}", summary(loaded, &dirs));
            Exit::Ok
        }
        Err(e) => {
            print!("{}", summary(loaded, &[]));
            eprintln!(
                "error: database: {e}; create it as the service's user, or set database.url \
                 (or state_dir) to a place that user may write"
            );
            Exit::Invalid
        }
    }
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
pub fn summary(loaded: &Loaded, planned_dirs: &[PathBuf]) -> String {
    let settings = &loaded.settings;
    let mut out = String::new();
    let source = match &loaded.file {
        Some(path) => path.display().to_string(),
        None => "no file (built-in defaults and environment)".to_owned(),
    };
    let _ = writeln!(out, "configuration is valid: {source}");
    write_daemon(&mut out, settings);
    if !planned_dirs.is_empty() {
        let dirs: Vec<String> = planned_dirs
            .iter()
            .map(|dir| dir.display().to_string())
            .collect();
        let _ = writeln!(
            out,
            "             missing: `migrate` and the daemon will create {}",
            dirs.join(", ")
        );
    }
    for side in settings.sides.values() {
        let _ = writeln!(out, "{}", side_line(side));
        if let SideKind::Rest(rest) = &side.kind {
            write_child_delay(&mut out, rest, settings.sync.reconcile_interval);
        }
    }
    for pair in settings.pairs.values() {
        let _ = writeln!(out, "{}", pair_line(pair, &settings.sides));
    }
    for warning in &loaded.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// The lines of the daemon's own settings: state, database, tokens, log,
/// schedule and server.
fn write_daemon(out: &mut String, settings: &Settings) {
    let Settings {
        state_dir,
        log,
        database,
        sync,
        server,
        webhooks,
        ..
    } = settings;
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
}

/// One side: what it is, where, and where its credentials come from.
fn side_line(side: &SideSettings) -> String {
    match &side.kind {
        SideKind::Ghl(ghl) => format!(
            "  side {:<6} GoHighLevel location {} at {}, {}, scopes: {}",
            side.name,
            ghl.location_id,
            ghl.base_url,
            ghl_auth(&ghl.auth),
            ghl.scopes.join(" ")
        ),
        SideKind::Rest(rest) => format!(
            "  side {:<6} REST app at {}, {}, {}{}",
            side.name,
            rest.base_url,
            rest_entities(rest),
            rest_auth(&rest.auth),
            match &rest.webhook_secret {
                Some(secret) => format!(", signed webhooks (secret {})", secret.source),
                None => String::new(),
            }
        ),
    }
}

/// Tasks and notes without a `list`: nothing polls them on their own, so
/// an edit made in the app waits for something to read them under their
/// contact. The operator should know the delay before relying on it.
fn write_child_delay(out: &mut String, rest: &crate::config::RestSide, reconcile: Duration) {
    for (entity, api) in [("task", &rest.tasks), ("note", &rest.notes)] {
        if api.as_ref().is_some_and(|api| api.list.is_none()) {
            let _ = writeln!(
                out,
                "             {entity}s: no `list`, so a {entity} edited in the app is seen only when its \
                 contact changes, when its webhook arrives, or at the next reconciliation \
                 (at most {} later: sync.reconcile_interval)",
                humantime::format_duration(reconcile)
            );
        }
    }
}

/// How a GHL side authenticates, and where its secret comes from.
fn ghl_auth(auth: &GhlAuth) -> String {
    match auth {
        GhlAuth::PrivateToken { token } => format!("private token {}", token.source),
        GhlAuth::OAuth {
            client_id,
            client_secret,
            ..
        } => format!(
            "OAuth app {client_id} (client secret {})",
            client_secret.source
        ),
    }
}

/// How a REST side authenticates, and where its secret comes from.
fn rest_auth(auth: &RestAuth) -> String {
    match auth {
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
        RestAuth::Basic { username, password } => {
            format!("basic auth as {username} (password {})", password.source)
        }
        RestAuth::OAuth2ClientCredentials {
            token_url,
            client_id,
            ..
        } => format!("OAuth 2.0 client credentials {client_id} at {token_url}"),
    }
}

/// One pair: its sides and direction, mapping and policies.
fn pair_line(pair: &PairSettings, sides: &BTreeMap<String, SideSettings>) -> String {
    let one_way = matches!(
        sides.get(&pair.ghl).map(|s| &s.kind),
        Some(SideKind::Ghl(ghl)) if !ghl.can_write_contacts()
    );
    format!(
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
    )
}
