//! The behaviours every connector must have, written once and run against
//! each connector through a [`Fixture`] that knows its system's field names
//! and can act on the system directly (as a user of that system would).
//!
//! Use from a test crate with `#[path = "common/connector_suite.rs"] mod
//! suite;` and one `#[tokio::test]` per suite function.

#![allow(dead_code)]

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{Duration, Utc};
use futures::TryStreamExt;
use ghl_sync::connector::{Connector, ConnectorError, Deletion, Record};
use ghl_sync::domain::{EntityKind, MatchKey};
use serde_json::{json, Map, Value};

/// The native names of the fields the suite writes and reads, which is all
/// it needs to know of a system's records.
pub struct FieldNames {
    pub email: &'static str,
    pub first_name: &'static str,
    pub task_title: &'static str,
    /// A task's due date (the suite's tasks are due 2027-01-05 09:00 UTC).
    pub task_due: &'static str,
    pub note_text: &'static str,
}

/// A connector under test and the system behind it.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The connector with full (read and write) capabilities.
    fn connector(&self) -> &dyn Connector;
    /// A connector to the same system that may only read.
    fn read_only(&self) -> Box<dyn Connector>;
    /// Ids of every contact the system holds now (the ground truth).
    fn contact_ids(&self) -> HashSet<String>;
    /// Creates a contact as a user of the system would; returns its id.
    async fn user_creates_contact(&self, email: &str, first_name: &str) -> String;
    /// Changes a contact's first name as a user would.
    async fn user_renames_contact(&self, id: &str, first_name: &str);
    /// The system's field names.
    fn names(&self) -> &'static FieldNames;

    /// Native fields of a contact to create through the connector.
    fn contact_fields(&self, email: &str, first_name: &str) -> Map<String, Value> {
        let names = self.names();
        object(json!({names.email: email, names.first_name: first_name}))
    }
    /// Native patch changing a contact's first name.
    fn rename_patch(&self, first_name: &str) -> Map<String, Value> {
        object(json!({self.names().first_name: first_name}))
    }
    fn first_name(&self, record: &Record) -> Option<String> {
        text(record, self.names().first_name)
    }
    fn task_fields(&self, title: &str) -> Map<String, Value> {
        let names = self.names();
        object(json!({names.task_title: title, names.task_due: "2027-01-05T09:00:00Z"}))
    }
    fn task_title(&self, record: &Record) -> Option<String> {
        text(record, self.names().task_title)
    }
    fn note_fields(&self, text: &str) -> Map<String, Value> {
        object(json!({self.names().note_text: text}))
    }
    fn note_text(&self, record: &Record) -> Option<String> {
        text(record, self.names().note_text)
    }
}

/// The text at `field` of a record.
pub fn text(record: &Record, field: &str) -> Option<String> {
    record.fields.get(field)?.as_str().map(str::to_owned)
}

/// The fields of a JSON object.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// The ids of contacts as a simulator lists them.
pub fn contact_ids(contacts: &[Value]) -> HashSet<String> {
    contacts
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

/// Changes since a watermark come page by page, oldest first, each page's
/// watermark no older than the last, and a later lower bound leaves out
/// what changed before it.
pub async fn changes_since_a_watermark_across_pages(fixture: &dyn Fixture) {
    let connector = fixture.connector();
    let start = Utc::now() - Duration::seconds(1);
    let mut created = HashSet::new();
    // More than a page of the largest page size a side asks for (GHL's
    // change feed asks for 500).
    for n in 0..520 {
        created.insert(
            fixture
                .user_creates_contact(&format!("suite.page.{n}@example.com"), &format!("Page{n}"))
                .await,
        );
    }
    let pages: Vec<_> = connector
        .changes(
            EntityKind::Contact,
            start,
            Utc::now() + Duration::seconds(1),
        )
        .try_collect()
        .await
        .expect("change stream");
    assert!(
        pages.len() >= 2,
        "520 changes should span pages, got {}",
        pages.len()
    );
    let mut seen = HashSet::new();
    let mut last = None;
    for page in &pages {
        if let Some(watermark) = page.watermark {
            assert!(
                last.is_none_or(|l| watermark >= l),
                "watermarks go backwards"
            );
            last = Some(watermark);
        }
        for record in &page.records {
            assert!(
                record.updated_at >= start,
                "record older than the lower bound"
            );
            seen.insert(record.id.clone());
        }
    }
    assert!(
        created.is_subset(&seen),
        "changes missed {:?}",
        created.difference(&seen).collect::<Vec<_>>()
    );

    // From a later watermark only the later change comes back.
    let watermark = last.expect("a watermark");
    let renamed = created.iter().next().unwrap().clone();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    fixture.user_renames_contact(&renamed, "Renamed").await;
    let later: Vec<_> = connector
        .changes(
            EntityKind::Contact,
            watermark + Duration::milliseconds(1),
            Utc::now() + Duration::seconds(1),
        )
        .try_collect()
        .await
        .expect("change stream");
    let later: Vec<String> = later.iter().flat_map(|p| ids(&p.records)).collect();
    assert_eq!(later, vec![renamed], "only the change after the watermark");
}

/// The full listing returns every contact exactly once.
pub async fn full_listing_returns_every_contact_once(fixture: &dyn Fixture) {
    let pages: Vec<Vec<Record>> = fixture
        .connector()
        .all_contacts()
        .try_collect()
        .await
        .expect("listing");
    let listed: Vec<String> = pages.iter().flat_map(|p| ids(p)).collect();
    let unique: HashSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "a contact was listed twice");
    assert_eq!(unique, fixture.contact_ids());
}

