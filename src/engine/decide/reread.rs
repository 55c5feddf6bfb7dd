//! Is this a version already processed? Polls overlap their watermark and
//! reconciliations list everything, so most records read are versions a
//! link has taken in already: skipped, unless a reconciliation finds that
//! what such a version holds is not the base.

use chrono::{DateTime, Duration, Utc};

use super::Decider;
use crate::connector::{Record, Stamp};
use crate::domain::{EntityKind, Side};
use crate::engine::{snapshot, PairRuntime};
use crate::mapping::Canonical;
use crate::store::{Link, LinkSide, SidePatch};

/// How far a side's clock may run ahead of ours (GHL's servers and an
/// app's are seconds off, the simulation draws up to 2 s) for its change
/// times still to order versions.
const CLOCK_DRIFT: Duration = Duration::seconds(30);

impl Decider<'_> {
    /// Whether `record`, read from `source` and linked by `link`, is a
    /// re-read to skip. A version recorded as seen is no re-read when it
    /// has diverged from the base (see
    /// [`seen_but_diverged`](Self::seen_but_diverged)) or when the decider
    /// decides again: the writes of the old decision did not happen, and
    /// their idempotency keys are taken, so a version with a change time
    /// is decided as one microsecond newer than the one seen (one stamped
    /// with its read time is newer already).
    pub(super) fn is_reread(&self, source: Side, record: &mut Record, link: &Link) -> bool {
        if link.deleted_at.is_some() {
            return true;
        }
        if !already_decided(link, source, record) {
            return false;
        }
        if !self.again && !self.seen_but_diverged(source, record, link) {
            return true;
        }
        if let (Stamp::Side, Some(seen)) = (record.stamp, link.side(source).updated_at) {
            record.updated_at = record.updated_at.max(seen + Duration::microseconds(1));
        }
        false
    }

    /// For a version already recorded as seen: whether a reconciliation
    /// must decide it anyway because what it holds is not the base.
    fn seen_but_diverged(&self, source: Side, record: &Record, link: &Link) -> bool {
        // A link whose other record is still being created has no base
        // yet: its create is on its way, nothing diverged.
        if !self.compare_content
            || link.deleted_at.is_some()
            || link.side(source.other()).id.is_none()
        {
            return false;
        }
        // A version older than the one the link took in, on a link written
        // since shortly before this listing began, is a stale read (a
        // listing read before our write landed: GHL's search index lags
        // writes by seconds), not a divergence: deciding it would write
        // the old values back over the new (found by the deterministic
        // simulation, issue 16). Older versions on links left alone are
        // still decided (a side whose clock stepped back).
        // A seen change time ahead of our clock by more than sides' clocks
        // drift (seconds) is not trusted to order versions.
        let seen = link.side(source).updated_at;
        let trusted = |seen: DateTime<Utc>| seen <= crate::clock::now() + CLOCK_DRIFT;
        let older = record.stamp == Stamp::Side
            && seen.is_some_and(|seen| record.updated_at < seen && trusted(seen));
        let written_lately = self
            .listing_since
            .is_some_and(|(began, overlap)| link.updated_at + overlap > began);
        if older && written_lately {
            return false;
        }
        let map = &self.pair.settings.map;
        let Ok(canonical) = map.to_canonical(record.entity, source, &record.fields) else {
            // Unreadable: its dead letter was written when it was read.
            return false;
        };
        let base = snapshot::canonical(&link.snapshot);
        let diverged = !agrees_with_base(self.pair, record.entity, source, &canonical, &base);
        if diverged {
            tracing::info!(pair = %self.name(), entity = %record.entity, record = %record.id, "a version recorded as seen differs from the base; deciding it again");
        }
        diverged
    }
}

/// Whether `record`, read from side `src`, is a version its link has
/// already taken in (or the link is a tombstone): a re-read, not a change.
/// A version with a change time is known by it; one without (a GHL task)
/// by its fingerprint.
pub(super) fn already_decided(link: &Link, src: Side, record: &Record) -> bool {
    let seen = link.side(src);
    link.deleted_at.is_some()
        || match record.stamp {
            Stamp::Side => seen.updated_at.is_some_and(|at| at >= record.updated_at),
            Stamp::ReadAt => seen.fingerprint.as_deref() == Some(record.fingerprint().as_str()),
        }
}

/// What a link side records of `record` as the version it took in: its
/// id, owning contact, change time, and for a record without a change
/// time its fingerprint.
pub(in crate::engine) fn seen_side(record: &Record) -> LinkSide {
    LinkSide {
        id: Some(record.id.clone()),
        parent_id: record.parent_id.clone(),
        updated_at: Some(record.updated_at),
        fingerprint: fingerprint_of(record),
    }
}

impl SidePatch {
    /// Records `record` as the version this side of the link took in last.
    pub(in crate::engine) fn saw(&mut self, record: &Record) {
        self.updated_at = Some(record.updated_at);
        self.fingerprint = fingerprint_of(record);
    }
}

/// The fingerprint a link keeps of `record`: only for a record its side
/// gives no change time.
fn fingerprint_of(record: &Record) -> Option<String> {
    (record.stamp == Stamp::ReadAt).then(|| record.fingerprint())
}

/// Whether every field `source` feeds holds its base value: nothing of
/// this record is a change (our own write coming back, or an edit of
/// unmapped fields).
pub(super) fn agrees_with_base(
    pair: &PairRuntime,
    entity: EntityKind,
    source: Side,
    canonical: &Canonical,
    base: &Canonical,
) -> bool {
    pair.settings
        .map
        .fields_of(entity)
        .filter(|f| f.flow.reads_from(source))
        .all(|f| canonical.get(&f.name) == base.get(&f.name))
}
