//! The schedule: per pair a detection loop (every stream polled at its
//! interval with jitter, a reconciliation when due), one outbox writer, and
//! an orderly stop.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::detect::{Children, STREAM};
use super::report::{PairReport, Report};
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::connector::ConnectorError;
use crate::domain::{EntityKind, Side};

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

    /// Runs `work` unless a stop comes first: then `work` is dropped where
    /// it stands and the result is `None`. For reading (detection): a page
    /// is committed with its watermark in one transaction, so whatever the
    /// interrupted pass had not committed is simply read again next time.
    pub async fn unless_stopped<F: Future>(&self, work: F) -> Option<F::Output> {
        tokio::select! {
            // A stop already requested never starts the work.
            biased;
            _ = self.stopped() => None,
            output = work => Some(output),
        }
    }

    /// Runs `work` to its end, but once a stop is requested for at most
    /// `grace` more (`sync.shutdown_grace`); `None` if the grace ran out.
    /// For writing: the writer stops between items on its own, so this only
    /// bounds the write in flight; an item dropped mid-write keeps its lease
    /// until it expires and is retried then.
    pub async fn within_grace<F: Future>(&self, grace: Duration, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        tokio::select! {
            output = &mut work => return Some(output),
            _ = self.stopped() => {}
        }
        tokio::time::timeout(grace, work).await.ok()
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
        self.detect_sides(pair, &Side::BOTH, mode, reconcile).await
    }

    /// Detection of the feeds of `sources` only (the daemon polls a side
    /// whose webhooks arrive less often), then a reconciliation of the
    /// whole pair if asked or due.
    ///
    /// When the pass reconciles, its polls leave the children of changed
    /// contacts to the reconciliation (which reads every linked contact's),
    /// and a side's contacts never polled before (no watermark: the poll
    /// would list every contact) are not polled at all: the
    /// reconciliation's listing reads them once, and sets the watermark
    /// the poll would have set. So `ghlsync backfill` lists each side's
    /// contacts once and reads each contact's children once. A
    /// reconciliation that fails stays due (its `last_full_sync_at` does
    /// not move), so the children it did not read are read by the next
    /// pass, and a side whose listing failed is still never polled then.
    pub async fn detect_sides(
        &self,
        pair: &PairRuntime,
        sources: &[Side],
        mode: Mode,
        reconcile: Reconcile,
    ) -> Result<PairReport, EngineError> {
        let reconciling = self.reconcile_wanted(pair, reconcile).await?;
        let children = if reconciling {
            Children::LeftToReconciliation
        } else {
            Children::Read
        };
        let mut report = PairReport::default();
        for entity in pair.entities() {
            for source in sources {
                if reconciling
                    && entity == EntityKind::Contact
                    && self.never_polled(pair, *source).await?
                {
                    continue;
                }
                report.absorb(self.poll_as(pair, *source, entity, mode, children).await?);
            }
        }
        if reconciling {
            report.absorb(self.reconcile(pair, mode).await?);
        }
        if mode == Mode::Plan {
            report.dedup_planned();
        }
        Ok(report)
    }

    /// Whether `source`'s contact feed has no watermark yet.
    pub(super) async fn never_polled(
        &self,
        pair: &PairRuntime,
        source: Side,
    ) -> Result<bool, EngineError> {
        let cursor = self
            .store
            .load_cursor(pair.name(), source, EntityKind::Contact, STREAM)
            .await?;
        Ok(cursor.and_then(|c| c.watermark).is_none())
    }

    /// Whether a pass asked to reconcile as `reconcile` says does.
    async fn reconcile_wanted(
        &self,
        pair: &PairRuntime,
        reconcile: Reconcile,
    ) -> Result<bool, EngineError> {
        Ok(match reconcile {
            Reconcile::Always => true,
            Reconcile::Never => false,
            Reconcile::IfDue => self.reconcile_due(pair).await?,
        })
    }

    async fn reconcile_due(&self, pair: &PairRuntime) -> Result<bool, EngineError> {
        let interval = chrono::Duration::from_std(self.sync.reconcile_interval).unwrap_or_default();
        for source in Side::BOTH {
            let cursor = self
                .store
                .load_cursor(pair.name(), source, EntityKind::Contact, "")
                .await?;
            let last = cursor.and_then(|c| c.last_full_sync_at);
            if last.is_none_or(|at| crate::clock::now() - at >= interval) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One whole cycle: detection on every pair, then the outbox drained.
    /// `sync --once`, `backfill`, `plan`, and the demo's steps.
    ///
    /// `stop` ends it the way it ends the daemon ([`run_daemon`]): reading
    /// stops at once (what was not committed is read again next time), no
    /// new write starts, and the write in flight gets
    /// `sync.shutdown_grace`. What was done until then is reported; the
    /// caller sees the stop with [`Shutdown::is_stopping`].
    pub async fn cycle(
        &self,
        mode: Mode,
        reconcile: Reconcile,
        stop: &Shutdown,
    ) -> Result<Report, EngineError> {
        let mut report = Report::default();
        for pair in &self.pairs {
            let detected = stop
                .unless_stopped(self.detect_pair(pair, mode, reconcile))
                .await;
            let Some(pair_report) = detected else {
                tracing::info!(pair = %pair.name(), "stopping: detection interrupted; what it had not committed is read again at the next run");
                break;
            };
            report.pair(pair.name()).absorb(pair_report?);
        }
        if mode == Mode::Apply {
            if !stop.is_stopping() {
                let grace = self.sync.shutdown_grace;
                match stop.within_grace(grace, self.drain_outbox(stop)).await {
                    Some(written) => report.pair("*").stats.add(&written?),
                    None => tracing::warn!(
                        grace = ?grace,
                        "writes still in flight after the grace period; their leases expire and they are retried at the next start"
                    ),
                }
            }
            report.pairs.retain(|_, p| *p != PairReport::default());
        }
        Ok(report)
    }
}

/// How the daemon paces its polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    /// With webhooks on: (`trust_for`, `safety_poll_interval`). A side whose
    /// last verified webhook is younger than `trust_for` is polled only
    /// every `safety_poll_interval`; polling stays the safety net.
    pub webhooks: Option<(Duration, Duration)>,
}

