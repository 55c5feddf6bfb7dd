//! The engine's commands as an operator runs them: the real binary against
//! both simulators (running in this test process) through the demo's
//! configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ghl_sync::demo::{Sims, DEMO_CONFIG};
use ghlsync_sim::faults::FaultConfig;
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

/// The writes a report counts as planned (creates, updates, deletes), over
/// every pair.
fn planned_count(report: &Value) -> u64 {
    let pairs = report["pairs"].as_object().expect("pairs");
    pairs
        .values()
        .map(|pair| {
            ["planned_creates", "planned_updates", "planned_deletes"]
                .iter()
                .map(|k| pair["stats"][k].as_u64().unwrap_or(0))
                .sum::<u64>()
        })
        .sum()
}

/// A person created on both sides before a sync is linked by match key,
/// and both of its records are new to the mirror: both sides' polls decide
/// the pair in a plan (a plan commits nothing, so neither poll sees the
/// other's link). `plan` must still count and list each write once, as the
/// sync that follows performs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_counts_a_write_to_a_matched_pair_once_as_the_sync_applies_it() {
    let sims = Sims::start(2, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = config(&sims, dir.path());
    let path = path.to_str().unwrap();
    json(&ghlsync(&["sync", "--once", "--json", "--config", path]).await);

    for n in 0..3 {
        let email = format!("matched.{n}@example.com");
        sims.ghl
            .handle()
            .create_contact_as_user(
                &sims.location,
                serde_json::json!({"email": email, "firstName": format!("First{n}")}),
            )
            .unwrap();
        sims.app
            .handle()
            .create_contact_as_user(
                serde_json::json!({"email_address": email, "last_name": format!("Last{n}")}),
            )
            .unwrap();
    }

    let plan = json(&ghlsync(&["plan", "--json", "--config", path]).await);
    let planned = plan["pairs"]["demo"]["planned"].as_array().unwrap();
    let sync = json(&ghlsync(&["sync", "--once", "--json", "--config", path]).await);
    let applied = sync["totals"]["applied"].as_u64().unwrap();
    assert_eq!(
        sync["totals"]["linked"], 3,
        "the three people are linked by email: {sync:#}"
    );
    assert_eq!(
        applied, 6,
        "each matched pair takes one update per side: {sync:#}"
    );
    assert_eq!(
        planned_count(&plan),
        applied,
        "plan's count vs the writes the sync applied: {plan:#}"
    );
    assert_eq!(planned.len() as u64, applied, "plan lists: {planned:#?}");
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

/// Every request to either simulator takes `latency` from now on.
fn slow_down(sims: &Sims, latency: Duration) {
    let faults = FaultConfig {
        latency,
        ..FaultConfig::default()
    };
    sims.ghl.handle().set_faults(faults.clone());
    sims.app.handle().set_faults(faults);
}

fn requests_answered(sims: &Sims) -> u64 {
    sims.ghl.handle().counters().total_requests + sims.app.handle().counters().total_requests
}

/// Starts `ghlsync <args> --config <path>` in the background, logging at
/// info, with `env` added.
fn spawn(args: &[&str], path: &Path, env: &[(&str, &str)]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(path)
        .env_remove("RUST_LOG")
        .env("GHLSYNC__LOG__LEVEL", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} failed");
}

async fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The child's exit, its output, and how long it took from now.
async fn finish(child: std::process::Child) -> (Output, Duration) {
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (output, started.elapsed())
}

/// `backfill` and `sync --once` stop reading at the first SIGTERM or
/// SIGINT: with every request taking 1.5 s they would otherwise read on
/// for many seconds. They report what they did and exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_commands_stop_reading_at_the_first_signal() {
    for (args, name) in [
        (&["backfill"][..], "TERM"),
        (&["sync", "--once", "--reconcile"][..], "INT"),
    ] {
        let sims = Sims::start(20, 20).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = config(&sims, dir.path());
        slow_down(&sims, Duration::from_millis(1500));
        let child = spawn(args, &path, &[]);
        // Its first request answered: it is reading, signals are handled.
        wait_until("the first request", Duration::from_secs(20), || {
            requests_answered(&sims) >= 1
        })
        .await;
        signal(&child, name);
        let (output, took) = finish(child).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}\n{stdout}\n{stderr}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{args:?} took {took:?} to stop after SIG{name}\n{stderr}"
        );
        assert!(stderr.contains(&format!("SIG{name} received")), "{stderr}");
        assert!(stdout.contains("interrupted by a signal"), "{stdout}");
        assert_eq!(writes_received(&sims), 0, "nothing was planned yet");
    }
}

/// `plan` stops reading at the first signal too, but prints no half plan
/// (it would read as "nothing else to write"): it says so and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_plan_prints_no_half_plan() {
    let sims = Sims::start(20, 20).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = config(&sims, dir.path());
    slow_down(&sims, Duration::from_millis(1500));
    let child = spawn(&["plan"], &path, &[]);
    wait_until("the first request", Duration::from_secs(20), || {
        requests_answered(&sims) >= 1
    })
    .await;
    signal(&child, "TERM");
    let (output, took) = finish(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?}\n{stderr}");
    assert!(
        stderr
            .contains("interrupted by a signal before the plan was complete; nothing was written"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// After the first signal a write in flight is given `sync.shutdown_grace`
/// (the process keeps running); a second signal ends it at once, with
/// exit 1 and a log line saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_at_once() {
    let sims = Sims::start(4, 4).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = config(&sims, dir.path());
    let child = spawn(
        &["backfill"],
        &path,
        &[("GHLSYNC__SYNC__SHUTDOWN_GRACE", "60s")],
    );
    wait_until("the first write", Duration::from_secs(30), || {
        writes_received(&sims) >= 1
    })
    .await;
    // The writes that follow hang for 10 s each.
    slow_down(&sims, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the write in flight is given the grace period"
    );
    signal(&child, "INT");
    let (output, took) = finish(child).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(took < Duration::from_secs(2), "took {took:?}\n{stderr}");
    assert!(
        stderr.contains("SIGINT received while stopping: exiting at once"),
        "{stderr}"
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
