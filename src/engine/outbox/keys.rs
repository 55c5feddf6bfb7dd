//! Idempotency keys: how the outbox recognises a write it was given
//! before. A write is keyed by what caused it, so planning it again for
//! the same cause plans the same key, which the outbox refuses twice.
//!
//! The keys are stored in the outbox and referenced by journal rows of
//! existing mirrors: a format here never changes.

use chrono::{DateTime, Utc};

use crate::domain::{EntityKind, Side};
use crate::store::OutboxOp;

/// The key of a write carrying a change:
/// `pair/entity/side:id@micros/op->target`. Re-detecting the same version
/// of a record plans the same key, which the outbox refuses twice.
pub(in crate::engine) fn change_key(
    pair: &str,
    entity: EntityKind,
    source: Side,
    source_id: &str,
    updated_at: DateTime<Utc>,
    op: OutboxOp,
    target: Side,
) -> String {
    format!(
        "{pair}/{entity}/{source}:{source_id}@{}/{op}->{target}",
        updated_at.timestamp_micros()
    )
}

/// The source record and its change time back out of a [`change_key`]
/// (logs and the propagation metric); `None` for other keys (deletes,
/// tags, resolutions).
pub(in crate::engine) fn change_of_key(key: &str) -> Option<(&str, DateTime<Utc>)> {
    let (record, after) = key.rsplit_once('@')?;
    let (_, id) = record.split_once(':')?;
    let micros = after.split('/').next()?.parse::<i64>().ok()?;
    Some((id, DateTime::from_timestamp_micros(micros)?))
}

/// The id of the record a write to `target` comes from, when its
/// [`change_key`] names it: the key names the record whose change was
/// decided, which is the source only when it is on the other side. A
/// merge also writes back to the side whose change it decided (the other
/// side's value won a field); that key names the target itself, and
/// `None` says the source's id must be had from the link.
pub(in crate::engine) fn source_in_key<'k>(
    key: &'k str,
    pair: &str,
    entity: EntityKind,
    target: Side,
) -> Option<&'k str> {
    let rest = key.strip_prefix(&format!("{pair}/{entity}/"))?;
    let (side, rest) = rest.split_once(':')?;
    let (id, _) = rest.rsplit_once('@')?;
    (side.parse::<Side>().ok()? == target.other()).then_some(id)
}

/// The key of a write that follows from a link rather than from a version
/// of its record (a deletion propagated, or the delete policy's tag):
/// `pair/entity/link:id/op->target`. A link is tombstoned once, so its
/// deletion is planned once.
pub(in crate::engine) fn link_key(
    pair: &str,
    entity: EntityKind,
    link_id: i64,
    op: OutboxOp,
    target: Side,
) -> String {
    format!("{pair}/{entity}/link:{link_id}/{op}->{target}")
}

/// The key of a write carrying an operator's resolution of a conflict:
/// `pair/entity/conflict:id/op->target`: a conflict is resolved once, with
/// at most one write to each side.
pub(in crate::engine) fn resolution_key(
    pair: &str,
    entity: EntityKind,
    conflict_id: i64,
    op: OutboxOp,
    target: Side,
) -> String {
    format!("{pair}/{entity}/conflict:{conflict_id}/{op}->{target}")
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::{change_key, change_of_key, link_key, resolution_key, source_in_key};
    use crate::domain::{EntityKind, Side};
    use crate::store::OutboxOp;

    #[test]
    fn a_change_key_gives_back_its_record_and_time() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 1, 2, 3).unwrap()
            + chrono::Duration::microseconds(456_789);
        let key = change_key(
            "main",
            EntityKind::Task,
            Side::Ghl,
            "abc:12",
            at,
            OutboxOp::Update,
            Side::App,
        );
        assert_eq!(
            key,
            format!("main/task/a:abc:12@{}/update->b", at.timestamp_micros())
        );
        assert_eq!(change_of_key(&key), Some(("abc:12", at)));
        assert_eq!(change_of_key("main/contact/link:7/delete->b"), None);
    }

    #[test]
    fn the_source_of_a_write_is_the_record_on_the_other_side() {
        let at = Utc.with_ymd_and_hms(2026, 11, 24, 1, 2, 3).unwrap();
        let seen_in_ghl = |target| {
            change_key(
                "main",
                EntityKind::Contact,
                Side::Ghl,
                "ghl:1",
                at,
                OutboxOp::Update,
                target,
            )
        };
        // A GHL change written to the app comes from the GHL record.
        let key = seen_in_ghl(Side::App);
        let source = source_in_key(&key, "main", EntityKind::Contact, Side::App);
        assert_eq!(source, Some("ghl:1"));
        // Written back to GHL (the app's value won a field): the key names
        // the target, not the source.
        let key = seen_in_ghl(Side::Ghl);
        let source = source_in_key(&key, "main", EntityKind::Contact, Side::Ghl);
        assert_eq!(source, None);
        let key = link_key("main", EntityKind::Contact, 7, OutboxOp::Delete, Side::App);
        let source = source_in_key(&key, "main", EntityKind::Contact, Side::App);
        assert_eq!(source, None);
    }

    #[test]
    fn link_and_resolution_keys_keep_their_stored_format() {
        let key = link_key("main", EntityKind::Contact, 7, OutboxOp::Delete, Side::App);
        assert_eq!(key, "main/contact/link:7/delete->b");
        let key = resolution_key("main", EntityKind::Contact, 3, OutboxOp::Update, Side::Ghl);
        assert_eq!(key, "main/contact/conflict:3/update->a");
        assert_eq!(change_of_key(&key), None);
    }
}
