//! The checker: once the users stop and the faults heal and the daemon has
//! caught up, the invariants of the design brief must hold of what the two
//! sides really hold, read from the sides themselves, with the mirror only
//! telling which record is whose counterpart.
//!
//! * nothing lost, nothing duplicated: every live record of either side
//!   has one live counterpart on the other, holding the same mapped values
//!   (under the pair's field map, the production mapping code), and no
//!   person exists twice on a side;
//! * no clobber: every field holds the last value a user set on either
//!   record, or the journal says which policy settled it otherwise; a tag
//!   a user added last is there;
//! * the exceptions are named: a record an open dead letter names, a field
//!   an open conflict holds.
//!
//! "No echo" (a further cycle plans nothing) and the budget are checked by
//! the run (`run.rs`), which drives the cycles.

use std::collections::{BTreeMap, BTreeSet};

use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::mapping::PairMap;
use ghl_sync::store::{JournalAction, Link, Store, StoreError};
use serde_json::Value;

use crate::model::{SideModel, Stored};
use crate::workload::{Ledger, LAST_NAME, TAGS};

/// What the checker reads of the world once the run is over: the sides,
/// what users did, and what the read-write window took.
#[derive(Debug, Clone)]
pub struct Observed {
    pub sides: ghl_sync::domain::PerSide<SideModel>,
    pub workload: crate::workload::Workload,
    pub window: crate::window::Window,
    /// Deletes the mass-delete guard held in the last reconciliation.
    pub deletes_held: u64,
}

impl Observed {
    pub fn of(state: &crate::world::State) -> Self {
        Observed {
            sides: state.sides.clone(),
            workload: state.workload.clone(),
            window: state.window.clone(),
            deletes_held: state.deletes_held,
        }
    }
}

/// The live contacts whose linked counterpart is gone, when the last
/// reconciliation's mass-delete guard held at least that many deletes
/// (`sync.mass_delete_percent`, `mass_delete_min`): the daemon keeps them
/// on purpose, raises the `mass_delete_held` alert, and waits for the
/// operator. Empty when the guard held nothing, so a delete that was
/// simply never propagated stays a violation.
pub async fn held_by_guard(
    state: &Observed,
    store: &Store,
    pair: &str,
) -> Result<BTreeSet<String>, StoreError> {
    if state.deletes_held == 0 {
        return Ok(BTreeSet::new());
    }
    let mut held = BTreeSet::new();
    for link in store.all_links(pair, EntityKind::Contact).await? {
        if link.deleted_at.is_some() {
            continue;
        }
        for role in Side::BOTH {
            let (Some(id), Some(other)) = (
                link.side(role).id.as_deref(),
                link.side(role.other()).id.as_deref(),
            ) else {
                continue;
            };
            if state.sides[role].get(EntityKind::Contact, id).is_some()
                && state.sides[role.other()]
                    .get(EntityKind::Contact, other)
                    .is_none()
            {
                held.insert(id.to_owned());
            }
        }
    }
    if held.len() as u64 > state.deletes_held {
        // More gone than the guard held: not the guard's doing.
        return Ok(BTreeSet::new());
    }
    Ok(held)
}

const ENTITIES: [EntityKind; 3] = [EntityKind::Contact, EntityKind::Task, EntityKind::Note];

/// What the mirror says is excused: records named by open dead letters,
/// fields held by open conflicts.
struct Excused {
    records: BTreeSet<String>,
    fields: BTreeSet<(i64, String)>,
}

async fn excused(store: &Store, pair: &str) -> Result<Excused, StoreError> {
    let mut records = BTreeSet::new();
    for letter in store
        .dead_letters(Some(ghl_sync::store::DeadLetterStatus::Open))
        .await?
    {
        records.extend(letter.record_id.clone());
        let item = match letter.outbox_id {
            Some(id) => store.outbox_item(id).await?,
            None => None,
        };
        if let Some(link) = item.and_then(|i| i.link_id) {
            if let Some(link) = store.link_by_id(link).await? {
                records.extend(link.a.id.clone());
                records.extend(link.b.id.clone());
            }
        }
        // A dead letter names the other record it is about in its reason
        // (the record a duplicate refusal pointed at).
        for word in letter.reason.split(|c: char| !c.is_ascii_alphanumeric()) {
            if word.len() > 1
                && (word.starts_with('g') || word.starts_with('a'))
                && word[1..].chars().all(|c| c.is_ascii_digit())
            {
                records.insert(word.to_owned());
            }
        }
    }
    let fields = store
        .open_conflicts(Some(pair))
        .await?
        .into_iter()
        .map(|c| (c.link_id, c.field))
        .collect();
    Ok(Excused { records, fields })
}

