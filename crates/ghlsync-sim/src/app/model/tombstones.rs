//! Tombstones: a deleted record leaves one (`entity`, `id`, `contact_id`,
//! `deleted_at`), so a client paging the deletions feed learns of every
//! deletion, in the order they happened.

use serde_json::{json, Value};

use super::table::{page_keys, start_bound};
use super::{Action, Db, Entity, FeedQuery, Page, Record};

impl Db {
    /// Records the deletion of a record (and its event).
    pub(super) fn tombstone(&mut self, entity: Entity, id: &str, contact_id: Option<&str>) {
        let now = self.tick();
        let mut record = Record::new();
        record.insert("entity".into(), json!(entity.name()));
        record.insert("id".into(), json!(id));
        record.insert(
            "contact_id".into(),
            contact_id.map_or(Value::Null, |c| json!(c)),
        );
        record.insert("deleted_at".into(), json!(now));
        self.tombstones.insert((now, id.to_string()), record);
        self.event(entity, Action::Deleted, id, contact_id, now);
    }

    /// One page of the tombstones feed (by `(deleted_at, id)`).
    pub fn deleted_page(&self, query: &FeedQuery) -> Page {
        let keys = self.tombstones.range(start_bound(query)).map(|(k, _)| k);
        let (items, more) = page_keys(keys, query.limit, |key| self.tombstones.get(key).cloned());
        Page { items, more }
    }

    /// Every tombstone, oldest first.
    pub fn tombstones(&self) -> Vec<Record> {
        self.tombstones.values().cloned().collect()
    }
}
