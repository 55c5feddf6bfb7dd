//! Secrets never reach the output: every secret the configuration accepts
//! is set to a recognisable sentinel, and every command of the binary (as
//! listed by `ghlsync --help` when the test runs, sub-commands included) is
//! run against both simulators at log levels `trace`, `debug` and `info`,
//! with and without `--json` where offered. Neither stdout nor stderr may
//! contain a sentinel, in clear or in base64, nor the OAuth tokens the
//! GHL simulator issued along the way.
//!
//! Commands may fail (the app simulator refuses credentials it does not
//! know, `auth locations` needs an agency install): what they print then is
//! checked all the same.
//!
//! The database password is a sentinel only on Postgres (SQLite has none),
//! so it is covered when `GHLSYNC_TEST_DATABASE_URL` is set (its server
//! must trust loopback connections, as CI's does, or the commands fail
//! early and cover less).

#[path = "common/store_backends.rs"]
mod store_backends;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ghl_sync::config::{DatabaseSettings, SecretSource, TokenKey};
use ghl_sync::demo::{Sims, DEMO_CONFIG};
use ghl_sync::store::Store;
use secrecy::{ExposeSecret, SecretString};

const BIN: &str = env!("CARGO_BIN_EXE_ghlsync");

const GHL_PRIVATE_TOKEN: &str = "SENTINEL-ghl-private-token-7f3a";
const GHL_CLIENT_SECRET: &str = "SENTINEL-ghl-client-secret-7f3a";
const REST_BEARER: &str = "SENTINEL-rest-bearer-token-7f3a";
const REST_API_KEY: &str = "SENTINEL-rest-api-key-7f3a";
const REST_BASIC_PASSWORD: &str = "SENTINEL-rest-basic-password-7f3a";
const REST_CLIENT_SECRET: &str = "SENTINEL-rest-client-secret-7f3a";
/// What the test's token endpoint issues for the REST side's client
/// credentials; the app simulator accepts it.
const REST_ISSUED_TOKEN: &str = "SENTINEL-rest-issued-token-7f3a";
const REST_WEBHOOK_SECRET: &str = "SENTINEL-rest-webhook-secret-7f3a";
const DB_PASSWORD: &str = "SENTINEL-db-password-7f3a";
/// 32 bytes, configured as their base64.
const TOKEN_KEY: &str = "SENTINEL-token-key-7f3a-32bytes!";
const GHL_CLIENT_ID: &str = "sentinel-test-client";
const SCOPES: [&str; 2] = ["contacts.readonly", "contacts.write"];
/// The log levels checked, each with one of the log formats.
const LEVELS: [(&str, &str); 3] = [("trace", "json"), ("debug", "pretty"), ("info", "auto")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GhlAuth {
    PrivateToken,
    OAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestAuth {
    Bearer,
    ApiKey,
    Basic,
    ClientCredentials,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_token_and_bearer_never_printed() {
    check_variant(GhlAuth::PrivateToken, RestAuth::Bearer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_client_secret_tokens_and_api_key_never_printed() {
    check_variant(GhlAuth::OAuth, RestAuth::ApiKey).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_password_never_printed() {
    check_variant(GhlAuth::PrivateToken, RestAuth::Basic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_client_credentials_never_printed() {
    check_variant(GhlAuth::OAuth, RestAuth::ClientCredentials).await;
}

/// A database that cannot be reached: the connection errors of every
/// command that opens the mirror must not carry the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_password_never_printed_when_the_database_is_unreachable() {
    let setup = setup(
        GhlAuth::PrivateToken,
        RestAuth::Bearer,
        Some("postgres://ghlsync@127.0.0.1:1/unreachable".to_owned()),
    )
    .await;
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str("acquire_timeout = \"500ms\"\n");
    std::fs::write(&setup.config, text).unwrap();
    for command in [
        vec!["migrate"],
        vec!["sync", "--once", "--json"],
        vec!["plan"],
        vec!["backfill"],
        vec!["auth", "status"],
        vec!["doctor"],
        vec!["check-config"],
    ] {
        let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        args.push("--config".into());
        args.push(setup.config.display().to_string());
        for (level, format) in LEVELS {
            let output = ghlsync(&setup, &args, level, format).await;
            let what = format!("ghlsync {} (log {level}, {format})", args.join(" "));
            setup.forbidden.assert_absent(&what, &output);
            if command[0] == "migrate" {
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(!output.status.success(), "{what}: {stderr}");
                assert!(
                    stderr.contains("postgres://ghlsync:***@127.0.0.1:1"),
                    "{stderr}"
                );
            }
        }
    }
    setup.sims.ghl.shutdown().await;
}

/// The forms a secret could take in output: as is, and base64 (HTTP Basic,
/// the token key's configured form, JWT-style parts).
fn forms(secret: &[u8]) -> Vec<String> {
    let mut out = vec![String::from_utf8_lossy(secret).into_owned()];
    for engine in [STANDARD, STANDARD_NO_PAD] {
        out.push(engine.encode(secret));
    }
    out.push(URL_SAFE_NO_PAD.encode(secret));
    out
}

/// Everything that must never be printed, by name.
#[derive(Clone, Default)]
struct Forbidden(Arc<Mutex<Vec<(String, String)>>>);

impl Forbidden {
    fn add(&self, name: &str, secret: &[u8]) {
        let mut list = self.0.lock().unwrap();
        for form in forms(secret) {
            if !list.iter().any(|(_, known)| *known == form) {
                list.push((name.to_owned(), form));
            }
        }
    }

    /// Panics naming the secret, the command and the line that leaked it.
    fn assert_absent(&self, what: &str, output: &Output) {
        // A copy: a failed check must not poison the list for the next.
        let list = self.0.lock().unwrap().clone();
        for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            for (name, form) in list.iter() {
                if let Some(line) = text.lines().find(|line| line.contains(form.as_str())) {
                    panic!("{name} leaked on {stream} of `{what}`:\n{line}");
                }
            }
        }
    }
}

struct Setup {
    sims: Sims,
    dir: tempfile::TempDir,
    config: PathBuf,
    /// Extra environment: secrets set there instead of in the file.
    env: Vec<(String, String)>,
    database: DatabaseSettings,
    forbidden: Forbidden,
    ghl: GhlAuth,
    /// The REST side's token endpoint (client credentials), kept running.
    _token_server: Option<tokio::task::JoinHandle<()>>,
}

async fn check_variant(ghl: GhlAuth, rest: RestAuth) {
    let what = format!("secrets test ({ghl:?}, {rest:?})");
    match std::env::var(store_backends::DATABASE_URL_VAR) {
        Ok(_) => {
            store_backends::with_postgres_url(&what, move |url| async move {
                run_variant(ghl, rest, Some(url)).await
            })
            .await
        }
        Err(_) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: {} is unset; {what} runs on SQLite, without a database password",
                store_backends::DATABASE_URL_VAR
            );
            run_variant(ghl, rest, None).await
        }
    }
}

async fn run_variant(ghl: GhlAuth, rest: RestAuth, postgres: Option<String>) {
    let setup = setup(ghl, rest, postgres).await;
    if ghl == GhlAuth::OAuth {
        // Tokens in the mirror first, so every command has them to use.
        let output = ghlsync(&setup, &login_args(&setup), "info", "auto").await;
        setup.forbidden.assert_absent("auth login", &output);
        assert!(
            output.status.success(),
            "auth login failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        remember_stored_tokens(&setup).await;
    }

    let mut traced = false;
    let mut synced = false;
    let commands = leaf_commands(&[]).await;
    for must in [
        "run",
        "sync",
        "plan",
        "backfill",
        "check-config",
        "migrate",
        "doctor",
    ] {
        assert!(
            commands.iter().any(|c| c.path == [must]),
            "`{must}` missing from {commands:?}"
        );
    }
    for command in &commands {
        for (level, format) in LEVELS {
            for json in command.json_variants() {
                let mut args = args_for(&setup, &command.path);
                if json {
                    args.push("--json".into());
                }
                let what = format!("ghlsync {} (log {level}, {format})", args.join(" "));
                let output = if command.path == ["run"] {
                    run_then_sigterm(&setup, &args, level, format).await
                } else {
                    ghlsync(&setup, &args, level, format).await
                };
                if setup.ghl == GhlAuth::OAuth {
                    remember_stored_tokens(&setup).await;
                }
                setup.forbidden.assert_absent(&what, &output);
                let stderr = String::from_utf8_lossy(&output.stderr);
                traced |= stderr.contains("\"level\":\"TRACE\"");
                synced |= command.path == ["sync"] && output.status.success();
            }
        }
    }

    // The checks above saw something: the log level took effect, and
    // where the app simulator accepts the credentials, records moved.
    assert!(traced, "no trace-level event was logged at level trace");
    let app_accepts = matches!(rest, RestAuth::Bearer | RestAuth::ClientCredentials);
    assert_eq!(synced, app_accepts, "sync --once succeeded: {synced}");
    if app_accepts {
        assert_eq!(setup.sims.app.handle().contact_count(), 5);
    }

    // `--help` of every command, with every secret in the environment too.
    for command in &commands {
        let mut args = command.path.clone();
        args.push("--help".into());
        let output = ghlsync(&setup, &args, "trace", "json").await;
        setup
            .forbidden
            .assert_absent(&format!("ghlsync {}", args.join(" ")), &output);
    }
    setup.sims.ghl.shutdown().await;
    drop(setup.dir);
}

async fn setup(ghl: GhlAuth, rest: RestAuth, postgres: Option<String>) -> Setup {
    let sims = Sims::start(3, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let forbidden = Forbidden::default();
    for (name, secret) in [
        ("ghl private token", GHL_PRIVATE_TOKEN),
        ("ghl client_secret", GHL_CLIENT_SECRET),
        ("rest bearer token", REST_BEARER),
        ("rest api key", REST_API_KEY),
        ("rest basic password", REST_BASIC_PASSWORD),
        ("rest client_secret", REST_CLIENT_SECRET),
        ("rest issued token", REST_ISSUED_TOKEN),
        ("rest webhook_secret", REST_WEBHOOK_SECRET),
        ("database password", DB_PASSWORD),
        ("token_key", TOKEN_KEY),
    ] {
        forbidden.add(name, secret.as_bytes());
    }
    forbidden.add(
        "rest basic credentials",
        format!("sync:{REST_BASIC_PASSWORD}").as_bytes(),
    );
    forbidden.add(
        "rest client credentials",
        format!("{GHL_CLIENT_ID}:{REST_CLIENT_SECRET}").as_bytes(),
    );
    let token_key_b64 = STANDARD.encode(TOKEN_KEY);

    let mut text = sims.render(DEMO_CONFIG, dir.path());
    let handle = sims.ghl.handle();
    match ghl {
        GhlAuth::PrivateToken => {
            handle.add_static_token(GHL_PRIVATE_TOKEN, &sims.location, &SCOPES);
            text = replace_once(
                &text,
                &format!("token = \"{}\"", sims.ghl_token),
                &format!("token = \"{GHL_PRIVATE_TOKEN}\""),
            );
        }
        GhlAuth::OAuth => {
            handle.register_oauth_client(GHL_CLIENT_ID, GHL_CLIENT_SECRET);
            text = replace_once(
                &text,
                &format!("method = \"private_token\"\ntoken = \"{}\"", sims.ghl_token),
                &format!(
                    "method = \"oauth\"\nclient_id = \"{GHL_CLIENT_ID}\"\n\
                     client_secret = \"{GHL_CLIENT_SECRET}\"\n\
                     redirect_uri = \"http://127.0.0.1:9/oauth/callback\""
                ),
            );
        }
    }
    // The demo's GHL token is not a sentinel, but it must not be used.
    assert!(!text.contains(&sims.ghl_token));

    let app = sims.app.handle();
    let bearer = "method = \"bearer\"";
    let mut token_server = None;
    let rest_auth = match rest {
        RestAuth::Bearer => {
            app.add_token(REST_BEARER);
            format!("{bearer}\ntoken = \"{REST_BEARER}\"")
        }
        RestAuth::ApiKey => {
            format!("method = \"api_key\"\nkey = \"{REST_API_KEY}\"\nheader = \"X-Api-Key\"")
        }
        RestAuth::Basic => {
            format!("method = \"basic\"\nusername = \"sync\"\npassword = \"{REST_BASIC_PASSWORD}\"")
        }
        RestAuth::ClientCredentials => {
            app.add_token(REST_ISSUED_TOKEN);
            let (url, server) = token_endpoint().await;
            token_server = Some(server);
            format!(
                "method = \"oauth2_client_credentials\"\ntoken_url = \"{url}\"\n\
                 client_id = \"{GHL_CLIENT_ID}\"\nclient_secret = \"{REST_CLIENT_SECRET}\""
            )
        }
    };
    text = remove_line(&text, "token = \"app-sim-token\"");
    text = replace_once(&text, bearer, &rest_auth);
    text = replace_once(
        &text,
        "webhook_secret = \"app-sim-webhook-secret\"",
        &format!("webhook_secret = \"{REST_WEBHOOK_SECRET}\""),
    );

    // The token key: from the environment in one variant, the file in the
    // others. The database password goes with a Postgres URL only.
    let mut env = Vec::new();
    let key_in_env = ghl == GhlAuth::PrivateToken && rest == RestAuth::Bearer;
    text.push_str("\n[database]\n");
    if key_in_env {
        env.push(("GHLSYNC__DATABASE__TOKEN_KEY".to_owned(), token_key_b64));
    } else {
        text.push_str(&format!("token_key = \"{token_key_b64}\"\n"));
    }
    let mut database = match &postgres {
        Some(url) => {
            text.push_str(&format!("url = \"{url}\"\npassword = \"{DB_PASSWORD}\"\n"));
            let mut with_password = url::Url::parse(url).unwrap();
            with_password.set_password(Some(DB_PASSWORD)).unwrap();
            DatabaseSettings::postgres_url(with_password.as_str())
        }
        None => DatabaseSettings::sqlite_file(&dir.path().join("ghlsync.db")),
    };
    database.token_key = Some(
        TokenKey::from_base64(
            &SecretString::from(STANDARD.encode(TOKEN_KEY)),
            SecretSource::ConfigFile,
        )
        .unwrap(),
    );
    let config = dir.path().join("ghlsync.toml");
    std::fs::write(&config, &text).unwrap();
    Setup {
        sims,
        dir,
        config,
        env,
        database,
        forbidden,
        ghl,
        _token_server: token_server,
    }
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from:?} in:\n{text}");
    text.replace(from, to)
}

fn remove_line(text: &str, line: &str) -> String {
    replace_once(text, &format!("{line}\n"), "")
}

/// A client-credentials token endpoint that checks the sentinel secret
/// and issues a token the app simulator accepts.
async fn token_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!("{GHL_CLIENT_ID}:{REST_CLIENT_SECRET}"))
    );
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(move |headers: HeaderMap| {
            let expected = expected.clone();
            async move {
                let authorized = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v == expected);
                if authorized {
                    (
                        StatusCode::OK,
                        axum::Json(serde_json::json!({
                            "access_token": REST_ISSUED_TOKEN,
                            "token_type": "bearer",
                            "expires_in": 3600,
                        })),
                    )
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(serde_json::json!({"error": "invalid_client"})),
                    )
                }
            }
        }),
    );
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, server)
}

