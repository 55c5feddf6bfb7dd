//! OAuth tokens encrypted at rest (`database.token_key`), on SQLite and
//! Postgres: what is written to the database, what is refused, how plain
//! rows from before a key was set are taken over, and the configuration of
//! the key.

#[path = "common/config_helpers.rs"]
mod config_helpers;
#[path = "common/store_backends.rs"]
mod store_backends;

use std::future::Future;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use chrono::{SubsecRound, TimeZone, Utc};
use config_helpers::{load_in, VALID};
use ghl_sync::config::{DatabaseSettings, Loaded, SecretSource, TokenKey};
use ghl_sync::store::{Store, StoreError, StoredToken};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Connection, PgConnection, SqliteConnection};

const SUBJECT: &str = "location:loc-1";
const ACCESS: &str = "eyJ-access-token-0123456789";
const REFRESH: &str = "eyJ-refresh-token-9876543210";

/// Evaluates `$run` with `$c` bound to a new connection of its own to the
/// database of `$db` (a [`Db`]), behind the store's back; the connection is
/// of the database's own type, so `$run` is written once for both.
macro_rules! on_connection {
    ($db:expr, |$c:ident| $run:expr) => {
        match $db {
            Db::Sqlite(path) => {
                let mut $c = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                $run
            }
            Db::Postgres(url) => {
                let mut $c = PgConnection::connect(url).await.unwrap();
                $run
            }
        }
    };
}

/// One database, reopened with different keys by a case.
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn settings(&self, key: Option<TokenKey>) -> DatabaseSettings {
        let mut settings = match self {
            Db::Sqlite(path) => DatabaseSettings::sqlite_file(path),
            Db::Postgres(url) => DatabaseSettings::postgres_url(url),
        };
        settings.token_key = key;
        settings
    }

    async fn open(&self, key: Option<TokenKey>) -> Store {
        Store::connect_and_migrate(&self.settings(key))
            .await
            .expect("open store")
    }

    /// The two token columns exactly as stored.
    async fn raw(&self, subject: &str) -> (String, String) {
        let sql = "SELECT access_token, refresh_token FROM oauth_tokens WHERE subject = $1";
        on_connection!(self, |c| sqlx::query_as(sql)
            .bind(subject)
            .fetch_one(&mut c)
            .await)
        .expect("raw token row")
    }

    /// Overwrites the two token columns behind the store's back.
    async fn set_raw(&self, subject: &str, access: &str, refresh: &str) {
        let sql =
            "UPDATE oauth_tokens SET access_token = $1, refresh_token = $2 WHERE subject = $3";
        let done = on_connection!(self, |c| sqlx::query(sql)
            .bind(access)
            .bind(refresh)
            .bind(subject)
            .execute(&mut c)
            .await
            .map(|r| r.rows_affected()));
        assert_eq!(done.expect("raw update"), 1);
    }
}

async fn run_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    case(Db::Sqlite(dir.path().join("mirror.db"))).await;
}

async fn run_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Db) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    store_backends::with_postgres_url(&format!("token sealing test {name}"), |url| {
        case(Db::Postgres(url))
    })
    .await
}

macro_rules! sealing_cases {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run_sqlite(super::$case).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::run_postgres(stringify!($case), super::$case).await;
                }
            )+
        }
    };
}

sealing_cases!(
    sealed_tokens_round_trip_and_never_reach_the_database,
    altered_or_moved_ciphertext_is_refused,
    another_key_or_no_key_is_refused_naming_the_subject,
    plain_rows_still_load_and_are_sealed,
);

fn key(byte: u8) -> TokenKey {
    TokenKey::from_base64(
        &SecretString::from(BASE64.encode([byte; 32])),
        SecretSource::ConfigFile,
    )
    .unwrap()
}

fn token(subject: &str, access: &str, refresh: &str) -> StoredToken {
    StoredToken {
        subject: subject.to_owned(),
        client_id: "client-1".to_owned(),
        access_token: SecretString::from(access.to_owned()),
        refresh_token: SecretString::from(refresh.to_owned()),
        expires_at: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        scopes: vec!["contacts.readonly".to_owned()],
        user_type: Some("Location".to_owned()),
        company_id: None,
        location_id: Some("loc-1".to_owned()),
        updated_at: Utc::now().trunc_subsecs(6),
    }
}

