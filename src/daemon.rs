//! `ghlsync run` put together: the engine's detection loops and writer, the
//! targeted-sync worker fed by webhooks, the HTTP server, systemd readiness
//! and watchdog, housekeeping, and an orderly stop.

use std::time::Duration;

use anyhow::Context as _;
use sd_notify::NotifyState;
use tokio::net::TcpListener;

use crate::config::Loaded;
use crate::engine::{self, run_targets, Engine, Schedule, Shutdown, TargetQueue};
use crate::server::{self, ServerState};

/// Runs until `stop`, then stops in order: no new polls, the server stops
/// taking requests, writes in flight get `sync.shutdown_grace`.
pub async fn run(loaded: &Loaded, stop: Shutdown) -> anyhow::Result<()> {
    let settings = &loaded.settings;
    let engine = crate::demo::engine(loaded).await?;
    crate::metrics::install();
    let (targets, receiver) = TargetQueue::new();
    let server = match settings.server.bind {
        Some(bind) => {
            let listener = TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on {bind} (server.bind)"))?;
            let address = listener.local_addr()?;
            tracing::info!(%address, "HTTP server listening: /webhooks/ghl, /webhooks/app, /healthz, /readyz, /metrics");
            let state = ServerState::new(engine.clone(), settings, targets);
            Some(tokio::spawn(server::serve(listener, state, stop.clone())))
        }
        None => {
            tracing::info!("no HTTP server (server.bind is empty): polling only");
            None
        }
    };
    let worker = tokio::spawn(run_targets(engine.clone(), receiver, stop.clone()));
    let window = settings.webhooks.replay_window;
    tokio::spawn(prune_deliveries(engine.clone(), window, stop.clone()));
    let schedule = Schedule {
        webhooks: server.is_some().then_some((
            settings.webhooks.trust_for,
            settings.webhooks.safety_poll_interval,
        )),
    };
    systemd_ready(&engine);
    tokio::spawn(systemd_watchdog(stop.clone()));
    tokio::spawn({
        let stop = stop.clone();
        async move {
            stop.stopped().await;
            notify(&[NotifyState::Stopping]);
        }
    });
    tracing::info!(pairs = engine.pairs.len(), "ghlsync running");
    engine::run_daemon(engine.clone(), stop, schedule).await?;
    let _ = worker.await;
    if let Some(server) = server {
        match server.await {
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "the HTTP server stopped with an error")
            }
            Err(error) => tracing::warn!(error = %error, "the HTTP server task failed"),
            Ok(Ok(())) => {}
        }
    }
    engine.store.close().await;
    Ok(())
}

/// Tells systemd (`Type=notify`) that start-up is done; a no-op elsewhere.
fn systemd_ready(engine: &Engine) {
    let status = format!("syncing {} pair(s)", engine.pairs.len());
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Pings systemd's watchdog at half its `WatchdogSec` while the runtime
/// schedules tasks: a wedged runtime stops the pings and systemd restarts
/// the service.
async fn systemd_watchdog(stop: Shutdown) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (timeout / 2).max(Duration::from_millis(100));
    tracing::info!(every = ?every, "systemd watchdog enabled");
    loop {
        // The notify socket is written with a blocking send: keep it off
        // the runtime's workers in case systemd is slow to read.
        let _ = tokio::task::spawn_blocking(|| notify(&[NotifyState::Watchdog])).await;
        if !stop.sleep(every).await {
            return;
        }
    }
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::warn!(error = %error, "cannot notify systemd");
    }
}

/// Forgets webhook deliveries older than twice the replay window, hourly
/// (a delivery that old is refused by its timestamp anyway).
async fn prune_deliveries(engine: Engine, window: Duration, stop: Shutdown) {
    let keep = chrono::Duration::from_std(window * 2).unwrap_or(chrono::Duration::MAX);
    loop {
        if let Some(before) = crate::clock::now().checked_sub_signed(keep) {
            match engine.store.prune_deliveries(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::debug!(pruned, "old webhook deliveries forgotten"),
                Err(error) => tracing::warn!(error = %error, "cannot prune webhook deliveries"),
            }
        }
        if !stop.sleep(Duration::from_secs(3600)).await {
            return;
        }
    }
}