/// `auth login` with a fresh authorization code from the simulator.
fn login_args(setup: &Setup) -> Vec<String> {
    let code =
        setup
            .sims
            .ghl
            .handle()
            .authorization_code(GHL_CLIENT_ID, &setup.sims.location, &SCOPES);
    ["auth", "login", "--side", "ghl", "--code", &code]
        .map(str::to_owned)
        .to_vec()
}

/// Adds the OAuth tokens now in the mirror to what must not be printed.
async fn remember_stored_tokens(setup: &Setup) {
    let store = Store::connect(&setup.database).await.unwrap();
    let subject = format!("location:{}", setup.sims.location);
    if let Some(token) = store.load_token(&subject).await.unwrap() {
        setup.forbidden.add(
            "ghl oauth access token",
            token.access_token.expose_secret().as_bytes(),
        );
        setup.forbidden.add(
            "ghl oauth refresh token",
            token.refresh_token.expose_secret().as_bytes(),
        );
    }
    store.close().await;
}

/// A command of the binary, by its path of sub-commands.
#[derive(Debug, Clone)]
struct Leaf {
    path: Vec<String>,
    json: bool,
}

impl Leaf {
    fn json_variants(&self) -> Vec<bool> {
        if self.json {
            vec![false, true]
        } else {
            vec![false]
        }
    }
}