/// Neither token, nor its base64, appears in `text`.
fn assert_no_token_in(text: &str, tokens: &[&str]) {
    for token in tokens {
        assert!(!text.contains(token), "{token} leaked: {text}");
        assert!(
            !text.contains(&BASE64.encode(token)),
            "base64 of {token} leaked: {text}"
        );
    }
}

fn assert_tokens(loaded: &StoredToken, access: &str, refresh: &str) {
    assert_eq!(loaded.access_token.expose_secret(), access);
    assert_eq!(loaded.refresh_token.expose_secret(), refresh);
}

async fn sealed_tokens_round_trip_and_never_reach_the_database(db: Db) {
    let store = db.open(Some(key(1))).await;
    assert!(store.seals_tokens());
    let saved = token(SUBJECT, ACCESS, REFRESH);
    store.save_token(&saved).await.unwrap();

    let loaded = store.load_token(SUBJECT).await.unwrap().unwrap();
    assert_tokens(&loaded, ACCESS, REFRESH);
    assert_eq!(loaded.expires_at, saved.expires_at);
    assert_eq!(loaded.updated_at, saved.updated_at);
    assert_eq!(loaded.scopes, saved.scopes);

    let (access, refresh) = db.raw(SUBJECT).await;
    for column in [&access, &refresh] {
        assert!(column.starts_with("xc1:"), "{column}");
        assert_no_token_in(column, &[ACCESS, REFRESH]);
    }
    assert_ne!(access, refresh);

    // A refresh re-seals the new tokens with fresh nonces.
    store
        .save_token(&token(SUBJECT, "eyJ-access-2", "eyJ-refresh-2"))
        .await
        .unwrap();
    let (access_2, _) = db.raw(SUBJECT).await;
    assert_ne!(access_2, access);
    let loaded = store.load_token(SUBJECT).await.unwrap().unwrap();
    assert_tokens(&loaded, "eyJ-access-2", "eyJ-refresh-2");

    // The same key after a restart reads them.
    store.close().await;
    let reopened = db.open(Some(key(1))).await;
    let loaded = reopened.load_token(SUBJECT).await.unwrap().unwrap();
    assert_tokens(&loaded, "eyJ-access-2", "eyJ-refresh-2");
    reopened.close().await;
}

fn assert_undecryptable(error: StoreError, subject: &str) {
    let message = error.to_string();
    assert!(
        matches!(&error, StoreError::TokenUndecryptable { subject: s } if s == subject),
        "{error:?}"
    );
    assert!(message.contains(subject), "{message}");
    assert!(message.contains("token_key cannot decrypt"), "{message}");
    assert_no_token_in(&message, &[ACCESS, REFRESH, "eyJ-other"]);
}

async fn altered_or_moved_ciphertext_is_refused(db: Db) {
    let store = db.open(Some(key(1))).await;
    let other = "location:loc-2";
    store
        .save_token(&token(SUBJECT, ACCESS, REFRESH))
        .await
        .unwrap();
    store
        .save_token(&token(other, "eyJ-other-access", "eyJ-other-refresh"))
        .await
        .unwrap();
    let (access, refresh) = db.raw(SUBJECT).await;
    let (other_access, other_refresh) = db.raw(other).await;

    // One character of the ciphertext changed.
    let mut tampered = access.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    db.set_raw(SUBJECT, &tampered, &refresh).await;
    assert_undecryptable(store.load_token(SUBJECT).await.unwrap_err(), SUBJECT);

    // Truncated to less than a nonce, or not base64 at all.
    for garbage in ["xc1:AAAA", "xc1:%%%"] {
        db.set_raw(SUBJECT, garbage, &refresh).await;
        assert_undecryptable(store.load_token(SUBJECT).await.unwrap_err(), SUBJECT);
    }

    // The columns of one row swapped.
    db.set_raw(SUBJECT, &refresh, &access).await;
    assert_undecryptable(store.load_token(SUBJECT).await.unwrap_err(), SUBJECT);

    // Another row's (valid) ciphertext copied in.
    db.set_raw(SUBJECT, &other_access, &other_refresh).await;
    assert_undecryptable(store.load_token(SUBJECT).await.unwrap_err(), SUBJECT);

    // The other row is untouched, and this one reads again once restored.
    let loaded = store.load_token(other).await.unwrap().unwrap();
    assert_tokens(&loaded, "eyJ-other-access", "eyJ-other-refresh");
    db.set_raw(SUBJECT, &access, &refresh).await;
    let loaded = store.load_token(SUBJECT).await.unwrap().unwrap();
    assert_tokens(&loaded, ACCESS, REFRESH);
    store.close().await;
}

