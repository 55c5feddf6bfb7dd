//! Three-way merge of one record: the base snapshot both sides last agreed
//! on, and each side's current canonical form.
//!
//! A field changed on one side only is taken from that side. A field
//! changed on both sides to the same value has converged. A field changed
//! on both sides to different values is settled by its policy (or parked,
//! for `manual`). A value equal to the base is no change at all, which is
//! what makes our own writes coming back (echoes) no-ops. Writes are
//! planned only where a side's value differs from the merged one, and only
//! toward sides the field flows to.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{EntityKind, PerSide, Side};
use crate::mapping::{Canonical, FieldMap, PairMap, Policy};

/// One side's current state of a record.
#[derive(Debug, Clone, Copy)]
pub struct SideState<'a> {
    pub canonical: &'a Canonical,
    pub updated_at: DateTime<Utc>,
}

/// A field edited on both sides that its `manual` policy parks.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldConflict {
    pub field: String,
    pub base: Option<Value>,
    pub ghl: Option<Value>,
    pub app: Option<Value>,
}

/// A field edited on both sides to different values that its policy
/// settled: what each side held and when, so the value that lost is never
/// overwritten without a trace (the decision journals it as `settled`).
#[derive(Debug, Clone, PartialEq)]
pub struct SettledField {
    pub field: String,
    pub policy: Policy,
    /// Each side's value (`None`: the side cleared the field).
    pub values: PerSide<Option<Value>>,
    /// Each side's `updated_at` as the merge weighed it.
    pub times: PerSide<Option<DateTime<Utc>>>,
    /// The side whose value was kept; `None` for `union`, which keeps a
    /// combination of both.
    pub winner: Option<Side>,
    /// The value kept.
    pub merged: Option<Value>,
}

/// What a record should become, and the writes that get it there.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Merge {
    /// The new base snapshot once the writes succeed. A parked field keeps
    /// its base value, so it stays in conflict until resolved.
    pub merged: Canonical,
    /// Canonical changes to write to each side (`Null` clears a field).
    pub writes: PerSide<Canonical>,
    pub conflicts: Vec<FieldConflict>,
    /// Fields edited on both sides that a policy settled.
    pub settled: Vec<SettledField>,
    /// Fields whose merged value differs from the base, for the journal.
    pub changed: Vec<String>,
}

impl Merge {
    /// Nothing to write and nothing parked: an echo or an unchanged record.
    pub fn is_noop(&self) -> bool {
        self.writes.iter().all(|(_, w)| w.is_empty()) && self.conflicts.is_empty()
    }

    pub fn writes_to(&self, side: Side) -> &Canonical {
        &self.writes[side]
    }
}

/// Merges one record of `entity`. `base` is `None` for a record never
/// synced (then every value a side holds counts as a change); a side's
/// state is `None` when the record does not exist there yet (it will be
/// created with the merged values).
pub fn merge(
    map: &PairMap,
    entity: EntityKind,
    default_policy: Policy,
    base: Option<&Canonical>,
    sides: PerSide<Option<SideState<'_>>>,
) -> Merge {
    let PerSide { ghl, app } = sides;
    let empty = Canonical::new();
    let base = base.unwrap_or(&empty);
    let mut out = Merge::default();
    for field in map.fields_of(entity) {
        let name = field.name.as_str();
        let b = base.get(name);
        // A side the field does not flow from cannot change it.
        let g = seen(field, ghl, Side::Ghl);
        let a = seen(field, app, Side::App);
        let g_changed = g.is_some_and(|g| g != b);
        let a_changed = a.is_some_and(|a| a != b);

        let merged: Option<Value> = match (g_changed, a_changed) {
            (false, false) => b.cloned(),
            (true, false) => g.flatten().cloned(),
            (false, true) => a.flatten().cloned(),
            (true, true) => {
                let (g, a) = (g.flatten(), a.flatten());
                if g == a {
                    g.cloned()
                } else {
                    let policy = field.policy.unwrap_or(default_policy);
                    let times = PerSide::new(ghl.map(|s| s.updated_at), app.map(|s| s.updated_at));
                    let winner = match policy {
                        Policy::GhlWins => Some(Side::Ghl),
                        Policy::AppWins => Some(Side::App),
                        // A tie goes to GHL, so the outcome is deterministic.
                        Policy::Newest if times.app > times.ghl => Some(Side::App),
                        Policy::Newest => Some(Side::Ghl),
                        Policy::Union => None,
                        Policy::Manual => {
                            out.conflicts.push(FieldConflict {
                                field: name.to_owned(),
                                base: b.cloned(),
                                ghl: g.cloned(),
                                app: a.cloned(),
                            });
                            if let Some(b) = b {
                                out.merged.insert(name.to_owned(), b.clone());
                            }
                            continue;
                        }
                    };
                    let values = PerSide::new(g.cloned(), a.cloned());
                    let merged = match winner {
                        Some(side) => values[side].clone(),
                        None => Some(union(b, g, a)),
                    };
                    out.settled.push(SettledField {
                        field: name.to_owned(),
                        policy,
                        values,
                        times,
                        winner,
                        merged: merged.clone(),
                    });
                    merged
                }
            }
        };
        if merged.as_ref() != b {
            out.changed.push(name.to_owned());
        }
        for side in Side::BOTH {
            plan_write(
                &mut out.writes[side],
                field,
                side,
                sides[side],
                merged.as_ref(),
            );
        }
        if let Some(value) = merged {
            out.merged.insert(name.to_owned(), value);
        }
    }
    out
}

/// A side's value of a field, when the field flows from that side and the
/// record exists there (`Some(None)`: it exists, without a value).
fn seen<'a>(
    field: &FieldMap,
    side: Option<SideState<'a>>,
    role: Side,
) -> Option<Option<&'a Value>> {
    match side {
        Some(state) if field.flow.reads_from(role) => Some(state.canonical.get(&field.name)),
        _ => None,
    }
}

/// Plans a write of `merged` to `role` when the field flows there and the
/// side does not already hold it. A side without the record gets every
/// value it should have (it is being created).
fn plan_write(
    writes: &mut Canonical,
    field: &FieldMap,
    role: Side,
    side: Option<SideState<'_>>,
    merged: Option<&Value>,
) {
    if !field.flow.writes_to(role) {
        return;
    }
    let current = side.and_then(|s| s.canonical.get(&field.name));
    match (merged, side) {
        (Some(value), _) if current != Some(value) => {
            writes.insert(field.name.clone(), value.clone());
        }
        (None, Some(_)) if current.is_some() => {
            writes.insert(field.name.clone(), Value::Null);
        }
        _ => {}
    }
}

/// The union policy for lists: what both kept, plus what either added;
/// an item removed on either side stays removed.
fn union(base: Option<&Value>, ghl: Option<&Value>, app: Option<&Value>) -> Value {
    let items = |value: Option<&Value>| -> Vec<Value> {
        match value {
            Some(Value::Array(items)) => items.clone(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        }
    };
    let (base, ghl, app) = (items(base), items(ghl), items(app));
    let mut out: Vec<Value> = Vec::new();
    for item in ghl.iter().chain(app.iter()) {
        let added = !base.contains(item);
        let kept_by_both = ghl.contains(item) && app.contains(item);
        if (added || kept_by_both) && !out.contains(item) {
            out.push(item.clone());
        }
    }
    out.sort_by_key(|v| v.to_string());
    Value::Array(out)
}

#[cfg(test)]
mod tests;
