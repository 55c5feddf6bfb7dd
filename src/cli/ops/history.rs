//! `ghlsync history <id | email>`: the audit trail of one contact, from the
//! journal (every change seen, the decision taken, the write planned and
//! its result), joined with the outbox rows still held for its link, plus
//! the same for its tasks, notes and appointments. A field edited on both
//! sides that a policy settled has a `settled` row naming both values,
//! their change times, the policy and the value kept.
//!
//! The contact is found in the mirror first: an id on either side, or an
//! email in the base snapshot. Only when the mirror knows no such email are
//! the sides asked (`find_contacts`, verified by `engine::matching`), which needs them reachable.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::output::{clip, print_json, time, Table};
use crate::config::{Loaded, PairSettings};
use crate::domain::{EntityKind, MatchKey, Side};

use crate::engine::matching::{self, Search};
use crate::engine::{self, PairRuntime};
use crate::mapping::Canonical;
use crate::store::{Direction, JournalAction, JournalEntry, Link, OutboxItem, Store};

/// Journal rows read per link or record: the newest ones.
const DEFAULT_LIMIT: u32 = 1000;

#[derive(Debug, Serialize)]
struct History {
    query: String,
    contacts: Vec<Subject>,
}

/// One contact (or a record the mirror never linked) and its trail.
#[derive(Debug, Serialize)]
struct Subject {
    pair: String,
    entity: EntityKind,
    link_id: Option<i64>,
    ghl_id: Option<String>,
    app_id: Option<String>,
    /// The base snapshot: what both sides last agreed on.
    snapshot: Option<Value>,
    deleted_at: Option<DateTime<Utc>>,
    events: Vec<Event>,
    /// Tasks, notes and appointments of the contact, each with its trail.
    children: Vec<Subject>,
}

#[derive(Debug, Serialize)]
struct Event {
    journal_id: i64,
    at: DateTime<Utc>,
    action: String,
    direction: Option<Direction>,
    /// Side names, e.g. `ghl` → `app`.
    from: Option<String>,
    to: Option<String>,
    fields: Vec<String>,
    ghl_id: Option<String>,
    app_id: Option<String>,
    write: Option<Write>,
    detail: Option<String>,
}

/// The write a journal row refers to, as the outbox holds it now.
#[derive(Debug, Serialize)]
struct Write {
    outbox_id: i64,
    /// None when the row was pruned from the outbox (done or cancelled
    /// long ago); the journal's `applied` row still tells the result.
    op: Option<String>,
    status: Option<String>,
    attempts: Option<i32>,
    last_error: Option<String>,
}

/// A contact the query names in a pair: its link if the mirror has one,
/// and the ids of its records found on the sides.
struct Found<'a> {
    pair: &'a PairSettings,
    link: Option<Link>,
    ids: Vec<String>,
}

pub async fn run(
    loaded: Loaded,
    query: String,
    pair: Option<String>,
    limit: Option<u32>,
    json: bool,
) -> anyhow::Result<()> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let pairs = selected_pairs(&loaded, pair.as_deref())?;
    let store = Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")?;
    let query = query.trim().to_owned();
    let is_email = query.contains('@');

    let mut found = find_in_mirror(&store, &pairs, &query, is_email).await?;
    if found.is_empty() && is_email {
        found = find_on_sides(&loaded, &store, &pairs, &query).await?;
    }
    if found.is_empty() && !is_email {
        for pair in &pairs {
            found.push(Found {
                pair,
                link: None,
                ids: vec![query.clone()],
            });
        }
    }

    let contacts = trails(&store, found, limit).await?;
    store.close().await;
    if contacts.is_empty() {
        bail!(
            "no contact with {} {query:?} in the mirror{}: check the {}, or run `ghlsync sync --once` first",
            if is_email { "email" } else { "id" },
            if is_email { " or on either side" } else { "" },
            if is_email { "spelling" } else { "id (GHL contact id or the app's id)" }
        );
    }
    let history = History { query, contacts };
    if json {
        return print_json(&history);
    }
    for (i, contact) in history.contacts.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_subject(contact, loaded.settings.pairs.get(&contact.pair), "");
    }
    Ok(())
}