/// Create, get, update, delete, and what get and delete say afterwards.
pub async fn contact_round_trip(fixture: &dyn Fixture) {
    let connector = fixture.connector();
    let created = connector
        .create(
            EntityKind::Contact,
            None,
            &fixture.contact_fields("suite.round@example.com", "Grace"),
        )
        .await
        .expect("create");
    assert_eq!(fixture.first_name(&created).as_deref(), Some("Grace"));
    let got = connector
        .get(EntityKind::Contact, &created.id, None)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.id, created.id);

    let updated = connector
        .update(
            EntityKind::Contact,
            &created.id,
            None,
            &fixture.rename_patch("Hopper").into(),
        )
        .await
        .expect("update");
    assert_eq!(fixture.first_name(&updated).as_deref(), Some("Hopper"));
    assert!(updated.updated_at >= created.updated_at);
    let found = connector
        .find_contacts(MatchKey::Email, "suite.round@example.com")
        .await
        .expect("lookup");
    assert_eq!(
        found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [created.id.as_str()],
        "found by email, alone"
    );

    assert_eq!(
        connector
            .delete(EntityKind::Contact, &created.id, None)
            .await
            .expect("delete"),
        Deletion::Deleted
    );
    assert!(connector
        .get(EntityKind::Contact, &created.id, None)
        .await
        .expect("get")
        .is_none());
    assert_eq!(
        connector
            .delete(EntityKind::Contact, &created.id, None)
            .await
            .expect("second delete"),
        Deletion::AlreadyGone
    );
}

/// Tasks and notes live under a contact: create, list, update, delete.
pub async fn sub_resources_of_a_contact(fixture: &dyn Fixture) {
    let connector = fixture.connector();
    let contact = fixture
        .user_creates_contact("suite.children@example.com", "Kids")
        .await;
    let task = connector
        .create(
            EntityKind::Task,
            Some(&contact),
            &fixture.task_fields("Send the quote"),
        )
        .await
        .expect("create task");
    assert_eq!(task.parent_id.as_deref(), Some(contact.as_str()));
    let note = connector
        .create(
            EntityKind::Note,
            Some(&contact),
            &fixture.note_fields("Prefers email"),
        )
        .await
        .expect("create note");

    let tasks = connector
        .children(EntityKind::Task, &contact)
        .await
        .expect("tasks");
    assert_eq!(ids(&tasks), vec![task.id.clone()]);
    assert_eq!(
        fixture.task_title(&tasks[0]).as_deref(),
        Some("Send the quote")
    );
    let notes = connector
        .children(EntityKind::Note, &contact)
        .await
        .expect("notes");
    assert_eq!(ids(&notes), vec![note.id.clone()]);

    let retitled = connector
        .update(
            EntityKind::Task,
            &task.id,
            Some(&contact),
            &fixture.task_fields("Send the final quote").into(),
        )
        .await
        .expect("update task");
    assert_eq!(
        fixture.task_title(&retitled).as_deref(),
        Some("Send the final quote")
    );
    let edited = connector
        .update(
            EntityKind::Note,
            &note.id,
            Some(&contact),
            &fixture.note_fields("Prefers phone").into(),
        )
        .await
        .expect("update note");
    assert_eq!(fixture.note_text(&edited).as_deref(), Some("Prefers phone"));

    assert_eq!(
        connector
            .delete(EntityKind::Task, &task.id, Some(&contact))
            .await
            .expect("delete task"),
        Deletion::Deleted
    );
    assert_eq!(
        connector
            .delete(EntityKind::Note, &note.id, Some(&contact))
            .await
            .expect("delete note"),
        Deletion::Deleted
    );
    assert!(connector
        .children(EntityKind::Task, &contact)
        .await
        .expect("tasks")
        .is_empty());
}

/// A side that may only read refuses every write before sending it.
pub async fn a_read_only_side_refuses_writes(fixture: &dyn Fixture) {
    let connector = fixture.read_only();
    assert!(!connector.capabilities().of(EntityKind::Contact).writable());
    let before = fixture.contact_ids();
    let refused = connector
        .create(
            EntityKind::Contact,
            None,
            &fixture.contact_fields("suite.refused@example.com", "No"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ConnectorError::Unsupported { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains(connector.side()), "{refused}");
    assert_eq!(fixture.contact_ids(), before, "nothing was written");
}

/// Declares one `#[tokio::test]` per suite behaviour, each running it on a
/// fresh fixture from `$fixture` (an async expression).
#[macro_export]
macro_rules! connector_suite_tests {
    ($fixture:expr) => {
        #[tokio::test]
        async fn changes_since_a_watermark_across_pages() {
            suite::changes_since_a_watermark_across_pages(&$fixture.await).await;
        }

        #[tokio::test]
        async fn full_listing_returns_every_contact_once() {
            suite::full_listing_returns_every_contact_once(&$fixture.await).await;
        }

        #[tokio::test]
        async fn contact_round_trip() {
            suite::contact_round_trip(&$fixture.await).await;
        }

        #[tokio::test]
        async fn sub_resources_of_a_contact() {
            suite::sub_resources_of_a_contact(&$fixture.await).await;
        }

        #[tokio::test]
        async fn a_read_only_side_refuses_writes() {
            suite::a_read_only_side_refuses_writes(&$fixture.await).await;
        }
    };
}
