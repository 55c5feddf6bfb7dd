//! `POST /locations/{locationId}/tasks/search`: the tasks of many contacts
//! in one request (`apps/locations.json`, `task-search`; GHL field notes,
//! "Tasks and notes"). One read per contact is what reconciling tasks
//! costs without it: 100,000 requests for 100,000 contacts, against about
//! one per [`CONTACTS_PER_SEARCH`] contacts with it.
//!
//! It needs the scope [`TASKS_SCOPE`], which a Contacts-only install does
//! not have: the connector uses it only when the side's scopes list it
//! ([`GhlClient::can_search_tasks`]) and reads per contact otherwise.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use super::client::{ApiPath, GhlClient, Request};
use super::error::GhlError;
use super::models::{Listing, Task};
use super::reading::read_records;

/// The scope of the location-wide task search.
pub const TASKS_SCOPE: &str = "locations/tasks.readonly";

/// Contacts named in one search (`contactId[]`): a body of a few KB. The
/// spec gives no maximum; a page of a reconciliation's children is 50.
pub const CONTACTS_PER_SEARCH: usize = 100;

/// Tasks asked for per request. The spec documents the default (25) and
/// no maximum; 100 is the size GHL's other listings allow. Paging stops at
/// the first page holding fewer: a server that capped pages below this
/// would end the walk early, which can only make tasks look missing, and
/// the engine confirms a missing task per contact before it deletes
/// anything (`Connector::children_lag`).
pub const TASKS_PER_PAGE: usize = 100;

/// The answer: `tasks` as objects (the spec's 200 schema is a
/// placeholder, an array of arrays; the field notes say to expect task
/// objects), each kept raw to be read on its own.
#[derive(Deserialize)]
struct TaskPage {
    #[serde(default)]
    tasks: Option<Vec<Box<RawValue>>>,
}

impl GhlClient {
    /// Whether the side's scopes include [`TASKS_SCOPE`].
    pub fn can_search_tasks(&self) -> bool {
        self.options.scopes.iter().any(|scope| scope == TASKS_SCOPE)
    }

    /// Every task of `contact_ids` (at most [`CONTACTS_PER_SEARCH`]),
    /// paged by `skip` at [`TASKS_PER_PAGE`]; a task that cannot be read
    /// is set aside in [`Listing::unreadable`].
    pub async fn search_tasks(&self, contact_ids: &[String]) -> Result<Listing<Task>, GhlError> {
        let path = ApiPath::fill("/locations/:locationId/tasks/search", &[self.location_id()]);
        let call = self.call(&Method::POST, &path);
        let mut listing = Listing::default();
        let mut skip = 0usize;
        loop {
            let body = json!({
                "contactId": contact_ids,
                "limit": TASKS_PER_PAGE,
                "skip": skip,
            });
            let request = Request::write(Method::POST, path.clone(), Some(&body)).reading();
            let page: TaskPage = self.execute(&request).await?;
            let raw = page.tasks.unwrap_or_default();
            let received = raw.len();
            let mut read: Listing<Task> = read_records(&call, "task", Some(raw));
            listing.records.append(&mut read.records);
            listing.unreadable.append(&mut read.unreadable);
            if received < TASKS_PER_PAGE {
                return Ok(listing);
            }
            skip += received;
        }
    }
}
