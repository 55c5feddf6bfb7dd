//! Change detection of one poll over sides held in memory: pages
//! committed while the next is read, a side failing mid-poll, and a match
//! lookup racing the writer.

#[path = "common/fake_side.rs"]
mod fake_side;

use std::sync::Arc;

use ghl_sync::connector::{Record, Stamp};
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::engine::Engine;
use ghl_sync::store::{Changeset, LinkUpdate, LinkWrite, SidePatch, Store};
use serde_json::{json, Value};

use fake_side::{base, demo_engine, demo_settings, poll_contacts, FakeSide, Hook};

fn contact(id: &str, ms: i64) -> Record {
    let Value::Object(fields) = json!({
        "id": id,
        "email": format!("{id}@example.com"),
        "firstName": format!("First {ms}"),
    }) else {
        unreachable!()
    };
    Record {
        entity: EntityKind::Contact,
        id: id.to_owned(),
        parent_id: None,
        updated_at: base() + chrono::Duration::milliseconds(ms),
        stamp: Stamp::Side,
        fields,
    }
}

/// An engine over a fresh SQLite mirror with the demo pair, its GHL
/// side `ghl`.
async fn engine(dir: &std::path::Path, ghl: FakeSide, app: FakeSide) -> Engine {
    demo_engine(&demo_settings(dir, None), Arc::new(ghl), Arc::new(app)).await
}

/// A record edited between two pages of one poll is decided against
/// the first page's commit (its link), not as a second new record,
/// although that commit overlaps the reading of the second page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_in_two_pages_of_a_poll_is_linked_once() {
    let dir = tempfile::tempdir().unwrap();
    let ghl = FakeSide::new(
        "ghl",
        vec![
            vec![contact("x", 1), contact("y", 2)],
            vec![contact("x", 3), contact("z", 4)],
        ],
    );
    let engine = engine(dir.path(), ghl, FakeSide::new("app", Vec::new())).await;
    let report = poll_contacts(&engine, Side::Ghl).await.unwrap();
    assert_eq!(report.stats.read, 4);
    assert_eq!(report.stats.planned_creates, 3, "{:?}", report.stats);
    let links = engine.store.count_links("demo", EntityKind::Contact);
    assert_eq!(links.await.unwrap(), 3);
    engine.store.close().await;
}

/// A planned write's outbox row carries the canonical values (snapshot
/// and changed fields), not their native mapping as well: the writer
/// maps them when the write is due, and they map to what the decision
/// mapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planned_writes_carry_canonical_values_only() {
    let dir = tempfile::tempdir().unwrap();
    let ghl = FakeSide::new("ghl", vec![vec![contact("x", 1)]]);
    let engine = engine(dir.path(), ghl, FakeSide::new("app", Vec::new())).await;
    let pair = engine.pairs[0].clone();
    poll_contacts(&engine, Side::Ghl).await.unwrap();
    let items = engine
        .store
        .claim_outbox(10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].payload.get("fields").is_none(),
        "{}",
        items[0].payload
    );
    let payload: ghl_sync::engine::WritePayload =
        serde_json::from_value(items[0].payload.clone()).unwrap();
    let writes = payload.writes();
    assert_eq!(writes["email"], json!("x@example.com"));
    let native = pair
        .settings
        .map
        .to_native(EntityKind::Contact, Side::App, &writes)
        .unwrap();
    assert!(native.values().any(|v| v == "x@example.com"), "{native:?}");
    engine.store.close().await;
}

/// A side failing after some pages: the poll fails, and the pages
/// before the failure are committed when it returns (not undone, not
/// still running), with the watermark they cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_before_a_failure_are_committed_when_the_poll_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mut ghl = FakeSide::new(
        "ghl",
        vec![
            vec![contact("x", 1), contact("y", 2)],
            vec![contact("z", 3)],
        ],
    );
    ghl.then_fail = true;
    let engine = engine(dir.path(), ghl, FakeSide::new("app", Vec::new())).await;
    let error = poll_contacts(&engine, Side::Ghl).await.unwrap_err();
    assert!(error.to_string().contains("gone mid-poll"), "{error}");
    let links = engine.store.count_links("demo", EntityKind::Contact);
    assert_eq!(links.await.unwrap(), 3);
    let cursor = engine
        .store
        .load_cursor("demo", ghl_sync::domain::Side::Ghl, EntityKind::Contact, "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.watermark, Some(contact("z", 3).updated_at));
    engine.store.close().await;
}

/// The writer records our create of an app contact in GHL while the
/// GHL poll that read it back (unlinked then) looks up its match: the
/// match is now linked to this very record. That is our own create,
/// decided as the linked record it now is; not a duplicate to
/// dead-letter, not a second create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_recorded_during_the_match_lookup_is_not_a_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let mut theirs = contact("ct", 1);
    let Value::Object(fields) =
        json!({"id": "ct", "email_address": "ct@example.com", "first_name": "Cat"})
    else {
        unreachable!()
    };
    theirs.fields = fields;
    let mut ours = contact("mw", 5);
    ours.fields.insert("email".into(), json!("ct@example.com"));
    let ghl = FakeSide::new("ghl", vec![vec![ours.clone()]]);
    let recorded = Arc::new(std::sync::OnceLock::<(Store, i64)>::new());
    let mut app = FakeSide::new("app", vec![vec![theirs.clone()]]);
    app.found = Some(theirs);
    app.on_find = Some({
        let recorded = recorded.clone();
        let ours = ours.clone();
        Hook(Box::new(move || {
            let (store, link) = recorded.get().cloned().expect("set before the GHL poll");
            let ours = ours.clone();
            Box::pin(async move {
                let write = LinkUpdate {
                    id: link,
                    a: SidePatch {
                        id: Some(ours.id),
                        updated_at: Some(ours.updated_at),
                        ..SidePatch::default()
                    },
                    ..LinkUpdate::default()
                };
                let changeset = Changeset {
                    links: vec![LinkWrite::Update(write)],
                    ..Changeset::default()
                };
                store.commit(&changeset).await.unwrap();
            })
        }))
    });
    let engine = engine(dir.path(), ghl, app).await;

    // The app contact is read first: its create in GHL is planned.
    let report = poll_contacts(&engine, Side::App).await.unwrap();
    assert_eq!(report.stats.planned_creates, 1, "{:?}", report.stats);
    let link = engine
        .store
        .link_by_side_id("demo", EntityKind::Contact, Side::App, "ct")
        .await
        .unwrap()
        .expect("linked");
    assert!(recorded.set((engine.store.clone(), link.id)).is_ok());

    let report = poll_contacts(&engine, Side::Ghl).await.unwrap();
    assert_eq!(
        (report.stats.planned_creates, report.stats.unchanged),
        (0, 1),
        "{:?}",
        report.stats
    );
    let letters = engine.store.dead_letters(None).await.unwrap();
    assert!(letters.is_empty(), "no dead letters: {letters:#?}");
    let links = engine.store.count_links("demo", EntityKind::Contact);
    assert_eq!(links.await.unwrap(), 1);
    engine.store.close().await;
}
