//! Writing contacts: create, upsert, update, tag changes, delete and
//! planting raw records, each keeping the location's indexes and the
//! change feed in step and queueing its webhook events.

use serde_json::{json, Value};

use super::{
    id_of, iso, parse_time_ms, Contact, ContactInput, CustomFieldDef, Db, EventKind, Record,
    SimError,
};

/// Resolves a custom field `key` (with or without the `contact.` prefix)
/// to its id.
fn custom_field_id(defs: &[CustomFieldDef], key: &str) -> Option<String> {
    let bare = key.strip_prefix("contact.").unwrap_or(key);
    defs.iter()
        .find(|d| d.key == key || d.key.strip_prefix("contact.") == Some(bare))
        .map(|d| d.id.clone())
}

/// Refuses (422, naming the field) a `field_value` of the wrong type for
/// its field (see [`CustomFieldDef::takes`]); fields the location does
/// not define are left to the shape check of `validation`.
fn check_custom_types(defs: &[CustomFieldDef], patch: &Record) -> Result<(), SimError> {
    let Some(Value::Array(items)) = patch.get("customFields") else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let def = match (
            item.get("id").and_then(Value::as_str),
            item.get("key").and_then(Value::as_str),
        ) {
            (Some(id), _) => defs.iter().find(|d| d.id == id),
            (None, Some(key)) => {
                custom_field_id(defs, key).and_then(|id| defs.iter().find(|d| d.id == id))
            }
            (None, None) => None,
        };
        let value = item.get("field_value").unwrap_or(&Value::Null);
        if let Some(def) = def.filter(|d| !d.takes(value)) {
            errors.push(format!(
                "customFields.{i} ({}, {}): field_value must be {}",
                def.key,
                def.data_type,
                def.wants()
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SimError::Invalid(errors))
    }
}

/// Applies a validated patch to a stored contact.
fn apply_contact_patch(data: &mut Record, patch: &Record, defs: &[CustomFieldDef]) {
    for (key, value) in patch {
        match (key.as_str(), value) {
            ("customFields", Value::Array(items)) => {
                let mut current: Vec<Value> = data
                    .get("customFields")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for item in items {
                    let Some(item) = item.as_object() else {
                        continue;
                    };
                    let id = match item.get("id").and_then(Value::as_str) {
                        Some(id) => id.to_string(),
                        None => {
                            let key = item.get("key").and_then(Value::as_str).unwrap_or("");
                            custom_field_id(defs, key).unwrap_or_else(|| key.to_string())
                        }
                    };
                    let value = item.get("field_value").cloned().unwrap_or(Value::Null);
                    current.retain(|c| c.get("id").and_then(Value::as_str) != Some(id.as_str()));
                    let empty = value.is_null() || value.as_str() == Some("");
                    if !empty {
                        current.push(json!({"id": id, "value": value}));
                    }
                }
                data.insert("customFields".into(), Value::Array(current));
            }
            ("dndSettings" | "inboundDndSettings", Value::Object(new)) => {
                match data.get_mut(key.as_str()) {
                    Some(Value::Object(old)) => {
                        for (k, v) in new {
                            old.insert(k.clone(), v.clone());
                        }
                    }
                    _ => {
                        data.insert(key.clone(), value.clone());
                    }
                }
            }
            (_, Value::Null) => {
                data.remove(key);
            }
            _ => {
                data.insert(key.clone(), value.clone());
            }
        }
    }
    derive_contact_fields(data);
}

/// Recomputes the derived fields GHL returns (`contactName`, the
/// lower-case copies).
pub(crate) fn derive_contact_fields(data: &mut Record) {
    let first = data
        .get("firstName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let last = data
        .get("lastName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let full = format!("{first} {last}").trim().to_lowercase();
    let mut set = |key: &str, value: String| {
        if value.is_empty() {
            data.remove(key);
        } else {
            data.insert(key.into(), json!(value));
        }
    };
    set("firstNameLowerCase", first.to_lowercase());
    set("lastNameLowerCase", last.to_lowercase());
    set("fullNameLowerCase", full.clone());
    set("contactName", full);
    let email = data
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    if email.is_empty() {
        data.remove("emailLowerCase");
    } else {
        data.insert("emailLowerCase".into(), json!(email));
    }
}

impl Db {
    /// Creates a contact, refusing duplicates unless the location allows
    /// them.
    pub fn create_contact(
        &mut self,
        location_id: &str,
        input: &ContactInput,
        default_source: &str,
    ) -> Result<Record, SimError> {
        check_custom_types(&self.location(location_id)?.custom_fields, &input.fields)?;
        if !self.allow_duplicates {
            if let Some((contact_id, field)) =
                self.find_duplicate(location_id, input.email(), input.phone(), None)
            {
                return Err(SimError::Duplicate { contact_id, field });
            }
        }
        let id = self.new_id();
        let location = self
            .locations
            .get_mut(location_id)
            .ok_or_else(|| SimError::LocationNotFound(location_id.into()))?;
        let ts = location.tick();
        let mut data = Record::new();
        data.insert("id".into(), json!(id));
        data.insert("locationId".into(), json!(location_id));
        data.insert("type".into(), json!("lead"));
        data.insert("source".into(), json!(default_source));
        data.insert("tags".into(), json!([]));
        data.insert("dnd".into(), json!(false));
        data.insert("customFields".into(), json!([]));
        apply_contact_patch(&mut data, &input.fields, &location.custom_fields);
        data.insert("dateAdded".into(), json!(iso(ts)));
        data.insert("dateUpdated".into(), json!(iso(ts)));
        location.insert_contact(Contact {
            added_ms: ts,
            updated_ms: ts,
            data: data.clone(),
            tasks: Vec::new(),
            notes: Vec::new(),
            appointments: Vec::new(),
        });
        self.contact_loc.insert(id, location_id.into());
        self.emit_contact(EventKind::ContactCreate, &data);
        Ok(data)
    }

    /// Creates or updates by email (first) then phone. Returns `(new, contact)`.
    pub fn upsert_contact(
        &mut self,
        location_id: &str,
        input: &ContactInput,
        create_new_if_duplicate_allowed: bool,
        default_source: &str,
    ) -> Result<(bool, Record), SimError> {
        self.location(location_id)?;
        let existing = if create_new_if_duplicate_allowed && self.allow_duplicates {
            None
        } else {
            self.find_duplicate(location_id, input.email(), input.phone(), None)
        };
        match existing {
            Some((id, _)) => Ok((false, self.update_contact(&id, input)?)),
            None => {
                let saved = self.allow_duplicates;
                self.allow_duplicates = true;
                let created = self.create_contact(location_id, input, default_source);
                self.allow_duplicates = saved;
                Ok((true, created?))
            }
        }
    }

    /// Applies a patch. Always bumps `dateUpdated` and emits
    /// `ContactUpdate`, plus `ContactTagUpdate` / `ContactDndUpdate` when
    /// tags / DND changed. A patch holding `tags` replaces the contact's
    /// whole tag list (GHL field notes, "Tags": so do `POST /contacts/`
    /// and `POST /contacts/upsert`); [`Db::change_tags`] adds or removes
    /// some only.
    pub fn update_contact(
        &mut self,
        contact_id: &str,
        input: &ContactInput,
    ) -> Result<Record, SimError> {
        let location_id = self.contact_location(contact_id)?.to_string();
        check_custom_types(&self.location(&location_id)?.custom_fields, &input.fields)?;
        if !self.allow_duplicates {
            let email = input.email();
            let phone = input.phone();
            if email.is_some() || phone.is_some() {
                if let Some((contact_id, field)) =
                    self.find_duplicate(&location_id, email, phone, Some(contact_id))
                {
                    return Err(SimError::Duplicate { contact_id, field });
                }
            }
        }
        let (location, _) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let custom = location.custom_fields.clone();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let before = contact.data.clone();
        apply_contact_patch(&mut contact.data, &input.fields, &custom);
        location.touch(contact_id, ts);
        let data = location.contacts[contact_id].data.clone();
        self.emit_contact(EventKind::ContactUpdate, &data);
        if before.get("tags") != data.get("tags") {
            self.emit_contact(EventKind::ContactTagUpdate, &data);
        }
        if before.get("dnd") != data.get("dnd")
            || before.get("dndSettings") != data.get("dndSettings")
        {
            self.emit_contact(EventKind::ContactDndUpdate, &data);
        }
        Ok(data)
    }

    /// Stores `data` as a contact of `location_id` as it is: no
    /// validation, no normalisation, no webhook (see
    /// `SimHandle::plant_raw_contact`). `locationId`, `dateAdded` and
    /// `dateUpdated` are filled in only when absent; the contact is placed
    /// in the listings and the change feed as updated now. A contact with
    /// the same `id` (its tasks, notes and appointments kept) is replaced;
    /// a contact without a string `id` is stored under the empty id (one
    /// per location). Returns that id.
    pub fn plant_raw_contact(
        &mut self,
        location_id: &str,
        mut data: Record,
    ) -> Result<String, SimError> {
        let id = id_of(&data).to_string();
        if let Some(owner) = self.contact_loc.get(&id) {
            if owner != location_id {
                return Err(SimError::Invalid(vec![format!(
                    "contact {id} belongs to location {owner}"
                )]));
            }
        }
        let location = self
            .locations
            .get_mut(location_id)
            .ok_or_else(|| SimError::LocationNotFound(location_id.into()))?;
        let ts = location.tick();
        let old = location.remove_contact(&id);
        let added_ms = old.as_ref().map_or(ts, |c| c.added_ms);
        data.entry("locationId")
            .or_insert_with(|| json!(location_id));
        data.entry("dateAdded")
            .or_insert_with(|| json!(iso(added_ms)));
        data.entry("dateUpdated").or_insert_with(|| json!(iso(ts)));
        let (tasks, notes, appointments) = old
            .map(|c| (c.tasks, c.notes, c.appointments))
            .unwrap_or_default();
        location.insert_contact(Contact {
            added_ms,
            updated_ms: ts,
            data,
            tasks,
            notes,
            appointments,
        });
        self.contact_loc.insert(id.clone(), location_id.into());
        Ok(id)
    }

    /// Like [`Db::plant_raw_contact`], but the contact is listed and
    /// searched at its own `dateAdded` / `dateUpdated` (when they parse),
    /// so sorting and date filters agree with the values it carries.
    pub fn plant_dated_contact(
        &mut self,
        location_id: &str,
        data: Record,
    ) -> Result<String, SimError> {
        let time = |key: &str| {
            data.get(key)
                .and_then(Value::as_str)
                .and_then(parse_time_ms)
        };
        let (added, updated) = (time("dateAdded"), time("dateUpdated"));
        let id = self.plant_raw_contact(location_id, data)?;
        let (location, _) = self.contact_mut(&id)?;
        if let Some(mut contact) = location.remove_contact(&id) {
            contact.added_ms = added.unwrap_or(contact.added_ms);
            contact.updated_ms = updated.unwrap_or(contact.updated_ms);
            location.insert_contact(contact);
        }
        Ok(id)
    }

    /// Deletes a contact with its tasks, notes and appointments; emits
    /// `ContactDelete` only.
    pub fn delete_contact(&mut self, contact_id: &str) -> Result<Record, SimError> {
        let (location, _) = self.contact_mut(contact_id)?;
        location.tick();
        let contact = location
            .remove_contact(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        self.contact_loc.remove(contact_id);
        for child in contact
            .tasks
            .iter()
            .chain(&contact.notes)
            .chain(&contact.appointments)
        {
            self.child_owner.remove(id_of(child));
        }
        self.emit_contact(EventKind::ContactDelete, &contact.data);
        Ok(contact.data)
    }

    /// Adds (`add = true`) or removes tags, keeping the others (GHL field
    /// notes, "Tags": `POST` / `DELETE /contacts/{id}/tags` change the
    /// list one change at a time); returns the resulting tags. Emits
    /// `ContactTagUpdate` and bumps `dateUpdated`.
    pub fn change_tags(
        &mut self,
        contact_id: &str,
        tags: &[String],
        add: bool,
    ) -> Result<Vec<String>, SimError> {
        let (location, _) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let mut current: Vec<String> = contact
            .data
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if add {
            for tag in tags {
                if !current.contains(tag) {
                    current.push(tag.clone());
                }
            }
        } else {
            current.retain(|t| !tags.contains(t));
        }
        contact.data.insert("tags".into(), json!(current));
        location.touch(contact_id, ts);
        let data = location.contacts[contact_id].data.clone();
        self.emit_contact(EventKind::ContactTagUpdate, &data);
        Ok(current)
    }
}
