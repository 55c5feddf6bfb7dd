//! Change detection: one poll of a side's change feed for one entity,
//! between the watermark (minus the overlap) and now (minus the lag). Each
//! page is decided and committed with its watermark in one transaction, so
//! the watermark never passes a change that is not durably recorded.

use std::collections::HashSet;

use chrono::DateTime;
use futures::StreamExt;
use tracing::Instrument;

use super::decide::Decider;
use super::report::PairReport;
use super::{Engine, EngineError, Mode, PairRuntime};
use crate::connector::ConnectorError;
use crate::domain::{EntityKind, Purpose, Side};

use crate::store::{Change, Changeset, CommitReceipt, CursorAdvance, DeadLetterStatus, StoreError};

/// A page's commit running while the next page is decided.
struct InFlight {
    /// The ids of the page's records.
    ids: HashSet<String>,
    commit: tokio::task::JoinHandle<Result<CommitReceipt, StoreError>>,
}

/// Whether a poll of contacts reads the children of those that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Children {
    Read,
    /// A reconciliation in the same pass reads every linked contact's
    /// children: reading those of the changed ones first would read them
    /// twice (`ghlsync backfill`: once per contact for nothing).
    LeftToReconciliation,
}

/// What a listing of children showed.
struct Listed {
    /// The contacts whose children were all listed: a linked child of one
    /// of them that is not `present` is gone.
    contacts: HashSet<String>,
    /// The ids of the children listed, readable or not.
    present: HashSet<String>,
    /// The listing covered many contacts at once: a child it misses is
    /// confirmed per contact before it is taken for gone.
    confirm: bool,
}

/// What one page of children showed.
struct PageSeen {
    present: HashSet<String>,
    /// No child without an id was set aside.
    complete: bool,
}

/// Detection of the default feed of an entity.
pub(super) const STREAM: &str = "";

impl Engine {
    /// Polls `source`'s change feed of `entity` once. Entities without a
    /// feed on that side (GHL tasks and notes) are read as the children of
    /// the contacts that changed, and by reconciliation.
    pub async fn poll(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
        mode: Mode,
    ) -> Result<PairReport, EngineError> {
        self.poll_as(pair, source, entity, mode, Children::Read)
            .await
    }

    /// [`Engine::poll`], reading the children of changed contacts or not
    /// (a reconciliation following in the same pass reads them all).
    pub(super) async fn poll_as(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
        mode: Mode,
        children: Children,
    ) -> Result<PairReport, EngineError> {
        let connector = pair.connector(source);
        let caps = connector.capabilities().of(entity);
        if !caps.read || !caps.change_feed {
            return Ok(PairReport::default());
        }
        let span = tracing::info_span!(
            "poll",
            pair = %pair.name(),
            side = %connector.side(),
            entity = %entity,
        );
        Purpose::Poll
            .scope(
                self.poll_feed(pair, source, entity, mode, children)
                    .instrument(span),
            )
            .await
    }

    async fn poll_feed(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
        mode: Mode,
        children: Children,
    ) -> Result<PairReport, EngineError> {
        let side = source;
        let started = crate::clock::now();
        let cursor = self
            .store
            .load_cursor(pair.name(), side, entity, STREAM)
            .await?;
        let stored = cursor.and_then(|c| c.watermark);
        let overlap = chrono::Duration::from_std(self.sync.overlap).unwrap_or_default();
        let lag = chrono::Duration::from_std(self.sync.lag).unwrap_or_default();
        let since = stored.map_or(DateTime::UNIX_EPOCH, |w| w - overlap);
        let until = started - lag;
        if until < since {
            return Ok(PairReport::default());
        }
        let mut decider = Decider::new(self, pair, mode);
        let mut watermark = stored;
        let mut pages = pair.connector(source).changes(entity, since, until);
        // Each page's commit runs while the next page is read and decided;
        // commits stay one at a time and in order.
        let mut in_flight: Option<InFlight> = None;
        let read = async {
            while let Some(page) = pages.next().await {
                let page = page?;
                if in_flight
                    .as_ref()
                    .is_some_and(|f| page.records.iter().any(|r| f.ids.contains(&r.id)))
                {
                    // A record of the page being committed comes again
                    // (edited meanwhile): decide it against the committed
                    // mirror.
                    self.land(in_flight.take(), &mut decider).await?;
                }
                let ids: HashSet<String> = page.records.iter().map(|r| r.id.clone()).collect();
                self.set_aside(pair, &mut decider, source, entity, page.rejected)
                    .await?;
                let changed = decider.records(source, entity, page.records).await?;
                if entity == EntityKind::Contact && children == Children::Read {
                    self.children_of(pair, &mut decider, source, &changed)
                        .await?;
                }
                watermark = watermark.max(page.watermark);
                let mut advance = self.advance(pair, source, entity);
                if let Some(w) = watermark.filter(|w| Some(*w) > stored) {
                    advance.watermark = Change::Set(w);
                }
                advance.last_poll_at = Some(started);
                self.land(in_flight.take(), &mut decider).await?;
                in_flight = self.launch(&mut decider, advance, mode, ids);
            }
            Ok::<(), EngineError>(())
        }
        .await;
        // Whatever happened to the pages after it, the page being committed
        // lands before the poll returns, as if each page had been committed
        // before the next was read: a side failing at page N+1 does not
        // undo (or leave running) the commit of page N.
        let landed = self.land(in_flight.take(), &mut decider).await;
        read?;
        landed?;
        let mut done = self.advance(pair, source, entity);
        done.last_poll_at = Some(started);
        done.last_success_at = Some(crate::clock::now());
        self.commit(&mut decider, done, mode).await?;
        let stats = &decider.report.stats;
        if stats.read > stats.unchanged {
            tracing::debug!(read = stats.read, planned = stats.planned(), "poll done");
        }
        Ok(decider.report)
    }