/// What the change feeds alone must have delivered, checked before any
/// final reconciliation: every live contact (creates and edits are in the
/// feeds) is linked, and linked live contacts hold the same values. A
/// watermark moved past changes that were never decided fails here, even
/// though a reconciliation would later repair it. Deletes and GHL's tasks
/// and notes are left to the full check: only reconciliation is sure to
/// find them. A write withdrawn, adopted or overtaken is no exception: its
/// source's re-decision is kept in the mirror until it is taken
/// (`store/redecisions.rs`).
pub async fn feeds_delivered(
    state: &Observed,
    store: &Store,
    pair: &str,
    map: &PairMap,
) -> Result<Vec<String>, StoreError> {
    let excused = excused(store, pair).await?;
    let links: Vec<Link> = store
        .all_links(pair, EntityKind::Contact)
        .await?
        .into_iter()
        .filter(|l| l.deleted_at.is_none())
        .collect();
    let mut violations = Vec::new();
    for role in Side::BOTH {
        for (id, stored) in state.sides[role].live(EntityKind::Contact) {
            if excused.records.contains(id) {
                continue;
            }
            let Some(link) = links
                .iter()
                .find(|l| l.side(role).id.as_deref() == Some(id.as_str()))
            else {
                violations.push(format!(
                    "contact {id} on {} was not synced by the change feeds (only a reconciliation could find it): {}",
                    role.name(),
                    shown(stored)
                ));
                continue;
            };
            let other_id = link.side(role.other()).id.as_deref();
            let counterpart =
                other_id.and_then(|o| state.sides[role.other()].get(EntityKind::Contact, o));
            let (Some(other_id), Some(counterpart), Side::Ghl) = (other_id, counterpart, role)
            else {
                continue;
            };
            let records = Records {
                entity: EntityKind::Contact,
                link,
                ghl: (id, stored),
                app: (other_id, counterpart),
            };
            // A field a user edit was lost from in the read-write window
            // differs until a later edit or reconciliation.
            let windowed = |name: &str| {
                state.window.losses.iter().any(|(_, _, lost, field, _)| {
                    (lost == id || lost == other_id)
                        && (field == name || (name == TAGS.canonical && field.starts_with("tags:")))
                })
            };
            let differ: Vec<(String, String)> = compare(&records, map, &excused)
                .into_iter()
                .filter(|(name, _)| !windowed(name))
                .collect();
            violations.extend(
                differ
                    .into_iter()
                    .map(|(_, d)| format!("{d} (the change feeds did not deliver it)")),
            );
        }
    }
    Ok(violations)
}