/// The pair named, or every configured pair.
fn selected_pairs<'a>(
    loaded: &'a Loaded,
    pair: Option<&str>,
) -> anyhow::Result<Vec<&'a PairSettings>> {
    let pairs = &loaded.settings.pairs;
    Ok(match pair {
        Some(name) => match pairs.get(name) {
            Some(p) => vec![p],
            None => bail!(
                "pair `{name}` is not configured (configured: {})",
                pairs.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        },
        None => pairs.values().collect(),
    })
}

/// The contacts the mirror knows by `query`: an email in a base snapshot,
/// or an id on either side.
async fn find_in_mirror<'a>(
    store: &Store,
    pairs: &[&'a PairSettings],
    query: &str,
    is_email: bool,
) -> anyhow::Result<Vec<Found<'a>>> {
    let mut found = Vec::new();
    for &pair in pairs {
        let links = if is_email {
            let field = pair
                .map
                .match_field(EntityKind::Contact, MatchKey::Email)
                .map_or("email", |f| f.name.as_str());
            store
                .links_by_snapshot_field(&pair.name, EntityKind::Contact, field, query)
                .await?
        } else {
            let mut by_id = None;
            for side in Side::BOTH {
                by_id = store
                    .link_by_side_id(&pair.name, EntityKind::Contact, side, query)
                    .await?;
                if by_id.is_some() {
                    break;
                }
            }
            Vec::from_iter(by_id)
        };
        found.extend(links.into_iter().map(|link| Found {
            pair,
            link: Some(link),
            ids: Vec::new(),
        }));
    }
    Ok(found)
}

/// The contacts holding the email `query` on either side of `pairs`, for
/// an email not in the mirror's snapshots: the sides are asked, which needs
/// them reachable.
async fn find_on_sides<'a>(
    loaded: &Loaded,
    store: &Store,
    pairs: &[&'a PairSettings],
    query: &str,
) -> anyhow::Result<Vec<Found<'a>>> {
    let engine = engine::build(&loaded.settings, store.clone())
        .await
        .context("the email is not in the mirror, and the sides cannot be asked for it")?;
    let mut found = Vec::new();
    for runtime in &engine.pairs {
        let Some(&pair) = pairs.iter().find(|p| p.name == runtime.name()) else {
            continue;
        };
        for role in Side::BOTH {
            let Some(id) = holder_of(runtime, role, query).await? else {
                continue;
            };
            let link = store
                .link_by_side_id(&pair.name, EntityKind::Contact, role, &id)
                .await?;
            found.push(Found {
                pair,
                link,
                ids: vec![id],
            });
        }
    }
    Ok(found)
}

/// The id of the contact on `role` that really holds the email `query`
/// (an app may answer a lookup with everyone), if that side can be asked.
async fn holder_of(
    runtime: &PairRuntime,
    role: Side,
    query: &str,
) -> anyhow::Result<Option<String>> {
    let connector = runtime.connector(role);
    if !connector
        .capabilities()
        .match_keys
        .contains(&MatchKey::Email)
    {
        return Ok(None);
    }
    let Some(field) = runtime
        .settings
        .map
        .match_field(EntityKind::Contact, MatchKey::Email)
    else {
        return Ok(None);
    };
    let ours = Canonical::from([(field.name.clone(), Value::from(query))]);
    let search = matching::search(runtime, role, &ours)
        .await
        .with_context(|| format!("looking up {query} on side `{}`", connector.side()))?;
    Ok(match search {
        Search::Found(verified) => Some(verified.record.id),
        _ => None,
    })
}

