//! GHL's typed models as the engine's records (their JSON the native
//! form, unknown fields included) and pages, and native patches back as
//! typed task and note fields.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::GhlConnector;
use crate::connector::ghl::models::{
    Appointment, Contact, Listing, Note, NoteFields, Task, TaskFields, Unreadable,
};
use crate::connector::{ConnectorError, Page, Record, Stamp};
use crate::domain::EntityKind;

impl GhlConnector {
    pub(super) fn contact_record(&self, contact: Contact) -> Result<Record, ConnectorError> {
        // `dateAdded` says when a record was born, not when it last
        // changed: a record without `dateUpdated` is told apart by content.
        let updated_at = contact.date_updated;
        self.record(
            EntityKind::Contact,
            contact.id.clone(),
            None,
            updated_at,
            &contact,
        )
    }

    pub(super) fn task_record(
        &self,
        task: Task,
        contact_id: &str,
    ) -> Result<Record, ConnectorError> {
        let updated_at = timestamp(&task.extra, "dateUpdated");
        let parent = task
            .contact_id
            .clone()
            .unwrap_or_else(|| contact_id.to_owned());
        self.record(
            EntityKind::Task,
            task.id.clone(),
            Some(parent),
            updated_at,
            &task,
        )
    }

    pub(super) fn note_record(
        &self,
        note: Note,
        contact_id: &str,
    ) -> Result<Record, ConnectorError> {
        let updated_at = timestamp(&note.extra, "dateUpdated");
        let parent = note
            .contact_id
            .clone()
            .unwrap_or_else(|| contact_id.to_owned());
        self.record(
            EntityKind::Note,
            note.id.clone(),
            Some(parent),
            updated_at,
            &note,
        )
    }

    pub(super) fn appointment_record(
        &self,
        event: Appointment,
        contact_id: &str,
    ) -> Result<Record, ConnectorError> {
        let updated_at = event.date_updated;
        let parent = event
            .contact_id
            .clone()
            .unwrap_or_else(|| contact_id.to_owned());
        self.record(
            EntityKind::Appointment,
            event.id.clone(),
            Some(parent),
            updated_at,
            &event,
        )
    }

    /// A record from a typed model: its JSON is the native form, unknown
    /// fields included. A record GHL gives no change time (tasks never
    /// have one in the official `TaskSchema`, notes only `dateAdded`) is
    /// stamped with the time it was read: [`Stamp::ReadAt`].
    pub(super) fn record<T: Serialize>(
        &self,
        entity: EntityKind,
        id: String,
        parent_id: Option<String>,
        updated_at: Option<DateTime<Utc>>,
        model: &T,
    ) -> Result<Record, ConnectorError> {
        let fields = match serde_json::to_value(model) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        let (updated_at, stamp) = match updated_at {
            Some(at) => (at, Stamp::Side),
            None => (crate::clock::now(), Stamp::ReadAt),
        };
        Ok(Record {
            entity,
            id,
            parent_id,
            updated_at,
            stamp,
            fields,
        })
    }

    /// A record GHL sent that does not fit its model, as the record error
    /// the engine dead-letters. The message is the record's own reason
    /// (field, value, what is wrong) without the call: the same record
    /// reached through the change feed, the full listing or a single GET
    /// must give the same reason to be dead-lettered once. The call is
    /// logged here instead.
    pub(super) fn unreadable(&self, entity: EntityKind, record: Unreadable) -> ConnectorError {
        tracing::debug!(
            side = %self.side,
            call = %record.call,
            record = record.id.as_deref().unwrap_or("-"),
            field = record.field.as_deref().unwrap_or("-"),
            reason = %record.reason,
            "GHL record cannot be read; set aside"
        );
        ConnectorError::Record {
            side: self.side.clone(),
            entity,
            id: record.id,
            message: format!("GHL sent it unreadable: {}", record.reason),
        }
    }

    /// A listing as a [`Page`]: the records that read and have a
    /// timestamp, and the others set aside. The watermark is the newest
    /// `updated_at` the page holds, the set-aside records' included where
    /// it could be read: they are dead-lettered in the commit that moves
    /// the watermark, so moving past them loses nothing, and a page of
    /// nothing but bad records does not hold the change feed back.
    pub(super) fn page<T>(
        &self,
        entity: EntityKind,
        listing: Listing<T>,
        record: impl Fn(T) -> Result<Record, ConnectorError>,
    ) -> Page {
        let newest_unreadable = listing.unreadable.iter().filter_map(|u| u.updated_at).max();
        let mut records = Vec::with_capacity(listing.records.len());
        let mut rejected = Vec::new();
        for item in listing.records {
            match record(item) {
                Ok(record) => records.push(record),
                Err(error) => rejected.push(error),
            }
        }
        rejected.extend(
            listing
                .unreadable
                .into_iter()
                .map(|u| self.unreadable(entity, u)),
        );
        let mut page = Page::with_rejected(records, rejected);
        page.watermark = page.watermark.max(newest_unreadable);
        page
    }

    /// The records of a page for callers of the plain listings, the ones
    /// set aside logged (the engine reads the pages and dead-letters them).
    pub(super) fn records_only(&self, page: Page) -> Vec<Record> {
        for error in &page.rejected {
            tracing::warn!(side = %self.side, error = %error, "GHL record cannot be read; skipped");
        }
        page.records
    }
}

/// A contact of a `POST /contacts/search` answer in the spelling of
/// `GET /contacts/{id}`, which field maps are written against: "Search
/// answers spell some fields differently from `GET /contacts/{id}` (for
/// example `address` rather than `address1`, and `dateOfBirth` as epoch
/// milliseconds): map from the shape each endpoint really returns"
/// (FIELD-NOTES.md, "Search"). Read as spelled, a search answer would
/// show every address as cleared, and the sync would clear it elsewhere.
pub(super) fn from_search_spelling(mut contact: Contact) -> Contact {
    let extra = &mut contact.extra;
    if !extra.contains_key("address1") {
        if let Some(address) = extra.remove("address") {
            extra.insert("address1".to_owned(), address);
        }
    }
    let birth = extra.get("dateOfBirth").and_then(Value::as_i64);
    if let Some(date) = birth.and_then(DateTime::from_timestamp_millis) {
        let date = date.date_naive().format("%Y-%m-%d").to_string();
        extra.insert("dateOfBirth".to_owned(), Value::String(date));
    }
    contact
}

/// A change time the typed model does not name (a task's or note's
/// `dateUpdated`, which the spec does not list but GHL may send).
fn timestamp(fields: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    crate::connector::ghl::times::parse(fields.get(key)?)
        .ok()
        .flatten()
}

/// Typed task fields from a native patch. `completed` is left out: GHL
/// changes it through its own endpoint.
pub(super) fn task_fields(patch: &Map<String, Value>) -> Result<TaskFields, String> {
    let mut patch = patch.clone();
    patch.remove("completed");
    serde_json::from_value(Value::Object(patch)).map_err(|e| format!("invalid task fields: {e}"))
}

pub(super) fn note_fields(patch: &Map<String, Value>) -> Result<NoteFields, String> {
    serde_json::from_value(Value::Object(patch.clone()))
        .map_err(|e| format!("invalid note fields: {e}"))
}
