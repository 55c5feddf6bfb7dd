//! `sync --once` after a writer died holding leases (what `kill -9` of a
//! daemon mid-batch leaves behind): the real binary against both
//! simulators, on SQLite and on Postgres.
//!
//! The dead writer is staged through the library, deterministically: one
//! detection pass commits the planned writes, then a claim leases every one
//! of them, and nothing ever finishes them.

#[path = "common/store_backends.rs"]
mod store_backends;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ghl_sync::config::{self, LoadOptions};
use ghl_sync::demo::{Sims, DEMO_CONFIG};
use ghl_sync::engine::{Mode, Reconcile};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ghlsync");

/// The demo configuration for `sims` in `dir`, on `database` (a
/// `[database]` table, empty for the default SQLite file).
fn write_config(sims: &Sims, dir: &Path, database: &str) -> PathBuf {
    let path = dir.join("ghlsync.toml");
    let text = format!("{}\n{database}\n", sims.render(DEMO_CONFIG, dir));
    std::fs::write(&path, text).unwrap();
    path
}

/// Plans the first sync's writes into the mirror and leases them all for
/// `lease`, as a writer that claimed its batch and was killed would.
/// Returns how many writes it left leased.
async fn die_holding_leases(path: &Path, lease: Duration) -> usize {
    let loaded = config::load(&LoadOptions {
        file: Some(path.to_path_buf()),
        env: Some(HashMap::new()),
        no_search: true,
    })
    .unwrap();
    let engine = ghl_sync::demo::engine(&loaded).await.unwrap();
    for pair in &engine.pairs {
        engine
            .detect_pair(pair, Mode::Apply, Reconcile::Always)
            .await
            .unwrap();
    }
    let claimed = engine.store.claim_outbox(1000, lease).await.unwrap();
    engine.store.close().await;
    claimed.len()
}

async fn sync_once(path: &Path, writer_lease: &str) -> (Output, Duration) {
    let path = path.to_path_buf();
    let writer_lease = writer_lease.to_owned();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["sync", "--once", "--json", "--config"])
            .arg(&path)
            .env_remove("RUST_LOG")
            .env("GHLSYNC__SYNC__WRITER_LEASE", writer_lease)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (output, started.elapsed())
}

fn report(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Leases that run out within `sync.writer_lease` are waited for and taken
/// over: every write is applied and the command exits 0.
async fn expired_leases_are_taken_over(database: String) {
    let sims = Sims::start(3, 3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&sims, dir.path(), &database);
    let leased = die_holding_leases(&path, Duration::from_secs(2)).await;
    assert!(leased >= 6, "one create per contact was leased: {leased}");

    let (output, took) = sync_once(&path, "10s").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report = report(&output);
    assert_eq!(report["outbox"]["pending"], 0, "{report}");
    assert_eq!(report["leased"], Value::Array(vec![]), "{report}");
    assert!(
        report["totals"]["applied"].as_u64().unwrap() >= leased as u64,
        "{report}"
    );
    assert_eq!(sims.app.handle().contact_count(), 6);
    assert_eq!(sims.ghl.handle().contacts(&sims.location).len(), 6);
    assert!(
        took < Duration::from_secs(8),
        "it waited for the 2 s leases only, not the whole 10 s: {took:?}"
    );
}

/// Leases that outlast the wait are reported, with their count and end,
/// and the command exits 1 without touching them.
async fn live_leases_are_reported_and_exit_1(database: String) {
    let sims = Sims::start(3, 3).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&sims, dir.path(), &database);
    let leased = die_holding_leases(&path, Duration::from_secs(3600)).await;

    let (output, took) = sync_once(&path, "1s").await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{leased} write(s) not applied: another writer holds them under a lease until"
        )),
        "{stderr}"
    );
    let report = report(&output);
    let listed: i64 = report["leased"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["count"].as_i64().unwrap())
        .sum();
    assert_eq!(listed, leased as i64, "{report}");
    assert_eq!(report["outbox"]["pending"], leased as i64, "{report}");
    assert_eq!(sims.app.handle().contact_count(), 3, "nothing was written");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_expired_leases_are_taken_over() {
    expired_leases_are_taken_over(String::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_live_leases_are_reported_and_exit_1() {
    live_leases_are_reported_and_exit_1(String::new()).await;
}

fn postgres_table(url: &str) -> String {
    format!("[database]\nurl = \"{url}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_expired_leases_are_taken_over() {
    store_backends::with_postgres_url("sync --once lease take-over", |url| async move {
        expired_leases_are_taken_over(postgres_table(&url)).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_live_leases_are_reported_and_exit_1() {
    store_backends::with_postgres_url("sync --once leases reported", |url| async move {
        live_leases_are_reported_and_exit_1(postgres_table(&url)).await
    })
    .await;
}
