//! Deterministic seed data: the same seed and anchor give the same
//! locations, contacts, tasks, notes and appointments, byte for byte.
//!
//! `dateAdded` is spread over the year before the anchor and `dateUpdated`
//! lies between `dateAdded` and the anchor. The anchor defaults to the
//! start of the current UTC day, so two runs on the same day are identical
//! (set `SimOptions::seed_anchor` to pin it across days).

use std::collections::HashMap;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::model::{derive_contact_fields, gen_id, iso, Contact, CustomFieldDef, Location, Record};

const FIRST: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Priya",
    "Wei",
    "Fatima",
    "Mateo",
    "Aisha",
    "Lucas",
    "Sofia",
    "Noah",
    "Amara",
    "Kenji",
];
const LAST: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Nakamura",
    "Okafor",
    "Schmidt",
];
const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Imports",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka Foods",
];
const TAGS: &[&str] = &[
    "vip",
    "newsletter",
    "lead",
    "customer",
    "webinar",
    "referral",
    "trial",
    "churn-risk",
    "event-2024",
    "partner",
];
const SOURCES: &[&str] = &[
    "public api",
    "form",
    "import",
    "manual",
    "facebook",
    "zapier",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Austin", "TX", "73301"),
    ("Denver", "CO", "80202"),
    ("Portland", "OR", "97201"),
    ("Boston", "MA", "02108"),
    ("Miami", "FL", "33101"),
    ("Chicago", "IL", "60601"),
];
const TIMEZONES: &[&str] = &[
    "America/Chicago",
    "America/Denver",
    "America/New_York",
    "America/Los_Angeles",
];
const TASK_TITLES: &[&str] = &[
    "Call back",
    "Send proposal",
    "Follow up",
    "Schedule demo",
    "Check renewal",
];
const NOTE_BODIES: &[&str] = &[
    "Interested in the annual plan.",
    "Asked for a callback next week.",
    "Met at the trade show.",
    "Prefers email over phone.",
];

const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;

/// What to generate.
pub(crate) struct SeedSpec {
    pub seed: u64,
    pub locations: usize,
    pub contacts_per_location: usize,
    pub anchor_ms: i64,
}

/// The generated data.
pub(crate) struct Seeded {
    pub company_id: String,
    pub locations: Vec<Location>,
}

pub(crate) fn generate(spec: &SeedSpec) -> Seeded {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let company_id = gen_id(&mut rng);
    let mut locations = Vec::with_capacity(spec.locations);
    for l in 0..spec.locations {
        locations.push(location(&mut rng, spec, l));
    }
    Seeded {
        company_id,
        locations,
    }
}

fn location(rng: &mut ChaCha8Rng, spec: &SeedSpec, index: usize) -> Location {
    let id = gen_id(rng);
    let users: Vec<String> = (0..3).map(|_| gen_id(rng)).collect();
    let calendars: Vec<String> = (0..2).map(|_| gen_id(rng)).collect();
    let mut custom_fields: Vec<CustomFieldDef> = SEEDED_FIELDS
        .iter()
        .map(|(key, data_type)| CustomFieldDef {
            id: gen_id(rng),
            key: (*key).to_string(),
            data_type,
        })
        .collect();
    custom_fields.extend(typed_fields(spec.seed, index));
    let businesses: Vec<String> = (0..(spec.contacts_per_location / 10).max(1))
        .map(|_| format!("{:024x}", rng.gen::<u128>() >> 32))
        .collect();
    let mut location = Location {
        id,
        name: format!("Sim Location {}", index + 1),
        address: format!("{} Market St, San Francisco, CA 94105", 100 + index),
        users,
        calendars,
        custom_fields,
        last_ms: spec.anchor_ms,
        contacts: HashMap::with_capacity(spec.contacts_per_location),
        by_added: Default::default(),
        by_updated: Default::default(),
    };
    for c in 0..spec.contacts_per_location {
        let contact = contact(rng, spec, &location, &businesses, index, c);
        location.last_ms = location.last_ms.max(contact.updated_ms);
        location.insert_contact(contact);
    }
    location
}

/// The custom fields every seeded contact may have a value of.
const SEEDED_FIELDS: [(&str, &str); 3] = [
    ("contact.industry", "TEXT"),
    ("contact.plan", "SINGLE_OPTIONS"),
    ("contact.score", "NUMERICAL"),
];

