//! Settings, layered: built-in defaults (`config/default.toml`, compiled in)
//! < the operator's TOML file < `GHLSYNC__SECTION__KEY` environment
//! variables. Loading validates everything and reports every problem at
//! once, each naming its source, key, value (unless secret) and what is
//! expected.

pub mod database;
mod error;
mod pairs;
mod reader;
mod rest;
mod retry;
mod server;
mod sides;
mod sync;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use config::{Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};

pub use database::{Backend, DatabaseSettings, TokenKey};
pub use error::{ConfigError, Origin, Problem};
pub use pairs::{ContactFilter, PairSettings};
pub use reader::env_var_for;
pub use server::{ServerSettings, WebhookSettings};
pub use sides::{SideKind, SideSettings};
pub use sync::SyncSettings;

// The settings types each connector owns, re-exported beside the
// [`Settings`] that holds them: configuration fills them in, callers
// reading settings find them here.
pub use crate::connector::ghl::{GhlAuth, GhlSide, OAuthInstall};
pub use crate::connector::rest::{ApiKeyPlacement, RestAuth, RestSide};
pub use crate::connector::{Secret, SecretSource};

use reader::{Context, FileLines, Got, Table};

/// Prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "GHLSYNC";

/// The documented defaults, compiled in so the binary runs without files.
pub const DEFAULTS_TOML: &str = include_str!("../../config/default.toml");

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_SEARCH_PATHS: [&str; 2] = ["./ghlsync.toml", "/etc/ghlsync/ghlsync.toml"];

/// Everything `ghlsync` needs to run, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the daemon keeps its state (the SQLite mirror by default).
    pub state_dir: PathBuf,
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub sides: BTreeMap<String, SideSettings>,
    pub pairs: BTreeMap<String, PairSettings>,
    pub sync: SyncSettings,
    pub server: ServerSettings,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// A `tracing` filter directive such as `info` or `ghl_sync=debug,info`.
    pub level: String,
    pub format: LogFormat,
    /// Whether the `debug` event of an applied change carries the changed
    /// values (personal data) besides the field names.
    pub values: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// JSON lines when stderr is not a terminal, human-readable otherwise.
    Auto,
    Json,
    Pretty,
}

/// How to find the configuration.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// An explicit file (`--config`); it must exist.
    pub file: Option<PathBuf>,
    /// Environment variables to read instead of the process environment
    /// (tests pass their own so they never race on global state).
    pub env: Option<HashMap<String, String>>,
    /// Skip the search of [`DEFAULT_SEARCH_PATHS`] when no file is given.
    pub no_search: bool,
}

/// The outcome of a successful load.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Things that are valid but probably not what the operator wants.
    pub warnings: Vec<String>,
}

/// Loads, merges and validates the configuration.
pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    let file = match &options.file {
        Some(path) => Some(path.clone()),
        None if options.no_search => None,
        None => DEFAULT_SEARCH_PATHS
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file()),
    };

    let mut builder =
        config::Config::builder().add_source(File::from_str(DEFAULTS_TOML, FileFormat::Toml));
    let mut lines = None;
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        lines = Some(FileLines {
            path: path.clone(),
            lines: key_lines(path, &text)?,
        });
        builder = builder.add_source(File::new(&path.to_string_lossy(), FileFormat::Toml));
    }
    // An empty variable is an empty value, refused or accepted exactly as
    // `key = ""` in the file would be: ignoring it would silently keep the
    // file's value (or none) while the operator believes it was set.
    let environment = Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("__")
        .separator("__")
        .ignore_empty(false);
    let environment = match &options.env {
        Some(vars) => environment.source(Some(vars.clone().into_iter().collect())),
        None => environment,
    };
    let merged = builder
        .add_source(environment)
        .build()
        .map_err(|e| ConfigError::Layering(e.to_string()))?;

    let ctx = Context::new(lines);
    let mut root = Table::root(&ctx, merged.cache);
    let settings = read_settings(&mut root);
    root.finish();
    let problems = ctx.into_problems();
    match settings {
        Some(settings) if problems.is_empty() => {
            let warnings = warnings(&settings);
            Ok(Loaded {
                settings,
                file,
                warnings,
            })
        }
        _ => Err(ConfigError::Invalid(problems)),
    }
}

fn read_settings(root: &mut Table<'_>) -> Option<Settings> {
    let state_dir = root.path("state_dir");
    let state_dir = root.required("state_dir", state_dir, "the directory for state");
    let log = read_log(root);
    let database = match root.table("database") {
        Got::Value(mut table) => {
            // With an invalid state_dir the result is discarded below; the
            // table is still read so its own problems are reported too.
            let dir = state_dir.as_deref().unwrap_or(Path::new("."));
            let read = read_database(&mut table, dir);
            table.finish();
            read
        }
        _ => None,
    };
    let sides = sides::read_sides(root);
    let pairs = pairs::read_pairs(root, &sides);
    let sync = sync::read_sync(root);
    let server = server::read_server(root);
    let webhooks = server::read_webhooks(root);
    let sides = sides
        .into_iter()
        .filter_map(|(name, side)| Some((name, side?)))
        .collect();
    Some(Settings {
        state_dir: state_dir?,
        log: log?,
        database: database?,
        sides,
        pairs,
        sync: sync?,
        server: server?,
        webhooks: webhooks?,
    })
}

