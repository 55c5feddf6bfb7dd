//! The GHL client behind the [`Connector`] trait.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use serde::Serialize;
use serde_json::{Map, Value};

use super::endpoints::Deleted;
use super::error::GhlError;
use super::models::{
    Appointment, Contact, ContactFields, Listing, Note, NoteFields, SearchQuery, Task, TaskFields,
    Unreadable,
};
use super::GhlClient;
use crate::connector::{
    Capabilities, Connector, ConnectorError, Deletion, EntityCaps, Page, Record,
};
use crate::domain::{EntityKind, MatchKey};

/// Contacts per search page when detecting changes.
const CHANGE_PAGE: u32 = 100;
/// Contacts per page of a full listing (the endpoint's maximum).
const LIST_PAGE: u32 = 100;

/// A GHL location as one side of a pair.
#[derive(Debug, Clone)]
pub struct GhlConnector {
    side: String,
    client: GhlClient,
    capabilities: Capabilities,
}

impl GhlConnector {
    /// Wraps a client. Without `contacts.write` every entity is read-only,
    /// so the engine never plans a write to this side.
    pub fn new(side: &str, client: GhlClient) -> Self {
        let writable = EntityCaps {
            read: true,
            create: true,
            update: true,
            delete: true,
            change_feed: false,
        };
        let mut entities = BTreeMap::new();
        entities.insert(
            EntityKind::Contact,
            EntityCaps {
                change_feed: true,
                ..writable
            },
        );
        entities.insert(EntityKind::Task, writable);
        entities.insert(EntityKind::Note, writable);
        entities.insert(EntityKind::Appointment, EntityCaps::READ_ONLY);
        let capabilities = Capabilities {
            entities,
            webhooks: true,
            match_keys: vec![MatchKey::Email, MatchKey::Phone],
        };
        let capabilities = if client.can_write() {
            capabilities
        } else {
            capabilities.read_only()
        };
        Self {
            side: side.to_owned(),
            client,
            capabilities,
        }
    }

    pub fn client(&self) -> &GhlClient {
        &self.client
    }

    fn error(&self, entity: EntityKind, id: Option<&str>, error: GhlError) -> ConnectorError {
        let side = self.side.clone();
        match error {
            GhlError::ScopeMissing { scope, .. } => ConnectorError::Unsupported {
                side,
                entity,
                operation: "write",
                reason: format!("the credentials lack the `{scope}` scope"),
            },
            GhlError::Budget { source, .. } => ConnectorError::Unavailable {
                side,
                message: source.to_string(),
                retry_after: (source.resumes_at - Utc::now()).to_std().ok(),
            },
            GhlError::RateLimited { retry_after, .. } => ConnectorError::Unavailable {
                side,
                message: error.to_string(),
                retry_after,
            },
            GhlError::Unauthorized { .. }
            | GhlError::TokenExpired { .. }
            | GhlError::Forbidden { .. }
            | GhlError::Auth { .. } => ConnectorError::Auth {
                side,
                message: error.to_string(),
            },
            error if error.is_duplicate() => ConnectorError::Duplicate {
                side,
                entity,
                // GHL's refusal names no contact (`BadRequestDTO` is
                // `{statusCode, message}`): the engine looks it up.
                existing_id: None,
                message: error.to_string(),
            },
            error if error.is_record_error() => ConnectorError::Record {
                side,
                entity,
                id: id.map(str::to_owned),
                message: error.to_string(),
            },
            error => ConnectorError::Unavailable {
                side,
                message: error.to_string(),
                retry_after: None,
            },
        }
    }

    fn unsupported(&self, entity: EntityKind, operation: &'static str) -> ConnectorError {
        ConnectorError::Unsupported {
            side: self.side.clone(),
            entity,
            operation,
            reason: match entity {
                EntityKind::Appointment => {
                    "appointments are read-only through the Contacts API".into()
                }
                _ => "this side cannot do that".into(),
            },
        }
    }

    fn contact_record(&self, contact: Contact) -> Result<Record, ConnectorError> {
        let updated_at = contact.date_updated.or(contact.date_added);
        self.record(
            EntityKind::Contact,
            contact.id.clone(),
            None,
            updated_at,
            &contact,
        )
    }

