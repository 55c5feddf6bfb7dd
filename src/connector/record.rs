//! What crosses the [`super::Connector`] boundary: records, pages,
//! capabilities and errors.

use crate::domain::{EntityKind, MatchKey};
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// A record as one side holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub entity: EntityKind,
    pub id: String,
    /// The owning contact of a task, note or appointment.
    pub parent_id: Option<String>,
    /// When the record last changed: the side's own time, or, for a record
    /// the side keeps no change time for, when it was read (see [`Stamp`]).
    pub updated_at: DateTime<Utc>,
    /// Where `updated_at` comes from.
    pub stamp: Stamp,
    /// The native JSON object, every field kept.
    pub fields: Map<String, Value>,
}

/// Where a record's `updated_at` comes from.
///
/// GHL's official `TaskSchema` has no `dateAdded` or `dateUpdated`, and
/// `NoteSchema` only `dateAdded` (`spec/ghl-api/apps/contacts.json`): such
/// records carry no change time, so a version of one can only be told
/// from another by what it holds. The engine does exactly that for
/// [`Stamp::ReadAt`] records: it keeps the [`Record::fingerprint`] of the
/// version it took in and decides a record again only when its content
/// differs from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Stamp {
    /// `updated_at` is the side's own last-change time.
    #[default]
    Side,
    /// The side gives this record no change time: `updated_at` is when it
    /// was read, the latest moment its current content can have been
    /// written. Where the `newest` policy weighs it against the other
    /// side's time, a change counts as made when it was read, so an edit
    /// on the other side wins only if it is later than our read.
    ReadAt,
}

impl Record {
    /// A short, stable digest of the record's native fields: what tells
    /// two versions of a record without a change time apart.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let text = serde_json::to_string(&self.fields).unwrap_or_default();
        hex::encode(&Sha256::digest(text.as_bytes())[..12])
    }
}

/// One page of a change stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub records: Vec<Record>,
    /// The newest `updated_at` of the page: where the next poll may start
    /// once this page is durably recorded. `None` for an empty page.
    pub watermark: Option<DateTime<Utc>>,
    /// Records of this page the connector refused (no id, no or a
    /// malformed `updated_at`, a field of the wrong type, …), each a
    /// [`ConnectorError::Record`] naming the side and record: the engine
    /// dead-letters them, in the commit that moves the watermark, and goes
    /// on with `records`. A connector may move `watermark` past the ones
    /// whose `updated_at` it could still read (the GHL connector does), so
    /// a page of nothing but refused records does not hold the feed back.
    pub rejected: Vec<ConnectorError>,
}

impl Page {
    pub fn new(records: Vec<Record>) -> Self {
        Self::with_rejected(records, Vec::new())
    }

    /// A page with the records refused on it.
    pub fn with_rejected(records: Vec<Record>, rejected: Vec<ConnectorError>) -> Self {
        // A read time is no position in a change feed.
        let watermark = records
            .iter()
            .filter(|r| r.stamp == Stamp::Side)
            .map(|r| r.updated_at)
            .max();
        Self {
            records,
            watermark,
            rejected,
        }
    }
}

/// What [`super::Connector::update`] changes, and what the target held
/// before.
///
/// `fields` are the native fields to set (a JSON `null` clears one).
/// `before` holds the target's values of those fields as the decision
/// that planned the write saw them (native, spelled as in `fields`), which
/// the writer checked the target still held just before the call
/// (`engine::writer::edited_since`). A field absent from `before` is
/// unknown, not empty: a write planned without a view of the target (a
/// create completed on a record found for it) has an empty `before`.
///
/// A side whose API changes a list by deltas writes the difference between
/// `before` and `fields` instead of the whole list, so that an element
/// added there after the writer's read is kept. GHL does so for a
/// contact's `tags` (GHL field notes, "Tags": sending `tags` in a contact
/// write replaces the whole list): it adds what `fields` has and `before`
/// lacks, removes what `before` has and `fields` lacks, and never removes
/// an element `before` does not hold, so with `tags` unknown it only adds.
/// Other sides (the REST connector) ignore `before`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    pub fields: Map<String, Value>,
    pub before: Map<String, Value>,
}

