//! [`AppSimHandle`]: drive and inspect a running app simulator in-process —
//! register tokens, act as a user of the app (every change bumps
//! `updated_at` and emits its webhook, exactly as through the API), read
//! every record, inject faults, read counters.

use std::sync::Arc;

use serde_json::Value;

use super::error::AppSimError;
use super::limits::CounterSnapshot;
use super::model::{str_field, validate_contact, Child, Record};
use super::server::{lock, Shared};
use crate::controls::sim_controls;

/// A cheap, cloneable handle on a running app simulator.
#[derive(Clone)]
pub struct AppSimHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for AppSimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSimHandle")
            .field("base_url", &self.shared.core.base_url)
            .finish()
    }
}

fn values(records: Vec<Record>) -> Vec<Value> {
    records.into_iter().map(Value::Object).collect()
}

impl AppSimHandle {
    /// `http://127.0.0.1:PORT` (no path; the API is under `/api/v1`).
    pub fn base_url(&self) -> String {
        self.shared.core.base_url.clone()
    }

    /// `http://127.0.0.1:PORT/api/v1`.
    pub fn api_url(&self) -> String {
        format!("{}{}", self.shared.core.base_url, super::API_PREFIX)
    }

    // --- tokens ----------------------------------------------------------------

    /// Accepts a bearer token from now on.
    pub fn add_token(&self, token: &str) {
        lock(&self.shared.tokens).insert(token.to_string());
    }

    /// Forgets a token; later requests with it get 401. `false` if unknown.
    pub fn revoke_token(&self, token: &str) -> bool {
        lock(&self.shared.tokens).remove(token)
    }

    /// The accepted tokens, sorted.
    pub fn tokens(&self) -> Vec<String> {
        let mut tokens: Vec<String> = lock(&self.shared.tokens).iter().cloned().collect();
        tokens.sort();
        tokens
    }

    // --- reading ---------------------------------------------------------------

    /// Every contact, by `(created_at, id)`.
    pub fn contacts(&self) -> Vec<Value> {
        values(self.shared.read(|db| db.contacts.all_by_creation()))
    }

    /// Number of contacts.
    pub fn contact_count(&self) -> usize {
        self.shared.read(|db| db.contacts.len())
    }

    /// One contact.
    pub fn contact(&self, id: &str) -> Option<Value> {
        self.shared
            .read(|db| db.contact(id).ok().cloned())
            .map(Value::Object)
    }

    /// A contact's tasks in creation order (empty for an unknown contact).
    pub fn tasks(&self, contact_id: &str) -> Vec<Value> {
        values(
            self.shared
                .read(|db| db.children(contact_id, Child::Task))
                .unwrap_or_default(),
        )
    }

    /// A contact's notes in creation order (empty for an unknown contact).
    pub fn notes(&self, contact_id: &str) -> Vec<Value> {
        values(
            self.shared
                .read(|db| db.children(contact_id, Child::Note))
                .unwrap_or_default(),
        )
    }

    /// One task.
    pub fn task(&self, id: &str) -> Option<Value> {
        self.shared
            .read(|db| db.child_by_id(Child::Task, id).ok().cloned())
            .map(Value::Object)
    }

    /// One note.
    pub fn note(&self, id: &str) -> Option<Value> {
        self.shared
            .read(|db| db.child_by_id(Child::Note, id).ok().cloned())
            .map(Value::Object)
    }

    /// Every tombstone `{entity, id, contact_id, deleted_at}`, oldest first.
    pub fn deleted(&self) -> Vec<Value> {
        values(self.shared.read(|db| db.tombstones()))
    }

    /// The app clock: the last `updated_at`/`deleted_at` handed out (epoch
    /// ms); the next write gets a larger one.
    pub fn clock_ms(&self) -> i64 {
        self.shared.read(|db| db.clock())
    }

    // --- acting as a user of the app -----------------------------------------------

    /// Creates a contact (same rules as `POST /contacts`). Returns it.
    pub fn create_contact_as_user(&self, fields: Value) -> Result<Value, AppSimError> {
        let fields = validate_contact(&fields, true).map_err(AppSimError::Invalid)?;
        Ok(Value::Object(
            self.shared.write(|db| db.create_contact(&fields))?,
        ))
    }

