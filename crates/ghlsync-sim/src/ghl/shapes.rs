//! Which fields the simulator sends: [`RecordShapes::Generous`] sends every
//! field a record holds; [`RecordShapes::SpecStrict`] (the default) trims
//! every contact, task, note and
//! appointment it sends to the properties the schema of that answer lists
//! in `spec/ghl-api/apps/contacts.json`, or, for webhooks, in GHL's
//! webhook docs (`ghl-api/docs/webhooks/*.md` of the team's `shared/`
//! folder), plus only the live differences the field notes promise
//! (`shared/README.md`, `ghl-api/FIELD-NOTES.md`).
//!
//! Strict mode changes only the emitted JSON: the records keep every field
//! (and the timestamps the simulator orders by) internally, and
//! [`super::SimHandle`]'s in-process readers (`contacts`, `tasks`, ...)
//! still show them. It also drops fields a client wrote that the schema
//! does not list (read-after-write of unknown fields is a generous habit).
//!
//! Each property list below is the `properties` of one schema, in the
//! spec's order, copied with `jq '.components.schemas.<Name>.properties |
//! keys_unsorted'`; `tests/sim_ghl_strict.rs` checks them against the
//! vendored spec so they cannot drift.

use serde_json::Value;

use super::model::Record;

mod webhooks;
pub use webhooks::*;

/// How much a simulator's answers and webhooks carry beyond the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RecordShapes {
    /// Every field a record holds, including those no schema lists (task
    /// `dateAdded`/`dateUpdated`, note `dateUpdated`, contact
    /// `contactName`, fields a client sent that GHL does not know): for a
    /// test that needs to see more than GHL promises.
    Generous,
    /// Only the properties the spec's schema for that answer lists, plus
    /// the documented live differences (see the module documentation).
    /// The default: what the daemon is built and tested against is what
    /// GHL promises, not what our simulator happens to hold.
    #[default]
    SpecStrict,
}

/// The properties to keep of an object, and how to trim the objects
/// nested in some of them (an object value, or each object of an array
/// value).
#[derive(Debug)]
pub struct Shape {
    /// The schema (or document) the list comes from.
    pub source: &'static str,
    pub fields: &'static [&'static str],
    pub nested: &'static [(&'static str, &'static Shape)],
}

impl Shape {
    /// `record` without the properties this shape does not list.
    pub(crate) fn trim(&self, record: &Record) -> Record {
        let mut out = Record::new();
        for (key, value) in record {
            if !self.fields.contains(&key.as_str()) {
                continue;
            }
            let value = match self.nested.iter().find(|(k, _)| k == key) {
                Some((_, inner)) => inner.trim_value(value),
                None => value.clone(),
            };
            out.insert(key.clone(), value);
        }
        out
    }

    fn trim_value(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(self.trim(map)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.trim_value(v)).collect()),
            other => other.clone(),
        }
    }
}

// --- the API's schemas (apps/contacts.json) ---------------------------------

/// `TaskSchema`: the tasks of `TasksListSuccessfulResponseDto` (`GET
/// /contacts/{id}/tasks`) and `TaskByIsSuccessfulResponseDto` (get,
/// create, update, complete). No `dateAdded`/`dateUpdated` (a known
/// spec/live difference the team treats as real: detect task changes by
/// content).
pub const TASK_SCHEMA_FIELDS: &[&str] = &[
    "id",
    "title",
    "body",
    "assignedTo",
    "dueDate",
    "completed",
    "contactId",
];

/// `GetNoteSchema`: the notes of `GetNotesListSuccessfulResponseDto` and
/// `GetCreateUpdateNoteSuccessfulResponseDto`. `dateAdded` only, no
/// `dateUpdated`.
pub const NOTE_SCHEMA_FIELDS: &[&str] = &[
    "id",
    "body",
    "userId",
    "dateAdded",
    "contactId",
    "title",
    "color",
    "pinned",
];

/// `GetEventSchema`: the appointments of `GetEventsSuccessfulResponseDto`
/// (`GET /contacts/{id}/appointments` → `{events}`).
pub const EVENT_SCHEMA_FIELDS: &[&str] = &[
    "id",
    "calendarId",
    "status",
    "title",
    "assignedUserId",
    "notes",
    "startTime",
    "endTime",
    "address",
    "locationId",
    "contactId",
    "groupId",
    "appointmentStatus",
    "users",
    "dateAdded",
    "dateUpdated",
    "assignedResources",
];

