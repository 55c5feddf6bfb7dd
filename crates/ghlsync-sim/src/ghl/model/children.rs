//! Writing a contact's tasks, notes and appointments: each kind lives in
//! its own list on the contact, and its webhooks differ (appointments are
//! wrapped in an `appointment` object; GHL has no task-update event).

use serde_json::{json, Value};

use super::{id_of, iso, Child, Contact, Db, EventKind, Record, SimError};

impl Db {
    pub fn children(&self, contact_id: &str, kind: Child) -> Result<Vec<Record>, SimError> {
        let contact = self.contact(contact_id)?;
        Ok(match kind {
            Child::Task => contact.tasks.clone(),
            Child::Note => contact.notes.clone(),
            Child::Appointment => contact.appointments.clone(),
        })
    }

    pub fn child(&self, contact_id: &str, kind: Child, id: &str) -> Result<Record, SimError> {
        self.children(contact_id, kind)?
            .into_iter()
            .find(|r| id_of(r) == id)
            .ok_or_else(|| kind.not_found(id))
    }

    fn child_list(contact: &mut Contact, kind: Child) -> &mut Vec<Record> {
        match kind {
            Child::Task => &mut contact.tasks,
            Child::Note => &mut contact.notes,
            Child::Appointment => &mut contact.appointments,
        }
    }

    fn child_event(
        &mut self,
        kind: Child,
        event: EventKind,
        location_id: &str,
        contact_id: &str,
        record: &Record,
    ) {
        let mut payload = record.clone();
        if kind == Child::Appointment {
            let mut appointment = record.clone();
            appointment.insert("locationId".into(), json!(location_id));
            payload = Record::new();
            payload.insert("appointment".into(), Value::Object(appointment));
        }
        self.emit(event, location_id, contact_id, payload);
    }

    /// Creates a task, note or appointment on a contact.
    pub fn create_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        fields: &Record,
    ) -> Result<Record, SimError> {
        let id = self.new_id();
        let touch = self.child_writes_touch_contact;
        let (location, location_id) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let mut record = Record::new();
        record.insert("id".into(), json!(id));
        match kind {
            Child::Task => {
                record.insert("title".into(), json!(""));
                record.insert("body".into(), json!(""));
                record.insert("completed".into(), json!(false));
            }
            Child::Note => {
                record.insert("body".into(), json!(""));
            }
            Child::Appointment => {
                record.insert("status".into(), json!("booked"));
                record.insert("appointmentStatus".into(), json!("confirmed"));
                record.insert("title".into(), json!("Appointment"));
            }
        }
        for (k, v) in fields {
            if !v.is_null() {
                record.insert(k.clone(), v.clone());
            }
        }
        record.insert("contactId".into(), json!(contact_id));
        if kind == Child::Appointment {
            record.insert("locationId".into(), json!(location_id));
        }
        record.insert("dateAdded".into(), json!(iso(ts)));
        record.insert("dateUpdated".into(), json!(iso(ts)));
        Self::child_list(contact, kind).push(record.clone());
        if touch {
            location.touch(contact_id, ts);
        }
        self.child_owner.insert(id, contact_id.into());
        let event = match kind {
            Child::Task => EventKind::TaskCreate,
            Child::Note => EventKind::NoteCreate,
            Child::Appointment => EventKind::AppointmentCreate,
        };
        self.child_event(kind, event, &location_id, contact_id, &record);
        Ok(record)
    }

    /// Stores `data` as a task, note or appointment of `contact_id` as it
    /// is, like [`Db::plant_raw_contact`]: no validation, no webhook, and
    /// the contact is not touched. `contactId`, `dateAdded` and
    /// `dateUpdated` are filled in only when absent. A child with the same
    /// `id` is replaced, any other is added. Returns its id (empty when it
    /// has no string one).
    pub fn plant_raw_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        mut data: Record,
    ) -> Result<String, SimError> {
        let id = id_of(&data).to_string();
        let (location, _) = self.contact_mut(contact_id)?;
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        data.entry("contactId").or_insert_with(|| json!(contact_id));
        data.entry("dateAdded").or_insert_with(|| json!(iso(ts)));
        data.entry("dateUpdated").or_insert_with(|| json!(iso(ts)));
        let list = Self::child_list(contact, kind);
        match list.iter_mut().find(|r| !id.is_empty() && id_of(r) == id) {
            Some(existing) => *existing = data,
            None => list.push(data),
        }
        if !id.is_empty() {
            self.child_owner.insert(id.clone(), contact_id.into());
        }
        Ok(id)
    }

    /// Updates a child record. Webhooks: `NoteUpdate`, `AppointmentUpdate`,
    /// and for tasks `TaskComplete` only when `completed` turns true (GHL
    /// has no task-update event).
    pub fn update_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        id: &str,
        fields: &Record,
    ) -> Result<Record, SimError> {
        let touch = self.child_writes_touch_contact;
        let (location, location_id) = self.contact_mut(contact_id)?;
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        if !Self::child_list(contact, kind)
            .iter()
            .any(|r| id_of(r) == id)
        {
            return Err(kind.not_found(id));
        }
        let ts = location.tick();
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let list = Self::child_list(contact, kind);
        let record = list
            .iter_mut()
            .find(|r| id_of(r) == id)
            .ok_or_else(|| kind.not_found(id))?;
        let was_completed = record.get("completed") == Some(&json!(true));
        for (k, v) in fields {
            if v.is_null() {
                record.remove(k);
            } else {
                record.insert(k.clone(), v.clone());
            }
        }
        record.insert("dateUpdated".into(), json!(iso(ts)));
        let record = record.clone();
        if touch {
            location.touch(contact_id, ts);
        }
        let event = match kind {
            Child::Task => {
                let now_completed = record.get("completed") == Some(&json!(true));
                (!was_completed && now_completed).then_some(EventKind::TaskComplete)
            }
            Child::Note => Some(EventKind::NoteUpdate),
            Child::Appointment => Some(EventKind::AppointmentUpdate),
        };
        if let Some(event) = event {
            self.child_event(kind, event, &location_id, contact_id, &record);
        }
        Ok(record)
    }

    pub fn delete_child(
        &mut self,
        contact_id: &str,
        kind: Child,
        id: &str,
    ) -> Result<Record, SimError> {
        let touch = self.child_writes_touch_contact;
        let (location, location_id) = self.contact_mut(contact_id)?;
        let contact = location
            .contacts
            .get_mut(contact_id)
            .ok_or_else(|| SimError::ContactNotFound(contact_id.into()))?;
        let list = Self::child_list(contact, kind);
        let index = list
            .iter()
            .position(|r| id_of(r) == id)
            .ok_or_else(|| kind.not_found(id))?;
        let record = list.remove(index);
        let ts = location.tick();
        if touch {
            location.touch(contact_id, ts);
        }
        self.child_owner.remove(id);
        let event = match kind {
            Child::Task => EventKind::TaskDelete,
            Child::Note => EventKind::NoteDelete,
            Child::Appointment => EventKind::AppointmentDelete,
        };
        self.child_event(kind, event, &location_id, contact_id, &record);
        Ok(record)
    }
}
