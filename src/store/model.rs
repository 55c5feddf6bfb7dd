//! The records of the mirror and the values the engine hands to the store.
//!
//! Enumerations are stored as short lowercase TEXT (guarded by CHECK
//! constraints in the schema), declared with `domain::text_enum!`.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::domain::{text_enum, EntityKind, Side};

text_enum! {
    /// Which way a change flows.
    pub enum Direction as "direction" {
        AToB => "a_to_b",
        BToA => "b_to_a",
    }
}

impl Direction {
    /// The direction of a write that lands on `target`.
    pub fn towards(target: Side) -> Direction {
        match target {
            Side::Ghl => Direction::BToA,
            Side::App => Direction::AToB,
        }
    }
}

text_enum! {
    /// The write an outbox item performs on its target side.
    pub enum OutboxOp as "outbox operation" {
        Create => "create",
        Update => "update",
        Delete => "delete",
        Complete => "complete",
        AddTags => "add_tags",
        RemoveTags => "remove_tags",
    }
}

text_enum! {
    /// Lifecycle of an outbox item.
    pub enum OutboxStatus as "outbox status" {
        /// Waiting for (or being worked on by) a writer.
        Pending => "pending",
        /// Applied on the target side.
        Done => "done",
        /// Failed for good; a dead letter holds the reason.
        Dead => "dead",
        /// Superseded or withdrawn before it was applied.
        Cancelled => "cancelled",
    }
}

text_enum! {
    /// What happened to a record, as recorded in the journal.
    pub enum JournalAction as "journal action" {
        Seen => "seen",
        Planned => "planned",
        Applied => "applied",
        SkippedEcho => "skipped_echo",
        Filtered => "filtered",
        ConflictOpened => "conflict_opened",
        ConflictResolved => "conflict_resolved",
        DeadLettered => "dead_lettered",
        FailedAttempt => "failed_attempt",
    }
}

text_enum! {
    /// Operator-facing state of a dead letter.
    pub enum DeadLetterStatus as "dead letter status" {
        Open => "open",
        Retried => "retried",
        Dropped => "dropped",
    }
}

text_enum! {
    /// Where in the data path a dead-lettered record failed.
    pub enum DeadLetterStage as "dead letter stage" {
        Read => "read",
        Map => "map",
        Write => "write",
    }
}

text_enum! {
    /// State of a field conflict.
    pub enum ConflictStatus as "conflict status" {
        Open => "open",
        Resolved => "resolved",
    }
}

/// A change to a nullable column: keep it, set it, or clear it to NULL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Change<T> {
    /// Leave the stored value as it is.
    #[default]
    Keep,
    /// Store this value.
    Set(T),
    /// Store NULL.
    Clear,
}

impl<T> Change<T> {
    /// 0 = keep, 1 = set, 2 = clear: the flag bound next to the value in
    /// statements that apply a change.
    pub(crate) fn flag(&self) -> i64 {
        match self {
            Change::Keep => 0,
            Change::Set(_) => 1,
            Change::Clear => 2,
        }
    }

    /// The value to bind (NULL unless `Set`).
    pub(crate) fn value(&self) -> Option<&T> {
        match self {
            Change::Set(v) => Some(v),
            _ => None,
        }
    }

    /// Folds a later change into this one (later `Set`/`Clear` win).
    pub(crate) fn then(self, later: Change<T>) -> Change<T> {
        match later {
            Change::Keep => self,
            other => other,
        }
    }
}

// ----------------------------------------------------------------- pairs --

/// One side of a pair as configured: recorded so that a pair is never
/// silently re-pointed at another location under its existing links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSide {
    /// The configured side name (e.g. `ghl_main`).
    pub side: String,
    /// The connector kind (e.g. `ghl`, `rest`).
    pub kind: String,
    /// The GHL location id (None for sides without one).
    pub location: Option<String>,
}

/// What the engine registers for each configured pair at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRegistration {
    pub name: String,
    pub a: PairSide,
    pub b: PairSide,
}

/// A registered pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub name: String,
    pub a: PairSide,
    pub b: PairSide,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

// ----------------------------------------------------------------- links --