    /// Applies a patch (`null` clears a field). Returns the contact.
    pub fn update_contact_as_user(&self, id: &str, patch: Value) -> Result<Value, AppSimError> {
        let fields = validate_contact(&patch, false).map_err(AppSimError::Invalid)?;
        Ok(Value::Object(
            self.shared.write(|db| db.update_contact(id, &fields))?,
        ))
    }

    /// Deletes a contact with its tasks and notes.
    pub fn delete_contact_as_user(&self, id: &str) -> Result<(), AppSimError> {
        self.shared.write(|db| db.delete_contact(id))
    }

    fn owner(&self, child: Child, id: &str) -> Result<String, AppSimError> {
        self.shared.read(|db| {
            db.child_by_id(child, id)
                .map(|r| str_field(r, "contact_id").unwrap_or_default().to_string())
        })
    }

    fn create_child(
        &self,
        contact_id: &str,
        child: Child,
        fields: Value,
    ) -> Result<Value, AppSimError> {
        let fields = child
            .validate(&fields, true)
            .map_err(AppSimError::Invalid)?;
        Ok(Value::Object(
            self.shared
                .write(|db| db.create_child(contact_id, child, &fields))?,
        ))
    }

    fn update_child(&self, child: Child, id: &str, patch: Value) -> Result<Value, AppSimError> {
        let contact_id = self.owner(child, id)?;
        let fields = child
            .validate(&patch, false)
            .map_err(AppSimError::Invalid)?;
        Ok(Value::Object(self.shared.write(|db| {
            db.update_child(&contact_id, child, id, &fields)
        })?))
    }

    fn delete_child(&self, child: Child, id: &str) -> Result<(), AppSimError> {
        let contact_id = self.owner(child, id)?;
        self.shared
            .write(|db| db.delete_child(&contact_id, child, id))
    }

    /// Creates a task (`name` required; `details`, `due_on`, `done`).
    pub fn create_task_as_user(
        &self,
        contact_id: &str,
        fields: Value,
    ) -> Result<Value, AppSimError> {
        self.create_child(contact_id, Child::Task, fields)
    }

    /// Updates a task.
    pub fn update_task_as_user(&self, task_id: &str, patch: Value) -> Result<Value, AppSimError> {
        self.update_child(Child::Task, task_id, patch)
    }

    /// Deletes a task.
    pub fn delete_task_as_user(&self, task_id: &str) -> Result<(), AppSimError> {
        self.delete_child(Child::Task, task_id)
    }

    /// Creates a note (`text` required).
    pub fn create_note_as_user(
        &self,
        contact_id: &str,
        fields: Value,
    ) -> Result<Value, AppSimError> {
        self.create_child(contact_id, Child::Note, fields)
    }

    /// Updates a note.
    pub fn update_note_as_user(&self, note_id: &str, patch: Value) -> Result<Value, AppSimError> {
        self.update_child(Child::Note, note_id, patch)
    }

    /// Deletes a note.
    pub fn delete_note_as_user(&self, note_id: &str) -> Result<(), AppSimError> {
        self.delete_child(Child::Note, note_id)
    }

    // --- faults, limits, counters, webhooks ------------------------------------

    sim_controls!(CounterSnapshot);

    /// Requests per second per token; `None` (or 0) = no limit (and no
    /// `X-RateLimit-*` headers).
    pub fn set_rate_limit(&self, per_second: Option<u32>) {
        lock(&self.shared.limiter).limit = per_second.filter(|l| *l > 0);
    }

    /// Empties every rate-limit window.
    pub fn reset_rate_limits(&self) {
        lock(&self.shared.limiter).reset();
    }

    /// The webhook signing secret.
    pub fn webhook_secret(&self) -> String {
        self.shared
            .webhook_secret
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the webhook signing secret (deliveries not yet sent use the
    /// new one).
    pub fn set_webhook_secret(&self, secret: &str) {
        *self
            .shared
            .webhook_secret
            .write()
            .unwrap_or_else(|e| e.into_inner()) = secret.to_string();
    }
}