    /// Reads the tasks, notes (and appointments) of contacts that changed
    /// on a side without a change feed for them, and notices children gone
    /// from those contacts.
    pub(super) async fn children_of(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        contacts: &[String],
    ) -> Result<(), EngineError> {
        if contacts.is_empty() {
            return Ok(());
        }
        let connector = pair.connector(source);
        for entity in pair.entities() {
            let caps = connector.capabilities().of(entity);
            if entity == EntityKind::Contact || !caps.read || caps.change_feed {
                continue;
            }
            self.read_children(pair, decider, source, entity, contacts)
                .await?;
        }
        Ok(())
    }

    /// Lists the `entity` children of `contacts` on `source`, decides them,
    /// and plans the deletion of linked children no longer there. A side
    /// with a listing of many contacts' children at once (GHL's
    /// location-wide task search) is read that way: a few requests for the
    /// lot instead of one per contact.
    pub(super) async fn read_children(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        entity: EntityKind,
        contacts: &[String],
    ) -> Result<(), EngineError> {
        // The links as they are before the listings: a child the writer
        // creates and links meanwhile may not be listed, and is not gone.
        let linked = self
            .store
            .links_by_parent_ids(pair.name(), entity, source, contacts)
            .await?;
        let bulk = pair
            .connector(source)
            .children_of_many(entity, contacts)
            .await;
        let listed = match bulk {
            Some(page) => {
                let page = page?;
                let listed = self
                    .decide_children(pair, decider, source, entity, page)
                    .await?;
                Listed {
                    contacts: if listed.complete {
                        contacts.iter().cloned().collect()
                    } else {
                        HashSet::new()
                    },
                    present: listed.present,
                    confirm: true,
                }
            }
            None => {
                self.children_each(pair, decider, source, entity, contacts)
                    .await?
            }
        };
        for link in linked {
            let side = link.side(source);
            let (Some(parent), Some(id)) = (side.parent_id.as_ref(), side.id.as_ref()) else {
                continue;
            };
            if !listed.contacts.contains(parent) || listed.present.contains(id) {
                continue;
            }
            if listed.confirm
                && self
                    .child_still_there(pair, source, entity, parent, id)
                    .await?
            {
                continue;
            }
            // As it is now (the writer may have tombstoned it).
            if let Some(link) = self.store.link_by_id(link.id).await? {
                decider.deletion(source, &link).await?;
            }
        }
        Ok(())
    }

