//! The tasks of many contacts through the location-wide task search
//! (`task_search.rs`), as one page for the engine, when the side may use
//! it; `None` sends the engine back to one read per contact.

use std::sync::atomic::Ordering;

use super::GhlConnector;
use crate::connector::ghl::task_search::CONTACTS_PER_SEARCH;
use crate::connector::ghl::GhlError;
use crate::connector::{ConnectorError, Page};
use crate::domain::EntityKind;

/// How the tasks of a GHL side are reconciled, for `ghlsync doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskReads {
    /// `POST /locations/{locationId}/tasks/search`, many contacts a request.
    LocationSearch,
    /// `GET /contacts/{id}/tasks`, one request per contact: the side's
    /// scopes lack `locations/tasks.readonly`.
    PerContact,
}

impl GhlConnector {
    /// How this side's tasks are read for many contacts at once.
    pub fn task_reads(&self) -> TaskReads {
        if self.client.can_search_tasks() && !self.task_search_refused.load(Ordering::Relaxed) {
            TaskReads::LocationSearch
        } else {
            TaskReads::PerContact
        }
    }

    /// The tasks of `contacts` (see [`crate::connector::Connector::children_of_many`]).
    /// A task the answer does not attribute to a contact cannot be decided
    /// (its parent is unknown) nor ruled out for any contact: the contacts
    /// are then read one by one instead. GHL refusing the scope (401, 403:
    /// the grant lacks it after all) switches the side to reads per
    /// contact for the rest of the run, with a warning.
    pub(super) async fn tasks_of_many(
        &self,
        contacts: &[String],
    ) -> Option<Result<Page, ConnectorError>> {
        if self.task_reads() != TaskReads::LocationSearch {
            return None;
        }
        let entity = EntityKind::Task;
        let mut tasks = Vec::new();
        let mut unreadable = Vec::new();
        for chunk in contacts.chunks(CONTACTS_PER_SEARCH) {
            match self.client.search_tasks(chunk).await {
                Ok(mut listing) => {
                    tasks.append(&mut listing.records);
                    unreadable.append(&mut listing.unreadable);
                }
                Err(error @ (GhlError::Unauthorized { .. } | GhlError::Forbidden { .. })) => {
                    self.task_search_refused.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        side = %self.side,
                        error = %error,
                        "the location-wide task search was refused; reading tasks per contact from now on"
                    );
                    return None;
                }
                Err(error) => return Some(Err(self.error(entity, None, error))),
            }
        }
        if tasks.iter().any(|task| task.contact_id.is_none()) {
            tracing::warn!(
                side = %self.side,
                "the task search answered a task without its contactId; reading tasks per contact"
            );
            return None;
        }
        let listing = crate::connector::ghl::models::Listing {
            records: tasks,
            unreadable,
        };
        Some(Ok(self.page(entity, listing, |task| {
            let parent = task.contact_id.clone().unwrap_or_default();
            self.task_record(task, &parent)
        })))
    }
}
