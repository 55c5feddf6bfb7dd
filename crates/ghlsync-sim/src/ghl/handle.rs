//! [`SimHandle`]: drive and inspect a running simulator in-process — issue
//! tokens, act as a GHL user in the UI (every change bumps `dateUpdated`
//! and emits its webhook), read every record, inject faults, read
//! counters.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::auth::{Grant, TokenInfo, UserType, DEFAULT_APP_ID};
use super::error::SimError;
use super::limits::{CounterSnapshot, RateLimitConfig};
use super::model::{
    normalize_tags, validate_contact, validate_note, validate_task, Child, Mode, Record,
};
use super::query::all_contacts;
use super::server::{lock, Shared};
use super::shapes::RecordShapes;
use super::unusual;
use super::webhooks::{signing_keys, WebhookPublicKeys};
use crate::controls::sim_controls;

/// The source recorded on contacts created by `*_as_user`.
const USER_SOURCE: &str = "crm ui";

/// A simulated location (sub-account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationInfo {
    pub id: String,
    pub name: String,
    pub company_id: String,
}

/// A custom field definition of a location (contacts carry
/// `customFields: [{id, value}]`; writes may name a field by `id` or `key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomFieldInfo {
    pub id: String,
    /// e.g. `contact.plan`.
    pub key: String,
    /// GHL's `dataType`, which types a write's `field_value`.
    pub data_type: String,
}

/// A cheap, cloneable handle on a running simulator.
#[derive(Clone)]
pub struct SimHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.shared.core.base_url)
            .finish()
    }
}

