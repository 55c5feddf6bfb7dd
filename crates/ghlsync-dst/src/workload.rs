//! The people using both systems while the daemon runs: seeded streams of
//! creates, edits and deletes of contacts, tags, tasks and notes, on both
//! sides, some of them landing between the daemon's reads and writes.
//!
//! The data is as messy as real data: the same person created on both
//! sides, family members sharing a phone, a GHL location refusing
//! duplicates. Every person carries a last name no user ever edits
//! (`L<n>`), so the checker can tell a record the sync duplicated from two
//! people a user created.
//!
//! What users set is kept in a [`Ledger`]: the checker holds the converged
//! state to it (an edit is applied or superseded by a later one, never
//! lost to an older value).

use std::collections::BTreeMap;

use ghl_sync::domain::{EntityKind, Side};
use rand::seq::IteratorRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::model::SideModel;

/// A field by its canonical name (the demo map's), as each side spells it.
pub struct FieldName {
    pub canonical: &'static str,
    pub ghl: &'static str,
    pub app: &'static str,
}

impl FieldName {
    pub fn on(&self, role: Side) -> &'static str {
        match role {
            Side::Ghl => self.ghl,
            Side::App => self.app,
        }
    }
}

const fn field(canonical: &'static str, ghl: &'static str, app: &'static str) -> FieldName {
    FieldName {
        canonical,
        ghl,
        app,
    }
}

pub const FIRST_NAME: FieldName = field("first_name", "firstName", "first_name");
pub const LAST_NAME: FieldName = field("last_name", "lastName", "last_name");
pub const EMAIL: FieldName = field("email", "email", "email_address");
pub const PHONE: FieldName = field("phone", "phone", "mobile");
pub const TAGS: FieldName = field("tags", "tags", "labels");
pub const TITLE: FieldName = field("title", "title", "name");
pub const COMPLETED: FieldName = field("completed", "completed", "done");
pub const NOTE_TEXT: FieldName = field("text", "body", "text");

/// The last value users set on each field of each record, and the last
/// thing they did with each tag.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// (side, entity, id, canonical field) → (operation, value).
    pub values: BTreeMap<(Side, EntityKind, String, String), (u64, Value)>,
    /// (side, contact id, tag) → (sequence number, added).
    pub tags: BTreeMap<(Side, String, String), (u64, bool)>,
}

/// The users' state: who exists, and what they did.
#[derive(Debug, Default, Clone)]
pub struct Workload {
    people: u64,
    phones: u64,
    pub ops: u64,
    pub ledger: Ledger,
}

impl Workload {
    /// One user operation on one side, chosen by `rng`; a line for the
    /// trace.
    pub fn step(
        &mut self,
        rng: &mut ChaCha8Rng,
        sides: &mut ghl_sync::domain::PerSide<SideModel>,
    ) -> String {
        let role = if rng.gen_bool(0.5) {
            Side::Ghl
        } else {
            Side::App
        };
        self.ops += 1;
        let roll = rng.gen_range(0..100);
        // Fewer people than edits: records are edited many times, on both
        // sides, which is where syncs go wrong.
        let line = match roll {
            0..=17 => self.create_contact(rng, sides, role),
            18..=44 => self.edit_contact(rng, &mut sides[role]),
            45..=58 => self.tag(rng, &mut sides[role]),
            59..=61 => delete_one(rng, &mut sides[role], EntityKind::Contact),
            62..=71 => self.create_child(rng, &mut sides[role], EntityKind::Task),
            72..=81 => self.edit_task(rng, &mut sides[role]),
            82..=83 => delete_one(rng, &mut sides[role], EntityKind::Task),
            84..=89 => self.create_child(rng, &mut sides[role], EntityKind::Note),
            90..=96 => self.edit_note(rng, &mut sides[role]),
            _ => delete_one(rng, &mut sides[role], EntityKind::Note),
        };
        format!("user {} {line}", role.name())
    }

    fn new_phone(&mut self) -> String {
        self.phones += 1;
        // Area code 201, an exchange of 200-999: valid North American
        // numbers (the pair normalises phones to E.164 and refuses others).
        let n = self.phones;
        format!("+1201{}{:04}", 200 + (n / 10_000) % 800, n % 10_000)
    }

