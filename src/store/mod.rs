//! The mirror: what ghlsync last agreed with both sides of every pair, kept
//! in SQLite (embedded default) or Postgres (scale, several replicas).
//!
//! It holds the links between record ids on both sides with their base
//! snapshots, the change-detection cursors, the outbox of planned writes, the
//! journal (audit history), parked field conflicts, dead letters and OAuth
//! tokens.
//!
//! # Invariants this module provides
//!
//! * **One transaction per decision.** [`Store::commit`] writes everything a
//!   detection batch decided (links, outbox rows, journal rows, conflicts,
//!   dead letters, cursor advances) atomically, so a cursor never moves past
//!   changes that are not durably queued (nothing lost on `kill -9`).
//! * **Idempotent enqueue.** Outbox rows are keyed by an idempotency key;
//!   re-detecting the same change enqueues nothing new.
//! * **Leases, not locks.** [`Store::claim_outbox`] leases rows for a while;
//!   a crashed writer's rows become claimable again when the lease expires.
//! * **Atomic completion.** [`Store::complete_outbox`] marks the write done,
//!   records the new ids and snapshot, and journals it in one transaction.
//! * **Same values on both backends.** Timestamps are truncated to
//!   microseconds at the store edge; JSON is TEXT on SQLite and JSONB on
//!   Postgres; enumerations are lowercase TEXT with CHECK constraints.
//!
//! # How queries are written
//!
//! Each statement is written once with `$N` placeholders and run through
//! `on_pool!` / `on_tx!`, which expand the same body for both concrete
//! backends. SQLite accepts `$N` too, but multi-row statements are passed
//! through `sql::dialect`: on SQLite, placeholders bound in text order
//! become anonymous `?` (no name to look up while binding; the big inserts
//! of a commit bind every value per row for this), others `?N`, which
//! SQLite resolves by number rather than by name; `?N` statements are
//! chunked smaller (see `sql.rs`). The commit's inserts and id lookups on
//! Postgres take one array per column (`UNNEST`, `= ANY`). Where
//! SQL genuinely differs (e.g. `FOR UPDATE SKIP LOCKED`, reserving ids), the
//! code branches on the backend with two string constants.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use sqlx::migrate::{Migrate, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::database::{scrub_url_secrets, Backend, DatabaseSettings};

/// Runs `$body` with `$p` bound to the store's concrete pool (`&SqlitePool`
/// or `&PgPool`). The body must evaluate to the same type for both.
macro_rules! on_pool {
    ($store:expr, |$p:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($p) => $body,
            $crate::store::Pool::Postgres($p) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the transaction's concrete connection
/// (`&mut SqliteConnection` or `&mut PgConnection`); use `&mut *$c` as the
/// executor of each statement.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t, _) => {
                let $c: &mut ::sqlx::SqliteConnection = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $c: &mut ::sqlx::PgConnection = &mut **t;
                $body
            }
        }
    };
}

mod audit;
mod changeset;
mod checkpoint;
mod conflicts;
mod cursors;
mod dead_letters;
mod deliveries;
mod error;
mod health;
mod journal;
mod links;
mod model;
mod outbox;
mod pairs;
mod redecisions;
mod sealing;
mod sql;
mod sqlite_dir;
mod tokens;
mod usage;

pub use changeset::{Changeset, CommitReceipt, Completion};
pub use conflicts::{Conflict, ConflictStatus, NewConflict};
pub use cursors::{Cursor, CursorAdvance};
pub use dead_letters::{DeadLetter, DeadLetterStage, DeadLetterStatus, NewDeadLetter};
pub use error::{Result, StoreError};
pub use health::{PairBacklog, SideHealth, SideOutbox};
pub use journal::{Direction, JournalAction, JournalEntry, NewJournalEntry, OutboxRef};
pub use links::{Link, LinkRef, LinkSide, LinkUpdate, LinkWrite, NewLink, SidePatch, Snapshot};
pub use model::Change;
pub use outbox::{
    FailOutcome, LeasedWrites, NewOutboxItem, OutboxDepth, OutboxItem, OutboxOp, OutboxStatus,
    PayloadJson,
};
pub use pairs::{Pair, PairRegistration, PairSide};
pub use redecisions::Redecision;
pub use sqlite_dir::sqlite_dirs_to_create;
pub use usage::{day_text, RequestUsage};
// The OAuth token sets this store keeps for the GHL connector, which owns
// the type (see `tokens.rs`).
pub use crate::connector::ghl::StoredToken;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The mirror store. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite: copies the write-ahead log into the database beside the
    /// commits (see `checkpoint.rs`).
    checkpointer: checkpoint::SharedCheckpointer,
    /// Seals OAuth tokens at rest when `database.token_key` is set.
    sealer: Option<sealing::TokenSealer>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A transaction on either backend; dropped without `commit` it rolls back.
