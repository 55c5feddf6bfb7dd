//! `ghlsync dead-letters list | retry ID|--all | drop ID`: what did not sync
//! and why, and the operator's decision on it. A retry goes through the
//! engine (see `engine/retry.rs`) and then runs the writer once, so its
//! result shows at once; a drop only marks the letter (kept for audit).

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;

use super::output::{clip, print_json, time, Table};
use crate::config::Loaded;
use crate::domain::{EntityKind, Side};
use crate::engine::{Engine, Retried, RetryError, Shutdown, Stats};
use crate::store::{DeadLetter, DeadLetterStatus, Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Open dead letters, oldest first (with --all, retried and dropped
    /// ones too).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Try again: a failed write is re-queued; a record that could not be
    /// read or mapped is fetched again and synced like any change (fix it
    /// at the source, or fix the mapping, first). Then the writer runs once.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every open dead letter.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Give up on a dead letter: it is marked dropped and kept for audit.
    Drop {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Serialize)]
struct LetterView {
    id: i64,
    pair: String,
    side: Side,
    /// The configured side name.
    side_name: Option<String>,
    entity: EntityKind,
    record_id: Option<String>,
    outbox_id: Option<i64>,
    stage: String,
    reason: String,
    payload: Option<Value>,
    status: DeadLetterStatus,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// One retry's outcome, and what the writer then did with its write.
#[derive(Debug, Serialize)]
struct RetryView {
    id: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    retried: Option<Retried>,
    /// The re-queued write's status after the writer ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    write_status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(loaded: Loaded, command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List { all, json } => list(&loaded, all, json).await,
        DeadLettersCommand::Retry { id, all, json } => retry(&loaded, id, all, json).await,
        DeadLettersCommand::Drop { id, json } => drop_letter(&loaded, id, json).await,
    }
}

fn view(loaded: &Loaded, d: DeadLetter) -> LetterView {
    let side_name = (loaded.settings.pairs.get(&d.pair)).map(|p| p.side_name(d.side).to_owned());
    LetterView {
        id: d.id,
        pair: d.pair,
        side: d.side,
        side_name,
        entity: d.entity,
        record_id: d.record_id,
        outbox_id: d.outbox_id,
        stage: d.stage.to_string(),
        reason: d.reason,
        payload: d.payload,
        status: d.status,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

async fn list(loaded: &Loaded, all: bool, json: bool) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")?;
    let filter = (!all).then_some(DeadLetterStatus::Open);
    let letters: Vec<LetterView> = store
        .dead_letters(filter)
        .await?
        .into_iter()
        .map(|d| view(loaded, d))
        .collect();
    store.close().await;
    if json {
        return print_json(&letters);
    }
    if letters.is_empty() {
        println!("no {}dead letters", if all { "" } else { "open " });
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID", "PAIR", "SIDE", "ENTITY", "RECORD", "STAGE", "OUTBOX", "STATUS", "SINCE", "REASON",
    ]);
    for l in &letters {
        table.row(vec![
            l.id.to_string(),
            l.pair.clone(),
            l.side_name.clone().unwrap_or_else(|| l.side.to_string()),
            l.entity.to_string(),
            l.record_id.clone().unwrap_or_else(|| "-".into()),
            l.stage.clone(),
            l.outbox_id.map_or("-".into(), |id| format!("#{id}")),
            l.status.to_string(),
            time(l.created_at),
            clip(&l.reason, 100),
        ]);
    }
    table.print();
    Ok(())
}

async fn retry(loaded: &Loaded, id: Option<i64>, all: bool, json: bool) -> anyhow::Result<()> {
    let engine = crate::demo::engine(loaded).await?;
    let ids: Vec<i64> = match (id, all) {
        (Some(id), _) => vec![id],
        (None, true) => engine
            .store
            .dead_letters(Some(DeadLetterStatus::Open))
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect(),
        (None, false) => bail!("give a dead letter ID or --all"),
    };
    let mut results = Vec::new();
    for id in ids {
        results.push(RetryView::of(id, engine.retry_dead_letter(id).await));
    }
    let written = write_queued(&engine, &mut results).await?;
    engine.store.close().await;
    if json {
        print_json(&serde_json::json!({
            "results": results,
            "applied": written.as_ref().map_or(0, |w| w.applied),
        }))?;
    } else {
        print_retries(&results, written.as_ref());
    }
    let failed = results.iter().filter(|r| r.error.is_some()).count();
    match (failed, results.as_slice()) {
        (0, _) => {}
        (_, [only]) => bail!("{}", only.error.as_deref().unwrap_or_default()),
        _ => bail!(
            "{failed} of {} dead letter(s) could not be retried (see above)",
            results.len()
        ),
    }
    Ok(())
}

impl RetryView {
    fn of(id: i64, result: Result<Retried, RetryError>) -> Self {
        let (retried, error) = match result {
            Ok(retried) => (Some(retried), None),
            Err(error) => (None, Some(error.to_string())),
        };
        RetryView {
            id,
            retried,
            write_status: None,
            error,
        }
    }
}

/// Runs the writer once if a retry queued a write, and notes where each
/// re-queued write stands then. The writer's figures, if it ran.
async fn write_queued(engine: &Engine, results: &mut [RetryView]) -> anyhow::Result<Option<Stats>> {
    let queued = results.iter().any(|r| {
        matches!(
            r.retried,
            Some(Retried::Requeued { .. } | Retried::Reprocessed { .. })
        )
    });
    let written = if queued {
        Some(
            engine
                .drain_outbox(&Shutdown::default())
                .await
                .context("the retried writes were queued, but the writer failed; the daemon (or `ghlsync sync --once`) writes them")?,
        )
    } else {
        None
    };
    for result in results.iter_mut() {
        if let Some(Retried::Requeued { outbox_id }) = result.retried {
            result.write_status = engine
                .store
                .outbox_item(outbox_id)
                .await?
                .map(|item| item.status.to_string());
        }
    }
    Ok(written)
}

/// The human account of the retries.
fn print_retries(results: &[RetryView], written: Option<&Stats>) {
    if results.is_empty() {
        println!("no open dead letters");
    }
    for r in results {
        match (&r.retried, &r.error) {
            (_, Some(error)) if results.len() > 1 => {
                println!("dead letter {}: not retried: {error}", r.id)
            }
            (_, Some(_)) => {}
            (Some(Retried::Requeued { outbox_id }), _) => println!(
                "dead letter {}: write #{outbox_id} re-queued; it is now {}",
                r.id,
                r.write_status.as_deref().unwrap_or("unknown")
            ),
            (Some(Retried::Reprocessed { record, planned }), _) => println!(
                "dead letter {}: {record} fetched again and synced ({planned} write(s) planned)",
                r.id
            ),
            (Some(Retried::FailedAgain { record, reason }), _) => println!(
                "dead letter {}: {record} fetched again but failed again (a new dead letter is open): {reason}",
                r.id
            ),
            (None, None) => {}
        }
    }
    if let Some(written) = written {
        println!("writer: {} write(s) applied", written.applied);
    }
}

async fn drop_letter(loaded: &Loaded, id: i64, json: bool) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")?;
    let result = store.close_dead_letter(id, DeadLetterStatus::Dropped).await;
    store.close().await;
    let letter = match result {
        Ok(letter) => letter,
        Err(StoreError::DeadLetterNotFound { .. }) => {
            bail!("dead letter {id} does not exist (see `ghlsync dead-letters list`)")
        }
        Err(StoreError::DeadLetterNotOpen { status, .. }) => {
            bail!("dead letter {id} is already {status}; nothing was changed")
        }
        Err(other) => return Err(other.into()),
    };
    if json {
        return print_json(&view(loaded, letter));
    }
    println!(
        "dead letter {id} dropped ({} {} on pair {}); it stays listed with `dead-letters list --all`",
        letter.entity,
        letter.record_id.as_deref().unwrap_or("without id"),
        letter.pair
    );
    Ok(())
}
