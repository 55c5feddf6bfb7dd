//! The mirror store, black-box, against both backends: every case below is
//! written once and run on SQLite and (when `GHLSYNC_TEST_DATABASE_URL` is
//! set) Postgres. See `common/store_backends.rs`.

#[macro_use]
#[path = "common/store_backends.rs"]
mod store_backends;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::store::{
    Change, Changeset, Completion, ConflictStatus, CursorAdvance, DeadLetterStage,
    DeadLetterStatus, Direction, FailOutcome, JournalAction, LinkRef, LinkSide, LinkUpdate,
    LinkWrite, NewConflict, NewDeadLetter, NewJournalEntry, NewLink, NewOutboxItem, OutboxOp,
    OutboxRef, OutboxStatus, PairRegistration, PairSide, SidePatch, Snapshot, Store, StoreError,
    StoredToken,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

store_cases!(
    migrate_is_idempotent,
    register_pair_and_rebound,
    commit_round_trip_with_local_refs,
    link_updates_are_partial,
    outbox_is_idempotent_by_key,
    claim_respects_schedule_and_leases,
    released_items_come_back_at_once_without_an_attempt,
    concurrent_claims_never_share_an_item,
    complete_outbox_updates_link_and_journal_atomically,
    fail_outbox_retries_then_dead_letters,
    links_by_side_ids_over_many_chunks,
    timestamps_round_trip_at_microsecond_precision,
    conflict_open_upsert_resolve,
    tokens_round_trip_and_stay_redacted,
    cursors_upsert,
    failed_commit_leaves_nothing_behind,
    local_refs_are_validated,
    journal_for_record_newest_last,
    prune_outbox_removes_old_finished_items,
    redecisions_are_scheduled_with_the_write_postponed_and_taken,
);

// ---------------------------------------------------------------- helpers --

const PAIR: &str = "contacts";

fn registration(name: &str, a_location: Option<&str>) -> PairRegistration {
    PairRegistration {
        name: name.to_owned(),
        a: PairSide {
            side: "ghl".to_owned(),
            kind: "ghl".to_owned(),
            location: a_location.map(str::to_owned),
        },
        b: PairSide {
            side: "app".to_owned(),
            kind: "rest".to_owned(),
            location: None,
        },
    }
}

async fn with_pair(store: &Store) {
    store
        .register_pair(&registration(PAIR, Some("loc-1")))
        .await
        .expect("register pair");
}

fn snapshot(content: Value) -> Snapshot {
    let hash = format!("{:016x}", content.to_string().len());
    Snapshot { content, hash }
}

fn new_link(a_id: Option<&str>, b_id: Option<&str>) -> NewLink {
    NewLink {
        pair: PAIR.to_owned(),
        entity: EntityKind::Contact,
        a: LinkSide {
            id: a_id.map(str::to_owned),
            ..LinkSide::default()
        },
        b: LinkSide {
            id: b_id.map(str::to_owned),
            ..LinkSide::default()
        },
        snapshot: snapshot(json!({ "email": format!("{}@example.com", a_id.unwrap_or("x")) })),
        deleted_at: None,
    }
}

fn insert(local_ref: u32, link: NewLink) -> LinkWrite {
    LinkWrite::Insert { local_ref, link }
}

fn outbox_item(key: &str, link: Option<LinkRef>) -> NewOutboxItem {
    NewOutboxItem {
        idempotency_key: key.to_owned(),
        pair: PAIR.to_owned(),
        target_side: Side::App,
        entity: EntityKind::Contact,
        op: OutboxOp::Create,
        link,
        target_id: None,
        parent_id: None,
        payload: json!({ "key": key, "firstName": "Ada" }).into(),
        not_before: None,
    }
}

/// Commits one link (a side only) and returns its id.
async fn one_link(store: &Store, a_id: &str) -> i64 {
    let receipt = store
        .commit(&Changeset {
            links: vec![insert(0, new_link(Some(a_id), None))],
            ..Changeset::default()
        })
        .await
        .expect("commit link");
    receipt.link_id(0).expect("new link id")
}

/// Enqueues items with the given keys (each with its own link) and returns
/// their ids in order.
async fn enqueue(store: &Store, keys: &[&str]) -> Vec<i64> {
    let mut cs = Changeset::default();
    for (i, key) in keys.iter().enumerate() {
        cs.links
            .push(insert(i as u32, new_link(Some(&format!("A-{key}")), None)));
        cs.outbox
            .push(outbox_item(key, Some(LinkRef::New(i as u32))));
    }
    let receipt = store.commit(&cs).await.expect("enqueue");
    keys.iter().map(|k| receipt.outbox_new[*k]).collect()
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

// ------------------------------------------------------------------ cases --

async fn migrate_is_idempotent(store: Store) {
    // The harness already applied everything once (and checked it said so).
    let again = store.migrate().await.expect("second migrate");
    assert!(again.is_empty(), "second run applies nothing: {again:?}");
    let third = store.migrate().await.expect("third migrate");
    assert!(third.is_empty());
}

async fn register_pair_and_rebound(store: Store) {
    let first = store
        .register_pair(&registration("p", Some("loc-1")))
        .await
        .expect("register");
    assert_eq!(first.a.location.as_deref(), Some("loc-1"));

    let same = store
        .register_pair(&registration("p", Some("loc-1")))
        .await
        .expect("re-register unchanged");
    assert_eq!(same, first, "re-registering unchanged is a no-op");

    let mut renamed = registration("p", Some("loc-1"));
    renamed.b.side = "crm".to_owned();
    let updated = store
        .register_pair(&renamed)
        .await
        .expect("renamed side is fine");
    assert_eq!(updated.b.side, "crm");
    assert_eq!(updated.created_at, first.created_at);

    let err = store
        .register_pair(&registration("p", Some("loc-2")))
        .await
        .expect_err("another location must be refused");
    match &err {
        StoreError::PairRebound {
            pair,
            side,
            was,
            now,
        } => {
            assert_eq!(pair, "p");
            assert_eq!(*side, Side::Ghl);
            assert_eq!(was.as_deref(), Some("loc-1"));
            assert_eq!(now.as_deref(), Some("loc-2"));
        }
        other => panic!("expected PairRebound, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("\"p\"") && message.contains("loc-1") && message.contains("loc-2"));

    let mut b_rebound = registration("p", Some("loc-1"));
    b_rebound.b.location = Some("loc-9".to_owned());
    assert!(matches!(
        store.register_pair(&b_rebound).await,
        Err(StoreError::PairRebound {
            side: Side::App,
            ..
        })
    ));
    let stored = store.pair("p").await.unwrap().unwrap();
    assert_eq!(
        stored.a.location.as_deref(),
        Some("loc-1"),
        "not overwritten"
    );
    assert_eq!(stored.b.location, None);
}

async fn commit_round_trip_with_local_refs(store: Store) {
    with_pair(&store).await;
    let t0 = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
    let mut task = new_link(Some("A-task"), None);
    task.entity = EntityKind::Task;
    task.a.parent_id = Some("A-contact".to_owned());
    task.a.updated_at = Some(t0);
    // GHL tasks carry no change time: the link keeps a fingerprint.
    task.a.fingerprint = Some("f-task".to_owned());

    let mut outbox = outbox_item("create:A-contact", Some(LinkRef::New(7)));
    outbox.op = OutboxOp::Create;
    let mut planned = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Planned);
    planned.link = Some(LinkRef::New(7));
    planned.direction = Some(Direction::AToB);
    planned.a_id = Some("A-contact".to_owned());
    planned.fields = vec!["email".to_owned(), "firstName".to_owned()];
    planned.outbox = Some(OutboxRef::Key("create:A-contact".to_owned()));
    planned.detail = Some("new on a".to_owned());
    let mut seen = NewJournalEntry::new(PAIR, EntityKind::Task, JournalAction::Seen);
    seen.link = Some(LinkRef::New(8));
    seen.a_id = Some("A-task".to_owned());

    let mut cursor = CursorAdvance::new(PAIR, Side::Ghl, EntityKind::Contact, "search");
    cursor.watermark = Change::Set(t0);
    cursor.cursor = Change::Set("after:123".to_owned());
    cursor.last_poll_at = Some(t0);

    let cs = Changeset {
        links: vec![
            insert(7, new_link(Some("A-contact"), None)),
            insert(8, task),
        ],
        outbox: vec![outbox],
        journal: vec![planned, seen],
        conflicts: vec![NewConflict {
            pair: PAIR.to_owned(),
            entity: EntityKind::Contact,
            link: LinkRef::New(7),
            field: "phone".to_owned(),
            base_value: Some(json!("+1 555 0100")),
            a_value: Some(json!("+1 555 0101")),
            b_value: None,
        }],
        dead_letters: vec![NewDeadLetter {
            pair: PAIR.to_owned(),
            side: Side::Ghl,
            entity: EntityKind::Contact,
            record_id: Some("A-bad".to_owned()),
            outbox_id: None,
            stage: DeadLetterStage::Map,
            reason: "field email: not an email address".to_owned(),
            payload: Some(json!({ "email": "nope" })),
        }],
        cursors: vec![cursor],
        redecided: Vec::new(),
    };
    let receipt = store.commit(&cs).await.expect("commit");
    let contact_id = receipt.link_id(7).expect("local ref 7");
    let task_id = receipt.link_id(8).expect("local ref 8");
    assert_ne!(contact_id, task_id);
    assert_eq!(receipt.outbox_new.len(), 1);
    assert!(receipt.outbox_duplicates.is_empty());
    assert_eq!(receipt.journal_written, 2);
    assert_eq!(receipt.conflicts_upserted, 1);
    assert_eq!(receipt.dead_letters_written, 1);
    assert_eq!(receipt.cursors_advanced, 1);

    // Links.
    let contact = store.link_by_id(contact_id).await.unwrap().expect("link");
    assert_eq!(contact.pair, PAIR);
    assert_eq!(contact.entity, EntityKind::Contact);
    assert_eq!(contact.a.id.as_deref(), Some("A-contact"));
    assert_eq!(contact.b.id, None);
    assert_eq!(contact.snapshot, new_link(Some("A-contact"), None).snapshot);
    assert_eq!(contact.created_at, receipt.committed_at);
    let task = store
        .link_by_side_id(PAIR, EntityKind::Task, Side::Ghl, "A-task")
        .await
        .unwrap()
        .expect("task by side id");
    assert_eq!(task.id, task_id);
    assert_eq!(task.a.parent_id.as_deref(), Some("A-contact"));
    assert_eq!(task.a.updated_at, Some(t0));
    assert_eq!(task.a.fingerprint.as_deref(), Some("f-task"));
    assert!(store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, "A-task")
        .await
        .unwrap()
        .is_none());

