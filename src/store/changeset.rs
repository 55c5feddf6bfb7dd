//! The unit of work: everything one detection batch (or one completed
//! write) decided, applied in one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::conflicts::NewConflict;
use super::cursors::CursorAdvance;
use super::dead_letters::NewDeadLetter;
use super::error::{op_err, Result, StoreError};
use super::journal::{NewJournalEntry, OutboxRef};
use super::links::{LinkRef, LinkUpdate, LinkWrite, NewLink};
use super::outbox::NewOutboxItem;
use super::sql::now;
use super::{conflicts, cursors, dead_letters, journal, links, outbox, redecisions, Store, Tx};
use crate::domain::Side;

/// Everything a detection batch decided, written atomically by
/// [`Store::commit`]: either all of it is durable or none of it is, so the
/// cursor advance in `cursors` can never get ahead of the outbox rows and
/// journal rows it covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changeset {
    /// New links (with a `local_ref` other rows can point at) and updates.
    pub links: Vec<LinkWrite>,
    /// Writes to enqueue; a key already in the outbox is not enqueued again.
    pub outbox: Vec<NewOutboxItem>,
    pub journal: Vec<NewJournalEntry>,
    /// Field conflicts to open (or refresh, if already open for the field).
    pub conflicts: Vec<NewConflict>,
    pub dead_letters: Vec<NewDeadLetter>,
    pub cursors: Vec<CursorAdvance>,
    /// Links whose scheduled re-decision this decision took (see
    /// `redecisions.rs`): deleted with the rest, so it is taken exactly
    /// when the decision is durable.
    pub redecided: Vec<i64>,
}

impl Changeset {
    /// True when committing it would write nothing.
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
            && self.outbox.is_empty()
            && self.journal.is_empty()
            && self.conflicts.is_empty()
            && self.dead_letters.is_empty()
            && self.cursors.is_empty()
            && self.redecided.is_empty()
    }
}

/// What a commit wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The transaction's timestamp (stamped on created/updated rows).
    pub committed_at: DateTime<Utc>,
    /// Ids of the inserted links, by their `local_ref`.
    pub new_links: HashMap<u32, i64>,
    /// Existing links updated (distinct ids).
    pub links_updated: u64,
    /// Outbox items actually enqueued: idempotency key -> id.
    pub outbox_new: HashMap<String, i64>,
    /// Keys that were already in the outbox, so nothing was enqueued for them.
    pub outbox_duplicates: Vec<String>,
    pub journal_written: u64,
    /// Conflicts opened or refreshed (distinct (link, field) pairs).
    pub conflicts_upserted: u64,
    pub dead_letters_written: u64,
    /// Cursor rows written (distinct keys).
    pub cursors_advanced: u64,
}

impl CommitReceipt {
    /// The id of the link inserted with `local_ref`.
    pub fn link_id(&self, local_ref: u32) -> Option<i64> {
        self.new_links.get(&local_ref).copied()
    }

    fn empty(at: DateTime<Utc>) -> Self {
        CommitReceipt {
            committed_at: at,
            ..CommitReceipt::default()
        }
    }
}

/// The outcome of a successful write, applied by [`Store::complete_outbox`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub outbox_id: i64,
    /// New ids / snapshot after the side answered (or a new link).
    pub link: Option<LinkWrite>,
    /// Usually one `applied` row; may use `LinkRef::New` for a link inserted
    /// by `link`.
    pub journal: Vec<NewJournalEntry>,
    /// The record of the link on this side to decide again, and why: the
    /// write leaves a change no decision has carried yet (scheduled in
    /// the same transaction, see `redecisions.rs`).
    pub redecide: Option<(Side, String)>,
}

/// The rows of one unit of work, borrowed from a [`Changeset`] or a
/// [`Completion`].
#[derive(Clone, Copy)]
pub(super) struct Parts<'a> {
    pub links: &'a [LinkWrite],
    pub outbox: &'a [NewOutboxItem],
    pub journal: &'a [NewJournalEntry],
    pub conflicts: &'a [NewConflict],
    pub dead_letters: &'a [NewDeadLetter],
    pub cursors: &'a [CursorAdvance],
    pub redecided: &'a [i64],
}

