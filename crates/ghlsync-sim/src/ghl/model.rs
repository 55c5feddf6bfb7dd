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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::error::SimError;

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

/// Normalises a phone number to E.164 (`+` and digits). Ten digits without
/// a country code are taken as North American (`+1`). `None` if fewer than
/// seven digits remain.
pub(crate) fn normalize_phone(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 7 || digits.len() > 15 {
        return None;
    }
    let plus = text.trim_start().starts_with('+');
    if !plus && digits.len() == 10 {
        Some(format!("+1{digits}"))
    } else {
        Some(format!("+{digits}"))
    }
}

fn valid_email(email: &str) -> bool {
    let mut parts = email.splitn(2, '@');
    let local = parts.next().unwrap_or("");
    let domain = parts.next().unwrap_or("");
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.contains(char::is_whitespace)
}

/// Tags as GHL stores them: trimmed, lower-cased, without duplicates, in
/// first-seen order.
pub(crate) fn normalize_tags<'a>(tags: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().to_lowercase();
        if !tag.is_empty() && !out.contains(&tag) {
            out.push(tag);
        }
    }
    out
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

/// Resolves a custom field `key` (with or without the `contact.` prefix)
/// to its id.
fn custom_field_id(defs: &[CustomFieldDef], key: &str) -> Option<String> {
    let bare = key.strip_prefix("contact.").unwrap_or(key);
    defs.iter()
        .find(|d| d.key == key || d.key.strip_prefix("contact.") == Some(bare))
        .map(|d| d.id.clone())
}

pub(crate) fn id_of(record: &Record) -> &str {
    record.get("id").and_then(Value::as_str).unwrap_or("")
}

/// How an input is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Update,
}

/// A validated contact input: values to set; `Value::Null` means "clear".
#[derive(Debug, Clone, Default)]
pub(crate) struct ContactInput {
    pub location_id: Option<String>,
    pub fields: Record,
}

impl ContactInput {
    pub fn email(&self) -> Option<&str> {
        self.fields.get("email").and_then(Value::as_str)
    }
    pub fn phone(&self) -> Option<&str> {
        self.fields.get("phone").and_then(Value::as_str)
    }
}

const CONTACT_STRING_FIELDS: &[&str] = &[
    "firstName",
    "lastName",
    "companyName",
    "address1",
    "city",
    "state",
    "postalCode",
    "website",
    "timezone",
    "source",
    "country",
    "assignedTo",
    "gender",
    "businessId",
    "type",
];

/// Fields the server maintains; a client's values for them are ignored.
const SERVER_FIELDS: &[&str] = &[
    "id",
    "dateAdded",
    "dateUpdated",
    "searchAfter",
    "contactName",
    "firstNameLowerCase",
    "lastNameLowerCase",
    "fullNameLowerCase",
    "emailLowerCase",
    "traceId",
];