/// Every violation of the invariants, each one sentence naming the
/// records.
pub async fn check(
    state: &Observed,
    store: &Store,
    pair: &str,
    map: &PairMap,
) -> Result<Vec<String>, StoreError> {
    let excused = excused(store, pair).await?;
    let held = held_by_guard(state, store, pair).await?;
    let mut violations = Vec::new();
    let contacts: BTreeMap<String, String> = store
        .all_links(pair, EntityKind::Contact)
        .await?
        .into_iter()
        .filter(|l| l.deleted_at.is_none())
        .filter_map(|l| Some((l.a.id?, l.b.id?)))
        .collect();
    for entity in ENTITIES {
        let links: Vec<Link> = store
            .all_links(pair, entity)
            .await?
            .into_iter()
            .filter(|l| l.deleted_at.is_none())
            .collect();
        let by_id: BTreeMap<(Side, &str), &Link> = links
            .iter()
            .flat_map(|l| {
                Side::BOTH
                    .into_iter()
                    .filter_map(move |s| Some(((s, l.side(s).id.as_deref()?), l)))
            })
            .collect();
        for role in Side::BOTH {
            let model = &state.sides[role];
            for (id, stored) in model.live(entity) {
                // A task or note of a contact a dead letter or the
                // mass-delete guard holds back is held back with it.
                let parent_held = stored
                    .parent
                    .as_ref()
                    .is_some_and(|p| excused.records.contains(p) || held.contains(p));
                if excused.records.contains(id) || held.contains(id) || parent_held {
                    continue;
                }
                let Some(link) = by_id.get(&(role, id.as_str())) else {
                    violations.push(format!(
                        "{entity} {id} on {} has no counterpart: never synced ({})",
                        role.name(),
                        shown(stored)
                    ));
                    continue;
                };
                let other = role.other();
                let Some(other_id) = link.side(other).id.as_deref() else {
                    violations.push(format!(
                        "{entity} {id} on {role}: its counterpart on {other} was never created",
                        role = role.name(),
                        other = other.name()
                    ));
                    continue;
                };
                let Some(counterpart) = state.sides[other].get(entity, other_id) else {
                    if !excused.records.contains(other_id) {
                        violations.push(format!("{entity} {id} on {role} lives, its counterpart {other_id} on {other} is gone", role = role.name(), other = other.name()));
                    }
                    continue;
                };
                if role == Side::Ghl {
                    let pair_records = Records {
                        entity,
                        link,
                        ghl: (id, stored),
                        app: (other_id, counterpart),
                    };
                    violations.extend(
                        compare(&pair_records, map, &excused)
                            .into_iter()
                            .map(|(_, d)| d),
                    );
                    if entity != EntityKind::Contact {
                        same_parent(&contacts, &pair_records, &mut violations);
                    } else {
                        tags_kept(state, &pair_records, map, &mut violations);
                    }
                    accounted(state, store, &pair_records, map, &excused, &mut violations).await?;
                }
            }
        }
    }
    duplicates(state, &excused, &mut violations);
    Ok(violations)
}

/// A linked pair of live records.
struct Records<'a> {
    entity: EntityKind,
    link: &'a Link,
    ghl: (&'a str, &'a Stored),
    app: (&'a str, &'a Stored),
}

impl Records<'_> {
    fn of(&self, role: Side) -> (&str, &Stored) {
        match role {
            Side::Ghl => self.ghl,
            Side::App => self.app,
        }
    }

    fn canonical(&self, map: &PairMap, role: Side) -> BTreeMap<String, Value> {
        let (_, stored) = self.of(role);
        map.to_canonical(self.entity, role, &stored.fields)
            .map(|c| c.into_iter().collect())
            .unwrap_or_default()
    }
}

fn shown(stored: &Stored) -> String {
    Value::Object(stored.fields.clone()).to_string()
}

/// Both records hold the same mapped values: each field they differ in
/// (outside an open conflict), with a sentence naming it.
fn compare(records: &Records<'_>, map: &PairMap, excused: &Excused) -> Vec<(String, String)> {
    let (ghl, app) = (
        records.canonical(map, Side::Ghl),
        records.canonical(map, Side::App),
    );
    let names: BTreeSet<&String> = ghl.keys().chain(app.keys()).collect();
    let mut differ = Vec::new();
    for name in names {
        let (g, a) = (ghl.get(name), app.get(name));
        if g != a && !excused.fields.contains(&(records.link.id, name.clone())) {
            differ.push((
                name.clone(),
                format!(
                    "{} {} (ghl) / {} (app): `{name}` differs: {} vs {}",
                    records.entity,
                    records.ghl.0,
                    records.app.0,
                    g.map_or("absent".into(), Value::to_string),
                    a.map_or("absent".into(), Value::to_string),
                ),
            ));
        }
    }
    differ
}

/// A task or note hangs under the counterparts of each other's contacts.
fn same_parent(
    contacts: &BTreeMap<String, String>,
    records: &Records<'_>,
    violations: &mut Vec<String>,
) {
    let (ghl_parent, app_parent) = (&records.ghl.1.parent, &records.app.1.parent);
    let expected = ghl_parent.as_ref().and_then(|p| contacts.get(p));
    if expected != app_parent.as_ref() {
        violations.push(format!(
            "{} {} (ghl) / {} (app): under contact {} on ghl, whose counterpart is {}, but under {} on app",
            records.entity,
            records.ghl.0,
            records.app.0,
            ghl_parent.as_deref().unwrap_or("-"),
            expected.map_or("-", String::as_str),
            app_parent.as_deref().unwrap_or("-"),
        ));
    }
}

