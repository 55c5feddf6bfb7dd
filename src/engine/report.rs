//! What a pass saw and did, for command output, logs and benchmarks.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::EntityKind;
use crate::store::OutboxOp;

/// Counters of one pair (or of a whole run, summed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Records read from either side.
    pub read: u64,
    /// Re-reads of a version already processed (watermark overlap).
    pub unchanged: u64,
    /// Changed records whose content equals the base: our own writes
    /// coming back, or edits that changed nothing mapped.
    pub echoes: u64,
    /// GHL contacts the pair's filter leaves out.
    pub filtered: u64,
    /// Tasks or notes whose contact is not synced.
    pub orphans: u64,
    /// New records linked to an existing record on the other side by a
    /// match key instead of being created there.
    pub linked: u64,
    pub planned_creates: u64,
    pub planned_updates: u64,
    pub planned_deletes: u64,
    /// Deletes a mass-delete guard refused to propagate.
    pub deletes_held: u64,
    pub conflicts: u64,
    pub dead_letters: u64,
    /// Writes applied by the writer.
    pub applied: u64,
    /// Write attempts that failed and will be retried.
    pub retried: u64,
}

impl Stats {
    pub fn add(&mut self, other: &Stats) {
        self.read += other.read;
        self.unchanged += other.unchanged;
        self.echoes += other.echoes;
        self.filtered += other.filtered;
        self.orphans += other.orphans;
        self.linked += other.linked;
        self.planned_creates += other.planned_creates;
        self.planned_updates += other.planned_updates;
        self.planned_deletes += other.planned_deletes;
        self.deletes_held += other.deletes_held;
        self.conflicts += other.conflicts;
        self.dead_letters += other.dead_letters;
        self.applied += other.applied;
        self.retried += other.retried;
    }

    pub fn planned(&self) -> u64 {
        self.planned_creates + self.planned_updates + self.planned_deletes
    }
}

/// A write a pass decided on: what `plan` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedWrite {
    pub pair: String,
    /// The configured name of the side written to.
    pub side: String,
    pub entity: EntityKind,
    pub op: OutboxOp,
    /// The record's id there (none for a create).
    pub target_id: Option<String>,
    /// The id of the record on the side the change came from.
    pub source_id: Option<String>,
    /// Canonical field names written, with their new values.
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// One pair's share of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PairReport {
    pub stats: Stats,
    /// Only filled in plan mode.
    pub planned: Vec<PlannedWrite>,
}

impl PairReport {
    pub fn absorb(&mut self, other: PairReport) {
        self.stats.add(&other.stats);
        self.planned.extend(other.planned);
    }

    /// Drops the repeats of a planned write, with their counts, so a plan
    /// counts each write once, as the sync it previews applies it. A plan
    /// commits nothing, so later decisions of the same pass do not see the
    /// earlier ones: a reconciliation after the polls decides again the
    /// records they decided, and a person new on both sides (linked by
    /// match key) is decided by both sides' polls, each planning the
    /// writes to both records. A write to an existing record is the same
    /// write whichever side's record it was decided from (the merge of the
    /// two is the same), so it is known by its target; a create, which has
    /// no target yet, by the record it copies.
    pub(super) fn dedup_planned(&mut self) {
        let mut seen = std::collections::HashSet::new();
        let stats = &mut self.stats;
        self.planned.retain(|w| {
            let key = (
                w.side.clone(),
                w.entity,
                w.op,
                w.target_id.clone(),
                w.target_id.is_none().then(|| w.source_id.clone()),
            );
            if seen.insert(key) {
                return true;
            }
            let count = match w.op {
                OutboxOp::Create => &mut stats.planned_creates,
                OutboxOp::Delete => &mut stats.planned_deletes,
                _ => &mut stats.planned_updates,
            };
            *count = count.saturating_sub(1);
            false
        });
    }
}

/// What a pass did, per pair.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub pairs: BTreeMap<String, PairReport>,
}

impl Report {
    pub fn pair(&mut self, name: &str) -> &mut PairReport {
        self.pairs.entry(name.to_owned()).or_default()
    }

    pub fn totals(&self) -> Stats {
        let mut total = Stats::default();
        for pair in self.pairs.values() {
            total.add(&pair.stats);
        }
        total
    }

    pub fn absorb(&mut self, other: Report) {
        for (name, pair) in other.pairs {
            self.pair(&name).absorb(pair);
        }
    }
}
