//! Unusual but valid records, for [`super::SimHandle::plant_unusual_records`]:
//! contacts (with tasks, notes and appointments) whose values the spec's
//! response schemas allow but that ordinary seed data never has. Every
//! choice rests on a schema of `spec/ghl-api/apps/contacts.json` or on one
//! of its examples, named where the value is made:
//! - empty strings for optional strings (no schema of a contact, task,
//!   note or appointment answer has `minLength` or a `required` list);
//! - absent optional fields (nothing is `required` there either), and
//!   `null` only where the schema says `nullable` (only `AttributionSource`
//!   has nullable properties; its `url` is required and always a string);
//! - very long texts (10 KiB note bodies, 500-character names: no
//!   `maxLength` anywhere);
//! - Unicode: emoji (with ZWJ sequences and flags), right-to-left scripts,
//!   combining marks;
//! - dates spelled as GHL spells them: ISO 8601 with milliseconds and `Z`
//!   (the `dateAdded` example of `GetContectByIdSchema`,
//!   `"2021-07-02T05:18:26.704Z"`), without milliseconds (the `timestamp`
//!   example of `docs/oauth/WebhookAuthentication.md`,
//!   `"2025-01-28T14:35:00Z"`), with a numeric offset (the examples of
//!   `docs/webhooks/AppointmentCreate.md`, `"2023-09-25T16:00:00+05:30"`;
//!   here `+00:00`), appointment times as `"2021-07-16 11:00:00"` (the
//!   `startTime`, `endTime`, `dateAdded` and `dateUpdated` examples of
//!   `GetEventSchema`), a birth date as `YYYY-MM-DD` (the `dateOfBirth`
//!   example of `GetContectByIdSchema`);
//! - digits in string fields stay strings (`postalCode` `"00501"`, custom
//!   field values `"42"`): those fields are typed `string`;
//! - empty arrays (`tags`, `customFields`, `followers`, appointment
//!   `users` and `assignedResources`).
//!
//! Custom field values come in every type the GHL field notes give
//! them: "Reads return `customFields: [{id, value}]`. Writes take
//! `customFields: [{id | key, field_value}]`, typed per field: a string,
//! an array for multi-select and checkbox fields, a number for numeric and
//! monetary fields, an object for file uploads." The spec types
//! `CustomFieldSchema.value` as `string` only; the webhook docs and the
//! notes show typed values, which the strict-shape tests allow as a
//! documented quirk (`tests/common/openapi.rs`, `QUIRKS`). Contact kind 2
//! carries one value of each of the location's fields, of its type
//! ([`typed_value`]).
//!
//! The same seed, count and location give the same records, byte for byte
//! (every timestamp is generated; none is read from the clock). Contact
//! `i` follows variant `i % UNUSUAL_VARIANTS`, so any
//! `count >= UNUSUAL_VARIANTS` has every kind of value at least once.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::model::{gen_id, CustomFieldDef, Record};

/// How many kinds of contact the generator cycles through; planting at
/// least this many contacts gives every kind of unusual value.
pub const UNUSUAL_VARIANTS: usize = 4;

/// Emoji: a plain one, a ZWJ sequence with a skin tone, a flag, a
/// variation selector.
const EMOJI: &[&str] = &["🦀", "👩🏽‍💻", "🇩🇪", "🏳️‍🌈", "🎉", "❤️"];
/// Right-to-left scripts (Hebrew with niqqud, Arabic).
const RTL: &[&str] = &["שָׁלוֹם", "עברית", "عبد الله", "مرحبا بالعالم", "ابن سينا"];
/// Combining marks: decomposed accents and a pile of them.
const COMBINING: &[&str] = &[
    "Zoe\u{0308}",
    "Cafe\u{0301}",
    "A\u{030A}ngstro\u{0308}m",
    "Z\u{0351}\u{0368}a\u{0344}l\u{0347}g\u{0309}o\u{0310}",
    "n\u{0303}and\u{0303}u",
];
/// Ordinary text between the unusual pieces.
const PLAIN: &[&str] = &[
    "Lorem",
    "ipsum",
    "O'Brien-Łukasiewicz",
    "\"quoted\"",
    "back\\slash",
    "tab\there",
];

/// A planted contact with its children.
pub(crate) struct Planted {
    pub contact: Record,
    pub tasks: Vec<Record>,
    pub notes: Vec<Record>,
    pub appointments: Vec<Record>,
}

/// What the generator needs of the location it plants into.
pub(crate) struct Target<'a> {
    pub location_id: &'a str,
    pub users: &'a [String],
    pub calendars: &'a [String],
    pub custom_fields: &'a [CustomFieldDef],
}

