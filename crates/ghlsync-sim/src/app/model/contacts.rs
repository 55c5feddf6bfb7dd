//! Writing contacts: create, update and delete (with their tasks and
//! notes), keeping the email index in step; an email belongs to one
//! contact at a time.

use serde_json::{json, Value};

use super::{str_field, Action, Child, Db, Entity, Record, CONTACT_STRINGS};
use crate::app::error::AppSimError;

impl Db {
    pub fn contact(&self, id: &str) -> Result<&Record, AppSimError> {
        self.contacts
            .get(id)
            .ok_or_else(|| AppSimError::not_found(Entity::Contact, id))
    }

    /// The contact holding this email (case-insensitive), if any.
    pub fn contact_id_by_email(&self, email: &str) -> Option<&str> {
        self.emails.get(&email.to_lowercase()).map(String::as_str)
    }

    fn check_email_free(&self, fields: &Record, own_id: Option<&str>) -> Result<(), AppSimError> {
        if let Some(email) = str_field(fields, "email_address") {
            if let Some(existing) = self.contact_id_by_email(email) {
                if Some(existing) != own_id {
                    return Err(AppSimError::Duplicate {
                        existing_id: existing.to_string(),
                        email: email.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Creates a contact from validated fields.
    pub fn create_contact(&mut self, fields: &Record) -> Result<Record, AppSimError> {
        self.check_email_free(fields, None)?;
        let id = self.new_id(Entity::Contact);
        let now = self.tick();
        let mut record = Record::new();
        record.insert("id".into(), json!(id));
        for key in CONTACT_STRINGS {
            record.insert(key.into(), Value::Null);
        }
        record.insert("labels".into(), json!([]));
        for (key, value) in fields {
            if !value.is_null() {
                record.insert(key.clone(), value.clone());
            }
        }
        record.insert("created_at".into(), json!(now));
        record.insert("updated_at".into(), json!(now));
        if let Some(email) = str_field(&record, "email_address") {
            self.emails.insert(email.to_lowercase(), id.clone());
        }
        self.children.entry(id.clone()).or_default();
        self.contacts.put(record.clone());
        self.event(Entity::Contact, Action::Created, &id, None, now);
        Ok(record)
    }

    /// Applies validated fields to a contact (`null` clears). Always
    /// bumps `updated_at`, even when no value changes.
    pub fn update_contact(&mut self, id: &str, fields: &Record) -> Result<Record, AppSimError> {
        let mut record = self.contact(id)?.clone();
        self.check_email_free(fields, Some(id))?;
        let old_email = str_field(&record, "email_address").map(str::to_lowercase);
        for (key, value) in fields {
            let known = CONTACT_STRINGS.contains(&key.as_str()) || key == "labels";
            if value.is_null() && !known {
                record.remove(key);
            } else {
                record.insert(key.clone(), value.clone());
            }
        }
        let new_email = str_field(&record, "email_address").map(str::to_lowercase);
        if old_email != new_email {
            if let Some(old) = old_email {
                self.emails.remove(&old);
            }
            if let Some(new) = new_email {
                self.emails.insert(new, id.to_string());
            }
        }
        let now = self.tick();
        record.insert("updated_at".into(), json!(now));
        self.contacts.put(record.clone());
        self.event(Entity::Contact, Action::Updated, id, None, now);
        Ok(record)
    }

    /// Deletes a contact, then its tasks and notes: each gets a tombstone
    /// and an event (children first, the contact last).
    pub fn delete_contact(&mut self, id: &str) -> Result<(), AppSimError> {
        self.contact(id)?;
        let (tasks, notes) = self.children.remove(id).unwrap_or_default();
        for (child, ids) in [(Child::Task, tasks), (Child::Note, notes)] {
            for child_id in ids {
                if self.table_mut(child).remove(&child_id).is_some() {
                    self.tombstone(child.entity(), &child_id, Some(id));
                }
            }
        }
        let record = self.contacts.remove(id).unwrap_or_default();
        if let Some(email) = str_field(&record, "email_address") {
            self.emails.remove(&email.to_lowercase());
        }
        self.tombstone(Entity::Contact, id, None);
        Ok(())
    }
}