/// The daemon without webhooks: see [`run_daemon`].
pub async fn run(engine: Engine, stop: Shutdown) -> Result<(), EngineError> {
    run_daemon(engine, stop, Schedule::default()).await
}

/// The daemon: runs until `stop`, then lets the writes in flight finish
/// within `sync.shutdown_grace`. Nothing is lost if it is killed instead:
/// watermarks only move with the changes they cover, and the outbox resumes
/// at the next start.
pub async fn run_daemon(
    engine: Engine,
    stop: Shutdown,
    schedule: Schedule,
) -> Result<(), EngineError> {
    let mut tasks = JoinSet::new();
    for pair in engine.pairs.clone() {
        let engine = engine.clone();
        let stop = stop.clone();
        tasks.spawn(async move { detection_loop(&engine, &pair, &stop, schedule).await });
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

/// One pair's detection: each side polled when its interval is up, a
/// reconciliation when due or requested (a delete webhook), until `stop`.
///
/// The reconciliation runs as a task of its own beside the polls: at a
/// real location's size it takes minutes to hours, and an edit must not
/// wait behind it. Polls take the pair's turn for a whole poll (a few
/// requests); the reconciliation takes it only for each page it decides
/// and commits (see `reconcile.rs`), so the two never decide one record at
/// once. One reconciliation at a time: a request arriving while one runs
/// waits for it to end, then starts the next (a delete announced after the
/// listing passed that record is not missed).
async fn detection_loop(
    engine: &Engine,
    pair: &Arc<PairRuntime>,
    stop: &Shutdown,
    schedule: Schedule,
) {
    let mut next_poll = [Instant::now(); 2];
    // The reconciliation in progress. Dropping the set (the loop's task
    // aborted at a stop) aborts it: what it had not committed is read
    // again by the next one.
    let mut reconciling: JoinSet<Result<PairReport, EngineError>> = JoinSet::new();
    // No reconciliation starts before this: one that failed (a side down,
    // bulk work held back for the day's budget) is not started again at
    // every poll, each time listing every link of the pair from the mirror.
    let mut reconcile_after = Instant::now();
    while !stop.is_stopping() {
        let now = Instant::now();
        let due: Vec<Side> = Side::BOTH
            .iter()
            .zip(next_poll)
            .filter(|(_, at)| *at <= now)
            .map(|(role, _)| *role)
            .collect();
        if !due.is_empty() {
            let result = {
                let _turn = pair.signals.turn.lock().await;
                engine
                    .detect_sides(pair, &due, Mode::Apply, Reconcile::Never)
                    .await
            };
            if result.is_ok() {
                // Readiness (`/readyz`) follows the first successful poll
                // of each side, not the end of a reconciliation.
                for role in &due {
                    pair.signals.polled(*role, crate::clock::now());
                }
            }
            outcome(pair, result, "detection failed; retrying at the next poll");
        }
        if reconciling.is_empty() && Instant::now() >= reconcile_after {
            start_reconciliation(engine, pair, &mut reconciling).await;
        }
        engine.record_health().await;
        let jitter = engine.sync.poll_jitter.as_millis() as u64;
        for (slot, role) in next_poll.iter_mut().zip(Side::BOTH) {
            if due.contains(&role) {
                let jitter = Duration::from_millis(rand::thread_rng().gen_range(0..=jitter));
                *slot = Instant::now() + interval(engine, pair, role, schedule) + jitter;
            }
        }
        let next = next_poll.iter().min().copied().unwrap_or_else(Instant::now);
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = pair.signals.woken() => {}
            Some(done) = reconciling.join_next(), if !reconciling.is_empty() => {
                pair.signals.reconciling(None);
                match done {
                    Ok(result) => {
                        if result.is_err() {
                            reconcile_after = Instant::now() + RECONCILE_RETRY;
                        }
                        outcome(pair, result, "reconciliation failed; retrying in a minute if still due");
                    }
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    Err(_) => {}
                }
            }
            _ = stop.stopped() => {}
        }
    }
}

/// How long after a failed reconciliation the next may start.
const RECONCILE_RETRY: Duration = Duration::from_secs(60);

/// Starts a reconciliation of `pair` in `reconciling` if one was requested
/// or is due.
async fn start_reconciliation(
    engine: &Engine,
    pair: &Arc<PairRuntime>,
    reconciling: &mut JoinSet<Result<PairReport, EngineError>>,
) {
    let due = if pair.signals.take_reconcile_request() {
        true
    } else {
        match engine.reconcile_due(pair).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(pair = %pair.name(), error = %error, "cannot tell whether a reconciliation is due; asking again at the next poll");
                false
            }
        }
    };
    if !due {
        return;
    }
    pair.signals.reconciling(Some(crate::clock::now()));
    let engine = engine.clone();
    let pair = Arc::clone(pair);
    reconciling.spawn(async move {
        let result = engine.reconcile(&pair, Mode::Apply).await;
        engine.record_health().await;
        result
    });
}

/// Logs what a pass did, or why it failed; a side refusing our
/// credentials is remembered for `/readyz`.
fn outcome(pair: &PairRuntime, result: Result<PairReport, EngineError>, failed: &'static str) {
    match result {
        Ok(report) => {
            if report.stats.planned() > 0 {
                tracing::info!(pair = %pair.name(), stats = ?report.stats, "changes detected");
            }
        }
        Err(error) => {
            if let EngineError::Side(ConnectorError::Auth { side, message }) = &error {
                for role in Side::BOTH {
                    if pair.connector(role).side() == side {
                        pair.signals.credentials_refused(role, message.clone());
                    }
                }
            }
            tracing::warn!(pair = %pair.name(), error = %error, "{failed}");
        }
    }
}

/// `role`'s polling interval now: longer while its webhooks arrive.
fn interval(engine: &Engine, pair: &PairRuntime, role: Side, schedule: Schedule) -> Duration {
    match schedule.webhooks {
        Some((trust_for, safety))
            if pair
                .signals
                .webhooks_healthy(role, trust_for, crate::clock::now()) =>
        {
            safety.max(engine.sync.poll_interval)
        }
        _ => engine.sync.poll_interval,
    }
}