/// 2021-01-01T00:00:00Z and 2025-01-01T00:00:00Z: the span of generated
/// times.
const FROM_MS: i64 = 1_609_459_200_000;
const TO_MS: i64 = 1_735_689_600_000;

fn fmt(ms: i64, pattern: &str) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format(pattern)
        .to_string()
}

/// `2021-07-02T05:18:26.704Z` (`GetContectByIdSchema.dateAdded` example).
fn iso_millis(ms: i64) -> String {
    fmt(ms, "%Y-%m-%dT%H:%M:%S%.3fZ")
}

/// `2025-01-28T14:35:00Z` (WebhookAuthentication.md `timestamp` example).
fn iso_seconds(ms: i64) -> String {
    fmt(ms, "%Y-%m-%dT%H:%M:%SZ")
}

/// `2023-09-25T16:00:00.000+00:00` / `2023-09-25T16:00:00+00:00` (the
/// offset spelling of the `docs/webhooks/AppointmentCreate.md` example).
fn iso_offset(ms: i64, millis: bool) -> String {
    if millis {
        fmt(ms, "%Y-%m-%dT%H:%M:%S%.3f+00:00")
    } else {
        fmt(ms, "%Y-%m-%dT%H:%M:%S+00:00")
    }
}

/// `2021-07-16 11:00:00` (`GetEventSchema.startTime` example).
fn spaced(ms: i64) -> String {
    fmt(ms, "%Y-%m-%d %H:%M:%S")
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

/// Text of exactly `chars` characters drawn from every pool (no
/// `maxLength` on any name field).
fn long_name(rng: &mut ChaCha8Rng, chars: usize) -> String {
    let mut out = String::new();
    while out.chars().count() < chars {
        let pool = [EMOJI, RTL, COMBINING, PLAIN][rng.gen_range(0..4)];
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(pick(rng, pool));
    }
    out.chars().take(chars).collect()
}

/// At least `bytes` bytes of multi-line text drawn from every pool
/// (`GetNoteSchema.body`: a string, no `maxLength`).
fn long_text(rng: &mut ChaCha8Rng, bytes: usize) -> String {
    let mut out = String::new();
    let mut line = 0;
    while out.len() < bytes {
        line += 1;
        out.push_str(&format!("{line}. "));
        for _ in 0..8 {
            let pool = [EMOJI, RTL, COMBINING, PLAIN][rng.gen_range(0..4)];
            out.push_str(pick(rng, pool));
            out.push(' ');
        }
        out.push('\n');
    }
    out
}

fn lower_names(contact: &mut Record, first: &str, last: &str) {
    let full = format!("{first} {last}").trim().to_string();
    // `GetContectByIdSchema`: name, firstNameLowerCase, lastNameLowerCase,
    // fullNameLowerCase are strings.
    contact.insert("name".into(), json!(full));
    contact.insert("firstNameLowerCase".into(), json!(first.to_lowercase()));
    contact.insert("lastNameLowerCase".into(), json!(last.to_lowercase()));
    contact.insert("fullNameLowerCase".into(), json!(full.to_lowercase()));
}

/// Generates `count` contacts for `target` from `seed`.
pub(crate) fn generate(seed: u64, count: usize, target: &Target<'_>) -> Vec<Planted> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x756e_7573_7561_6c21);
    (0..count)
        .map(|index| planted(&mut rng, target, index))
        .collect()
}

fn planted(rng: &mut ChaCha8Rng, target: &Target<'_>, index: usize) -> Planted {
    let id = gen_id(rng);
    let added = rng.gen_range(FROM_MS..TO_MS);
    let updated = rng.gen_range(added..=TO_MS);
    let user = target.users.choose(rng).cloned().unwrap_or_default();
    let mut d = Draft {
        target,
        id,
        added,
        updated,
        user,
        contact: Record::new(),
        tasks: Vec::new(),
        notes: Vec::new(),
        appointments: Vec::new(),
    };
    d.contact.insert("id".into(), json!(d.id));
    d.contact
        .insert("locationId".into(), json!(target.location_id));
    d.contact.insert("type".into(), json!("lead"));
    match index % UNUSUAL_VARIANTS {
        0 => long_empty_and_absent(&mut d, rng),
        1 => unicode_everywhere(&mut d, rng),
        2 => nulls_digits_and_dnd(&mut d, rng),
        _ => an_appointment_spelled_as_the_spec(&mut d, rng),
    }
    Planted {
        contact: d.contact,
        tasks: d.tasks,
        notes: d.notes,
        appointments: d.appointments,
    }
}

/// A contact being planted, and the children its variant gives it.
struct Draft<'a> {
    target: &'a Target<'a>,
    id: String,
    added: i64,
    updated: i64,
    user: String,
    contact: Record,
    tasks: Vec<Record>,
    notes: Vec<Record>,
    appointments: Vec<Record>,
}