/// `GetContectByIdSchema` (sic): the contact of
/// `ContactsByIdSuccessfulResponseDto` (`GET /contacts/{id}`),
/// `UpdateContactsSuccessfulResponseDto` (`PUT`) and
/// `UpsertContactsSuccessfulResponseDto` (`POST /contacts/upsert`).
pub const CONTACT_BY_ID_SCHEMA_FIELDS: &[&str] = &[
    "id",
    "name",
    "locationId",
    "firstName",
    "lastName",
    "email",
    "emailLowerCase",
    "timezone",
    "companyName",
    "phone",
    "dnd",
    "dndSettings",
    "type",
    "source",
    "assignedTo",
    "address1",
    "city",
    "state",
    "country",
    "postalCode",
    "website",
    "tags",
    "dateOfBirth",
    "dateAdded",
    "dateUpdated",
    "attachments",
    "ssn",
    "keyword",
    "firstNameLowerCase",
    "fullNameLowerCase",
    "lastNameLowerCase",
    "lastActivity",
    "customFields",
    "businessId",
    "attributionSource",
    "lastAttributionSource",
    "visitorId",
];

/// `CreateContactSchema`: the contact of
/// `CreateContactsSuccessfulResponseDto` (`POST /contacts/`).
pub const CREATED_CONTACT_SCHEMA_FIELDS: &[&str] = &[
    "id",
    "dateAdded",
    "dateUpdated",
    "deleted",
    "tags",
    "type",
    "customFields",
    "locationId",
    "firstName",
    "firstNameLowerCase",
    "fullNameLowerCase",
    "lastName",
    "lastNameLowerCase",
    "email",
    "emailLowerCase",
    "bounceEmail",
    "unsubscribeEmail",
    "dnd",
    "dndSettings",
    "phone",
    "address1",
    "city",
    "state",
    "country",
    "postalCode",
    "website",
    "source",
    "companyName",
    "dateOfBirth",
    "birthMonth",
    "birthDay",
    "lastSessionActivityAt",
    "offers",
    "products",
    "businessId",
    "assignedTo",
];

/// `ContactsSearchSchema`: the contacts of
/// `ContactsSearchSuccessfulResponseDto` (`GET /contacts/` and `GET
/// /contacts/business/{businessId}`). `POST /contacts/search` and `GET
/// /contacts/search/duplicate` document no body schema; the field notes
/// treat search's contacts as this schema ("Contact objects returned by
/// list and search carry `dateUpdated` ... although
/// `ContactsSearchSchema` omits them"), so the simulator uses it there too.
pub const CONTACTS_SEARCH_SCHEMA_FIELDS: &[&str] = &[
    "id",
    "locationId",
    "email",
    "timezone",
    "country",
    "source",
    "dateAdded",
    "customFields",
    "tags",
    "businessId",
    "attributions",
    "followers",
];

/// A listed or searched contact: [`CONTACTS_SEARCH_SCHEMA_FIELDS`] plus
/// the contact's own fields as `GET /contacts/{id}` gives them
/// ([`CONTACT_BY_ID_SCHEMA_FIELDS`], `dateUpdated` among them). The field
/// notes say list and search answers carry `dateUpdated` "and more fields"
/// although the schema omits them (`shared/README.md`, first known
/// difference), and that search answers spell some of the contact's
/// fields differently from `GET /contacts/{id}` ("Search": `address`,
/// `dateOfBirth`), so they do carry them: a sync reads its contacts from
/// these listings, never one `GET` per contact.
pub const LISTED_CONTACT_FIELDS: &[&str] = &[
    "id",
    "locationId",
    "email",
    "timezone",
    "country",
    "source",
    "dateAdded",
    "customFields",
    "tags",
    "businessId",
    "attributions",
    "followers",
    "name",
    "firstName",
    "lastName",
    "emailLowerCase",
    "companyName",
    "phone",
    "dnd",
    "dndSettings",
    "type",
    "assignedTo",
    "address1",
    "city",
    "state",
    "postalCode",
    "website",
    "dateOfBirth",
    "dateUpdated",
    "attachments",
    "ssn",
    "keyword",
    "firstNameLowerCase",
    "fullNameLowerCase",
    "lastNameLowerCase",
    "lastActivity",
    "attributionSource",
    "lastAttributionSource",
    "visitorId",
];

/// `CustomFieldSchema`: an item of a contact's `customFields`.
pub const CUSTOM_FIELD_SCHEMA_FIELDS: &[&str] = &["id", "value"];

/// `DndSettingsSchema`: the channels of `dndSettings`.
pub const DND_SETTINGS_SCHEMA_FIELDS: &[&str] = &["Call", "Email", "SMS", "WhatsApp", "GMB", "FB"];

/// `DndSettingSchema`: one channel's DND setting.
pub const DND_SETTING_SCHEMA_FIELDS: &[&str] = &["status", "message", "code"];

/// `AttributionSource`: `attributionSource`, `lastAttributionSource` and
/// the items of `attributions`.
pub const ATTRIBUTION_SOURCE_FIELDS: &[&str] = &[
    "url",
    "campaign",
    "utmSource",
    "utmMedium",
    "utmContent",
    "referrer",
    "campaignId",
    "fbclid",
    "gclid",
    "msclikid",
    "dclid",
    "fbc",
    "fbp",
    "fbEventId",
    "userAgent",
    "ip",
    "medium",
    "mediumId",
];

// --- the shapes -------------------------------------------------------------

