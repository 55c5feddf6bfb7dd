//! Errors of the mirror store.
//!
//! Every message names the operation and the ids involved so an operator can
//! find the row; none contains a token, a payload or the database password
//! (connection errors are reported against the redacted URL and scrubbed).

use std::path::PathBuf;

use super::dead_letters::DeadLetterStatus;
use super::outbox::OutboxStatus;
use crate::domain::Side;

/// Result of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in the mirror store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that should hold the SQLite file is missing and could
    /// not be created (permissions, read-only file system, ...).
    #[error("cannot create directory {} for the SQLite mirror database: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The database could not be opened or reached.
    #[error("cannot open the {backend} mirror database at {url}: {reason}")]
    Connect {
        backend: &'static str,
        /// The URL with its password replaced by `***`.
        url: String,
        /// The driver's message, scrubbed of the password.
        reason: String,
    },

    /// Applying the embedded schema migrations failed.
    #[error("applying the {backend} mirror schema migrations failed: {source}")]
    Migrate {
        backend: &'static str,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A statement failed; `op` names the store operation and its ids.
    #[error("mirror store: {op} failed: {source}")]
    Query {
        op: String,
        #[source]
        source: sqlx::Error,
    },

    /// The pair already exists bound to another location on one side: its
    /// links point at records of the old location, so re-using them would
    /// corrupt both sides.
    #[error(
        "pair {pair:?} is bound to {side} location {} in the mirror, but the configuration now \
         says {}; its links belong to the old location. Use a new pair name for the new \
         location (or restore the old one)",
        display_opt(.was), display_opt(.now)
    )]
    PairRebound {
        pair: String,
        side: Side,
        was: Option<String>,
        now: Option<String>,
    },

    /// A link id given by the caller does not exist.
    #[error("mirror store: {op}: link {id} does not exist")]
    LinkNotFound { op: &'static str, id: i64 },

    /// An outbox id given by the caller does not exist (pruned or never made).
    #[error("mirror store: {op}: outbox item {id} does not exist")]
    OutboxNotFound { op: &'static str, id: i64 },

    /// The outbox item is not pending any more (already done, dead or
    /// cancelled), so it cannot be completed, failed or cancelled again.
    #[error("mirror store: {op}: outbox item {id} is {status}, not pending")]
    OutboxNotPending {
        op: &'static str,
        id: i64,
        status: OutboxStatus,
    },

    /// A journal row referenced an outbox item by an idempotency key that is
    /// neither in the changeset nor in the outbox.
    #[error("mirror store: {op}: no outbox item has idempotency key {key:?}")]
    UnknownOutboxKey { op: &'static str, key: String },

    /// A row of a changeset referenced `LinkRef::New(n)` but no
    /// `LinkWrite::Insert` of that changeset has `local_ref` n.
    #[error(
        "mirror store: {op}: local link reference {local_ref} is not inserted by this changeset"
    )]
    UnknownLocalRef { op: &'static str, local_ref: u32 },

    /// Two `LinkWrite::Insert` of one changeset used the same `local_ref`.
    #[error("mirror store: {op}: local link reference {local_ref} is used by two inserted links")]
    DuplicateLocalRef { op: &'static str, local_ref: u32 },

    /// The conflict id does not exist.
    #[error("mirror store: conflict {id} does not exist")]
    ConflictNotFound { id: i64 },

    /// The conflict was already resolved.
    #[error("mirror store: conflict {id} is already resolved")]
    ConflictNotOpen { id: i64 },

    /// The dead letter id does not exist.
    #[error("mirror store: dead letter {id} does not exist")]
    DeadLetterNotFound { id: i64 },

    /// The stored OAuth tokens of a subject are encrypted, but no
    /// `database.token_key` is configured to decrypt them.
    #[error(
        "mirror store: the OAuth tokens of {subject} are encrypted, but no database.token_key is \
         configured to decrypt them; set database.token_key (or GHLSYNC__DATABASE__TOKEN_KEY) to \
         the key they were saved with, or run `ghlsync auth login` again"
    )]
    TokenKeyMissing { subject: String },

    /// The stored OAuth tokens of a subject do not decrypt with the
    /// configured key: another key, or a value altered or moved from
    /// another row.
    #[error(
        "mirror store: the configured database.token_key cannot decrypt the OAuth tokens of \
         {subject} (they were saved with another key, or the stored value was altered or copied \
         from another row); set the key they were saved with, or run `ghlsync auth login` again"
    )]
    TokenUndecryptable { subject: String },

    /// The dead letter was already retried or dropped: a decision on it is
    /// taken once.
    #[error("mirror store: dead letter {id} is {status}, not open")]
    DeadLetterNotOpen { id: i64, status: DeadLetterStatus },

    /// A write-stage dead letter whose outbox item is gone or not dead any
    /// more, so there is nothing to re-queue.
    #[error("mirror store: dead letter {id}: {reason}")]
    NotRequeueable { id: i64, reason: String },
}

impl StoreError {
    /// Wraps a driver error with the operation (and ids) it happened in.
    pub(crate) fn query(op: impl Into<String>, source: sqlx::Error) -> Self {
        StoreError::Query {
            op: op.into(),
            source,
        }
    }

    /// True when the error is a uniqueness or foreign-key violation, i.e. the
    /// caller asked for something the schema forbids (as opposed to the
    /// database being unreachable).
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            StoreError::Query {
                source: sqlx::Error::Database(db),
                ..
            } => matches!(
                db.kind(),
                sqlx::error::ErrorKind::UniqueViolation
                    | sqlx::error::ErrorKind::ForeignKeyViolation
                    | sqlx::error::ErrorKind::NotNullViolation
                    | sqlx::error::ErrorKind::CheckViolation
            ),
            _ => false,
        }
    }
}

/// Returns a closure mapping a driver error to [`StoreError::Query`]; the op
/// string is only built when an error actually happens.
pub(crate) fn op_err<F, S>(op: F) -> impl FnOnce(sqlx::Error) -> StoreError
where
    F: FnOnce() -> S,
    S: Into<String>,
{
    move |source| StoreError::query(op(), source)
}

fn display_opt(value: &Option<String>) -> String {
    match value {
        Some(v) => format!("{v:?}"),
        None => "(none)".to_owned(),
    }
}
