//! The three ways to list contacts: `POST /contacts/search` (filters,
//! sort, `page` or `searchAfter`), the deprecated `GET /contacts/`
//! (cursor `startAfter` + `startAfterId`, ordered by `dateAdded`) and
//! `GET /contacts/business/{businessId}` (`skip` / `limit`).
//!
//! Split by job: this file holds the limits and the parsed search; `parse`
//! reads and checks a search body; `matching` decides whether a contact
//! matches a filter or a free-text query; `run` orders, pages and answers
//! a search; `list` answers the two listing endpoints.

mod list;
mod matching;
mod parse;
mod run;

use serde_json::Value;

pub(crate) use list::{all_contacts, by_business, list, ListParams};

/// Largest `pageLimit` of a search.
pub const SEARCH_MAX_PAGE_LIMIT: u64 = 500;
/// Default `pageLimit` of a search.
pub const SEARCH_DEFAULT_PAGE_LIMIT: u64 = 20;
/// `page * pageLimit` may not exceed this (deeper pages need
/// `searchAfter`), as on the live API.
pub const SEARCH_MAX_PAGE_WINDOW: u64 = 10_000;
/// Largest `limit` of `GET /contacts/` and `GET /contacts/business/:id`.
pub const LIST_MAX_LIMIT: u64 = 100;
/// Default `limit` of those.
pub const LIST_DEFAULT_LIMIT: u64 = 20;

#[derive(Debug, Clone)]
enum Filter {
    Cond { field: String, op: Op, value: Value },
    Group { any: bool, filters: Vec<Filter> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    NotEq,
    Contains,
    NotContains,
    Range,
    Exists,
    NotExists,
}

const OPERATORS: &str = "eq, not_eq, contains, not_contains, range, exists, not_exists";

#[derive(Debug, Clone)]
struct Sort {
    field: String,
    desc: bool,
}

/// A parsed search body.
#[derive(Debug, Clone)]
pub(crate) struct Search {
    pub location_id: String,
    page_limit: usize,
    page: Option<usize>,
    search_after: Option<Vec<Value>>,
    filters: Vec<Filter>,
    sort: Vec<Sort>,
    query: Option<String>,
    /// Contacts updated after this (epoch ms) are not indexed yet.
    visible_until: Option<i64>,
}

impl Search {
    /// Finds only contacts whose `dateUpdated` is at or before
    /// `visible_until` (epoch ms): the search index's lag.
    pub fn visible_until(mut self, visible_until: i64) -> Self {
        self.visible_until = Some(visible_until);
        self
    }
}
