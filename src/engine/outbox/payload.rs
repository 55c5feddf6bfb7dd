//! What an outbox row carries from the decision that planned it to the
//! writer that performs it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mapping::Canonical;

/// What an outbox item carries to the writer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WritePayload {
    /// Native fields: the record to create, or the patch to apply. Empty
    /// when they follow from `snapshot` and `changed` (see
    /// [`WritePayload::writes`]): the writer maps them when the write is
    /// due, which keeps the outbox row, the biggest of a decision, a third
    /// smaller.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub fields: Map<String, Value>,
    /// The new base snapshot once the write succeeds.
    #[serde(default)]
    pub snapshot: Option<Canonical>,
    /// Canonical names of the fields written, for the journal.
    #[serde(default)]
    pub changed: Vec<String>,
    /// The tag an `add_tags` write puts on the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The target's values of the written fields when the write was
    /// planned. If the target holds anything else when the write is due,
    /// someone edited it meanwhile: the write is withdrawn and the next
    /// poll merges that edit instead of overwriting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Canonical>,
    /// The fields the same decision writes to the *other* side. Until that
    /// write is done, the other side does not hold their merged values, so
    /// this write's completion leaves them at their old base: the base is
    /// what both sides hold, and a sibling write withdrawn (or failed)
    /// must not leave a base claiming an agreement that never happened
    /// (found by the deterministic simulation, issue 16: the next decision
    /// took the missing value for a removal and wiped a tag).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_writes: Vec<String>,
}

impl WritePayload {
    /// The canonical values the write sets: each changed field's value in
    /// the new snapshot, `null` for a field the snapshot no longer has.
    /// These are the values the decision mapped when it planned the write.
    /// The base once this write is done, given the link's base now: the
    /// new snapshot, except the fields a write to the other side has yet to
    /// bring there, which keep their base.
    pub fn base_after(&self, base: &Canonical) -> Option<Canonical> {
        let mut after = self.snapshot.clone()?;
        for field in &self.other_writes {
            match base.get(field) {
                Some(value) => after.insert(field.clone(), value.clone()),
                None => after.remove(field),
            };
        }
        Some(after)
    }

    pub fn writes(&self) -> Canonical {
        let snapshot = self.snapshot.as_ref();
        self.changed
            .iter()
            .map(|field| {
                let value = snapshot.and_then(|s| s.get(field)).cloned();
                (field.clone(), value.unwrap_or(Value::Null))
            })
            .collect()
    }
}
