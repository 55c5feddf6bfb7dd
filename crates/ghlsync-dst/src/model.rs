//! What one simulated side holds: its records, the search index GHL
//! answers change polls from, and the webhook events its changes raise.
//!
//! Both the users of the workload (`workload.rs`) and the daemon (through
//! `side.rs`, the connector) change a side only through [`SideModel`]'s
//! methods, so a user's edit and the daemon's write are the same kind of
//! change, stamped by the side's own clock and announced the same way.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use ghl_sync::domain::{EntityKind, Side};
use serde_json::{Map, Value};

use crate::workload::{EMAIL, PHONE};

/// How a side behaves where the two systems differ.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// GHL: the spec gives tasks no change time and notes only
    /// `dateAdded` (`GetTaskSchema`, `GetNoteSchema`), so they are read
    /// with `Stamp::ReadAt`; the app dates every record (`updated_at`).
    pub children_dated: bool,
    /// Only contacts have a change feed on GHL (field notes, "Tasks and
    /// notes": no change feed for tasks or notes); the app has one for
    /// every entity.
    pub children_feed: bool,
    /// GHL with "Allow duplicate contact" off refuses a contact whose email
    /// or phone another contact holds (400, `meta.contactId`); the app
    /// takes duplicates.
    pub refuses_duplicates: bool,
    /// GHL's change feed is `POST /contacts/search`, an index a write takes
    /// a few seconds to reach (field notes, "Search").
    pub index_lag: Duration,
    /// The side's clock minus the daemon's.
    pub skew: Duration,
    /// GHL with `locations/tasks.readonly` granted lists the tasks of many
    /// contacts at once (`POST /locations/{locationId}/tasks/search`).
    pub task_search: bool,
    /// GHL raises no webhook when a task is edited (field notes: task
    /// create, complete and delete only), and `TaskCreate` has been seen
    /// without `contactId`.
    pub ghl_webhooks: bool,
}

/// One record as the side stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub parent: Option<String>,
    pub fields: Map<String, Value>,
    /// The side's change time (also kept for records it does not date:
    /// the index sorts by it).
    pub updated_at: DateTime<Utc>,
}

/// A change the side announces by webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub entity: EntityKind,
    pub id: String,
    /// The owning contact.
    pub parent: Option<String>,
    /// A create (GHL's `TaskCreate` has been seen without `contactId`:
    /// the delivery may drop it).
    pub created: bool,
}

/// A contact's versions in the search index, each with the time it
/// becomes visible (`None`: deleted).
type Versions = Vec<(DateTime<Utc>, Option<Stored>)>;

/// One side's state.
#[derive(Debug, Clone)]
pub struct SideModel {
    pub role: Side,
    pub behaviour: Behaviour,
    /// Live records, by entity and id.
    pub records: BTreeMap<(EntityKind, String), Stored>,
    /// Contacts as the search index shows them: each version with the
    /// time it becomes visible (`None`: deleted).
    index: BTreeMap<String, Versions>,
    next_id: u64,
    /// Webhook events raised and not yet handed to the delivery queue.
    pub events: Vec<Event>,
}

impl SideModel {
    pub fn new(role: Side, behaviour: Behaviour) -> Self {
        SideModel {
            role,
            behaviour,
            records: BTreeMap::new(),
            index: BTreeMap::new(),
            next_id: 0,
            events: Vec::new(),
        }
    }

    /// The side's clock.
    pub fn now(&self) -> DateTime<Utc> {
        ghl_sync::clock::now() + self.behaviour.skew
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        let prefix = match self.role {
            Side::Ghl => "g",
            Side::App => "a",
        };
        format!("{prefix}{}", self.next_id)
    }

    pub fn get(&self, entity: EntityKind, id: &str) -> Option<&Stored> {
        self.records.get(&(entity, id.to_owned()))
    }

    /// The live contact holding the email or phone of `fields`, when this
    /// side refuses duplicates: GHL refuses such a create from anyone, a
    /// user in its UI as much as an API call.
    pub fn duplicate_of(&self, fields: &Map<String, Value>) -> Option<String> {
        if !self.behaviour.refuses_duplicates {
            return None;
        }
        let keys = [EMAIL.on(self.role), PHONE.on(self.role)];
        let held = |stored: &Stored, name: &str| {
            let mine = fields.get(name).and_then(Value::as_str)?;
            let theirs = stored.fields.get(name).and_then(Value::as_str)?;
            Some(mine.trim().eq_ignore_ascii_case(theirs.trim()))
        };
        self.live(EntityKind::Contact)
            .find(|(_, stored)| keys.iter().any(|name| held(stored, name) == Some(true)))
            .map(|(id, _)| id.clone())
    }

