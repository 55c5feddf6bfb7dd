//! The GHL client behind the [`Connector`] trait.

mod bulk;
mod errors;
mod records;
mod tags;

pub use bulk::TaskReads;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use serde_json::{Map, Value};

use self::records::{note_fields, task_fields};
use super::endpoints::Deleted;
use super::error::GhlError;
use super::models::{ContactFields, SearchQuery, TaskFields};
use super::GhlClient;
use crate::connector::{
    Capabilities, Connector, ConnectorError, Deletion, EntityCaps, Page, Patch, Record,
};
use crate::domain::{EntityKind, MatchKey};

/// Contacts per search page, for the change feed and the full listing
/// alike: the most search gives (FIELD-NOTES.md, "Search"), so 100,000
/// contacts list in about 200 requests, not 1,000 (`GET /contacts/` gives
/// at most 100 a page).
const SEARCH_PAGE: u32 = crate::connector::ghl::pages::SEARCH_LIMIT_MAX;

/// A GHL location as one side of a pair.
#[derive(Debug, Clone)]
pub struct GhlConnector {
    side: String,
    client: GhlClient,
    capabilities: Capabilities,
    /// GHL refused the location-wide task search (the grant lacks its
    /// scope although the configuration lists it): tasks are read per
    /// contact from then on (`connector/bulk.rs`).
    task_search_refused: Arc<AtomicBool>,
}

impl GhlConnector {
    /// Whether GHL lists changes of `entity` since a time: contacts only
    /// (a search by `dateUpdated`). Tasks and notes are read per contact,
    /// as the children of the contacts that changed, and by
    /// reconciliation; `status` says so instead of a lag.
    pub const fn has_change_feed(entity: EntityKind) -> bool {
        matches!(entity, EntityKind::Contact)
    }

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
        for entity in [EntityKind::Contact, EntityKind::Task, EntityKind::Note] {
            let change_feed = Self::has_change_feed(entity);
            entities.insert(
                entity,
                EntityCaps {
                    change_feed,
                    ..writable
                },
            );
        }
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
            task_search_refused: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn client(&self) -> &GhlClient {
        &self.client
    }

    /// The contacts `query` finds, page by page, read in `GET
    /// /contacts/{id}`'s spelling: the one pager of the change feed and
    /// the full listing.
    fn search_pages(&self, query: SearchQuery) -> BoxStream<'_, Result<Page, ConnectorError>> {
        let entity = EntityKind::Contact;
        self.client
            .search_contact_pages(query)
            .map(move |page| {
                let contacts = page.map_err(|e| self.error(entity, None, e))?;
                Ok(self.page(entity, contacts, |c| {
                    self.contact_record(records::from_search_spelling(c))
                }))
            })
            .boxed()
    }
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

    fn limiter(&self) -> Option<std::sync::Arc<super::RateLimiter>> {
        Some(self.client.limiter().clone())
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
        self.search_pages(SearchQuery::updated_between(since, until, SEARCH_PAGE))
    }

    fn all_contacts(&self) -> BoxStream<'_, Result<Vec<Record>, ConnectorError>> {
        self.contact_pages()
            .map(move |page| page.map(|page| self.records_only(page)))
            .boxed()
    }

    /// The search at pages of 500, sorted by `dateAdded` (see
    /// [`SearchQuery::everything`]). Search is an index that may lag a
    /// write by seconds (field notes): [`Connector::listing_lags`] says
    /// so, and reconciliation confirms a contact missing from the listing
    /// before it takes it for deleted.
    fn contact_pages(&self) -> BoxStream<'_, Result<Page, ConnectorError>> {
        self.search_pages(SearchQuery::everything(SEARCH_PAGE))
    }

    fn listing_lags(&self) -> bool {
        true
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

    /// Tasks through the location-wide task search when the side's scopes
    /// include `locations/tasks.readonly` (see `connector/bulk.rs`).
    async fn children_of_many(
        &self,
        entity: EntityKind,
        contacts: &[String],
    ) -> Option<Result<Page, ConnectorError>> {
        match entity {
            EntityKind::Task => self.tasks_of_many(contacts).await,
            _ => None,
        }
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

    /// A contact's tags are never sent in its PUT (see `connector/tags.rs`):
    /// requests per contact update, besides the writer's re-read
    /// (`GET /contacts/{id}`, one, when the write has an `expect`):
    ///
    /// | the patch changes | requests |
    /// | --- | --- |
    /// | other fields only | 1: `PUT` |
    /// | tags and other fields | 2 or 3: `POST …/tags` when some are added, `DELETE …/tags` when some are removed, then `PUT` (its answer holds the new tags) |
    /// | tags only | 2 or 3: the tag requests, then `GET /contacts/{id}`, the tag endpoints answering with the tags only, not the contact |
    ///
    /// (Before, each was 1 `PUT` carrying the whole list.) The `GET` of a
    /// tags-only write costs one read, not a write: the engine records
    /// the written version as seen only from a whole record that holds
    /// the new snapshot (`engine::writer::holds_snapshot`), and without
    /// it the next poll would decide the contact again. The tag requests
    /// go first so that the PUT's or GET's answer is the contact as it
    /// now is; each is idempotent, so a retried write resends none twice
    /// to any effect.
    async fn update(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
        patch: &Patch,
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
                let split = tags::split(patch).map_err(invalid)?;
                if !split.add.is_empty() {
                    self.client.add_tags(id, &split.add).await.map_err(wrap)?;
                }
                if !split.remove.is_empty() {
                    self.client
                        .remove_tags(id, &split.remove)
                        .await
                        .map_err(wrap)?;
                }
                let contact = if split.put.is_empty() {
                    self.client.get_contact(id).await
                } else {
                    let fields = ContactFields { fields: split.put };
                    self.client.update_contact(id, &fields).await
                };
                self.contact_record(contact.map_err(wrap)?)
            }
            EntityKind::Task => {
                let parent = self.parent(entity, parent_id)?;
                let patch = &patch.fields;
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
                let typed = note_fields(&patch.fields).map_err(invalid)?;
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

    /// One `POST /contacts/{id}/tags` (GHL field notes, "Tags": it adds,
    /// keeping the contact's other tags), no read. A contact that is gone
    /// has nothing to tag: done.
    async fn add_tags(
        &self,
        entity: EntityKind,
        id: &str,
        tags: &Map<String, Value>,
    ) -> Option<Result<(), ConnectorError>> {
        if entity != EntityKind::Contact || tags.len() != 1 {
            return None;
        }
        let list = tags::tag_list(tags.get("tags")?)?;
        if !self.capabilities.of(entity).update {
            return Some(Err(self.unsupported(entity, "update")));
        }
        if list.is_empty() {
            return Some(Ok(()));
        }
        Some(match self.client.add_tags(id, &list).await {
            Ok(_) | Err(GhlError::NotFound { .. }) => Ok(()),
            Err(error) => Err(self.error(entity, Some(id), error)),
        })
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
        // The duplicate search is a search too; whichever spelling it
        // answers in, the record is read in `GET /contacts/{id}`'s.
        found
            .map(|contact| self.contact_record(records::from_search_spelling(contact)))
            .into_iter()
            .collect()
    }
}
