//! GHL API v2 records and request bodies.
//!
//! Records parse leniently: the live API returns fields the spec omits (for
//! example `dateUpdated` on list items) and omits some it lists, so every
//! known field is optional (absent or `null` alike) and everything unknown
//! is kept in `extra` and written back unchanged. Reading, mapping and
//! writing a record therefore never loses a field.
//!
//! Answers are read record by record (`reading.rs`): the envelope is
//! parsed with each record left as raw JSON, then each record is parsed on
//! its own, so one record that does not fit its model (issue 13: a phone
//! sent as a number, a contact without an id) is set aside as
//! [`Unreadable`] and the others of its page still go through.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{Call, GhlError};

/// The `Version` header every Contacts API call must carry.
pub const API_VERSION: &str = "2021-07-28";

/// A contact as returned by get, list, search and upsert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::times::optional"
    )]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::times::optional"
    )]
    pub date_updated: Option<DateTime<Utc>>,
    /// Every other field, kept verbatim.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A task of a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::times::optional"
    )]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A note on a contact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::times::optional"
    )]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An appointment (calendar event) of a contact. Read-only for the sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appointment_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::times::optional"
    )]
    pub date_updated: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Fields of a contact to create or change. Only the fields that are set
/// are sent, so an update never blanks a field it did not mean to touch.
/// `fields` holds the body as GHL spells it (`firstName`, `customFields`…).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactFields {
    pub fields: Map<String, Value>,
}

impl ContactFields {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(field.to_owned(), value.into());
        self
    }

    pub fn email(&self) -> Option<&str> {
        self.fields.get("email").and_then(Value::as_str)
    }

    pub fn phone(&self) -> Option<&str> {
        self.fields.get("phone").and_then(Value::as_str)
    }
}

/// Body of a task create or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
}

/// Body of a note create or update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NoteFields {
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The result of `POST /contacts/upsert`.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted {
    /// Whether GHL created a new contact (false: it updated a match).
    pub created: bool,
    pub contact: Contact,
}

/// A filter of `POST /contacts/search`: `{field, operator, value}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchFilter {
    pub field: String,
    pub operator: String,
    pub value: Value,
}

impl SearchFilter {
    /// Contacts updated in `[since, until]`. Inclusive at both ends: the
    /// poller re-reads an overlap anyway and de-duplicates by
    /// `(id, updated_at)`, and an exclusive bound could skip a contact
    /// updated in the same millisecond as the last one seen.
    pub fn updated_between(since: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Self {
            field: "dateUpdated".into(),
            operator: "range".into(),
            value: serde_json::json!({ "gte": iso(since), "lte": iso(until) }),
        }
    }
}

/// Sort order of a search: `{field, direction}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchSort {
    pub field: String,
    pub direction: String,
}

impl SearchSort {
    pub fn ascending(field: &str) -> Self {
        Self {
            field: field.into(),
            direction: "asc".into(),
        }
    }
}

/// A search: filters, sort, and the page size.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub filters: Vec<SearchFilter>,
    pub sort: Vec<SearchSort>,
    pub page_limit: u32,
}

impl SearchQuery {
    /// Everything updated in `[since, until]`, oldest first: the
    /// incremental change detection query.
    pub fn updated_between(since: DateTime<Utc>, until: DateTime<Utc>, page_limit: u32) -> Self {
        Self {
            filters: vec![SearchFilter::updated_between(since, until)],
            sort: vec![SearchSort::ascending("dateUpdated")],
            page_limit,
        }
    }

    /// Every contact of the location, oldest first by `dateAdded`: the
    /// full listing of a reconciliation. `dateAdded` never changes, so a
    /// contact edited while the listing pages on keeps its place and is
    /// neither skipped nor listed twice (sorted by `dateUpdated`, an edit
    /// would move it behind the cursor).
    pub fn everything(page_limit: u32) -> Self {
        Self {
            filters: Vec::new(),
            sort: vec![SearchSort::ascending("dateAdded")],
            page_limit,
        }
    }
}

/// A location a Marketplace app is installed in.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstalledLocation {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_installed: Option<bool>,
}

/// ISO 8601 with milliseconds and `Z`, as GHL writes timestamps.
pub fn iso(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A record GHL sent that does not fit its model: a field of the wrong
/// type, no `id`, not an object at all. It is set aside on its own; the
/// rest of its answer is read.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    /// The call whose answer held it.
    pub call: Call,
    /// `contact`, `task`, `note` or `appointment`.
    pub kind: &'static str,
    /// Its `id`, when it has a usable one.
    pub id: Option<String>,
    /// Its `dateUpdated` (or `dateAdded`), when readable: how far a change
    /// feed may move past it once it is set aside.
    pub updated_at: Option<DateTime<Utc>>,
    /// The field at fault, when one is (`id` for a record without one).
    pub field: Option<String>,
    /// What is wrong, naming the field and (unless it may be sensitive)
    /// the value GHL sent. It depends only on the record, not on the call
    /// or its place in the page, so the same record read by a poll, a
    /// reconciliation or a single GET gives the same reason, which is what
    /// lets the engine dead-letter it once.
    pub reason: String,
    /// The record as GHL sent it.
    pub raw: Value,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} cannot be read: {}",
            self.call,
            self.kind,
            self.id.as_deref().unwrap_or("without an id"),
            self.reason
        )
    }
}

impl Unreadable {
    /// As a [`GhlError::Decode`], for callers that need every record. The
    /// status is not kept with the record: every answer read record by
    /// record is a GHL `200`.
    pub fn into_error(self) -> GhlError {
        GhlError::Decode {
            call: self.call.clone(),
            status: 200,
            detail: format!(
                "{} {}: {}",
                self.kind,
                self.id.as_deref().unwrap_or("without an id"),
                self.reason
            ),
        }
    }
}

/// One answer of a listing, read record by record.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    /// The records that fit their model, in the order GHL sent them.
    pub records: Vec<T>,
    /// The ones that did not, each on its own.
    pub unreadable: Vec<Unreadable>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            unreadable: Vec::new(),
        }
    }
}

impl<T> Listing<T> {
    /// Every record, or the first unreadable one as an error: for callers
    /// that cannot do with part of an answer (`doctor`, contract tests).
    pub fn strict(mut self) -> Result<Vec<T>, GhlError> {
        if self.unreadable.is_empty() {
            Ok(self.records)
        } else {
            Err(self.unreadable.swap_remove(0).into_error())
        }
    }

    /// How many records the answer held, readable or not (a page is full
    /// by this count, not by how many could be read).
    pub fn len(&self) -> usize {
        self.records.len() + self.unreadable.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