/// A SQLite one wakes the store's checkpointer once committed.
enum Tx {
    Sqlite(
        sqlx::Transaction<'static, sqlx::Sqlite>,
        checkpoint::SharedCheckpointer,
    ),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(..) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    async fn commit(self, op: &str) -> Result<()> {
        match self {
            Tx::Sqlite(t, checkpointer) => {
                let committed = t.commit().await;
                if let Some(checkpointer) = checkpointer.filter(|_| committed.is_ok()) {
                    checkpointer.committed().await;
                }
                committed
            }
            Tx::Postgres(t) => t.commit().await,
        }
        .map_err(|e| StoreError::query(format!("{op} (commit)"), e))
    }
}

/// A schema migration applied by [`Store::migrate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub description: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend().as_str())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the mirror database described by the settings (creating the
    /// SQLite file and its directory if missing) without touching the schema,
    /// so commands like `migrate --check` can inspect it first.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store> {
        let raw_url = settings.url.expose_secret();
        let connect_err = |reason: String| StoreError::Connect {
            backend: settings.backend.as_str(),
            url: settings.redacted_url(),
            reason: scrub_url_secrets(&reason, raw_url),
        };
        let (pool, checkpointer) = match settings.backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(raw_url)
                    .map_err(|e| connect_err(e.to_string()))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(settings.sqlite_busy_timeout)
                    .foreign_keys(true)
                    // Checkpoints run beside the commits (`checkpoint.rs`).
                    .pragma("wal_autocheckpoint", "0")
                    // New mirrors only (a database keeps its page size):
                    // a commit appends a frame to the log per page it
                    // dirtied, two writes each, so bigger pages mean fewer
                    // writes for the same rows. 8 KiB measured ~7% faster
                    // than 4 KiB on the throughput benchmark; 16 KiB no
                    // better than 4 KiB (a page rewritten for one new
                    // index entry costs more).
                    .page_size(8192);
                sqlite_dir::ensure_parent_dir(options.get_filename())?;
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.max_connections.max(1))
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                let checkpointer = Arc::new(checkpoint::Checkpointer::start(pool.clone()));
                (Pool::Sqlite(pool), Some(checkpointer))
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(raw_url)
                    .map_err(|e| connect_err(e.to_string()))?
                    .application_name("ghlsync")
                    // The mirror grows from empty during a backfill: a
                    // cached generic plan made while `links` was tiny
                    // (a sequential scan) would otherwise stay in use as it
                    // reaches millions of rows. Planning these short
                    // statements each time costs microseconds.
                    .options([("plan_cache_mode", "force_custom_plan")]);
                first_postgres_connection(&options, settings.acquire_timeout)
                    .await
                    .map_err(connect_err)?;
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections.max(1))
                    .acquire_timeout(settings.acquire_timeout)
                    .connect_with(options)
                    .await
                    .map_err(|e| connect_err(e.to_string()))?;
                (Pool::Postgres(pool), None)
            }
        };
        let sealer = settings.token_key.as_ref().map(sealing::TokenSealer::new);
        Ok(Store {
            pool,
            checkpointer,
            sealer,
        })
    }

    /// Opens the database and brings its schema up to date: what the daemon
    /// and most commands do at start-up.
    pub async fn connect_and_migrate(settings: &DatabaseSettings) -> Result<Store> {
        let store = Store::connect(settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the embedded migrations that are not applied yet and returns
    /// them (empty when the schema was up to date), so the CLI can say
    /// "applied N migration(s)" or "up to date". Safe to run repeatedly and
    /// concurrently (sqlx takes a lock on Postgres).
    pub async fn migrate(&self) -> Result<Vec<AppliedMigration>> {
        let backend = self.backend().as_str();
        let migrate_err = |source| StoreError::Migrate { backend, source };
        let before = on_pool!(self, |p| {
            let mut conn = p
                .acquire()
                .await
                .map_err(|e| migrate_err(sqlx::migrate::MigrateError::from(e)))?;
            conn.ensure_migrations_table().await.map_err(migrate_err)?;
            conn.list_applied_migrations()
                .await
                .map_err(migrate_err)?
                .into_iter()
                .map(|m| m.version)
                .collect::<HashSet<i64>>()
        });
        let migrator = match self.pool {
            Pool::Sqlite(_) => &SQLITE_MIGRATOR,
            Pool::Postgres(_) => &POSTGRES_MIGRATOR,
        };
        on_pool!(self, |p| migrator.run(p).await).map_err(migrate_err)?;
        Ok(migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !before.contains(&m.version))
            .map(|m| AppliedMigration {
                version: m.version,
                description: m.description.to_string(),
            })
            .collect())
    }

    /// Which engine holds this mirror (SQL differs in a few places, and
    /// `status` output reports it).
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// SQLite: copies the write-ahead log into the database file now,
    /// instead of waiting for the background checkpointer; returns the
    /// log's pages it could not copy yet (readers still on them). Postgres
    /// has nothing to do.
    pub async fn checkpoint(&self) -> Result<i64> {
        match &self.pool {
            Pool::Sqlite(p) => checkpoint::checkpoint(p, checkpoint::TRUNCATE_AT_FRAMES)
                .await
                .map_err(|e| StoreError::query("checkpoint", e)),
            Pool::Postgres(_) => Ok(0),
        }
    }

    /// One trivial query: whether the database answers (`/readyz`).
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, |p| sqlx::query("SELECT 1")
            .execute(p)
            .await
            .map(|_| ()))
        .map_err(|e| StoreError::query("ping", e))
    }

    /// Whether a statement or transaction holds one of the store's
    /// connections right now. The deterministic simulation waits while it
    /// does (a poll commits each page in a task of its own), so the next
    /// step starts on a settled mirror.
    pub fn in_use(&self) -> bool {
        on_pool!(self, |p| p.num_idle() < p.size() as usize)
    }

    /// Waits for in-flight statements and closes every connection, so a
    /// graceful shutdown leaves the SQLite WAL checkpointed and Postgres
    /// sessions ended.
    pub async fn close(&self) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.stop();
        }
        on_pool!(self, |p| p.close().await)
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`: the
    /// write lock is taken up front (waiting up to the busy timeout) instead
    /// of failing with SQLITE_BUSY when a read transaction tries to upgrade.
    async fn begin(&self, op: &str) -> Result<Tx> {
        match &self.pool {
            Pool::Sqlite(p) => p
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map(|t| Tx::Sqlite(t, self.checkpointer.clone())),
            Pool::Postgres(p) => p.begin().await.map(Tx::Postgres),
        }
        .map_err(|e| StoreError::query(format!("{op} (begin)"), e))
    }
}

/// One connection made outside the pool, closed again: the pool retries a
/// failed connection until its acquire timeout and then reports only
/// "pool timed out", hiding a refused connection, a failed login or a
/// missing database for 30 s. A server that answers fails here at once,
/// with the driver's reason; one that never answers within `timeout` is
/// reported as such.
async fn first_postgres_connection(
    options: &PgConnectOptions,
    timeout: std::time::Duration,
) -> std::result::Result<(), String> {
    use sqlx::{ConnectOptions as _, Connection as _};
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(Ok(connection)) => {
            // A failed goodbye changes nothing: the pool connects anew.
            let _ = connection.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} (database.acquire_timeout)",
            humantime::format_duration(timeout)
        )),
    }
}