    fn create_contact(
        &mut self,
        rng: &mut ChaCha8Rng,
        sides: &mut ghl_sync::domain::PerSide<SideModel>,
        role: Side,
    ) -> String {
        // The same person entered on both sides: someone the other side
        // has and this one does not.
        let twin = rng.gen_bool(0.2).then(|| {
            let here: Vec<Value> = sides[role]
                .live(EntityKind::Contact)
                .filter_map(|(_, s)| s.fields.get(LAST_NAME.on(role)).cloned())
                .collect();
            let other = role.other();
            sides[other]
                .live(EntityKind::Contact)
                .filter(|(_, s)| {
                    s.fields
                        .get(LAST_NAME.on(other))
                        .is_some_and(|last| !here.contains(last))
                })
                .map(|(_, s)| s.fields.clone())
                .choose(rng)
        });
        let mut fields = Map::new();
        let description = match twin.flatten() {
            Some(theirs) => {
                let other = role.other();
                for name in [&LAST_NAME, &EMAIL, &PHONE] {
                    if let Some(value) = theirs.get(name.on(other)) {
                        fields.insert(name.on(role).to_owned(), value.clone());
                    }
                }
                "the same person as on the other side"
            }
            None => {
                self.people += 1;
                let n = self.people;
                fields.insert(LAST_NAME.on(role).into(), json!(format!("L{n}")));
                fields.insert(EMAIL.on(role).into(), json!(format!("p{n}@example.com")));
                // Family members share a phone (another person's email).
                let phone = match sides[role]
                    .live(EntityKind::Contact)
                    .filter_map(|(_, s)| s.fields.get(PHONE.on(role)).cloned())
                    .choose(rng)
                {
                    Some(shared) if rng.gen_bool(0.15) => shared,
                    _ => json!(self.new_phone()),
                };
                fields.insert(PHONE.on(role).into(), phone);
                "a new person"
            }
        };
        let first = json!(format!("F{}", rng.gen_range(0..1000)));
        fields.insert(FIRST_NAME.on(role).into(), first);
        if rng.gen_bool(0.3) {
            let tag = format!("t{}", rng.gen_range(0..6));
            fields.insert(TAGS.on(role).into(), json!([tag]));
        }
        let side = &mut sides[role];
        if let Some(existing) = side.duplicate_of(&fields) {
            return format!("is refused a contact ({description}): duplicate of {existing}");
        }
        let id = side.insert(EntityKind::Contact, None, fields.clone());
        self.remember(role, EntityKind::Contact, &id, &fields);
        format!(
            "creates contact {id} ({description}) {}",
            Value::Object(fields)
        )
    }

    fn edit_contact(&mut self, rng: &mut ChaCha8Rng, side: &mut SideModel) -> String {
        let Some(id) = pick(rng, side, EntityKind::Contact) else {
            return "finds no contact to edit".into();
        };
        let (name, value) = if rng.gen_bool(0.7) {
            (&FIRST_NAME, json!(format!("F{}", rng.gen_range(0..1000))))
        } else {
            (&PHONE, json!(self.new_phone()))
        };
        self.set(side, EntityKind::Contact, &id, name, value)
    }

    fn tag(&mut self, rng: &mut ChaCha8Rng, side: &mut SideModel) -> String {
        let role = side.role;
        let Some(id) = pick(rng, side, EntityKind::Contact) else {
            return "finds no contact to tag".into();
        };
        let mut tags: Vec<Value> = side
            .get(EntityKind::Contact, &id)
            .and_then(|s| s.fields.get(TAGS.on(role)))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let tag = format!("t{}", rng.gen_range(0..6));
        // Adding a tag the contact has, or removing one it lacks, changes
        // nothing: not an edit.
        let add = !tags.contains(&json!(tag));
        if add {
            tags.push(json!(tag));
        } else {
            tags.retain(|t| t != &json!(tag));
        }
        let patch = Map::from_iter([(TAGS.on(role).to_owned(), Value::Array(tags))]);
        side.patch(EntityKind::Contact, &id, &patch);
        self.ledger
            .tags
            .insert((role, id.clone(), tag.clone()), (self.ops, add));
        let verb = if add { "adds" } else { "removes" };
        format!("{verb} tag {tag} on contact {id}")
    }

