//! The match keys of a side's contacts as a reconciliation just listed
//! them: how a new record of the other side finds its match without one
//! duplicate lookup per record (`GET /contacts/search/duplicate` on GHL,
//! which an initial load of 10,000 app contacts sent 20,000 times, one per
//! key). The listing names the candidates; each is then read by its id
//! and verified exactly as a lookup's answer is (`engine::matching`), so
//! no match is taken on the listing's word.
//!
//! A negative answer is only as good as the listing is complete and
//! recent. So the index is used only when every listed record could be
//! read (a contact set aside unreadable could be the match), and it is
//! brought up to date with the side's change feed (records created or
//! edited since the listing began, an overlap below) before it answers for
//! a page of the other side, at most once a second: one request where the
//! lookups cost one or two per record. A side without a change feed is
//! never indexed: its records are looked up one by one, as before.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::matching::{self, Search, Verdict, Verified};
use super::PairRuntime;
use crate::connector::{ConnectorError, Record};
use crate::domain::{EntityKind, MatchKey, Side};
use crate::mapping::Canonical;

/// How often the index is brought up to date, at most.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// The match keys of one side's contacts.
#[derive(Debug)]
pub(super) struct ListedKeys {
    pub side: Side,
    /// `(key, value as compared)` → the ids holding it.
    by_key: HashMap<(MatchKey, String), Vec<String>>,
    /// False once a listed record could not be read: the index cannot
    /// say "nobody" any more.
    complete: bool,
    /// Changes up to this time are in the index (a lagging index shows
    /// them an overlap later: refreshes start that much before it).
    covered_until: DateTime<Utc>,
    /// When it was last brought up to date; never before its first answer.
    refreshed_at: Option<Instant>,
    /// `sync.overlap`: how far below `covered_until` a refresh starts.
    overlap: Duration,
}

impl ListedKeys {
    /// An empty index of `side`, its listing started at `started`.
    pub fn new(side: Side, started: DateTime<Utc>, overlap: Duration) -> Self {
        ListedKeys {
            side,
            by_key: HashMap::new(),
            complete: true,
            covered_until: started,
            refreshed_at: None,
            overlap,
        }
    }

    /// Whether the index can answer for `side` at all.
    pub fn answers_for(&self, side: Side) -> bool {
        self.side == side && self.complete
    }

    /// Adds the keys of `records`; `rejected` records (set aside
    /// unreadable) make the index incomplete.
    pub fn add(&mut self, pair: &PairRuntime, records: &[Record], rejected: usize) {
        if rejected > 0 {
            self.complete = false;
        }
        let map = &pair.settings.map;
        let searchable = &pair.connector(self.side).capabilities().match_keys;
        for record in records {
            let keys = map.match_keys_of(self.side, &record.fields);
            for key in searchable {
                if let Some(text) = matching::key_text(map, &keys, *key) {
                    let ids = self.by_key.entry((*key, text)).or_default();
                    if !ids.contains(&record.id) {
                        ids.push(record.id.clone());
                    }
                }
            }
        }
    }

    /// Brings the index up to date with the side's change feed (always
    /// before its first answer, then unless that was less than
    /// [`REFRESH_EVERY`] ago): called before it answers, so a
    /// reconciliation with no new record costs no refresh.
    pub async fn refresh(&mut self, pair: &PairRuntime) -> Result<(), ConnectorError> {
        let recent = self
            .refreshed_at
            .is_some_and(|at| at.elapsed() < REFRESH_EVERY);
        if !self.complete || recent {
            return Ok(());
        }
        let until = crate::clock::now();
        let overlap = chrono::Duration::from_std(self.overlap).unwrap_or_default();
        let since = self.covered_until - overlap;
        let connector = pair.connector(self.side);
        let mut pages = connector.changes(EntityKind::Contact, since, until);
        while let Some(page) = pages.next().await {
            let page = page?;
            self.add(pair, &page.records, page.rejected.len());
        }
        self.covered_until = until;
        self.refreshed_at = Some(Instant::now());
        Ok(())
    }

    /// [`matching::search`] against the index: each candidate the listing
    /// names for one of `ours`' keys (strongest first) read by its id and
    /// verified; the first that verifies is the match.
    pub async fn search(
        &self,
        pair: &PairRuntime,
        ours: &Canonical,
    ) -> Result<Search, ConnectorError> {
        let map = &pair.settings.map;
        let connector = pair.connector(self.side);
        let mut someone_else = None;
        for key in matching::STRENGTH {
            let Some(text) = matching::key_text(map, ours, key) else {
                continue;
            };
            for id in self.by_key.get(&(key, text)).into_iter().flatten() {
                let record = match connector.get(EntityKind::Contact, id, None).await {
                    Ok(Some(record)) => record,
                    // Deleted since the listing.
                    Ok(None) => continue,
                    Err(error) if error.is_record_error() => continue,
                    Err(error) => return Err(error),
                };
                let theirs = map.match_keys_of(self.side, &record.fields);
                match matching::verdict(map, ours, &theirs) {
                    Verdict::Same(key) => return Ok(Search::Found(Verified { record, key })),
                    Verdict::SomeoneElse(_) => {
                        someone_else.get_or_insert((key, record));
                    }
                    Verdict::Unrelated => {}
                }
            }
        }
        Ok(Search::Nothing { someone_else })
    }
}