/// One more custom field of each `field_value` type the GHL field notes
/// list (an array for multi-select and checkbox fields, a number for
/// monetary ones, an object for file uploads), empty on seeded contacts.
/// Their ids come from a generator of their own, so the rest of the seed
/// data is what it was before they existed.
fn typed_fields(seed: u64, location_index: usize) -> Vec<CustomFieldDef> {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7479_7065_6466 ^ location_index as u64);
    [
        ("contact.interests", "MULTIPLE_OPTIONS"),
        ("contact.consent", "CHECKBOX"),
        ("contact.budget", "MONETORY"),
        ("contact.contract", "FILE_UPLOAD"),
    ]
    .into_iter()
    .map(|(key, data_type)| CustomFieldDef {
        id: gen_id(&mut rng),
        key: key.to_string(),
        data_type,
    })
    .collect()
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &'a [&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

/// Who a seeded contact is: what its tasks, notes and appointments name,
/// and the span their times are drawn from (`added_ms` to `anchor_ms`).
struct Person<'a> {
    id: &'a str,
    first: &'a str,
    last: &'a str,
    added_ms: i64,
    anchor_ms: i64,
}

impl Person<'_> {
    /// A time for one of the contact's tasks, notes or appointments.
    fn child_time(&self, rng: &mut ChaCha8Rng) -> i64 {
        rng.gen_range(self.added_ms..=self.anchor_ms)
    }
}

/// One seeded contact with its tasks, notes and appointments. The draws
/// from `rng` happen in a fixed order (the contact's fields, then its
/// tasks, notes and appointment), which is what makes a seed reproduce
/// the same data byte for byte.
fn contact(
    rng: &mut ChaCha8Rng,
    spec: &SeedSpec,
    location: &Location,
    businesses: &[String],
    location_index: usize,
    index: usize,
) -> Contact {
    let id = gen_id(rng);
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let added_ms = spec.anchor_ms - rng.gen_range(0..YEAR_MS);
    let updated_ms = if rng.gen_bool(0.3) {
        added_ms
    } else {
        rng.gen_range(added_ms..=spec.anchor_ms)
    };
    let person = Person {
        id: &id,
        first,
        last,
        added_ms,
        anchor_ms: spec.anchor_ms,
    };
    let mut data = Record::new();
    data.insert("id".into(), json!(id));
    data.insert("locationId".into(), json!(location.id));
    data.insert("firstName".into(), json!(first));
    data.insert("lastName".into(), json!(last));
    data.insert(
        "email".into(),
        json!(format!("{}.{}.{}@example.com", first, last, index + 1).to_lowercase()),
    );
    let number = location_index * spec.contacts_per_location.max(1) + index;
    data.insert("phone".into(), json!(seed_phone(number)));
    describe(rng, &mut data, location, businesses);
    data.insert("dateAdded".into(), json!(iso(added_ms)));
    data.insert("dateUpdated".into(), json!(iso(updated_ms)));
    derive_contact_fields(&mut data);

    let tasks = tasks(rng, &person, location);
    let notes = notes(rng, &person, location);
    let appointments = appointments(rng, &person, location);
    Contact {
        added_ms,
        updated_ms,
        data,
        tasks,
        notes,
        appointments,
    }
}

/// The rest of a contact's fields, drawn: company, tags, DND, custom
/// fields, business, source, type, address, timezone and owner.
fn describe(rng: &mut ChaCha8Rng, data: &mut Record, location: &Location, businesses: &[String]) {
    if rng.gen_bool(0.7) {
        data.insert("companyName".into(), json!(pick(rng, COMPANIES)));
    }
    let tag_count = rng.gen_range(0..=3);
    let mut tags: Vec<&str> = TAGS.choose_multiple(rng, tag_count).copied().collect();
    tags.sort_unstable();
    data.insert("tags".into(), json!(tags));
    data.insert("dnd".into(), json!(rng.gen_bool(0.1)));
    let custom = custom_values(rng, location);
    data.insert("customFields".into(), json!(custom));
    if rng.gen_bool(0.3) {
        if let Some(business) = businesses.choose(rng) {
            data.insert("businessId".into(), json!(business));
        }
    }
    data.insert("source".into(), json!(pick(rng, SOURCES)));
    data.insert(
        "type".into(),
        json!(if rng.gen_bool(0.3) {
            "customer"
        } else {
            "lead"
        }),
    );
    let (city, state, postal) = CITIES
        .choose(rng)
        .copied()
        .unwrap_or(("Austin", "TX", "73301"));
    data.insert("city".into(), json!(city));
    data.insert("state".into(), json!(state));
    data.insert("postalCode".into(), json!(postal));
    data.insert("country".into(), json!("US"));
    data.insert("timezone".into(), json!(pick(rng, TIMEZONES)));
    if let Some(user) = location.users.choose(rng) {
        if rng.gen_bool(0.5) {
            data.insert("assignedTo".into(), json!(user));
        }
    }
}