    /// [`Engine::read_children`] one contact at a time.
    async fn children_each(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        entity: EntityKind,
        contacts: &[String],
    ) -> Result<Listed, EngineError> {
        let connector = pair.connector(source);
        let mut listed = Listed {
            contacts: HashSet::with_capacity(contacts.len()),
            present: HashSet::new(),
            confirm: false,
        };
        for contact in contacts {
            let page = match connector.children_page(entity, contact).await {
                Ok(page) => page,
                // The contact is gone: its own deletion is found by
                // reconciliation; its children are not "deleted" here.
                Err(error) if error.is_record_error() => {
                    tracing::debug!(contact = %contact, error = %error, "children not listed");
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let page = self
                .decide_children(pair, decider, source, entity, page)
                .await?;
            if page.complete {
                listed.contacts.insert(contact.clone());
            }
            listed.present.extend(page.present);
        }
        Ok(listed)
    }

    /// Decides a page of children; what it shows present. A child that
    /// could not be read is still there: never taken for gone. One without
    /// an id could be any linked child, so the page is not `complete`.
    async fn decide_children(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        entity: EntityKind,
        page: crate::connector::Page,
    ) -> Result<PageSeen, EngineError> {
        let (named, unnamed) = rejected_ids(&page.rejected);
        let mut present: HashSet<String> = named.into_iter().collect();
        present.extend(page.records.iter().map(|c| c.id.clone()));
        self.set_aside(pair, decider, source, entity, page.rejected)
            .await?;
        decider.records(source, entity, page.records).await?;
        Ok(PageSeen {
            present,
            complete: unnamed == 0,
        })
    }

    /// Whether child `id` of `contact`, missing from a listing of many
    /// contacts' children, is still there: that contact's children read on
    /// their own (one request, only for a contact whose linked child the
    /// listing missed). A contact that cannot be read is gone, and its
    /// children go with its own deletion, not here: still there.
    async fn child_still_there(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
        contact: &str,
        id: &str,
    ) -> Result<bool, EngineError> {
        match pair.connector(source).children_page(entity, contact).await {
            Ok(page) => {
                let (named, unnamed) = rejected_ids(&page.rejected);
                Ok(unnamed > 0
                    || named.iter().any(|n| n == id)
                    || page.records.iter().any(|r| r.id == id))
            }
            Err(error) if error.is_record_error() => Ok(true),
            Err(error) => Err(error.into()),
        }
    }

    /// Hands the records `source` refused to the decider, which
    /// dead-letters each once per record and reason. A refused record
    /// without an id cannot be recognised by id, so it is recognised here
    /// by its reason, which says what the record holds: one that an open
    /// dead letter already names is not dead-lettered again each time a
    /// poll or a reconciliation reads it. (The open dead letters are only
    /// read when such a record is refused: rare, and never per record.)
    pub(super) async fn set_aside(
        &self,
        pair: &PairRuntime,
        decider: &mut Decider<'_>,
        source: Side,
        entity: EntityKind,
        mut rejected: Vec<ConnectorError>,
    ) -> Result<(), EngineError> {
        if rejected.iter().any(|error| record_id(error).is_none()) {
            let side = source;
            let open: HashSet<String> = self
                .store
                .dead_letters(Some(DeadLetterStatus::Open))
                .await?
                .into_iter()
                .filter(|letter| {
                    letter.pair == pair.name()
                        && letter.side == side
                        && letter.entity == entity
                        && letter.record_id.is_none()
                })
                .map(|letter| letter.reason)
                .collect();
            let mut seen = HashSet::new();
            rejected.retain(|error| {
                record_id(error).is_some() || {
                    let reason = error.to_string();
                    !open.contains(&reason) && seen.insert(reason)
                }
            });
        }
        decider.rejected(source, entity, rejected).await
    }

    pub(super) fn advance(
        &self,
        pair: &PairRuntime,
        source: Side,
        entity: EntityKind,
    ) -> CursorAdvance {
        CursorAdvance::new(pair.name(), source, entity, STREAM)
    }

    /// Starts committing the page the decider holds, with `advance` (one
    /// transaction), in a task of its own, so the caller can decide the
    /// next page meanwhile; [`land`](Self::land) waits for it. In plan
    /// mode nothing is written.
    fn launch(
        &self,
        decider: &mut Decider<'_>,
        advance: CursorAdvance,
        mode: Mode,
        ids: HashSet<String>,
    ) -> Option<InFlight> {
        let mut changeset = decider.take_page();
        changeset.cursors.push(advance);
        if mode != Mode::Apply {
            decider.page_committed();
            return None;
        }
        let store = self.store.clone();
        let commit = tokio::spawn(
            async move { store.commit(&changeset).await }.instrument(tracing::Span::current()),
        );
        Some(InFlight { ids, commit })
    }

    /// Waits for the commit started by [`launch`](Self::launch), if any.
    async fn land(
        &self,
        in_flight: Option<InFlight>,
        decider: &mut Decider<'_>,
    ) -> Result<(), EngineError> {
        let Some(in_flight) = in_flight else {
            return Ok(());
        };
        let receipt = match in_flight.commit.await {
            Ok(receipt) => receipt?,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_) => {
                return Err(StoreError::query(
                    "commit",
                    sqlx::Error::Protocol("the commit task was cancelled".into()),
                )
                .into())
            }
        };
        decider.page_committed();
        if !receipt.outbox_new.is_empty() {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Commits what the decider holds, with `advance`: one transaction.
    /// In plan mode nothing is written.
    pub(super) async fn commit(
        &self,
        decider: &mut Decider<'_>,
        advance: CursorAdvance,
        mode: Mode,
    ) -> Result<(), EngineError> {
        let mut changeset: Changeset = decider.take_changeset();
        changeset.cursors.push(advance);
        if mode == Mode::Apply {
            let receipt = self.store.commit(&changeset).await?;
            if !receipt.outbox_new.is_empty() {
                self.wake.notify_one();
            }
        }
        Ok(())
    }
}

/// The id a refused record is named by, if any.
fn record_id(error: &ConnectorError) -> Option<&str> {
    match error {
        ConnectorError::Record { id, .. } => id.as_deref(),
        _ => None,
    }
}

/// The ids of refused records, and how many had none.
pub(super) fn rejected_ids(rejected: &[ConnectorError]) -> (Vec<String>, usize) {
    let named: Vec<String> = rejected
        .iter()
        .filter_map(|error| record_id(error).map(str::to_owned))
        .collect();
    let unnamed = rejected.len() - named.len();
    (named, unnamed)
}
