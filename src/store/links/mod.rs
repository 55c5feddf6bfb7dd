//! Links: the id of each synced record on both sides plus its base
//! snapshot. The records here; the queries that find links in `read.rs`,
//! and the statements a commit writes them with in `write.rs`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::model::Change;
use crate::domain::{EntityKind, PerSide, Side};

mod read;
mod write;

pub(in crate::store) use write::{insert_links, reserve_link_ids, update_links};

/// A link's state on one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSide {
    /// The record's id there; None while the create on that side is pending.
    pub id: Option<String>,
    /// Owning contact id there, for tasks, notes and appointments.
    pub parent_id: Option<String>,
    /// The side's own `updated_at` for the record when last synced.
    pub updated_at: Option<DateTime<Utc>>,
    /// The [fingerprint](crate::connector::Record::fingerprint) of the
    /// version last taken in, for a record its side gives no change time
    /// (`updated_at` then is when it was read, which tells nothing).
    pub fingerprint: Option<String>,
}

/// The base snapshot: the canonical mapped content both sides last agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Canonical mapped fields (JSON object).
    pub content: Value,
    /// Hex hash of `content`, computed by the engine's canonical encoder; the
    /// store keeps it so echo detection can compare hashes without parsing.
    pub hash: String,
}

/// One synced record: its ids on both sides plus its base snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: i64,
    pub pair: String,
    pub entity: EntityKind,
    pub a: LinkSide,
    pub b: LinkSide,
    pub snapshot: Snapshot,
    /// Tombstone: when the record was deleted (on either side).
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Link {
    /// The link's state on `role`'s side.
    pub fn side(&self, role: Side) -> &LinkSide {
        match role {
            Side::Ghl => &self.a,
            Side::App => &self.b,
        }
    }
}

/// A link to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub pair: String,
    pub entity: EntityKind,
    pub a: LinkSide,
    pub b: LinkSide,
    pub snapshot: Snapshot,
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Changes to one side of an existing link; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SidePatch {
    pub id: Option<String>,
    pub parent_id: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
    pub fingerprint: Option<String>,
}

impl SidePatch {
    fn then(self, later: SidePatch) -> SidePatch {
        SidePatch {
            id: later.id.or(self.id),
            parent_id: later.parent_id.or(self.parent_id),
            updated_at: later.updated_at.or(self.updated_at),
            fingerprint: later.fingerprint.or(self.fingerprint),
        }
    }
}

/// Changes to an existing link. Only what is given is written, so a writer
/// recording side B's new id cannot clobber side A's `updated_at` that a
/// concurrent detection pass stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkUpdate {
    pub id: i64,
    pub a: SidePatch,
    pub b: SidePatch,
    /// New base snapshot, if the sides agreed on new content.
    pub snapshot: Option<Snapshot>,
    /// Tombstone: `Set` when the record was deleted, `Clear` if it came back.
    pub deleted_at: Change<DateTime<Utc>>,
}

impl LinkUpdate {
    /// The patch of `side`'s side of the link.
    pub fn side_mut(&mut self, side: Side) -> &mut SidePatch {
        match side {
            Side::Ghl => &mut self.a,
            Side::App => &mut self.b,
        }
    }

    /// Folds a later update of the same link into this one.
    pub(crate) fn then(self, later: LinkUpdate) -> LinkUpdate {
        LinkUpdate {
            id: self.id,
            a: self.a.then(later.a),
            b: self.b.then(later.b),
            snapshot: later.snapshot.or(self.snapshot),
            deleted_at: self.deleted_at.then(later.deleted_at),
        }
    }
}

/// A write to the links table, part of a [`Changeset`](super::Changeset) or
/// a [`Completion`](super::Completion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkWrite {
    /// Insert a new link. Other rows of the same changeset refer to it as
    /// `LinkRef::New(local_ref)`; the receipt maps `local_ref` to its id.
    Insert { local_ref: u32, link: NewLink },
    /// Update an existing link by id.
    Update(LinkUpdate),
}

/// How a row of a changeset names a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkRef {
    /// A link already in the mirror.
    Existing(i64),
    /// A link inserted by the same changeset (`LinkWrite::Insert::local_ref`).
    New(u32),
}

pub(in crate::store) const LINK_COLUMNS: &str =
    "id, pair, entity, a_id, b_id, a_parent_id, b_parent_id, \
     content, content_hash, a_updated_at, b_updated_at, a_fingerprint, b_fingerprint, deleted_at, \
     created_at, updated_at";

/// A `links` row as stored (flat), turned into a [`Link`].
#[derive(sqlx::FromRow)]
pub(in crate::store) struct LinkRow {
    id: i64,
    pair: String,
    entity: EntityKind,
    a_id: Option<String>,
    b_id: Option<String>,
    a_parent_id: Option<String>,
    b_parent_id: Option<String>,
    #[sqlx(json)]
    content: Value,
    content_hash: String,
    a_updated_at: Option<DateTime<Utc>>,
    b_updated_at: Option<DateTime<Utc>>,
    a_fingerprint: Option<String>,
    b_fingerprint: Option<String>,
    deleted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<LinkRow> for Link {
    fn from(r: LinkRow) -> Link {
        Link {
            id: r.id,
            pair: r.pair,
            entity: r.entity,
            a: LinkSide {
                id: r.a_id,
                parent_id: r.a_parent_id,
                updated_at: r.a_updated_at,
                fingerprint: r.a_fingerprint,
            },
            b: LinkSide {
                id: r.b_id,
                parent_id: r.b_parent_id,
                updated_at: r.b_updated_at,
                fingerprint: r.b_fingerprint,
            },
            snapshot: Snapshot {
                content: r.content,
                hash: r.content_hash,
            },
            deleted_at: r.deleted_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The column of a record's id, per side.
const ID_COLUMN: PerSide<&str> = PerSide::new("a_id", "b_id");

/// The column of the owning contact's id, per side.
const PARENT_ID_COLUMN: PerSide<&str> = PerSide::new("a_parent_id", "b_parent_id");
