//! `[sync]`: how often and how carefully the engine polls, reconciles and
//! writes. One section for every pair; the defaults suit GHL's limits.

use std::time::Duration;

use super::reader::{Got, Table};

/// The engine's schedule and safety margins.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    /// Time between two change polls of one (pair, side, entity).
    pub poll_interval: Duration,
    /// Up to this much is added at random to each interval, so many pairs
    /// and replicas do not poll in lockstep.
    pub poll_jitter: Duration,
    /// Each poll re-reads this far below the watermark: a record saved in
    /// the same instant as the last one seen, or indexed late by the side's
    /// search, is still found. Re-reads are recognised and skipped.
    pub overlap: Duration,
    /// Each poll stops this far before now: records saved "now" may not be
    /// searchable yet, and will be read by the next poll instead.
    pub lag: Duration,
    /// Time between two full reconciliations (list everything, compare with
    /// the mirror): how deletes and anything missed are found.
    pub reconcile_interval: Duration,
    /// A reconciliation that finds more than this share (percent) of a
    /// side's linked records gone propagates none of those deletes and logs
    /// an alert instead: a wiped or mis-pointed side must not empty the
    /// other one.
    pub mass_delete_percent: u64,
    /// ... unless fewer than this many records are gone (small mirrors).
    pub mass_delete_min: u64,
    /// Outbox items a writer takes at once.
    pub writer_batch: u32,
    /// How long a writer holds its items before another may take them.
    pub writer_lease: Duration,
    /// Attempts at one write before it becomes a dead letter.
    pub max_attempts: u32,
    /// On SIGTERM/SIGINT: how long writes in flight may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            poll_interval: Duration::from_secs(30),
            poll_jitter: Duration::from_secs(3),
            overlap: Duration::from_secs(60),
            lag: Duration::from_secs(2),
            reconcile_interval: Duration::from_secs(6 * 3600),
            mass_delete_percent: 20,
            mass_delete_min: 10,
            writer_batch: 50,
            writer_lease: Duration::from_secs(120),
            max_attempts: 8,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

pub(crate) fn read_sync(root: &mut Table<'_>) -> Option<SyncSettings> {
    let mut table = match root.table("sync") {
        Got::Value(table) => table,
        Got::Absent => return Some(SyncSettings::default()),
        Got::Invalid => return None,
    };
    let defaults = SyncSettings::default();
    let poll_interval = table
        .duration("poll_interval")
        .with_default(|| defaults.poll_interval);
    let poll_jitter = table
        .zero_or_duration("poll_jitter")
        .with_default(|| defaults.poll_jitter);
    let overlap = table
        .zero_or_duration("overlap")
        .with_default(|| defaults.overlap);
    let lag = table.zero_or_duration("lag").with_default(|| defaults.lag);
    let reconcile_interval = table
        .duration("reconcile_interval")
        .with_default(|| defaults.reconcile_interval);
    let mass_delete_percent = table
        .integer_in("mass_delete_percent", 1, 100)
        .with_default(|| defaults.mass_delete_percent);
    let mass_delete_min = table
        .integer_in("mass_delete_min", 0, 1_000_000)
        .with_default(|| defaults.mass_delete_min);
    let writer_batch = table
        .integer_in("writer_batch", 1, 1000)
        .map(|n| n as u32)
        .with_default(|| defaults.writer_batch);
    let writer_lease = table
        .duration("writer_lease")
        .with_default(|| defaults.writer_lease);
    let max_attempts = table
        .integer_in("max_attempts", 1, 100)
        .map(|n| n as u32)
        .with_default(|| defaults.max_attempts);
    let shutdown_grace = table
        .duration("shutdown_grace")
        .with_default(|| defaults.shutdown_grace);
    table.finish();
    Some(SyncSettings {
        poll_interval: poll_interval?,
        poll_jitter: poll_jitter?,
        overlap: overlap?,
        lag: lag?,
        reconcile_interval: reconcile_interval?,
        mass_delete_percent: mass_delete_percent?,
        mass_delete_min: mass_delete_min?,
        writer_batch: writer_batch?,
        writer_lease: writer_lease?,
        max_attempts: max_attempts?,
        shutdown_grace: shutdown_grace?,
    })
}