    fn create_child(
        &mut self,
        rng: &mut ChaCha8Rng,
        side: &mut SideModel,
        entity: EntityKind,
    ) -> String {
        let role = side.role;
        let Some(parent) = pick(rng, side, EntityKind::Contact) else {
            return format!("finds no contact for a {entity}");
        };
        let n = rng.gen_range(0..10_000);
        let fields = match entity {
            EntityKind::Task => Map::from_iter([
                (TITLE.on(role).to_owned(), json!(format!("task {n}"))),
                (COMPLETED.on(role).to_owned(), json!(false)),
            ]),
            _ => Map::from_iter([(NOTE_TEXT.on(role).to_owned(), json!(format!("note {n}")))]),
        };
        let id = side.insert(entity, Some(parent.clone()), fields.clone());
        self.remember(role, entity, &id, &fields);
        format!(
            "creates {entity} {id} under {parent} {}",
            Value::Object(fields)
        )
    }

    fn edit_task(&mut self, rng: &mut ChaCha8Rng, side: &mut SideModel) -> String {
        let Some(id) = pick(rng, side, EntityKind::Task) else {
            return "finds no task to edit".into();
        };
        let (name, value) = if rng.gen_bool(0.5) {
            (&COMPLETED, json!(rng.gen_bool(0.7)))
        } else {
            (&TITLE, json!(format!("task {}", rng.gen_range(0..10_000))))
        };
        self.set(side, EntityKind::Task, &id, name, value)
    }

    fn edit_note(&mut self, rng: &mut ChaCha8Rng, side: &mut SideModel) -> String {
        let Some(id) = pick(rng, side, EntityKind::Note) else {
            return "finds no note to edit".into();
        };
        let value = json!(format!("note {}", rng.gen_range(0..10_000)));
        self.set(side, EntityKind::Note, &id, &NOTE_TEXT, value)
    }

    /// Sets one field of a record, as a user would. Setting the value it
    /// holds changes nothing and is no edit (the ledger keeps edits).
    fn set(
        &mut self,
        side: &mut SideModel,
        entity: EntityKind,
        id: &str,
        name: &FieldName,
        value: Value,
    ) -> String {
        let role = side.role;
        let native = name.on(role);
        if side.get(entity, id).and_then(|s| s.fields.get(native)) == Some(&value) {
            return format!("sets {entity} {id} {native} = {value}, which it holds: no change");
        }
        let patch = Map::from_iter([(native.to_owned(), value.clone())]);
        side.patch(entity, id, &patch);
        self.remember(role, entity, id, &patch);
        format!("sets {entity} {id} {native} = {value}")
    }

    fn remember(&mut self, role: Side, entity: EntityKind, id: &str, fields: &Map<String, Value>) {
        let names: &[&FieldName] = match entity {
            EntityKind::Contact => &[&FIRST_NAME, &LAST_NAME, &EMAIL, &PHONE],
            EntityKind::Task => &[&TITLE, &COMPLETED],
            _ => &[&NOTE_TEXT],
        };
        for name in names {
            if let Some(value) = fields.get(name.on(role)) {
                self.ledger.values.insert(
                    (role, entity, id.to_owned(), name.canonical.to_owned()),
                    (self.ops, value.clone()),
                );
            }
        }
        if let Some(tags) = fields.get(TAGS.on(role)).and_then(Value::as_array) {
            for tag in tags.iter().filter_map(Value::as_str) {
                self.ledger
                    .tags
                    .insert((role, id.to_owned(), tag.to_owned()), (self.ops, true));
            }
        }
    }
}

/// A live record of `entity` on `side`, chosen by `rng`.
fn pick(rng: &mut ChaCha8Rng, side: &SideModel, entity: EntityKind) -> Option<String> {
    side.live(entity).map(|(id, _)| id.clone()).choose(rng)
}

fn delete_one(rng: &mut ChaCha8Rng, side: &mut SideModel, entity: EntityKind) -> String {
    match pick(rng, side, entity) {
        Some(id) => {
            side.remove(entity, &id);
            format!("deletes {entity} {id}")
        }
        None => format!("finds no {entity} to delete"),
    }
}