impl<'a> Parts<'a> {
    fn of(cs: &'a Changeset) -> Self {
        Parts {
            links: &cs.links,
            outbox: &cs.outbox,
            journal: &cs.journal,
            conflicts: &cs.conflicts,
            dead_letters: &cs.dead_letters,
            cursors: &cs.cursors,
            redecided: &cs.redecided,
        }
    }

    /// Checks the local link references before anything is written.
    fn validate(&self, op: &'static str) -> Result<()> {
        let mut refs = HashSet::new();
        for write in self.links {
            if let LinkWrite::Insert { local_ref, .. } = write {
                if !refs.insert(*local_ref) {
                    return Err(StoreError::DuplicateLocalRef {
                        op,
                        local_ref: *local_ref,
                    });
                }
            }
        }
        let used = self
            .outbox
            .iter()
            .filter_map(|o| o.link)
            .chain(self.journal.iter().filter_map(|j| j.link))
            .chain(self.conflicts.iter().map(|c| c.link));
        for link in used {
            if let LinkRef::New(local_ref) = link {
                if !refs.contains(&local_ref) {
                    return Err(StoreError::UnknownLocalRef { op, local_ref });
                }
            }
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.links.is_empty()
            && self.outbox.is_empty()
            && self.journal.is_empty()
            && self.conflicts.is_empty()
            && self.dead_letters.is_empty()
            && self.cursors.is_empty()
            && self.redecided.is_empty()
    }
}

impl Store {
    /// Applies a detection batch's decisions atomically, in one transaction:
    /// new and updated links, outbox items (deduplicated by idempotency
    /// key), journal rows, conflicts, dead letters and cursor advances. Rows
    /// may reference links inserted by the same changeset through
    /// `LinkRef::New(local_ref)`. If any statement fails, nothing is kept.
    pub async fn commit(&self, changeset: &Changeset) -> Result<CommitReceipt> {
        const OP: &str = "commit";
        let parts = Parts::of(changeset);
        parts.validate(OP)?;
        let now = now();
        if parts.is_empty() {
            return Ok(CommitReceipt::empty(now));
        }
        let mut tx = self.begin(OP).await?;
        let receipt = apply(&mut tx, parts, now, OP).await?;
        tx.commit(OP).await?;
        Ok(receipt)
    }

    /// Records a successful write atomically: marks the outbox item done,
    /// applies the link write (the target's new id, the new base snapshot)
    /// and the journal rows. Fails with `OutboxNotPending` if the item was
    /// already completed, failed for good or cancelled, and then writes
    /// nothing.
    pub async fn complete_outbox(&self, completion: &Completion) -> Result<CommitReceipt> {
        const OP: &str = "complete_outbox";
        let id = completion.outbox_id;
        let parts = Parts {
            links: completion.link.as_slice(),
            outbox: &[],
            journal: &completion.journal,
            conflicts: &[],
            dead_letters: &[],
            cursors: &[],
            redecided: &[],
        };
        parts.validate(OP)?;
        let now = now();
        let mut tx = self.begin(OP).await?;
        let done: Option<i64> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
                "UPDATE outbox SET status = 'done', completed_at = $1, updated_at = $1, \
                 locked_until = NULL WHERE id = $2 AND status = 'pending' RETURNING id",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *c)
            .await
        })
        .map_err(op_err(|| format!("{OP}(id={id})")))?;
        if done.is_none() {
            return Err(outbox::not_pending(&mut tx, OP, id).await);
        }
        let receipt = apply(&mut tx, parts, now, OP).await?;
        if let Some(LinkWrite::Insert { local_ref, .. }) = &completion.link {
            let link_id = receipt.link_id(*local_ref);
            on_tx!(&mut tx, |c| {
                sqlx::query("UPDATE outbox SET link_id = $1 WHERE id = $2 AND link_id IS NULL")
                    .bind(link_id)
                    .bind(id)
                    .execute(&mut *c)
                    .await
                    .map(|_| ())
            })
            .map_err(op_err(|| format!("{OP}(id={id}): recording its new link")))?;
        }
        if let Some((side, reason)) = &completion.redecide {
            let link = match &completion.link {
                Some(LinkWrite::Update(update)) => Some(update.id),
                Some(LinkWrite::Insert { local_ref, .. }) => receipt.link_id(*local_ref),
                None => None,
            };
            if let Some(link) = link {
                redecisions::schedule(&mut tx, link, *side, reason, now, OP).await?;
            }
        }
        tx.commit(OP).await?;
        Ok(receipt)
    }
}

