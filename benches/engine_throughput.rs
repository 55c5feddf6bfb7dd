//! Engine throughput and memory without network cost: a synthetic GHL side
//! generates contacts in-process (nothing held in memory), the engine
//! detects, maps, diffs, plans and persists them in the mirror, and the
//! same run measures a plain batched upsert of the same rows into the same
//! database for comparison: every row the engine persisted (a link, an
//! outbox row and a journal row per record, the cursor per page), read
//! back and upserted into a second, freshly migrated mirror (same tables,
//! same indexes), 500 records per transaction, no decision logic. The
//! older figure, one scratch row (id, content, updated_at) per record, is
//! printed too.
//!
//! cargo bench --bench engine_throughput -- [--records 200000]
//!     [--database postgres://postgres@127.0.0.1:5432/postgres] [--rss 1000000]
//!
//! Targets: at least 50,000 records/s on SQLite, and at least half the
//! plain-upsert rate. With `--rss N`, the mirror is filled with N contacts
//! and the peak RSS is printed as it grows and while polling afterwards
//! (target: under 150 MB with 1,000,000, and flat).

#[path = "common/args.rs"]
mod args;
#[path = "../tests/common/fake_side.rs"]
mod fake_side;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use ghl_sync::config::{self, DatabaseSettings};
use ghl_sync::connector::{Record, Stamp};
use ghl_sync::domain::{EntityKind, Side};
use ghl_sync::engine::Engine;
use serde_json::{json, Value};

use fake_side::{base, demo_engine, demo_settings, poll_contacts, FakeSide, Feed};

const PAGE: usize = 500;

/// A GHL-shaped (or, for the app side, bare) feed of `count` contacts
/// generated from their index, nothing held in memory: the `i`th was
/// updated at `base + i ms`; pages of `PAGE` within the window asked for.
#[derive(Debug)]
struct Synthetic {
    ghl_shape: bool,
    count: AtomicUsize,
}

/// A side of `count` generated contacts.
fn synthetic(side: &'static str, ghl_shape: bool, count: usize) -> FakeSide<Synthetic> {
    let feed = Synthetic {
        ghl_shape,
        count: AtomicUsize::new(count),
    };
    FakeSide::new(side, feed)
}

impl Synthetic {
    fn record(&self, i: usize) -> Record {
        let fields = if self.ghl_shape {
            json!({
                "id": format!("g{i:08}"),
                "email": format!("user{i}@example.com"),
                "firstName": format!("First{i}"),
                "lastName": "Benchmark",
                "phone": format!("+1212555{:04}", i % 10_000),
                "tags": ["customer", "newsletter"],
            })
        } else {
            json!({"id": format!("a{i:08}")})
        };
        let Value::Object(fields) = fields else {
            unreachable!()
        };
        Record {
            entity: EntityKind::Contact,
            id: fields["id"].as_str().unwrap().to_owned(),
            parent_id: None,
            updated_at: base() + Duration::milliseconds(i as i64),
            stamp: Stamp::Side,
            fields,
        }
    }
}

impl Feed for Synthetic {
    fn pages(&self, since: DateTime<Utc>, until: DateTime<Utc>) -> BoxStream<'_, Vec<Record>> {
        let count = self.count.load(Ordering::Relaxed);
        let index = |t: DateTime<Utc>| (t - base()).num_milliseconds().max(0) as usize;
        let first = index(since);
        let last = (index(until) + 1).min(count);
        let starts: Vec<usize> = (first..last).step_by(PAGE).collect();
        stream::iter(starts)
            .map(move |start| {
                (start..(start + PAGE).min(last))
                    .map(|i| self.record(i))
                    .collect()
            })
            .boxed()
    }

    fn get(&self, id: &str) -> Option<Record> {
        id[1..].parse().ok().map(|i| self.record(i))
    }
}

/// An engine of the demo pair over `ghl` and an app side of no records.
async fn engine(settings: &config::Settings, ghl: Arc<FakeSide<Synthetic>>) -> Engine {
    let app = Arc::new(synthetic("app", false, 0));
    demo_engine(settings, ghl, app).await
}

