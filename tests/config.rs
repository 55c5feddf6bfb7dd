//! Configuration: layering, validation and error messages, through the
//! library (for exact origins) and through the binary (for exit codes).

#[path = "common/config_helpers.rs"]
mod config_helpers;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config_helpers::{load_in, VALID};
use ghl_sync::config::{self, Backend, LoadOptions, Origin, SecretSource};
use ghl_sync::domain::{EntityKind, MatchKey};
use secrecy::ExposeSecret;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load_text(
    text: &str,
) -> (
    tempfile::TempDir,
    Result<config::Loaded, config::ConfigError>,
) {
    load_with_env(text, &[])
}

fn load_with_env(
    text: &str,
    env: &[(&str, &str)],
) -> (
    tempfile::TempDir,
    Result<config::Loaded, config::ConfigError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let result = load_in(dir.path(), text, env);
    (dir, result)
}

fn problems(text: &str) -> Vec<config::Problem> {
    let (_dir, result) = load_text(text);
    result
        .expect_err("configuration should be invalid")
        .problems()
        .to_vec()
}

fn line(problem: &config::Problem) -> Option<usize> {
    match &problem.origin {
        Origin::File { line, .. } => *line,
        _ => None,
    }
}

#[test]
fn example_and_defaults_are_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let loaded = config::load(&LoadOptions {
        file: Some(example),
        env: Some(HashMap::new()),
        no_search: true,
    })
    .expect("config/example.toml is valid");
    assert_eq!(loaded.settings.pairs.len(), 1);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    let defaults = config::load(&LoadOptions {
        file: None,
        env: Some(HashMap::new()),
        no_search: true,
    })
    .expect("built-in defaults are valid");
    let settings = defaults.settings;
    assert_eq!(settings.state_dir, PathBuf::from("/var/lib/ghlsync"));
    assert_eq!(settings.database.backend, Backend::Sqlite);
    assert_eq!(
        settings.database.url.expose_secret(),
        "sqlite:///var/lib/ghlsync/ghlsync.db"
    );
    assert_eq!(settings.database.max_connections, 10);
    assert!(defaults
        .warnings
        .iter()
        .any(|w| w.contains("nothing would be synced")));
}

#[test]
fn environment_overrides_file_and_file_overrides_defaults() {
    let (_dir, loaded) = load_with_env(
        &format!("{VALID}\n[log]\nlevel = \"debug\"\n"),
        &[
            ("GHLSYNC__DATABASE__MAX_CONNECTIONS", "3"),
            ("GHLSYNC__SIDES__GHL__AUTH__TOKEN", "from-env"),
        ],
    );
    let settings = loaded.unwrap().settings;
    assert_eq!(settings.log.level, "debug", "file overrides defaults");
    assert_eq!(
        settings.database.max_connections, 3,
        "env overrides defaults"
    );
    let config::SideKind::Ghl(ghl) = &settings.sides["ghl"].kind else {
        panic!("ghl side")
    };
    let config::GhlAuth::PrivateToken { token } = &ghl.auth else {
        panic!("private token")
    };
    assert_eq!(token.value.expose_secret(), "from-env");
    assert_eq!(
        token.source,
        SecretSource::Environment("GHLSYNC__SIDES__GHL__AUTH__TOKEN".into())
    );
}

#[test]
fn secrets_are_read_from_files_and_merged_into_postgres_urls() {
    let dir = tempfile::tempdir().unwrap();
    let token = write(dir.path(), "token", "pit-from-file\n");
    let password = write(dir.path(), "db-password", "p@ss word\n");
    let text = VALID.replace(
        "token = \"pit-token\"",
        &format!("token_file = {:?}", token.display().to_string()),
    ) + &format!(
        "\n[database]\nurl = \"postgres://ghlsync@db.internal:5432/ghlsync\"\npassword_file = {:?}\n",
        password.display().to_string()
    );
    let (_d, loaded) = load_text(&text);
    let settings = loaded.unwrap().settings;
    assert_eq!(settings.database.backend, Backend::Postgres);
    assert_eq!(
        settings.database.url.expose_secret(),
        "postgres://ghlsync:p%40ss%20word@db.internal:5432/ghlsync"
    );
    assert_eq!(
        settings.database.redacted_url(),
        "postgres://ghlsync:***@db.internal:5432/ghlsync"
    );
    let config::SideKind::Ghl(ghl) = &settings.sides["ghl"].kind else {
        panic!()
    };
    let config::GhlAuth::PrivateToken { token: secret } = &ghl.auth else {
        panic!()
    };
    assert_eq!(secret.value.expose_secret(), "pit-from-file");
    assert_eq!(secret.source, SecretSource::File(token));
}

