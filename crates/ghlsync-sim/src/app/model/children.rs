//! Writing a contact's tasks and notes: each kept in its own table and,
//! per contact, in creation order. A task or note write leaves the
//! contact's `updated_at` as it is.

use serde_json::json;

use super::{str_field, Action, Child, Db, Record};
use crate::app::error::AppSimError;

impl Db {
    /// A contact's tasks or notes, in creation order.
    pub fn children(&self, contact_id: &str, child: Child) -> Result<Vec<Record>, AppSimError> {
        self.contact(contact_id)?;
        let ids = self
            .children
            .get(contact_id)
            .map(|(tasks, notes)| match child {
                Child::Task => tasks.clone(),
                Child::Note => notes.clone(),
            })
            .unwrap_or_default();
        let table = self.table(child);
        Ok(ids.iter().filter_map(|id| table.get(id).cloned()).collect())
    }

    /// A task or note by id alone.
    pub fn child_by_id(&self, child: Child, id: &str) -> Result<&Record, AppSimError> {
        self.table(child)
            .get(id)
            .ok_or_else(|| AppSimError::not_found(child.entity(), id))
    }

    /// A task or note of this contact (404 if it belongs to another).
    pub fn child(&self, contact_id: &str, child: Child, id: &str) -> Result<&Record, AppSimError> {
        self.contact(contact_id)?;
        self.table(child)
            .get(id)
            .filter(|r| str_field(r, "contact_id") == Some(contact_id))
            .ok_or_else(|| AppSimError::not_found(child.entity(), id))
    }

    /// Creates a task or note from validated fields. The contact's
    /// `updated_at` does not change.
    pub fn create_child(
        &mut self,
        contact_id: &str,
        child: Child,
        fields: &Record,
    ) -> Result<Record, AppSimError> {
        self.contact(contact_id)?;
        let id = self.new_id(child.entity());
        let now = self.tick();
        let mut record = Record::new();
        record.insert("id".into(), json!(id));
        record.insert("contact_id".into(), json!(contact_id));
        for (key, value) in fields {
            record.insert(key.clone(), value.clone());
        }
        record.insert("created_at".into(), json!(now));
        record.insert("updated_at".into(), json!(now));
        let lists = self.children.entry(contact_id.to_string()).or_default();
        match child {
            Child::Task => lists.0.push(id.clone()),
            Child::Note => lists.1.push(id.clone()),
        }
        self.table_mut(child).put(record.clone());
        self.event(child.entity(), Action::Created, &id, Some(contact_id), now);
        Ok(record)
    }

    /// Applies validated fields to a task or note; always bumps its
    /// `updated_at`.
    pub fn update_child(
        &mut self,
        contact_id: &str,
        child: Child,
        id: &str,
        fields: &Record,
    ) -> Result<Record, AppSimError> {
        let mut record = self.child(contact_id, child, id)?.clone();
        for (key, value) in fields {
            record.insert(key.clone(), value.clone());
        }
        let now = self.tick();
        record.insert("updated_at".into(), json!(now));
        self.table_mut(child).put(record.clone());
        self.event(child.entity(), Action::Updated, id, Some(contact_id), now);
        Ok(record)
    }

    /// Deletes a task or note (tombstone and event).
    pub fn delete_child(
        &mut self,
        contact_id: &str,
        child: Child,
        id: &str,
    ) -> Result<(), AppSimError> {
        self.child(contact_id, child, id)?;
        self.table_mut(child).remove(id);
        if let Some(lists) = self.children.get_mut(contact_id) {
            let list = match child {
                Child::Task => &mut lists.0,
                Child::Note => &mut lists.1,
            };
            list.retain(|x| x != id);
        }
        self.tombstone(child.entity(), id, Some(contact_id));
        Ok(())
    }
}