/// The trail of each contact found, once per link; a record without a
/// link and without journal rows is left out.
async fn trails(store: &Store, found: Vec<Found<'_>>, limit: u32) -> anyhow::Result<Vec<Subject>> {
    let mut contacts = Vec::new();
    let mut seen_links = Vec::new();
    for Found { pair, link, ids } in found {
        if let Some(link) = &link {
            if seen_links.contains(&link.id) {
                continue;
            }
            seen_links.push(link.id);
        }
        let subject = subject(store, pair, EntityKind::Contact, link.as_ref(), &ids, limit).await?;
        if subject.link_id.is_none() && subject.events.is_empty() {
            continue;
        }
        contacts.push(subject);
    }
    Ok(contacts)
}

/// The trail of one record: its link's journal rows and those naming its
/// ids (rows written before it had a link), joined with the outbox; for a
/// contact, its children's trails too.
async fn subject(
    store: &Store,
    pair: &PairSettings,
    entity: EntityKind,
    link: Option<&Link>,
    ids: &[String],
    limit: u32,
) -> anyhow::Result<Subject> {
    let mut rows: BTreeMap<i64, JournalEntry> = BTreeMap::new();
    let mut outbox: HashMap<i64, OutboxItem> = HashMap::new();
    let mut record_ids: Vec<String> = ids.to_vec();
    if let Some(link) = link {
        for row in store.journal_for_link(link.id, limit).await? {
            rows.insert(row.id, row);
        }
        for item in store.outbox_for_link(link.id).await? {
            outbox.insert(item.id, item);
        }
        record_ids.extend(link.a.id.iter().chain(link.b.id.iter()).cloned());
    }
    record_ids.sort();
    record_ids.dedup();
    for id in &record_ids {
        for row in store.journal_for_record(&pair.name, id, limit).await? {
            if row.entity == entity {
                rows.insert(row.id, row);
            }
        }
    }
    for row in rows.values() {
        if let Some(id) = row.outbox_id.filter(|id| !outbox.contains_key(id)) {
            if let Some(item) = store.outbox_item(id).await? {
                outbox.insert(id, item);
            }
        }
    }
    let events: Vec<Event> = rows
        .into_values()
        .map(|row| event(pair, row, &outbox))
        .collect();
    // A record without a link: its side is the one whose id column the
    // journal used for it.
    let unlinked_id = |side: fn(&Event) -> &Option<String>| {
        ids.iter()
            .find(|id| {
                events
                    .iter()
                    .any(|e| side(e).as_deref() == Some(id.as_str()))
            })
            .cloned()
    };
    let (ghl_id, app_id) = match link {
        Some(l) => (l.a.id.clone(), l.b.id.clone()),
        None => (unlinked_id(|e| &e.ghl_id), unlinked_id(|e| &e.app_id)),
    };

    let mut children = Vec::new();
    if let (EntityKind::Contact, Some(link)) = (entity, link) {
        for child in &child_links(store, pair, link).await? {
            children
                .push(Box::pin(subject(store, pair, child.entity, Some(child), &[], limit)).await?);
        }
    }
    Ok(Subject {
        pair: pair.name.clone(),
        entity,
        link_id: link.map(|l| l.id),
        ghl_id,
        app_id,
        snapshot: link.map(|l| l.snapshot.content.clone()),
        deleted_at: link.and_then(|l| l.deleted_at),
        events,
        children,
    })
}

/// The links of the tasks, notes and appointments of the contact `link`
/// on either side, each once, oldest first.
async fn child_links(store: &Store, pair: &PairSettings, link: &Link) -> anyhow::Result<Vec<Link>> {
    let mut child_links: Vec<Link> = Vec::new();
    for child in [EntityKind::Task, EntityKind::Note, EntityKind::Appointment] {
        for side in Side::BOTH {
            let Some(parent) = link.side(side).id.clone() else {
                continue;
            };
            for found in store
                .links_by_parent_ids(&pair.name, child, side, &[parent])
                .await?
            {
                if !child_links.iter().any(|l| l.id == found.id) {
                    child_links.push(found);
                }
            }
        }
    }
    child_links.sort_by_key(|l| l.id);
    Ok(child_links)
}

