//! The engine's commands: `run` (the daemon), `sync --once`, `plan`,
//! `backfill` and `demo`.

mod progress;

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};

use super::Exit;
use crate::config::Loaded;
use crate::engine::{Engine, Mode, Reconcile, Report, Shutdown};
use crate::store::LeasedWrites;

use self::progress::Progress;

/// `ghlsync run`: until SIGTERM or SIGINT.
pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let stop = Shutdown::default();
    stop_on_signals(&stop)?;
    crate::daemon::run(&loaded, stop).await
}

/// From now on, SIGTERM (systemd, Docker) or SIGINT (Ctrl-C) triggers
/// `stop`: every long command then stops reading at once, starts no new
/// write, and gives the write in flight `sync.shutdown_grace` (the daemon's
/// orderly stop, [`Engine::cycle`] for the one-shot commands). A second
/// signal means the operator will not wait: the process exits at once with
/// code 1, and what was in flight is retried when its lease runs out.
///
/// The handlers are installed before this returns (not in a spawned task),
/// so a signal sent as soon as the command started is not the default
/// action that kills the process without a word.
fn stop_on_signals(stop: &Shutdown) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let stop = stop.clone();
        tokio::spawn(async move {
            let received = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(
                signal = received,
                "{received} received: stopping (reading stops now, writes in flight get sync.shutdown_grace); a second signal exits at once"
            );
            stop.trigger();
            let again = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::warn!(
                signal = again,
                "{again} received while stopping: exiting at once; writes in flight are retried when their leases run out"
            );
            std::process::exit(Exit::Runtime as i32);
        });
    }
    #[cfg(not(unix))]
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C received: stopping; a second one exits at once");
                stop.trigger();
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::warn!("Ctrl-C received while stopping: exiting at once");
                std::process::exit(Exit::Runtime as i32);
            }
        });
    }
    Ok(())
}

/// `ghlsync sync --once`: one full cycle, then exit.
pub async fn once(loaded: Loaded, reconcile: bool, json: bool) -> anyhow::Result<()> {
    let stop = Shutdown::default();
    stop_on_signals(&stop)?;
    let engine = crate::demo::engine(&loaded).await?;
    let reconcile = if reconcile {
        Reconcile::Always
    } else {
        Reconcile::IfDue
    };
    let mut report = engine
        .cycle(Mode::Apply, reconcile, &stop)
        .await
        .context("the sync cycle failed; nothing past the last committed page was recorded")?;
    let leased = take_over_leases(&engine, &stop, &mut report).await?;
    // The budget this cycle spent, for `ghlsync status`.
    engine.record_health().await;
    let interrupted = stop.is_stopping();
    print_report(&engine, &report, json, interrupted, &leased).await?;
    engine.store.close().await;
    unfinished(&engine, &leased)
}

/// `ghlsync plan`: the writes a cycle would make, writing nothing.
pub async fn plan(loaded: Loaded, json: bool) -> anyhow::Result<()> {
    let stop = Shutdown::default();
    stop_on_signals(&stop)?;
    let engine = crate::demo::engine(&loaded).await?;
    let report = engine
        .cycle(Mode::Plan, Reconcile::IfDue, &stop)
        .await
        .context("cannot read the sides to plan a cycle")?;
    if stop.is_stopping() {
        // Half a plan would read as "nothing else to write".
        engine.store.close().await;
        anyhow::bail!("interrupted by a signal before the plan was complete; nothing was written");
    }
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
    let stop = Shutdown::default();
    stop_on_signals(&stop)?;
    let engine = crate::demo::engine(&loaded).await?;
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    progress.start(&engine).await;
    let work = {
        let engine = engine.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut report = engine.cycle(Mode::Apply, Reconcile::Always, &stop).await?;
            let leased = take_over_leases(&engine, &stop, &mut report).await?;
            anyhow::Ok((report, leased))
        })
    };
    let mut work = work;
    let (report, leased) = loop {
        tokio::select! {
            result = &mut work => break result.context("the backfill task panicked")??,
            _ = tokio::time::sleep(progress.every()) => progress.show(&engine).await,
        }
    };
    progress.finish();
    let interrupted = stop.is_stopping();
    print_report(&engine, &report, json, interrupted, &leased).await?;
    engine.store.close().await;
    unfinished(&engine, &leased)
}

