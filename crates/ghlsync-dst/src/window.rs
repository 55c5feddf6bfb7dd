//! The read-write window: what no sync can save.
//!
//! Neither GHL nor a REST app offers a conditional write (no `If-Match`):
//! the daemon re-reads a record right before it writes (`writer.rs::
//! edited_since`) and withdraws a write whose fields were edited, but a
//! user's edit landing between that read and the write itself is seen by
//! nobody, and a write of the same field replaces it. (GHL's tags are safe:
//! they are written as add/remove deltas.) The world notes each such loss
//! as it happens, from what it knows and the daemon cannot: a user edit
//! after the daemon's last read of the record, overwritten by the daemon's
//! next write to that field. The checker excuses exactly these, and the
//! report counts them, so the residual risk is measured, not hidden.

use std::collections::{BTreeMap, BTreeSet};

use ghl_sync::connector::Record;
use ghl_sync::domain::{EntityKind, Side};
use serde_json::{Map, Value};

use crate::workload::{
    FieldName, COMPLETED, EMAIL, FIRST_NAME, LAST_NAME, NOTE_TEXT, PHONE, TAGS, TITLE,
};

const NAMES: [&FieldName; 8] = [
    &FIRST_NAME,
    &LAST_NAME,
    &EMAIL,
    &PHONE,
    &TAGS,
    &TITLE,
    &COMPLETED,
    &NOTE_TEXT,
];

/// A user edit overwritten inside the window: (side, entity, record id,
/// canonical field or `tags:<tag>`, the user operation).
pub type Loss = (Side, EntityKind, String, String, u64);

/// The daemon's reads, and the losses they let through.
#[derive(Debug, Default, Clone)]
pub struct Window {
    /// The user operation count when the daemon last read each record.
    read_at: BTreeMap<(Side, EntityKind, String), u64>,
    pub losses: BTreeSet<Loss>,
}

impl Window {
    /// The daemon read `records` of `role` (at user operation `ops`).
    pub fn read(&mut self, role: Side, records: &[&Record], ops: u64) {
        for record in records {
            self.read_at
                .insert((role, record.entity, record.id.clone()), ops);
        }
    }

    /// The daemon writes `fields` (native) to a record holding `held`:
    /// the user edits it overwrites that it never read.
    pub fn write(
        &mut self,
        role: Side,
        entity: EntityKind,
        id: &str,
        held: &Map<String, Value>,
        fields: &Map<String, Value>,
        ledger: &crate::workload::Ledger,
    ) {
        let read = self
            .read_at
            .get(&(role, entity, id.to_owned()))
            .copied()
            .unwrap_or(0);
        for (native, value) in fields {
            let Some(name) = NAMES.iter().find(|n| n.on(role) == native) else {
                continue;
            };
            if name.canonical == TAGS.canonical {
                let kept: Vec<&Value> = value
                    .as_array()
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                for ((side, record, tag), (seq, added)) in &ledger.tags {
                    let lost = *added && !kept.contains(&&Value::String(tag.clone()));
                    if *side == role && record == id && *seq > read && lost {
                        self.losses.insert((
                            role,
                            entity,
                            id.to_owned(),
                            format!("tags:{tag}"),
                            *seq,
                        ));
                    }
                }
                continue;
            }
            let key = (role, entity, id.to_owned(), name.canonical.to_owned());
            if let Some((seq, user)) = ledger.values.get(&key) {
                if *seq > read && held.get(native) == Some(user) && user != value {
                    self.losses.insert((
                        role,
                        entity,
                        id.to_owned(),
                        name.canonical.to_owned(),
                        *seq,
                    ));
                }
            }
        }
    }
}