/// Every field holds the last value a user set on either record, or the
/// journal says which policy settled it.
async fn accounted(
    state: &Observed,
    store: &Store,
    records: &Records<'_>,
    map: &PairMap,
    excused: &Excused,
    violations: &mut Vec<String>,
) -> Result<(), StoreError> {
    let ledger = &state.workload.ledger;
    let finals = records.canonical(map, Side::Ghl);
    let mut journal = None;
    for field in map.fields_of(records.entity) {
        let name = field.name.as_str();
        if name == TAGS.canonical || excused.fields.contains(&(records.link.id, name.to_owned())) {
            continue;
        }
        let last = Side::BOTH
            .into_iter()
            .filter_map(|role| {
                let key = (
                    role,
                    records.entity,
                    records.of(role).0.to_owned(),
                    name.to_owned(),
                );
                ledger.values.get(&key).map(|v| (role, v))
            })
            .max_by_key(|(_, (seq, _))| *seq);
        let Some((role, (seq, value))) = last else {
            continue;
        };
        if finals.get(name) == Some(value) {
            continue;
        }
        let key = (
            role,
            records.entity,
            records.of(role).0.to_owned(),
            name.to_owned(),
            *seq,
        );
        if state.window.losses.contains(&key) {
            // Overwritten between the daemon's last read and its write:
            // no side offers a conditional write (`window.rs`).
            continue;
        }
        let journal = match &mut journal {
            Some(journal) => journal,
            None => journal.insert(store.journal_for_link(records.link.id, 10_000).await?),
        };
        let settled = journal
            .iter()
            .any(|e| e.action == JournalAction::Settled && e.fields.iter().any(|f| f == name));
        if !settled {
            violations.push(format!(
                "{} {} (ghl) / {} (app): `{name}` holds {}, but the last value a user set is {value} (on {role}, operation {seq}), and no policy settled it",
                records.entity,
                records.ghl.0,
                records.app.0,
                finals.get(name).map_or("nothing".into(), Value::to_string),
                role = role.name(),
            ));
        }
    }
    Ok(())
}

/// A tag a user added last (on either record) is there.
fn tags_kept(state: &Observed, records: &Records<'_>, map: &PairMap, violations: &mut Vec<String>) {
    let ledger: &Ledger = &state.workload.ledger;
    let finals = records.canonical(map, Side::Ghl);
    let held: BTreeSet<&str> = finals
        .get(TAGS.canonical)
        .and_then(Value::as_array)
        .map(|tags| tags.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut last: BTreeMap<&str, (u64, bool, Side)> = BTreeMap::new();
    for role in Side::BOTH {
        let id = records.of(role).0;
        for ((side, record, tag), (seq, added)) in &ledger.tags {
            if *side == role && record == id {
                let entry = last.entry(tag.as_str()).or_insert((*seq, *added, role));
                if *seq >= entry.0 {
                    *entry = (*seq, *added, role);
                }
            }
        }
    }
    for (tag, (seq, added, role)) in last {
        let id = records.of(role).0.to_owned();
        let in_window = state.window.losses.contains(&(
            role,
            EntityKind::Contact,
            id,
            format!("tags:{tag}"),
            seq,
        ));
        if added && !held.contains(tag) && !in_window {
            violations.push(format!(
                "contact {} (ghl) / {} (app): tag `{tag}`, added on {role} by operation {seq} and never removed since, is gone",
                records.ghl.0, records.app.0, role = role.name()
            ));
        }
    }
}

/// No person twice on one side: every person has a last name of their
/// own, which no user edits.
fn duplicates(state: &Observed, excused: &Excused, violations: &mut Vec<String>) {
    for role in Side::BOTH {
        let model: &SideModel = &state.sides[role];
        let mut seen: BTreeMap<String, Vec<&String>> = BTreeMap::new();
        for (id, stored) in model.live(EntityKind::Contact) {
            if let Some(last) = stored.fields.get(LAST_NAME.on(role)) {
                seen.entry(last.to_string()).or_default().push(id);
            }
        }
        for (last, ids) in seen {
            if ids.len() > 1 && !ids.iter().any(|id| excused.records.contains(*id)) {
                let ids: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
                violations.push(format!(
                    "person {last} exists {} times on {role}: {}",
                    ids.len(),
                    ids.join(", "),
                    role = role.name()
                ));
            }
        }
    }
}