/// The older baseline: ONE scratch row (id, native JSON, updated_at) per
/// record, upserted plainly in batches of `PAGE`, one transaction per
/// batch. Kept for comparison with earlier figures; it writes a third of
/// the rows the engine does.
async fn one_row_upsert(database: &DatabaseSettings, ghl: &Synthetic, records: usize) -> f64 {
    let url = database.url.expose_for_bench();
    let started;
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("DROP TABLE IF EXISTS bench_upsert")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE bench_upsert (id TEXT PRIMARY KEY, content JSONB NOT NULL, updated_at TIMESTAMPTZ NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        started = Instant::now();
        for start in (0..records).step_by(PAGE) {
            let end = (start + PAGE).min(records);
            let sql = upsert_sql(end - start, '$');
            let mut tx = pool.begin().await.unwrap();
            let mut q = sqlx::query(&sql);
            for i in start..end {
                let r = ghl.record(i);
                q = q
                    .bind(r.id)
                    .bind(sqlx::types::Json(Value::Object(r.fields)))
                    .bind(r.updated_at);
            }
            q.execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        sqlx::query("DROP TABLE bench_upsert")
            .execute(&pool)
            .await
            .unwrap();
    } else {
        let options: sqlx::sqlite::SqliteConnectOptions = url.parse().unwrap();
        let pool = sqlx::SqlitePool::connect_with(
            options
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
        )
        .await
        .unwrap();
        sqlx::query("DROP TABLE IF EXISTS bench_upsert")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE bench_upsert (id TEXT PRIMARY KEY, content TEXT NOT NULL, updated_at TEXT NOT NULL) STRICT")
            .execute(&pool)
            .await
            .unwrap();
        started = Instant::now();
        // SQLite binds at most 32766 parameters: 500 rows x 3 is fine.
        for start in (0..records).step_by(PAGE) {
            let end = (start + PAGE).min(records);
            let sql = upsert_sql(end - start, '?');
            let mut tx = pool.begin().await.unwrap();
            let mut q = sqlx::query(&sql);
            for i in start..end {
                let r = ghl.record(i);
                q = q
                    .bind(r.id)
                    .bind(Value::Object(r.fields).to_string())
                    .bind(r.updated_at.to_rfc3339());
            }
            q.execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        sqlx::query("DROP TABLE bench_upsert")
            .execute(&pool)
            .await
            .unwrap();
    }
    records as f64 / started.elapsed().as_secs_f64()
}

/// How a column is read and bound in the same-rows baseline.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Text,
    /// JSON: TEXT on SQLite, JSONB on Postgres (moved as text).
    Json,
    /// Timestamp: TEXT on SQLite, TIMESTAMPTZ on Postgres.
    Time,
}

/// A table the engine persists, its columns and its upsert target.
struct Table {
    name: &'static str,
    conflict: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// Column that orders the rows (pages follow it).
    order: &'static str,
}

use Kind::{Int, Json as J, Text, Time};

const LINKS: Table = Table {
    name: "links",
    conflict: "id",
    order: "id",
    columns: &[
        ("id", Int),
        ("pair", Text),
        ("entity", Text),
        ("a_id", Text),
        ("b_id", Text),
        ("a_parent_id", Text),
        ("b_parent_id", Text),
        ("content", J),
        ("content_hash", Text),
        ("a_updated_at", Time),
        ("b_updated_at", Time),
        ("deleted_at", Time),
        ("created_at", Time),
        ("updated_at", Time),
    ],
};

const OUTBOX: Table = Table {
    name: "outbox",
    conflict: "id",
    order: "id",
    columns: &[
        ("id", Int),
        ("idempotency_key", Text),
        ("pair", Text),
        ("target_side", Text),
        ("entity", Text),
        ("op", Text),
        ("link_id", Int),
        ("target_id", Text),
        ("parent_id", Text),
        ("payload", J),
        ("status", Text),
        ("attempts", Int),
        ("next_attempt_at", Time),
        ("locked_until", Time),
        ("last_error", Text),
        ("created_at", Time),
        ("updated_at", Time),
        ("completed_at", Time),
    ],
};

const JOURNAL: Table = Table {
    name: "journal",
    conflict: "id",
    order: "id",
    columns: &[
        ("id", Int),
        ("at", Time),
        ("pair", Text),
        ("entity", Text),
        ("link_id", Int),
        ("direction", Text),
        ("a_id", Text),
        ("b_id", Text),
        ("action", Text),
        ("fields", J),
        ("outbox_id", Int),
        ("detail", Text),
    ],
};

const CURSORS: Table = Table {
    name: "cursors",
    conflict: "pair, side, entity, stream",
    order: "pair",
    columns: &[
        ("pair", Text),
        ("side", Text),
        ("entity", Text),
        ("stream", Text),
        ("watermark", Time),
        ("cursor", Text),
        ("last_poll_at", Time),
        ("last_success_at", Time),
        ("last_full_sync_at", Time),
        ("updated_at", Time),
    ],
};

/// One column value of a row read back from the engine's mirror.
enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
    Time(Option<DateTime<Utc>>),
}

