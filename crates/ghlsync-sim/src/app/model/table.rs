//! The tables records live in, and the change feeds' paging: every table
//! keeps its records in `(updated_at, id)` order, which is the order the
//! feeds walk and their cursors name.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use serde_json::Value;

use super::Record;

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
pub(super) fn start_bound(query: &FeedQuery) -> (Bound<FeedKey>, Bound<FeedKey>) {
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
pub(super) fn page_keys<'a>(
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