/// Checks and normalises a contact body (create, upsert or update).
///
/// Choices where the spec is silent: email is lower-cased, phone is
/// normalised to E.164, tags are trimmed and lower-cased (as GHL stores
/// them); `""` and `null` clear a field; `name` is split into
/// `firstName`/`lastName` when those are absent and is not stored itself;
/// `locationId` in an update is refused with 422 "property locationId
/// should not exist" as the live API does; unknown fields are kept.
pub(crate) fn validate_contact(body: &Value, mode: Mode) -> Result<ContactInput, Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["body must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    let mut input = ContactInput::default();
    for (key, value) in object {
        let key = key.as_str();
        if SERVER_FIELDS.contains(&key) {
            continue;
        }
        match key {
            "locationId" => match mode {
                Mode::Update => errors.push("property locationId should not exist".into()),
                Mode::Create => match value.as_str() {
                    Some(s) if !s.trim().is_empty() => input.location_id = Some(s.trim().into()),
                    _ => errors.push("locationId must be a string".into()),
                },
            },
            "email" => match value {
                Value::Null => {
                    input.fields.insert("email".into(), Value::Null);
                }
                Value::String(s) if s.trim().is_empty() => {
                    input.fields.insert("email".into(), Value::Null);
                }
                Value::String(s) if valid_email(s.trim()) => {
                    input
                        .fields
                        .insert("email".into(), json!(s.trim().to_lowercase()));
                }
                _ => errors.push("email must be an email".into()),
            },
            "phone" => match value {
                Value::Null => {
                    input.fields.insert("phone".into(), Value::Null);
                }
                Value::String(s) if s.trim().is_empty() => {
                    input.fields.insert("phone".into(), Value::Null);
                }
                Value::String(s) => match normalize_phone(s) {
                    Some(p) => {
                        input.fields.insert("phone".into(), json!(p));
                    }
                    None => errors.push("phone must be a valid phone number".into()),
                },
                _ => errors.push("phone must be a valid phone number".into()),
            },
            "tags" => match value {
                Value::Null => {
                    input.fields.insert("tags".into(), json!([]));
                }
                Value::Array(items) if items.iter().all(Value::is_string) => {
                    let tags = normalize_tags(items.iter().filter_map(Value::as_str));
                    input.fields.insert("tags".into(), json!(tags));
                }
                _ => errors.push("each value in tags must be a string".into()),
            },
            "dnd" => match value {
                Value::Bool(_) => {
                    input.fields.insert("dnd".into(), value.clone());
                }
                _ => errors.push("dnd must be a boolean value".into()),
            },
            "dndSettings" | "inboundDndSettings" => match value {
                Value::Object(_) | Value::Null => {
                    input.fields.insert(key.into(), value.clone());
                }
                _ => errors.push(format!("{key} must be an object")),
            },
            "customFields" => match value {
                Value::Null => {}
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let ok = item.as_object().is_some_and(|o| {
                            o.get("id").is_some_and(Value::is_string)
                                || o.get("key").is_some_and(Value::is_string)
                        });
                        if !ok {
                            errors.push(format!("customFields.{i} must have an id or a key"));
                        }
                    }
                    input.fields.insert(key.into(), value.clone());
                }
                _ => errors.push("customFields must be an array".into()),
            },
            "name" => match value {
                Value::String(_) | Value::Null => {
                    input.fields.insert("name".into(), value.clone());
                }
                _ => errors.push("name must be a string".into()),
            },
            _ if CONTACT_STRING_FIELDS.contains(&key) => match value {
                Value::Null => {
                    input.fields.insert(key.into(), Value::Null);
                }
                Value::String(s) if s.is_empty() => {
                    input.fields.insert(key.into(), Value::Null);
                }
                Value::String(_) => {
                    input.fields.insert(key.into(), value.clone());
                }
                _ => errors.push(format!("{key} must be a string")),
            },
            _ => {
                input.fields.insert(key.into(), value.clone());
            }
        }
    }
    if mode == Mode::Create
        && input.location_id.is_none()
        && !errors.iter().any(|e| e.starts_with("locationId"))
    {
        errors.push("locationId should not be empty".into());
    }
    // `name` → firstName / lastName when those are not given.
    if let Some(name) = input.fields.remove("name") {
        if let Some(name) = name.as_str() {
            let has_first = input.fields.contains_key("firstName");
            let has_last = input.fields.contains_key("lastName");
            let mut parts = name.trim().splitn(2, char::is_whitespace);
            let first = parts.next().unwrap_or("").trim();
            let last = parts.next().unwrap_or("").trim();
            if !has_first && !first.is_empty() {
                input.fields.insert("firstName".into(), json!(first));
            }
            if !has_last && !last.is_empty() {
                input.fields.insert("lastName".into(), json!(last));
            }
        }
    }
    if errors.is_empty() {
        Ok(input)
    } else {
        Err(errors)
    }
}