fn event(pair: &PairSettings, row: JournalEntry, outbox: &HashMap<i64, OutboxItem>) -> Event {
    let (from, to) = match row.direction {
        Some(Direction::AToB) => (Some(pair.ghl.clone()), Some(pair.app.clone())),
        Some(Direction::BToA) => (Some(pair.app.clone()), Some(pair.ghl.clone())),
        None => (None, None),
    };
    let write = row.outbox_id.map(|id| match outbox.get(&id) {
        Some(item) => Write {
            outbox_id: id,
            op: Some(item.op.to_string()),
            status: Some(item.status.to_string()),
            attempts: Some(item.attempts),
            last_error: item.last_error.clone(),
        },
        None => Write {
            outbox_id: id,
            op: None,
            status: None,
            attempts: None,
            last_error: None,
        },
    });
    Event {
        journal_id: row.id,
        at: row.at,
        action: row.action.to_string(),
        direction: row.direction,
        from,
        to,
        fields: row.fields,
        ghl_id: row.a_id,
        app_id: row.b_id,
        write,
        detail: row.detail,
    }
}

fn print_subject(subject: &Subject, pair: Option<&PairSettings>, indent: &str) {
    let (ghl, app) = pair.map_or(("ghl", "app"), |p| (p.ghl.as_str(), p.app.as_str()));
    let id = |id: &Option<String>| id.clone().unwrap_or_else(|| "(none yet)".to_owned());
    println!(
        "{indent}{} in pair {}: {ghl} {} <-> {app} {}{}{}",
        subject.entity,
        subject.pair,
        id(&subject.ghl_id),
        id(&subject.app_id),
        subject
            .link_id
            .map_or(" (not linked)".to_owned(), |l| format!(" (link {l})")),
        subject
            .deleted_at
            .map_or(String::new(), |at| format!(", deleted {}", time(at))),
    );
    if let Some(Value::Object(fields)) = &subject.snapshot {
        let agreed: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !agreed.is_empty() {
            println!("{indent}  agreed: {}", clip(&agreed.join(", "), 160));
        }
    }
    if subject.events.is_empty() {
        println!("{indent}  (no journal rows)");
    } else {
        let mut table = Table::new(&["TIME", "ACTION", "DIRECTION", "FIELDS", "WRITE", "DETAIL"]);
        for e in &subject.events {
            table.row(vec![
                time(e.at),
                e.action.clone(),
                match (&e.from, &e.to) {
                    (Some(from), Some(to)) => format!("{from} -> {to}"),
                    _ => "-".to_owned(),
                },
                if e.fields.is_empty() {
                    "-".to_owned()
                } else {
                    e.fields.join(",")
                },
                e.write
                    .as_ref()
                    .map_or("-".to_owned(), |w| match (&w.op, &w.status) {
                        (Some(op), Some(status)) => format!(
                            "#{} {op} {status}{}",
                            w.outbox_id,
                            if w.attempts.unwrap_or(0) > 1 {
                                format!(" ({} attempts)", w.attempts.unwrap_or(0))
                            } else {
                                String::new()
                            }
                        ),
                        _ => format!("#{} (pruned)", w.outbox_id),
                    }),
                // A settled row's detail is read for the value that
                // lost, which comes last: never clipped.
                clip(
                    e.detail.as_deref().unwrap_or("-"),
                    if e.action == JournalAction::Settled.as_str() {
                        usize::MAX
                    } else {
                        100
                    },
                ),
            ]);
        }
        for line in table.render().lines() {
            println!("{indent}  {line}");
        }
    }
    for child in &subject.children {
        println!();
        print_subject(child, pair, &format!("{indent}  "));
    }
}