impl Draft<'_> {
    /// The id of the location's `i`-th custom field (cycling).
    fn field(&self, i: usize) -> String {
        let fields = self.target.custom_fields;
        fields
            .get(i % fields.len().max(1))
            .map(|d| d.id.clone())
            .unwrap_or_default()
    }

    /// A child's id and time, no earlier than the contact.
    fn child(&self, rng: &mut ChaCha8Rng) -> (String, i64) {
        (gen_id(rng), rng.gen_range(self.added..=TO_MS))
    }
}

/// Long, empty and absent values.
fn long_empty_and_absent(d: &mut Draft<'_>, rng: &mut ChaCha8Rng) {
    let first = long_name(rng, 500);
    d.contact.insert("firstName".into(), json!(first));
    d.contact.insert("lastName".into(), json!(""));
    lower_names(&mut d.contact, &first, "");
    // No email, phone or address: none is required.
    d.contact.insert("companyName".into(), json!(""));
    d.contact.insert("source".into(), json!(""));
    d.contact.insert("tags".into(), json!([]));
    d.contact.insert("customFields".into(), json!([]));
    d.contact.insert("followers".into(), json!([]));
    d.contact
        .insert("dateAdded".into(), json!(iso_millis(d.added)));
    d.contact
        .insert("dateUpdated".into(), json!(iso_millis(d.updated)));
    let (task_id, at) = d.child(rng);
    d.tasks.push(task(
        &task_id,
        &d.id,
        json!({"title": "", "body": "", "completed": false, "dueDate": iso_seconds(at)}),
        at,
    ));
    let (note_id, at) = d.child(rng);
    let body = long_text(rng, 10 * 1024);
    d.notes.push(note(
        &note_id,
        &d.id,
        json!({"body": body, "title": "", "pinned": false, "dateAdded": iso_millis(at)}),
        at,
    ));
}

/// Unicode everywhere, dates with a `+00:00` offset.
fn unicode_everywhere(d: &mut Draft<'_>, rng: &mut ChaCha8Rng) {
    let first = format!("{} {}", pick(rng, EMOJI), pick(rng, COMBINING));
    let last = pick(rng, RTL).to_string();
    d.contact.insert("firstName".into(), json!(first));
    d.contact.insert("lastName".into(), json!(last));
    lower_names(&mut d.contact, &first, &last);
    let email = "Zoë.Ünïcode+tag@exämple.com";
    d.contact.insert("email".into(), json!(email));
    d.contact
        .insert("emailLowerCase".into(), json!(email.to_lowercase()));
    d.contact
        .insert("companyName".into(), json!(pick(rng, RTL)));
    d.contact.insert(
        "address1".into(),
        json!(format!("{} Straße 5", pick(rng, COMBINING))),
    );
    d.contact.insert("city".into(), json!("תל אביב-יפו"));
    // `ContactsSearchSchema.country` example.
    d.contact.insert("country".into(), json!("DE"));
    // `ContactsSearchSchema.timezone` example.
    d.contact.insert("timezone".into(), json!("Asia/Calcutta"));
    d.contact.insert(
        "tags".into(),
        json!([pick(rng, EMOJI), pick(rng, RTL), pick(rng, COMBINING)]),
    );
    d.contact.insert(
        "customFields".into(),
        json!([
            {"id": d.field(0), "value": format!("{} {}", pick(rng, EMOJI), pick(rng, RTL))},
            {"id": d.field(1), "value": pick(rng, COMBINING)},
        ]),
    );
    d.contact.insert("assignedTo".into(), json!(d.user));
    d.contact
        .insert("dateAdded".into(), json!(iso_offset(d.added, true)));
    d.contact
        .insert("dateUpdated".into(), json!(iso_offset(d.updated, false)));
    let (task_id, at) = d.child(rng);
    d.tasks.push(task(
        &task_id,
        &d.id,
        json!({
            "title": pick(rng, EMOJI),
            "body": format!("{}\n{}", pick(rng, RTL), pick(rng, COMBINING)),
            "assignedTo": d.user,
            "completed": true,
            "dueDate": iso_offset(at, true),
        }),
        at,
    ));
    let (note_id, at) = d.child(rng);
    d.notes.push(note(
        &note_id,
        &d.id,
        json!({
            "body": format!("{} {} {}", pick(rng, RTL), pick(rng, EMOJI), pick(rng, RTL)),
            "title": pick(rng, COMBINING),
            // `GetNoteSchema.color` example.
            "color": "#FFAA00",
            "pinned": true,
            "userId": d.user,
            "dateAdded": iso_offset(at, false),
        }),
        at,
    ));
}