fn scopes(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn object(value: Value) -> Value {
    match value {
        Value::Object(_) => value,
        _ => Value::Object(Record::new()),
    }
}

/// Contact fields from a user: `locationId` is the location argument's
/// business, not a field to set.
fn user_fields(value: Value) -> Value {
    let mut value = object(value);
    if let Some(map) = value.as_object_mut() {
        map.remove("locationId");
    }
    value
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.core.base_url.clone()
    }

    /// The simulated company.
    pub fn company_id(&self) -> String {
        self.shared.read(|db| db.company_id.clone())
    }

    /// The locations, in id order.
    pub fn locations(&self) -> Vec<LocationInfo> {
        self.shared.read(|db| {
            db.locations
                .values()
                .map(|l| LocationInfo {
                    id: l.id.clone(),
                    name: l.name.clone(),
                    company_id: db.company_id.clone(),
                })
                .collect()
        })
    }

    /// The location ids in the order they were seeded.
    pub fn location_ids(&self) -> Vec<String> {
        let mut locations = self.locations();
        locations.sort_by_key(|l| {
            l.name
                .rsplit(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
        });
        locations.into_iter().map(|l| l.id).collect()
    }

    /// A location's custom field definitions (seeded: `contact.industry`,
    /// `contact.plan`, `contact.score`, and one field of each other
    /// `field_value` type: `contact.interests`, `consent`, `budget`,
    /// `contract`).
    pub fn custom_fields(&self, location_id: &str) -> Vec<CustomFieldInfo> {
        self.shared.read(|db| {
            db.locations
                .get(location_id)
                .map(|l| {
                    l.custom_fields
                        .iter()
                        .map(|d| CustomFieldInfo {
                            id: d.id.clone(),
                            key: d.key.clone(),
                            data_type: d.data_type.into(),
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
    }

    // --- tokens and OAuth ----------------------------------------------------

    /// A Location access token of the default app (`sim-app`); `ttl: None`
    /// never expires (like a Private Integration token).
    pub fn issue_token(&self, location_id: &str, scopes: &[&str], ttl: Option<Duration>) -> String {
        self.issue_token_for_app(DEFAULT_APP_ID, location_id, scopes, ttl)
    }

    /// A Location access token of a given app (the rate-limit key's app).
    pub fn issue_token_for_app(
        &self,
        app_id: &str,
        location_id: &str,
        list: &[&str],
        ttl: Option<Duration>,
    ) -> String {
        let info = TokenInfo {
            app_id: app_id.into(),
            user_type: UserType::Location,
            location_id: Some(location_id.into()),
            company_id: self.company_id(),
            scopes: scopes(list),
            expires_at: ttl.map(|t| Instant::now() + t),
            user_id: lock(&self.shared.auth).user_id(),
        };
        lock(&self.shared.auth).issue(info)
    }

    /// A Company (agency) access token, for `/oauth/locationToken` and
    /// `/oauth/installedLocations`.
    pub fn issue_company_token(
        &self,
        app_id: &str,
        list: &[&str],
        ttl: Option<Duration>,
    ) -> String {
        let info = TokenInfo {
            app_id: app_id.into(),
            user_type: UserType::Company,
            location_id: None,
            company_id: self.company_id(),
            scopes: scopes(list),
            expires_at: ttl.map(|t| Instant::now() + t),
            user_id: lock(&self.shared.auth).user_id(),
        };
        lock(&self.shared.auth).issue(info)
    }

    /// Accepts a fixed token string (never expires), as `--token` does.
    pub fn add_static_token(&self, token: &str, location_id: &str, list: &[&str]) {
        let info = TokenInfo {
            app_id: DEFAULT_APP_ID.into(),
            user_type: UserType::Location,
            location_id: Some(location_id.into()),
            company_id: self.company_id(),
            scopes: scopes(list),
            expires_at: None,
            user_id: lock(&self.shared.auth).user_id(),
        };
        lock(&self.shared.auth).insert(token.into(), info);
    }

    /// Forgets a token; later requests with it get 401 "Invalid JWT".
    pub fn revoke_token(&self, token: &str) -> bool {
        lock(&self.shared.auth).revoke(token)
    }

    /// Registers an OAuth app (marketplace client).
    pub fn register_oauth_client(&self, client_id: &str, client_secret: &str) {
        lock(&self.shared.auth).register_client(client_id, client_secret);
    }

    /// What the redirect after "install on this location" would carry: a
    /// single-use authorization code (10 minutes) for a Location token.
    pub fn authorization_code(&self, client_id: &str, location_id: &str, list: &[&str]) -> String {
        self.code(
            client_id,
            UserType::Location,
            Some(location_id.into()),
            list,
        )
    }

    /// An authorization code for a Company (agency) token.
    pub fn company_authorization_code(&self, client_id: &str, list: &[&str]) -> String {
        self.code(client_id, UserType::Company, None, list)
    }

    fn code(
        &self,
        client_id: &str,
        user_type: UserType,
        location_id: Option<String>,
        list: &[&str],
    ) -> String {
        let company_id = self.company_id();
        let mut auth = lock(&self.shared.auth);
        let user_id = auth.user_id();
        auth.new_code(Grant {
            client_id: client_id.into(),
            user_type,
            location_id,
            company_id,
            scopes: scopes(list),
            user_id,
            expires_at: Instant::now() + Duration::from_secs(600),
        })
    }

    /// Lifetime of tokens minted by `/oauth/token` from now on.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        lock(&self.shared.auth).access_ttl = ttl;
    }

    // --- reading ---------------------------------------------------------------

    /// A location's contacts ordered by `(dateAdded, id)` (empty for an
    /// unknown location).
    pub fn contacts(&self, location_id: &str) -> Vec<Value> {
        self.shared.read(|db| {
            db.locations
                .get(location_id)
                .map(|l| all_contacts(l).into_iter().map(Value::Object).collect())
                .unwrap_or_default()
        })
    }

    /// One contact.
    pub fn contact(&self, contact_id: &str) -> Option<Value> {
        self.shared.read(|db| {
            db.contact(contact_id)
                .ok()
                .map(|c| Value::Object(c.data.clone()))
        })
    }

    fn children(&self, contact_id: &str, kind: Child) -> Vec<Value> {
        self.shared
            .read(|db| db.children(contact_id, kind).unwrap_or_default())
            .into_iter()
            .map(Value::Object)
            .collect()
    }

    /// A contact's tasks, in creation order.
    pub fn tasks(&self, contact_id: &str) -> Vec<Value> {
        self.children(contact_id, Child::Task)
    }

    /// A contact's notes, in creation order.
    pub fn notes(&self, contact_id: &str) -> Vec<Value> {
        self.children(contact_id, Child::Note)
    }

    /// A contact's appointments, in creation order.
    pub fn appointments(&self, contact_id: &str) -> Vec<Value> {
        self.children(contact_id, Child::Appointment)
    }

    // --- acting as a GHL user ----------------------------------------------------

    /// Creates or updates (matched by email, then phone) a contact as a user
    /// would in the UI. Returns the contact.
    pub fn upsert_contact_as_user(
        &self,
        location_id: &str,
        fields: Value,
    ) -> Result<Value, SimError> {
        let input =
            validate_contact(&user_fields(fields), Mode::Update).map_err(SimError::Invalid)?;
        let (_, contact) = self
            .shared
            .write(|db| db.upsert_contact(location_id, &input, false, USER_SOURCE))?;
        Ok(Value::Object(contact))
    }

    /// Creates a contact (refused as a duplicate like the API does, unless
    /// duplicates are allowed).
    pub fn create_contact_as_user(
        &self,
        location_id: &str,
        fields: Value,
    ) -> Result<Value, SimError> {
        let input =
            validate_contact(&user_fields(fields), Mode::Update).map_err(SimError::Invalid)?;
        let contact = self
            .shared
            .write(|db| db.create_contact(location_id, &input, USER_SOURCE))?;
        Ok(Value::Object(contact))
    }

    /// Applies a patch (`null` clears a field).
    pub fn update_contact_as_user(
        &self,
        contact_id: &str,
        patch: Value,
    ) -> Result<Value, SimError> {
        let input =
            validate_contact(&user_fields(patch), Mode::Update).map_err(SimError::Invalid)?;
        Ok(Value::Object(
            self.shared
                .write(|db| db.update_contact(contact_id, &input))?,
        ))
    }

    /// Stores `raw` as a contact of `location_id` exactly as given, with
    /// none of the checks and normalisation of the API or of `*_as_user`,
    /// and no webhook: a test's way to plant the malformed records issue
    /// 13 observed in live-like data (`"phone": 12345`, a number where the
    /// contract promises a string; a contact without an `id`), which the
    /// simulator never produces on its own. `locationId`, `dateAdded` and
    /// `dateUpdated` are filled in when absent (present ones are kept,
    /// even `null` or of the wrong type), and the contact is listed and
    /// searched as updated now. A contact with the same `id` is
    /// overwritten (its tasks, notes and appointments kept); one without
    /// a string `id` is stored under the empty id, one per location.
    /// Returns the id it is stored under.
    pub fn plant_raw_contact(&self, location_id: &str, raw: Value) -> Result<String, SimError> {
        let Value::Object(data) = raw else {
            return Err(SimError::Invalid(vec![
                "a planted contact must be a JSON object".into(),
            ]));
        };
        self.shared
            .write(|db| db.plant_raw_contact(location_id, data))
    }

    /// Plants `count` contacts with unusual but valid values (and tasks,
    /// notes and an appointment on them) in the first location: see
    /// [`Self::plant_unusual_records_in`].
    pub fn plant_unusual_records(&self, seed: u64, count: usize) -> Vec<String> {
        let location = self.location_ids()[0].clone();
        self.plant_unusual_records_in(&location, seed, count)
            .expect("the first location exists")
    }

    /// Plants `count` contacts of `location_id` whose values the spec's
    /// response schemas allow but ordinary data never has (empty strings,
    /// absent fields, `null` where nullable, 10 KiB notes, 500-character
    /// names, emoji, right-to-left text, combining marks, the date
    /// spellings GHL uses, digits in string fields, empty arrays; each
    /// choice is cited in `ghl/unusual.rs`), with tasks, notes and
    /// appointments. Deterministic: the same `seed`, `count` and location
    /// plant the same records byte for byte; contact `i` is of kind `i %`
    /// [`super::UNUSUAL_VARIANTS`], so that many or more cover every kind.
    /// Like `plant_raw_*`, no webhook is sent; contacts are listed and
    /// searched at their own `dateAdded` / `dateUpdated`. Returns the
    /// contact ids in planting order.
    pub fn plant_unusual_records_in(
        &self,
        location_id: &str,
        seed: u64,
        count: usize,
    ) -> Result<Vec<String>, SimError> {
        self.shared.write(|db| {
            let location = db.location(location_id)?;
            let planted = unusual::generate(
                seed,
                count,
                &unusual::Target {
                    location_id,
                    users: &location.users,
                    calendars: &location.calendars,
                    custom_fields: &location.custom_fields,
                },
            );
            let mut ids = Vec::with_capacity(planted.len());
            for p in planted {
                let id = db.plant_dated_contact(location_id, p.contact)?;
                for (kind, children) in [
                    (Child::Task, p.tasks),
                    (Child::Note, p.notes),
                    (Child::Appointment, p.appointments),
                ] {
                    for child in children {
                        db.plant_raw_child(&id, kind, child)?;
                    }
                }
                ids.push(id);
            }
            Ok(ids)
        })
    }

    /// Deletes a contact with its tasks, notes and appointments.
    pub fn delete_contact_as_user(&self, contact_id: &str) -> Result<(), SimError> {
        self.shared
            .write(|db| db.delete_contact(contact_id))
            .map(|_| ())
    }

    /// Adds tags; returns the contact's tags.
    pub fn add_tags_as_user(
        &self,
        contact_id: &str,
        tags: &[&str],
    ) -> Result<Vec<String>, SimError> {
        let tags = normalize_tags(tags.iter().copied());
        self.shared
            .write(|db| db.change_tags(contact_id, &tags, true))
    }

    /// Removes tags; returns the contact's tags.
    pub fn remove_tags_as_user(
        &self,
        contact_id: &str,
        tags: &[&str],
    ) -> Result<Vec<String>, SimError> {
        let tags = normalize_tags(tags.iter().copied());
        self.shared
            .write(|db| db.change_tags(contact_id, &tags, false))
    }

    fn owner(&self, child_id: &str, kind: Child) -> Result<String, SimError> {
        self.shared
            .read(|db| db.child_owner(child_id).map(String::from))
            .ok_or_else(|| match kind {
                Child::Task => SimError::TaskNotFound(child_id.into()),
                Child::Note => SimError::NoteNotFound(child_id.into()),
                Child::Appointment => SimError::AppointmentNotFound(child_id.into()),
            })
    }

    /// Stores `raw` as a task of `contact_id` exactly as given, with no
    /// checks and no webhook: the task counterpart of
    /// [`SimHandle::plant_raw_contact`] (issue 13's malformed records,
    /// e.g. `"completed": "yes"`), never produced by the simulator on its
    /// own. `contactId`, `dateAdded` and `dateUpdated` are filled in when
    /// absent; a task with the same `id` is overwritten. Returns its id
    /// (empty when it has no string one).
    pub fn plant_raw_task(&self, contact_id: &str, raw: Value) -> Result<String, SimError> {
        let Value::Object(data) = raw else {
            return Err(SimError::Invalid(vec![
                "a planted task must be a JSON object".into(),
            ]));
        };
        self.shared
            .write(|db| db.plant_raw_child(contact_id, Child::Task, data))
    }

    /// Creates a task (`title`, `dueDate`, `completed` required).
    pub fn create_task_as_user(&self, contact_id: &str, fields: Value) -> Result<Value, SimError> {
        let fields = validate_task(&object(fields), Mode::Create).map_err(SimError::Invalid)?;
        Ok(Value::Object(self.shared.write(|db| {
            db.create_child(contact_id, Child::Task, &fields)
        })?))
    }

    /// Updates a task; completing it emits `TaskComplete`.
    pub fn update_task_as_user(&self, task_id: &str, patch: Value) -> Result<Value, SimError> {
        let contact = self.owner(task_id, Child::Task)?;
        let fields = validate_task(&object(patch), Mode::Update).map_err(SimError::Invalid)?;
        Ok(Value::Object(self.shared.write(|db| {
            db.update_child(&contact, Child::Task, task_id, &fields)
        })?))
    }

    /// Deletes a task.
    pub fn delete_task_as_user(&self, task_id: &str) -> Result<(), SimError> {
        let contact = self.owner(task_id, Child::Task)?;
        self.shared
            .write(|db| db.delete_child(&contact, Child::Task, task_id))
            .map(|_| ())
    }

    /// Creates a note (`body` required).
    pub fn create_note_as_user(&self, contact_id: &str, fields: Value) -> Result<Value, SimError> {
        let fields = validate_note(&object(fields), Mode::Create).map_err(SimError::Invalid)?;
        Ok(Value::Object(self.shared.write(|db| {
            db.create_child(contact_id, Child::Note, &fields)
        })?))
    }

    /// Updates a note.
    pub fn update_note_as_user(&self, note_id: &str, patch: Value) -> Result<Value, SimError> {
        let contact = self.owner(note_id, Child::Note)?;
        let fields = validate_note(&object(patch), Mode::Update).map_err(SimError::Invalid)?;
        Ok(Value::Object(self.shared.write(|db| {
            db.update_child(&contact, Child::Note, note_id, &fields)
        })?))
    }

    /// Deletes a note.
    pub fn delete_note_as_user(&self, note_id: &str) -> Result<(), SimError> {
        let contact = self.owner(note_id, Child::Note)?;
        self.shared
            .write(|db| db.delete_child(&contact, Child::Note, note_id))
            .map(|_| ())
    }

    /// Books an appointment for a contact (any `GetEventSchema` fields).
    pub fn create_appointment_as_user(
        &self,
        contact_id: &str,
        fields: Value,
    ) -> Result<Value, SimError> {
        let Value::Object(fields) = object(fields) else {
            unreachable!()
        };
        Ok(Value::Object(self.shared.write(|db| {
            db.create_child(contact_id, Child::Appointment, &fields)
        })?))
    }

    /// Updates an appointment.
    pub fn update_appointment_as_user(
        &self,
        appointment_id: &str,
        patch: Value,
    ) -> Result<Value, SimError> {
        let contact = self.owner(appointment_id, Child::Appointment)?;
        let Value::Object(fields) = object(patch) else {
            unreachable!()
        };
        Ok(Value::Object(self.shared.write(|db| {
            db.update_child(&contact, Child::Appointment, appointment_id, &fields)
        })?))
    }

    /// Deletes an appointment.
    pub fn delete_appointment_as_user(&self, appointment_id: &str) -> Result<(), SimError> {
        let contact = self.owner(appointment_id, Child::Appointment)?;
        self.shared
            .write(|db| db.delete_child(&contact, Child::Appointment, appointment_id))
            .map(|_| ())
    }

    // --- faults, limits, counters, webhooks ------------------------------------

    /// What answers and webhooks carry now.
    pub fn record_shapes(&self) -> RecordShapes {
        self.shared.read(|db| db.record_shapes)
    }

    /// Switches between generous and spec-strict answers and webhooks
    /// (see [`RecordShapes`]); records already stored are not changed.
    pub fn set_record_shapes(&self, shapes: RecordShapes) {
        lock(&self.shared.db).record_shapes = shapes;
    }

    sim_controls!(CounterSnapshot);

    /// Changes the rate limits (windows already open keep their entries).
    pub fn set_rate_limits(&self, limits: RateLimitConfig) {
        lock(&self.shared.limiter).config = limits;
    }

    /// Empties every rate-limit window and daily count.
    pub fn reset_rate_limits(&self) {
        lock(&self.shared.limiter).reset();
    }

    /// The webhook signing public keys (generated on first use: RSA key
    /// generation may take a moment in debug builds).
    pub fn webhook_public_keys(&self) -> WebhookPublicKeys {
        signing_keys(self.shared.core.seed).public.clone()
    }
}