/// A link's state on one side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSide {
    /// The record's id there; None while the create on that side is pending.
    pub id: Option<String>,
    /// Owning contact id there, for tasks, notes and appointments.
    pub parent_id: Option<String>,
    /// The side's own `updated_at` for the record when last synced.
    pub updated_at: Option<DateTime<Utc>>,
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
}

impl SidePatch {
    fn then(self, later: SidePatch) -> SidePatch {
        SidePatch {
            id: later.id.or(self.id),
            parent_id: later.parent_id.or(self.parent_id),
            updated_at: later.updated_at.or(self.updated_at),
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

// ---------------------------------------------------------------- cursors --

/// Where change detection stands for one (pair, side, entity, stream).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cursor {
    pub pair: String,
    pub side: Side,
    pub entity: EntityKind,
    /// Distinguishes several feeds of one entity, e.g. `search` vs
    /// `business:<id>`; empty for the default feed.
    pub stream: String,
    /// Newest `updated_at` durably processed (the next poll starts here,
    /// minus the overlap).
    pub watermark: Option<DateTime<Utc>>,
    /// Opaque pagination position (e.g. GHL `searchAfter`) of an unfinished pass.
    pub cursor: Option<String>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Moves a cursor; the row is created if missing. `None` / `Change::Keep`
/// leave the stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorAdvance {
    pub pair: String,
    pub side: Side,
    pub entity: EntityKind,
    pub stream: String,
    pub watermark: Change<DateTime<Utc>>,
    pub cursor: Change<String>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_full_sync_at: Option<DateTime<Utc>>,
}

impl CursorAdvance {
    /// An advance that changes nothing yet; set the fields to move.
    pub fn new(pair: &str, side: Side, entity: EntityKind, stream: &str) -> Self {
        CursorAdvance {
            pair: pair.to_owned(),
            side,
            entity,
            stream: stream.to_owned(),
            watermark: Change::Keep,
            cursor: Change::Keep,
            last_poll_at: None,
            last_success_at: None,
            last_full_sync_at: None,
        }
    }

    pub(crate) fn key(&self) -> (&str, Side, EntityKind, &str) {
        (&self.pair, self.side, self.entity, &self.stream)
    }

    pub(crate) fn then(self, later: CursorAdvance) -> CursorAdvance {
        CursorAdvance {
            watermark: self.watermark.then(later.watermark),
            cursor: self.cursor.then(later.cursor),
            last_poll_at: later.last_poll_at.or(self.last_poll_at),
            last_success_at: later.last_success_at.or(self.last_success_at),
            last_full_sync_at: later.last_full_sync_at.or(self.last_full_sync_at),
            ..self
        }
    }
}

// ----------------------------------------------------------------- outbox --

/// A write's payload as JSON text: serialised once where it is planned and
/// stored verbatim, instead of built as a `Value` tree per record, encoded
/// again by the commit and then freed (a tenth of a backfill's CPU).
#[derive(Debug, Clone)]
pub struct PayloadJson(Box<serde_json::value::RawValue>);

impl PayloadJson {
    /// Serialises `value`; fails only for types serde_json cannot encode
    /// (maps with non-string keys).
    pub fn of<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(PayloadJson)
    }

    pub(crate) fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }
}

impl PartialEq for PayloadJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for PayloadJson {}

impl From<Value> for PayloadJson {
    fn from(value: Value) -> Self {
        PayloadJson::of(&value).expect("a JSON value serialises")
    }
}

/// A write to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxItem {
    /// Derived by the engine from the change (e.g. pair, link, op, content
    /// hash) so that re-detecting the same change enqueues nothing new.
    pub idempotency_key: String,
    pub pair: String,
    pub target_side: Side,
    pub entity: EntityKind,
    pub op: OutboxOp,
    pub link: Option<LinkRef>,
    /// The record's id on the target side (None for a create).
    pub target_id: Option<String>,
    /// The owning contact's id on the target side (tasks, notes, ...).
    pub parent_id: Option<String>,
    pub payload: PayloadJson,
    /// Earliest time a writer may take it; None = now.
    pub not_before: Option<DateTime<Utc>>,
}

