//! The typed Contacts API: one method per endpoint the product uses.
//! Creates are never blindly re-sent: when the outcome of a create is
//! unknown (timeout, reset, 5xx) the record is looked up by what identifies
//! it and only created again when it is not there.

use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::client::{ApiPath, GhlClient, Request};
use super::error::GhlError;
use super::models::{
    Appointment, Contact, ContactFields, Listing, Note, NoteFields, Task, TaskFields, Unreadable,
    Upserted,
};
use super::reading::{read_record, read_records};

#[derive(Deserialize)]
struct ContactEnvelope {
    contact: Contact,
}

/// `GET /contacts/:id`'s answer with the contact kept raw, to be read on
/// its own.
#[derive(Deserialize)]
struct RawContactEnvelope {
    #[serde(default)]
    contact: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct MaybeContact {
    #[serde(default)]
    contact: Option<Contact>,
}

#[derive(Deserialize)]
struct UpsertEnvelope {
    #[serde(default)]
    new: bool,
    contact: Contact,
}

#[derive(Deserialize)]
struct TaskEnvelope {
    task: Task,
}

/// A contact's tasks kept raw, to be read one by one; a list that is
/// absent or `null` is empty (so for notes and events).
#[derive(Deserialize)]
struct TaskList {
    #[serde(default)]
    tasks: Option<Vec<Box<RawValue>>>,
}

#[derive(Deserialize)]
struct NoteEnvelope {
    note: Note,
}

#[derive(Deserialize)]
struct NoteList {
    #[serde(default)]
    notes: Option<Vec<Box<RawValue>>>,
}

#[derive(Deserialize)]
struct EventList {
    #[serde(default)]
    events: Option<Vec<Box<RawValue>>>,
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct Ignored {}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// The record was already gone (deleted elsewhere, or by an earlier
    /// attempt whose answer was lost).
    AlreadyGone,
}

impl GhlClient {
    /// `GET /contacts/:contactId`. The outer error is the call's (GHL
    /// unreachable, 404, a body that is not JSON: retried where that is
    /// safe); the inner one is the contact's own: GHL answered, and what
    /// it sent does not fit the model. That one is not retried (the same
    /// request gets the same record) and names the record and the field.
    pub async fn read_contact(&self, id: &str) -> Result<Result<Contact, Unreadable>, GhlError> {
        let path = ApiPath::fill("/contacts/:contactId", &[id]);
        let envelope: RawContactEnvelope = self.execute(&Request::get(path.clone())).await?;
        let call = self.call(&Method::GET, &path);
        let Some(raw) = envelope.contact else {
            return Err(GhlError::Decode {
                call,
                status: 200,
                detail: "the answer holds no `contact`".to_owned(),
            });
        };
        Ok(read_record(&call, "contact", &raw))
    }

    /// `GET /contacts/:contactId`, as [`GhlClient::read_contact`] with a
    /// contact that cannot be read returned as a [`GhlError::Decode`]
    /// naming it.
    pub async fn get_contact(&self, id: &str) -> Result<Contact, GhlError> {
        self.read_contact(id).await?.map_err(Unreadable::into_error)
    }

    /// `POST /contacts/`. When the outcome is unknown (timeout, reset,
    /// 5xx) the contact is looked up with a duplicate search before it is
    /// sent again, and only a contact holding every match key we sent
    /// (email and phone) counts as ours: another person sharing the phone
    /// is not. A refusal as a duplicate is returned as it is (see
    /// [`GhlError::is_duplicate`]): whether the existing contact is the
    /// one we meant is the engine's question, and never answered by an
    /// upsert, which would overwrite whoever GHL matched.
    pub async fn create_contact(&self, fields: &ContactFields) -> Result<Contact, GhlError> {
        let body = self.with_location(fields);
        self.create_once(
            || async {
                let envelope: ContactEnvelope = self
                    .execute(&Request::write(
                        Method::POST,
                        ApiPath::fixed("/contacts/"),
                        Some(&body),
                    ))
                    .await?;
                Ok(envelope.contact)
            },
            || async {
                if !has_match_key(fields) {
                    // Nothing identifies it: a re-send could duplicate.
                    return Ok(None);
                }
                let found = self.find_duplicate(fields.email(), fields.phone()).await?;
                Ok(found.filter(|contact| holds_match_keys(contact, fields)))
            },
        )
        .await
    }