impl Table {
    /// `SELECT` of every row, oldest first (JSON read as text).
    fn select(&self, postgres: bool) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .map(|(c, k)| match k {
                J if postgres => format!("{c}::text"),
                Int if postgres => format!("{c}::int8"),
                _ => c.to_string(),
            })
            .collect();
        format!(
            "SELECT {} FROM {} ORDER BY {}",
            cols.join(", "),
            self.name,
            self.order
        )
    }

    /// A plain multi-row upsert of `rows` rows, placeholders in order.
    fn upsert(&self, rows: usize, postgres: bool) -> String {
        let mut n = 0;
        let tuples: Vec<String> = (0..rows)
            .map(|_| {
                let cells: Vec<String> = self
                    .columns
                    .iter()
                    .map(|(_, k)| {
                        n += 1;
                        match (postgres, k) {
                            (true, J) => format!("${n}::jsonb"),
                            (true, _) => format!("${n}"),
                            (false, _) => "?".to_owned(),
                        }
                    })
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect();
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| *c).collect();
        let keys: Vec<&str> = self.conflict.split(", ").collect();
        let set: Vec<String> = names
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        format!(
            "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}",
            self.name,
            names.join(", "),
            tuples.join(", "),
            self.conflict,
            set.join(", ")
        )
    }
}

macro_rules! read_rows {
    ($pool:expr, $table:expr, $postgres:expr) => {{
        use sqlx::Row;
        let rows = sqlx::query(&$table.select($postgres))
            .fetch_all($pool)
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                $table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, k))| match k {
                        Int => Cell::Int(row.get(i)),
                        Text | J => Cell::Text(row.get(i)),
                        Time => Cell::Time(row.get(i)),
                    })
                    .collect::<Vec<Cell>>()
            })
            .collect::<Vec<Vec<Cell>>>()
    }};
}

macro_rules! bind_rows {
    ($query:expr, $rows:expr) => {{
        let mut q = $query;
        for row in $rows {
            for cell in row {
                q = match cell {
                    Cell::Int(v) => q.bind(*v),
                    Cell::Text(v) => q.bind(v.as_deref()),
                    Cell::Time(v) => q.bind(*v),
                };
            }
        }
        q
    }};
}