/// Every runnable command under `path`, found in `--help` output.
async fn leaf_commands(path: &[String]) -> Vec<Leaf> {
    let mut leaves = Vec::new();
    let mut todo = vec![path.to_vec()];
    while let Some(path) = todo.pop() {
        let mut args = path.clone();
        args.push("--help".into());
        let output =
            tokio::task::spawn_blocking(move || Command::new(BIN).args(&args).output().unwrap())
                .await
                .unwrap();
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        let subcommands = subcommands(&help);
        if subcommands.is_empty() {
            leaves.push(Leaf {
                json: help.contains("--json"),
                path,
            });
            continue;
        }
        for name in subcommands {
            // `demo` and `sim` read no configuration and hold no secret.
            if name == "help" || (path.is_empty() && (name == "demo" || name == "sim")) {
                continue;
            }
            let mut sub = path.clone();
            sub.push(name);
            todo.push(sub);
        }
    }
    leaves.sort_by(|a, b| a.path.cmp(&b.path));
    leaves
}

/// The names in the `Commands:` section of clap's help (lines indented by
/// exactly two spaces; wrapped descriptions are indented further).
fn subcommands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter(|line| line.starts_with("  ") && !line.starts_with("   "))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The arguments that make a command do its work here.
fn args_for(setup: &Setup, path: &[String]) -> Vec<String> {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let mut args: Vec<String> = match path.as_slice() {
        ["sync"] => vec!["sync".into(), "--once".into(), "--reconcile".into()],
        ["auth", "login"] => login_args(setup),
        ["auth", "locations"] => ["auth", "locations", "--side", "ghl", "--app-id", "sim-app"]
            .map(str::to_owned)
            .to_vec(),
        ["doctor"] => ["doctor", "--side", "ghl"].map(str::to_owned).to_vec(),
        // Anything added later runs with only the configuration (a missing
        // argument makes it fail, which still prints nothing secret).
        other => other.iter().map(|s| s.to_string()).collect(),
    };
    args.push("--config".into());
    args.push(setup.config.display().to_string());
    args
}