fn read_log(root: &mut Table<'_>) -> Option<LogSettings> {
    let Got::Value(mut table) = root.table("log") else {
        return None;
    };
    let level = table.parse(
        "level",
        "a log filter such as \"info\", \"debug\" or \"ghl_sync=debug,warn\"",
        parse_log_filter,
    );
    let format = table
        .one_of("format", &["auto", "json", "pretty"])
        .map(|f| match f {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            _ => LogFormat::Auto,
        });
    let values = table.boolean("values");
    table.finish();
    Some(LogSettings {
        level: level.optional()?,
        format: format.optional()?,
        values: values.optional()?,
    })
}

/// Accepts `tracing` filter directives whose every part ends in a level.
/// `EnvFilter` alone would take a typo such as `inf` as a target name and
/// silently log nothing.
fn parse_log_filter(text: &str) -> Result<String, String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let text = text.trim();
    for directive in text.split(',').map(str::trim) {
        let level = directive.rsplit('=').next().unwrap_or_default();
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{directive}` does not end in a level: {}",
                LEVELS.join(", ")
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

fn read_database(table: &mut Table<'_>, state_dir: &Path) -> Option<DatabaseSettings> {
    // The URL may carry the password: a problem quotes it redacted.
    let url = table.parse_shown_as(
        "url",
        "a database URL: \"sqlite://<path>\" or \"postgres://user@host/db\"",
        database::redact_url,
        parse_database_url,
    );
    let password = table.secret("password", "password_file");
    let token_key = match table.secret("token_key", "token_key_file") {
        Got::Value(secret) => match TokenKey::from_base64(&secret.value, secret.source) {
            Ok(key) => Got::Value(key),
            Err(why) => {
                let key = if table.was_valid("token_key") {
                    "token_key"
                } else {
                    "token_key_file"
                };
                table.report(
                    key,
                    None,
                    format!(
                        "expected the base64 of 32 random bytes, but the value {why}; \
                         generate a key with `openssl rand -base64 32`"
                    ),
                );
                Got::Invalid
            }
        },
        Got::Absent => Got::Absent,
        Got::Invalid => Got::Invalid,
    };
    let max_connections = table.integer_in("max_connections", 1, 1000);
    let acquire_timeout = table.duration("acquire_timeout");
    let busy_timeout = table.duration("sqlite_busy_timeout");

    let (backend, url) = match url {
        Got::Value(parsed) => parsed,
        Got::Absent => (
            Backend::Sqlite,
            format!("sqlite://{}", state_dir.join("ghlsync.db").display()),
        ),
        Got::Invalid => return None,
    };
    let url = match password {
        Got::Value(password) if backend == Backend::Postgres => {
            let mut parsed = url::Url::parse(&url).ok()?;
            if parsed
                .set_password(Some(password.value.expose_secret()))
                .is_err()
            {
                table.report("password", None, "this URL cannot carry a password");
                return None;
            }
            parsed.to_string()
        }
        Got::Value(_) => {
            table.report(
                "password",
                None,
                "a password applies only to a postgres:// URL; SQLite has none",
            );
            return None;
        }
        Got::Absent => url,
        Got::Invalid => return None,
    };
    Some(DatabaseSettings {
        backend,
        url: SecretString::from(url),
        max_connections: u32::try_from(max_connections.optional()?).ok()?,
        acquire_timeout: acquire_timeout.optional()?,
        sqlite_busy_timeout: busy_timeout.optional()?,
        token_key: match token_key {
            Got::Invalid => return None,
            got => got.optional(),
        },
    })
}

fn parse_database_url(text: &str) -> Result<(Backend, String), String> {
    let text = text.trim();
    if let Some(path) = text.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" || text.contains("mode=memory") {
            return Err(
                "an in-memory or empty SQLite path would lose the mirror on restart; name a file"
                    .into(),
            );
        }
        return Ok((Backend::Sqlite, text.to_owned()));
    }
    let url = url::Url::parse(text).map_err(|e| e.to_string())?;
    match url.scheme() {
        "postgres" | "postgresql" if url.host().is_some() => {
            Ok((Backend::Postgres, text.to_owned()))
        }
        "postgres" | "postgresql" => Err("no host".into()),
        other => Err(format!("unsupported scheme `{other}`")),
    }
}

fn warnings(settings: &Settings) -> Vec<String> {
    let mut warnings = Vec::new();
    if settings.pairs.is_empty() {
        warnings.push("no [pairs.<name>] configured: nothing would be synced".to_owned());
    }
    for pair in settings.pairs.values() {
        if let Some(SideSettings {
            kind: SideKind::Ghl(ghl),
            ..
        }) = settings.sides.get(&pair.ghl)
        {
            if !ghl.can_write_contacts() {
                warnings.push(format!(
                    "pair `{}`: side `{}` has no contacts.write scope, so the pair runs one-way (GHL to `{}`) and never writes to GHL",
                    pair.name, pair.ghl, pair.app
                ));
            }
        }
    }
    lookup_warnings(settings, &mut warnings);
    let oauth_sides: Vec<&str> = settings
        .sides
        .values()
        .filter(|side| {
            matches!(&side.kind, SideKind::Ghl(ghl) if matches!(ghl.auth, GhlAuth::OAuth { .. }))
        })
        .map(|side| side.name.as_str())
        .collect();
    if !oauth_sides.is_empty() && settings.database.token_key.is_none() {
        warnings.push(format!(
            "OAuth tokens of side(s) {} are stored unencrypted in the mirror database: set \
             database.token_key (or GHLSYNC__DATABASE__TOKEN_KEY, or token_key_file) to the \
             output of `openssl rand -base64 32` to encrypt them at rest",
            oauth_sides.join(", ")
        ));
    }
    warnings
}

/// A pair matching by a key its REST side cannot look up. Not refused:
/// the engine still links its own creates by id, and matching still runs
/// from that side into GHL (which looks up both keys); but a GHL contact
/// new to the pair whose key is already in the app is not found there and
/// is created again, which a first backfill does for every shared contact.
fn lookup_warnings(settings: &Settings, warnings: &mut Vec<String>) {
    for pair in settings.pairs.values() {
        let Some(SideSettings {
            kind: SideKind::Rest(rest),
            ..
        }) = settings.sides.get(&pair.app)
        else {
            continue;
        };
        for key in [
            crate::domain::MatchKey::Email,
            crate::domain::MatchKey::Phone,
        ] {
            let Some(field) = pair
                .map
                .match_field(crate::domain::EntityKind::Contact, key)
            else {
                continue;
            };
            let (lookup, example) = match key {
                crate::domain::MatchKey::Email => (&rest.contacts.lookup_email, "email"),
                crate::domain::MatchKey::Phone => (&rest.contacts.lookup_phone, "phone"),
            };
            if lookup.is_none() {
                warnings.push(format!(
                    "pair `{pair_name}`: field `{field}` has match_key = \"{key}\", but side `{app}` \
                     has no contacts.lookup_{key}, so a GHL contact whose {key} is already in `{app}` \
                     is not found there and is created again (matching by {key} works only from \
                     `{app}` into GHL); set lookup_{key} = \"GET /contacts?{example}={{value}}\" \
                     in [sides.{app}.contacts]",
                    pair_name = pair.name,
                    field = field.name,
                    app = pair.app,
                ));
            }
        }
    }
}

/// Maps each dotted key path of a TOML file to the line it is written on,
/// and turns syntax errors into [`ConfigError::Syntax`] without quoting the
/// offending line (it may hold a secret).
fn key_lines(path: &Path, text: &str) -> Result<HashMap<String, usize>, ConfigError> {
    let line_at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let document = toml_edit::ImDocument::parse(text).map_err(|e| {
        let offset = e.span().map(|span| span.start).unwrap_or(0);
        let line = line_at(offset);
        let line_start = text[..offset.min(text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column: offset - line_start + 1,
            message: e.message().trim().to_owned(),
        }
    })?;
    let mut lines = HashMap::new();
    collect_lines(document.as_table(), "", &line_at, &mut lines);
    Ok(lines)
}

fn collect_lines(
    table: &dyn toml_edit::TableLike,
    prefix: &str,
    line_at: &dyn Fn(usize) -> usize,
    lines: &mut HashMap<String, usize>,
) {
    for (name, item) in table.iter() {
        let path = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}.{name}")
        };
        let span = table
            .get_key_value(name)
            .and_then(|(key, _)| key.span())
            .or_else(|| item.as_table().and_then(|t| t.span()));
        if let Some(span) = span {
            lines.insert(path.clone(), line_at(span.start));
        }
        if let Some(inner) = item.as_table_like() {
            collect_lines(inner, &path, line_at, lines);
        }
        if let Some(tables) = item.as_array_of_tables() {
            for (index, table) in tables.iter().enumerate() {
                let path = format!("{path}[{index}]");
                if let Some(span) = table.span() {
                    lines.insert(path.clone(), line_at(span.start));
                }
                collect_lines(table, &path, line_at, lines);
            }
        }
    }
}
