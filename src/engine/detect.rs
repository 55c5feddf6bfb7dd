//! Change detection: one poll of a side's change feed for one entity,
//! between the watermark (minus the overlap) and now (minus the lag). Each
//! page is decided and committed with its watermark in one transaction, so
//! the watermark never passes a change that is not durably recorded.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tracing::Instrument;

use super::decide::Decider;
use super::report::PairReport;
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::connector::ConnectorError;
use crate::domain::{EntityKind, Side};

use crate::store::{Change, Changeset, CommitReceipt, CursorAdvance, DeadLetterStatus, StoreError};

/// A page's commit running while the next page is decided.
struct InFlight {
    /// The ids of the page's records.
    ids: HashSet<String>,
    commit: tokio::task::JoinHandle<Result<CommitReceipt, StoreError>>,
}

/// Detection of the default feed of an entity.
pub(super) const STREAM: &str = "";

impl Engine {
    /// Polls `source`'s change feed of `entity` once. Entities without a
    /// feed on that side (GHL tasks and notes) are read as the children of
    /// the contacts that changed, and by reconciliation.
    pub async fn poll(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
        mode: Mode,
    ) -> Result<PairReport, EngineError> {
        let connector = pair.connector(source);
        let caps = connector.capabilities().of(entity);
        if !caps.read || !caps.change_feed {
            return Ok(PairReport::default());
        }
        let span = tracing::info_span!(
            "poll",
            pair = %pair.name(),
            side = %connector.side(),
            entity = %entity,
        );
        self.poll_feed(pair, source, entity, mode)
            .instrument(span)
            .await
    }

    async fn poll_feed(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
        mode: Mode,
    ) -> Result<PairReport, EngineError> {
        let side = source;
        let started = Utc::now();
        let cursor = self
            .store
            .load_cursor(pair.name(), side, entity, STREAM)
            .await?;
        let stored = cursor.and_then(|c| c.watermark);
        let overlap = chrono::Duration::from_std(self.sync.overlap).unwrap_or_default();
        let lag = chrono::Duration::from_std(self.sync.lag).unwrap_or_default();
        let since = stored.map_or(DateTime::UNIX_EPOCH, |w| w - overlap);
        let until = started - lag;
        if until < since {
            return Ok(PairReport::default());
        }
        let mut decider = Decider::new(self, pair, mode);
        let mut watermark = stored;
        let mut pages = pair.connector(source).changes(entity, since, until);
        // Each page's commit runs while the next page is read and decided;
        // commits stay one at a time and in order.
        let mut in_flight: Option<InFlight> = None;
        let read = async {
            while let Some(page) = pages.next().await {
                let page = page?;
                if in_flight
                    .as_ref()
                    .is_some_and(|f| page.records.iter().any(|r| f.ids.contains(&r.id)))
                {
                    // A record of the page being committed comes again
                    // (edited meanwhile): decide it against the committed
                    // mirror.
                    self.land(in_flight.take(), &mut decider).await?;
                }
                let ids: HashSet<String> = page.records.iter().map(|r| r.id.clone()).collect();
                self.set_aside(pair, &mut decider, source, entity, page.rejected)
                    .await?;
                let changed = decider.records(source, entity, page.records).await?;
                if entity == EntityKind::Contact {
                    self.children_of(pair, &mut decider, source, &changed)
                        .await?;
                }
                watermark = watermark.max(page.watermark);
                let mut advance = self.advance(pair, source, entity);
                if let Some(w) = watermark.filter(|w| Some(*w) > stored) {
                    advance.watermark = Change::Set(w);
                }
                advance.last_poll_at = Some(started);
                self.land(in_flight.take(), &mut decider).await?;
                in_flight = self.launch(&mut decider, advance, mode, ids);
            }
            Ok::<(), EngineError>(())
        }
        .await;
        // Whatever happened to the pages after it, the page being committed
        // lands before the poll returns, as if each page had been committed
        // before the next was read: a side failing at page N+1 does not
        // undo (or leave running) the commit of page N.
        let landed = self.land(in_flight.take(), &mut decider).await;
        read?;
        landed?;
        let mut done = self.advance(pair, source, entity);
        done.last_poll_at = Some(started);
        done.last_success_at = Some(Utc::now());
        self.commit(&mut decider, done, mode).await?;
        let stats = &decider.report.stats;
        if stats.read > stats.unchanged {
            tracing::debug!(read = stats.read, planned = stats.planned(), "poll done");
        }
        Ok(decider.report)
    }