    /// `POST /contacts/upsert`: update the contact matching the email or
    /// phone, or create one. Idempotent by construction.
    pub async fn upsert_contact(&self, fields: &ContactFields) -> Result<Upserted, GhlError> {
        let body = self.with_location(fields);
        let mut request = Request::write(
            Method::POST,
            ApiPath::fixed("/contacts/upsert"),
            Some(&body),
        );
        request.idempotent = true;
        let envelope: UpsertEnvelope = self.execute(&request).await?;
        Ok(Upserted {
            created: envelope.new,
            contact: envelope.contact,
        })
    }

    /// `PUT /contacts/:contactId` with only the fields to change.
    pub async fn update_contact(
        &self,
        id: &str,
        fields: &ContactFields,
    ) -> Result<Contact, GhlError> {
        let body = Value::Object(fields.fields.clone());
        let envelope: ContactEnvelope = self
            .execute(&Request::write(
                Method::PUT,
                ApiPath::fill("/contacts/:contactId", &[id]),
                Some(&body),
            ))
            .await?;
        Ok(envelope.contact)
    }

    /// `DELETE /contacts/:contactId` (its tasks and notes go with it).
    pub async fn delete_contact(&self, id: &str) -> Result<Deleted, GhlError> {
        let sent: Result<Ignored, GhlError> = self
            .execute(&Request::write(
                Method::DELETE,
                ApiPath::fill("/contacts/:contactId", &[id]),
                None,
            ))
            .await;
        deleted(sent)
    }

