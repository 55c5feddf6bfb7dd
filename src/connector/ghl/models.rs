//! GHL API v2 records and request bodies.
//!
//! Records parse leniently: the live API returns fields the spec omits (for
//! example `dateUpdated` on list items) and omits some it lists, so every
//! known field is optional (absent or `null` alike) and everything unknown
//! is kept in `extra` and written back unchanged. Reading, mapping and
//! writing a record therefore never loses a field.
//!
//! Answers are read record by record ([`read_records`]): the envelope is
//! parsed with each record left as raw JSON, then each record is parsed on
//! its own, so one record that does not fit its model (issue 13: a phone
//! sent as a number, a contact without an id) is set aside as
//! [`Unreadable`] and the others of its page still go through.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

/// Reads each record of an answer on its own as a `T`.
pub(crate) fn read_records<T: DeserializeOwned>(
    call: &Call,
    kind: &'static str,
    raw: Option<Vec<Box<RawValue>>>,
) -> Listing<T> {
    let raw = raw.unwrap_or_default();
    let mut listing = Listing {
        records: Vec::with_capacity(raw.len()),
        unreadable: Vec::new(),
    };
    for record in &raw {
        match read_record(call, kind, record) {
            Ok(record) => listing.records.push(record),
            Err(unreadable) => listing.unreadable.push(unreadable),
        }
    }
    listing
}

/// Reads one record as a `T`, straight from its text (no intermediate
/// `Value` for a record that fits); only a record that does not is parsed
/// again as a `Value`, to say what is wrong with it.
pub(crate) fn read_record<T: DeserializeOwned>(
    call: &Call,
    kind: &'static str,
    raw: &RawValue,
) -> Result<T, Unreadable> {
    serde_json::from_str(raw.get()).map_err(|error| {
        // The envelope parsed, so the record is valid JSON.
        let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        unreadable::<T>(call, kind, value, &error)
    })
}

/// Why `value` is not a `T`, naming the field at fault.
fn unreadable<T: DeserializeOwned>(
    call: &Call,
    kind: &'static str,
    value: Value,
    error: &serde_json::Error,
) -> Unreadable {
    let mut found = Unreadable {
        call: call.clone(),
        kind,
        id: None,
        updated_at: None,
        field: None,
        reason: String::new(),
        raw: Value::Null,
    };
    let Value::Object(fields) = &value else {
        found.reason = format!("the {kind} is {}, expected an object", type_name(&value));
        found.raw = value;
        return found;
    };
    found.id = fields.get("id").and_then(id_text);
    found.updated_at = ["dateUpdated", "dateAdded"]
        .iter()
        .find_map(|key| fields.get(*key)?.as_str()?.parse::<DateTime<Utc>>().ok());
    let (field, reason) = match fields.get("id") {
        None | Some(Value::Null) => (
            Some("id".to_owned()),
            format!("it has no `id` ({})", identity(fields)),
        ),
        Some(Value::String(id)) if id.trim().is_empty() => (
            Some("id".to_owned()),
            format!("its `id` is empty ({})", identity(fields)),
        ),
        _ => match culprit::<T>(fields) {
            Some((field, why)) => {
                let reason = field_reason(&field, &fields[&field], &why);
                (Some(field), reason)
            }
            None => (None, without_position(error)),
        },
    };
    found.field = field;
    found.reason = reason;
    found.raw = value;
    found
}

/// The first field that alone makes a record unreadable as a `T`, with
/// serde's reason. Each field is tried next to a placeholder `id` (the
/// one field every read model requires); only runs for a record that
/// already failed, so its cost does not matter.
fn culprit<T: DeserializeOwned>(fields: &Map<String, Value>) -> Option<(String, String)> {
    fields.iter().find_map(|(key, value)| {
        let mut probe = Map::new();
        if key != "id" {
            probe.insert("id".to_owned(), Value::String("-".to_owned()));
        }
        probe.insert(key.clone(), value.clone());
        T::deserialize(&Value::Object(probe))
            .err()
            .map(|error| (key.clone(), without_position(&error)))
    })
}

/// "field `phone` holds 12345: invalid type: …", the value withheld for
/// a field whose name suggests a secret or an identity number.
fn field_reason(field: &str, value: &Value, why: &str) -> String {
    if is_sensitive(field) {
        format!(
            "field `{field}` holds {} that does not fit (value withheld: the field may be sensitive)",
            type_name(value)
        )
    } else {
        format!("field `{field}` holds {}: {why}", json_snippet(value))
    }
}