/// Nulls where nullable, digits in strings, DND settings.
fn nulls_digits_and_dnd(d: &mut Draft<'_>, rng: &mut ChaCha8Rng) {
    d.contact
        .insert("firstName".into(), json!(pick(rng, PLAIN)));
    d.contact
        .insert("lastName".into(), json!("O'Brien-Łukasiewicz"));
    // `GetContectByIdSchema.phone`: a string (example
    // "+18832327657"), never a number.
    d.contact.insert(
        "phone".into(),
        json!(format!("+1883232{:04}", rng.gen_range(0..10_000))),
    );
    d.contact.insert("postalCode".into(), json!("00501"));
    d.contact.insert("website".into(), json!(""));
    d.contact.insert("dateOfBirth".into(), json!("1990-09-25"));
    d.contact.insert(
        "customFields".into(),
        json!([
            {"id": d.field(0), "value": "42"},
            {"id": d.field(1), "value": "3.50"},
            {"id": d.field(2), "value": ""},
        ]),
    );
    let typed = d
        .target
        .custom_fields
        .iter()
        .filter_map(|def| typed_value(def).map(|value| json!({"id": def.id, "value": value})));
    if let Some(Value::Array(values)) = d.contact.get_mut("customFields") {
        values.extend(typed);
    }
    // `AttributionSource`: `url` required, the rest nullable.
    let attribution = json!({
        "url": "", "campaign": null, "utmSource": null, "utmMedium": null,
        "utmContent": null, "referrer": null, "campaignId": null, "fbclid": null,
        "gclid": null, "msclikid": null, "dclid": null, "fbc": null, "fbp": null,
        "fbEventId": null, "userAgent": null, "ip": null, "medium": null,
        "mediumId": null,
    });
    d.contact
        .insert("attributionSource".into(), attribution.clone());
    d.contact.insert(
        "lastAttributionSource".into(),
        json!({"url": "Trigger Link", "medium": "survey", "mediumId": null}),
    );
    d.contact
        .insert("attributions".into(), json!([attribution]));
    d.contact.insert("dnd".into(), json!(true));
    // `DndSettingSchema`: `status` required, one of active,
    // inactive, permanent; message and code optional strings.
    d.contact.insert(
        "dndSettings".into(),
        json!({
            "Email": {"status": "inactive", "message": "", "code": ""},
            "SMS": {"status": "permanent"},
        }),
    );
    d.contact.insert("tags".into(), json!([]));
    d.contact
        .insert("dateAdded".into(), json!(iso_seconds(d.added)));
    d.contact
        .insert("dateUpdated".into(), json!(iso_millis(d.updated)));
    let (task_id, at) = d.child(rng);
    d.tasks.push(task(
        &task_id,
        &d.id,
        json!({"title": "12345", "body": "", "completed": false, "dueDate": iso_millis(at)}),
        at,
    ));
    let (note_id, at) = d.child(rng);
    d.notes.push(note(
        &note_id,
        &d.id,
        json!({"body": "", "dateAdded": iso_seconds(at)}),
        at,
    ));
}

/// An appointment with the spec's own time spelling.
fn an_appointment_spelled_as_the_spec(d: &mut Draft<'_>, rng: &mut ChaCha8Rng) {
    let first = pick(rng, RTL).to_string();
    let last = pick(rng, EMOJI).to_string();
    d.contact.insert("firstName".into(), json!(first));
    d.contact.insert("lastName".into(), json!(last));
    lower_names(&mut d.contact, &first, &last);
    d.contact
        .insert("email".into(), json!("UPPER.CASE@EXAMPLE.COM"));
    d.contact.insert("followers".into(), json!([]));
    d.contact
        .insert("dateAdded".into(), json!(iso_millis(d.added)));
    d.contact
        .insert("dateUpdated".into(), json!(iso_offset(d.updated, true)));
    let (appointment_id, at) = d.child(rng);
    let start = at + rng.gen_range(1..14) * 24 * 3600 * 1000;
    let calendar = d.target.calendars.choose(rng).cloned().unwrap_or_default();
    let mut appointment = Record::new();
    for (key, value) in [
        ("id", json!(appointment_id)),
        ("calendarId", json!(calendar)),
        // `GetEventSchema` examples: status "booked",
        // appointmentStatus "booked".
        ("status", json!("booked")),
        ("appointmentStatus", json!("booked")),
        (
            "title",
            json!(format!("{} {}", pick(rng, EMOJI), pick(rng, RTL))),
        ),
        ("assignedUserId", json!(d.user)),
        ("users", json!([])),
        ("assignedResources", json!([])),
        ("notes", json!("")),
        ("address", json!("")),
        ("startTime", json!(spaced(start))),
        ("endTime", json!(spaced(start + 30 * 60 * 1000))),
        ("locationId", json!(d.target.location_id)),
        ("contactId", json!(d.id)),
        ("dateAdded", json!(spaced(at))),
        ("dateUpdated", json!(spaced(at))),
    ] {
        appointment.insert(key.into(), value);
    }
    d.appointments.push(appointment);
    let (task_id, at) = d.child(rng);
    d.tasks.push(task(
        &task_id,
        &d.id,
        json!({
            "title": long_name(rng, 500),
            "completed": false,
            "dueDate": iso_offset(at, true),
        }),
        at,
    ));
}

