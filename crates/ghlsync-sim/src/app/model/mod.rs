//! The app's data: contacts, their tasks and notes, tombstones of deleted
//! records, the app-wide clock, validation of client input, and the
//! change events each write produces (for webhooks).
//!
//! Records are JSON objects, returned as stored:
//! - contact: `id`, `first_name`, `last_name`, `email_address`, `mobile`,
//!   `company` (each a string or `null`, always present), `labels` (an
//!   array of strings, always present), `created_at`, `updated_at`, plus
//!   every extra field a client sent;
//! - task: `id`, `contact_id`, `name`, `details` (string or `null`),
//!   `due_on` (RFC 3339 string or `null`), `done`, `created_at`,
//!   `updated_at`;
//! - note: `id`, `contact_id`, `text`, `created_at`, `updated_at`.
//!
//! Timestamps are epoch milliseconds from one clock for the whole app:
//! every write takes `max(now_ms, last + 1)`, so `updated_at` (and a
//! tombstone's `deleted_at`) never repeats and never goes back.
//!
//! Split by job: this file holds the record kinds, their events and the
//! database with its clock and id allocation; `table` indexes records for
//! the change feeds and pages them; `validation` checks what clients send;
//! `contacts` and `children` write contacts and their tasks and notes;
//! `tombstones` records deletions so the feeds can report them.

mod children;
mod contacts;
mod table;
#[cfg(test)]
mod tests;
mod tombstones;
mod validation;

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

pub(crate) use table::{str_field, updated_at, FeedKey, FeedQuery, Page, Table};
pub(crate) use validation::{normalize_mobile, validate_contact, validate_note, validate_task};

/// A record: a JSON object.
pub(crate) type Record = Map<String, Value>;

/// The known contact fields that hold a string or `null`.
pub(crate) const CONTACT_STRINGS: [&str; 5] = [
    "first_name",
    "last_name",
    "email_address",
    "mobile",
    "company",
];

const BASE36: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `prefix` + `n` random base36 characters.
pub(crate) fn base36_id(rng: &mut impl Rng, prefix: &str, n: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + n);
    id.push_str(prefix);
    for _ in 0..n {
        id.push(BASE36[rng.gen_range(0..BASE36.len())] as char);
    }
    id
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The three kinds of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Entity {
    Contact,
    Task,
    Note,
}

impl Entity {
    pub fn name(self) -> &'static str {
        match self {
            Entity::Contact => "contact",
            Entity::Task => "task",
            Entity::Note => "note",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Entity::Contact => "ct_",
            Entity::Task => "tk_",
            Entity::Note => "nt_",
        }
    }
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Created,
    Updated,
    Deleted,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
        }
    }
}

/// One change, in the order of the writes: becomes a webhook.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub entity: Entity,
    pub action: Action,
    pub id: String,
    pub contact_id: Option<String>,
    pub occurred_at: i64,
}

impl Event {
    /// The webhook body without `delivery_id`.
    pub fn payload(&self) -> Record {
        let mut payload = Record::new();
        payload.insert(
            "event".into(),
            json!(format!("{}.{}", self.entity.name(), self.action.name())),
        );
        payload.insert("entity".into(), json!(self.entity.name()));
        payload.insert("id".into(), json!(self.id));
        if let Some(contact_id) = &self.contact_id {
            payload.insert("contact_id".into(), json!(contact_id));
        }
        payload.insert("occurred_at".into(), json!(self.occurred_at));
        payload
    }
}

/// Which child collection of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Child {
    Task,
    Note,
}

impl Child {
    pub fn entity(self) -> Entity {
        match self {
            Child::Task => Entity::Task,
            Child::Note => Entity::Note,
        }
    }

    pub fn validate(self, body: &Value, create: bool) -> Result<Record, Vec<String>> {
        match self {
            Child::Task => validate_task(body, create),
            Child::Note => validate_note(body, create),
        }
    }
}

// ---------------------------------------------------------------------------
// The database.

/// Everything the app holds.
#[derive(Debug)]
pub(crate) struct Db {
    /// The last timestamp handed out.
    clock: i64,
    rng: ChaCha8Rng,
    pub contacts: Table,
    pub tasks: Table,
    pub notes: Table,
    /// Task and note ids per contact, in creation order.
    children: HashMap<String, (Vec<String>, Vec<String>)>,
    /// Lowercased email → contact id.
    emails: HashMap<String, String>,
    /// Tombstones by `(deleted_at, id)`.
    tombstones: BTreeMap<FeedKey, Record>,
    /// Every id ever handed out (live or deleted), so none is reused.
    used_ids: HashSet<String>,
    events: Vec<Event>,
}

impl Db {
    pub fn new(rng: ChaCha8Rng) -> Db {
        Db {
            clock: 0,
            rng,
            contacts: Table::default(),
            tasks: Table::default(),
            notes: Table::default(),
            children: HashMap::new(),
            emails: HashMap::new(),
            tombstones: BTreeMap::new(),
            used_ids: HashSet::new(),
            events: Vec::new(),
        }
    }

    /// The last timestamp handed out.
    pub fn clock(&self) -> i64 {
        self.clock
    }

    /// The next timestamp: `max(now_ms, last + 1)`.
    fn tick(&mut self) -> i64 {
        self.clock = now_ms().max(self.clock + 1);
        self.clock
    }

    fn new_id(&mut self, entity: Entity) -> String {
        loop {
            let id = base36_id(&mut self.rng, entity.prefix(), 12);
            if self.used_ids.insert(id.clone()) {
                return id;
            }
        }
    }

    /// The events of the writes since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn event(
        &mut self,
        entity: Entity,
        action: Action,
        id: &str,
        contact_id: Option<&str>,
        at: i64,
    ) {
        self.events.push(Event {
            entity,
            action,
            id: id.to_string(),
            contact_id: contact_id.map(String::from),
            occurred_at: at,
        });
    }

    /// Loads a seeded record as is (no event; the clock moves past it).
    pub fn load(&mut self, entity: Entity, record: Record) {
        let id = str_field(&record, "id").unwrap_or_default().to_string();
        self.used_ids.insert(id.clone());
        self.clock = self.clock.max(updated_at(&record));
        match entity {
            Entity::Contact => {
                if let Some(email) = str_field(&record, "email_address") {
                    self.emails.insert(email.to_lowercase(), id.clone());
                }
                self.children.entry(id).or_default();
                self.contacts.put(record);
            }
            Entity::Task | Entity::Note => {
                let owner = str_field(&record, "contact_id")
                    .unwrap_or_default()
                    .to_string();
                let lists = self.children.entry(owner).or_default();
                if entity == Entity::Task {
                    lists.0.push(id);
                    self.tasks.put(record);
                } else {
                    lists.1.push(id);
                    self.notes.put(record);
                }
            }
        }
    }

    fn table(&self, child: Child) -> &Table {
        match child {
            Child::Task => &self.tasks,
            Child::Note => &self.notes,
        }
    }

    fn table_mut(&mut self, child: Child) -> &mut Table {
        match child {
            Child::Task => &mut self.tasks,
            Child::Note => &mut self.notes,
        }
    }
}
