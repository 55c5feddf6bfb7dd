//! The engine's commands as an operator runs them: the real binary against
//! both simulators (running in this test process) through the demo's
//! configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ghl_sync::demo::{Sims, DEMO_CONFIG};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ghlsync");

/// Writes the demo configuration for `sims` into `dir`.
fn config(sims: &Sims, dir: &Path) -> PathBuf {
    let path = dir.join("ghlsync.toml");
    std::fs::write(&path, sims.render(DEMO_CONFIG, dir)).unwrap();
    path
}

/// Runs the binary off the async runtime (the simulators live on it).
async fn ghlsync(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

fn writes_received(sims: &Sims) -> u64 {
    sims.ghl.handle().counters().writes() + sims.app.handle().counters().writes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_prints_the_writes_and_writes_nothing() {
    let sims = Sims::start(3, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = config(&sims, dir.path());
    let path = path.to_str().unwrap();

    let report = json(&ghlsync(&["plan", "--json", "--config", path]).await);
    let planned = report["pairs"]["demo"]["planned"].as_array().unwrap();
    let creates = |side: &str| {
        planned
            .iter()
            .filter(|w| w["op"] == "create" && w["entity"] == "contact" && w["side"] == side)
            .count()
    };
    assert_eq!(
        creates("app"),
        3,
        "each GHL contact would be created in the app"
    );
    assert_eq!(
        creates("ghl"),
        2,
        "each app contact would be created in GHL"
    );
    assert!(
        planned.iter().any(|w| w["fields"]["email"].is_string()),
        "fields are shown"
    );
    assert_eq!(writes_received(&sims), 0, "plan wrote to a side");

    // Nor to the mirror: a real cycle afterwards still finds everything new.
    let report = json(&ghlsync(&["sync", "--once", "--json", "--config", path]).await);
    assert!(report["totals"]["planned_creates"].as_u64().unwrap() >= 5);
    assert_eq!(sims.app.handle().contact_count(), 5);
    assert_eq!(sims.ghl.handle().contacts(&sims.location).len(), 5);

    // The human form says so too.
    let output = ghlsync(&["plan", "--config", path]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_then_nothing_left_to_do() {
    let sims = Sims::start(4, 3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = config(&sims, dir.path());
    let path = path.to_str().unwrap();

    let first = json(&ghlsync(&["sync", "--once", "--json", "--config", path]).await);
    assert!(first["totals"]["applied"].as_u64().unwrap() >= 7);
    assert_eq!(first["outbox"]["pending"], 0);
    assert_eq!(sims.app.handle().contact_count(), 7);

    let before = writes_received(&sims);
    let second = json(&ghlsync(&["sync", "--once", "--json", "--config", path]).await);
    assert_eq!(
        second["totals"]["applied"].as_u64().unwrap_or(0),
        0,
        "{second}"
    );
    assert_eq!(
        writes_received(&sims),
        before,
        "the second cycle wrote again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_loads_everything_and_logs_progress_off_a_terminal() {
    let sims = Sims::start(6, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = config(&sims, dir.path());
    let output = ghlsync(&["backfill", "--json", "--config", path.to_str().unwrap()]).await;
    let report = json(&output);
    assert_eq!(report["outbox"]["pending"], 0);
    assert_eq!(sims.app.handle().contact_count(), 10);
    assert_eq!(sims.ghl.handle().contacts(&sims.location).len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_stops_cleanly_on_sigterm() {
    let sims = Sims::start(3, 3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = config(&sims, dir.path());
    let mut child = Command::new(BIN)
        .args(["run", "--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The daemon syncs while it runs.
    let app = sims.app.handle();
    let started = Instant::now();
    while app.contact_count() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the daemon did not sync"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let stopped = Instant::now();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM is a clean stop");
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "it stopped within the grace period (5 s in the demo config)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_end_to_end() {
    let output = ghlsync(&["demo"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "1. initial sync",
        "4. conflict",
        "6. delete",
        "0 pending, 0 dead letters",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}
