//! The `ghlsync` binary: exit codes, messages, logs, and that no secret
//! ever reaches its output.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A sentinel planted in every secret slot; it must never be printed.
const SENTINEL: &str = "SENTINEL-7f3a9c-secret";

fn ghlsync(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ghlsync").unwrap();
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("GHLSYNC_CONFIG")
        .env("NO_COLOR", "1");
    for (key, _) in std::env::vars() {
        if key.starts_with("GHLSYNC__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A valid config whose every secret is the sentinel, with the state in
/// `dir`.
fn sentinel_config(dir: &Path) -> String {
    let secret_file = write(dir, "client-secret", SENTINEL);
    format!(
        r#"state_dir = "{state}"

[log]
level = "trace"
format = "json"

[sides.ghl]
kind = "ghl"
location_id = "loc-1"

[sides.ghl.auth]
method = "private_token"
token = "{SENTINEL}"

[sides.other]
kind = "ghl"
location_id = "loc-2"

[sides.other.auth]
method = "oauth"
client_id = "client-1"
client_secret_file = "{secret}"
redirect_uri = "http://127.0.0.1:8765/oauth/callback"

[sides.app]
kind = "rest"
base_url = "https://api.example.com"
webhook_secret = "{SENTINEL}"

[sides.app.auth]
method = "basic"
username = "sync"
password = "{SENTINEL}"

[sides.app.contacts]
get = "GET /contacts/{{id}}"

[pairs.main]
ghl = "ghl"
app = "app"
"#,
        state = dir.join("state").display(),
        secret = secret_file.display(),
    )
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn help_and_version_document_the_interface() {
    let dir = tempfile::tempdir().unwrap();
    let help = ghlsync(dir.path()).arg("--help").assert().success();
    let text = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    for needle in [
        "check-config",
        "migrate",
        "--config",
        "Exit codes: 0 success, 1 runtime failure, 2 invalid",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
    let version = ghlsync(dir.path()).arg("--version").assert().success();
    let text = String::from_utf8_lossy(&version.get_output().stdout).into_owned();
    assert_eq!(
        text.trim(),
        format!("ghlsync {}", env!("CARGO_PKG_VERSION"))
    );

    ghlsync(dir.path()).arg("no-such-command").assert().code(2);
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let dir = tempfile::tempdir().unwrap();
    let run = ghlsync(dir.path())
        .args(["check-config", "--config"])
        .arg(&example)
        .assert()
        .code(0);
    let text = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(
        text.contains(
            "pair main   ghl <-> app, 5 mapped field(s), default policy newest, deletes propagate"
        ),
        "{text}"
    );
    assert!(
        text.contains("private token set in the config file"),
        "{text}"
    );
    assert!(!text.contains("pit-00000000"), "token printed:\n{text}");
}

#[test]
fn check_config_finds_ghlsync_toml_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ghlsync.toml", "state_dir = \"./here\"\n");
    let run = ghlsync(dir.path()).arg("check-config").assert().code(0);
    let text = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    assert!(
        text.contains("configuration is valid: ./ghlsync.toml"),
        "{text}"
    );
    assert!(
        text.contains("warning: no [pairs.<name>] configured"),
        "{text}"
    );
}

/// Each broken configuration exits 2 and names the key and where it is.
#[test]
fn broken_configurations_exit_2_naming_key_and_source() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("unknown key", "[log]\nlevle = \"info\"\n", &["ghlsync.toml:2: log.levle", "did you mean `level`"]),
        ("wrong type", "[database]\nmax_connections = true\n", &["ghlsync.toml:2: database.max_connections", "expected a whole number"]),
        ("missing key", "[sides.ghl]\nkind = \"ghl\"\n[sides.ghl.auth]\nmethod = \"private_token\"\ntoken = \"t\"\n", &["ghlsync.toml:1: sides.ghl.location_id", "missing required key"]),
        ("bad url", "[sides.app]\nkind = \"rest\"\nbase_url = \"not a url\"\n", &["ghlsync.toml:3: sides.app.base_url = \"not a url\"", "absolute http"]),
        ("secret file", "[sides.app]\nkind = \"rest\"\nbase_url = \"https://x.example\"\nwebhook_secret_file = \"/nonexistent/s\"\n", &["ghlsync.toml:4: sides.app.webhook_secret_file", "cannot read secret file"]),
        ("enum", "[log]\nformat = \"yaml\"\n", &["ghlsync.toml:2: log.format = \"yaml\"", "one of \"auto\", \"json\", \"pretty\""]),
        ("duration", "[database]\nacquire_timeout = \"30 parsecs\"\n", &["ghlsync.toml:2: database.acquire_timeout", "a duration such as"]),
        ("two at once", "[log]\nformat = \"yaml\"\n[database]\nmax_connections = 0\n", &["2 problems", "log.format", "database.max_connections = \"0\""]),
        ("syntax", "[log\n", &["ghlsync.toml:1:", "not valid TOML"]),
    ];
    for (name, text, needles) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ghlsync.toml", text);
        let run = ghlsync(dir.path())
            .args(["check-config", "--config", "ghlsync.toml"])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "case {name:?}: stderr lacks {needle:?}:\n{stderr}"
            );
        }
    }
}