fn command(setup: &Setup, args: &[String], level: &str, format: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .current_dir(setup.dir.path())
        .env_remove("RUST_LOG")
        .env_remove("GHLSYNC_CONFIG")
        .env("NO_COLOR", "1")
        .env("GHLSYNC__LOG__LEVEL", level)
        .env("GHLSYNC__LOG__FORMAT", format)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("GHLSYNC__") {
            command.env_remove(key);
        }
    }
    for (key, value) in &setup.env {
        command.env(key, value);
    }
    command
}

/// Runs a command to its end (killed after a minute: a command that
/// waits for input must not hang the test).
async fn ghlsync(setup: &Setup, args: &[String], level: &str, format: &str) -> Output {
    let child = command(setup, args, level, format).spawn().unwrap();
    finish(child, Duration::from_secs(60), "KILL").await
}

/// `run` for a few seconds (a cycle or two at the demo's 1 s poll), then
/// SIGTERM, which must stop it cleanly.
async fn run_then_sigterm(setup: &Setup, args: &[String], level: &str, format: &str) -> Output {
    let child = command(setup, args, level, format).spawn().unwrap();
    let output = finish(child, Duration::from_millis(2500), "TERM").await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "run did not stop cleanly on SIGTERM:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Collects the output of `child` (read while it runs, so a chatty trace
/// log cannot fill the pipe), sending `signal` after `after` if it has not
/// exited by then.
async fn finish(child: std::process::Child, after: Duration, signal: &str) -> Output {
    let pid = child.id().to_string();
    let mut waiting = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap());
    tokio::select! {
        output = &mut waiting => return output.unwrap(),
        _ = tokio::time::sleep(after) => {}
    }
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid])
        .status()
        .unwrap();
    assert!(sent.success());
    waiting.await.unwrap()
}

