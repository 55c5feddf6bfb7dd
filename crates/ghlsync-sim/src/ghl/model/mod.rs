//! The simulator's data: locations, their contacts, and each contact's
//! tasks, notes and appointments, held as JSON maps so that fields a client
//! sends and the simulator does not know are kept and returned
//! (read-after-write).
//!
//! Invariants kept here:
//! - `dateAdded` / `dateUpdated` are ISO 8601 with milliseconds and `Z`.
//!   Every write takes its timestamp from a per-location clock that is
//!   strictly increasing (`max(now, last + 1 ms)`), so two writes in the
//!   same millisecond still get distinct, ordered `dateUpdated` values and
//!   `dateUpdated` range filters never miss a write. Under more than 1000
//!   writes per second to one location that clock runs ahead of the wall
//!   clock by the backlog.
//! - Every successful mutation queues its webhook events (see [`Event`])
//!   while the caller still holds the database lock, so events of one
//!   contact are delivered in the order the writes happened.
//!
//! The model is split by job: this file holds the records, the locations
//! and their indexes, and the database with its event queue;
//! `validation` checks and normalises what clients send; `contacts`
//! writes contacts; `children` writes their tasks, notes and
//! appointments.

mod children;
mod contacts;
#[cfg(test)]
mod tests;
mod validation;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::error::SimError;
use super::shapes::{webhook_shape, RecordShapes};

pub(crate) use contacts::derive_contact_fields;
pub(crate) use validation::{
    normalize_phone, normalize_tags, validate_contact, validate_note, validate_tags, validate_task,
    ContactInput, Mode,
};

/// A record as stored and returned.
pub(crate) type Record = Map<String, Value>;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A GHL-style id: 20 alphanumeric characters.
pub(crate) fn gen_id(rng: &mut impl Rng) -> String {
    (0..20)
        .map(|_| ALNUM[rng.gen_range(0..ALNUM.len())] as char)
        .collect()
}

