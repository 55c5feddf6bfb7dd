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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::error::AppSimError;

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

/// Fields the app sets; ignored when a client sends them.
const READ_ONLY: [&str; 4] = ["id", "contact_id", "created_at", "updated_at"];

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

// ---------------------------------------------------------------------------
// Tables and paging.

/// A sort key of a change feed: `(updated_at, id)`.
pub(crate) type FeedKey = (i64, String);

/// Records by id, with an index in `(updated_at, id)` order.
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: HashMap<String, Record>,
    order: BTreeSet<FeedKey>,
}

pub(crate) fn updated_at(record: &Record) -> i64 {
    record
        .get("updated_at")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn created_at(record: &Record) -> i64 {
    record
        .get("created_at")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

pub(crate) fn str_field<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record.get(key).and_then(Value::as_str)
}

impl Table {
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.rows.get(id)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Inserts or replaces (keeping the index in step).
    pub fn put(&mut self, record: Record) {
        let id = str_field(&record, "id").unwrap_or_default().to_string();
        if let Some(old) = self.rows.get(&id) {
            self.order.remove(&(updated_at(old), id.clone()));
        }
        self.order.insert((updated_at(&record), id.clone()));
        self.rows.insert(id, record);
    }

    pub fn remove(&mut self, id: &str) -> Option<Record> {
        let old = self.rows.remove(id)?;
        self.order.remove(&(updated_at(&old), id.to_string()));
        Some(old)
    }

    /// Every record, in `(created_at, id)` order.
    pub fn all_by_creation(&self) -> Vec<Record> {
        let mut all: Vec<&Record> = self.rows.values().collect();
        all.sort_by(|a, b| {
            (created_at(a), str_field(a, "id")).cmp(&(created_at(b), str_field(b, "id")))
        });
        all.into_iter().cloned().collect()
    }

    /// One page of the change feed; see [`Page`].
    pub fn page(&self, query: &FeedQuery, keep: impl Fn(&Record) -> bool) -> Page {
        let keys = self.order.range(start_bound(query));
        let (items, more) = page_keys(keys, query.limit, |(_, id)| {
            self.rows.get(id).filter(|r| keep(r)).cloned()
        });
        Page { items, more }
    }
}

/// Where a change-feed page starts and how long it is.
#[derive(Debug, Clone, Default)]
pub(crate) struct FeedQuery {
    /// `updated_since` (inclusive), epoch ms.
    pub since: Option<i64>,
    /// The last `(updated_at, id)` of the previous page (exclusive).
    pub after: Option<FeedKey>,
    pub limit: usize,
}

/// One page: the records, and whether more matched after them.
#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub items: Vec<Record>,
    pub more: bool,
}

/// Where a page starts in a `(updated_at, id)` index: after the cursor,
/// or at `updated_since` when that is later (or there is no cursor).
fn start_bound(query: &FeedQuery) -> (Bound<FeedKey>, Bound<FeedKey>) {
    let since: FeedKey = (query.since.unwrap_or(i64::MIN), String::new());
    let start = match &query.after {
        Some(after) if *after >= since => Bound::Excluded(after.clone()),
        _ => Bound::Included(since),
    };
    (start, Bound::Unbounded)
}

/// Walks `keys` (already at the page's start), keeping what `pick`
/// returns, up to `limit` items; `more` says whether another item would
/// have followed.
fn page_keys<'a>(
    keys: impl Iterator<Item = &'a FeedKey>,
    limit: usize,
    pick: impl Fn(&FeedKey) -> Option<Record>,
) -> (Vec<Record>, bool) {
    let mut items = Vec::new();
    for key in keys {
        if let Some(record) = pick(key) {
            if items.len() == limit {
                return (items, true);
            }
            items.push(record);
        }
    }
    (items, false)
}

// ---------------------------------------------------------------------------
// Validation.

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field: trimmed; empty or whitespace-only is `null`.
fn nullable_string(key: &str, value: &Value, errors: &mut Vec<String>) -> Option<Value> {
    match value {
        Value::Null => Some(Value::Null),
        Value::String(s) if s.trim().is_empty() => Some(Value::Null),
        Value::String(s) => Some(json!(s.trim())),
        other => {
            errors.push(format!(
                "{key}: expected a string or null, got {}",
                type_name(other)
            ));
            None
        }
    }
}

