//! The systems on either side of a pair. Each connector speaks its side's
//! API; the engine sees every side through the one [`Connector`] trait and
//! never knows which system is behind it, except through the capabilities
//! the connector declares.

pub mod ghl;
pub mod http;
pub mod rest;

mod record;
mod secret;
mod webhook;

pub use record::{Capabilities, ConnectorError, Deletion, EntityCaps, Page, Patch, Record, Stamp};
pub use secret::{Secret, SecretSource};
pub use webhook::{WebhookError, WebhookEvent};

use crate::domain::{EntityKind, MatchKey};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde_json::{Map, Value};

/// One side of a sync pair, whatever system is behind it.
///
/// Records carry their native JSON (field names as the side spells them,
/// unknown fields kept), their id, their owning contact for tasks, notes
/// and appointments, and their `updated_at`. Mapping to canonical fields is
/// the engine's job, not the connector's.
#[async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The configured name of this side (`[sides.<name>]`), for errors and
    /// logs.
    fn side(&self) -> &str;

    /// What this side can do. The engine never asks for more.
    fn capabilities(&self) -> &Capabilities;

    /// What is left of this side's request budget (burst window and day),
    /// as its limiter last saw it; `None` for a side without a budget to
    /// report. The daemon stores it for `ghlsync status`, which runs in
    /// another process and cannot ask the limiter itself.
    fn budget(&self) -> Option<ghl::Headroom> {
        None
    }

    /// The limiter pacing this side's budget, for a side that has one: the
    /// daemon carries an earlier run's count of the day over into it.
    fn limiter(&self) -> Option<std::sync::Arc<ghl::RateLimiter>> {
        None
    }

    /// Records of `entity` updated in `[since, until]`, oldest first, page
    /// by page. Each page's watermark is the newest `updated_at` it holds,
    /// so a caller can persist progress page by page. Only for entities
    /// whose capabilities have `change_feed`; the others are found through
    /// [`Connector::children`] of changed contacts and reconciliation.
    fn changes(
        &self,
        entity: EntityKind,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> BoxStream<'_, Result<Page, ConnectorError>>;

    /// Every contact, page by page, for full reconciliation.
    fn all_contacts(&self) -> BoxStream<'_, Result<Vec<Record>, ConnectorError>>;

    /// The tasks, notes or appointments of one contact.
    async fn children(
        &self,
        entity: EntityKind,
        contact_id: &str,
    ) -> Result<Vec<Record>, ConnectorError>;

    /// [`Connector::all_contacts`] with the records the side sent but that
    /// could not be read set aside in each page's [`Page::rejected`],
    /// which the engine dead-letters (and counts as present: a record
    /// that cannot be read is not a deleted one). The default sets
    /// nothing aside; a connector that reads record by record overrides
    /// it. Reconciliation reads this one.
    fn contact_pages(&self) -> BoxStream<'_, Result<Page, ConnectorError>> {
        use futures::StreamExt;
        self.all_contacts().map(|page| page.map(Page::new)).boxed()
    }

    /// Whether [`Connector::contact_pages`] reads an index that may lag
    /// writes (GHL's search: a contact written a moment ago, created or
    /// edited, may be missing from it for a few seconds). Reconciliation
    /// then reads a contact missing from the listing by its id before it
    /// takes it for deleted. The default: a listing shows what is there.
    fn listing_lags(&self) -> bool {
        false
    }

    /// [`Connector::children`] with the records that could not be read set
    /// aside in [`Page::rejected`], as [`Connector::contact_pages`] does;
    /// the engine reads this one.
    async fn children_page(
        &self,
        entity: EntityKind,
        contact_id: &str,
    ) -> Result<Page, ConnectorError> {
        self.children(entity, contact_id).await.map(Page::new)
    }

    /// The `entity` children of every contact of `contacts` in a few
    /// requests, where the side has a listing for that (GHL's
    /// location-wide task search): one page, each record naming its
    /// contact in `parent_id`. `None` (the default): no such listing for
    /// `entity` here; the caller reads each contact's children with
    /// [`Connector::children_page`]. Such a listing is not taken as the
    /// last word on a child it misses: the caller reads that contact's
    /// children on their own before it takes one for deleted.
    async fn children_of_many(
        &self,
        _entity: EntityKind,
        _contacts: &[String],
    ) -> Option<Result<Page, ConnectorError>> {
        None
    }

    /// One record, or `None` when it does not exist (any more).
    async fn get(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Option<Record>, ConnectorError>;

    /// Creates a record from native fields; `parent_id` is the owning
    /// contact for sub-resources. Never creates a duplicate when retried.
    async fn create(
        &self,
        entity: EntityKind,
        parent_id: Option<&str>,
        fields: &Map<String, Value>,
    ) -> Result<Record, ConnectorError>;

    /// Changes only the fields in `patch.fields` (a JSON `null` clears
    /// one) and returns the record as the side now holds it. A side that
    /// changes a list by deltas computes them against `patch.before`, the
    /// target's values as the write's decision saw them, never by sending
    /// the whole list (see [`Patch`]); other sides ignore `before`.
    async fn update(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
        patch: &Patch,
    ) -> Result<Record, ConnectorError>;

    /// Adds the tags of `tags` (the native form of canonical `tags` as the
    /// pair's map spells it, e.g. `{"tags": ["lost"]}`) to contact `id`,
    /// keeping its other tags, without reading it, where the side has a
    /// call for that: GHL's `POST /contacts/{id}/tags`, one request. The
    /// delete policy `tag` uses it. `None`: the side has no such call, or
    /// `tags` is not in the form it takes (the default); the caller then
    /// reads the record and writes its whole list with
    /// [`Connector::update`].
    async fn add_tags(
        &self,
        _entity: EntityKind,
        _id: &str,
        _tags: &Map<String, Value>,
    ) -> Option<Result<(), ConnectorError>> {
        None
    }

    async fn delete(
        &self,
        entity: EntityKind,
        id: &str,
        parent_id: Option<&str>,
    ) -> Result<Deletion, ConnectorError>;

    /// The contacts this side offers as holding `key` = `value`: how a new
    /// record is linked to an existing one instead of being created twice.
    /// These are candidates, not answers: an app may ignore the filter and
    /// answer with everyone, a phone may be shared by a family. The engine
    /// takes one only after checking it (`engine::matching`).
    async fn find_contacts(
        &self,
        key: MatchKey,
        value: &str,
    ) -> Result<Vec<Record>, ConnectorError>;

    /// The GHL location this side is, for logs and metrics; `None` for
    /// other systems.
    fn location(&self) -> Option<&str> {
        None
    }

    /// Verifies a webhook addressed to this side (`/webhooks/app/<side>`)
    /// over its raw body and names the record it is about. `None`: the
    /// side has no webhooks of its own (GHL deliveries are verified with
    /// GHL's keys by the server).
    fn verify_webhook(
        &self,
        _headers: &reqwest::header::HeaderMap,
        _body: &[u8],
        _now: DateTime<Utc>,
    ) -> Option<Result<WebhookEvent, WebhookError>> {
        None
    }
}
