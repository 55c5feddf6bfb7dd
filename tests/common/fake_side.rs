//! A side held in memory, for running the engine without a network: its
//! change feed is whatever a [`Feed`] holds (fixed pages for a test, a
//! generator for a benchmark), and an engine of the demo pair over two
//! such sides, its mirror fresh.
//!
//! Use with `#[path = "common/fake_side.rs"] mod fake_side;` (from a
//! benchmark, `#[path = "../tests/common/fake_side.rs"]`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use ghl_sync::config::{self, LoadOptions};
use ghl_sync::connector::{
    Capabilities, Connector, ConnectorError, Deletion, EntityCaps, Page, Patch, Record, Stamp,
};
use ghl_sync::domain::{EntityKind, MatchKey, Side};
use ghl_sync::engine::{Engine, EngineError, Mode, PairReport, PairRuntime};
use ghl_sync::store::{PairRegistration, PairSide, Store};
use serde_json::{Map, Value};

/// When the fake contacts were updated: `base() + n ms`.
pub fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// What a fake side's change feed holds.
pub trait Feed: std::fmt::Debug + Send + Sync {
    /// The pages of contacts changed between `since` and `until`.
    fn pages(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> BoxStream<'_, Vec<Record>>;

    /// The contact `id`, if the side has it.
    fn get(&self, _id: &str) -> Option<Record> {
        None
    }
}

/// Fixed pages, whatever the window asked for; nothing else is there.
impl Feed for Vec<Vec<Record>> {
    fn pages(&self, _: DateTime<Utc>, _: DateTime<Utc>) -> BoxStream<'_, Vec<Record>> {
        stream::iter(self.clone()).boxed()
    }
}

/// Runs while a match lookup is in flight (what else the daemon does
/// meanwhile).
pub struct Hook(pub Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// A side of contacts only, with a change feed and the email match key,
/// whose feed is `feed`. Writes succeed and echo what was written.
#[derive(Debug)]
pub struct FakeSide<F: Feed = Vec<Vec<Record>>> {
    side: &'static str,
    pub feed: F,
    /// After its pages, the feed fails (the side went away mid-poll).
    pub then_fail: bool,
    capabilities: Capabilities,
    /// What a match-key lookup finds, and what happens meanwhile.
    pub found: Option<Record>,
    pub on_find: Option<Hook>,
    created: AtomicUsize,
}

impl<F: Feed> FakeSide<F> {
    pub fn new(side: &'static str, feed: F) -> Self {
        let caps = EntityCaps {
            read: true,
            create: true,
            update: true,
            delete: true,
            change_feed: true,
        };
        FakeSide {
            side,
            feed,
            then_fail: false,
            found: None,
            on_find: None,
            capabilities: Capabilities {
                entities: [(EntityKind::Contact, caps)].into(),
                webhooks: false,
                match_keys: vec![MatchKey::Email],
            },
            created: AtomicUsize::new(0),
        }
    }
}

/// A record `entity` `id` of `fields`, updated now.
fn written(entity: EntityKind, id: String, fields: &Map<String, Value>) -> Record {
    Record {
        entity,
        id,
        parent_id: None,
        updated_at: Utc::now(),
        stamp: Stamp::Side,
        fields: fields.clone(),
    }
}

#[async_trait]
impl<F: Feed> Connector for FakeSide<F> {
    fn side(&self) -> &str {
        self.side
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn changes(
        &self,
        _: EntityKind,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxStream<'_, Result<Page, ConnectorError>> {
        let failure = self.then_fail.then(|| ConnectorError::Unavailable {
            side: self.side.to_owned(),
            message: "gone mid-poll".to_owned(),
            retry_after: None,
        });
        self.feed
            .pages(since, until)
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
        id: &str,
        _: Option<&str>,
    ) -> Result<Option<Record>, ConnectorError> {
        Ok(self.feed.get(id))
    }

    async fn create(
        &self,
        entity: EntityKind,
        _: Option<&str>,
        fields: &Map<String, Value>,
    ) -> Result<Record, ConnectorError> {
        let n = self.created.fetch_add(1, Ordering::Relaxed);
        Ok(written(entity, format!("new{n}"), fields))
    }

    async fn update(
        &self,
        entity: EntityKind,
        id: &str,
        _: Option<&str>,
        patch: &Patch,
    ) -> Result<Record, ConnectorError> {
        Ok(written(entity, id.to_owned(), &patch.fields))
    }

    async fn delete(
        &self,
        _: EntityKind,
        _: &str,
        _: Option<&str>,
    ) -> Result<Deletion, ConnectorError> {
        Ok(Deletion::Deleted)
    }

    async fn find_contacts(&self, _: MatchKey, _: &str) -> Result<Vec<Record>, ConnectorError> {
        if let Some(hook) = &self.on_find {
            (hook.0)().await;
        }
        Ok(self.found.clone().into_iter().collect())
    }
}

/// The demo's pair (contacts, tasks, notes), its sides never contacted,
/// its mirror in `dir` or, given, at `database`.
pub fn demo_settings(dir: &std::path::Path, database: Option<&str>) -> config::Settings {
    let mut text = ghl_sync::demo::DEMO_CONFIG
        .replace("@GHL_URL@", "http://127.0.0.1:9")
        .replace("@GHL_TOKEN@", "unused")
        .replace("@LOCATION_ID@", "fakelocation")
        .replace("@STATE_DIR@", &dir.display().to_string());
    text.push('\n');
    text.push_str(ghl_sync::demo::APP_SIM_SIDE);
    if let Some(url) = database {
        text = text.replace("[log]", &format!("[database]\nurl = \"{url}\"\n\n[log]"));
    }
    let path = dir.join("fake.toml");
    std::fs::write(&path, text).unwrap();
    config::load(&LoadOptions {
        file: Some(path),
        env: Some(Default::default()),
        no_search: true,
    })
    .expect("the demo configuration loads")
    .settings
}

/// An engine of the demo pair of `settings` over `ghl` and `app`, its
/// mirror migrated and the pair registered.
pub async fn demo_engine(
    settings: &config::Settings,
    ghl: Arc<dyn Connector>,
    app: Arc<dyn Connector>,
) -> Engine {
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
        pairs: vec![Arc::new(PairRuntime::new(pair, ghl, app))],
        sync: settings.sync.clone(),
        wake: Arc::default(),
        records_read: Arc::default(),
    }
}

/// One poll, applied, of the contacts `source` changed, on the engine's
/// (first) pair.
pub async fn poll_contacts(engine: &Engine, source: Side) -> Result<PairReport, EngineError> {
    let pair = engine.pairs[0].clone();
    engine
        .poll(&pair, source, EntityKind::Contact, Mode::Apply)
        .await
}