/// Values for some of the location's [`SEEDED_FIELDS`] (each set with
/// probability 0.4), each of its field's type (`contact.score` a number).
fn custom_values(rng: &mut ChaCha8Rng, location: &Location) -> Vec<Value> {
    let mut custom: Vec<Value> = Vec::new();
    for def in location.custom_fields.iter().take(SEEDED_FIELDS.len()) {
        if rng.gen_bool(0.4) {
            let value = match def.key.as_str() {
                "contact.industry" => {
                    json!(pick(rng, &["retail", "health", "finance", "education"]))
                }
                "contact.plan" => json!(pick(rng, &["basic", "pro", "enterprise"])),
                _ => json!(rng.gen_range(1..100)),
            };
            custom.push(json!({"id": def.id, "value": value}));
        }
    }
    custom
}

/// Zero to two tasks.
fn tasks(rng: &mut ChaCha8Rng, person: &Person<'_>, location: &Location) -> Vec<Record> {
    let mut tasks = Vec::new();
    for _ in 0..rng.gen_range(0..=2) {
        let at = person.child_time(rng);
        let due = at + rng.gen_range(1..30) * 24 * 3600 * 1000;
        let mut task = Record::new();
        task.insert("id".into(), json!(gen_id(rng)));
        task.insert("title".into(), json!(pick(rng, TASK_TITLES)));
        task.insert(
            "body".into(),
            json!(format!("{} {}", person.first, person.last)),
        );
        if let Some(user) = location.users.choose(rng) {
            task.insert("assignedTo".into(), json!(user));
        }
        task.insert("dueDate".into(), json!(iso(due)));
        task.insert("completed".into(), json!(rng.gen_bool(0.4)));
        task.insert("contactId".into(), json!(person.id));
        task.insert("dateAdded".into(), json!(iso(at)));
        task.insert("dateUpdated".into(), json!(iso(at)));
        tasks.push(task);
    }
    tasks
}

/// Zero to two notes.
fn notes(rng: &mut ChaCha8Rng, person: &Person<'_>, location: &Location) -> Vec<Record> {
    let mut notes = Vec::new();
    for _ in 0..rng.gen_range(0..=2) {
        let at = person.child_time(rng);
        let mut note = Record::new();
        note.insert("id".into(), json!(gen_id(rng)));
        note.insert("body".into(), json!(pick(rng, NOTE_BODIES)));
        if let Some(user) = location.users.choose(rng) {
            note.insert("userId".into(), json!(user));
        }
        note.insert("contactId".into(), json!(person.id));
        note.insert("dateAdded".into(), json!(iso(at)));
        note.insert("dateUpdated".into(), json!(iso(at)));
        notes.push(note);
    }
    notes
}

/// An appointment, for about 30% of the contacts.
fn appointments(rng: &mut ChaCha8Rng, person: &Person<'_>, location: &Location) -> Vec<Record> {
    let mut appointments = Vec::new();
    if rng.gen_bool(0.3) {
        let at = person.child_time(rng);
        let start = at + rng.gen_range(1..14) * 24 * 3600 * 1000;
        let user = location.users.choose(rng).cloned().unwrap_or_default();
        let mut appointment = Record::new();
        appointment.insert("id".into(), json!(gen_id(rng)));
        appointment.insert(
            "calendarId".into(),
            json!(location.calendars.choose(rng).cloned().unwrap_or_default()),
        );
        appointment.insert("status".into(), json!("booked"));
        appointment.insert("appointmentStatus".into(), json!("confirmed"));
        appointment.insert(
            "title".into(),
            json!(format!("Meeting with {} {}", person.first, person.last)),
        );
        appointment.insert("assignedUserId".into(), json!(user));
        appointment.insert("users".into(), json!([user]));
        appointment.insert("notes".into(), json!(""));
        appointment.insert("address".into(), json!("https://meet.example.com/sim"));
        appointment.insert("startTime".into(), json!(iso(start)));
        appointment.insert("endTime".into(), json!(iso(start + 30 * 60 * 1000)));
        appointment.insert("locationId".into(), json!(location.id));
        appointment.insert("contactId".into(), json!(person.id));
        appointment.insert("dateAdded".into(), json!(iso(at)));
        appointment.insert("dateUpdated".into(), json!(iso(at)));
        appointments.push(appointment);
    }
    appointments
}

/// A unique, valid North American number for the `number`th seeded
/// contact (area codes that exist, the 555 exchange): valid numbers, so the
/// seed data passes E.164 normalisation like real data would.
fn seed_phone(number: usize) -> String {
    const AREA_CODES: [u16; 10] = [212, 312, 415, 512, 617, 702, 206, 303, 404, 305];
    let area = AREA_CODES[(number / 10_000) % AREA_CODES.len()];
    format!("+1{area}555{:04}", number % 10_000)
}
