//! Deterministic seed data: the same seed and anchor give the same
//! contacts, tasks and notes, byte for byte (ids included).
//!
//! `created_at` is spread over the year before the anchor and `updated_at`
//! lies between `created_at` and the anchor; every seeded timestamp is
//! distinct. About 40% of the contacts have tasks (1 to 3), 40% notes (1
//! or 2); 0 to 3 labels each; about 15% have no email address, 20% no
//! mobile, 30% no company. Emails are unique (`first.last.N@…`).

use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::model::{base36_id, Entity, Record, CONTACT_STRINGS};

const FIRST: &[&str] = &[
    "Ada", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Nikolai", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wen", "Ximena", "Yusuf", "Zoe",
];
const LAST: &[&str] = &[
    "Abbott", "Bauer", "Castillo", "Dubois", "Eriksen", "Fischer", "Gupta", "Haddad", "Ivanova",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Novak", "Osei", "Petrov", "Quispe", "Rossi", "Sato",
    "Tanaka", "Ueda", "Varga", "Weber", "Yilmaz", "Zhang",
];
const COMPANIES: &[&str] = &[
    "Northwind Traders",
    "Contoso",
    "Fabrikam",
    "Tailspin Toys",
    "Adventure Works",
    "Litware",
    "Proseware",
    "Woodgrove Bank",
    "Blue Yonder Airlines",
    "Coho Winery",
];
const DOMAINS: &[&str] = &["example.com", "example.org", "example.net", "mail.test"];
const LABELS: &[&str] = &[
    "prospect",
    "customer",
    "vip",
    "wholesale",
    "newsletter",
    "event-guest",
    "partner",
    "do-not-call",
];
const TASKS: &[&str] = &[
    "Call back",
    "Send quote",
    "Schedule demo",
    "Follow up on invoice",
    "Renewal check-in",
    "Collect feedback",
];
const NOTES: &[&str] = &[
    "Prefers email over phone.",
    "Met at the spring trade show.",
    "Asked about volume pricing.",
    "Budget approved for next quarter.",
    "Referred by an existing customer.",
    "Wants a follow-up after the holidays.",
];

const YEAR_MS: i64 = 365 * 86_400_000;

/// What to generate.
pub(crate) struct SeedSpec {
    pub seed: u64,
    pub contacts: usize,
    /// The seed data's "now", epoch ms.
    pub anchor_ms: i64,
}

/// Seeded records, in load order: each contact, then its tasks and notes
/// in creation order.
pub(crate) fn generate(spec: &SeedSpec) -> Vec<(Entity, Record)> {
    let mut seeder = Seeder {
        rng: ChaCha8Rng::seed_from_u64(spec.seed),
        anchor_ms: spec.anchor_ms,
        used: HashSet::new(),
        stamps: HashSet::new(),
    };
    let mut out = Vec::new();
    for n in 0..spec.contacts {
        let contact = seeder.contact(n);
        out.push((Entity::Contact, contact.record));
        let mut children = seeder.tasks(&contact.id, &contact.name, contact.created);
        children.extend(seeder.notes(&contact.id, contact.created));
        // Loaded in creation order (each list keeps that order).
        children.sort_by_key(|(_, record)| record.get("created_at").and_then(Value::as_i64));
        out.extend(children);
    }
    out
}

/// A seeded contact, with what its tasks and notes take from it.
struct SeededContact {
    record: Record,
    id: String,
    /// First and last name, for task details.
    name: String,
    created: i64,
}

/// The generator's state: one RNG drawn from in a fixed order (which is
/// what makes a seed reproduce the same data), and the ids and timestamps
/// handed out so far, so none repeats.
struct Seeder {
    rng: ChaCha8Rng,
    anchor_ms: i64,
    used: HashSet<String>,
    stamps: HashSet<i64>,
}

impl Seeder {
    /// A distinct time in [from, anchor) (past the anchor only if that
    /// span is used up).
    fn stamp(&mut self, from: i64) -> i64 {
        let mut t = self.rng.gen_range(from..self.anchor_ms.max(from + 1));
        while !self.stamps.insert(t) {
            t += 1;
        }
        t
    }

