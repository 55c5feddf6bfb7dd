//! The engine's commands: `run` (the daemon), `sync --once`, `plan`,
//! `backfill` and `demo`.

use std::io::IsTerminal as _;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::config::Loaded;
use crate::engine::{Engine, Mode, Reconcile, Report, Shutdown};

/// `ghlsync run`: until SIGTERM or SIGINT.
pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let stop = Shutdown::default();
    tokio::spawn(stop_on_signal(stop.clone()));
    crate::daemon::run(&loaded, stop).await
}

/// Triggers `stop` on SIGTERM (systemd, Docker) or SIGINT (Ctrl-C).
async fn stop_on_signal(stop: Shutdown) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    stop.trigger();
}

/// `ghlsync sync --once`: one full cycle, then exit.
pub async fn once(loaded: Loaded, reconcile: bool, json: bool) -> anyhow::Result<()> {
    let engine = crate::demo::engine(&loaded).await?;
    let reconcile = if reconcile {
        Reconcile::Always
    } else {
        Reconcile::IfDue
    };
    let report = engine
        .cycle(Mode::Apply, reconcile, &Shutdown::default())
        .await
        .context("the sync cycle failed; nothing past the last committed page was recorded")?;
    // The budget this cycle spent, for `ghlsync status`.
    engine.record_health().await;
    print_report(&engine, &report, json).await?;
    engine.store.close().await;
    Ok(())
}

/// `ghlsync plan`: the writes a cycle would make, writing nothing.
pub async fn plan(loaded: Loaded, json: bool) -> anyhow::Result<()> {
    let engine = crate::demo::engine(&loaded).await?;
    let report = engine
        .cycle(Mode::Plan, Reconcile::IfDue, &Shutdown::default())
        .await
        .context("cannot read the sides to plan a cycle")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let mut any = false;
        for (pair, pair_report) in &report.pairs {
            for write in &pair_report.planned {
                any = true;
                println!(
                    "{pair}: {} {} on `{}`{}{}",
                    write.op,
                    write.entity,
                    write.side,
                    write
                        .target_id
                        .as_deref()
                        .map(|id| format!(" {id}"))
                        .unwrap_or_default(),
                    write
                        .source_id
                        .as_deref()
                        .map(|id| format!(" (from {id})"))
                        .unwrap_or_default(),
                );
                for (field, value) in &write.fields {
                    println!("    {field} = {value}");
                }
            }
        }
        if !any {
            println!("nothing to write: both sides agree with the mirror");
        }
        let totals = report.totals();
        println!(
            "{} record(s) read, {} create(s), {} update(s), {} delete(s), {} conflict(s), {} dead letter(s); nothing was written",
            totals.read,
            totals.planned_creates,
            totals.planned_updates,
            totals.planned_deletes,
            totals.conflicts,
            totals.dead_letters
        );
    }
    engine.store.close().await;
    Ok(())
}

/// `ghlsync backfill`: the initial load (a full reconciliation of every
/// pair, then the outbox drained), with progress.
pub async fn backfill(loaded: Loaded, json: bool) -> anyhow::Result<()> {
    let engine = crate::demo::engine(&loaded).await?;
    let stop = Shutdown::default();
    tokio::spawn(stop_on_signal(stop.clone()));
    let work = {
        let engine = engine.clone();
        let stop = stop.clone();
        tokio::spawn(async move { engine.cycle(Mode::Apply, Reconcile::Always, &stop).await })
    };
    let progress = Progress::new(std::io::stderr().is_terminal());
    let started = Instant::now();
    let mut work = work;
    let report = loop {
        tokio::select! {
            result = &mut work => break result.context("the backfill task panicked")??,
            _ = tokio::time::sleep(progress.every()) => progress.show(&engine, started).await,
        }
    };
    progress.finish();
    print_report(&engine, &report, json).await?;
    engine.store.close().await;
    Ok(())
}

/// A progress bar on a terminal, periodic log lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { bar }
    }

    fn every(&self) -> Duration {
        if self.bar.is_some() {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        }
    }

    async fn show(&self, engine: &Engine, started: Instant) {
        let read = engine.records_read.load(Ordering::Relaxed);
        let depth = engine.store.outbox_depth().await.unwrap_or_default();
        let mut linked = 0;
        for pair in &engine.pairs {
            linked += engine
                .store
                .count_links(pair.name(), crate::connector::EntityKind::Contact)
                .await
                .unwrap_or(0);
        }
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let write_rate = depth.done as f64 / secs;
        let eta = if depth.pending > 0 && write_rate > 0.0 {
            format!(
                "{}",
                humantime::format_duration(Duration::from_secs(
                    (depth.pending as f64 / write_rate) as u64
                ))
            )
        } else {
            "-".to_owned()
        };
        let line = format!(
            "read {read} ({:.0}/s), contacts linked {linked}, written {} ({:.1}/s), pending {}, ETA {eta}",
            read as f64 / secs,
            depth.done,
            write_rate,
            depth.pending
        );
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => tracing::info!(
                read,
                linked,
                written = depth.done,
                pending = depth.pending,
                eta = %eta,
                "backfill progress"
            ),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn print_report(engine: &Engine, report: &Report, json: bool) -> anyhow::Result<()> {
    let depth = engine.store.outbox_depth().await?;
    if json {
        let out = serde_json::json!({
            "pairs": report.pairs,
            "totals": report.totals(),
            "outbox": depth,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let t = report.totals();
    println!(
        "read {} record(s): {} unchanged, {} echo(es), {} filtered; linked {} by match key",
        t.read, t.unchanged, t.echoes, t.filtered, t.linked
    );
    println!(
        "planned {} create(s), {} update(s), {} delete(s){}; applied {} write(s), {} to retry",
        t.planned_creates,
        t.planned_updates,
        t.planned_deletes,
        if t.deletes_held > 0 {
            format!(
                " ({} deletes held by the mass-delete guard)",
                t.deletes_held
            )
        } else {
            String::new()
        },
        t.applied,
        t.retried
    );
    println!(
        "{} conflict(s) parked, {} dead letter(s); outbox: {} pending, {} dead",
        t.conflicts, t.dead_letters, depth.pending, depth.dead
    );
    Ok(())
}
