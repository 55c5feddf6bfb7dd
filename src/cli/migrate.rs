//! `ghlsync migrate`: create or upgrade the mirror store's schema. The
//! daemon also migrates at start-up; this command lets an operator do it
//! ahead of a deploy, or against a fresh Postgres database.

use anyhow::Context as _;

use crate::config::Loaded;
use crate::store::Store;

pub async fn run(loaded: Loaded) -> anyhow::Result<()> {
    let database = &loaded.settings.database;
    let span = tracing::info_span!(
        "migrate",
        backend = database.backend.as_str(),
        database = %database.redacted_url()
    );
    let _entered = span.enter();
    let store = Store::connect(database).await.with_context(|| {
        format!(
            "cannot open the mirror store at {}",
            database.redacted_url()
        )
    })?;
    let applied = store
        .migrate()
        .await
        .context("cannot migrate the mirror store")?;
    for migration in &applied {
        tracing::info!(version = migration.version, description = %migration.description, "applied migration");
    }
    tracing::info!(applied = applied.len(), "mirror store schema is up to date");
    if applied.is_empty() {
        println!("{}: schema already up to date", database.redacted_url());
    } else {
        println!(
            "{}: applied {} migration(s)",
            database.redacted_url(),
            applied.len()
        );
    }
    store.close().await;
    Ok(())
}