    /// An id not handed out before: `prefix` and 12 base36 characters.
    fn id(&mut self, prefix: &str) -> String {
        loop {
            let id = base36_id(&mut self.rng, prefix, 12);
            if self.used.insert(id.clone()) {
                return id;
            }
        }
    }

    /// The `n`th contact.
    fn contact(&mut self, n: usize) -> SeededContact {
        let rng = &mut self.rng;
        let first = *FIRST.choose(rng).unwrap_or(&"Ada");
        let last = *LAST.choose(rng).unwrap_or(&"Abbott");
        let created = self.stamp(self.anchor_ms - YEAR_MS);
        let updated = self.stamp(created);
        let contact_id = self.id("ct_");
        let rng = &mut self.rng;
        let mut contact = Record::new();
        contact.insert("id".into(), json!(contact_id));
        for key in CONTACT_STRINGS {
            contact.insert(key.into(), Value::Null);
        }
        contact.insert("first_name".into(), json!(first));
        contact.insert("last_name".into(), json!(last));
        if !rng.gen_bool(0.15) {
            let domain = DOMAINS.choose(rng).unwrap_or(&"example.com");
            contact.insert(
                "email_address".into(),
                json!(format!(
                    "{}.{}.{n}@{domain}",
                    first.to_lowercase(),
                    last.to_lowercase()
                )),
            );
        }
        if !rng.gen_bool(0.2) {
            contact.insert(
                "mobile".into(),
                json!(format!("+1512555{:04}", rng.gen_range(0..10_000))),
            );
        }
        if !rng.gen_bool(0.3) {
            contact.insert(
                "company".into(),
                json!(COMPANIES.choose(rng).unwrap_or(&"Contoso")),
            );
        }
        let count = rng.gen_range(0..=3);
        let labels: Vec<&str> = LABELS.choose_multiple(rng, count).copied().collect();
        contact.insert("labels".into(), json!(labels));
        contact.insert("created_at".into(), json!(created));
        contact.insert("updated_at".into(), json!(updated));
        SeededContact {
            record: contact,
            id: contact_id,
            name: format!("{first} {last}"),
            created,
        }
    }

    /// One to three tasks for about 40% of the contacts, none for the rest.
    fn tasks(&mut self, contact_id: &str, name: &str, after: i64) -> Vec<(Entity, Record)> {
        let mut tasks = Vec::new();
        if !self.rng.gen_bool(0.4) {
            return tasks;
        }
        for _ in 0..self.rng.gen_range(1..=3) {
            let created = self.stamp(after);
            let updated = self.stamp(created);
            let due = chrono::DateTime::from_timestamp_millis(
                created + self.rng.gen_range(1..60) * 86_400_000,
            )
            .unwrap_or_default()
            .format("%Y-%m-%dT09:00:00Z")
            .to_string();
            let mut task = Record::new();
            task.insert("id".into(), json!(self.id("tk_")));
            let rng = &mut self.rng;
            task.insert("contact_id".into(), json!(contact_id));
            task.insert("name".into(), json!(TASKS.choose(rng).unwrap_or(&"Call")));
            task.insert(
                "details".into(),
                if rng.gen_bool(0.5) {
                    json!(format!("Re: {name}"))
                } else {
                    Value::Null
                },
            );
            task.insert("due_on".into(), json!(due));
            task.insert("done".into(), json!(rng.gen_bool(0.3)));
            task.insert("created_at".into(), json!(created));
            task.insert("updated_at".into(), json!(updated));
            tasks.push((Entity::Task, task));
        }
        tasks
    }

    /// One or two notes for about 40% of the contacts, none for the rest.
    fn notes(&mut self, contact_id: &str, after: i64) -> Vec<(Entity, Record)> {
        let mut notes = Vec::new();
        if !self.rng.gen_bool(0.4) {
            return notes;
        }
        for _ in 0..self.rng.gen_range(1..=2) {
            let created = self.stamp(after);
            let updated = self.stamp(created);
            let mut note = Record::new();
            note.insert("id".into(), json!(self.id("nt_")));
            note.insert("contact_id".into(), json!(contact_id));
            note.insert(
                "text".into(),
                json!(NOTES.choose(&mut self.rng).unwrap_or(&"Note.")),
            );
            note.insert("created_at".into(), json!(created));
            note.insert("updated_at".into(), json!(updated));
            notes.push((Entity::Note, note));
        }
        notes
    }
}
