//! The shapes of webhook payloads, from GHL's webhook docs
//! (`shared/ghl-api/docs/webhooks/*.md`), beside those of the API's
//! answers in the parent module.

use super::{Shape, CUSTOM_FIELD, DND_SETTINGS};
use crate::ghl::model::EventKind;

// These docs are not vendored in the repository, so no test reads them;
// the lists are copied from their `json_schema` blocks. The `webhookId`
// and `timestamp` every delivery carries come from
// `docs/oauth/WebhookAuthentication.md` and are added after trimming.

/// `ContactCreate`, `ContactUpdate`, `ContactDelete`, `ContactTagUpdate`
/// (`docs/webhooks/Contact*.md`): no `dateUpdated`, no lower-case copies.
pub const WEBHOOK_CONTACT_FIELDS: &[&str] = &[
    "type",
    "locationId",
    "id",
    "address1",
    "city",
    "companyName",
    "country",
    "source",
    "dateAdded",
    "dateOfBirth",
    "dnd",
    "email",
    "name",
    "firstName",
    "lastName",
    "phone",
    "postalCode",
    "state",
    "tags",
    "website",
    "attachments",
    "assignedTo",
    "customFields",
];

/// `ContactDndUpdate` (`docs/webhooks/ContactDndUpdate.md`): the contact
/// fields plus `dndSettings` (channels `SMS`, `Email`, `GMB`, `FB`,
/// `WhatsApp`, `Call`, each `{status, message, code}`).
pub const WEBHOOK_CONTACT_DND_FIELDS: &[&str] = &[
    "type",
    "locationId",
    "id",
    "address1",
    "city",
    "companyName",
    "country",
    "source",
    "dateAdded",
    "dateOfBirth",
    "dnd",
    "dndSettings",
    "email",
    "name",
    "firstName",
    "lastName",
    "phone",
    "postalCode",
    "state",
    "tags",
    "website",
    "attachments",
    "assignedTo",
    "customFields",
];

/// `TaskCreate`, `TaskComplete`, `TaskDelete` (`docs/webhooks/Task*.md`):
/// `dateAdded` but no `dateUpdated`, and no `completed`.
pub const WEBHOOK_TASK_FIELDS: &[&str] = &[
    "type",
    "locationId",
    "id",
    "assignedTo",
    "body",
    "contactId",
    "title",
    "dateAdded",
    "dueDate",
];

/// `NoteCreate`, `NoteUpdate`, `NoteDelete` (`docs/webhooks/Note*.md`).
pub const WEBHOOK_NOTE_FIELDS: &[&str] =
    &["type", "locationId", "id", "body", "contactId", "dateAdded"];

/// `AppointmentCreate`, `AppointmentUpdate`, `AppointmentDelete`
/// (`docs/webhooks/Appointment*.md`): the envelope.
pub const WEBHOOK_APPOINTMENT_ENVELOPE_FIELDS: &[&str] = &["type", "locationId", "appointment"];

/// The `appointment` object of those events (no `status`, no
/// `locationId`, but `source`).
pub const WEBHOOK_APPOINTMENT_FIELDS: &[&str] = &[
    "id",
    "address",
    "title",
    "calendarId",
    "contactId",
    "groupId",
    "appointmentStatus",
    "assignedUserId",
    "users",
    "notes",
    "source",
    "startTime",
    "endTime",
    "dateAdded",
    "dateUpdated",
];

const WEBHOOK_CONTACT: Shape = Shape {
    source: "docs/webhooks/ContactCreate.md",
    fields: WEBHOOK_CONTACT_FIELDS,
    nested: &[("customFields", &CUSTOM_FIELD)],
};
const WEBHOOK_CONTACT_DND: Shape = Shape {
    source: "docs/webhooks/ContactDndUpdate.md",
    fields: WEBHOOK_CONTACT_DND_FIELDS,
    nested: &[
        ("customFields", &CUSTOM_FIELD),
        ("dndSettings", &DND_SETTINGS),
    ],
};
const WEBHOOK_TASK: Shape = Shape {
    source: "docs/webhooks/TaskCreate.md",
    fields: WEBHOOK_TASK_FIELDS,
    nested: &[],
};
const WEBHOOK_NOTE: Shape = Shape {
    source: "docs/webhooks/NoteCreate.md",
    fields: WEBHOOK_NOTE_FIELDS,
    nested: &[],
};
const WEBHOOK_APPOINTMENT_RECORD: Shape = Shape {
    source: "docs/webhooks/AppointmentCreate.md (appointment)",
    fields: WEBHOOK_APPOINTMENT_FIELDS,
    nested: &[],
};
const WEBHOOK_APPOINTMENT: Shape = Shape {
    source: "docs/webhooks/AppointmentCreate.md",
    fields: WEBHOOK_APPOINTMENT_ENVELOPE_FIELDS,
    nested: &[("appointment", &WEBHOOK_APPOINTMENT_RECORD)],
};

/// The documented payload of a webhook event.
pub(crate) fn webhook_shape(kind: EventKind) -> &'static Shape {
    match kind {
        EventKind::ContactCreate
        | EventKind::ContactUpdate
        | EventKind::ContactDelete
        | EventKind::ContactTagUpdate => &WEBHOOK_CONTACT,
        EventKind::ContactDndUpdate => &WEBHOOK_CONTACT_DND,
        EventKind::TaskCreate | EventKind::TaskComplete | EventKind::TaskDelete => &WEBHOOK_TASK,
        EventKind::NoteCreate | EventKind::NoteUpdate | EventKind::NoteDelete => &WEBHOOK_NOTE,
        EventKind::AppointmentCreate
        | EventKind::AppointmentUpdate
        | EventKind::AppointmentDelete => &WEBHOOK_APPOINTMENT,
    }
}