    /// `GET /contacts/search/duplicate`: the contact GHL would treat as the
    /// same person, by email or phone.
    pub async fn find_duplicate(
        &self,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Option<Contact>, GhlError> {
        let mut request = Request::get(ApiPath::fixed("/contacts/search/duplicate"))
            .query("locationId", self.location_id());
        if let Some(email) = email {
            request = request.query("email", email);
        }
        if let Some(phone) = phone {
            request = request.query("number", phone);
        }
        let found: MaybeContact = self.execute(&request).await?;
        Ok(found.contact)
    }

    /// `GET /contacts/:contactId/tasks`, each task read on its own: one
    /// that cannot be read is set aside in [`Listing::unreadable`].
    pub async fn task_listing(&self, contact_id: &str) -> Result<Listing<Task>, GhlError> {
        let path = ApiPath::fill("/contacts/:contactId/tasks", &[contact_id]);
        let list: TaskList = self.execute(&Request::get(path.clone())).await?;
        let call = self.call(&Method::GET, &path);
        Ok(read_records(&call, "task", list.tasks))
    }

    /// `GET /contacts/:contactId/tasks`, every task or an error naming the
    /// first that cannot be read.
    pub async fn list_tasks(&self, contact_id: &str) -> Result<Vec<Task>, GhlError> {
        self.task_listing(contact_id).await?.strict()
    }

    /// `GET /contacts/:contactId/tasks/:taskId`
    pub async fn get_task(&self, contact_id: &str, task_id: &str) -> Result<Task, GhlError> {
        let envelope: TaskEnvelope = self
            .execute(&Request::get(ApiPath::fill(
                "/contacts/:contactId/tasks/:taskId",
                &[contact_id, task_id],
            )))
            .await?;
        Ok(envelope.task)
    }

    /// `POST /contacts/:contactId/tasks`. When the outcome is unknown the
    /// contact's tasks are searched for one with the same title, body and
    /// due date before the create is sent again.
    pub async fn create_task(
        &self,
        contact_id: &str,
        fields: &TaskFields,
    ) -> Result<Task, GhlError> {
        let mut body = serde_json::to_value(fields).expect("task fields serialise");
        // The spec requires `completed` on create.
        body.as_object_mut()
            .expect("object")
            .entry("completed")
            .or_insert(Value::Bool(false));
        let path = ApiPath::fill("/contacts/:contactId/tasks", &[contact_id]);
        self.create_once(
            || async {
                let envelope: TaskEnvelope = self
                    .execute(&Request::write(Method::POST, path.clone(), Some(&body)))
                    .await?;
                Ok(envelope.task)
            },
            || async {
                let tasks = self.list_tasks(contact_id).await?;
                // GHL answers an absent body as "", so compare them as equal.
                let text = |value: &Option<String>| value.clone().unwrap_or_default();
                Ok(tasks.into_iter().find(|task| {
                    text(&task.title) == text(&fields.title)
                        && text(&task.body) == text(&fields.body)
                        && task.due_date == fields.due_date
                }))
            },
        )
        .await
    }

    /// `PUT /contacts/:contactId/tasks/:taskId`
    pub async fn update_task(
        &self,
        contact_id: &str,
        task_id: &str,
        fields: &TaskFields,
    ) -> Result<Task, GhlError> {
        let body = serde_json::to_value(fields).expect("task fields serialise");
        let envelope: TaskEnvelope = self
            .execute(&Request::write(
                Method::PUT,
                ApiPath::fill("/contacts/:contactId/tasks/:taskId", &[contact_id, task_id]),
                Some(&body),
            ))
            .await?;
        Ok(envelope.task)
    }

    /// `PUT /contacts/:contactId/tasks/:taskId/completed`
    pub async fn complete_task(
        &self,
        contact_id: &str,
        task_id: &str,
        completed: bool,
    ) -> Result<Task, GhlError> {
        let body = json!({ "completed": completed });
        let envelope: TaskEnvelope = self
            .execute(&Request::write(
                Method::PUT,
                ApiPath::fill(
                    "/contacts/:contactId/tasks/:taskId/completed",
                    &[contact_id, task_id],
                ),
                Some(&body),
            ))
            .await?;
        Ok(envelope.task)
    }

    /// `DELETE /contacts/:contactId/tasks/:taskId`
    pub async fn delete_task(&self, contact_id: &str, task_id: &str) -> Result<Deleted, GhlError> {
        let sent: Result<Ignored, GhlError> = self
            .execute(&Request::write(
                Method::DELETE,
                ApiPath::fill("/contacts/:contactId/tasks/:taskId", &[contact_id, task_id]),
                None,
            ))
            .await;
        deleted(sent)
    }

    /// `GET /contacts/:contactId/notes`, each note read on its own: one
    /// that cannot be read is set aside in [`Listing::unreadable`].
    pub async fn note_listing(&self, contact_id: &str) -> Result<Listing<Note>, GhlError> {
        let path = ApiPath::fill("/contacts/:contactId/notes", &[contact_id]);
        let list: NoteList = self.execute(&Request::get(path.clone())).await?;
        let call = self.call(&Method::GET, &path);
        Ok(read_records(&call, "note", list.notes))
    }

    /// `GET /contacts/:contactId/notes`, every note or an error naming the
    /// first that cannot be read.
    pub async fn list_notes(&self, contact_id: &str) -> Result<Vec<Note>, GhlError> {
        self.note_listing(contact_id).await?.strict()
    }

    /// `GET /contacts/:contactId/notes/:id`
    pub async fn get_note(&self, contact_id: &str, note_id: &str) -> Result<Note, GhlError> {
        let envelope: NoteEnvelope = self
            .execute(&Request::get(ApiPath::fill(
                "/contacts/:contactId/notes/:id",
                &[contact_id, note_id],
            )))
            .await?;
        Ok(envelope.note)
    }

    /// `POST /contacts/:contactId/notes`, looked up by body before a
    /// re-send when the outcome is unknown.
    pub async fn create_note(
        &self,
        contact_id: &str,
        fields: &NoteFields,
    ) -> Result<Note, GhlError> {
        let body = serde_json::to_value(fields).expect("note fields serialise");
        let path = ApiPath::fill("/contacts/:contactId/notes", &[contact_id]);
        self.create_once(
            || async {
                let envelope: NoteEnvelope = self
                    .execute(&Request::write(Method::POST, path.clone(), Some(&body)))
                    .await?;
                Ok(envelope.note)
            },
            || async {
                let notes = self.list_notes(contact_id).await?;
                Ok(notes
                    .into_iter()
                    .find(|note| note.body.as_deref() == Some(fields.body.as_str())))
            },
        )
        .await
    }

    /// `PUT /contacts/:contactId/notes/:id`
    pub async fn update_note(
        &self,
        contact_id: &str,
        note_id: &str,
        fields: &NoteFields,
    ) -> Result<Note, GhlError> {
        let body = serde_json::to_value(fields).expect("note fields serialise");
        let envelope: NoteEnvelope = self
            .execute(&Request::write(
                Method::PUT,
                ApiPath::fill("/contacts/:contactId/notes/:id", &[contact_id, note_id]),
                Some(&body),
            ))
            .await?;
        Ok(envelope.note)
    }

    /// `DELETE /contacts/:contactId/notes/:id`
    pub async fn delete_note(&self, contact_id: &str, note_id: &str) -> Result<Deleted, GhlError> {
        let sent: Result<Ignored, GhlError> = self
            .execute(&Request::write(
                Method::DELETE,
                ApiPath::fill("/contacts/:contactId/notes/:id", &[contact_id, note_id]),
                None,
            ))
            .await;
        deleted(sent)
    }

    /// `GET /contacts/:contactId/appointments`, each event read on its
    /// own: one that cannot be read is set aside in
    /// [`Listing::unreadable`].
    pub async fn appointment_listing(
        &self,
        contact_id: &str,
    ) -> Result<Listing<Appointment>, GhlError> {
        let path = ApiPath::fill("/contacts/:contactId/appointments", &[contact_id]);
        let list: EventList = self.execute(&Request::get(path.clone())).await?;
        let call = self.call(&Method::GET, &path);
        Ok(read_records(&call, "appointment", list.events))
    }

    /// `GET /contacts/:contactId/appointments`, every event or an error
    /// naming the first that cannot be read.
    pub async fn list_appointments(&self, contact_id: &str) -> Result<Vec<Appointment>, GhlError> {
        self.appointment_listing(contact_id).await?.strict()
    }

    /// `POST /contacts/:contactId/tags`: adds tags (idempotent: adding a
    /// tag twice leaves one), returns the contact's tags.
    pub async fn add_tags(
        &self,
        contact_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, GhlError> {
        let body = json!({ "tags": tags });
        let mut request = Request::write(
            Method::POST,
            ApiPath::fill("/contacts/:contactId/tags", &[contact_id]),
            Some(&body),
        );
        request.idempotent = true;
        let list: TagList = self.execute(&request).await?;
        Ok(list.tags)
    }

    /// `DELETE /contacts/:contactId/tags`: removes tags, returns the rest.
    pub async fn remove_tags(
        &self,
        contact_id: &str,
        tags: &[String],
    ) -> Result<Vec<String>, GhlError> {
        let body = json!({ "tags": tags });
        let list: TagList = self
            .execute(&Request::write(
                Method::DELETE,
                ApiPath::fill("/contacts/:contactId/tags", &[contact_id]),
                Some(&body),
            ))
            .await?;
        Ok(list.tags)
    }

    fn with_location(&self, fields: &ContactFields) -> Value {
        let mut body = fields.fields.clone();
        body.insert(
            "locationId".into(),
            Value::String(self.location_id().to_owned()),
        );
        Value::Object(body)
    }

    /// Creates a record at most once: after an attempt whose outcome is
    /// unknown, `lookup` decides whether it exists before sending again.
    async fn create_once<T, C, CF, L, LF>(&self, create: C, lookup: L) -> Result<T, GhlError>
    where
        C: Fn() -> CF,
        CF: std::future::Future<Output = Result<T, GhlError>>,
        L: Fn() -> LF,
        LF: std::future::Future<Output = Result<Option<T>, GhlError>>,
    {
        let attempts = self.options.retry.max_attempts.max(1);
        let mut last = None;
        for _ in 0..attempts {
            match create().await {
                Ok(created) => return Ok(created),
                Err(error) if error.maybe_applied() => {
                    tracing::warn!(error = %error, "create outcome unknown; looking it up before any re-send");
                    if let Some(found) = lookup().await? {
                        return Ok(found);
                    }
                    last = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last.expect("at least one attempt"))
    }
}

fn has_match_key(fields: &ContactFields) -> bool {
    fields.email().is_some_and(|e| !e.is_empty()) || fields.phone().is_some_and(|p| !p.is_empty())
}

/// Whether `contact` holds every match key `fields` sends: emails compared
/// without case, phones by their digits.
fn holds_match_keys(contact: &Contact, fields: &ContactFields) -> bool {
    let email = |e: &str| e.trim().to_lowercase();
    let digits = |p: &str| p.chars().filter(char::is_ascii_digit).collect::<String>();
    let sent_email = fields.email().filter(|e| !e.trim().is_empty());
    let sent_phone = fields.phone().filter(|p| !p.trim().is_empty());
    sent_email.is_none_or(|sent| contact.email.as_deref().map(email) == Some(email(sent)))
        && sent_phone.is_none_or(|sent| contact.phone.as_deref().map(digits) == Some(digits(sent)))
}

fn deleted(sent: Result<Ignored, GhlError>) -> Result<Deleted, GhlError> {
    match sent {
        Ok(_) => Ok(Deleted::Deleted),
        Err(GhlError::NotFound { .. }) => Ok(Deleted::AlreadyGone),
        Err(GhlError::BadRequest { message, .. })
            if message.to_ascii_lowercase().contains("not found") =>
        {
            Ok(Deleted::AlreadyGone)
        }
        Err(error) => Err(error),
    }
}