#[test]
fn help_parsing_finds_commands_not_wrapped_descriptions() {
    let help = "Usage: x\n\nCommands:\n  run           The daemon, long\n                flight within\n  sync          One\n  help          Print\n\nOptions:\n  -c\n";
    let found: Vec<String> = subcommands(help).into_iter().collect();
    assert_eq!(found, ["help", "run", "sync"]);
}

#[test]
fn the_check_finds_a_secret_in_clear_or_in_base64() {
    let forbidden = Forbidden::default();
    forbidden.add("test secret", b"SENTINEL-check-7f3a");
    let output = |stderr: String| Output {
        status: Command::new("true").status().unwrap(),
        stdout: Vec::new(),
        stderr: stderr.into_bytes(),
    };
    forbidden.assert_absent("clean", &output("nothing here".into()));
    for leaked in [
        "token SENTINEL-check-7f3a".to_owned(),
        format!("Basic {}", STANDARD.encode("SENTINEL-check-7f3a")),
        format!("x{}y", URL_SAFE_NO_PAD.encode("SENTINEL-check-7f3a")),
    ] {
        let caught = std::panic::catch_unwind(|| {
            forbidden.assert_absent("leaky", &output(leaked.clone()));
        });
        assert!(caught.is_err(), "not caught: {leaked}");
    }
}
