//! GHL API v2 records and request bodies.
//!
//! Records parse leniently: the live API returns fields the spec omits (for
//! example `dateUpdated` on list items) and omits some it lists, so every
//! known field is optional and everything unknown is kept in `extra` and
//! written back unchanged. Reading, mapping and writing a record therefore
//! never loses a field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date_added: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