/// Field names whose values are not repeated in reasons and logs.
fn is_sensitive(field: &str) -> bool {
    let field = field.to_ascii_lowercase();
    ["ssn", "password", "secret", "token", "apikey", "api_key"]
        .iter()
        .any(|word| field.contains(word))
}

/// What identifies a record without an id, for the operator to find it:
/// the values of its identifying fields that are present.
fn identity(fields: &Map<String, Value>) -> String {
    const KEYS: [&str; 7] = [
        "email",
        "phone",
        "firstName",
        "lastName",
        "title",
        "contactId",
        "dateAdded",
    ];
    let parts: Vec<String> = KEYS
        .iter()
        .filter_map(|key| match fields.get(*key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(format!("{key} {}", json_snippet(value))),
        })
        .collect();
    if parts.is_empty() {
        "no identifying field either".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A value as JSON, cut to 120 characters.
fn json_snippet(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// serde's message without ` at line 1 column 177`: a position inside
/// one record's text says nothing an operator can use, and would make the
/// same record's reason differ between answers.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if error.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// An id as text: a non-empty string, or an integer (wrong, but it still
/// names the record).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn type_name(value: &Value) -> &'static str {
    crate::connector::rest::spec::type_name(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call() -> Call {
        Call {
            method: "GET",
            path: "/contacts/".to_owned(),
            location: "loc".to_owned(),
        }
    }

    fn raw(value: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&value).unwrap()
    }

    #[test]
    fn one_bad_record_is_set_aside_and_the_others_are_read() {
        let listing: Listing<Contact> = read_records(
            &call(),
            "contact",
            Some(vec![
                raw(json!({"id": "a", "phone": "+15125550100", "custom": [1]})),
                raw(json!({"id": "b", "phone": 12345, "dateUpdated": "2026-01-02T03:04:05.000Z"})),
                raw(json!({"email": "x@example.com", "dateAdded": "2026-01-01T00:00:00.000Z"})),
                raw(json!({"id": "c", "email": null, "tags": null, "dateUpdated": null})),
                raw(json!("not a record")),
            ]),
        );
        let ids: Vec<&str> = listing.records.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"], "absent and null optional fields are fine");
        assert_eq!(
            listing.records[0].extra["custom"],
            json!([1]),
            "unknown fields kept"
        );
        assert_eq!(listing.len(), 5);

        let [phone, no_id, text] = &listing.unreadable[..] else {
            panic!("{:#?}", listing.unreadable)
        };
        assert_eq!(phone.id.as_deref(), Some("b"));
        assert_eq!(phone.field.as_deref(), Some("phone"));
        assert_eq!(
            phone.reason,
            "field `phone` holds 12345: invalid type: integer `12345`, expected a string"
        );
        assert_eq!(
            phone.updated_at,
            Some("2026-01-02T03:04:05Z".parse().unwrap())
        );
        assert_eq!(no_id.id, None);
        assert_eq!(no_id.field.as_deref(), Some("id"));
        assert!(
            no_id.reason.contains("no `id`") && no_id.reason.contains("x@example.com"),
            "{}",
            no_id.reason
        );
        assert!(no_id.updated_at.is_some(), "dateAdded stands in");
        assert!(
            text.reason.contains("is a string, expected an object"),
            "{}",
            text.reason
        );
        assert!(
            phone.to_string().contains("GET /contacts/") && phone.to_string().contains("contact b"),
            "{phone}"
        );
    }

    #[test]
    fn a_sensitive_field_is_named_without_its_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WithSsn {
            id: String,
            ssn: Option<String>,
        }
        let error = read_record::<WithSsn>(
            &call(),
            "contact",
            &raw(json!({"id": "a", "ssn": 123456789})),
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("ssn"));
        assert!(!error.reason.contains("123456789"), "{}", error.reason);
    }

    #[test]
    fn strict_names_the_first_unreadable_record() {
        let listing: Listing<Task> = read_records(
            &call(),
            "task",
            Some(vec![raw(json!({"id": "t", "completed": "yes"}))]),
        );
        let error = listing.strict().unwrap_err().to_string();
        assert!(
            error.contains("task t") && error.contains("field `completed`"),
            "{error}"
        );
    }
}
