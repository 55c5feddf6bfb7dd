//! `ghlsync conflicts list | show ID | resolve ID --take ghl|app | --value V`:
//! the fields the `manual` policy parked, and the operator's decision on
//! them. Resolving queues the writes through the outbox (see
//! `engine/resolve.rs`); the daemon, or `sync --once`, writes them.

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use serde_json::Value;

use super::output::{print_json, time, value, Table};
use crate::config::Loaded;
use crate::domain::{EntityKind, Side};
use crate::engine::{Choice, Resolution};

use crate::store::{Conflict, Store};

#[derive(Debug, Subcommand)]
pub enum ConflictsCommand {
    /// Open conflicts, oldest first.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One conflict (open or resolved): the field, its base value, each
    /// side's value and the record's ids.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Decide a conflict. The chosen value is queued for every side that
    /// does not hold it yet, and written by the daemon's writer (or the
    /// next `ghlsync sync --once`); the base moves with it, so the field
    /// is not parked again.
    Resolve {
        id: i64,
        /// Keep the value this side holds (as `conflicts show` displays it).
        #[arg(
            long,
            value_enum,
            required_unless_present = "value",
            conflicts_with = "value"
        )]
        take: Option<TakeSide>,
        /// Write this value to both sides: JSON (`'"Ann"'`, `'["a","b"]'`,
        /// `null` clears the field), else taken as a string (`Ann`).
        #[arg(long, value_name = "VALUE")]
        value: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The side whose value `--take` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TakeSide {
    Ghl,
    App,
}

/// A conflict as the commands show it.
#[derive(Debug, Serialize)]
struct ConflictView {
    id: i64,
    pair: String,
    entity: EntityKind,
    field: String,
    link_id: i64,
    ghl_id: Option<String>,
    app_id: Option<String>,
    base_value: Option<Value>,
    ghl_value: Option<Value>,
    app_value: Option<Value>,
    status: String,
    resolution: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
}

pub async fn run(loaded: Loaded, command: ConflictsCommand) -> anyhow::Result<()> {
    match command {
        ConflictsCommand::List { json } => list(&loaded, json).await,
        ConflictsCommand::Show { id, json } => show(&loaded, id, json).await,
        ConflictsCommand::Resolve {
            id,
            take,
            value,
            json,
        } => {
            let choice = match (take, value) {
                (Some(TakeSide::Ghl), _) => Choice::Take(Side::Ghl),
                (Some(TakeSide::App), _) => Choice::Take(Side::App),
                (None, Some(text)) => Choice::Value(parse_value(&text)),
                (None, None) => bail!("give --take ghl|app or --value VALUE"),
            };
            resolve(&loaded, id, choice, json).await
        }
    }
}

/// `--value`: JSON if it parses, else the text itself.
fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

async fn open_store(loaded: &Loaded) -> anyhow::Result<Store> {
    Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")
}

async fn view(store: &Store, c: Conflict) -> anyhow::Result<ConflictView> {
    let link = store.link_by_id(c.link_id).await?;
    Ok(ConflictView {
        id: c.id,
        pair: c.pair,
        entity: c.entity,
        field: c.field,
        link_id: c.link_id,
        ghl_id: link.as_ref().and_then(|l| l.a.id.clone()),
        app_id: link.as_ref().and_then(|l| l.b.id.clone()),
        base_value: c.base_value,
        ghl_value: c.a_value,
        app_value: c.b_value,
        status: c.status.to_string(),
        resolution: c.resolution,
        created_at: c.created_at,
        updated_at: c.updated_at,
        resolved_at: c.resolved_at,
    })
}

