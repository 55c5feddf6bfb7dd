//! How a merge is settled: the rows a decision writes for it. Conflicts
//! are parked for an operator, each side that lacks the merged values gets
//! a planned write (or a dead letter when it cannot take them), and the
//! link records the new base once nothing is left to write.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::Decider;
use crate::domain::{EntityKind, PerSide, Side};
use crate::engine::merge::{merge, Merge, SettledField, SideState};
use crate::engine::outbox::{change_key, OutboxWrite, WritePayload};
use crate::engine::{snapshot, PairRuntime};
use crate::mapping::Canonical;
use crate::store::{
    Direction, JournalAction, LinkRef, LinkUpdate, LinkWrite, NewConflict, NewJournalEntry,
    OutboxOp,
};

/// The ids a decision's rows carry.
pub(super) struct Ids {
    pub source: Side,
    pub source_id: String,
    pub updated_at: DateTime<Utc>,
    pub other_id: Option<String>,
    /// The owning contact's id on each side (tasks, notes).
    pub parents: PerSide<Option<String>>,
}

impl Ids {
    /// The record's id on `side` (none while its create there is pending).
    fn id_on(&self, side: Side) -> Option<String> {
        if side == self.source {
            Some(self.source_id.clone())
        } else {
            self.other_id.clone()
        }
    }

    fn fill(&self, entry: &mut NewJournalEntry) {
        for side in Side::BOTH {
            entry.set_id(side, self.id_on(side));
        }
    }
}

/// A merge to settle, with what its decision saw.
pub(super) struct Settlement<'m> {
    pub link: LinkRef,
    /// The base snapshot the merge was made against (`None`: the sides
    /// never agreed yet).
    pub base: Option<&'m Canonical>,
    pub entity: EntityKind,
    pub merged: &'m Merge,
    /// Each side's canonical record as the decision saw it (none: not
    /// there, or not read).
    pub current: PerSide<Option<&'m Canonical>>,
    pub ids: Ids,
}

impl Decider<'_> {
    /// Turns a merge into link, outbox, conflict and journal rows.
    pub(super) fn settle(&mut self, settlement: &Settlement<'_>, update: LinkUpdate) {
        self.park_conflicts(settlement);
        self.journal_settled(settlement);
        let mut planned = false;
        for target in Side::BOTH {
            planned |= self.plan_write(settlement, target);
        }
        if !planned {
            // Nothing to write (the planned rows say what changed when
            // there is): the change is still part of the record's history.
            self.journal_seen(settlement);
        }
        self.record_base(settlement, planned, update);
    }

    /// Parks the merge's conflicts, with a `conflict_opened` journal row.
    fn park_conflicts(&mut self, s: &Settlement<'_>) {
        let conflicts = &s.merged.conflicts;
        for conflict in conflicts {
            self.report.stats.conflicts += 1;
            self.changeset.conflicts.push(NewConflict {
                pair: self.name().to_owned(),
                entity: s.entity,
                link: s.link,
                field: conflict.field.clone(),
                base_value: conflict.base.clone(),
                a_value: conflict.ghl.clone(),
                b_value: conflict.app.clone(),
            });
        }
        if !conflicts.is_empty() {
            let mut opened =
                NewJournalEntry::new(self.name(), s.entity, JournalAction::ConflictOpened);
            opened.link = Some(s.link);
            s.ids.fill(&mut opened);
            opened.fields = conflicts.iter().map(|c| c.field.clone()).collect();
            self.changeset.journal.push(opened);
        }
    }

    /// A `settled` journal row per field its policy settled: the write
    /// planned overwrites the losing side's edit, and this row is what
    /// keeps it (both values, their times, the policy and what was kept).
    /// Values are kept as the journal's other rows and the base snapshot
    /// keep them: in the mirror, shown by `history`.
    fn journal_settled(&mut self, s: &Settlement<'_>) {
        for settled in &s.merged.settled {
            let mut entry = NewJournalEntry::new(self.name(), s.entity, JournalAction::Settled);
            entry.link = Some(s.link);
            s.ids.fill(&mut entry);
            entry.fields = vec![settled.field.clone()];
            entry.direction = settled.winner.map(|w| Direction::towards(w.other()));
            entry.detail = Some(settled_detail(settled, |side| {
                self.pair.connector(side).side().to_owned()
            }));
            self.changeset.journal.push(entry);
        }
    }

    /// Plans the write that brings `target` to the merged values, when it
    /// lacks some and its side takes the write; whether one was planned.
    fn plan_write(&mut self, s: &Settlement<'_>, target: Side) -> bool {
        let writes = s.merged.writes_to(target);
        if writes.is_empty() {
            return false;
        }
        let Some(op) = self.write_op(s, target) else {
            return false;
        };
        // Mapped now so that a record whose values the target cannot
        // take is dead-lettered here; the writer maps them again from
        // the payload when the write is due.
        if let Err(error) = self.pair.settings.map.to_native(s.entity, target, writes) {
            self.unwritable(target, s.entity, &s.ids.source_id, writes, error);
            return false;
        }
        let ids = &s.ids;
        let other = target.other();
        let other_writes = s.merged.writes_to(other);
        let payload = WritePayload {
            fields: Map::new(),
            snapshot: Some(s.merged.merged.clone()),
            changed: writes.keys().cloned().collect(),
            tag: None,
            expect: held(s.current[target], writes),
            other_writes: if self.write_op(s, other).is_some() {
                other_writes.keys().cloned().collect()
            } else {
                Vec::new()
            },
        };
        self.enqueue(OutboxWrite {
            pair: self.name(),
            entity: s.entity,
            link: s.link,
            target,
            op,
            key: change_key(
                self.name(),
                s.entity,
                ids.source,
                &ids.source_id,
                ids.updated_at,
                op,
                target,
            ),
            target_id: ids.id_on(target),
            // The record on the other side: for the write back to the side
            // whose change was decided, that is not `ids.source_id` (the
            // target's own id), and the journal row would name it twice.
            source_id: ids.id_on(target.other()),
            parent_id: ids.parents[target].clone(),
            payload: &payload,
            note: None,
        });
        true
    }

    /// The write that brings `target` to the merged values: the create of
    /// a record new there, else an update; `None` when its side does not
    /// take that write.
    fn write_op(&self, s: &Settlement<'_>, target: Side) -> Option<OutboxOp> {
        let target_exists = target == s.ids.source || s.ids.other_id.is_some();
        let caps = self.pair.connector(target).capabilities().of(s.entity);
        let creating = !target_exists && s.base.is_none() && matches!(s.link, LinkRef::New(_));
        let (op, allowed) = if creating {
            (OutboxOp::Create, caps.create)
        } else {
            (OutboxOp::Update, caps.update)
        };
        allowed.then_some(op)
    }

    /// A `seen` journal row: the change, with nothing to write.
    fn journal_seen(&mut self, s: &Settlement<'_>) {
        let mut seen = NewJournalEntry::new(self.name(), s.entity, JournalAction::Seen);
        seen.link = Some(s.link);
        s.ids.fill(&mut seen);
        seen.fields = s.merged.changed.clone();
        seen.direction = Some(Direction::towards(s.ids.source.other()));
        self.changeset.journal.push(seen);
    }

    /// The link's part: an existing link takes `update`, with the merged
    /// base when nothing is left to write; a link inserted by this decision
    /// with nothing to write gets the merged base.
    fn record_base(&mut self, s: &Settlement<'_>, planned: bool, mut update: LinkUpdate) {
        let merged = &s.merged.merged;
        match s.link {
            LinkRef::Existing(_) => {
                if !planned && s.base != Some(merged) {
                    update.snapshot = Some(snapshot::of(merged));
                }
                self.changeset.links.push(LinkWrite::Update(update));
            }
            LinkRef::New(local_ref) => {
                if !planned {
                    // Linked by match key with nothing to write: the
                    // sides agree now.
                    if let Some(LinkWrite::Insert { link, .. }) =
                        self.changeset.links.iter_mut().rev().find(
                            |w| matches!(w, LinkWrite::Insert { local_ref: r, .. } if *r == local_ref),
                        )
                    {
                        link.snapshot = snapshot::of(merged);
                    }
                }
            }
        }
    }
}