/// Writes `parts` inside `tx` (already validated), table by table. Links
/// come first: every other row may point at a link this unit inserts.
pub(super) async fn apply(
    tx: &mut Tx,
    parts: Parts<'_>,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<CommitReceipt> {
    let mut receipt = CommitReceipt::empty(now);
    receipt.new_links = insert_new_links(tx, parts.links, now, op).await?;
    let updates = merge_link_updates(parts.links);
    if !updates.is_empty() {
        receipt.links_updated = links::update_links(tx, &updates, now, op).await?;
    }
    if !parts.outbox.is_empty() {
        let new = enqueue(tx, parts.outbox, &receipt.new_links, now, op).await?;
        receipt.outbox_duplicates = duplicates(parts.outbox, &new);
        receipt.outbox_new = new;
    }
    if !parts.journal.is_empty() {
        receipt.journal_written = write_journal(tx, parts.journal, &receipt, now, op).await?;
    }
    if !parts.conflicts.is_empty() {
        receipt.conflicts_upserted =
            record_conflicts(tx, parts.conflicts, &receipt.new_links, now, op).await?;
    }
    if !parts.dead_letters.is_empty() {
        receipt.dead_letters_written =
            dead_letters::insert_dead_letters(tx, parts.dead_letters, now)
                .await
                .map_err(op_err(|| {
                    format!("{op}: writing {} dead letter(s)", parts.dead_letters.len())
                }))?
                .len() as u64;
    }
    if !parts.cursors.is_empty() {
        receipt.cursors_advanced = advance_cursors(tx, parts.cursors, now, op).await?;
    }
    if !parts.redecided.is_empty() {
        redecisions::taken(tx, parts.redecided, op).await?;
    }
    Ok(receipt)
}

/// The mirror id of a link a row names (every `New` reference is one of
/// `new_links`: validated before anything is written).
fn link_id(new_links: &HashMap<u32, i64>, link: LinkRef) -> i64 {
    match link {
        LinkRef::Existing(id) => id,
        LinkRef::New(local_ref) => new_links[&local_ref],
    }
}