async fn another_key_or_no_key_is_refused_naming_the_subject(db: Db) {
    let store = db.open(Some(key(1))).await;
    store
        .save_token(&token(SUBJECT, ACCESS, REFRESH))
        .await
        .unwrap();
    store.close().await;

    let wrong = db.open(Some(key(2))).await;
    assert_undecryptable(wrong.load_token(SUBJECT).await.unwrap_err(), SUBJECT);
    wrong.close().await;

    let keyless = db.open(None).await;
    assert!(!keyless.seals_tokens());
    let error = keyless.load_token(SUBJECT).await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(&error, StoreError::TokenKeyMissing { subject } if subject == SUBJECT),
        "{error:?}"
    );
    assert!(
        message.contains(SUBJECT) && message.contains("no database.token_key"),
        "{message}"
    );
    assert_no_token_in(&message, &[ACCESS, REFRESH]);
    keyless.close().await;

    // The row was left as it was: the right key still reads it.
    let right = db.open(Some(key(1))).await;
    let loaded = right.load_token(SUBJECT).await.unwrap().unwrap();
    assert_tokens(&loaded, ACCESS, REFRESH);
    right.close().await;
}

async fn plain_rows_still_load_and_are_sealed(db: Db) {
    // Saved before a key was configured: plain text.
    let keyless = db.open(None).await;
    keyless
        .save_token(&token(SUBJECT, ACCESS, REFRESH))
        .await
        .unwrap();
    keyless
        .save_token(&token("location:loc-2", "eyJ-plain-a", "eyJ-plain-r"))
        .await
        .unwrap();
    assert_eq!(
        db.raw(SUBJECT).await,
        (ACCESS.to_owned(), REFRESH.to_owned())
    );
    keyless.close().await;

    // With a key: the plain row loads, and is sealed in place as it is read.
    let store = db.open(Some(key(3))).await;
    let loaded = store.load_token(SUBJECT).await.unwrap().unwrap();
    assert_tokens(&loaded, ACCESS, REFRESH);
    let (access, refresh) = db.raw(SUBJECT).await;
    assert!(
        access.starts_with("xc1:") && refresh.starts_with("xc1:"),
        "{access} {refresh}"
    );
    assert_no_token_in(&access, &[ACCESS, REFRESH]);
    assert_no_token_in(&refresh, &[ACCESS, REFRESH]);
    let loaded = store.load_token(SUBJECT).await.unwrap().unwrap();
    assert_tokens(&loaded, ACCESS, REFRESH);

    // A plain row that is saved before it is read is sealed by the save.
    store
        .save_token(&token("location:loc-2", "eyJ-new-a", "eyJ-new-r"))
        .await
        .unwrap();
    let (access, refresh) = db.raw("location:loc-2").await;
    assert!(
        access.starts_with("xc1:") && refresh.starts_with("xc1:"),
        "{access} {refresh}"
    );
    assert_no_token_in(&access, &["eyJ-new-a", "eyJ-new-r"]);
    let loaded = store.load_token("location:loc-2").await.unwrap().unwrap();
    assert_tokens(&loaded, "eyJ-new-a", "eyJ-new-r");
    store.close().await;
}

// ---------------------------------------------------------------------------
// Configuration of the key.

/// The GHL side's `auth` in [`VALID`], and in its place in [`oauth_config`].
const PRIVATE_TOKEN_AUTH: &str = "method = \"private_token\"\ntoken = \"pit-token\"";
const OAUTH_AUTH: &str = "method = \"oauth\"\nclient_id = \"client-1\"\n\
    client_secret = \"client-secret\"\n\
    redirect_uri = \"http://127.0.0.1:8765/oauth/callback\"";

/// The minimal valid configuration with the GHL side on OAuth.
fn oauth_config() -> String {
    assert!(VALID.contains(PRIVATE_TOKEN_AUTH), "VALID's auth moved");
    VALID.replace(PRIVATE_TOKEN_AUTH, OAUTH_AUTH)
}

/// [`oauth_config`] with `line` in its `[database]` table.
fn oauth_config_with_database(line: &str) -> String {
    format!("{}\n[database]\n{line}\n", oauth_config())
}

const UNENCRYPTED_WARNING: &str = "stored unencrypted";