    // Outbox.
    let outbox_id = receipt.outbox_new["create:A-contact"];
    let item = store.outbox_item(outbox_id).await.unwrap().expect("item");
    assert_eq!(item.link_id, Some(contact_id));
    assert_eq!(item.status, OutboxStatus::Pending);
    assert_eq!(item.op, OutboxOp::Create);
    assert_eq!(item.target_side, Side::App);
    assert_eq!(item.attempts, 0);
    assert_eq!(
        item.payload,
        json!({ "key": "create:A-contact", "firstName": "Ada" })
    );
    assert_eq!(item.next_attempt_at, receipt.committed_at);

    // Journal.
    let history = store.journal_for_link(contact_id, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    let entry = &history[0];
    assert_eq!(entry.action, JournalAction::Planned);
    assert_eq!(entry.outbox_id, Some(outbox_id));
    assert_eq!(entry.direction, Some(Direction::AToB));
    assert_eq!(entry.fields, vec!["email", "firstName"]);
    assert_eq!(entry.detail.as_deref(), Some("new on a"));
    assert_eq!(entry.at, receipt.committed_at);
    let task_history = store.journal_for_link(task_id, 10).await.unwrap();
    assert_eq!(task_history.len(), 1);
    assert_eq!(task_history[0].action, JournalAction::Seen);
    assert!(task_history[0].fields.is_empty());

    // Conflicts.
    let open = store.open_conflicts(Some(PAIR)).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].link_id, contact_id);
    assert_eq!(open[0].base_value, Some(json!("+1 555 0100")));
    assert_eq!(open[0].b_value, None);
    assert!(store
        .open_conflicts(Some("other"))
        .await
        .unwrap()
        .is_empty());

    // Dead letters.
    let letters = store.dead_letters(None).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].stage, DeadLetterStage::Map);
    assert_eq!(letters[0].status, DeadLetterStatus::Open);
    assert_eq!(letters[0].payload, Some(json!({ "email": "nope" })));
    assert_eq!(
        store.dead_letter(letters[0].id).await.unwrap().as_ref(),
        Some(&letters[0])
    );

    // Cursor.
    let stored = store
        .load_cursor(PAIR, Side::Ghl, EntityKind::Contact, "search")
        .await
        .unwrap()
        .expect("cursor");
    assert_eq!(stored.watermark, Some(t0));
    assert_eq!(stored.cursor.as_deref(), Some("after:123"));
    assert_eq!(stored.last_poll_at, Some(t0));

    assert_eq!(
        store.count_links(PAIR, EntityKind::Contact).await.unwrap(),
        1
    );
    assert_eq!(
        store.all_links(PAIR, EntityKind::Task).await.unwrap().len(),
        1
    );
}

async fn link_updates_are_partial(store: Store) {
    with_pair(&store).await;
    let id = one_link(&store, "A1").await;
    let before = store.link_by_id(id).await.unwrap().unwrap();
    let t1 = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();

    // The writer records side B's id and new snapshot; side A is untouched.
    let new_snapshot = snapshot(json!({ "email": "a1@example.com", "firstName": "Ada" }));
    let receipt = store
        .commit(&Changeset {
            links: vec![
                LinkWrite::Update(LinkUpdate {
                    id,
                    b: SidePatch {
                        id: Some("B1".to_owned()),
                        updated_at: Some(t1),
                        fingerprint: Some("f-b1".to_owned()),
                        ..SidePatch::default()
                    },
                    ..LinkUpdate::default()
                }),
                // A second update of the same link in the batch is merged.
                LinkWrite::Update(LinkUpdate {
                    id,
                    snapshot: Some(new_snapshot.clone()),
                    ..LinkUpdate::default()
                }),
            ],
            ..Changeset::default()
        })
        .await
        .expect("update");
    assert_eq!(receipt.links_updated, 1);
    let after = store.link_by_id(id).await.unwrap().unwrap();
    assert_eq!(after.a, before.a);
    assert_eq!(after.b.id.as_deref(), Some("B1"));
    assert_eq!(after.b.updated_at, Some(t1));
    assert_eq!(after.b.fingerprint.as_deref(), Some("f-b1"));
    assert_eq!(after.snapshot, new_snapshot);
    assert_eq!(after.created_at, before.created_at);
    assert!(after.updated_at >= before.updated_at);
    assert_eq!(after.deleted_at, None);

    // Tombstone set, then cleared.
    for (change, expected) in [(Change::Set(t1), Some(t1)), (Change::Clear, None)] {
        store
            .commit(&Changeset {
                links: vec![LinkWrite::Update(LinkUpdate {
                    id,
                    deleted_at: change,
                    ..LinkUpdate::default()
                })],
                ..Changeset::default()
            })
            .await
            .expect("tombstone");
        let link = store.link_by_id(id).await.unwrap().unwrap();
        assert_eq!(link.deleted_at, expected);
        assert_eq!(link.snapshot, new_snapshot, "snapshot kept");
    }

    // Updating a link that does not exist fails and writes nothing.
    let err = store
        .commit(&Changeset {
            links: vec![LinkWrite::Update(LinkUpdate {
                id: id + 1000,
                ..LinkUpdate::default()
            })],
            outbox: vec![outbox_item("orphan", None)],
            ..Changeset::default()
        })
        .await
        .expect_err("missing link");
    assert!(
        matches!(err, StoreError::LinkNotFound { id: missing, .. } if missing == id + 1000),
        "{err:?}"
    );
    assert_eq!(store.outbox_depth().await.unwrap().pending, 0);
}