#[test]
fn environment_problems_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let run = ghlsync(dir.path())
        .env("GHLSYNC__LOG__FORMAT", "xml")
        .arg("check-config")
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        stderr.contains("environment variable GHLSYNC__LOG__FORMAT: log.format = \"xml\""),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = ghlsync(dir.path())
        .args(["check-config", "--config", "nope.toml"])
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&run.get_output().stderr).into_owned();
    assert!(
        stderr.contains("cannot read config file nope.toml"),
        "{stderr}"
    );
}

#[test]
fn migrate_creates_the_sqlite_mirror_and_logs_json_with_span_fields() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ghlsync.toml", &sentinel_config(dir.path()));
    let first = ghlsync(dir.path()).arg("migrate").assert().code(0);
    let stdout = String::from_utf8_lossy(&first.get_output().stdout).into_owned();
    assert!(stdout.contains("applied"), "{stdout}");
    assert!(dir.path().join("state/ghlsync.db").is_file());

    let stderr = String::from_utf8_lossy(&first.get_output().stderr).into_owned();
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let done = events
        .iter()
        .find(|event| event["fields"]["message"] == "mirror store schema is up to date")
        .unwrap_or_else(|| panic!("no completion event in {stderr}"));
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["span"]["name"], "migrate");
    assert_eq!(done["span"]["backend"], "sqlite");
    assert_eq!(done["spans"][0]["name"], "migrate");
    assert!(done["timestamp"].as_str().is_some());

    let second = ghlsync(dir.path()).arg("migrate").assert().code(0);
    let stdout = String::from_utf8_lossy(&second.get_output().stdout).into_owned();
    assert!(stdout.contains("already up to date"), "{stdout}");
}

#[test]
fn an_unreachable_database_is_a_runtime_failure_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[database]\nurl = \"postgres://ghlsync:{SENTINEL}@127.0.0.1:1/ghlsync\"\nacquire_timeout = \"2s\"\n[log]\nlevel = \"trace\"\n"
    );
    write(dir.path(), "ghlsync.toml", &config);
    let run = ghlsync(dir.path()).arg("migrate").assert().code(1);
    let text = output_text(run.get_output());
    assert!(
        text.contains("cannot open the mirror store at postgres://ghlsync:***@127.0.0.1:1/ghlsync"),
        "{text}"
    );
    assert!(!text.contains(SENTINEL), "password leaked:\n{text}");
}

/// An invalid database URL is refused (exit 2) naming it with the password
/// masked, from the file and from `GHLSYNC__DATABASE__URL`; a valid one the
/// driver refuses (a password also passed as `?password=`, an unknown
/// `sslmode`) fails with the driver's reason, scrubbed.
#[test]
fn a_database_url_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let state = format!("state_dir = \"{}\"\n", dir.path().join("state").display());
    let invalid = format!("postgres://ghlsync:{SENTINEL}@127.0.0.1:notaport/ghlsync");
    let shown = "postgres://ghlsync:***@127.0.0.1:notaport/ghlsync";

    write(
        dir.path(),
        "ghlsync.toml",
        &format!("{state}[database]\nurl = \"{invalid}\"\n"),
    );
    for command in ["check-config", "migrate", "status"] {
        let run = ghlsync(dir.path()).arg(command).assert().code(2);
        let text = output_text(run.get_output());
        assert!(
            text.contains(&format!("database.url = \"{shown}\"")),
            "{text}"
        );
        assert!(
            !text.contains(SENTINEL),
            "password leaked by {command}:\n{text}"
        );
    }

    write(dir.path(), "ghlsync.toml", &state);
    let run = ghlsync(dir.path())
        .env("GHLSYNC__DATABASE__URL", &invalid)
        .arg("check-config")
        .assert()
        .code(2);
    let text = output_text(run.get_output());
    assert!(
        text.contains(&format!(
            "environment variable GHLSYNC__DATABASE__URL: database.url = \"{shown}\""
        )),
        "{text}"
    );
    assert!(!text.contains(SENTINEL), "password leaked:\n{text}");

    for url in [
        format!("postgres://ghlsync@127.0.0.1:1/ghlsync?password={SENTINEL}"),
        format!("postgres://ghlsync:{SENTINEL}@127.0.0.1:1/ghlsync?sslmode=bogus"),
    ] {
        let run = ghlsync(dir.path())
            .env("GHLSYNC__DATABASE__URL", &url)
            .env("GHLSYNC__DATABASE__ACQUIRE_TIMEOUT", "2s")
            .env("GHLSYNC__LOG__LEVEL", "trace")
            .arg("migrate")
            .assert()
            .code(1);
        let text = output_text(run.get_output());
        assert!(text.contains("cannot open the mirror store at"), "{text}");
        assert!(!text.contains(SENTINEL), "password leaked:\n{text}");
    }
}

