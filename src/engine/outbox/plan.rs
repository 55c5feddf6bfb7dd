//! How a planned write enters a changeset: the outbox item the writer
//! takes, and the `planned` journal row that announces it (history pairs
//! that row with the write's `applied` row by its key). Decisions,
//! deletions and conflict resolutions all plan through here, so the two
//! rows always agree.

use super::WritePayload;
use crate::domain::{EntityKind, Side};
use crate::store::{
    Changeset, Direction, JournalAction, LinkRef, NewJournalEntry, NewOutboxItem, OutboxOp,
    OutboxRef, PayloadJson,
};

/// A write to plan on the `target` side of a link.
pub(in crate::engine) struct OutboxWrite<'a> {
    pub pair: &'a str,
    pub entity: EntityKind,
    pub link: LinkRef,
    pub target: Side,
    pub op: OutboxOp,
    /// Its idempotency key (see `keys`).
    pub key: String,
    /// The record's id on the target side (`None` for a create, or while
    /// the record's create there is pending).
    pub target_id: Option<String>,
    /// The record the write comes from, journaled as the id on the side
    /// opposite the target.
    pub source_id: Option<String>,
    /// The owning contact's id on the target side (tasks, notes).
    pub parent_id: Option<String>,
    pub payload: &'a WritePayload,
    /// Why, when the operation alone does not say: the journal row's
    /// detail then reads `op (note)`.
    pub note: Option<String>,
}

impl OutboxWrite<'_> {
    /// Adds the outbox item and its `planned` journal row to `changeset`.
    pub fn add_to(self, changeset: &mut Changeset) {
        let mut planned = NewJournalEntry::new(self.pair, self.entity, JournalAction::Planned);
        planned.link = Some(self.link);
        planned.direction = Some(Direction::towards(self.target));
        planned.fields = self.payload.changed.clone();
        planned.set_id(self.target, self.target_id.clone());
        planned.set_id(self.target.other(), self.source_id);
        planned.outbox = Some(OutboxRef::Key(self.key.clone()));
        planned.detail = Some(match self.note {
            None => self.op.to_string(),
            Some(note) => format!("{} ({note})", self.op),
        });
        changeset.journal.push(planned);
        changeset.outbox.push(NewOutboxItem {
            idempotency_key: self.key,
            pair: self.pair.to_owned(),
            target_side: self.target,
            entity: self.entity,
            op: self.op,
            link: Some(self.link),
            target_id: self.target_id,
            parent_id: self.parent_id,
            payload: PayloadJson::of(self.payload).expect("payloads serialise"),
            not_before: None,
        });
    }
}