/// The same-rows baseline: the rows the engine persisted in `source`
/// (links, outbox, journal, cursor), upserted plainly into `target`, a
/// freshly migrated mirror, `PAGE` records per transaction (a page's
/// links, outbox rows and journal rows, and the cursor), each table one
/// multi-row statement with its parameters in order. Reading them back
/// is not timed. Returns records per second.
async fn same_rows_upsert(source: &DatabaseSettings, target: &DatabaseSettings) -> f64 {
    let (src, dst) = (source.url.expose_for_bench(), target.url.expose_for_bench());
    macro_rules! run {
        ($pool_ty:ty, $postgres:expr, $to:expr) => {{
            let from = <$pool_ty>::connect(&src).await.unwrap();
            let to = $to;
            let links = read_rows!(&from, LINKS, $postgres);
            let outbox = read_rows!(&from, OUTBOX, $postgres);
            let journal = read_rows!(&from, JOURNAL, $postgres);
            let cursors = read_rows!(&from, CURSORS, $postgres);
            assert_eq!(links.len(), outbox.len(), "one outbox row per link");
            assert_eq!(links.len(), journal.len(), "one journal row per link");
            let records = links.len();
            let started = Instant::now();
            for page in 0..records.div_ceil(PAGE) {
                let range = page * PAGE..((page + 1) * PAGE).min(records);
                let mut tx = to.begin().await.unwrap();
                for (table, rows) in [
                    (&LINKS, &links[range.clone()]),
                    (&OUTBOX, &outbox[range.clone()]),
                    (&JOURNAL, &journal[range.clone()]),
                    (&CURSORS, &cursors[..]),
                ] {
                    let sql = table.upsert(rows.len(), $postgres);
                    bind_rows!(sqlx::query(&sql), rows)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
            let elapsed = started.elapsed();
            from.close().await;
            to.close().await;
            (records, elapsed)
        }};
    }
    let (records, elapsed) = if src.starts_with("postgres") {
        run!(
            sqlx::PgPool,
            true,
            sqlx::PgPool::connect(&dst).await.unwrap()
        )
    } else {
        // The store's own settings: WAL, synchronous = NORMAL, foreign keys.
        let options: sqlx::sqlite::SqliteConnectOptions = dst.parse().unwrap();
        run!(
            sqlx::SqlitePool,
            false,
            sqlx::SqlitePool::connect_with(
                options
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                    .foreign_keys(true),
            )
            .await
            .unwrap()
        )
    };
    records as f64 / elapsed.as_secs_f64()
}

/// A multi-row upsert of `rows` rows, parameters numbered with `sigil`
/// (`$` for Postgres, `?` for SQLite).
fn upsert_sql(rows: usize, sigil: char) -> String {
    let values: Vec<String> = (0..rows)
        .map(|n| {
            let p = n * 3;
            format!("({sigil}{}, {sigil}{}, {sigil}{})", p + 1, p + 2, p + 3)
        })
        .collect();
    format!(
        "INSERT INTO bench_upsert (id, content, updated_at) VALUES {} \
         ON CONFLICT (id) DO UPDATE SET content = excluded.content, updated_at = excluded.updated_at",
        values.join(",")
    )
}

trait ExposeForBench {
    fn expose_for_bench(&self) -> String;
}

impl ExposeForBench for secrecy::SecretString {
    fn expose_for_bench(&self) -> String {
        use secrecy::ExposeSecret;
        self.expose_secret().to_owned()
    }
}

/// Peak resident set size of this process, in MB (VmHWM).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets VmHWM to the current RSS, so the next reading is the peak of
/// what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

#[tokio::main]
async fn main() {
    let records: usize = args::value("--records")
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let database = args::value("--database");
    let rss: Option<usize> = args::value("--rss").and_then(|n| n.parse().ok());
    let dir = tempfile::tempdir().unwrap();
    // The same-rows baseline's mirror: another directory (SQLite) or
    // another scratch database (Postgres), freshly migrated.
    let baseline_dir = tempfile::tempdir().unwrap();
    let admin = match &database {
        Some(url) => Some(sqlx::PgPool::connect(url).await.unwrap()),
        None => None,
    };
    // Databases of their own, dropped at the end.
    let mut scratch = Vec::new();
    for suffix in ["", "_baseline"] {
        if let (Some(admin), Some(url)) = (&admin, &database) {
            let name = format!("ghlsync_bench_{}{suffix}", std::process::id());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(admin)
                .await
                .unwrap();
            scratch.push((
                name.clone(),
                url.rsplit_once('/').unwrap().0.to_owned() + "/" + &name,
            ));
        }
    }
    let settings = demo_settings(dir.path(), scratch.first().map(|s| s.1.as_str()));
    let backend = settings.database.backend.as_str();

    if let Some(total) = rss {
        memory(&settings, total).await;
    } else {
        let ghl = Arc::new(synthetic("ghl", true, records));
        let engine = engine(&settings, ghl.clone()).await;
        let started = Instant::now();
        let report = poll_contacts(&engine, Side::Ghl).await.unwrap();
        // The checkpointer copies the log beside the commits; what it has
        // not copied yet is part of the work, so it is timed too.
        let wal_left = engine.store.checkpoint().await.unwrap();
        let engine_rate = records as f64 / started.elapsed().as_secs_f64();
        if let Ok(wal) = std::fs::metadata(dir.path().join("ghlsync.db-wal")) {
            // The log file keeps its largest size until truncated.
            println!(
                "  (SQLite log file at the end: {} MB, {wal_left} pages not copied)",
                wal.len() / 1_000_000
            );
        }
        assert_eq!(report.stats.planned_creates as usize, records);
        let started = Instant::now();
        let again = poll_contacts(&engine, Side::Ghl).await.unwrap();
        let reread = again.stats.read;
        let reread_rate = reread as f64 / started.elapsed().as_secs_f64().max(1e-9);
        engine.store.close().await;
        let baseline = demo_settings(baseline_dir.path(), scratch.get(1).map(|s| s.1.as_str()));
        // Migrated, with the pair registered (foreign keys), then closed.
        engine_of(&baseline).await.store.close().await;
        let same_rate = same_rows_upsert(&settings.database, &baseline.database).await;
        let one_row_rate = one_row_upsert(&settings.database, &ghl.feed, records).await;
        println!("backend {backend}, {records} contacts");
        println!("  engine: detect + map + diff + plan + persist   {engine_rate:>10.0} records/s");
        println!("  plain batched upsert of the same rows          {same_rate:>10.0} records/s");
        println!(
            "    (link + outbox + journal per record, cursor per page, {PAGE} per transaction)"
        );
        println!(
            "  engine / plain upsert of the same rows         {:>10.2}",
            engine_rate / same_rate
        );
        println!("  older baseline: one scratch row per record     {one_row_rate:>10.0} records/s");
        println!(
            "  re-poll inside the overlap ({reread} re-reads)   {reread_rate:>10.0} records/s"
        );
    }
    if let Some(admin) = admin {
        for (name, _) in scratch {
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&admin)
                .await
                .unwrap();
        }
    }
}

/// An engine over a freshly migrated mirror of `settings`, with a side of
/// no records.
async fn engine_of(settings: &config::Settings) -> Engine {
    engine(settings, Arc::new(synthetic("ghl", true, 0))).await
}

/// Fills the mirror with `total` contacts in four steps, printing peak RSS
/// after each, then measures the peak of ten incremental polls.
async fn memory(settings: &config::Settings, total: usize) {
    let ghl = Arc::new(synthetic("ghl", true, 0));
    let engine = engine(settings, ghl.clone()).await;
    println!(
        "backend {}, mirror filled to {total} contacts",
        settings.database.backend.as_str()
    );
    for step in 1..=4 {
        ghl.feed.count.store(total * step / 4, Ordering::Relaxed);
        reset_peak_rss();
        poll_contacts(&engine, Side::Ghl).await.unwrap();
        let links = engine
            .store
            .count_links("demo", EntityKind::Contact)
            .await
            .unwrap();
        println!(
            "  {links:>9} links: peak RSS while syncing {:>7.1} MB",
            peak_rss_mb()
        );
    }
    reset_peak_rss();
    for _ in 0..10 {
        ghl.feed.count.fetch_add(100, Ordering::Relaxed);
        poll_contacts(&engine, Side::Ghl).await.unwrap();
    }
    println!(
        "  ten polls of 100 changes each on the full mirror: peak RSS {:>7.1} MB",
        peak_rss_mb()
    );
    engine.store.close().await;
}
