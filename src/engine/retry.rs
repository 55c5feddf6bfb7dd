//! An operator's retry of a dead letter. A write that failed for good goes
//! back into the outbox as it was; a record that could not be read or
//! mapped is fetched again from its side and run through the engine's
//! normal path (the decider, one committed changeset), so a record fixed
//! at the source, or a mapping fixed in the configuration, syncs like any
//! other change.

use tracing::Instrument;

use super::{Engine, EngineError};
use crate::connector::{ConnectorError, Record};
use crate::domain::Side;

use crate::store::{DeadLetter, DeadLetterStage, DeadLetterStatus, StoreError};

/// Why a dead letter could not be retried. It stays open.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("dead letter {id} does not exist (see `ghlsync dead-letters list`)")]
    NotFound { id: i64 },
    #[error("dead letter {id} is {status}, not open; nothing was done")]
    NotOpen { id: i64, status: DeadLetterStatus },
    #[error("dead letter {id} belongs to pair `{pair}`, which is not configured any more")]
    PairGone { id: i64, pair: String },
    #[error(
        "dead letter {id} names no record to fetch again (the side sent one without a usable id); \
         it is read again when it changes at the source, or drop it"
    )]
    NoRecord { id: i64 },
    #[error(
        "dead letter {id}: {entity} {record} no longer exists on side `{side}`; drop the dead letter"
    )]
    Gone {
        id: i64,
        entity: crate::domain::EntityKind,
        record: String,
        side: String,
    },
    #[error("dead letter {id}: fetching {entity} {record} from side `{side}` failed: {source}")]
    Side {
        id: i64,
        entity: crate::domain::EntityKind,
        record: String,
        side: String,
        #[source]
        source: ConnectorError,
    },
    #[error(transparent)]
    Store(StoreError),
    #[error("dead letter {id}: {source}")]
    Engine {
        id: i64,
        #[source]
        source: EngineError,
    },
}

/// What a retry did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Retried {
    /// The failed write is pending again in the outbox.
    Requeued { outbox_id: i64 },
    /// The record was fetched and decided again: `planned` writes queued.
    Reprocessed { record: String, planned: u64 },
    /// Fetched and decided again, and it failed the same way or another:
    /// a new open dead letter holds the reason.
    FailedAgain { record: String, reason: String },
}

impl Engine {
    /// Retries dead letter `id` (see the module docs). The letter is marked
    /// `retried`; a record that fails again gets a new open dead letter,
    /// so the history shows both attempts.
    pub async fn retry_dead_letter(&self, id: i64) -> Result<Retried, RetryError> {
        let letter = self
            .store
            .dead_letter(id)
            .await
            .map_err(RetryError::Store)?
            .ok_or(RetryError::NotFound { id })?;
        if letter.status != DeadLetterStatus::Open {
            return Err(RetryError::NotOpen {
                id,
                status: letter.status,
            });
        }
        let span = tracing::info_span!(
            "retry",
            pair = %letter.pair,
            entity = %letter.entity,
            dead_letter = id,
            stage = %letter.stage,
            record = letter.record_id.as_deref().unwrap_or("-"),
        );
        let retried = if letter.stage == DeadLetterStage::Write && letter.outbox_id.is_some() {
            let item = self
                .store
                .requeue_dead_write(id)
                .await
                .map_err(|e| store_error(id, e))?;
            self.wake.notify_one();
            Retried::Requeued { outbox_id: item.id }
        } else {
            self.reprocess(letter).instrument(span.clone()).await?
        };
        span.in_scope(|| tracing::info!(outcome = ?retried, "dead letter retried"));
        Ok(retried)
    }

    async fn reprocess(&self, letter: DeadLetter) -> Result<Retried, RetryError> {
        let id = letter.id;
        let pair = self
            .pairs
            .iter()
            .find(|p| p.name() == letter.pair)
            .ok_or_else(|| RetryError::PairGone {
                id,
                pair: letter.pair.clone(),
            })?;
        let record_id = letter
            .record_id
            .clone()
            .ok_or(RetryError::NoRecord { id })?;
        let (role, record) = self.fetch(&letter, &record_id).await?;

        // Retried first, so that failing again opens a new dead letter
        // instead of being taken for a re-read of this one. A version
        // already recorded as seen is decided again as a newer one, so a
        // mapping fixed in the configuration takes effect without an edit.
        self.store
            .close_dead_letter(id, DeadLetterStatus::Retried)
            .await
            .map_err(|e| store_error(id, e))?;
        let decided = self.decide_again(pair, role, record, None).await;
        let (stats, changeset) = match decided {
            Ok(done) => done,
            Err(source) => {
                // Nothing was committed: the letter stays the open one.
                let _ = self
                    .store
                    .set_dead_letter_status(id, DeadLetterStatus::Open)
                    .await;
                return Err(RetryError::Engine { id, source });
            }
        };
        if let Some(again) = changeset.dead_letters.first() {
            return Ok(Retried::FailedAgain {
                record: record_id,
                reason: again.reason.clone(),
            });
        }
        Ok(Retried::Reprocessed {
            record: record_id,
            planned: stats.planned(),
        })
    }

    /// The record of a read/map dead letter, as its side holds it now. A
    /// map-stage letter written while planning a write names the target
    /// side but the source's record, so the other side is asked too.
    async fn fetch(
        &self,
        letter: &DeadLetter,
        record_id: &str,
    ) -> Result<(Side, Record), RetryError> {
        let pair = self
            .pairs
            .iter()
            .find(|p| p.name() == letter.pair)
            .expect("checked by the caller");
        let first = letter.side;
        let roles: &[Side] = if letter.stage == DeadLetterStage::Map {
            &[first, first.other()]
        } else {
            &[first]
        };
        // The letter's own side refusing the id (it may be the other
        // side's) is only the answer when the other side has nothing
        // either; the other side refusing it says nothing.
        let mut refused = None;
        for role in roles.iter().copied() {
            let parent = self
                .store
                .link_by_side_id(pair.name(), letter.entity, role, record_id)
                .await
                .map_err(RetryError::Store)?
                .and_then(|l| l.side(role).parent_id.clone());
            let connector = pair.connector(role);
            match connector
                .get(letter.entity, record_id, parent.as_deref())
                .await
            {
                Ok(Some(record)) => return Ok((role, record)),
                Ok(None) => {}
                Err(error) if error.is_record_error() && roles.len() > 1 => {
                    if role == first {
                        refused = Some((connector.side().to_owned(), error));
                    }
                }
                Err(source) => {
                    return Err(RetryError::Side {
                        id: letter.id,
                        entity: letter.entity,
                        record: record_id.to_owned(),
                        side: connector.side().to_owned(),
                        source,
                    })
                }
            }
        }
        if let Some((side, source)) = refused {
            return Err(RetryError::Side {
                id: letter.id,
                entity: letter.entity,
                record: record_id.to_owned(),
                side,
                source,
            });
        }
        Err(RetryError::Gone {
            id: letter.id,
            entity: letter.entity,
            record: record_id.to_owned(),
            side: pair.connector(first).side().to_owned(),
        })
    }
}

fn store_error(id: i64, error: StoreError) -> RetryError {
    match error {
        StoreError::DeadLetterNotFound { .. } => RetryError::NotFound { id },
        StoreError::DeadLetterNotOpen { status, .. } => RetryError::NotOpen { id, status },
        other => RetryError::Store(other),
    }
}