/// A queued write.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxItem {
    pub id: i64,
    pub idempotency_key: String,
    pub pair: String,
    pub target_side: Side,
    pub entity: EntityKind,
    pub op: OutboxOp,
    pub link_id: Option<i64>,
    pub target_id: Option<String>,
    pub parent_id: Option<String>,
    #[sqlx(json)]
    pub payload: Value,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    /// Lease of the writer working on it; expired leases are claimable again.
    pub locked_until: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Outbox rows by status, for health output and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OutboxDepth {
    pub pending: i64,
    /// Pending rows currently leased by a writer (a subset of `pending`).
    pub in_flight: i64,
    pub done: i64,
    pub dead: i64,
    pub cancelled: i64,
}

/// What `fail_outbox` did with the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Still pending; a writer may take it again at `next_attempt_at`.
    Retrying {
        attempts: i32,
        next_attempt_at: DateTime<Utc>,
    },
    /// Marked dead; the dead letter holds the reason and payload.
    Dead { attempts: i32, dead_letter_id: i64 },
}

// ---------------------------------------------------------------- journal --

/// How a journal row names an outbox item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutboxRef {
    Id(i64),
    /// By idempotency key: an item of the same changeset (new or duplicate)
    /// or already in the outbox.
    Key(String),
}

/// A journal row to write; the store stamps `at` with the commit time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJournalEntry {
    pub pair: String,
    pub entity: EntityKind,
    pub link: Option<LinkRef>,
    pub direction: Option<Direction>,
    pub a_id: Option<String>,
    pub b_id: Option<String>,
    pub action: JournalAction,
    /// Canonical names of the fields concerned (may be empty).
    pub fields: Vec<String>,
    pub outbox: Option<OutboxRef>,
    pub detail: Option<String>,
}

impl NewJournalEntry {
    /// A row with only the required parts; set the rest as needed.
    pub fn new(pair: &str, entity: EntityKind, action: JournalAction) -> Self {
        NewJournalEntry {
            pair: pair.to_owned(),
            entity,
            link: None,
            direction: None,
            a_id: None,
            b_id: None,
            action,
            fields: Vec::new(),
            outbox: None,
            detail: None,
        }
    }
}

/// A row of the audit history.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JournalEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub pair: String,
    pub entity: EntityKind,
    pub link_id: Option<i64>,
    pub direction: Option<Direction>,
    pub a_id: Option<String>,
    pub b_id: Option<String>,
    pub action: JournalAction,
    #[sqlx(json)]
    pub fields: Vec<String>,
    pub outbox_id: Option<i64>,
    pub detail: Option<String>,
}

// -------------------------------------------------------------- conflicts --

/// A field edited on both sides that policy parked for an operator. If an
/// open conflict exists for (link, field), its values are updated instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConflict {
    pub pair: String,
    pub entity: EntityKind,
    pub link: LinkRef,
    pub field: String,
    pub base_value: Option<Value>,
    pub a_value: Option<Value>,
    pub b_value: Option<Value>,
}

/// A parked field conflict.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Conflict {
    pub id: i64,
    pub pair: String,
    pub entity: EntityKind,
    pub link_id: i64,
    pub field: String,
    #[sqlx(json(nullable))]
    pub base_value: Option<Value>,
    #[sqlx(json(nullable))]
    pub a_value: Option<Value>,
    #[sqlx(json(nullable))]
    pub b_value: Option<Value>,
    pub status: ConflictStatus,
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

// ----------------------------------------------------------- dead letters --

/// A record or write that failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub pair: String,
    /// The side whose record (read, map) or write failed.
    pub side: Side,
    pub entity: EntityKind,
    pub record_id: Option<String>,
    pub outbox_id: Option<i64>,
    pub stage: DeadLetterStage,
    pub reason: String,
    pub payload: Option<Value>,
}

/// A dead-lettered record or write.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub pair: String,
    pub side: Side,
    pub entity: EntityKind,
    pub record_id: Option<String>,
    pub outbox_id: Option<i64>,
    pub stage: DeadLetterStage,
    pub reason: String,
    #[sqlx(json(nullable))]
    pub payload: Option<Value>,
    pub status: DeadLetterStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