async fn list(loaded: &Loaded, json: bool) -> anyhow::Result<()> {
    let store = open_store(loaded).await?;
    let mut views = Vec::new();
    for conflict in store.open_conflicts(None).await? {
        views.push(view(&store, conflict).await?);
    }
    store.close().await;
    if json {
        return print_json(&views);
    }
    if views.is_empty() {
        println!("no open conflicts");
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "PAIR",
        "ENTITY",
        "FIELD",
        "GHL ID",
        "APP ID",
        "BASE",
        "GHL VALUE",
        "APP VALUE",
        "SINCE",
    ]);
    for v in &views {
        table.row(vec![
            v.id.to_string(),
            v.pair.clone(),
            v.entity.to_string(),
            v.field.clone(),
            v.ghl_id.clone().unwrap_or_else(|| "-".into()),
            v.app_id.clone().unwrap_or_else(|| "-".into()),
            value(v.base_value.as_ref()),
            value(v.ghl_value.as_ref()),
            value(v.app_value.as_ref()),
            time(v.created_at),
        ]);
    }
    table.print();
    println!(
        "{} open conflict(s); decide one with `ghlsync conflicts resolve ID --take ghl|app` or `--value VALUE`",
        views.len()
    );
    Ok(())
}

async fn show(loaded: &Loaded, id: i64, json: bool) -> anyhow::Result<()> {
    let store = open_store(loaded).await?;
    let Some(conflict) = store.conflict(id).await? else {
        bail!("conflict {id} does not exist (see `ghlsync conflicts list`)");
    };
    let v = view(&store, conflict).await?;
    store.close().await;
    if json {
        return print_json(&v);
    }
    let (ghl, app) = loaded
        .settings
        .pairs
        .get(&v.pair)
        .map_or(("ghl".to_owned(), "app".to_owned()), |p| {
            (p.ghl.clone(), p.app.clone())
        });
    let mut table = Table::new(&["conflict", &v.id.to_string()]);
    let none = || "-".to_owned();
    for (k, val) in [
        ("status", v.status.clone()),
        ("pair", v.pair.clone()),
        ("record", format!("{} (link {})", v.entity, v.link_id)),
        (
            "ids",
            format!(
                "{ghl} {}, {app} {}",
                v.ghl_id.clone().unwrap_or_else(none),
                v.app_id.clone().unwrap_or_else(none)
            ),
        ),
        ("field", v.field.clone()),
        ("base (last agreed)", value(v.base_value.as_ref())),
        (&format!("{ghl} (ghl) value"), value(v.ghl_value.as_ref())),
        (&format!("{app} (app) value"), value(v.app_value.as_ref())),
        ("opened", time(v.created_at)),
        ("updated", time(v.updated_at)),
        ("resolved", v.resolved_at.map_or_else(none, time)),
        ("resolution", v.resolution.clone().unwrap_or_else(none)),
    ] {
        table.row(vec![k.to_owned(), val]);
    }
    table.print();
    Ok(())
}

async fn resolve(loaded: &Loaded, id: i64, choice: Choice, json: bool) -> anyhow::Result<()> {
    let engine = crate::demo::engine(loaded).await?;
    let result = engine.resolve_conflict(id, choice).await;
    engine.store.close().await;
    let resolution: Resolution = result?;
    if json {
        return print_json(&resolution);
    }
    println!(
        "conflict {} ({} of pair {}) resolved: {}",
        resolution.conflict, resolution.field, resolution.pair, resolution.resolution
    );
    if resolution.queued.is_empty() {
        println!("both sides already hold that value: only the mirror's base was updated");
    } else {
        for write in &resolution.queued {
            println!(
                "  queued: update of {} on side `{}`{}",
                write.record_id,
                write.side,
                write
                    .outbox_id
                    .map_or(String::new(), |id| format!(" (outbox #{id})"))
            );
        }
        println!("the daemon writes them at its next pass (or run `ghlsync sync --once`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_json_or_else_text() {
        assert_eq!(parse_value("\"Ann\""), Value::from("Ann"));
        assert_eq!(parse_value("Ann"), Value::from("Ann"));
        assert_eq!(parse_value("[\"a\",\"b\"]"), serde_json::json!(["a", "b"]));
        assert_eq!(parse_value("null"), Value::Null);
        assert_eq!(parse_value("42"), Value::from(42));
    }
}