/// The warning that OAuth tokens will be stored unencrypted, if given.
fn unencrypted_warning(loaded: &Loaded) -> Option<&String> {
    loaded
        .warnings
        .iter()
        .find(|w| w.contains(UNENCRYPTED_WARNING))
}

#[test]
fn a_valid_key_is_read_from_the_file_the_environment_or_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let padded = BASE64.encode([9u8; 32]);
    let unpadded = padded.trim_end_matches('=').to_owned();
    let key_file = dir.path().join("token.key");
    std::fs::write(&key_file, format!("{padded}\n")).unwrap();

    /// Config text, environment, where the key should be said to come from.
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, SecretSource);
    let cases: Vec<Case> = vec![
        (
            oauth_config_with_database(&format!("token_key = \"{padded}\"")),
            vec![],
            SecretSource::ConfigFile,
        ),
        (
            oauth_config_with_database(&format!("token_key = \"{unpadded}\"")),
            vec![],
            SecretSource::ConfigFile,
        ),
        (
            oauth_config(),
            vec![("GHLSYNC__DATABASE__TOKEN_KEY", padded.as_str())],
            SecretSource::Environment("GHLSYNC__DATABASE__TOKEN_KEY".into()),
        ),
        (
            oauth_config_with_database(&format!(
                "token_key_file = {:?}",
                key_file.display().to_string()
            )),
            vec![],
            SecretSource::File(key_file.clone()),
        ),
    ];
    for (text, env, source) in cases {
        let loaded = load_in(dir.path(), &text, &env).expect("valid key");
        let key = loaded
            .settings
            .database
            .token_key
            .as_ref()
            .expect("key set");
        assert_eq!(key.expose_bytes(), &[9u8; 32]);
        assert_eq!(key.source, source);
        let debug = format!("{:?}", loaded.settings.database);
        assert!(!debug.contains(&unpadded), "{debug}");
        assert!(
            unencrypted_warning(&loaded).is_none(),
            "{:?}",
            loaded.warnings
        );
    }
}

#[test]
fn a_malformed_key_is_a_config_error_naming_the_key_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let short = BASE64.encode([5u8; 16]);
    let long = BASE64.encode([5u8; 48]);
    let not_base64 = "SENTINEL-not*base64*key-7f3a";
    for (value, why) in [
        (short.as_str(), "decodes to 16 bytes instead of 32"),
        (long.as_str(), "decodes to 48 bytes instead of 32"),
        (not_base64, "is not valid base64"),
    ] {
        for (text, env, key) in [
            (
                oauth_config_with_database(&format!("token_key = \"{value}\"")),
                vec![],
                "database.token_key",
            ),
            (
                oauth_config(),
                vec![("GHLSYNC__DATABASE__TOKEN_KEY", value)],
                "database.token_key",
            ),
        ] {
            let error = load_in(dir.path(), &text, &env).expect_err("malformed key");
            let problems = error.problems();
            assert_eq!(problems.len(), 1, "{error}");
            assert_eq!(problems[0].key, key);
            assert!(problems[0].value.is_none());
            let message = error.to_string();
            assert!(message.contains(why), "{message}");
            assert!(message.contains("openssl rand -base64 32"), "{message}");
            assert!(!message.contains(value), "{message}");
        }
    }

    // A key file with a bad key names the file key.
    let key_file = dir.path().join("bad.key");
    std::fs::write(&key_file, &short).unwrap();
    let text = oauth_config_with_database(&format!(
        "token_key_file = {:?}",
        key_file.display().to_string()
    ));
    let error = load_in(dir.path(), &text, &[]).expect_err("malformed key file");
    assert_eq!(error.problems()[0].key, "database.token_key_file");
    assert!(!error.to_string().contains(&short), "{error}");
}

#[test]
fn oauth_sides_without_a_key_warn_that_tokens_are_unencrypted() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_in(dir.path(), &oauth_config(), &[]).unwrap();
    let warning = unencrypted_warning(&loaded)
        .unwrap_or_else(|| panic!("no warning in {:?}", loaded.warnings));
    assert!(
        warning.contains("ghl") && warning.contains("database.token_key"),
        "{warning}"
    );

    // A private token is not stored in the mirror: nothing to warn about.
    let loaded = load_in(dir.path(), VALID, &[]).unwrap();
    assert!(
        unencrypted_warning(&loaded).is_none(),
        "{:?}",
        loaded.warnings
    );
}