/// The sentinel secret appears in no output of any command, valid or not,
/// at the most verbose log level.
#[test]
fn no_command_prints_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let valid = sentinel_config(dir.path());
    write(dir.path(), "ghlsync.toml", &valid);
    let mut outputs = vec![
        ghlsync(dir.path()).arg("check-config").output().unwrap(),
        ghlsync(dir.path()).arg("migrate").output().unwrap(),
        ghlsync(dir.path()).arg("--help").output().unwrap(),
    ];
    // Broken in ways that surround the secrets: wrong types, unknown keys
    // beside them, and the secret in the environment with a bad sibling.
    let broken = [
        valid.replace(
            "method = \"private_token\"",
            "method = \"private_token\"\ntokne = \"x\"",
        ),
        valid.replace(
            &format!("password = \"{SENTINEL}\""),
            &format!("password = \"{SENTINEL}\"\npassword_file = \"/x\""),
        ),
        valid.replace("username = \"sync\"", "username = [1]"),
        valid.replace(
            &format!("token = \"{SENTINEL}\""),
            &format!("token = \"{SENTINEL}"),
        ),
    ];
    for text in broken {
        write(dir.path(), "ghlsync.toml", &text);
        let output = ghlsync(dir.path()).arg("check-config").output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", output_text(&output));
        outputs.push(output);
    }
    write(dir.path(), "ghlsync.toml", &valid);
    outputs.push(
        ghlsync(dir.path())
            .env("GHLSYNC__SIDES__APP__AUTH__PASSWORD", SENTINEL)
            .env("GHLSYNC__SIDES__APP__AUTH__USERNAME", "[1]")
            .arg("check-config")
            .output()
            .unwrap(),
    );
    for output in &outputs {
        let text = output_text(output);
        assert!(!text.contains(SENTINEL), "secret leaked:\n{text}");
    }
}

/// `check-config` of a configuration whose mirror is the SQLite file `db`,
/// asserting its exit code.
fn check_config_with_sqlite(
    dir: &std::path::Path,
    db: &std::path::Path,
    code: i32,
) -> std::process::Output {
    write(
        dir,
        "ghlsync.toml",
        &format!(
            "state_dir = \".\"\n[database]\nurl = \"sqlite://{}\"\n",
            db.display()
        ),
    );
    ghlsync(dir)
        .args(["check-config", "--config", "ghlsync.toml"])
        .assert()
        .code(code)
        .get_output()
        .clone()
}

/// check-config says which directories of the SQLite mirror `migrate` and
/// the daemon will create, and creates none of them itself.
#[test]
fn check_config_names_the_sqlite_directories_it_would_create() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("missing").join("sub").join("ghlsync.db");
    let run = check_config_with_sqlite(dir.path(), &db, 0);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let expected = format!(
        "will create {}, {}",
        dir.path().join("missing").display(),
        dir.path().join("missing").join("sub").display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(
        !dir.path().join("missing").exists(),
        "check-config created it"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".ghlsync-probe")
        })
        .collect();
    assert!(leftovers.is_empty(), "probe left behind: {leftovers:?}");
}

/// A SQLite path under a file can never be created: check-config refuses
/// it (exit 2) naming the directory it cannot create and why.
#[test]
fn check_config_refuses_a_sqlite_directory_that_cannot_be_created() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = write(dir.path(), "a-file", "not a directory");
    let db = blocker.join("sub").join("ghlsync.db");
    let run = check_config_with_sqlite(dir.path(), &db, 2);
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(
        stderr.contains(&format!(
            "cannot create directory {}",
            blocker.join("sub").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{} exists and is not a directory",
            blocker.display()
        )),
        "{stderr}"
    );
}

/// Tasks without a `list` wait for their contact, a webhook or the next
/// reconciliation: check-config says so, with the interval that bounds it.
#[test]
fn check_config_says_how_late_a_task_without_a_list_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ghlsync.toml",
        "state_dir = \".\"\n[sync]\nreconcile_interval = \"2h\"\n\
         [sides.app]\nkind = \"rest\"\nbase_url = \"https://api.example.com\"\n\
         [sides.app.contacts]\nlist = \"GET /contacts\"\n\
         [sides.app.tasks]\nchildren = \"GET /contacts/{contact_id}/tasks\"\n\
         [sides.app.notes]\nlist = \"GET /notes\"\nchildren = \"GET /contacts/{contact_id}/notes\"\n\
         parent_pointer = \"/contact_id\"\n",
    );
    let run = ghlsync(dir.path())
        .args(["check-config", "--config", "ghlsync.toml"])
        .assert()
        .code(0);
    let stdout = String::from_utf8_lossy(&run.get_output().stdout).into_owned();
    assert!(
        stdout.contains(
            "tasks: no `list`, so a task edited in the app is seen only when its contact changes"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("at most 2h later"), "{stdout}");
    assert!(!stdout.contains("notes: no `list`"), "{stdout}");
}