/// After a cycle: writes another writer still holds under a lease. A
/// writer killed mid-batch (`kill -9`, a crash, a lost host) leaves its
/// claimed items leased until `sync.writer_lease` runs out; a one-shot
/// command that exited 0 over them would hide hundreds of unapplied writes.
/// So it waits, for at most `sync.writer_lease` (as long as such a lease
/// can last when the dead writer used this configuration), takes over each
/// item as its lease runs out (the claim takes expired leases) and writes
/// it. A live writer finishing them ends the wait early too. Returns what
/// is still leased after that: a writer that is alive (a daemon running
/// beside this command) or that leased for longer.
async fn take_over_leases(
    engine: &Engine,
    stop: &Shutdown,
    report: &mut Report,
) -> anyhow::Result<Vec<LeasedWrites>> {
    let wait_at_most = engine.sync.writer_lease;
    let deadline = Instant::now() + wait_at_most;
    let mut announced = false;
    loop {
        let leased = engine
            .store
            .leased_outbox()
            .await
            .context("cannot read the outbox's leases")?;
        if stop.is_stopping() {
            // Stopped by a signal: the operator asked to stop, not to wait;
            // leases of our own writes cut off by the grace would also
            // count here. The report says what is left pending.
            return Ok(Vec::new());
        }
        let now = Instant::now();
        if leased.is_empty() || now >= deadline {
            return Ok(leased);
        }
        let count: i64 = leased.iter().map(|l| l.count).sum();
        let first_expiry = leased.iter().map(|l| l.first_expiry).min();
        if !announced {
            announced = true;
            tracing::warn!(
                writes = count,
                first_lease_ends = %first_expiry.map(|t| t.to_rfc3339()).unwrap_or_default(),
                wait_at_most = %humantime::format_duration(wait_at_most),
                "writes are leased by another writer (a daemon running, or one that stopped without finishing them): waiting to take them over as their leases run out"
            );
        }
        // Until the first lease runs out, but looking again every second:
        // a live writer may finish them sooner.
        let until_expiry = first_expiry
            .and_then(|at| (at - Utc::now()).to_std().ok())
            .unwrap_or_default();
        let wait = until_expiry
            .clamp(Duration::from_millis(20), Duration::from_secs(1))
            .min(deadline - now);
        if !stop.sleep(wait).await {
            return Ok(Vec::new());
        }
        let grace = engine.sync.shutdown_grace;
        match stop.within_grace(grace, engine.drain_outbox(stop)).await {
            Some(written) => report
                .pair("*")
                .stats
                .add(&written.context("writing the writes taken over failed")?),
            None => tracing::warn!(
                grace = ?grace,
                "writes still in flight after the grace period; their leases expire and they are retried at the next start"
            ),
        }
    }
}

/// Exit 1 when writes were left under another writer's lease: the command
/// did not do all it was asked, and a script must be able to tell.
fn unfinished(engine: &Engine, leased: &[LeasedWrites]) -> anyhow::Result<()> {
    if leased.is_empty() {
        return Ok(());
    }
    let count: i64 = leased.iter().map(|l| l.count).sum();
    let until = leased.iter().map(|l| l.until).max();
    anyhow::bail!(
        "{count} write(s) not applied: another writer holds them under a lease until {} (waited {}); \
         a daemon is running, or one stopped without finishing and leased for longer than \
         sync.writer_lease here. Run again after that time, or let the daemon apply them",
        until.map(at).unwrap_or_default(),
        humantime::format_duration(engine.sync.writer_lease),
    )
}

fn at(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn print_report(
    engine: &Engine,
    report: &Report,
    json: bool,
    interrupted: bool,
    leased: &[LeasedWrites],
) -> anyhow::Result<()> {
    let depth = engine.store.outbox_depth().await?;
    if json {
        let out = serde_json::json!({
            "pairs": report.pairs,
            "totals": report.totals(),
            "outbox": depth,
            "interrupted": interrupted,
            "leased": leased,
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
    for l in leased {
        let side = engine
            .pairs
            .iter()
            .find(|p| p.name() == l.pair)
            .map(|p| p.connector(l.side).side().to_owned())
            .unwrap_or_else(|| l.side.to_string());
        println!(
            "pair `{}`: {} write(s) to `{side}` leased by another writer until {}",
            l.pair,
            l.count,
            at(l.until)
        );
    }
    if interrupted {
        println!(
            "interrupted by a signal: reading stopped, {} write(s) left pending; run the command again to finish",
            depth.pending
        );
    }
    Ok(())
}