/// Applies a validated patch to a stored contact.
fn apply_contact_patch(data: &mut Record, patch: &Record, defs: &[CustomFieldDef]) {
    for (key, value) in patch {
        match (key.as_str(), value) {
            ("customFields", Value::Array(items)) => {
                let mut current: Vec<Value> = data
                    .get("customFields")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    let Some(item) = item.as_object() else {
                        continue;
                    };
                    let id = match item.get("id").and_then(Value::as_str) {
                        Some(id) => id.to_string(),
                        None => {
                            let key = item.get("key").and_then(Value::as_str).unwrap_or("");
                            custom_field_id(defs, key).unwrap_or_else(|| key.to_string())
                        }
                    };
                    let value = item
                        .get("field_value")
                        .or_else(|| item.get("value"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    current.retain(|c| c.get("id").and_then(Value::as_str) != Some(id.as_str()));
                    let empty = value.is_null() || value.as_str() == Some("");
                    if !empty {
                        current.push(json!({"id": id, "value": value}));
                    }
                }
                data.insert("customFields".into(), Value::Array(current));
            }
            ("dndSettings" | "inboundDndSettings", Value::Object(new)) => {
                match data.get_mut(key.as_str()) {
                    Some(Value::Object(old)) => {
                        for (k, v) in new {
                            old.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        data.insert(key.clone(), value.clone());
                    }
                }
            }
            (_, Value::Null) => {
                data.remove(key);
            }
            _ => {
                data.insert(key.clone(), value.clone());
            }
        }
    }
    derive_contact_fields(data);
}

/// Recomputes the derived fields GHL returns (`contactName`, the
/// lower-case copies).
pub(crate) fn derive_contact_fields(data: &mut Record) {
    let first = data
        .get("firstName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let last = data
        .get("lastName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let full = format!("{first} {last}").trim().to_lowercase();
    let mut set = |key: &str, value: String| {
        if value.is_empty() {
            data.remove(key);
        } else {
            data.insert(key.into(), json!(value));
        }
    };
    set("firstNameLowerCase", first.to_lowercase());
    set("lastNameLowerCase", last.to_lowercase());
    set("fullNameLowerCase", full.clone());
    set("contactName", full);
    let email = data
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    if email.is_empty() {
        data.remove("emailLowerCase");
    } else {
        data.insert("emailLowerCase".into(), json!(email));
    }
}

fn check_string(object: &Record, key: &str, required: bool, errors: &mut Vec<String>) {
    match object.get(key) {
        None | Some(Value::Null) if required => errors.push(format!("{key} should not be empty")),
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => errors.push(format!("{key} must be a string")),
    }
}

fn check_bool(object: &Record, key: &str, required: bool, errors: &mut Vec<String>) {
    match object.get(key) {
        None if required => errors.push(format!("{key} must be a boolean value")),
        None | Some(Value::Bool(_)) => {}
        Some(_) => errors.push(format!("{key} must be a boolean value")),
    }
}

/// Checks a task body (`CreateTaskParams` / `UpdateTaskBody`); `dueDate`
/// is normalised to ISO with milliseconds.
pub(crate) fn validate_task(body: &Value, mode: Mode) -> Result<Record, Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["body must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    let create = mode == Mode::Create;
    check_string(object, "title", create, &mut errors);
    check_string(object, "body", false, &mut errors);
    check_string(object, "assignedTo", false, &mut errors);
    check_bool(object, "completed", create, &mut errors);
    let mut out = object.clone();
    match object.get("dueDate") {
        None if create => errors.push("dueDate must be a valid ISO 8601 date string".into()),
        None => {}
        Some(Value::String(s)) => match parse_time_ms(s) {
            Some(ms) => {
                out.insert("dueDate".into(), json!(iso(ms)));
            }
            None => errors.push("dueDate must be a valid ISO 8601 date string".into()),
        },
        Some(_) => errors.push("dueDate must be a valid ISO 8601 date string".into()),
    }
    for key in ["id", "contactId", "dateAdded", "dateUpdated", "traceId"] {
        out.remove(key);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a note body (`NotesDTO` / `UpdateNoteDTO`).
pub(crate) fn validate_note(body: &Value, mode: Mode) -> Result<Record, Vec<String>> {
    let Some(object) = body.as_object() else {
        return Err(vec!["body must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    check_string(object, "body", mode == Mode::Create, &mut errors);
    check_string(object, "userId", false, &mut errors);
    check_string(object, "title", false, &mut errors);
    check_string(object, "color", false, &mut errors);
    check_bool(object, "pinned", false, &mut errors);
    let mut out = object.clone();
    for key in ["id", "contactId", "dateAdded", "dateUpdated", "traceId"] {
        out.remove(key);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a `TagsDTO` body and returns the normalised tags.
pub(crate) fn validate_tags(body: &Value) -> Result<Vec<String>, Vec<String>> {
    match body.get("tags") {
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(normalize_tags(items.iter().filter_map(Value::as_str)))
        }
        Some(_) => Err(vec!["each value in tags must be a string".into()]),
        None => Err(vec![
            "tags should not be empty".into(),
            "tags must be an array".into(),
        ]),
    }
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

    /// Creates a contact, refusing duplicates unless the location allows
    /// them.
    pub fn create_contact(
        &mut self,
        location_id: &str,
        input: &ContactInput,
        default_source: &str,
    ) -> Result<Record, SimError> {
        self.location(location_id)?;
        if !self.allow_duplicates {
            if let Some((contact_id, field)) =
                self.find_duplicate(location_id, input.email(), input.phone(), None)
            {
                return Err(SimError::Duplicate { contact_id, field });
            }
        }
        let id = self.new_id();
        let location = self
            .locations
            .get_mut(location_id)
            .ok_or_else(|| SimError::LocationNotFound(location_id.into()))?;
        let ts = location.tick();
        let mut data = Record::new();
        data.insert("id".into(), json!(id));
        data.insert("locationId".into(), json!(location_id));
        data.insert("type".into(), json!("lead"));
        data.insert("source".into(), json!(default_source));
        data.insert("tags".into(), json!([]));
        data.insert("dnd".into(), json!(false));
        data.insert("customFields".into(), json!([]));
        apply_contact_patch(&mut data, &input.fields, &location.custom_fields);
        data.insert("dateAdded".into(), json!(iso(ts)));
        data.insert("dateUpdated".into(), json!(iso(ts)));
        location.insert_contact(Contact {
            added_ms: ts,
            updated_ms: ts,
            data: data.clone(),
            tasks: Vec::new(),
            notes: Vec::new(),
            appointments: Vec::new(),
        });
        self.contact_loc.insert(id, location_id.into());
        self.emit_contact(EventKind::ContactCreate, &data);
        Ok(data)
    }

    /// Creates or updates by email (first) then phone. Returns `(new, contact)`.
    pub fn upsert_contact(
        &mut self,
        location_id: &str,
        input: &ContactInput,
        create_new_if_duplicate_allowed: bool,
        default_source: &str,
    ) -> Result<(bool, Record), SimError> {
        self.location(location_id)?;
        let existing = if create_new_if_duplicate_allowed && self.allow_duplicates {
            None
        } else {
            self.find_duplicate(location_id, input.email(), input.phone(), None)
        };
        match existing {
            Some((id, _)) => Ok((false, self.update_contact(&id, input)?)),
            None => {
                let saved = self.allow_duplicates;
                self.allow_duplicates = true;
                let created = self.create_contact(location_id, input, default_source);
                self.allow_duplicates = saved;
                Ok((true, created?))
            }
        }
    }

    /// Applies a patch. Always bumps `dateUpdated` and emits
    /// `ContactUpdate`, plus `ContactTagUpdate` / `ContactDndUpdate` when
    /// tags / DND changed.
    pub fn update_contact(
        &mut self,
        contact_id: &str,
        input: &ContactInput,
    ) -> Result<Record, SimError> {
        let location_id = self.contact_location(contact_id)?.to_string();
        if !self.allow_duplicates {
            let email = input.email();
            let phone = input.phone();
            if email.is_some() || phone.is_some() {
                if let Some((contact_id, field)) =
                    self.find_duplicate(&location_id, email, phone, Some(contact_id))
                {
                    return Err(SimError::Duplicate { contact_id, field });
                }
            }
        }
        let (location, _) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let custom = location.custom_fields.clone();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let before = contact.data.clone();
        apply_contact_patch(&mut contact.data, &input.fields, &custom);
        location.touch(contact_id, ts);
        let data = location.contacts[contact_id].data.clone();
        self.emit_contact(EventKind::ContactUpdate, &data);
        if before.get("tags") != data.get("tags") {
            self.emit_contact(EventKind::ContactTagUpdate, &data);
        }
        if before.get("dnd") != data.get("dnd")
            || before.get("dndSettings") != data.get("dndSettings")
        {
            self.emit_contact(EventKind::ContactDndUpdate, &data);
        }
        Ok(data)
    }

    /// Stores `data` as a contact of `location_id` as it is: no
    /// validation, no normalisation, no webhook (see
    /// `SimHandle::plant_raw_contact`). `locationId`, `dateAdded` and
    /// `dateUpdated` are filled in only when absent; the contact is placed
    /// in the listings and the change feed as updated now. A contact with
    /// the same `id` (its tasks, notes and appointments kept) is replaced;
    /// a contact without a string `id` is stored under the empty id (one
    /// per location). Returns that id.
    pub fn plant_raw_contact(
        &mut self,
        location_id: &str,
        mut data: Record,
    ) -> Result<String, SimError> {
        let id = id_of(&data).to_string();
        if let Some(owner) = self.contact_loc.get(&id) {
            if owner != location_id {
                return Err(SimError::Invalid(vec![format!(
                    "contact {id} belongs to location {owner}"
                )]));
            }
        }
        let location = self
            .locations
            .get_mut(location_id)
            .ok_or_else(|| SimError::LocationNotFound(location_id.into()))?;
        let ts = location.tick();
        let old = location.remove_contact(&id);
        let added_ms = old.as_ref().map_or(ts, |c| c.added_ms);
        data.entry("locationId")
            .or_insert_with(|| json!(location_id));
        data.entry("dateAdded")
            .or_insert_with(|| json!(iso(added_ms)));
        data.entry("dateUpdated").or_insert_with(|| json!(iso(ts)));
        let (tasks, notes, appointments) = old
            .map(|c| (c.tasks, c.notes, c.appointments))
            .unwrap_or_default();
        location.insert_contact(Contact {
            added_ms,
            updated_ms: ts,
            data,
            tasks,
            notes,
            appointments,
        });
        self.contact_loc.insert(id.clone(), location_id.into());
        Ok(id)
    }

    /// Deletes a contact with its tasks, notes and appointments; emits
    /// `ContactDelete` only.
    pub fn delete_contact(&mut self, contact_id: &str) -> Result<Record, SimError> {
        let (location, _) = self.contact_mut(contact_id)?;
        location.tick();
        let contact = location
            .remove_contact(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        self.contact_loc.remove(contact_id);
        for child in contact
            .tasks
            .iter()
            .chain(&contact.notes)
            .chain(&contact.appointments)
        {
            self.child_owner.remove(id_of(child));
        }
        self.emit_contact(EventKind::ContactDelete, &contact.data);
        Ok(contact.data)
    }

    /// Adds (`add = true`) or removes tags; returns the resulting tags.
    /// Emits `ContactTagUpdate` and bumps `dateUpdated`.
    pub fn change_tags(
        &mut self,
        contact_id: &str,
        tags: &[String],
        add: bool,
    ) -> Result<Vec<String>, SimError> {
        let (location, _) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let mut current: Vec<String> = contact
            .data
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if add {
            for tag in tags {
                if !current.contains(tag) {
                    current.push(tag.clone());
                }
            }
        } else {
            current.retain(|t| !tags.contains(t));
        }
        contact.data.insert("tags".into(), json!(current));
        location.touch(contact_id, ts);
        let data = location.contacts[contact_id].data.clone();
        self.emit_contact(EventKind::ContactTagUpdate, &data);
        Ok(current)
    }

    pub fn children(&self, contact_id: &str, kind: Child) -> Result<Vec<Record>, SimError> {
        let contact = self.contact(contact_id)?;
        Ok(match kind {
            Child::Task => contact.tasks.clone(),
            Child::Note => contact.notes.clone(),
            Child::Appointment => contact.appointments.clone(),
        })
    }

    pub fn child(&self, contact_id: &str, kind: Child, id: &str) -> Result<Record, SimError> {
        self.children(contact_id, kind)?
            .into_iter()
            .find(|r| id_of(r) == id)
            .ok_or_else(|| kind.not_found(id))
    }

    fn child_list(contact: &mut Contact, kind: Child) -> &mut Vec<Record> {
        match kind {
            Child::Task => &mut contact.tasks,
            Child::Note => &mut contact.notes,
            Child::Appointment => &mut contact.appointments,
        }
    }

    fn child_event(
        &mut self,
        kind: Child,
        event: EventKind,
        location_id: &str,
        contact_id: &str,
        record: &Record,
    ) {
        let mut payload = record.clone();
        if kind == Child::Appointment {
            let mut appointment = record.clone();
            appointment.insert("locationId".into(), json!(location_id));
            payload = Record::new();
            payload.insert("appointment".into(), Value::Object(appointment));
        }
        self.emit(event, location_id, contact_id, payload);
    }

    /// Creates a task, note or appointment on a contact.
    pub fn create_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        fields: &Record,
    ) -> Result<Record, SimError> {
        let id = self.new_id();
        let touch = self.child_writes_touch_contact;
        let (location, location_id) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let mut record = Record::new();
        record.insert("id".into(), json!(id));
        match kind {
            Child::Task => {
                record.insert("title".into(), json!(""));
                record.insert("body".into(), json!(""));
                record.insert("completed".into(), json!(false));
            }
            Child::Note => {
                record.insert("body".into(), json!(""));
            }
            Child::Appointment => {
                record.insert("status".into(), json!("booked"));
                record.insert("appointmentStatus".into(), json!("confirmed"));
                record.insert("title".into(), json!("Appointment"));
            }
        }
        for (k, v) in fields {
            if !v.is_null() {
                record.insert(k.clone(), v.clone());
            }
        }
        record.insert("contactId".into(), json!(contact_id));
        if kind == Child::Appointment {
            record.insert("locationId".into(), json!(location_id));
        }
        record.insert("dateAdded".into(), json!(iso(ts)));
        record.insert("dateUpdated".into(), json!(iso(ts)));
        Self::child_list(contact, kind).push(record.clone());
        if touch {
            location.touch(contact_id, ts);
        }
        self.child_owner.insert(id, contact_id.into());
        let event = match kind {
            Child::Task => EventKind::TaskCreate,
            Child::Note => EventKind::NoteCreate,
            Child::Appointment => EventKind::AppointmentCreate,
        };
        self.child_event(kind, event, &location_id, contact_id, &record);
        Ok(record)
    }

    /// Stores `data` as a task, note or appointment of `contact_id` as it
    /// is, like [`Db::plant_raw_contact`]: no validation, no webhook, and
    /// the contact is not touched. `contactId`, `dateAdded` and
    /// `dateUpdated` are filled in only when absent. A child with the same
    /// `id` is replaced, any other is added. Returns its id (empty when it
    /// has no string one).
    pub fn plant_raw_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        mut data: Record,
    ) -> Result<String, SimError> {
        let id = id_of(&data).to_string();
        let (location, _) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        data.entry("contactId").or_insert_with(|| json!(contact_id));
        data.entry("dateAdded").or_insert_with(|| json!(iso(ts)));
        data.entry("dateUpdated").or_insert_with(|| json!(iso(ts)));
        let list = Self::child_list(contact, kind);
        match list.iter_mut().find(|r| !id.is_empty() && id_of(r) == id) {
            Some(existing) => *existing = data,
            None => list.push(data),
        }
        if !id.is_empty() {
            self.child_owner.insert(id.clone(), contact_id.into());
        }
        Ok(id)
    }

    /// Updates a child record. Webhooks: `NoteUpdate`, `AppointmentUpdate`,
    /// and for tasks `TaskComplete` only when `completed` turns true (GHL
    /// has no task-update event).
    pub fn update_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        id: &str,
        fields: &Record,
    ) -> Result<Record, SimError> {
        let touch = self.child_writes_touch_contact;
        let (location, location_id) = self.contact_mut(contact_id)?;
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        if !Self::child_list(contact, kind)
            .iter()
            .any(|r| id_of(r) == id)
        {
            return Err(kind.not_found(id));
        }
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let list = Self::child_list(contact, kind);
        let record = list
            .iter_mut()
            .find(|r| id_of(r) == id)
            .ok_or_else(|| kind.not_found(id))?;
        let was_completed = record.get("completed") == Some(&json!(true));
        for (k, v) in fields {
            if v.is_null() {
                record.remove(k);
            } else {
                record.insert(k.clone(), v.clone());
            }
        }
        record.insert("dateUpdated".into(), json!(iso(ts)));
        let record = record.clone();
        if touch {
            location.touch(contact_id, ts);
        }
        let event = match kind {
            Child::Task => {
                let now_completed = record.get("completed") == Some(&json!(true));
                (!was_completed && now_completed).then_some(EventKind::TaskComplete)
            }
            Child::Note => Some(EventKind::NoteUpdate),
            Child::Appointment => Some(EventKind::AppointmentUpdate),
        };
        if let Some(event) = event {
            self.child_event(kind, event, &location_id, contact_id, &record);
        }
        Ok(record)
    }

    pub fn delete_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        id: &str,
    ) -> Result<Record, SimError> {
        let touch = self.child_writes_touch_contact;
        let (location, location_id) = self.contact_mut(contact_id)?;
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let list = Self::child_list(contact, kind);
        let index = list
            .iter()
            .position(|r| id_of(r) == id)
            .ok_or_else(|| kind.not_found(id))?;
        let record = list.remove(index);
        let ts = location.tick();
        if touch {
            location.touch(contact_id, ts);
        }
        self.child_owner.remove(id);
        let event = match kind {
            Child::Task => EventKind::TaskDelete,
            Child::Note => EventKind::NoteDelete,
            Child::Appointment => EventKind::AppointmentDelete,
        };
        self.child_event(kind, event, &location_id, contact_id, &record);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_normalise_to_e164() {
        assert_eq!(
            normalize_phone("+1 888-888-8888").as_deref(),
            Some("+18888888888")
        );
        assert_eq!(
            normalize_phone("(888) 888-8888").as_deref(),
            Some("+18888888888")
        );
        assert_eq!(
            normalize_phone("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(normalize_phone("12"), None);
    }

    #[test]
    fn times_format_with_milliseconds() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(parse_time_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_time_ms("1970-01-02"), Some(86_400_000));
    }
}