impl Patch {
    /// A patch whose target values are unknown (`before` empty).
    pub fn new(fields: Map<String, Value>) -> Self {
        Patch {
            fields,
            before: Map::new(),
        }
    }
}

impl From<Map<String, Value>> for Patch {
    fn from(fields: Map<String, Value>) -> Self {
        Patch::new(fields)
    }
}

/// What a delete found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Already gone: deleted elsewhere, or by an attempt whose answer was
    /// lost.
    AlreadyGone,
}

/// What a side can do with one kind of record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntityCaps {
    pub read: bool,
    pub create: bool,
    pub update: bool,
    pub delete: bool,
    /// Changes can be listed by `updated_at` without walking contacts.
    pub change_feed: bool,
}

impl EntityCaps {
    pub const READ_ONLY: EntityCaps = EntityCaps {
        read: true,
        create: false,
        update: false,
        delete: false,
        change_feed: false,
    };

    pub fn writable(self) -> bool {
        self.create || self.update || self.delete
    }
}

/// What a side can do, declared by its connector and respected by the
/// engine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub entities: BTreeMap<EntityKind, EntityCaps>,
    /// The side can push change notifications (webhooks).
    pub webhooks: bool,
    /// Fields `find_contacts` can search by.
    pub match_keys: Vec<MatchKey>,
}

impl Capabilities {
    /// The capabilities of `entity` (nothing, when the side lacks it).
    pub fn of(&self, entity: EntityKind) -> EntityCaps {
        self.entities.get(&entity).copied().unwrap_or_default()
    }

    /// The same capabilities with every write removed: a side whose
    /// credentials only read.
    pub fn read_only(mut self) -> Self {
        for caps in self.entities.values_mut() {
            caps.create = false;
            caps.update = false;
            caps.delete = false;
        }
        self
    }
}

/// Why a connector call failed, classified by what the engine should do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    /// This record is the problem (rejected, malformed, gone): dead-letter
    /// it and go on with the others.
    #[error("side `{side}`, {entity} {}: {message}", id.as_deref().unwrap_or("(new record)"))]
    Record {
        side: String,
        entity: EntityKind,
        id: Option<String>,
        message: String,
    },
    /// The side refused to create (or re-key) the record because another
    /// of its records already holds one of its match keys: GHL's "This
    /// location does not allow duplicated contacts", an app's 409. That
    /// record may be the one we meant (an earlier attempt's create whose
    /// answer was lost) or another person sharing a phone number: the
    /// engine looks it up and verifies it before anything is written
    /// (`engine::matching`), never the connector.
    #[error("side `{side}` refused the {entity} as a duplicate{}: {message}", existing_id.as_ref().map(|id| format!(" of {id}")).unwrap_or_default())]
    Duplicate {
        side: String,
        entity: EntityKind,
        /// The existing record, when the answer names it.
        existing_id: Option<String>,
        message: String,
    },
    /// The side cannot do this at all (capability, scope): a configuration
    /// matter, nothing was sent.
    #[error("side `{side}` cannot {operation} {entity}: {reason}")]
    Unsupported {
        side: String,
        entity: EntityKind,
        operation: &'static str,
        reason: String,
    },
    /// The side is unreachable or refusing for now (outage, budget):
    /// retry later; no record is at fault.
    #[error("side `{side}` is unavailable: {message}")]
    Unavailable {
        side: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Credentials are missing, invalid or revoked: the operator must act.
    #[error("side `{side}` refused our credentials: {message}")]
    Auth { side: String, message: String },
}

impl ConnectorError {
    pub fn side(&self) -> &str {
        match self {
            ConnectorError::Record { side, .. }
            | ConnectorError::Duplicate { side, .. }
            | ConnectorError::Unsupported { side, .. }
            | ConnectorError::Unavailable { side, .. }
            | ConnectorError::Auth { side, .. } => side,
        }
    }

    pub fn is_record_error(&self) -> bool {
        matches!(
            self,
            ConnectorError::Record { .. } | ConnectorError::Duplicate { .. }
        )
    }
}