/// `local@domain.tld`, no whitespace.
fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// A mobile number in E.164 after removing spaces, dashes, dots and
/// parentheses: `+`, then 7 to 15 digits, the first not 0. `None` if it
/// is not one.
pub(crate) fn normalize_mobile(text: &str) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = cleaned.strip_prefix('+')?;
    let ok = (7..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(cleaned)
}

/// Checks a contact body. Returns the fields to write: `Null` clears a
/// known field (labels become `[]`) and removes an extra one. On create,
/// at least one of the five string fields must be set.
pub(crate) fn validate_contact(body: &Value, create: bool) -> Result<Record, Vec<String>> {
    let Value::Object(map) = body else {
        return Err(vec![format!(
            "body: expected a JSON object, got {}",
            type_name(body)
        )]);
    };
    let mut errors = Vec::new();
    let mut out = Record::new();
    for (key, value) in map {
        let key = key.as_str();
        if READ_ONLY.contains(&key) {
            continue;
        }
        match key {
            "first_name" | "last_name" | "company" => {
                if let Some(v) = nullable_string(key, value, &mut errors) {
                    out.insert(key.into(), v);
                }
            }
            "email_address" => match nullable_string(key, value, &mut errors) {
                Some(Value::String(email)) if !valid_email(&email) => {
                    errors.push(format!("email_address: {email:?} is not an email address"))
                }
                Some(v) => {
                    out.insert(key.into(), v);
                }
                None => {}
            },
            "mobile" => match nullable_string(key, value, &mut errors) {
                Some(Value::String(mobile)) => match normalize_mobile(&mobile) {
                    Some(m) => {
                        out.insert(key.into(), json!(m));
                    }
                    None => errors.push(format!(
                        "mobile: {mobile:?} is not an E.164 number (e.g. +15125550100)"
                    )),
                },
                Some(v) => {
                    out.insert(key.into(), v);
                }
                None => {}
            },
            "labels" => match value {
                Value::Null => {
                    out.insert(key.into(), json!([]));
                }
                Value::Array(items) => {
                    let mut labels: Vec<String> = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        match item {
                            Value::String(s) => {
                                let s = s.trim();
                                if !s.is_empty() && !labels.iter().any(|l| l == s) {
                                    labels.push(s.to_string());
                                }
                            }
                            other => errors.push(format!(
                                "labels[{i}]: expected a string, got {}",
                                type_name(other)
                            )),
                        }
                    }
                    out.insert(key.into(), json!(labels));
                }
                other => errors.push(format!(
                    "labels: expected an array of strings or null, got {}",
                    type_name(other)
                )),
            },
            _ => {
                out.insert(key.into(), value.clone());
            }
        }
    }
    if create
        && errors.is_empty()
        && !CONTACT_STRINGS
            .iter()
            .any(|k| out.get(*k).is_some_and(Value::is_string))
    {
        errors.push(format!(
            "body: a contact needs at least one of {}",
            CONTACT_STRINGS.join(", ")
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a task body: `name` (non-empty string; required on create),
/// `details` (string or null), `due_on` (RFC 3339 string or null), `done`
/// (boolean; false by default). Other fields are refused.
pub(crate) fn validate_task(body: &Value, create: bool) -> Result<Record, Vec<String>> {
    let Value::Object(map) = body else {
        return Err(vec![format!(
            "body: expected a JSON object, got {}",
            type_name(body)
        )]);
    };
    let mut errors = Vec::new();
    let mut out = Record::new();
    for (key, value) in map {
        let key = key.as_str();
        if READ_ONLY.contains(&key) {
            continue;
        }
        match key {
            "name" => match value {
                Value::String(s) if !s.trim().is_empty() => {
                    out.insert(key.into(), json!(s.trim()));
                }
                Value::String(_) | Value::Null => {
                    errors.push("name: must be a non-empty string".into())
                }
                other => errors.push(format!("name: expected a string, got {}", type_name(other))),
            },
            "details" => {
                if let Some(v) = nullable_string(key, value, &mut errors) {
                    out.insert(key.into(), v);
                }
            }
            "due_on" => match nullable_string(key, value, &mut errors) {
                Some(Value::String(due)) if chrono::DateTime::parse_from_rfc3339(&due).is_err() => {
                    errors.push(format!(
                        "due_on: {due:?} is not an RFC 3339 time (e.g. 2025-06-01T09:00:00Z)"
                    ))
                }
                Some(v) => {
                    out.insert(key.into(), v);
                }
                None => {}
            },
            "done" => match value {
                Value::Bool(_) => {
                    out.insert(key.into(), value.clone());
                }
                other => errors.push(format!(
                    "done: expected true or false, got {}",
                    type_name(other)
                )),
            },
            other => errors.push(format!(
                "{other}: unknown field (a task has name, details, due_on, done)"
            )),
        }
    }
    if create && errors.is_empty() {
        if !out.contains_key("name") {
            errors.push("name: required".into());
        }
        for (key, default) in [("details", Value::Null), ("due_on", Value::Null)] {
            out.entry(key).or_insert(default);
        }
        out.entry("done").or_insert(json!(false));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a note body: `text` (non-empty string; required on create).
/// Other fields are refused.
pub(crate) fn validate_note(body: &Value, create: bool) -> Result<Record, Vec<String>> {
    let Value::Object(map) = body else {
        return Err(vec![format!(
            "body: expected a JSON object, got {}",
            type_name(body)
        )]);
    };
    let mut errors = Vec::new();
    let mut out = Record::new();
    for (key, value) in map {
        let key = key.as_str();
        if READ_ONLY.contains(&key) {
            continue;
        }
        match key {
            "text" => match value {
                Value::String(s) if !s.trim().is_empty() => {
                    out.insert(key.into(), json!(s));
                }
                Value::String(_) | Value::Null => {
                    errors.push("text: must be a non-empty string".into())
                }
                other => errors.push(format!("text: expected a string, got {}", type_name(other))),
            },
            other => errors.push(format!("{other}: unknown field (a note has text)")),
        }
    }
    if create && errors.is_empty() && !out.contains_key("text") {
        errors.push("text: required".into());
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
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

    // --- contacts --------------------------------------------------------------

    pub fn contact(&self, id: &str) -> Result<&Record, AppSimError> {
        self.contacts
            .get(id)
            .ok_or_else(|| AppSimError::not_found(Entity::Contact, id))
    }

    /// The contact holding this email (case-insensitive), if any.
    pub fn contact_id_by_email(&self, email: &str) -> Option<&str> {
        self.emails.get(&email.to_lowercase()).map(String::as_str)
    }

    fn check_email_free(&self, fields: &Record, own_id: Option<&str>) -> Result<(), AppSimError> {
        if let Some(email) = str_field(fields, "email_address") {
            if let Some(existing) = self.contact_id_by_email(email) {
                if Some(existing) != own_id {
                    return Err(AppSimError::Duplicate {
                        existing_id: existing.to_string(),
                        email: email.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Creates a contact from validated fields.
    pub fn create_contact(&mut self, fields: &Record) -> Result<Record, AppSimError> {
        self.check_email_free(fields, None)?;
        let id = self.new_id(Entity::Contact);
        let now = self.tick();
        let mut record = Record::new();
        record.insert("id".into(), json!(id));
        for key in CONTACT_STRINGS {
            record.insert(key.into(), Value::Null);
        }
        record.insert("labels".into(), json!([]));
        for (key, value) in fields {
            if !value.is_null() {
                record.insert(key.clone(), value.clone());
            }
        }
        record.insert("created_at".into(), json!(now));
        record.insert("updated_at".into(), json!(now));
        if let Some(email) = str_field(&record, "email_address") {
            self.emails.insert(email.to_lowercase(), id.clone());
        }
        self.children.entry(id.clone()).or_default();
        self.contacts.put(record.clone());
        self.event(Entity::Contact, Action::Created, &id, None, now);
        Ok(record)
    }

    /// Applies validated fields to a contact (`null` clears). Always
    /// bumps `updated_at`, even when no value changes.
    pub fn update_contact(&mut self, id: &str, fields: &Record) -> Result<Record, AppSimError> {
        let mut record = self.contact(id)?.clone();
        self.check_email_free(fields, Some(id))?;
        let old_email = str_field(&record, "email_address").map(str::to_lowercase);
        for (key, value) in fields {
            let known = CONTACT_STRINGS.contains(&key.as_str()) || key == "labels";
            if value.is_null() && !known {
                record.remove(key);
            } else {
                record.insert(key.clone(), value.clone());
            }
        }
        let new_email = str_field(&record, "email_address").map(str::to_lowercase);
        if old_email != new_email {
            if let Some(old) = old_email {
                self.emails.remove(&old);
            }
            if let Some(new) = new_email {
                self.emails.insert(new, id.to_string());
            }
        }
        let now = self.tick();
        record.insert("updated_at".into(), json!(now));
        self.contacts.put(record.clone());
        self.event(Entity::Contact, Action::Updated, id, None, now);
        Ok(record)
    }

    /// Deletes a contact, then its tasks and notes: each gets a tombstone
    /// and an event (children first, the contact last).
    pub fn delete_contact(&mut self, id: &str) -> Result<(), AppSimError> {
        self.contact(id)?;
        let (tasks, notes) = self.children.remove(id).unwrap_or_default();
        for (child, ids) in [(Child::Task, tasks), (Child::Note, notes)] {
            for child_id in ids {
                if self.table_mut(child).remove(&child_id).is_some() {
                    self.tombstone(child.entity(), &child_id, Some(id));
                }
            }
        }
        let record = self.contacts.remove(id).unwrap_or_default();
        if let Some(email) = str_field(&record, "email_address") {
            self.emails.remove(&email.to_lowercase());
        }
        self.tombstone(Entity::Contact, id, None);
        Ok(())
    }

    fn tombstone(&mut self, entity: Entity, id: &str, contact_id: Option<&str>) {
        let now = self.tick();
        let mut record = Record::new();
        record.insert("entity".into(), json!(entity.name()));
        record.insert("id".into(), json!(id));
        record.insert(
            "contact_id".into(),
            contact_id.map_or(Value::Null, |c| json!(c)),
        );
        record.insert("deleted_at".into(), json!(now));
        self.tombstones.insert((now, id.to_string()), record);
        self.event(entity, Action::Deleted, id, contact_id, now);
    }

    /// One page of the tombstones feed (by `(deleted_at, id)`).
    pub fn deleted_page(&self, query: &FeedQuery) -> Page {
        let keys = self.tombstones.range(start_bound(query)).map(|(k, _)| k);
        let (items, more) = page_keys(keys, query.limit, |key| self.tombstones.get(key).cloned());
        Page { items, more }
    }

    /// Every tombstone, oldest first.
    pub fn tombstones(&self) -> Vec<Record> {
        self.tombstones.values().cloned().collect()
    }

    // --- tasks and notes ---------------------------------------------------------

    /// A contact's tasks or notes, in creation order.
    pub fn children(&self, contact_id: &str, child: Child) -> Result<Vec<Record>, AppSimError> {
        self.contact(contact_id)?;
        let ids = self
            .children
            .get(contact_id)
            .map(|(tasks, notes)| match child {
                Child::Task => tasks.clone(),
                Child::Note => notes.clone(),
            })
            .unwrap_or_default();
        let table = self.table(child);
        Ok(ids.iter().filter_map(|id| table.get(id).cloned()).collect())
    }

    /// A task or note by id alone.
    pub fn child_by_id(&self, child: Child, id: &str) -> Result<&Record, AppSimError> {
        self.table(child)
            .get(id)
            .ok_or_else(|| AppSimError::not_found(child.entity(), id))
    }

    /// A task or note of this contact (404 if it belongs to another).
    pub fn child(&self, contact_id: &str, child: Child, id: &str) -> Result<&Record, AppSimError> {
        self.contact(contact_id)?;
        self.table(child)
            .get(id)
            .filter(|r| str_field(r, "contact_id") == Some(contact_id))
            .ok_or_else(|| AppSimError::not_found(child.entity(), id))
    }

    /// Creates a task or note from validated fields. The contact's
    /// `updated_at` does not change.
    pub fn create_child(
        &mut self,
        contact_id: &str,
        child: Child,
        fields: &Record,
    ) -> Result<Record, AppSimError> {
        self.contact(contact_id)?;
        let id = self.new_id(child.entity());
        let now = self.tick();
        let mut record = Record::new();
        record.insert("id".into(), json!(id));
        record.insert("contact_id".into(), json!(contact_id));
        for (key, value) in fields {
            record.insert(key.clone(), value.clone());
        }
        record.insert("created_at".into(), json!(now));
        record.insert("updated_at".into(), json!(now));
        let lists = self.children.entry(contact_id.to_string()).or_default();
        match child {
            Child::Task => lists.0.push(id.clone()),
            Child::Note => lists.1.push(id.clone()),
        }
        self.table_mut(child).put(record.clone());
        self.event(child.entity(), Action::Created, &id, Some(contact_id), now);
        Ok(record)
    }

    /// Applies validated fields to a task or note; always bumps its
    /// `updated_at`.
    pub fn update_child(
        &mut self,
        contact_id: &str,
        child: Child,
        id: &str,
        fields: &Record,
    ) -> Result<Record, AppSimError> {
        let mut record = self.child(contact_id, child, id)?.clone();
        for (key, value) in fields {
            record.insert(key.clone(), value.clone());
        }
        let now = self.tick();
        record.insert("updated_at".into(), json!(now));
        self.table_mut(child).put(record.clone());
        self.event(child.entity(), Action::Updated, id, Some(contact_id), now);
        Ok(record)
    }

    /// Deletes a task or note (tombstone and event).
    pub fn delete_child(
        &mut self,
        contact_id: &str,
        child: Child,
        id: &str,
    ) -> Result<(), AppSimError> {
        self.child(contact_id, child, id)?;
        self.table_mut(child).remove(id);
        if let Some(lists) = self.children.get_mut(contact_id) {
            let list = match child {
                Child::Task => &mut lists.0,
                Child::Note => &mut lists.1,
            };
            list.retain(|x| x != id);
        }
        self.tombstone(child.entity(), id, Some(contact_id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn db() -> Db {
        Db::new(ChaCha8Rng::seed_from_u64(7))
    }

    #[test]
    fn validation_reports_every_problem() {
        let errors = validate_contact(
            &json!({"first_name": 3, "email_address": "nope", "mobile": "555", "labels": [1, "a"]}),
            true,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        let ok = validate_contact(
            &json!({"mobile": "+1 (512) 555-0100", "email_address": " A@B.co ", "labels": ["x", "x", " "], "id": "ignored", "extra": {"k": 1}}),
            true,
        )
        .unwrap();
        assert_eq!(ok["mobile"], "+15125550100");
        assert_eq!(ok["email_address"], "A@B.co");
        assert_eq!(ok["labels"], json!(["x"]));
        assert_eq!(ok["extra"], json!({"k": 1}));
        assert!(!ok.contains_key("id"));
        assert!(validate_contact(&json!({"labels": ["a"]}), true).is_err());
        assert!(validate_contact(&json!({"labels": ["a"]}), false).is_ok());
        assert!(validate_task(&json!({"name": "x", "foo": 1}), true).is_err());
        assert!(validate_task(&json!({"due_on": "tomorrow"}), false).is_err());
        assert_eq!(
            validate_task(&json!({"name": "x"}), true).unwrap()["done"],
            false
        );
        assert!(validate_note(&json!({}), true).is_err());
    }

    #[test]
    fn the_clock_never_repeats_and_pages_follow_it() {
        let mut db = db();
        let mut last = 0;
        for i in 0..50 {
            let c = db
                .create_contact(
                    &validate_contact(&json!({"first_name": format!("n{i}")}), true).unwrap(),
                )
                .unwrap();
            let at = updated_at(&c);
            assert!(at > last);
            last = at;
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = db.contacts.page(
                &FeedQuery {
                    since: None,
                    after: after.clone(),
                    limit: 7,
                },
                |_| true,
            );
            for r in &page.items {
                seen.push(str_field(r, "id").unwrap().to_string());
                after = Some((updated_at(r), str_field(r, "id").unwrap().to_string()));
            }
            if !page.more {
                break;
            }
        }
        assert_eq!(seen.len(), 50);
    }
}
