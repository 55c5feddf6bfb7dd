//! SQLite WAL checkpoints, run beside the commits instead of inside them.
//!
//! By default SQLite checkpoints from whichever connection commits the
//! transaction that takes the write-ahead log past 1,000 pages: that commit
//! then also copies the whole log into the database file and syncs it,
//! about a fifth of the commit path's time while a backfill streams pages.
//! The store turns that off on its connections (`wal_autocheckpoint = 0`)
//! and runs checkpoints here on a connection of their own, as SQLite's
//! documentation suggests for write-heavy applications: woken after each
//! committed transaction (and every few seconds for single statements),
//! it waits a moment for the commits right behind, then runs a `PASSIVE`
//! checkpoint, which never blocks readers or writers.
//!
//! A passive checkpoint cannot always finish while commits keep coming, and
//! the log only starts over once one has. So that the log stays bounded
//! under any load, once a passive checkpoint leaves [`TRUNCATE_AT_FRAMES`]
//! pages or more, the next commit runs a `TRUNCATE` checkpoint before it
//! returns (see [`Checkpointer::committed`]): it waits for the readers,
//! copies the rest and empties the file.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Log size (in pages) at which the next commit empties the log: 64 MiB
/// with the 8 KiB pages of new mirrors (32 MiB with the 4 KiB pages of
/// mirrors created before), about two seconds of a backfill.
pub(super) const TRUNCATE_AT_FRAMES: i64 = 8_192;

/// How often the checkpointer looks at the log without being woken, for
/// writes outside [`super::Store`]'s transactions (single statements).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// How long the checkpointer waits after being woken, so one checkpoint
/// covers the commits of that moment (a backfill commits a page every few
/// tens of milliseconds).
const SETTLE: Duration = Duration::from_millis(250);

/// The background checkpoint task of a SQLite store; stops when the last
/// clone of the store is dropped or the store is closed.
pub(super) struct Checkpointer {
    wake: Arc<Notify>,
    /// Set by the task when a passive checkpoint left the log at
    /// [`TRUNCATE_AT_FRAMES`] or more; the next commit then empties it.
    behind: Arc<AtomicBool>,
    pool: SqlitePool,
    task: JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn start(pool: SqlitePool) -> Checkpointer {
        let wake = Arc::new(Notify::new());
        let behind = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(pool.clone(), wake.clone(), behind.clone()));
        Checkpointer {
            wake,
            behind,
            pool,
            task,
        }
    }

    /// Called after a transaction committed: there are new pages to copy.
    ///
    /// While commits follow each other without a gap (a backfill), the
    /// passive checkpoints never finish and the log never starts over; a
    /// truncating checkpoint from the side would wait for a gap that never
    /// comes. So once the task reports the log too long, the committer
    /// truncates it before returning, while the next commit of its poll
    /// waits for this one: the log stays bounded, and only then do commits
    /// pay for a checkpoint, as they always did with SQLite's own.
    pub(super) async fn committed(&self) {
        if self.behind.swap(false, Ordering::Relaxed) {
            match checkpoint(&self.pool, 0).await {
                Ok(left) if left > 0 => self.behind.store(true, Ordering::Relaxed),
                Ok(_) => {}
                Err(error) => {
                    self.behind.store(true, Ordering::Relaxed);
                    tracing::warn!(error = %error, "SQLite WAL checkpoint failed");
                }
            }
        }
        self.wake.notify_one();
    }

    /// Stops the task, so closing the pool does not wait for it.
    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(pool: SqlitePool, wake: Arc<Notify>, behind: Arc<AtomicBool>) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
        // Let the commits of the next moment land first: pages they all
        // rewrite (the right edge of each index) are then copied once.
        tokio::time::sleep(SETTLE).await;
        if pool.is_closed() {
            return;
        }
        match passive(&pool).await {
            Ok((log, _)) => behind.store(log >= TRUNCATE_AT_FRAMES, Ordering::Relaxed),
            // The next commit wakes it again.
            Err(error) => tracing::warn!(error = %error, "SQLite WAL checkpoint failed"),
        }
    }
}

/// A `PASSIVE` checkpoint: the log's size and how much of it is now in the
/// database, in pages.
async fn passive(pool: &SqlitePool) -> Result<(i64, i64), sqlx::Error> {
    let (_busy, log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok((log, copied))
}

/// One passive checkpoint, then a truncating one if the log has
/// `truncate_at` pages or more. Returns the log's pages not yet copied.
pub(super) async fn checkpoint(pool: &SqlitePool, truncate_at: i64) -> Result<i64, sqlx::Error> {
    let (log, copied) = passive(pool).await?;
    if log < truncate_at {
        return Ok(log - copied);
    }
    let (busy, log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await?;
    tracing::debug!(busy, log, copied, "SQLite WAL truncated");
    Ok(if busy != 0 { (log - copied).max(1) } else { 0 })
}

/// Shared by the store's clones; `None` on Postgres.
pub(super) type SharedCheckpointer = Option<Arc<Checkpointer>>;

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;

    async fn pool_with_a_log(dir: &std::path::Path) -> SqlitePool {
        let file = dir.join("t.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v TEXT)")
            .execute(&pool)
            .await
            .unwrap();
        for _ in 0..20 {
            sqlx::query("INSERT INTO t VALUES (?)")
                .bind("x".repeat(5000))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool
    }

    fn log_bytes(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("t.db-wal")).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn a_log_past_the_limit_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_with_a_log(dir.path()).await;
        let log = || log_bytes(dir.path());
        assert!(log() > 0);
        // Under the limit: copied, the log kept for reuse.
        assert_eq!(checkpoint(&pool, i64::MAX).await.unwrap(), 0);
        assert!(log() > 0);
        // Past it: emptied.
        assert_eq!(checkpoint(&pool, 1).await.unwrap(), 0);
        assert_eq!(log(), 0);
        pool.close().await;
    }

    /// Commits that follow each other without a gap never let a passive
    /// checkpoint finish: once the task reports the log too long, the
    /// next commit empties it before returning.
    #[tokio::test]
    async fn a_commit_empties_a_log_the_task_reports_too_long() {
        let dir = tempfile::tempdir().unwrap();
        let pool = pool_with_a_log(dir.path()).await;
        let checkpointer = Checkpointer::start(pool.clone());
        assert!(log_bytes(dir.path()) > 0);
        checkpointer.behind.store(true, Ordering::Relaxed);
        checkpointer.committed().await;
        assert_eq!(log_bytes(dir.path()), 0);
        assert!(!checkpointer.behind.load(Ordering::Relaxed));
        checkpointer.stop();
        pool.close().await;
    }
}