/// How a `settled` row reads, e.g. `newest kept app "Ann" (changed
/// 2026-01-02T10:00:01.000Z) over ghl "Anne" (changed
/// 2026-01-02T10:00:00.000Z)`; `name` gives a side's configured name.
fn settled_detail(settled: &SettledField, name: impl Fn(Side) -> String) -> String {
    let value = |v: &Option<Value>| v.as_ref().map_or("(cleared)".to_owned(), Value::to_string);
    let side = |side: Side| {
        let at = settled.times[side].map_or("-".to_owned(), |t| {
            t.to_rfc3339_opts(SecondsFormat::Millis, true)
        });
        format!(
            "{} {} (changed {at})",
            name(side),
            value(&settled.values[side])
        )
    };
    let policy = settled.policy.as_str();
    match settled.winner {
        Some(winner) => format!(
            "{policy} kept {} over {}",
            side(winner),
            side(winner.other())
        ),
        None => format!(
            "{policy} of {} and {} kept {}",
            side(Side::Ghl),
            side(Side::App),
            value(&settled.merged)
        ),
    }
}

/// What the target held of the fields a write sets, when the decision saw
/// it: the write's `expect` (see [`WritePayload::expect`]).
fn held(current: Option<&Canonical>, writes: &Canonical) -> Option<Canonical> {
    current.map(|now| {
        writes
            .keys()
            .filter_map(|f| Some((f.clone(), now.get(f)?.clone())))
            .collect()
    })
}

/// [`merge`] of the record read from `source` with the other side's (if
/// there is one there) against `base`.
pub(super) fn merge_sides(
    pair: &PairRuntime,
    entity: EntityKind,
    base: Option<&Canonical>,
    source: (Side, &Canonical, DateTime<Utc>),
    other: Option<(&Canonical, DateTime<Utc>)>,
) -> Merge {
    let (side, canonical, updated_at) = source;
    let this = Some(SideState {
        canonical,
        updated_at,
    });
    let that = other.map(|(canonical, updated_at)| SideState {
        canonical,
        updated_at,
    });
    merge(
        &pair.settings.map,
        entity,
        pair.settings.default_policy,
        base,
        super::from_source(side, this, that),
    )
}