#[test]
fn unknown_key_names_file_line_and_suggests_the_right_one() {
    let found = problems(&format!("{VALID}\n[database]\nmax_conections = 5\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "database.max_conections");
    assert_eq!(line(&found[0]), Some(23));
    assert!(
        found[0].message.contains("did you mean `max_connections`"),
        "{}",
        found[0]
    );
}

#[test]
fn wrong_type_names_the_value_and_what_is_expected() {
    let found = problems(&format!("{VALID}\n[database]\nmax_connections = \"ten\"\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    let text = found[0].to_string();
    assert!(
        text.contains("ghlsync.toml:23: database.max_connections = \"ten\""),
        "{text}"
    );
    assert!(
        text.contains("expected a whole number from 1 to 1000"),
        "{text}"
    );
}

#[test]
fn missing_required_key_names_the_table() {
    let found = problems(&VALID.replace("location_id = \"loc-1\"\n", ""));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "sides.ghl.location_id");
    assert_eq!(line(&found[0]), Some(3), "points at [sides.ghl]");
    assert!(found[0].message.contains("missing required key"));
}

#[test]
fn bad_urls_are_rejected_with_the_reason() {
    let found = problems(
        &(VALID.replace("https://api.example.com/v1", "ftp://api.example.com")
            + "\n[database]\nurl = \"mysql://root@localhost/db\"\n"),
    );
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["database.url", "sides.app.base_url"], "{found:?}");
    assert!(found[0].message.contains("unsupported scheme `mysql`"));
    assert!(found[1]
        .message
        .contains("scheme `ftp` is not http or https"));
    assert_eq!(line(&found[1]), Some(13));

    let memory = problems(&format!("{VALID}\n[database]\nurl = \"sqlite::memory:\"\n"));
    assert!(
        memory[0].message.contains("would lose the mirror"),
        "{memory:?}"
    );
}

#[test]
fn unreadable_secret_file_is_named_without_leaking_anything() {
    let found = problems(&VALID.replace(
        "token = \"pit-token\"",
        "token_file = \"/nonexistent/ghl-token\"",
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "sides.ghl.auth.token_file");
    assert_eq!(found[0].value.as_deref(), Some("/nonexistent/ghl-token"));
    assert!(
        found[0].message.contains("cannot read secret file"),
        "{}",
        found[0]
    );
}

/// A default phone region libphonenumber does not know would make every
/// local phone number a dead letter at run time; it is refused up front.
#[test]
fn unknown_phone_region_is_named() {
    let found = problems(&VALID.replace("[pairs.main]\n", "[pairs.main]\nphone_region = \"ZZ\"\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "pairs.main.phone_region");
    assert_eq!(found[0].value.as_deref(), Some("ZZ"));
    assert!(found[0].message.contains("ISO 3166"), "{}", found[0]);
}

#[test]
fn invalid_enum_value_lists_the_choices() {
    let found = problems(&format!("{VALID}\n[log]\nformat = \"xml\"\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "log.format");
    assert!(found[0]
        .message
        .contains(r#"one of "auto", "json", "pretty""#));
}

#[test]
fn bad_duration_says_how_to_write_one() {
    let found = problems(&format!(
        "{VALID}\n[database]\nacquire_timeout = \"soon\"\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "database.acquire_timeout");
    assert!(
        found[0].message.contains("a duration such as"),
        "{}",
        found[0]
    );
}

#[test]
fn several_problems_are_reported_together() {
    let found = problems(
        &(VALID.replace("method = \"private_token\"", "method = \"password\"")
            + "\n[log]\nlevel = \"inf\"\nformat = 3\n"),
    );
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["log.level", "log.format", "sides.ghl.auth.method"],
        "no cascade from the bad method: {found:?}"
    );
}

#[test]
fn environment_problems_name_the_variable() {
    let (_dir, result) = load_with_env(VALID, &[("GHLSYNC__DATABASE__SQLITE_BUSY_TIMEOUT", "-1")]);
    let found = result.unwrap_err().problems().to_vec();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].origin,
        Origin::Env {
            var: "GHLSYNC__DATABASE__SQLITE_BUSY_TIMEOUT".into()
        }
    );
}

#[test]
fn pairs_must_name_configured_sides_of_the_right_kind() {
    let found = problems(
        &VALID
            .replace("ghl = \"ghl\"", "ghl = \"app\"")
            .replace("app = \"app\"", "app = \"crm\""),
    );
    let messages: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 2, "{messages:?}");
    assert!(
        messages[0].contains("the ghl role needs kind = \"ghl\""),
        "{messages:?}"
    );
    assert!(
        messages[1].contains("no such side; configured sides: app, ghl"),
        "{messages:?}"
    );
}

#[test]
fn readonly_scope_is_valid_but_warned_as_one_way() {
    let (_dir, loaded) = load_text(&VALID.replace(
        "location_id = \"loc-1\"",
        "location_id = \"loc-1\"\nscopes = [\"contacts.readonly\"]",
    ));
    let loaded = loaded.unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w.contains("runs one-way")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn syntax_errors_give_line_and_column_but_not_the_line_itself() {
    let (_dir, result) =
        load_text("state_dir = \"x\"\n[sides.ghl.auth]\ntoken = \"sentinel-secret\n");
    let error = result.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("ghlsync.toml:3:"), "{text}");
    assert!(!text.contains("sentinel-secret"), "{text}");
}

#[test]
fn a_secret_of_the_wrong_type_is_not_echoed() {
    let found = problems(&VALID.replace("token = \"pit-token\"", "token = 987654321"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].value.is_none());
    assert!(!found[0].to_string().contains("987654321"), "{}", found[0]);
}

/// An invalid `database.url` is quoted with its password masked, whether
/// it came from the file or from `GHLSYNC__DATABASE__URL`, and whatever
/// makes it invalid (even a password that breaks the URL's structure).
#[test]
fn an_invalid_database_url_never_shows_its_password() {
    const PASSWORD: &str = "db-sentinel-4e1b";
    let cases = [
        (
            format!("postgres://sync:{PASSWORD}@db.internal:notaport/ghlsync"),
            "postgres://sync:***@db.internal:notaport/ghlsync",
        ),
        (
            format!("postgres://sync:{PASSWORD}@/ghlsync"),
            "postgres://sync:***@/ghlsync",
        ),
        (
            format!("mysql://sync:{PASSWORD}@db.internal/ghlsync"),
            "mysql://sync:***@db.internal/ghlsync",
        ),
        (
            format!("postgres://sync:a/{PASSWORD}@db.internal/ghlsync"),
            "postgres://sync:***@db.internal/ghlsync",
        ),
        (
            format!("postgres://sync@db.internal:x/ghlsync?password={PASSWORD}&sslmode=require"),
            "postgres://sync@db.internal:x/ghlsync?password=***&sslmode=require",
        ),
    ];
    for (url, shown) in &cases {
        let from_file = problems(&format!("{VALID}\n[database]\nurl = \"{url}\"\n"));
        let (_dir, from_env) = load_with_env(VALID, &[("GHLSYNC__DATABASE__URL", url)]);
        let from_env = from_env.unwrap_err().problems().to_vec();
        for found in [from_file, from_env] {
            assert_eq!(found.len(), 1, "{found:?}");
            let text = found[0].to_string();
            assert_eq!(found[0].key, "database.url", "{text}");
            assert_eq!(found[0].value.as_deref(), Some(*shown), "{text}");
            assert!(!text.contains(PASSWORD), "password leaked: {text}");
            assert!(!format!("{:?}", found[0]).contains(PASSWORD), "{text}");
        }
    }
}

const FIELDS: &str = r#"
[[pairs.main.fields]]
name = "email"
ghl = "/email"
app = "/email_address"
normalize = ["trim", "lowercase"]
match_key = "email"

[[pairs.main.fields]]
name = "phone"
ghl = "/phone"
app = "/mobile"
normalize = ["e164:GB"]
policy = "ghl_wins"

[[pairs.main.fields]]
name = "name"
ghl = { join = ["/firstName", "/lastName"] }
app = "/full_name"

[[pairs.main.fields]]
name = "tags"
ghl = "/tags"
app = { pointer = "/labels", delimiter = ";" }
normalize = ["set"]
policy = "union"

[[pairs.main.fields]]
entity = "task"
name = "due"
ghl = { pointer = "/dueDate", format = "rfc3339" }
app = { pointer = "/due_on", format = "epoch_millis" }

[[pairs.main.fields]]
entity = "task"
name = "status"
ghl = "/completed"
app = { pointer = "/state", values = { "true" = true, "false" = false } }

[[pairs.main.fields]]
name = "origin"
flow = "to_app"
ghl = "/source"
app = { constant = "ghl", pointer = "/origin" }
"#;

#[test]
fn field_maps_and_policies_are_read_into_the_pair() {
    use ghl_sync::mapping::{DeletePolicy, Flow, Format, Normalize, Policy, Source, TimeFormat};

    let text = format!("{VALID}default_policy = \"app_wins\"\ndeletes = \"tag\"\ndelete_tag = \"deleted-in-ghl\"\n{FIELDS}");
    let (_dir, loaded) = load_text(&text);
    let pair = loaded.expect("valid").settings.pairs["main"].clone();
    assert_eq!(pair.default_policy, Policy::AppWins);
    assert_eq!(pair.deletes, DeletePolicy::Tag("deleted-in-ghl".into()));
    let map = pair.map;
    assert_eq!(map.fields.len(), 7);
    let email = map.field(EntityKind::Contact, "email").unwrap();
    assert_eq!(email.match_key, Some(MatchKey::Email));
    assert_eq!(email.normalize, vec![Normalize::Trim, Normalize::Lowercase]);
    let phone = map.field(EntityKind::Contact, "phone").unwrap();
    assert_eq!(phone.policy, Some(Policy::GhlWins));
    assert_eq!(
        phone.normalize,
        vec![Normalize::E164 {
            default_region: "GB".into()
        }]
    );
    let name = map.field(EntityKind::Contact, "name").unwrap();
    assert_eq!(
        name.ghl.as_ref().unwrap().source,
        Source::Join(vec!["/firstName".into(), "/lastName".into()])
    );
    let tags = map.field(EntityKind::Contact, "tags").unwrap();
    assert_eq!(
        tags.app.as_ref().unwrap().format,
        Format::Delimited(";".into())
    );
    let due = map.field(EntityKind::Task, "due").unwrap();
    assert_eq!(
        due.app.as_ref().unwrap().format,
        Format::Timestamp(TimeFormat::EpochMillis)
    );
    let origin = map.field(EntityKind::Contact, "origin").unwrap();
    assert_eq!(origin.flow, Flow::ToApp);

    // The map converts real records end to end.
    let native = serde_json::json!({"email": " A@B.COM ", "phone": "020 7946 0958", "tags": ["x"], "source": "web"});
    let canonical = map
        .to_canonical(
            EntityKind::Contact,
            ghl_sync::domain::Side::Ghl,
            native.as_object().unwrap(),
        )
        .unwrap();
    assert_eq!(canonical["email"], "a@b.com");
    assert_eq!(canonical["phone"], "+442079460958");
}

#[test]
fn broken_field_maps_are_named_by_index_and_line() {
    let text = format!(
        "{VALID}{}",
        r#"
[[pairs.main.fields]]
name = "email"
ghl = "email"
app = "/email_address"

[[pairs.main.fields]]
name = "tags"
ghl = "/tags"
app = "/labels"
policy = "union"

[[pairs.main.fields]]
name = "phone"
ghl = "/phone"
normalize = ["e164:ZZ"]

[[pairs.main.fields]]
entity = "appointment"
name = "title"
ghl = "/title"
app = "/title"
"#
    );
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"pairs.main.fields[0].ghl"), "{found:#?}");
    assert!(keys.contains(&"pairs.main.fields[1].policy"), "{found:#?}");
    assert!(
        keys.contains(&"pairs.main.fields[2].normalize"),
        "{found:#?}"
    );
    assert!(keys.contains(&"pairs.main.fields[3].flow"), "{found:#?}");
    let pointer = found
        .iter()
        .find(|p| p.key == "pairs.main.fields[0].ghl")
        .unwrap();
    assert!(pointer.message.contains("starts with \"/\""), "{pointer}");
    assert_eq!(line(pointer), Some(VALID.lines().count() + 4));
}

/// Out of the box, GHL's deliveries of today (Ed25519 only, since
/// 2026-07-01) are checked against GHL's published Ed25519 key; the
/// override replaces it (a key rotation) and then verifies a delivery
/// signed by the new key.
#[test]
fn webhooks_verify_ed25519_by_default_and_the_key_can_be_overridden() {
    use base64::Engine as _;
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    use ed25519_dalek::Signer as _;
    use ghl_sync::connector::ghl::webhook::{Verified, WebhookError, ED25519_HEADER};

    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let body = br#"{"type":"ContactCreate","id":"c9"}"#;
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(body).to_bytes());
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(ED25519_HEADER, signature.parse().unwrap());

    let (_dir, loaded) = load_text(VALID);
    let keys = &loaded.unwrap().settings.webhooks.ghl_keys;
    assert_eq!(
        keys.verify(&headers, body),
        Err(WebhookError::BadSignature {
            header: ED25519_HEADER
        }),
        "the Ed25519 signature is checked with no configuration"
    );

    let pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    let text = format!("{VALID}\n[webhooks]\nghl_ed25519_public_key = \"\"\"\n{pem}\"\"\"\n");
    let (_dir, loaded) = load_text(&text);
    let keys = &loaded
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .settings
        .webhooks
        .ghl_keys;
    assert_eq!(keys.verify(&headers, body), Ok(Verified::Ed25519));
}