/// Milliseconds since the epoch as GHL formats them: `2021-07-02T05:18:26.704Z`.
pub(crate) fn iso(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Parses an RFC 3339 / ISO 8601 time (or a bare date) to epoch ms.
pub(crate) fn parse_time_ms(text: &str) -> Option<i64> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(time.and_utc().timestamp_millis());
    }
    if let Ok(time) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(time.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Webhook event types (see `shared/ghl-api/docs/webhooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    ContactCreate,
    ContactUpdate,
    ContactDelete,
    ContactTagUpdate,
    ContactDndUpdate,
    TaskCreate,
    TaskComplete,
    TaskDelete,
    NoteCreate,
    NoteUpdate,
    NoteDelete,
    AppointmentCreate,
    AppointmentUpdate,
    AppointmentDelete,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ContactCreate => "ContactCreate",
            EventKind::ContactUpdate => "ContactUpdate",
            EventKind::ContactDelete => "ContactDelete",
            EventKind::ContactTagUpdate => "ContactTagUpdate",
            EventKind::ContactDndUpdate => "ContactDndUpdate",
            EventKind::TaskCreate => "TaskCreate",
            EventKind::TaskComplete => "TaskComplete",
            EventKind::TaskDelete => "TaskDelete",
            EventKind::NoteCreate => "NoteCreate",
            EventKind::NoteUpdate => "NoteUpdate",
            EventKind::NoteDelete => "NoteDelete",
            EventKind::AppointmentCreate => "AppointmentCreate",
            EventKind::AppointmentUpdate => "AppointmentUpdate",
            EventKind::AppointmentDelete => "AppointmentDelete",
        }
    }
}

/// A change to deliver as a webhook. `key` (the contact id) orders
/// deliveries: events with the same key are delivered in order.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub key: String,
    pub payload: Record,
}

/// A custom field definition of a location.
#[derive(Debug, Clone)]
pub(crate) struct CustomFieldDef {
    pub id: String,
    pub key: String,
    /// GHL's `dataType` (`TEXT`, `SINGLE_OPTIONS`, `MULTIPLE_OPTIONS`,
    /// `CHECKBOX`, `NUMERICAL`, `MONETORY`, `FILE_UPLOAD`…): the type of
    /// `field_value` a write must carry (see [`CustomFieldDef::takes`]).
    pub data_type: &'static str,
}

impl CustomFieldDef {
    /// Whether a write's `field_value` has this field's type. The GHL
    /// field notes: "Writes take `customFields: [{id | key,
    /// field_value}]`, typed per field: a string, an array for
    /// multi-select and checkbox fields, a number for numeric and
    /// monetary fields, an object for file uploads." (The spec's
    /// `CheckboxField`, `MultiSelectField`, `NumericField`,
    /// `MonetoryField` and `FileField` agree.) An empty string
    /// clears any field.
    pub fn takes(&self, value: &Value) -> bool {
        match (self.data_type, value) {
            (_, Value::String(s)) if s.is_empty() => true,
            ("MULTIPLE_OPTIONS" | "CHECKBOX", v) => v.is_array(),
            ("NUMERICAL" | "MONETORY", v) => v.is_number(),
            ("FILE_UPLOAD", v) => v.is_object(),
            (_, v) => v.is_string(),
        }
    }

    /// What [`CustomFieldDef::takes`] wants, for a 422's message.
    pub fn wants(&self) -> &'static str {
        match self.data_type {
            "MULTIPLE_OPTIONS" | "CHECKBOX" => "an array",
            "NUMERICAL" | "MONETORY" => "a number",
            "FILE_UPLOAD" => "an object",
            _ => "a string",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Contact {
    pub added_ms: i64,
    pub updated_ms: i64,
    pub data: Record,
    pub tasks: Vec<Record>,
    pub notes: Vec<Record>,
    pub appointments: Vec<Record>,
}

#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub id: String,
    pub name: String,
    pub address: String,
    pub users: Vec<String>,
    pub calendars: Vec<String>,
    pub custom_fields: Vec<CustomFieldDef>,
    pub last_ms: i64,
    /// Contacts by id. Insert, remove and bump `dateUpdated` only through
    /// the methods below so the indexes stay right.
    pub contacts: HashMap<String, Contact>,
    /// `(dateAdded ms, id)` of every contact, in order.
    pub by_added: BTreeSet<(i64, String)>,
    /// `(dateUpdated ms, id)` of every contact, in order.
    pub by_updated: BTreeSet<(i64, String)>,
}

impl Location {
    /// The next write timestamp: strictly after the previous one.
    pub fn tick(&mut self) -> i64 {
        let ts = now_ms().max(self.last_ms + 1);
        self.last_ms = ts;
        ts
    }

    /// Contacts ordered by `(dateAdded, id)`.
    pub fn contacts_by_added(&self) -> impl DoubleEndedIterator<Item = &Contact> + '_ {
        self.by_added
            .iter()
            .filter_map(|(_, id)| self.contacts.get(id))
    }

    pub fn insert_contact(&mut self, contact: Contact) {
        let id = id_of(&contact.data).to_string();
        self.by_added.insert((contact.added_ms, id.clone()));
        self.by_updated.insert((contact.updated_ms, id.clone()));
        self.contacts.insert(id, contact);
    }

    pub fn remove_contact(&mut self, id: &str) -> Option<Contact> {
        let contact = self.contacts.remove(id)?;
        self.by_added.remove(&(contact.added_ms, id.to_string()));
        self.by_updated
            .remove(&(contact.updated_ms, id.to_string()));
        Some(contact)
    }

    /// Sets a contact's `dateUpdated`.
    pub fn touch(&mut self, id: &str, ts: i64) {
        if let Some(contact) = self.contacts.get_mut(id) {
            self.by_updated
                .remove(&(contact.updated_ms, id.to_string()));
            contact.updated_ms = ts;
            contact.data.insert("dateUpdated".into(), json!(iso(ts)));
            self.by_updated.insert((ts, id.to_string()));
        }
    }
}

pub(crate) fn id_of(record: &Record) -> &str {
    record.get("id").and_then(Value::as_str).unwrap_or("")
}

/// Which child collection of a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Child {
    Task,
    Note,
    Appointment,
}

impl Child {
    fn not_found(self, id: &str) -> SimError {
        match self {
            Child::Task => SimError::TaskNotFound(id.into()),
            Child::Note => SimError::NoteNotFound(id.into()),
            Child::Appointment => SimError::AppointmentNotFound(id.into()),
        }
    }
}

/// The whole simulated GHL: one company with its locations.
#[derive(Debug)]
pub(crate) struct Db {
    pub company_id: String,
    pub locations: BTreeMap<String, Location>,
    contact_loc: HashMap<String, String>,
    child_owner: HashMap<String, String>,
    rng: ChaCha8Rng,
    pub allow_duplicates: bool,
    pub child_writes_touch_contact: bool,
    /// What answers and webhooks carry (see [`RecordShapes`]).
    pub record_shapes: RecordShapes,
    /// How long after its `dateUpdated` a contact write becomes visible to
    /// `POST /contacts/search` (see `SimOptions::search_lag`); 0: at once.
    pub search_lag_ms: i64,
    events: Vec<Event>,
}

impl Db {
    pub fn new(company_id: String, locations: Vec<Location>, rng: ChaCha8Rng) -> Self {
        let mut contact_loc = HashMap::new();
        let mut child_owner = HashMap::new();
        for location in &locations {
            for (id, contact) in &location.contacts {
                contact_loc.insert(id.clone(), location.id.clone());
                for child in contact
                    .tasks
                    .iter()
                    .chain(&contact.notes)
                    .chain(&contact.appointments)
                {
                    child_owner.insert(id_of(child).to_string(), id.clone());
                }
            }
        }
        Db {
            company_id,
            locations: locations.into_iter().map(|l| (l.id.clone(), l)).collect(),
            contact_loc,
            child_owner,
            rng,
            allow_duplicates: false,
            child_writes_touch_contact: false,
            record_shapes: RecordShapes::default(),
            search_lag_ms: 0,
            events: Vec::new(),
        }
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn new_id(&mut self) -> String {
        gen_id(&mut self.rng)
    }

    pub fn location(&self, id: &str) -> Result<&Location, SimError> {
        self.locations
            .get(id)
            .ok_or_else(|| SimError::LocationNotFound(id.into()))
    }

    /// The location of a contact.
    pub fn contact_location(&self, contact_id: &str) -> Result<&str, SimError> {
        self.contact_loc
            .get(contact_id)
            .map(String::as_str)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))
    }

    /// The contact owning a task, note or appointment.
    pub fn child_owner(&self, child_id: &str) -> Option<&str> {
        self.child_owner.get(child_id).map(String::as_str)
    }

    pub fn contact(&self, contact_id: &str) -> Result<&Contact, SimError> {
        let location = self.contact_location(contact_id)?;
        self.locations[location]
            .contacts
            .get(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))
    }

    fn contact_mut(&mut self, contact_id: &str) -> Result<(&mut Location, String), SimError> {
        let location = self.contact_location(contact_id)?.to_string();
        let loc = self
            .locations
            .get_mut(&location)
            .ok_or_else(|| SimError::LocationNotFound(location.clone()))?;
        Ok((loc, location))
    }

    /// The contact of the location whose email (first) or phone matches,
    /// other than `except`.
    pub fn find_duplicate(
        &self,
        location_id: &str,
        email: Option<&str>,
        phone: Option<&str>,
        except: Option<&str>,
    ) -> Option<(String, &'static str)> {
        let location = self.locations.get(location_id)?;
        // The oldest match wins, like the live API.
        let oldest = |field: &str, wanted: &str| {
            location
                .contacts
                .values()
                .filter(|c| Some(id_of(&c.data)) != except)
                .filter(|c| c.data.get(field).and_then(Value::as_str) == Some(wanted))
                .min_by(|a, b| (a.added_ms, id_of(&a.data)).cmp(&(b.added_ms, id_of(&b.data))))
                .map(|c| id_of(&c.data).to_string())
        };
        if let Some(email) = email.filter(|e| !e.is_empty()) {
            if let Some(id) = oldest("email", &email.trim().to_lowercase()) {
                return Some((id, "email"));
            }
        }
        if let Some(phone) = phone.and_then(normalize_phone) {
            if let Some(id) = oldest("phone", &phone) {
                return Some((id, "phone"));
            }
        }
        None
    }

    fn emit(&mut self, kind: EventKind, location_id: &str, key: &str, mut payload: Record) {
        // The event type wins over a contact's own `type` field, as in
        // GHL's payloads.
        let mut out = Record::new();
        out.append(&mut payload);
        out.insert("type".into(), json!(kind.as_str()));
        out.insert("locationId".into(), json!(location_id));
        // Strict: only what the event's doc lists (`webhookId` and
        // `timestamp` are added at delivery).
        let out = self.record_shapes.apply(out, webhook_shape(kind));
        self.events.push(Event {
            key: key.to_string(),
            payload: out,
        });
    }

    fn emit_contact(&mut self, kind: EventKind, data: &Record) {
        let mut payload = data.clone();
        let first = data.get("firstName").and_then(Value::as_str).unwrap_or("");
        let last = data.get("lastName").and_then(Value::as_str).unwrap_or("");
        let name = format!("{first} {last}").trim().to_string();
        if !name.is_empty() {
            payload.insert("name".into(), json!(name));
        }
        let location = data
            .get("locationId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        payload.remove("locationId");
        let id = id_of(data).to_string();
        self.emit(kind, &location, &id, payload);
    }
}
