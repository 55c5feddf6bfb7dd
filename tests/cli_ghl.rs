//! The GHL commands of the binary against the GHL simulator: `doctor`,
//! `auth login` (with a pasted code and through the redirect listener),
//! `auth status`, and `sim ghl` itself.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use ghlsync_sim::ghl::{GhlSim, RunningGhlSim, SimOptions};

fn ghlsync(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("ghlsync").unwrap();
    cmd.current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("GHLSYNC_CONFIG");
    cmd
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn sim() -> RunningGhlSim {
    GhlSim::start(SimOptions {
        contacts_per_location: 5,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

fn pit_config(dir: &Path, sim: &RunningGhlSim, token: &str) -> String {
    format!(
        r#"state_dir = "{state}"
[log]
format = "pretty"
[sides.ghl]
kind = "ghl"
location_id = "{location}"
base_url = "{base}"
[sides.ghl.auth]
method = "private_token"
token = "{token}"
"#,
        state = dir.join("state").display(),
        location = sim.handle().location_ids()[0],
        base = sim.base_url(),
    )
}

fn oauth_config(dir: &Path, sim: &RunningGhlSim, redirect: &str) -> String {
    format!(
        r#"state_dir = "{state}"
[log]
format = "pretty"
[sides.ghl]
kind = "ghl"
location_id = "{location}"
base_url = "{base}"
[sides.ghl.auth]
method = "oauth"
client_id = "app-1"
client_secret = "app-1-secret"
redirect_uri = "{redirect}"
authorize_url = "{base}/oauth/chooselocation"
"#,
        state = dir.join("state").display(),
        location = sim.handle().location_ids()[0],
        base = sim.base_url(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_each_check_and_fails_with_ghls_message() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let location = sim.handle().location_ids()[0].clone();
    let token = sim
        .handle()
        .issue_token(&location, &["contacts.readonly", "contacts.write"], None);
    std::fs::write(
        dir.path().join("ghlsync.toml"),
        pit_config(dir.path(), &sim, &token),
    )
    .unwrap();

    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || ghlsync(&dir).arg("doctor").output().unwrap()
    })
    .await
    .unwrap();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    for needle in [
        "token",
        "scopes",
        "GET /contacts/?limit=1",
        "GET /contacts/:id/tasks",
        "GET /contacts/:id/notes",
        "rate limit",
        "left in this 10 s window",
    ] {
        assert!(
            out.contains(needle),
            "doctor output lacks {needle:?}:\n{out}"
        );
    }
    assert!(!out.contains("FAIL"), "{out}");

    assert!(sim.handle().revoke_token(&token));
    let output = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || ghlsync(&dir).arg("doctor").output().unwrap()
    })
    .await
    .unwrap();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(out.contains("FAIL") && out.contains("Invalid JWT"), "{out}");
    assert!(!out.contains(&token), "token printed:\n{out}");
    sim.shutdown().await;
}

/// The row of `check` in doctor's table, with its status and detail.
fn doctor_row<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|line| line.split_whitespace().nth(1) == Some(check))
        .unwrap_or_else(|| panic!("no `{check}` row in doctor's table:\n{out}"))
}