/// Inserts the new links, with ids reserved first so every other row can
/// point at them; returns their ids by `local_ref`.
async fn insert_new_links(
    tx: &mut Tx,
    writes: &[LinkWrite],
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<HashMap<u32, i64>> {
    let inserts: Vec<(u32, &NewLink)> = writes
        .iter()
        .filter_map(|w| match w {
            LinkWrite::Insert { local_ref, link } => Some((*local_ref, link)),
            LinkWrite::Update(_) => None,
        })
        .collect();
    if inserts.is_empty() {
        return Ok(HashMap::new());
    }
    let ids = links::reserve_link_ids(tx, inserts.len())
        .await
        .map_err(op_err(|| {
            format!("{op}: reserving {} link id(s)", inserts.len())
        }))?;
    let rows: Vec<(i64, &NewLink)> = ids
        .iter()
        .zip(&inserts)
        .map(|(id, (_, link))| (*id, *link))
        .collect();
    links::insert_links(tx, &rows, now)
        .await
        .map_err(op_err(|| format!("{op}: inserting {} link(s)", rows.len())))?;
    Ok(inserts
        .iter()
        .zip(&ids)
        .map(|((local_ref, _), id)| (*local_ref, *id))
        .collect())
}

/// Enqueues the outbox rows (`ON CONFLICT (idempotency_key) DO NOTHING`);
/// returns the ids of those actually enqueued, by key.
async fn enqueue(
    tx: &mut Tx,
    items: &[NewOutboxItem],
    new_links: &HashMap<u32, i64>,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<HashMap<String, i64>> {
    let rows: Vec<(&NewOutboxItem, Option<i64>)> = items
        .iter()
        .map(|o| (o, o.link.map(|l| link_id(new_links, l))))
        .collect();
    outbox::insert_outbox(tx, &rows, now)
        .await
        .map_err(op_err(|| {
            format!("{op}: enqueuing {} outbox item(s)", rows.len())
        }))
}

/// The keys of `items` already in the outbox (not in `new`), once each.
fn duplicates(items: &[NewOutboxItem], new: &HashMap<String, i64>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .iter()
        .map(|o| o.idempotency_key.as_str())
        .filter(|k| !new.contains_key(*k) && seen.insert(*k))
        .map(str::to_owned)
        .collect()
}

/// Writes the journal rows, their outbox references resolved by key (an
/// item of this unit, or one already in the outbox); returns how many.
async fn write_journal(
    tx: &mut Tx,
    entries: &[NewJournalEntry],
    receipt: &CommitReceipt,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<u64> {
    let wanted: Vec<&str> = entries
        .iter()
        .filter_map(|j| match &j.outbox {
            Some(OutboxRef::Key(k)) if !receipt.outbox_new.contains_key(k) => Some(k.as_str()),
            _ => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut by_key = if wanted.is_empty() {
        HashMap::new()
    } else {
        outbox::outbox_ids_by_key(tx, &wanted)
            .await
            .map_err(op_err(|| format!("{op}: looking up outbox keys")))?
    };
    by_key.extend(receipt.outbox_new.iter().map(|(k, v)| (k.clone(), *v)));
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let outbox_id = match &entry.outbox {
            None => None,
            Some(OutboxRef::Id(id)) => Some(*id),
            Some(OutboxRef::Key(k)) => match by_key.get(k) {
                Some(id) => Some(*id),
                None => {
                    return Err(StoreError::UnknownOutboxKey { op, key: k.clone() });
                }
            },
        };
        rows.push(journal::JournalRow {
            entry,
            link_id: entry.link.map(|l| link_id(&receipt.new_links, l)),
            outbox_id,
        });
    }
    journal::insert_journal(tx, &rows, now)
        .await
        .map_err(op_err(|| {
            format!("{op}: writing {} journal row(s)", rows.len())
        }))
}

/// Opens or refreshes the conflicts: one row per (link, field), a later
/// one in the batch winning; returns how many.
async fn record_conflicts(
    tx: &mut Tx,
    conflicts: &[NewConflict],
    new_links: &HashMap<u32, i64>,
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<u64> {
    let mut order = Vec::new();
    let mut latest: HashMap<(i64, &str), &NewConflict> = HashMap::new();
    for c in conflicts {
        let key = (link_id(new_links, c.link), c.field.as_str());
        if latest.insert(key, c).is_none() {
            order.push(key);
        }
    }
    let rows: Vec<(&NewConflict, i64)> = order.iter().map(|k| (latest[k], k.0)).collect();
    conflicts::upsert_conflicts(tx, &rows, now)
        .await
        .map_err(op_err(|| {
            format!("{op}: recording {} conflict(s)", rows.len())
        }))
}

/// Merges the advances of the same cursor in order, then upserts each;
/// returns how many cursor rows were written.
async fn advance_cursors(
    tx: &mut Tx,
    advances: &[CursorAdvance],
    now: DateTime<Utc>,
    op: &'static str,
) -> Result<u64> {
    let mut merged: Vec<CursorAdvance> = Vec::new();
    for adv in advances {
        match merged.iter().position(|m| m.key() == adv.key()) {
            Some(i) => {
                let prev = merged.remove(i);
                merged.insert(i, prev.then(adv.clone()));
            }
            None => merged.push(adv.clone()),
        }
    }
    for adv in &merged {
        cursors::upsert_cursor(tx, adv, now)
            .await
            .map_err(op_err(|| {
                format!(
                    "{op}: advancing cursor (pair={}, side={}, entity={}, stream={:?})",
                    adv.pair, adv.side, adv.entity, adv.stream
                )
            }))?;
    }
    Ok(merged.len() as u64)
}

/// Folds several updates of the same link into one (in order), keeping the
/// order of first appearance, so one `UPDATE .. FROM VALUES` touches each
/// row once.
fn merge_link_updates(writes: &[LinkWrite]) -> Vec<LinkUpdate> {
    let mut order: Vec<i64> = Vec::new();
    let mut merged: HashMap<i64, LinkUpdate> = HashMap::new();
    for write in writes {
        if let LinkWrite::Update(u) = write {
            match merged.remove(&u.id) {
                Some(prev) => {
                    merged.insert(u.id, prev.then(u.clone()));
                }
                None => {
                    order.push(u.id);
                    merged.insert(u.id, u.clone());
                }
            }
        }
    }
    order
        .into_iter()
        .filter_map(|id| merged.remove(&id))
        .collect()
}