    /// Reads the tasks, notes (and appointments) of contacts that changed
    /// on a side without a change feed for them, and notices children gone
    /// from those contacts.
    pub(super) async fn children_of(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        contacts: &[String],
    ) -> Result<(), EngineError> {
        if contacts.is_empty() {
            return Ok(());
        }
        let connector = pair.connector(source);
        for entity in pair.entities() {
            let caps = connector.capabilities().of(entity);
            if entity == EntityKind::Contact || !caps.read || caps.change_feed {
                continue;
            }
            self.read_children(pair, decider, source, entity, contacts)
                .await?;
        }
        Ok(())
    }

    /// Lists the `entity` children of `contacts` on `source`, decides them,
    /// and plans the deletion of linked children no longer there.
    pub(super) async fn read_children(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        entity: EntityKind,
        contacts: &[String],
    ) -> Result<(), EngineError> {
        let connector = pair.connector(source);
        // The links as they are before the listings: a child the writer
        // creates and links meanwhile may not be listed, and is not gone.
        let linked = self
            .store
            .links_by_parent_ids(pair.name(), entity, source, contacts)
            .await?;
        let mut present = HashSet::new();
        let mut listed = HashSet::with_capacity(contacts.len());
        for contact in contacts {
            let page = match connector.children_page(entity, contact).await {
                Ok(page) => page,
                // The contact is gone: its own deletion is found by
                // reconciliation; its children are not "deleted" here.
                Err(error) if error.is_record_error() => {
                    tracing::debug!(contact = %contact, error = %error, "children not listed");
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            // A child that could not be read is still there: never taken
            // for gone. One without an id could be any of the contact's
            // linked children, so none of them is taken for gone.
            let (named, unnamed) = rejected_ids(&page.rejected);
            if unnamed == 0 {
                listed.insert(contact.clone());
            }
            present.extend(named);
            present.extend(page.records.iter().map(|c| c.id.clone()));
            self.set_aside(pair, decider, source, entity, page.rejected)
                .await?;
            decider.records(source, entity, page.records).await?;
        }
        for link in linked {
            let side = link.side(source);
            let gone = side.parent_id.as_ref().is_some_and(|p| listed.contains(p))
                && side.id.as_ref().is_some_and(|id| !present.contains(id));
            if gone {
                // As it is now (the writer may have tombstoned it).
                if let Some(link) = self.store.link_by_id(link.id).await? {
                    decider.deletion(source, &link).await?;
                }
            }
        }
        Ok(())
    }

    /// Hands the records `source` refused to the decider, which
    /// dead-letters each once per record and reason. A refused record
    /// without an id cannot be recognised by id, so it is recognised here
    /// by its reason, which says what the record holds: one that an open
    /// dead letter already names is not dead-lettered again each time a
    /// poll or a reconciliation reads it. (The open dead letters are only
    /// read when such a record is refused: rare, and never per record.)
    pub(super) async fn set_aside(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        entity: EntityKind,
        mut rejected: Vec<ConnectorError>,
    ) -> Result<(), EngineError> {
        if rejected.iter().any(|error| record_id(error).is_none()) {
            let side = source;
            let open: HashSet<String> = self
                .store
                .dead_letters(Some(DeadLetterStatus::Open))
                .await?
                .into_iter()
                .filter(|letter| {
                    letter.pair == pair.name()
                        && letter.side == side
                        && letter.entity == entity
                        && letter.record_id.is_none()
                })
                .map(|letter| letter.reason)
                .collect();
            let mut seen = HashSet::new();
            rejected.retain(|error| {
                record_id(error).is_some() || {
                    let reason = error.to_string();
                    !open.contains(&reason) && seen.insert(reason)
                }
            });
        }
        decider.rejected(source, entity, rejected).await
    }

    pub(super) fn advance(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
    ) -> CursorAdvance {
        CursorAdvance::new(pair.name(), source, entity, STREAM)
    }

    /// Starts committing the page the decider holds, with `advance` (one
    /// transaction), in a task of its own, so the caller can decide the
    /// next page meanwhile; [`land`](Self::land) waits for it. In plan
    /// mode nothing is written.
    fn launch(
        &self,
        decider: &mut Decider<'_>,
        advance: CursorAdvance,
        mode: Mode,
        ids: HashSet<String>,
    ) -> Option<InFlight> {
        let mut changeset = decider.take_page();
        changeset.cursors.push(advance);
        if mode != Mode::Apply {
            decider.page_committed();
            return None;
        }
        let store = self.store.clone();
        let commit = tokio::spawn(
            async move { store.commit(&changeset).await }.instrument(tracing::Span::current()),
        );
        Some(InFlight { ids, commit })
    }

    /// Waits for the commit started by [`launch`](Self::launch), if any.
    async fn land(
        &self,
        in_flight: Option<InFlight>,
        decider: &mut Decider<'_>,
    ) -> Result<(), EngineError> {
        let Some(in_flight) = in_flight else {
            return Ok(());
        };
        let receipt = match in_flight.commit.await {
            Ok(receipt) => receipt?,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => {
                return Err(StoreError::query(
                    "commit",
                    sqlx::Error::Protocol("the commit task was cancelled".into()),
                )
                .into())
            }
        };
        decider.page_committed();
        if !receipt.outbox_new.is_empty() {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Commits what the decider holds, with `advance`: one transaction.
    /// In plan mode nothing is written.
    pub(super) async fn commit(
        &self,
        decider: &mut Decider<'_>,
        advance: CursorAdvance,
        mode: Mode,
    ) -> Result<(), EngineError> {
        let mut changeset: Changeset = decider.take_changeset();
        changeset.cursors.push(advance);
        if mode == Mode::Apply {
            let receipt = self.store.commit(&changeset).await?;
            if !receipt.outbox_new.is_empty() {
                self.wake.notify_one();
            }
        }
        Ok(())
    }
}

/// The id a refused record is named by, if any.
fn record_id(error: &ConnectorError) -> Option<&str> {
    match error {
        ConnectorError::Record { id, .. } => id.as_deref(),
        _ => None,
    }
}

/// The ids of refused records, and how many had none.
pub(super) fn rejected_ids(rejected: &[ConnectorError]) -> (Vec<String>, usize) {
    let named: Vec<String> = rejected
        .iter()
        .filter_map(|error| record_id(error).map(str::to_owned))
        .collect();
    let unnamed = rejected.len() - named.len();
    (named, unnamed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use async_trait::async_trait;
    use chrono::{DateTime, TimeZone, Utc};
    use futures::future::BoxFuture;
    use futures::stream::{self, BoxStream, StreamExt};
    use serde_json::{json, Map, Value};

    use crate::config::{self, LoadOptions};
    use crate::connector::{
        Capabilities, Connector, ConnectorError, Deletion, EntityCaps, Page, Record,
    };
    use crate::domain::{EntityKind, MatchKey, Side};
    use crate::engine::{Engine, Mode, PairRuntime};
    use crate::store::{
        Changeset, LinkUpdate, LinkWrite, PairRegistration, PairSide, SidePatch, Store,
    };

    /// Runs while a match lookup is in flight (what else the daemon does
    /// meanwhile).
    struct Hook(Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>);

    impl std::fmt::Debug for Hook {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Hook")
        }
    }

    /// A side whose change feed is the given pages; nothing else is there.
    #[derive(Debug)]
    struct Feed {
        side: &'static str,
        pages: Vec<Vec<Record>>,
        /// After its pages, the feed fails (the side went away mid-poll).
        then_fail: bool,
        capabilities: Capabilities,
        /// What a match-key lookup finds, and what happens meanwhile.
        found: Option<Record>,
        on_find: Option<Hook>,
    }

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
            updated_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
                + chrono::Duration::milliseconds(ms),
            fields,
        }
    }

    impl Feed {
        fn new(side: &'static str, pages: Vec<Vec<Record>>) -> Self {
            let caps = EntityCaps {
                read: true,
                create: true,
                update: true,
                delete: true,
                change_feed: true,
            };
            Feed {
                side,
                pages,
                then_fail: false,
                found: None,
                on_find: None,
                capabilities: Capabilities {
                    entities: [(EntityKind::Contact, caps)].into(),
                    webhooks: false,
                    match_keys: vec![MatchKey::Email],
                },
            }
        }
    }

    #[async_trait]
    impl Connector for Feed {
        fn side(&self) -> &str {
            self.side
        }
        fn capabilities(&self) -> &Capabilities {
            &self.capabilities
        }
        fn changes(
            &self,
            _: EntityKind,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> BoxStream<'_, Result<Page, ConnectorError>> {
            let failure = self.then_fail.then(|| ConnectorError::Unavailable {
                side: self.side.to_owned(),
                message: "gone mid-poll".to_owned(),
                retry_after: None,
            });
            stream::iter(self.pages.clone())
                .map(|records| Ok(Page::new(records)))
                .chain(stream::iter(failure.map(Err)))
                .boxed()
        }
        fn all_contacts(&self) -> BoxStream<'_, Result<Vec<Record>, ConnectorError>> {
            stream::empty().boxed()
        }
        async fn children(&self, _: EntityKind, _: &str) -> Result<Vec<Record>, ConnectorError> {
            Ok(Vec::new())
        }
        async fn get(
            &self,
            _: EntityKind,
            _: &str,
            _: Option<&str>,
        ) -> Result<Option<Record>, ConnectorError> {
            Ok(None)
        }
        async fn create(
            &self,
            _: EntityKind,
            _: Option<&str>,
            _: &Map<String, Value>,
        ) -> Result<Record, ConnectorError> {
            unreachable!("the test runs no writer")
        }
        async fn update(
            &self,
            _: EntityKind,
            _: &str,
            _: Option<&str>,
            _: &Map<String, Value>,
        ) -> Result<Record, ConnectorError> {
            unreachable!("the test runs no writer")
        }
        async fn delete(
            &self,
            _: EntityKind,
            _: &str,
            _: Option<&str>,
        ) -> Result<Deletion, ConnectorError> {
            unreachable!("the test runs no writer")
        }
        async fn find_contacts(&self, _: MatchKey, _: &str) -> Result<Vec<Record>, ConnectorError> {
            if let Some(hook) = &self.on_find {
                (hook.0)().await;
            }
            Ok(self.found.clone().into_iter().collect())
        }
    }

    /// An engine over a fresh SQLite mirror with the demo pair, its GHL
    /// side `ghl`.
    async fn engine(dir: &std::path::Path, ghl: Feed, app: Feed) -> Engine {
        let mut text = crate::demo::DEMO_CONFIG
            .replace("@GHL_URL@", "http://127.0.0.1:9")
            .replace("@GHL_TOKEN@", "unused")
            .replace("@LOCATION_ID@", "testlocation")
            .replace("@STATE_DIR@", &dir.display().to_string());
        text.push('\n');
        text.push_str(crate::demo::APP_SIM_SIDE);
        let path = dir.join("test.toml");
        std::fs::write(&path, text).unwrap();
        let settings = config::load(&LoadOptions {
            file: Some(path),
            env: Some(Default::default()),
            no_search: true,
        })
        .unwrap()
        .settings;
        let store = Store::connect_and_migrate(&settings.database)
            .await
            .unwrap();
        let pair = settings.pairs["demo"].clone();
        let side = |name: &str, kind: &str| PairSide {
            side: name.into(),
            kind: kind.into(),
            location: None,
        };
        store
            .register_pair(&PairRegistration {
                name: pair.name.clone(),
                a: side("ghl", "ghl"),
                b: side("app", "rest"),
            })
            .await
            .unwrap();
        Engine {
            store,
            pairs: vec![Arc::new(PairRuntime::new(
                pair,
                Arc::new(ghl),
                Arc::new(app),
            ))],
            sync: settings.sync.clone(),
            wake: Arc::default(),
            records_read: Arc::default(),
        }
    }

    /// A record edited between two pages of one poll is decided against
    /// the first page's commit (its link), not as a second new record,
    /// although that commit overlaps the reading of the second page.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_in_two_pages_of_a_poll_is_linked_once() {
        let dir = tempfile::tempdir().unwrap();
        let ghl = Feed::new(
            "ghl",
            vec![
                vec![contact("x", 1), contact("y", 2)],
                vec![contact("x", 3), contact("z", 4)],
            ],
        );
        let engine = engine(dir.path(), ghl, Feed::new("app", Vec::new())).await;
        let pair = engine.pairs[0].clone();
        let report = engine
            .poll(&pair, Side::Ghl, EntityKind::Contact, Mode::Apply)
            .await
            .unwrap();
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
        let ghl = Feed::new("ghl", vec![vec![contact("x", 1)]]);
        let engine = engine(dir.path(), ghl, Feed::new("app", Vec::new())).await;
        let pair = engine.pairs[0].clone();
        engine
            .poll(&pair, Side::Ghl, EntityKind::Contact, Mode::Apply)
            .await
            .unwrap();
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
        let payload: crate::engine::decide::WritePayload =
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
        let mut ghl = Feed::new(
            "ghl",
            vec![
                vec![contact("x", 1), contact("y", 2)],
                vec![contact("z", 3)],
            ],
        );
        ghl.then_fail = true;
        let engine = engine(dir.path(), ghl, Feed::new("app", Vec::new())).await;
        let pair = engine.pairs[0].clone();
        let error = engine
            .poll(&pair, Side::Ghl, EntityKind::Contact, Mode::Apply)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("gone mid-poll"), "{error}");
        let links = engine.store.count_links("demo", EntityKind::Contact);
        assert_eq!(links.await.unwrap(), 3);
        let cursor = engine
            .store
            .load_cursor("demo", crate::domain::Side::Ghl, EntityKind::Contact, "")
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
        let ghl = Feed::new("ghl", vec![vec![ours.clone()]]);
        let recorded = Arc::new(std::sync::OnceLock::<(Store, i64)>::new());
        let mut app = Feed::new("app", vec![vec![theirs.clone()]]);
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
        let pair = engine.pairs[0].clone();

        // The app contact is read first: its create in GHL is planned.
        let report = engine
            .poll(&pair, Side::App, EntityKind::Contact, Mode::Apply)
            .await
            .unwrap();
        assert_eq!(report.stats.planned_creates, 1, "{:?}", report.stats);
        let link = engine
            .store
            .link_by_side_id("demo", EntityKind::Contact, Side::App, "ct")
            .await
            .unwrap()
            .expect("linked");
        assert!(recorded.set((engine.store.clone(), link.id)).is_ok());

        let report = engine
            .poll(&pair, Side::Ghl, EntityKind::Contact, Mode::Apply)
            .await
            .unwrap();
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
}