/// A token GHL refuses (401) on doctor's first request is not "ok": the
/// token row fails with GHL's message, and doctor exits 1. Both a token
/// GHL never issued and one it revoked.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_fails_the_token_row_when_ghl_refuses_the_token() {
    let sim = sim().await;
    let location = sim.handle().location_ids()[0].clone();
    let issued =
        sim.handle()
            .issue_token(&location, &["contacts.readonly", "contacts.write"], None);
    assert!(sim.handle().revoke_token(&issued));
    for token in ["pit-never-issued-by-ghl", issued.as_str()] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ghlsync.toml"),
            pit_config(dir.path(), &sim, token),
        )
        .unwrap();
        let output = tokio::task::spawn_blocking({
            let dir = dir.path().to_owned();
            move || ghlsync(&dir).arg("doctor").output().unwrap()
        })
        .await
        .unwrap();
        let out = text(&output);
        assert_eq!(output.status.code(), Some(1), "{out}");
        let row = doctor_row(&out, "token");
        assert!(
            row.split_whitespace().nth(2) == Some("FAIL"),
            "the token row fails: {row}\n{out}"
        );
        assert!(
            row.contains("401") && row.contains("Invalid JWT"),
            "the token row quotes GHL's refusal: {row}"
        );
        assert!(!out.contains(token), "token printed:\n{out}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_login_with_a_code_stores_tokens_that_status_and_doctor_use() {
    let sim = sim().await;
    sim.handle().register_oauth_client("app-1", "app-1-secret");
    let location = sim.handle().location_ids()[0].clone();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ghlsync.toml"),
        oauth_config(dir.path(), &sim, "http://127.0.0.1:9/oauth/callback"),
    )
    .unwrap();
    let code = sim
        .handle()
        .authorization_code("app-1", &location, &["contacts.readonly"]);
    let run = |args: Vec<String>| {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || ghlsync(&dir).args(args).output().unwrap())
    };

    let output = run(vec!["auth".into(), "status".into()]).await.unwrap();
    assert!(
        text(&output).contains("no tokens stored: run `ghlsync auth login --side ghl`"),
        "{}",
        text(&output)
    );

    let output = run(vec![
        "auth".into(),
        "login".into(),
        "--side".into(),
        "ghl".into(),
        "--code".into(),
        code,
    ])
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("stored OAuth tokens for location:{location}")),
        "{}",
        text(&output)
    );

    let output = run(vec!["auth".into(), "status".into(), "--json".into()])
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        status[0]["scopes"],
        serde_json::json!(["contacts.readonly"])
    );
    assert_eq!(status[0]["expired"], false);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("access_token"));

    // The grant was read-only: doctor warns that the side is one-way.
    let output = run(vec!["doctor".into()]).await.unwrap();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("no contacts.write"), "{out}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_login_receives_the_code_on_a_loopback_redirect() {
    let sim = sim().await;
    sim.handle().register_oauth_client("app-1", "app-1-secret");
    let location = sim.handle().location_ids()[0].clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redirect = format!("http://127.0.0.1:{port}/oauth/callback");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ghlsync.toml"),
        oauth_config(dir.path(), &sim, &redirect),
    )
    .unwrap();

    let mut child = Process::new(env!("CARGO_BIN_EXE_ghlsync"))
        .current_dir(dir.path())
        .args(["auth", "login", "--side", "ghl", "--wait", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The authorization URL is printed first; then the listener is up.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("Waiting for the redirect") {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "exited early: {printed}"
        );
        printed.push_str(&line);
    }
    assert!(
        printed.contains("oauth/chooselocation?response_type=code"),
        "{printed}"
    );
    assert!(printed.contains("client_id=app-1"), "{printed}");

    let code = sim.handle().authorization_code(
        "app-1",
        &location,
        &["contacts.readonly", "contacts.write"],
    );
    let page = reqwest::get(format!("{redirect}?code={code}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("authorized"), "{page}");
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    sim.shutdown().await;
}

#[test]
fn sim_ghl_serves_the_api_it_prints() {
    let mut child = Process::new(env!("CARGO_BIN_EXE_ghlsync"))
        .args([
            "sim",
            "ghl",
            "--port",
            "0",
            "--contacts",
            "3",
            "--token",
            "demo-token=contacts.readonly,contacts.write",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut base, mut location) = (String::new(), String::new());
    for _ in 0..10 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if let Some(url) = line.strip_prefix("GHL simulator listening on ") {
            base = url.trim().to_owned();
        }
        if let Some(rest) = line.strip_prefix("location ") {
            location = rest.split_whitespace().next().unwrap().to_owned();
        }
        if !base.is_empty() && !location.is_empty() {
            break;
        }
    }
    let response = blocking_get(&base, &location);
    child.kill().unwrap();
    child.wait().unwrap();
    let body: serde_json::Value = serde_json::from_str(&response).unwrap();
    assert_eq!(body["contacts"].as_array().unwrap().len(), 3, "{body}");
}

/// A GET from the synchronous test above, on a runtime of its own.
fn blocking_get(base: &str, location: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{base}/contacts/?locationId={location}&limit=10"))
            .bearer_auth("demo-token")
            .header("Version", "2021-07-28")
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agency_login_lists_the_installed_locations() {
    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 2,
        locations: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let handle = sim.handle();
    handle.register_oauth_client("app-1", "app-1-secret");
    let dir = tempfile::tempdir().unwrap();
    let config = oauth_config(dir.path(), &sim, "http://127.0.0.1:9/cb")
        + &format!(
            "user_type = \"Company\"\ncompany_id = \"{}\"\n",
            handle.company_id()
        );
    std::fs::write(dir.path().join("ghlsync.toml"), config).unwrap();
    let code = handle.company_authorization_code(
        "app-1",
        &["contacts.readonly", "oauth.readonly", "oauth.write"],
    );
    let run = |args: Vec<&str>| {
        let dir = dir.path().to_owned();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        tokio::task::spawn_blocking(move || ghlsync(&dir).args(args).output().unwrap())
    };
    let output = run(vec!["auth", "login", "--side", "ghl", "--code", &code])
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        text(&output).contains(&format!("company:{}", handle.company_id())),
        "{}",
        text(&output)
    );

    let output = run(vec![
        "auth",
        "locations",
        "--side",
        "ghl",
        "--app-id",
        "app-1",
    ])
    .await
    .unwrap();
    let out = text(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    for location in handle.location_ids() {
        assert!(out.contains(&location), "{location} missing:\n{out}");
    }
    sim.shutdown().await;
}

/// `doctor` says how tasks are reconciled: per contact without
/// `locations/tasks.readonly` (and how to get the location-wide search),
/// with the search when the side's scopes list it and the token carries
/// it (tried once); a warning when listed but refused by GHL.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_says_how_tasks_are_reconciled() {
    const SCOPE: &str = "locations/tasks.readonly";
    let sim = sim().await;
    let location = sim.handle().location_ids()[0].clone();
    let doctor = |config: String| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ghlsync.toml"), config).unwrap();
        async move {
            let out = tokio::task::spawn_blocking({
                let dir = dir.path().to_owned();
                move || ghlsync(&dir).arg("doctor").output().unwrap()
            })
            .await
            .unwrap();
            let line = text(&out)
                .lines()
                .find(|l| l.contains("task reconciliation"))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("no task row:\n{}", text(&out)));
            (out.status.code(), line)
        }
    };
    let contacts_only = ["contacts.readonly", "contacts.write"];
    let token = sim.handle().issue_token(&location, &contacts_only, None);
    let dir = tempfile::tempdir().unwrap();
    let (code, line) = doctor(pit_config(dir.path(), &sim, &token)).await;
    assert_eq!(code, Some(0));
    assert!(
        line.contains("per contact") && line.contains(SCOPE),
        "{line}"
    );

    let scoped =
        format!("[sides.ghl]\nscopes = [\"contacts.readonly\", \"contacts.write\", \"{SCOPE}\"]");
    let granted = sim.handle().issue_token(
        &location,
        &["contacts.readonly", "contacts.write", SCOPE],
        None,
    );
    let config = pit_config(dir.path(), &sim, &granted).replace("[sides.ghl]", &scoped);
    let (code, line) = doctor(config).await;
    assert_eq!(code, Some(0), "{line}");
    assert!(
        line.contains("location-wide task search") && line.contains(" ok "),
        "{line}"
    );

    let config = pit_config(dir.path(), &sim, &token).replace("[sides.ghl]", &scoped);
    let (_, line) = doctor(config).await;
    assert!(line.contains("warn") && line.contains("refused"), "{line}");
    sim.shutdown().await;
}
