//! The schedule: per pair a detection loop (every stream polled at its
//! interval with jitter, a reconciliation when due), one outbox writer, and
//! an orderly stop.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::watch;

use super::report::{PairReport, Report};
use super::{side_of, Engine, EngineError, Mode, PairRuntime, ROLES};
use crate::connector::EntityKind;

/// A stop signal shared by every task of a run.
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            sender: Arc::new(sender),
            receiver,
        }
    }
}

impl Shutdown {
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_stopping(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once a stop is requested.
    pub async fn stopped(&self) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `duration`; false if a stop came first.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = self.stopped() => false,
        }
    }
}

/// When a detection pass reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconcile {
    /// When the last full sync is older than `sync.reconcile_interval`
    /// (or never happened).
    IfDue,
    Always,
    Never,
}

impl Engine {
    /// Detection for one pair: every change feed of both sides, contacts
    /// first, then a reconciliation if asked or due.
    pub async fn detect_pair(
        &self,
        pair: &PairRuntime,
        mode: Mode,
        reconcile: Reconcile,
    ) -> Result<PairReport, EngineError> {
        let mut report = PairReport::default();
        for entity in pair.entities() {
            for source in ROLES {
                report.absorb(self.poll(pair, source, entity, mode).await?);
            }
        }
        let due = match reconcile {
            Reconcile::Always => true,
            Reconcile::Never => false,
            Reconcile::IfDue => self.reconcile_due(pair).await?,
        };
        if due {
            report.absorb(self.reconcile(pair, mode).await?);
            if mode == Mode::Plan {
                report.dedup_planned();
            }
        }
        Ok(report)
    }

    async fn reconcile_due(&self, pair: &PairRuntime) -> Result<bool, EngineError> {
        let interval = chrono::Duration::from_std(self.sync.reconcile_interval).unwrap_or_default();
        for source in ROLES {
            let cursor = self
                .store
                .load_cursor(pair.name(), side_of(source), EntityKind::Contact, "")
                .await?;
            let last = cursor.and_then(|c| c.last_full_sync_at);
            if last.is_none_or(|at| Utc::now() - at >= interval) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One whole cycle: detection on every pair, then the outbox drained.
    /// `sync --once`, `backfill`, and the demo's steps.
    pub async fn cycle(
        &self,
        mode: Mode,
        reconcile: Reconcile,
        stop: &Shutdown,
    ) -> Result<Report, EngineError> {
        let mut report = Report::default();
        for pair in &self.pairs {
            let pair_report = self.detect_pair(pair, mode, reconcile).await?;
            report.pair(pair.name()).absorb(pair_report);
        }
        if mode == Mode::Apply {
            let written = self.drain_outbox(stop).await?;
            report.pair("*").stats.add(&written);
            report.pairs.retain(|_, p| *p != PairReport::default());
        }
        Ok(report)
    }
}

/// The daemon: runs until `stop`, then lets the writes in flight finish
/// within `sync.shutdown_grace`. Nothing is lost if it is killed instead:
/// watermarks only move with the changes they cover, and the outbox resumes
/// at the next start.
pub async fn run(engine: Engine, stop: Shutdown) -> Result<(), EngineError> {
    let mut tasks = tokio::task::JoinSet::new();
    for pair in engine.pairs.clone() {
        let engine = engine.clone();
        let stop = stop.clone();
        tasks.spawn(async move {
            while !stop.is_stopping() {
                match engine.detect_pair(&pair, Mode::Apply, Reconcile::IfDue).await {
                    Ok(report) if report.stats.planned() > 0 => {
                        tracing::info!(pair = %pair.name(), stats = ?report.stats, "changes detected");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(pair = %pair.name(), error = %error, "detection failed; retrying at the next poll");
                    }
                }
                let jitter = engine.sync.poll_jitter.as_millis() as u64;
                let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..=jitter));
                if !stop.sleep(engine.sync.poll_interval + jitter).await {
                    break;
                }
            }
        });
    }
    let writer = {
        let engine = engine.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.is_stopping() {
                if let Err(error) = engine.drain_outbox(&stop).await {
                    tracing::warn!(error = %error, "outbox writer failed; retrying");
                }
                tokio::select! {
                    _ = engine.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.stopped() => {}
                }
            }
        })
    };
    stop.stopped().await;
    tracing::info!(grace = ?engine.sync.shutdown_grace, "stopping: no new polls; finishing writes in flight");
    // Detection stops at once: what it had not committed is read again.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    match tokio::time::timeout(engine.sync.shutdown_grace, writer).await {
        Ok(_) => tracing::info!("stopped cleanly"),
        Err(_) => tracing::warn!(
            "writes still in flight after the grace period; their leases expire and they are retried at the next start"
        ),
    }
    Ok(())
}
