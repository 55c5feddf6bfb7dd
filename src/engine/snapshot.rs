//! Base snapshots: the canonical content both sides last agreed on, and its
//! hash. The encoding is deterministic (canonical records are ordered maps),
//! so equal content always has the same hash.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::mapping::Canonical;
use crate::store::Snapshot;

pub fn of(content: &Canonical) -> Snapshot {
    let value = serde_json::to_value(content).expect("canonical records serialise");
    let hash = hex::encode(Sha256::digest(value.to_string().as_bytes()));
    Snapshot {
        content: value,
        hash,
    }
}

/// The canonical record a stored snapshot holds (empty for a link whose
/// sides never agreed yet).
pub fn canonical(snapshot: &Snapshot) -> Canonical {
    match &snapshot.content {
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Canonical::new(),
    }
}

/// The snapshot of a link no write has completed for yet.
pub fn empty() -> Snapshot {
    of(&Canonical::new())
}