    fn task_record(&self, task: Task, contact_id: &str) -> Result<Record, ConnectorError> {
        let updated_at =
            timestamp(&task.extra, "dateUpdated").or_else(|| timestamp(&task.extra, "dateAdded"));
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

    fn note_record(&self, note: Note, contact_id: &str) -> Result<Record, ConnectorError> {
        let updated_at = timestamp(&note.extra, "dateUpdated").or(note.date_added);
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

    fn appointment_record(
        &self,
        event: Appointment,
        contact_id: &str,
    ) -> Result<Record, ConnectorError> {
        let updated_at = event
            .date_updated
            .or_else(|| timestamp(&event.extra, "dateAdded"));
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
    /// fields included. A record without any timestamp cannot be placed on
    /// a timeline, so it is refused (and dead-lettered by the engine).
    fn record<T: Serialize>(
        &self,
        entity: EntityKind,
        id: String,
        parent_id: Option<String>,
        updated_at: Option<DateTime<Utc>>,
        model: &T,
    ) -> Result<Record, ConnectorError> {
        let Some(updated_at) = updated_at else {
            return Err(ConnectorError::Record {
                side: self.side.clone(),
                entity,
                id: Some(id),
                message: "GHL returned the record without dateUpdated or dateAdded".into(),
            });
        };
        let fields = match serde_json::to_value(model) {
            Ok(Value::Object(fields)) => fields,
            _ => Map::new(),
        };
        Ok(Record {
            entity,
            id,
            parent_id,
            updated_at,
            fields,
        })
    }

    /// A record GHL sent that does not fit its model, as the record error
    /// the engine dead-letters. The message is the record's own reason
    /// (field, value, what is wrong) without the call: the same record
    /// reached through the change feed, the full listing or a single GET
    /// must give the same reason to be dead-lettered once. The call is
    /// logged here instead.
    fn unreadable(&self, entity: EntityKind, record: Unreadable) -> ConnectorError {
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
    fn page<T>(
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
    fn records_only(&self, page: Page) -> Vec<Record> {
        for error in &page.rejected {
            tracing::warn!(side = %self.side, error = %error, "GHL record cannot be read; skipped");
        }
        page.records
    }

    fn parent<'a>(
        &self,
        entity: EntityKind,
        parent_id: Option<&'a str>,
    ) -> Result<&'a str, ConnectorError> {
        parent_id.ok_or_else(|| ConnectorError::Record {
            side: self.side.clone(),
            entity,
            id: None,
            message: "a task, note or appointment needs its contact's id".into(),
        })
    }
}

fn timestamp(fields: &Map<String, Value>, key: &str) -> Option<DateTime<Utc>> {
    fields.get(key)?.as_str()?.parse::<DateTime<Utc>>().ok()
}

/// Typed task fields from a native patch. `completed` is left out: GHL
/// changes it through its own endpoint.
fn task_fields(patch: &Map<String, Value>) -> Result<TaskFields, String> {
    let mut patch = patch.clone();
    patch.remove("completed");
    serde_json::from_value(Value::Object(patch)).map_err(|e| format!("invalid task fields: {e}"))
}

fn note_fields(patch: &Map<String, Value>) -> Result<NoteFields, String> {
    serde_json::from_value(Value::Object(patch.clone()))
        .map_err(|e| format!("invalid note fields: {e}"))
}

#[async_trait]
impl Connector for GhlConnector {
    fn side(&self) -> &str {
        &self.side
    }

    fn location(&self) -> Option<&str> {
        Some(self.client.location_id())
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn budget(&self) -> Option<super::Headroom> {
        Some(self.client.limiter().headroom())
    }

    fn changes(
        &self,
        entity: EntityKind,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxStream<'_, Result<Page, ConnectorError>> {
        if entity != EntityKind::Contact {
            return stream::once(async move { Err(self.unsupported(entity, "list changes of")) })
                .boxed();
        }
        self.client
            .search_contact_pages(SearchQuery::updated_between(since, until, CHANGE_PAGE))
            .map(move |page| {
                let contacts = page.map_err(|e| self.error(entity, None, e))?;
                Ok(self.page(entity, contacts, |c| self.contact_record(c)))
            })
            .boxed()
    }

    fn all_contacts(&self) -> BoxStream<'_, Result<Vec<Record>, ConnectorError>> {
        self.contact_pages()
            .map(move |page| page.map(|page| self.records_only(page)))
            .boxed()
    }

    fn contact_pages(&self) -> BoxStream<'_, Result<Page, ConnectorError>> {
        let entity = EntityKind::Contact;
        self.client
            .list_contact_pages(LIST_PAGE)
            .map(move |page| {
                let contacts = page.map_err(|e| self.error(entity, None, e))?;
                Ok(self.page(entity, contacts, |c| self.contact_record(c)))
            })
            .boxed()
    }

    async fn children(
        &self,
        entity: EntityKind,
        contact_id: &str,
    ) -> Result<Vec<Record>, ConnectorError> {
        let page = self.children_page(entity, contact_id).await?;
        Ok(self.records_only(page))
    }

    async fn children_page(
        &self,
        entity: EntityKind,
        contact_id: &str,
    ) -> Result<Page, ConnectorError> {
        let wrap = |e| self.error(entity, Some(contact_id), e);
        Ok(match entity {
            EntityKind::Task => {
                let tasks = self.client.task_listing(contact_id).await.map_err(wrap)?;
                self.page(entity, tasks, |t| self.task_record(t, contact_id))
            }
            EntityKind::Note => {
                let notes = self.client.note_listing(contact_id).await.map_err(wrap)?;
                self.page(entity, notes, |n| self.note_record(n, contact_id))
            }
            EntityKind::Appointment => {
                let events = self
                    .client
                    .appointment_listing(contact_id)
                    .await
                    .map_err(wrap)?;
                self.page(entity, events, |e| self.appointment_record(e, contact_id))
            }
            EntityKind::Contact => return Err(self.unsupported(entity, "list children of")),
        })
    }

    async fn get(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<Record>, ConnectorError> {
        let found = match entity {
            // A contact GHL sends but that cannot be read is that
            // contact's problem (dead-letter it), not the side's.
            EntityKind::Contact => match self.client.read_contact(id).await {
                Ok(Ok(contact)) => Ok(self.contact_record(contact)),
                Ok(Err(unreadable)) => {
                    let mut error = self.unreadable(entity, unreadable);
                    if let ConnectorError::Record { id: named, .. } = &mut error {
                        named.get_or_insert_with(|| id.to_owned());
                    }
                    return Err(error);
                }
                Err(error) => Err(error),
            },
            EntityKind::Task => {
                let parent = self.parent(entity, parent_id)?;
                self.client
                    .get_task(parent, id)
                    .await
                    .map(|t| self.task_record(t, parent))
            }
            EntityKind::Note => {
                let parent = self.parent(entity, parent_id)?;
                self.client
                    .get_note(parent, id)
                    .await
                    .map(|n| self.note_record(n, parent))
            }
            EntityKind::Appointment => {
                let parent = self.parent(entity, parent_id)?;
                let events = self.client.list_appointments(parent).await;
                return match events {
                    Ok(events) => events
                        .into_iter()
                        .find(|event| event.id == id)
                        .map(|event| self.appointment_record(event, parent))
                        .transpose(),
                    Err(error) => Err(self.error(entity, Some(id), error)),
                };
            }
        };
        match found {
            Ok(record) => record.map(Some),
            Err(GhlError::NotFound { .. }) => Ok(None),
            Err(GhlError::BadRequest { message, .. })
                if message.to_ascii_lowercase().contains("not found") =>
            {
                Ok(None)
            }
            Err(error) => Err(self.error(entity, Some(id), error)),
        }
    }

    async fn create(
        &self,
        entity: EntityKind,
        parent_id: Option<&str>,
        fields: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        if !self.capabilities.of(entity).create {
            return Err(self.unsupported(entity, "create"));
        }
        let invalid = |message: String| ConnectorError::Record {
            side: self.side.clone(),
            entity,
            id: None,
            message,
        };
        match entity {
            EntityKind::Contact => {
                let contact = self
                    .client
                    .create_contact(&ContactFields {
                        fields: fields.clone(),
                    })
                    .await
                    .map_err(|e| self.error(entity, None, e))?;
                self.contact_record(contact)
            }
            EntityKind::Task => {
                let parent = self.parent(entity, parent_id)?;
                let mut typed = task_fields(fields).map_err(invalid)?;
                typed.completed = fields.get("completed").and_then(Value::as_bool);
                let task = self
                    .client
                    .create_task(parent, &typed)
                    .await
                    .map_err(|e| self.error(entity, None, e))?;
                self.task_record(task, parent)
            }
            EntityKind::Note => {
                let parent = self.parent(entity, parent_id)?;
                let typed = note_fields(fields).map_err(invalid)?;
                let note = self
                    .client
                    .create_note(parent, &typed)
                    .await
                    .map_err(|e| self.error(entity, None, e))?;
                self.note_record(note, parent)
            }
            EntityKind::Appointment => Err(self.unsupported(entity, "create")),
        }
    }

    async fn update(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
        patch: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        if !self.capabilities.of(entity).update {
            return Err(self.unsupported(entity, "update"));
        }
        let wrap = |e| self.error(entity, Some(id), e);
        let invalid = |message: String| ConnectorError::Record {
            side: self.side.clone(),
            entity,
            id: Some(id.to_owned()),
            message,
        };
        match entity {
            EntityKind::Contact => {
                let contact = self
                    .client
                    .update_contact(
                        id,
                        &ContactFields {
                            fields: patch.clone(),
                        },
                    )
                    .await
                    .map_err(wrap)?;
                self.contact_record(contact)
            }
            EntityKind::Task => {
                let parent = self.parent(entity, parent_id)?;
                let typed = task_fields(patch).map_err(invalid)?;
                let mut task = None;
                if typed != TaskFields::default() {
                    task = Some(
                        self.client
                            .update_task(parent, id, &typed)
                            .await
                            .map_err(wrap)?,
                    );
                }
                // Completion has its own endpoint (PUT …/completed).
                if let Some(completed) = patch.get("completed").and_then(Value::as_bool) {
                    task = Some(
                        self.client
                            .complete_task(parent, id, completed)
                            .await
                            .map_err(wrap)?,
                    );
                }
                let task = match task {
                    Some(task) => task,
                    None => self.client.get_task(parent, id).await.map_err(wrap)?,
                };
                self.task_record(task, parent)
            }
            EntityKind::Note => {
                let parent = self.parent(entity, parent_id)?;
                let typed = note_fields(patch).map_err(invalid)?;
                let note = self
                    .client
                    .update_note(parent, id, &typed)
                    .await
                    .map_err(wrap)?;
                self.note_record(note, parent)
            }
            EntityKind::Appointment => Err(self.unsupported(entity, "update")),
        }
    }

    async fn delete(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Deletion, ConnectorError> {
        if !self.capabilities.of(entity).delete {
            return Err(self.unsupported(entity, "delete"));
        }
        let deleted = match entity {
            EntityKind::Contact => self.client.delete_contact(id).await,
            EntityKind::Task => {
                self.client
                    .delete_task(self.parent(entity, parent_id)?, id)
                    .await
            }
            EntityKind::Note => {
                self.client
                    .delete_note(self.parent(entity, parent_id)?, id)
                    .await
            }
            EntityKind::Appointment => return Err(self.unsupported(entity, "delete")),
        };
        match deleted.map_err(|e| self.error(entity, Some(id), e))? {
            Deleted::Deleted => Ok(Deletion::Deleted),
            Deleted::AlreadyGone => Ok(Deletion::AlreadyGone),
        }
    }

    async fn find_contacts(
        &self,
        key: MatchKey,
        value: &str,
    ) -> Result<Vec<Record>, ConnectorError> {
        let (email, phone) = match key {
            MatchKey::Email => (Some(value), None),
            MatchKey::Phone => (None, Some(value)),
        };
        let found = self
            .client
            .find_duplicate(email, phone)
            .await
            .map_err(|e| self.error(EntityKind::Contact, None, e))?;
        found
            .map(|contact| self.contact_record(contact))
            .into_iter()
            .collect()
    }
}
