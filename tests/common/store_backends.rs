//! Runs one store test case against each backend.
//!
//! * SQLite: a fresh database file in a temporary directory.
//! * Postgres: when `GHLSYNC_TEST_DATABASE_URL` is set (an admin-capable
//!   URL such as `postgres://postgres@127.0.0.1:5432/test`), a fresh database
//!   `ghlsync_test_<pid>_<n>_<nanos>` is created for the case and dropped
//!   afterwards, even if the case panics, so tests can run in parallel
//!   (nextest: one process per test). When unset, the case is skipped with
//!   a NOTICE on stderr.
//!
//! Either way the case receives a connected store whose schema was just
//! migrated, and the harness checks that this first migration reported
//! every embedded migration as newly applied.

#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ghl_sync::config::database::DatabaseSettings;
use ghl_sync::store::Store;
use sqlx::{Connection, Executor, PgConnection};

/// The variable naming the Postgres server used by the store tests.
pub const DATABASE_URL_VAR: &str = "GHLSYNC_TEST_DATABASE_URL";

/// Number of migration files embedded per backend, counted from
/// `migrations/sqlite` (both backends have the same versions), so a branch
/// that adds a migration needs no edit here.
pub fn migrations() -> usize {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    std::fs::read_dir(dir)
        .expect("the migrations directory")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
        .count()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn connect_fresh(settings: &DatabaseSettings) -> Store {
    let store = Store::connect(settings).await.expect("connect test store");
    let applied = store.migrate().await.expect("first migration");
    assert_eq!(
        applied.len(),
        migrations(),
        "a fresh database applies every migration: {applied:?}"
    );
    store
}

/// Runs `case` against a fresh SQLite file.
pub async fn run_sqlite<F, Fut>(_name: &str, case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temp dir");
    // A sub-directory that does not exist yet: connect must create it.
    let path = dir.path().join("state").join("mirror.db");
    let store = connect_fresh(&DatabaseSettings::sqlite_file(&path)).await;
    case(store.clone()).await;
    store.close().await;
}

/// Runs `case` against a fresh Postgres database, or skips loudly.
pub async fn run_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Store) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_postgres_url(&format!("store test {name}"), |url| async move {
        let store = connect_fresh(&DatabaseSettings::postgres_url(&url)).await;
        case(store.clone()).await;
        store.close().await;
    })
    .await
}

/// Runs `case` with the URL of a fresh Postgres database created on the
/// server of `GHLSYNC_TEST_DATABASE_URL` and dropped afterwards, even if
/// the case panics. When the variable is unset, prints a NOTICE naming
/// `what` and skips.
pub async fn with_postgres_url<F, Fut>(what: &str, case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(DATABASE_URL_VAR) else {
        // Written to stderr directly, not with `eprintln!`, which the test
        // harness captures and shows only for failing tests: a skip must
        // be visible in a passing run.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "NOTICE: {DATABASE_URL_VAR} is unset; skipping the Postgres {what}"
        );
        return;
    };
    let db_name = unique_db_name();
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to GHLSYNC_TEST_DATABASE_URL");
    admin
        .execute(format!("CREATE DATABASE \"{db_name}\"").as_str())
        .await
        .expect("create test database");

    let mut url = url::Url::parse(&admin_url).expect("GHLSYNC_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{db_name}"));

    // Run the case in its own task so a panic still lets us drop the database.
    let outcome = tokio::spawn(case(url.to_string())).await;
    drop_database(&mut admin, &db_name).await;
    let _ = admin.close().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

fn unique_db_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "ghlsync_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

async fn drop_database(admin: &mut PgConnection, db_name: &str) {
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut *admin)
        .await
        .unwrap_or(0);
    let sql = if version >= 130000 {
        format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)")
    } else {
        format!("DROP DATABASE IF EXISTS \"{db_name}\"")
    };
    if let Err(e) = admin.execute(sql.as_str()).await {
        eprintln!("warning: could not drop test database {db_name}: {e}");
    }
}

/// Instantiates every listed `async fn case(store: Store)` once per backend,
/// as `sqlite::<case>` and `postgres::<case>`.
#[allow(unused_macros)] // the engine tests use only the Postgres harness
macro_rules! store_cases {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::store_backends::run_sqlite(stringify!($case), super::$case).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::store_backends::run_postgres(stringify!($case), super::$case).await;
                }
            )+
        }
    };
}