/// A task: `fields` plus its id and contact. The simulator keeps a
/// `dateAdded`/`dateUpdated` of its own on every task (generous mode
/// sends them; `TaskSchema` has neither, so strict mode does not).
fn task(id: &str, contact_id: &str, fields: Value, at: i64) -> Record {
    let mut task = Record::new();
    task.insert("id".into(), json!(id));
    if let Value::Object(fields) = fields {
        task.extend(fields);
    }
    task.insert("contactId".into(), json!(contact_id));
    task.insert("dateAdded".into(), json!(iso_millis(at)));
    task.insert("dateUpdated".into(), json!(iso_millis(at)));
    task
}

/// A note: `fields` (with its own `dateAdded`) plus its id and contact,
/// and the `dateUpdated` the simulator keeps (not in `GetNoteSchema`).
/// A value of a custom field whose type is not a string (see the module
/// notes): an array for multi-select and checkbox fields, a number for
/// numeric and monetary ones (the spec's `NumericField` and
/// `MonetoryField` examples are numbers), an object for file uploads (the
/// shape of the spec's `FileField` example: file id → `{meta,
/// url, documentId}`); `None` for string fields.
fn typed_value(def: &CustomFieldDef) -> Option<Value> {
    Some(match def.data_type {
        "MULTIPLE_OPTIONS" => json!(["option - 1", "option - 2"]),
        "CHECKBOX" => json!(["yes"]),
        "NUMERICAL" => json!(7),
        "MONETORY" => json!(1234.5),
        "FILE_UPLOAD" => json!({
            "f31175d4-2b06-4fc6-b7bc-74cd814c68cb": {
                "meta": {"fieldname": "contract", "originalname": "contract.pdf",
                    "mimetype": "application/pdf", "size": 1024, "uuid": "f31175d4"},
                "url": "https://example.com/contract.pdf",
                "documentId": "doc1",
            }
        }),
        _ => return None,
    })
}

fn note(id: &str, contact_id: &str, fields: Value, at: i64) -> Record {
    let mut note = Record::new();
    note.insert("id".into(), json!(id));
    if let Value::Object(fields) = fields {
        note.extend(fields);
    }
    note.insert("contactId".into(), json!(contact_id));
    note.insert("dateUpdated".into(), json!(iso_millis(at)));
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> (Vec<String>, Vec<String>, Vec<CustomFieldDef>) {
        (
            vec!["user1".into()],
            vec!["cal1".into()],
            vec![CustomFieldDef {
                id: "f1".into(),
                key: "contact.plan".into(),
                data_type: "SINGLE_OPTIONS",
            }],
        )
    }

    #[test]
    fn same_seed_same_records() {
        let (users, calendars, custom_fields) = target();
        let t = Target {
            location_id: "loc",
            users: &users,
            calendars: &calendars,
            custom_fields: &custom_fields,
        };
        let dump = |seed| {
            generate(seed, 8, &t)
                .into_iter()
                .map(|p| json!([p.contact, p.tasks, p.notes, p.appointments]))
                .collect::<Vec<_>>()
        };
        assert_eq!(dump(3), dump(3));
        assert_ne!(dump(3), dump(4));
    }

    #[test]
    fn long_values_have_their_length() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(long_name(&mut rng, 500).chars().count(), 500);
        assert!(long_text(&mut rng, 10 * 1024).len() >= 10 * 1024);
        assert_eq!(iso_seconds(FROM_MS), "2021-01-01T00:00:00Z");
        assert_eq!(iso_offset(FROM_MS, true), "2021-01-01T00:00:00.000+00:00");
        assert_eq!(spaced(FROM_MS), "2021-01-01 00:00:00");
    }
}