const CUSTOM_FIELD: Shape = Shape {
    source: "CustomFieldSchema",
    fields: CUSTOM_FIELD_SCHEMA_FIELDS,
    nested: &[],
};
const DND_SETTING: Shape = Shape {
    source: "DndSettingSchema",
    fields: DND_SETTING_SCHEMA_FIELDS,
    nested: &[],
};
const DND_SETTINGS: Shape = Shape {
    source: "DndSettingsSchema",
    fields: DND_SETTINGS_SCHEMA_FIELDS,
    nested: &[
        ("Call", &DND_SETTING),
        ("Email", &DND_SETTING),
        ("SMS", &DND_SETTING),
        ("WhatsApp", &DND_SETTING),
        ("GMB", &DND_SETTING),
        ("FB", &DND_SETTING),
    ],
};
const ATTRIBUTION: Shape = Shape {
    source: "AttributionSource",
    fields: ATTRIBUTION_SOURCE_FIELDS,
    nested: &[],
};

/// `GET`/`PUT /contacts/{id}`, upsert.
pub const CONTACT_BY_ID: Shape = Shape {
    source: "GetContectByIdSchema",
    fields: CONTACT_BY_ID_SCHEMA_FIELDS,
    nested: &[
        ("dndSettings", &DND_SETTINGS),
        ("customFields", &CUSTOM_FIELD),
        ("attributionSource", &ATTRIBUTION),
        ("lastAttributionSource", &ATTRIBUTION),
    ],
};
/// `POST /contacts/`.
pub const CREATED_CONTACT: Shape = Shape {
    source: "CreateContactSchema",
    fields: CREATED_CONTACT_SCHEMA_FIELDS,
    nested: &[
        ("dndSettings", &DND_SETTINGS),
        ("customFields", &CUSTOM_FIELD),
    ],
};
/// `GET /contacts/`, `GET /contacts/business/{id}`, duplicate search.
pub const LISTED_CONTACT: Shape = Shape {
    source: "ContactsSearchSchema + GetContectByIdSchema (field notes)",
    fields: LISTED_CONTACT_FIELDS,
    nested: &[
        ("customFields", &CUSTOM_FIELD),
        ("attributions", &ATTRIBUTION),
        ("dndSettings", &DND_SETTINGS),
        ("attributionSource", &ATTRIBUTION),
        ("lastAttributionSource", &ATTRIBUTION),
    ],
};
/// Tasks in every task answer.
pub const TASK: Shape = Shape {
    source: "TaskSchema",
    fields: TASK_SCHEMA_FIELDS,
    nested: &[],
};
/// Notes in every note answer.
pub const NOTE: Shape = Shape {
    source: "GetNoteSchema",
    fields: NOTE_SCHEMA_FIELDS,
    nested: &[],
};
/// Appointments of `GET /contacts/{id}/appointments`.
pub const EVENT: Shape = Shape {
    source: "GetEventSchema",
    fields: EVENT_SCHEMA_FIELDS,
    nested: &[],
};

impl RecordShapes {
    /// `record` as this mode sends it in an answer of `shape`.
    pub(crate) fn apply(self, record: Record, shape: &Shape) -> Record {
        match self {
            RecordShapes::Generous => record,
            RecordShapes::SpecStrict => shape.trim(&record),
        }
    }

    /// Trims each object of `answer[key]` (a list answer) to `shape`.
    /// A `POST /contacts/search` answer's contacts, trimmed to
    /// [`LISTED_CONTACT`] (their `searchAfter` kept) and spelled as search
    /// spells them: "Search
    /// answers spell some fields differently from `GET /contacts/{id}`
    /// (for example `address` rather than `address1`, and `dateOfBirth`
    /// as epoch milliseconds)" (FIELD-NOTES.md, "Search").
    pub(crate) fn apply_to_search(self, answer: &mut Value) {
        if self == RecordShapes::Generous {
            return;
        }
        for contact in answer["contacts"].as_array_mut().into_iter().flatten() {
            let Value::Object(contact) = contact else {
                continue;
            };
            // The spec gives search no answer schema; the field notes
            // require paging with `searchAfter` past 10,000 results, which
            // needs the cursor in the answer.
            let search_after = contact.remove("searchAfter");
            *contact = LISTED_CONTACT.trim(contact);
            if let Some(search_after) = search_after {
                contact.insert("searchAfter".into(), search_after);
            }
            if let Some(address) = contact.remove("address1") {
                contact.insert("address".into(), address);
            }
            let birth = contact.get("dateOfBirth").and_then(Value::as_str);
            if let Some(date) =
                birth.and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            {
                let millis = date
                    .and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_millis();
                contact.insert("dateOfBirth".into(), Value::from(millis));
            }
        }
    }

    pub(crate) fn apply_to_list(self, answer: &mut Value, key: &str, shape: &Shape) {
        if self == RecordShapes::Generous {
            return;
        }
        if let Some(Value::Array(items)) = answer.get_mut(key) {
            for item in items {
                if let Value::Object(map) = item {
                    *map = shape.trim(map);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