async fn outbox_is_idempotent_by_key(store: Store) {
    with_pair(&store).await;
    let link = one_link(&store, "A1").await;
    let item = outbox_item("update:A1:h1", Some(LinkRef::Existing(link)));
    let first = store
        .commit(&Changeset {
            outbox: vec![item.clone()],
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert_eq!(first.outbox_new.len(), 1);
    assert!(first.outbox_duplicates.is_empty());

    // Re-detecting the same change: no second write, and the receipt says so.
    let mut journal = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Planned);
    journal.outbox = Some(OutboxRef::Key("update:A1:h1".to_owned()));
    journal.link = Some(LinkRef::Existing(link));
    let second = store
        .commit(&Changeset {
            outbox: vec![item.clone(), item.clone()],
            journal: vec![journal],
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert!(second.outbox_new.is_empty());
    assert_eq!(second.outbox_duplicates, vec!["update:A1:h1".to_owned()]);
    let depth = store.outbox_depth().await.unwrap();
    assert_eq!(depth.pending, 1);
    // The journal row of the duplicate points at the existing item.
    let history = store.journal_for_link(link, 10).await.unwrap();
    assert_eq!(history[0].outbox_id, Some(first.outbox_new["update:A1:h1"]));

    // The same key twice in one changeset is enqueued once.
    let third = store
        .commit(&Changeset {
            outbox: vec![outbox_item("k2", None), outbox_item("k2", None)],
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert_eq!(third.outbox_new.len(), 1);
    assert!(third.outbox_duplicates.is_empty());
    assert_eq!(store.outbox_depth().await.unwrap().pending, 2);

    // Known keys between new ones: each new key gets the id of its own row.
    let fourth = store
        .commit(&Changeset {
            outbox: vec![
                outbox_item("k3", None),
                item.clone(),
                outbox_item("k4", None),
                outbox_item("k2", None),
                outbox_item("k5", None),
            ],
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert_eq!(fourth.outbox_new.len(), 3);
    assert_eq!(fourth.outbox_duplicates, vec!["update:A1:h1", "k2"]);
    for key in ["k3", "k4", "k5"] {
        let row = store.outbox_item(fourth.outbox_new[key]).await.unwrap();
        assert_eq!(row.map(|r| r.idempotency_key).as_deref(), Some(key));
    }
    assert_eq!(store.outbox_depth().await.unwrap().pending, 5);
}

async fn claim_respects_schedule_and_leases(store: Store) {
    with_pair(&store).await;
    let ids = enqueue(&store, &["k1", "k2", "k3"]).await;
    let mut later = outbox_item("later", None);
    later.not_before = Some(Utc::now() + chrono::Duration::hours(1));
    store
        .commit(&Changeset {
            outbox: vec![later],
            ..Changeset::default()
        })
        .await
        .unwrap();

    let lease = Duration::from_millis(400);
    let first = store.claim_outbox(2, lease).await.unwrap();
    assert_eq!(
        first.iter().map(|i| i.id).collect::<Vec<_>>(),
        ids[..2].to_vec(),
        "oldest first, limit respected"
    );
    assert!(first.iter().all(|i| i.locked_until.is_some()));
    assert_eq!(store.outbox_depth().await.unwrap().in_flight, 2);

    let second = store.claim_outbox(10, lease).await.unwrap();
    assert_eq!(
        second.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[2]],
        "leased and future items are not claimable"
    );
    assert!(store.claim_outbox(10, lease).await.unwrap().is_empty());

    // A crashed writer's lease expires: its items come back, nothing is lost.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = store.claim_outbox(10, lease).await.unwrap();
    assert_eq!(
        again.iter().map(|i| i.id).collect::<Vec<_>>(),
        ids.to_vec(),
        "expired leases are claimable again; the future item still is not"
    );
    assert_eq!(
        again.iter().map(|i| i.attempts).collect::<Vec<_>>(),
        vec![2, 2, 2],
        "every claim counts as an attempt, so a writer that dies on an item cannot retry it forever"
    );
    assert!(store.claim_outbox(0, lease).await.unwrap().is_empty());
}

/// A writer shutting down hands back what it did not start: claimable at
/// once (no waiting for the lease), the claim not counted as an attempt;
/// items it did finish are not touched.
async fn released_items_come_back_at_once_without_an_attempt(store: Store) {
    with_pair(&store).await;
    let ids = enqueue(&store, &["r1", "r2"]).await;
    let lease = Duration::from_secs(600);
    let claimed = store.claim_outbox(10, lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    store
        .fail_outbox(ids[0], "HTTP 422: refused", None)
        .await
        .unwrap();
    store.release_outbox(&ids).await.unwrap();

    let again = store.claim_outbox(10, lease).await.unwrap();
    assert_eq!(
        again.iter().map(|i| (i.id, i.attempts)).collect::<Vec<_>>(),
        vec![(ids[1], 1)],
        "the released item is back with one attempt (this claim); the dead one stays dead"
    );
    let dead = store.outbox_item(ids[0]).await.unwrap().unwrap();
    assert_eq!(dead.status, OutboxStatus::Dead);
    assert_eq!(dead.attempts, 1);
}

async fn concurrent_claims_never_share_an_item(store: Store) {
    with_pair(&store).await;
    let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let ids = enqueue(&store, &key_refs).await;

    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_outbox(3, Duration::from_secs(60))
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|i| i.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "an item was claimed twice");
    assert_eq!(distinct, ids.into_iter().collect::<HashSet<_>>());
}

async fn complete_outbox_updates_link_and_journal_atomically(store: Store) {
    with_pair(&store).await;
    let ids = enqueue(&store, &["create:1"]).await;
    let item = store
        .claim_outbox(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(item[0].id, ids[0]);
    let link_id = item[0].link_id.expect("item has a link");
    let before = store.link_by_id(link_id).await.unwrap().unwrap();

    let mut applied = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Applied);
    applied.link = Some(LinkRef::Existing(link_id));
    applied.outbox = Some(OutboxRef::Id(ids[0]));
    applied.a_id = before.a.id.clone();
    applied.b_id = Some("B-new".to_owned());

    // A completion whose link write fails leaves the item pending.
    let broken = Completion {
        outbox_id: ids[0],
        link: Some(LinkWrite::Update(LinkUpdate {
            id: link_id + 999,
            ..LinkUpdate::default()
        })),
        journal: vec![applied.clone()],
        redecide: None,
    };
    assert!(matches!(
        store.complete_outbox(&broken).await,
        Err(StoreError::LinkNotFound { .. })
    ));
    let still = store.outbox_item(ids[0]).await.unwrap().unwrap();
    assert_eq!(still.status, OutboxStatus::Pending);
    assert!(store
        .journal_for_link(link_id, 10)
        .await
        .unwrap()
        .is_empty());

    let new_snapshot = snapshot(json!({ "email": "1@example.com", "id_b": "B-new" }));
    let completion = Completion {
        outbox_id: ids[0],
        link: Some(LinkWrite::Update(LinkUpdate {
            id: link_id,
            b: SidePatch {
                id: Some("B-new".to_owned()),
                ..SidePatch::default()
            },
            snapshot: Some(new_snapshot.clone()),
            ..LinkUpdate::default()
        })),
        journal: vec![applied],
        redecide: None,
    };
    let receipt = store.complete_outbox(&completion).await.expect("complete");
    assert_eq!(receipt.links_updated, 1);
    assert_eq!(receipt.journal_written, 1);

    let done = store.outbox_item(ids[0]).await.unwrap().unwrap();
    assert_eq!(done.status, OutboxStatus::Done);
    assert_eq!(done.completed_at, Some(receipt.committed_at));
    assert_eq!(done.locked_until, None);
    let link = store.link_by_id(link_id).await.unwrap().unwrap();
    assert_eq!(link.b.id.as_deref(), Some("B-new"));
    assert_eq!(link.a, before.a);
    assert_eq!(link.snapshot, new_snapshot);
    let by_b = store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::App, "B-new")
        .await
        .unwrap();
    assert_eq!(by_b.map(|l| l.id), Some(link_id));
    let history = store.journal_for_link(link_id, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].action, JournalAction::Applied);
    assert_eq!(history[0].outbox_id, Some(ids[0]));

    // Completing twice is refused and changes nothing.
    let err = store.complete_outbox(&completion).await.unwrap_err();
    assert!(
        matches!(err, StoreError::OutboxNotPending { status: OutboxStatus::Done, id, .. } if id == ids[0]),
        "{err:?}"
    );
    assert!(err.to_string().contains(&ids[0].to_string()));
    assert!(matches!(
        store
            .complete_outbox(&Completion {
                outbox_id: 424242,
                link: None,
                journal: vec![],
                redecide: None,
            })
            .await,
        Err(StoreError::OutboxNotFound { id: 424242, .. })
    ));

    // A completion may insert the link (e.g. an item enqueued without one).
    let receipt = store
        .commit(&Changeset {
            outbox: vec![outbox_item("no-link", None)],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let orphan = receipt.outbox_new["no-link"];
    let mut applied = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Applied);
    applied.link = Some(LinkRef::New(1));
    let receipt = store
        .complete_outbox(&Completion {
            outbox_id: orphan,
            link: Some(insert(1, new_link(Some("A-x"), Some("B-x")))),
            journal: vec![applied],
            redecide: None,
        })
        .await
        .unwrap();
    let new_link_id = receipt.link_id(1).unwrap();
    assert_eq!(
        store.outbox_item(orphan).await.unwrap().unwrap().link_id,
        Some(new_link_id)
    );
    assert_eq!(
        store.journal_for_link(new_link_id, 5).await.unwrap().len(),
        1
    );
}

async fn fail_outbox_retries_then_dead_letters(store: Store) {
    with_pair(&store).await;
    let ids = enqueue(&store, &["k"]).await;
    let id = ids[0];
    let claimed = store
        .claim_outbox(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let link_id = claimed[0].link_id.unwrap();

    let retry_at = micros(Utc::now() + chrono::Duration::minutes(5));
    let outcome = store
        .fail_outbox(id, "HTTP 503 from app: upstream busy", Some(retry_at))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        FailOutcome::Retrying {
            attempts: 1,
            next_attempt_at: retry_at
        }
    );
    let item = store.outbox_item(id).await.unwrap().unwrap();
    assert_eq!(item.status, OutboxStatus::Pending);
    assert_eq!(item.attempts, 1);
    assert_eq!(item.locked_until, None);
    assert_eq!(item.next_attempt_at, retry_at);
    assert_eq!(
        item.last_error.as_deref(),
        Some("HTTP 503 from app: upstream busy")
    );
    assert!(
        store
            .claim_outbox(1, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "not claimable before retry_at"
    );
    assert!(store.dead_letters(None).await.unwrap().is_empty());

    let outcome = store
        .fail_outbox(id, "HTTP 422: email is invalid", None)
        .await
        .unwrap();
    let FailOutcome::Dead {
        attempts,
        dead_letter_id,
    } = outcome
    else {
        panic!("expected Dead, got {outcome:?}");
    };
    assert_eq!(attempts, 1, "attempts count claims, not failures");
    let item = store.outbox_item(id).await.unwrap().unwrap();
    assert_eq!(item.status, OutboxStatus::Dead);
    let letter = store.dead_letter(dead_letter_id).await.unwrap().unwrap();
    assert_eq!(letter.stage, DeadLetterStage::Write);
    assert_eq!(letter.side, Side::App);
    assert_eq!(letter.outbox_id, Some(id));
    assert_eq!(letter.reason, "HTTP 422: email is invalid");
    assert_eq!(letter.payload.as_ref(), Some(&item.payload));
    assert_eq!(letter.status, DeadLetterStatus::Open);

    let history = store.journal_for_link(link_id, 10).await.unwrap();
    let actions: Vec<JournalAction> = history.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![JournalAction::FailedAttempt, JournalAction::DeadLettered]
    );
    assert!(history.iter().all(|e| e.outbox_id == Some(id)));
    assert_eq!(history[1].a_id.as_deref(), Some("A-k"));
    assert_eq!(history[1].direction, Some(Direction::AToB));

    assert!(matches!(
        store.fail_outbox(id, "again", None).await,
        Err(StoreError::OutboxNotPending {
            status: OutboxStatus::Dead,
            ..
        })
    ));
    let depth = store.outbox_depth().await.unwrap();
    assert_eq!((depth.pending, depth.dead), (0, 1));

    let retried = store
        .set_dead_letter_status(dead_letter_id, DeadLetterStatus::Retried)
        .await
        .unwrap();
    assert_eq!(retried.status, DeadLetterStatus::Retried);
    assert!(store
        .dead_letters(Some(DeadLetterStatus::Open))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .dead_letters(Some(DeadLetterStatus::Retried))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        store
            .set_dead_letter_status(987654, DeadLetterStatus::Dropped)
            .await,
        Err(StoreError::DeadLetterNotFound { id: 987654 })
    ));
}

async fn links_by_side_ids_over_many_chunks(store: Store) {
    with_pair(&store).await;
    // More rows than fit in one statement (SQLite: 32766 parameters), so
    // links, outbox and journal inserts are each split into several chunks.
    const N: usize = 3_500;
    let links: Vec<LinkWrite> = (0..N)
        .map(|i| {
            insert(
                i as u32,
                new_link(Some(&format!("A{i}")), Some(&format!("B{i}"))),
            )
        })
        .collect();
    let outbox: Vec<NewOutboxItem> = (0..N)
        .map(|i| outbox_item(&format!("k{i}"), Some(LinkRef::New(i as u32))))
        .collect();
    let journal: Vec<NewJournalEntry> = (0..N)
        .map(|i| {
            let mut e = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Planned);
            e.link = Some(LinkRef::New(i as u32));
            e.outbox = Some(OutboxRef::Key(format!("k{i}")));
            e
        })
        .collect();
    let receipt = store
        .commit(&Changeset {
            links,
            outbox,
            journal,
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert_eq!(receipt.new_links.len(), N);
    assert_eq!(receipt.outbox_new.len(), N);
    assert_eq!(receipt.journal_written, N as u64);
    let ids: HashSet<i64> = receipt.new_links.values().copied().collect();
    assert_eq!(ids.len(), N, "distinct link ids");
    let last = store
        .journal_for_link(receipt.link_id(3_499).unwrap(), 5)
        .await
        .unwrap();
    assert_eq!(last[0].outbox_id, Some(receipt.outbox_new["k3499"]));
    let item = store
        .outbox_item(receipt.outbox_new["k3499"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.link_id, receipt.link_id(3_499));

    let mut wanted: Vec<String> = (0..N).map(|i| format!("A{i}")).collect();
    wanted.push("A-unknown".to_owned());
    let found = store
        .links_by_side_ids(PAIR, EntityKind::Contact, Side::Ghl, &wanted)
        .await
        .unwrap();
    assert_eq!(found.len(), N);
    assert_eq!(found["A777"].b.id.as_deref(), Some("B777"));
    assert_eq!(found["A777"].id, receipt.link_id(777).unwrap());

    let by_b = store
        .links_by_side_ids(
            PAIR,
            EntityKind::Contact,
            Side::App,
            &(600..N).map(|i| format!("B{i}")).collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    assert_eq!(by_b.len(), N - 600);

    // One changeset updating more rows than a VALUES list of 500.
    let updates: Vec<LinkWrite> = (0..700)
        .map(|i| {
            LinkWrite::Update(LinkUpdate {
                id: receipt.link_id(i).unwrap(),
                b: SidePatch {
                    parent_id: Some(format!("P{i}")),
                    ..SidePatch::default()
                },
                ..LinkUpdate::default()
            })
        })
        .collect();
    let updated = store
        .commit(&Changeset {
            links: updates,
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.links_updated, 700);
    let all = store.all_links(PAIR, EntityKind::Contact).await.unwrap();
    assert_eq!(all.len(), N);
    assert_eq!(all.iter().filter(|l| l.b.parent_id.is_some()).count(), 700);
    assert_eq!(
        store.count_links(PAIR, EntityKind::Contact).await.unwrap(),
        N as i64
    );
}

async fn timestamps_round_trip_at_microsecond_precision(store: Store) {
    with_pair(&store).await;
    // Nanoseconds that neither backend can keep, plus values with 0, 3 and
    // 6 fractional digits (SQLite stores them as text of varying width).
    let precise = Utc
        .with_ymd_and_hms(2024, 2, 29, 23, 59, 58)
        .unwrap()
        .checked_add_signed(chrono::Duration::nanoseconds(123_456_789))
        .unwrap();
    let whole = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap();
    let millis = whole + chrono::Duration::milliseconds(500);
    assert_ne!(precise, micros(precise));

    let mut link = new_link(Some("A1"), None);
    link.a.updated_at = Some(precise);
    link.b.updated_at = Some(whole);
    link.deleted_at = Some(millis);
    let mut cursor = CursorAdvance::new(PAIR, Side::Ghl, EntityKind::Contact, "");
    cursor.watermark = Change::Set(precise);
    let mut item = outbox_item("k", None);
    item.not_before = Some(precise);
    let receipt = store
        .commit(&Changeset {
            links: vec![insert(0, link)],
            outbox: vec![item],
            cursors: vec![cursor],
            ..Changeset::default()
        })
        .await
        .unwrap();

    let stored = store
        .link_by_id(receipt.link_id(0).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.a.updated_at, Some(micros(precise)));
    assert_eq!(stored.b.updated_at, Some(whole));
    assert_eq!(stored.deleted_at, Some(millis));
    assert_eq!(stored.created_at, receipt.committed_at);
    assert_eq!(receipt.committed_at, micros(receipt.committed_at));
    let cursor = store
        .load_cursor(PAIR, Side::Ghl, EntityKind::Contact, "")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.watermark, Some(micros(precise)));
    let item = store
        .outbox_item(receipt.outbox_new["k"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.next_attempt_at, micros(precise));

    // Due-time comparisons work on stored values: the item due in the past
    // is claimable, the one due in 30 s is not.
    let now = micros(Utc::now());
    let mut soon = outbox_item("soon", None);
    soon.not_before = Some(now + chrono::Duration::seconds(30));
    store
        .commit(&Changeset {
            outbox: vec![soon],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let claimed = store
        .claim_outbox(10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].idempotency_key, "k");
}

async fn conflict_open_upsert_resolve(store: Store) {
    with_pair(&store).await;
    let link = one_link(&store, "A1").await;
    let conflict = |a: &str, b: &str| NewConflict {
        pair: PAIR.to_owned(),
        entity: EntityKind::Contact,
        link: LinkRef::Existing(link),
        field: "phone".to_owned(),
        base_value: Some(json!("0")),
        a_value: Some(json!(a)),
        b_value: Some(json!(b)),
    };
    store
        .commit(&Changeset {
            conflicts: vec![conflict("1", "2")],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let first = store.open_conflicts(None).await.unwrap();
    assert_eq!(first.len(), 1);

    // Both sides edited again: the open conflict is refreshed, not duplicated.
    store
        .commit(&Changeset {
            conflicts: vec![conflict("3", "4"), conflict("5", "6")],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let open = store.open_conflicts(Some(PAIR)).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, first[0].id);
    assert_eq!(open[0].a_value, Some(json!("5")));
    assert_eq!(open[0].b_value, Some(json!("6")));
    assert_eq!(open[0].status, ConflictStatus::Open);

    let resolved = store.resolve_conflict(open[0].id, "a").await.unwrap();
    assert_eq!(resolved.status, ConflictStatus::Resolved);
    assert_eq!(resolved.resolution.as_deref(), Some("a"));
    assert!(resolved.resolved_at.is_some());
    assert!(store.open_conflicts(None).await.unwrap().is_empty());
    let history = store.journal_for_link(link, 10).await.unwrap();
    assert_eq!(
        history.last().unwrap().action,
        JournalAction::ConflictResolved
    );
    assert_eq!(history.last().unwrap().fields, vec!["phone"]);
    assert_eq!(history.last().unwrap().a_id.as_deref(), Some("A1"));

    let err = store.resolve_conflict(open[0].id, "b").await.unwrap_err();
    assert!(matches!(err, StoreError::ConflictNotOpen { .. }), "{err:?}");
    assert!(matches!(
        store.resolve_conflict(99_999, "a").await,
        Err(StoreError::ConflictNotFound { id: 99_999 })
    ));
    assert_eq!(
        store
            .conflict(open[0].id)
            .await
            .unwrap()
            .unwrap()
            .resolution
            .as_deref(),
        Some("a"),
        "the first decision stands"
    );

    // The same field can conflict again after a resolution.
    store
        .commit(&Changeset {
            conflicts: vec![conflict("7", "8")],
            ..Changeset::default()
        })
        .await
        .unwrap();
    let reopened = store.open_conflicts(None).await.unwrap();
    assert_eq!(reopened.len(), 1);
    assert_ne!(reopened[0].id, open[0].id);
}

async fn tokens_round_trip_and_stay_redacted(store: Store) {
    let access = "at-very-secret-0123456789";
    let refresh = "rt-very-secret-9876543210";
    let token = StoredToken {
        subject: "location:loc-1".to_owned(),
        client_id: "client-1".to_owned(),
        access_token: SecretString::from(access),
        refresh_token: SecretString::from(refresh),
        expires_at: Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap(),
        scopes: vec!["contacts.readonly".to_owned(), "contacts.write".to_owned()],
        user_type: Some("Location".to_owned()),
        company_id: Some("co-1".to_owned()),
        location_id: Some("loc-1".to_owned()),
        updated_at: micros(Utc::now()),
    };
    let debug = format!("{token:?}");
    assert!(
        !debug.contains(access) && !debug.contains(refresh),
        "{debug}"
    );

    assert!(store.load_token("location:loc-1").await.unwrap().is_none());
    store.save_token(&token).await.unwrap();
    let loaded = store.load_token("location:loc-1").await.unwrap().unwrap();
    assert_eq!(loaded.access_token.expose_secret(), access);
    assert_eq!(loaded.refresh_token.expose_secret(), refresh);
    assert_eq!(loaded.scopes, token.scopes);
    assert_eq!(loaded.expires_at, token.expires_at);
    assert_eq!(loaded.updated_at, token.updated_at);
    assert_eq!(loaded.user_type, token.user_type);
    assert_eq!(loaded.company_id, token.company_id);
    assert_eq!(loaded.location_id, token.location_id);
    let debug = format!("{loaded:?}");
    assert!(
        !debug.contains(access) && !debug.contains(refresh),
        "{debug}"
    );

    // A refresh replaces the stored set.
    let mut refreshed = token.clone();
    refreshed.access_token = SecretString::from("at-2");
    refreshed.refresh_token = SecretString::from("rt-2");
    store.save_token(&refreshed).await.unwrap();
    let loaded = store.load_token("location:loc-1").await.unwrap().unwrap();
    assert_eq!(loaded.access_token.expose_secret(), "at-2");
    assert_eq!(loaded.refresh_token.expose_secret(), "rt-2");
}

async fn cursors_upsert(store: Store) {
    with_pair(&store).await;
    let t1 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let t2 = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap();
    let t3 = Utc.with_ymd_and_hms(2024, 1, 3, 0, 0, 0).unwrap();
    assert!(store
        .load_cursor(PAIR, Side::Ghl, EntityKind::Contact, "search")
        .await
        .unwrap()
        .is_none());

    let mut first = CursorAdvance::new(PAIR, Side::Ghl, EntityKind::Contact, "search");
    first.watermark = Change::Set(t1);
    first.cursor = Change::Set("page-2".to_owned());
    first.last_poll_at = Some(t1);
    let mut other = CursorAdvance::new(PAIR, Side::Ghl, EntityKind::Contact, "business:9");
    other.last_full_sync_at = Some(t1);
    store
        .commit(&Changeset {
            cursors: vec![first, other],
            ..Changeset::default()
        })
        .await
        .unwrap();

    // Keep the watermark, clear the page cursor, record a success; two
    // advances of one key in a changeset are applied in order.
    let mut second = CursorAdvance::new(PAIR, Side::Ghl, EntityKind::Contact, "search");
    second.cursor = Change::Clear;
    second.last_success_at = Some(t2);
    let mut third = CursorAdvance::new(PAIR, Side::Ghl, EntityKind::Contact, "search");
    third.last_success_at = Some(t3);
    let receipt = store
        .commit(&Changeset {
            cursors: vec![second, third],
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert_eq!(receipt.cursors_advanced, 1);
    let cursor = store
        .load_cursor(PAIR, Side::Ghl, EntityKind::Contact, "search")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cursor.watermark, Some(t1), "kept");
    assert_eq!(cursor.cursor, None, "cleared");
    assert_eq!(cursor.last_poll_at, Some(t1), "kept");
    assert_eq!(cursor.last_success_at, Some(t3), "later advance wins");
    assert_eq!(cursor.last_full_sync_at, None);
    assert_eq!(cursor.updated_at, receipt.committed_at);

    let all = store.cursors(PAIR).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].stream, "business:9");
    assert_eq!(all[0].last_full_sync_at, Some(t1));
}

async fn failed_commit_leaves_nothing_behind(store: Store) {
    with_pair(&store).await;
    let existing = one_link(&store, "A-taken").await;
    let baseline_depth = store.outbox_depth().await.unwrap();

    let mut cursor = CursorAdvance::new(PAIR, Side::Ghl, EntityKind::Contact, "");
    cursor.watermark = Change::Set(Utc::now());
    let mut journal = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Planned);
    journal.a_id = Some("A-fresh".to_owned());

    // (1) The second link of the batch violates UNIQUE(pair, entity, a_id):
    // the first link, the outbox row, the journal row and the cursor advance
    // of the same changeset must all be rolled back.
    let err = store
        .commit(&Changeset {
            links: vec![
                insert(0, new_link(Some("A-fresh"), None)),
                insert(1, new_link(Some("A-taken"), None)),
            ],
            outbox: vec![outbox_item("k-fresh", Some(LinkRef::New(0)))],
            journal: vec![journal.clone()],
            cursors: vec![cursor.clone()],
            ..Changeset::default()
        })
        .await
        .expect_err("duplicate a_id");
    assert!(err.is_constraint_violation(), "{err}");
    assert!(err.to_string().contains("commit"), "{err}");

    // (2) The last statement fails (a conflict on a link that does not
    // exist) after links, outbox, journal and dead letters were written.
    let err = store
        .commit(&Changeset {
            links: vec![
                insert(0, new_link(Some("A-fresh"), None)),
                LinkWrite::Update(LinkUpdate {
                    id: existing,
                    b: SidePatch {
                        id: Some("B-should-not-stick".to_owned()),
                        ..SidePatch::default()
                    },
                    ..LinkUpdate::default()
                }),
            ],
            outbox: vec![outbox_item("k-fresh", Some(LinkRef::New(0)))],
            journal: vec![journal],
            dead_letters: vec![NewDeadLetter {
                pair: PAIR.to_owned(),
                side: Side::Ghl,
                entity: EntityKind::Contact,
                record_id: None,
                outbox_id: None,
                stage: DeadLetterStage::Read,
                reason: "x".to_owned(),
                payload: None,
            }],
            conflicts: vec![NewConflict {
                pair: PAIR.to_owned(),
                entity: EntityKind::Contact,
                link: LinkRef::Existing(existing + 10_000),
                field: "phone".to_owned(),
                base_value: None,
                a_value: None,
                b_value: None,
            }],
            cursors: vec![cursor],
            redecided: Vec::new(),
        })
        .await
        .expect_err("foreign key");
    assert!(err.is_constraint_violation(), "{err}");

    assert_eq!(store.outbox_depth().await.unwrap(), baseline_depth);
    assert!(store
        .link_by_side_id(PAIR, EntityKind::Contact, Side::Ghl, "A-fresh")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.count_links(PAIR, EntityKind::Contact).await.unwrap(),
        1
    );
    assert_eq!(
        store.link_by_id(existing).await.unwrap().unwrap().b.id,
        None,
        "the link update was rolled back"
    );
    assert!(store
        .journal_for_record(PAIR, "A-fresh", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.dead_letters(None).await.unwrap().is_empty());
    assert!(store.open_conflicts(None).await.unwrap().is_empty());
    assert!(store
        .load_cursor(PAIR, Side::Ghl, EntityKind::Contact, "")
        .await
        .unwrap()
        .is_none());

    // The store is still usable and the same changeset minus the bad row
    // commits.
    let ok = store
        .commit(&Changeset {
            links: vec![insert(0, new_link(Some("A-fresh"), None))],
            outbox: vec![outbox_item("k-fresh", Some(LinkRef::New(0)))],
            ..Changeset::default()
        })
        .await
        .unwrap();
    assert_eq!(ok.outbox_new.len(), 1);
}

async fn local_refs_are_validated(store: Store) {
    with_pair(&store).await;
    let err = store
        .commit(&Changeset {
            links: vec![insert(1, new_link(Some("A1"), None))],
            outbox: vec![outbox_item("k", Some(LinkRef::New(2)))],
            ..Changeset::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownLocalRef { local_ref: 2, .. }),
        "{err:?}"
    );
    let err = store
        .commit(&Changeset {
            links: vec![
                insert(1, new_link(Some("A1"), None)),
                insert(1, new_link(Some("A2"), None)),
            ],
            ..Changeset::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DuplicateLocalRef { local_ref: 1, .. }),
        "{err:?}"
    );
    let mut journal = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Planned);
    journal.outbox = Some(OutboxRef::Key("never-enqueued".to_owned()));
    let err = store
        .commit(&Changeset {
            links: vec![insert(1, new_link(Some("A1"), None))],
            journal: vec![journal],
            ..Changeset::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownOutboxKey { key, .. } if key == "never-enqueued"),
        "{err:?}"
    );
    assert_eq!(
        store.count_links(PAIR, EntityKind::Contact).await.unwrap(),
        0
    );
    let empty = store.commit(&Changeset::default()).await.unwrap();
    assert!(empty.new_links.is_empty());
}

async fn journal_for_record_newest_last(store: Store) {
    with_pair(&store).await;
    for i in 0..5 {
        let mut entry = NewJournalEntry::new(PAIR, EntityKind::Contact, JournalAction::Seen);
        if i % 2 == 0 {
            entry.a_id = Some("R1".to_owned());
        } else {
            entry.b_id = Some("R1".to_owned());
        }
        entry.detail = Some(format!("event {i}"));
        store
            .commit(&Changeset {
                journal: vec![entry],
                ..Changeset::default()
            })
            .await
            .unwrap();
    }
    let mut unrelated =
        NewJournalEntry::new("other-pair", EntityKind::Contact, JournalAction::Seen);
    unrelated.a_id = Some("R1".to_owned());
    store
        .commit(&Changeset {
            journal: vec![unrelated],
            ..Changeset::default()
        })
        .await
        .unwrap();

    let all = store.journal_for_record(PAIR, "R1", 100).await.unwrap();
    let details: Vec<_> = all.iter().filter_map(|e| e.detail.clone()).collect();
    assert_eq!(
        details,
        vec!["event 0", "event 1", "event 2", "event 3", "event 4"]
    );
    let latest = store.journal_for_record(PAIR, "R1", 2).await.unwrap();
    let details: Vec<_> = latest.iter().filter_map(|e| e.detail.clone()).collect();
    assert_eq!(details, vec!["event 3", "event 4"], "newest last, limited");
}

async fn prune_outbox_removes_old_finished_items(store: Store) {
    with_pair(&store).await;
    let ids = enqueue(&store, &["done", "pending"]).await;
    let claimed = store
        .claim_outbox(1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, ids[0]);
    store
        .complete_outbox(&Completion {
            outbox_id: ids[0],
            link: None,
            journal: vec![],
            redecide: None,
        })
        .await
        .unwrap();
    let depth = store.outbox_depth().await.unwrap();
    assert_eq!((depth.pending, depth.done), (1, 1));

    assert_eq!(
        store
            .prune_outbox(Utc::now() - chrono::Duration::hours(1))
            .await
            .unwrap(),
        0,
        "recently completed items are kept"
    );
    assert_eq!(
        store
            .prune_outbox(Utc::now() + chrono::Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert!(store.outbox_item(ids[0]).await.unwrap().is_none());
    assert!(store.outbox_item(ids[1]).await.unwrap().is_some());
}

// ------------------------------------------------- backend-specific cases --

#[tokio::test]
async fn sqlite_connect_names_a_directory_it_cannot_create() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"file").unwrap();
    let path = blocker.join("sub").join("mirror.db");
    let settings = ghl_sync::config::database::DatabaseSettings::sqlite_file(&path);
    let err = Store::connect(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let settings =
        ghl_sync::config::database::DatabaseSettings::sqlite_file(&dir.path().join("m.db"));
    let store = Store::connect_and_migrate(&settings).await.unwrap();
    store
        .register_pair(&registration(PAIR, Some("loc-1")))
        .await
        .unwrap();
    store.close().await;
    let store = Store::connect(&settings).await.unwrap();
    assert!(store.migrate().await.unwrap().is_empty());
    assert!(store.pair(PAIR).await.unwrap().is_some());
    assert_eq!(store.backend().as_str(), "sqlite");
    store.close().await;
}

/// Commits no longer copy the write-ahead log into the database themselves
/// (`wal_autocheckpoint = 0`); the store's checkpointer does it beside
/// them, woken by each commit. The database file only grows when a
/// checkpoint copies pages into it, so its growth shows one ran; a few
/// hundred links are far below SQLite's own automatic threshold.
#[tokio::test]
async fn sqlite_checkpoints_run_beside_the_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let store = sqlite_store(&path).await;
    with_pair(&store).await;
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    let mut cs = Changeset::default();
    for i in 0..300u32 {
        let id = format!("checkpoint-{i:04}-{}", "x".repeat(200));
        cs.links.push(insert(i, new_link(Some(&id), None)));
    }
    store.commit(&cs).await.unwrap();
    // Sooner than the checkpointer's own sweep: the commit woke it.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        size() > before,
        "no checkpoint copied the log: database file still {before} bytes"
    );
    assert_eq!(
        store.checkpoint().await.unwrap(),
        0,
        "pages left in the log"
    );
    store.close().await;
}

/// A store on a migrated SQLite mirror at `path`.
async fn sqlite_store(path: &std::path::Path) -> Store {
    let settings = ghl_sync::config::database::DatabaseSettings::sqlite_file(path);
    Store::connect_and_migrate(&settings).await.unwrap()
}

/// A plain pool on a SQLite file, beside the store (foreign keys enforced,
/// as the store's own connections do), to look at what the store wrote.
async fn sqlite_file_pool(path: &std::path::Path) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true);
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}

/// The mirror's own tables (not SQLite's or sqlx's bookkeeping).
async fn sqlite_tables(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Each row of `table` as text (every column `quote`d), in rowid order.
async fn sqlite_columns(pool: &sqlx::SqlitePool, table: &str) -> Vec<String> {
    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Each row of `table` as text, `columns` of it only.
async fn sqlite_rows(pool: &sqlx::SqlitePool, table: &str, columns: &[String]) -> Vec<String> {
    let row = columns
        .iter()
        .map(|c| format!("quote({c})"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    sqlx::query_scalar(&format!("SELECT {row} FROM {table} ORDER BY rowid"))
        .fetch_all(pool)
        .await
        .unwrap()
}

/// SQLite enforces `CHECK (x IN ('a', 'b', 'c'))` by building a temporary
/// b-tree of the list for every row (`OpenEphemeral` in the insert's
/// program): about a quarter of SQLite's time inserting links, outbox and
/// journal rows (docs/BENCHMARKS.md, "SQLite CHECK cost").
/// Migration 0006 spells every enumeration as comparisons; a later
/// migration that brings an IN list back fails here. The rules themselves
/// still hold.
#[tokio::test]
async fn sqlite_enum_checks_build_no_temporary_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    let store = sqlite_store(&path).await;
    with_pair(&store).await;
    let pool = sqlite_file_pool(&path).await;
    for table in sqlite_tables(&pool).await {
        let program: Vec<String> =
            sqlx::query(&format!("EXPLAIN INSERT INTO {table} DEFAULT VALUES"))
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, "opcode"))
                .collect();
        assert!(
            !program.iter().any(|op| op == "OpenEphemeral"),
            "inserting into {table} builds a temporary table: {program:?}"
        );
    }
    let journal = |action: &str| {
        format!(
            "INSERT INTO journal (at, pair, entity, action) VALUES ('t', '{PAIR}', 'contact', '{action}')"
        )
    };
    sqlx::query(&journal("planned"))
        .execute(&pool)
        .await
        .unwrap();
    let refused = sqlx::query(&journal("plannedx"))
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("CHECK constraint failed"),
        "{refused}"
    );
    pool.close().await;
    store.close().await;
}

/// A mirror created before migration 0006 (which rebuilds six tables to
/// rewrite their CHECK constraints) keeps every row, id and foreign key,
/// and ends with exactly the schema of a fresh mirror.
#[tokio::test]
async fn sqlite_mirror_from_before_0006_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    // The migrations as they stood before 0006, applied from a copy.
    let earlier = dir.path().join("migrations");
    std::fs::create_dir(&earlier).unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().as_ref() < "0006" {
            std::fs::copy(entry.path(), earlier.join(entry.file_name())).unwrap();
        }
    }
    let path = dir.path().join("old.db");
    let pool = sqlite_file_pool(&path).await;
    sqlx::migrate::Migrator::new(earlier.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    for statement in [
        "INSERT INTO pairs VALUES ('p', 'ghl', 'ghl', 'loc', 'app', 'rest', NULL, 't', 't')",
        "INSERT INTO links VALUES (7, 'p', 'contact', 'g1', 'a1', NULL, NULL, '{}', 'h', 't', 't', NULL, 't', 't')",
        "INSERT INTO links VALUES (9, 'p', 'task', 'g2', NULL, 'g1', 'a1', '{\"x\":1}', 'h2', NULL, NULL, 't', 't', 't')",
        "INSERT INTO cursors VALUES ('p', 'a', 'contact', '', 'w', 'c', 't', 't', NULL, 't')",
        "INSERT INTO outbox VALUES (40, 'k1', 'p', 'b', 'contact', 'update', 7, 'a1', NULL, '{}', 'pending', 2, 't', NULL, 'boom', 't', 't', NULL)",
        "INSERT INTO outbox VALUES (41, 'k2', 'p', 'a', 'task', 'complete', 9, 'g2', 'g1', '{}', 'done', 1, 't', NULL, NULL, 't', 't', 't')",
        "INSERT INTO journal VALUES (5, 't', 'p', 'contact', 7, 'a_to_b', 'g1', 'a1', 'planned', '[\"email\"]', 40, 'update')",
        "INSERT INTO conflicts VALUES (3, 'p', 'contact', 7, 'email', '1', '2', '3', 'open', NULL, 't', 't', NULL)",
        "INSERT INTO dead_letters VALUES (2, 'p', 'a', 'contact', 'g1', 40, 'write', 'no', '{}', 'open', 't', 't')",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let tables = sqlite_tables(&pool).await;
    // Later migrations may add columns; the rows keep the ones they had.
    let mut before = Vec::new();
    for table in &tables {
        let columns = sqlite_columns(&pool, table).await;
        let rows = sqlite_rows(&pool, table, &columns).await;
        before.push((columns, rows));
    }
    pool.close().await;

    sqlite_store(&path).await.close().await;
    let pool = sqlite_file_pool(&path).await;
    // Later migrations may add tables (0010: `request_usage`); none is lost.
    let after = sqlite_tables(&pool).await;
    assert!(tables.iter().all(|t| after.contains(t)), "{after:?}");
    for (table, (columns, rows)) in tables.iter().zip(&before) {
        assert_eq!(
            &sqlite_rows(&pool, table, columns).await,
            rows,
            "rows of {table}"
        );
    }
    let fk_violations: Vec<String> =
        sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(fk_violations.is_empty(), "{fk_violations:?}");
    // The outbox still points at `links` (renaming it aside repointed the
    // old outbox), and the link is still enforced.
    let orphan = sqlx::query(
        "INSERT INTO outbox (idempotency_key, pair, target_side, entity, op, link_id, payload, \
         next_attempt_at, created_at, updated_at) \
         VALUES ('k3', 'p', 'b', 'contact', 'update', 99, '{}', 't', 't', 't')",
    )
    .execute(&pool)
    .await
    .unwrap_err();
    assert!(orphan.to_string().contains("FOREIGN KEY"), "{orphan}");

    let fresh_path = dir.path().join("fresh.db");
    sqlite_store(&fresh_path).await.close().await;
    let schema = |pool: sqlx::SqlitePool| async move {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    };
    let upgraded = schema(pool).await;
    assert_eq!(upgraded, schema(sqlite_file_pool(&fresh_path).await).await);
    assert!(!upgraded
        .iter()
        .any(|(_, _, sql)| sql.as_deref().unwrap_or("").contains("before_0006")));
}

#[tokio::test]
async fn postgres_connect_error_hides_the_password() {
    // Nothing listens on port 1: the connection fails without a server.
    let mut settings = ghl_sync::config::database::DatabaseSettings::postgres_url(
        "postgres://ghlsync:hunter2-secret@127.0.0.1:1/mirror",
    );
    settings.acquire_timeout = Duration::from_secs(2);
    let err = Store::connect(&settings).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{err:?}").contains("hunter2"));
    assert!(message.contains("127.0.0.1:1"), "{message}");
}

/// A server that refuses the connection (nothing listens) fails at once
/// with the operating system's reason, not after the acquire timeout with
/// the pool's "timed out"; the host and port are named, the password not.
#[tokio::test]
async fn postgres_connect_refused_fails_fast_naming_the_refusal() {
    let settings = ghl_sync::config::database::DatabaseSettings::postgres_url(
        "postgres://ghlsync:hunter2-secret@127.0.0.1:1/mirror",
    );
    assert_eq!(settings.acquire_timeout, Duration::from_secs(30));
    let started = std::time::Instant::now();
    let err = Store::connect(&settings).await.unwrap_err();
    let message = err.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}: {message}",
        started.elapsed()
    );
    assert!(message.to_lowercase().contains("refused"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

/// A withdrawal and a completion schedule their source's re-decision in
/// their own transaction; a failed attempt postpones it; the decision
/// that takes it deletes it in its commit.
async fn redecisions_are_scheduled_with_the_write_postponed_and_taken(store: Store) {
    with_pair(&store).await;
    let ids = enqueue(&store, &["withdrawn", "adopted"]).await;
    let claimed = store
        .claim_outbox(2, Duration::from_secs(30))
        .await
        .expect("claim");
    let link_of = |id: i64| {
        claimed
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.link_id)
            .expect("a linked item")
    };
    let (withdrawn, adopted) = (link_of(ids[0]), link_of(ids[1]));
    assert_eq!(store.redecisions_waiting(PAIR).await.unwrap(), 0);

    store
        .cancel_outbox(ids[0], "edited there since")
        .await
        .expect("cancel");
    let due = store.due_redecisions(10).await.expect("due");
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].link_id, withdrawn);
    assert_eq!(due[0].side, Side::Ghl, "the source of a write to the app");
    assert!(due[0].reason.contains("edited there since"), "{due:?}");

    store
        .complete_outbox(&Completion {
            outbox_id: ids[1],
            link: Some(LinkWrite::Update(LinkUpdate {
                id: adopted,
                ..LinkUpdate::default()
            })),
            journal: vec![],
            redecide: Some((Side::Ghl, "adopted".to_owned())),
        })
        .await
        .expect("complete");
    assert_eq!(store.due_redecisions(10).await.unwrap().len(), 2);

    let later = Utc::now() + chrono::Duration::hours(1);
    store
        .postpone_redecision(withdrawn, "503 Service Unavailable", later)
        .await
        .expect("postpone");
    let due = store.due_redecisions(10).await.unwrap();
    assert_eq!(due.len(), 1, "the postponed one waits: {due:?}");
    assert_eq!(due[0].link_id, adopted);
    assert_eq!(store.redecisions_waiting(PAIR).await.unwrap(), 2);

    store
        .commit(&Changeset {
            redecided: vec![adopted],
            ..Changeset::default()
        })
        .await
        .expect("taken with the decision");
    assert_eq!(store.redecisions_waiting(PAIR).await.unwrap(), 1);
    assert!(store.due_redecisions(10).await.unwrap().is_empty());
    store.drop_redecision(withdrawn).await.expect("drop");
    assert_eq!(store.redecisions_waiting(PAIR).await.unwrap(), 0);
}