    /// A new record; its id.
    pub fn insert(
        &mut self,
        entity: EntityKind,
        parent: Option<String>,
        fields: Map<String, Value>,
    ) -> String {
        let id = self.new_id();
        let stored = Stored {
            parent: parent.clone(),
            fields,
            updated_at: self.now(),
        };
        self.put(entity, &id, Some(stored));
        self.announce(entity, &id, parent, true);
        id
    }

    /// Sets (or with `null`, clears) the fields of `patch` on a live
    /// record; false when there is none.
    pub fn patch(&mut self, entity: EntityKind, id: &str, patch: &Map<String, Value>) -> bool {
        let Some(mut stored) = self.get(entity, id).cloned() else {
            return false;
        };
        for (name, value) in patch {
            if value.is_null() {
                stored.fields.remove(name);
            } else {
                stored.fields.insert(name.clone(), value.clone());
            }
        }
        stored.updated_at = self
            .now()
            .max(stored.updated_at + Duration::milliseconds(1));
        let parent = stored.parent.clone();
        self.put(entity, id, Some(stored));
        self.announce(entity, id, parent, false);
        true
    }

    /// Deletes a live record and, for a contact, its tasks and notes (as
    /// both systems do); false when it was already gone.
    pub fn remove(&mut self, entity: EntityKind, id: &str) -> bool {
        let Some(stored) = self.get(entity, id).cloned() else {
            return false;
        };
        if entity == EntityKind::Contact {
            let children: Vec<(EntityKind, String)> = self
                .records
                .iter()
                .filter(|(_, s)| s.parent.as_deref() == Some(id))
                .map(|(key, _)| key.clone())
                .collect();
            for (child, child_id) in children {
                self.records.remove(&(child, child_id));
            }
        }
        self.put(entity, id, None);
        self.announce(entity, id, stored.parent, false);
        true
    }

    fn put(&mut self, entity: EntityKind, id: &str, stored: Option<Stored>) {
        let key = (entity, id.to_owned());
        match &stored {
            Some(stored) => {
                self.records.insert(key, stored.clone());
            }
            None => {
                self.records.remove(&key);
            }
        }
        if entity == EntityKind::Contact {
            let visible = ghl_sync::clock::now() + self.behaviour.index_lag;
            let versions = self.index.entry(id.to_owned()).or_default();
            versions.push((visible, stored));
            // Versions older than the newest visible one are never shown.
            let now = ghl_sync::clock::now();
            while versions.len() > 1 && versions[1].0 <= now {
                versions.remove(0);
            }
        }
    }

    fn announce(&mut self, entity: EntityKind, id: &str, parent: Option<String>, created: bool) {
        let ghl = self.behaviour.ghl_webhooks;
        if ghl && entity == EntityKind::Task && !created && self.get(entity, id).is_some() {
            // No `TaskUpdate` event; `TaskComplete` only when completed.
            let completed = self.get(entity, id).and_then(|s| s.fields.get("completed"));
            if completed != Some(&Value::Bool(true)) {
                return;
            }
        }
        self.events.push(Event {
            entity,
            id: id.to_owned(),
            parent,
            created,
        });
    }

    /// Contacts as the search index shows them now, in (change time, id)
    /// order.
    pub fn indexed_contacts(&self) -> Vec<(String, Stored)> {
        let now = ghl_sync::clock::now();
        let mut shown: Vec<(String, Stored)> = self
            .index
            .iter()
            .filter_map(|(id, versions)| {
                let (_, newest) = versions.iter().rev().find(|(at, _)| *at <= now)?;
                newest.clone().map(|stored| (id.clone(), stored))
            })
            .collect();
        shown.sort_by(|a, b| (a.1.updated_at, &a.0).cmp(&(b.1.updated_at, &b.0)));
        shown
    }

    /// Live records of `entity` in (change time, id) order.
    pub fn dated(&self, entity: EntityKind) -> Vec<(String, Stored)> {
        let mut records: Vec<(String, Stored)> = self
            .records
            .iter()
            .filter(|((e, _), _)| *e == entity)
            .map(|((_, id), stored)| (id.clone(), stored.clone()))
            .collect();
        records.sort_by(|a, b| (a.1.updated_at, &a.0).cmp(&(b.1.updated_at, &b.0)));
        records
    }

    /// Live records of `entity`, by id.
    pub fn live(&self, entity: EntityKind) -> impl Iterator<Item = (&String, &Stored)> {
        self.records
            .iter()
            .filter(move |((e, _), _)| *e == entity)
            .map(|((_, id), stored)| (id, stored))
    }

    /// Live children of `entity` of contact `parent`.
    pub fn children(&self, entity: EntityKind, parent: &str) -> Vec<(String, Stored)> {
        self.live(entity)
            .filter(|(_, s)| s.parent.as_deref() == Some(parent))
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect()
    }
}
