//! `ghlsync status`: per pair and side, where detection stands (last poll,
//! lag per entity), the backlog (outbox, dead letters, conflicts), the
//! request budget the daemon last saw, and the OAuth token's expiry. Reads
//! only the mirror: it works while the daemon runs, and when it does not.

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{age, print_json, span, time_and_age, Table};
use crate::config::{GhlAuth, Loaded, OAuthInstall, SideKind};
use crate::connector::ghl::OAuthSession;
use crate::domain::Side;
use crate::store::{Cursor, SideHealth, SideOutbox, Store};

/// What `status` says of a side without a stored reading.
const NO_READING: &str = "unknown (daemon has not run)";

#[derive(Debug, Serialize)]
struct Status {
    generated_at: DateTime<Utc>,
    backend: &'static str,
    pairs: Vec<PairStatus>,
}

#[derive(Debug, Serialize)]
struct PairStatus {
    pair: String,
    open_conflicts: i64,
    sides: Vec<SideStatus>,
}

#[derive(Debug, Serialize)]
struct SideStatus {
    /// `a` (the GHL side) or `b`.
    role: Side,
    side: String,
    kind: String,
    location: Option<String>,
    last_poll_at: Option<DateTime<Utc>>,
    last_poll_age_secs: Option<i64>,
    last_success_at: Option<DateTime<Utc>>,
    /// Seconds between now and the oldest watermark of each entity (None:
    /// nothing durably processed yet).
    lag_secs: BTreeMap<String, Option<i64>>,
    /// Writes aimed at this side.
    outbox: SideOutbox,
    /// Open dead letters of this side's records or writes.
    dead_letters: i64,
    rate_limit: RateLimit,
    token: TokenInfo,
}

#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum RateLimit {
    /// No reading stored yet.
    Unknown { note: &'static str },
    /// A reading of a side without a request budget.
    NoBudget { recorded_at: DateTime<Utc> },
    Known {
        interval_remaining: Option<i64>,
        daily_remaining: Option<i64>,
        requests: Option<i64>,
        throttled: Option<i64>,
        recorded_at: DateTime<Utc>,
        age_secs: i64,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TokenInfo {
    /// A REST side: its credentials are the configuration's.
    NotApplicable,
    PrivateToken,
    Oauth {
        subject: String,
        expires_at: Option<DateTime<Utc>>,
        expired: Option<bool>,
        note: Option<String>,
    },
}

pub async fn run(loaded: Loaded, json: bool) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")?;
    let status = collect(&loaded, &store).await?;
    store.close().await;
    if json {
        return print_json(&status);
    }
    print_human(&status);
    Ok(())
}

async fn collect(loaded: &Loaded, store: &Store) -> anyhow::Result<Status> {
    let now = Utc::now();
    let mut pairs = Vec::new();
    for pair in loaded.settings.pairs.values() {
        let cursors = store.cursors(&pair.name).await?;
        let backlog = store.pair_backlog(&pair.name).await?;
        let health = store.side_health(&pair.name).await?;
        let mut sides = Vec::new();
        for (role, name) in [(Side::Ghl, &pair.ghl), (Side::App, &pair.app)] {
            let settings = loaded.settings.sides.get(name);
            let kind = settings.map_or("unknown", |s| s.kind.name()).to_owned();
            let location = match settings.map(|s| &s.kind) {
                Some(SideKind::Ghl(ghl)) => Some(ghl.location_id.clone()),
                _ => None,
            };
            let mine: Vec<&Cursor> = cursors.iter().filter(|c| c.side == role).collect();
            let last_poll_at = mine.iter().filter_map(|c| c.last_poll_at).max();
            let last_success_at = mine.iter().filter_map(|c| c.last_success_at).max();
            let mut lag_secs: BTreeMap<String, Option<i64>> = BTreeMap::new();
            for cursor in &mine {
                let lag = cursor.watermark.map(|w| (now - w).num_seconds().max(0));
                let slot = lag_secs.entry(cursor.entity.to_string()).or_insert(lag);
                // Several streams of one entity: the one furthest behind.
                *slot = match (*slot, lag) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            let rate_limit = match health.iter().find(|h| h.side == role) {
                None => RateLimit::Unknown { note: NO_READING },
                Some(reading) => rate_limit(reading, now),
            };
            let token = match settings.map(|s| &s.kind) {
                Some(SideKind::Ghl(ghl)) => match &ghl.auth {
                    GhlAuth::PrivateToken { .. } => TokenInfo::PrivateToken,
                    GhlAuth::OAuth { install, .. } => {
                        oauth_token(store, name, &ghl.location_id, install, now).await?
                    }
                },
                _ => TokenInfo::NotApplicable,
            };
            sides.push(SideStatus {
                role,
                side: name.clone(),
                kind,
                location,
                last_poll_at,
                last_poll_age_secs: last_poll_at.map(|t| (now - t).num_seconds()),
                last_success_at,
                lag_secs,
                outbox: backlog.outbox(role),
                dead_letters: backlog.dead_letters(role),
                rate_limit,
                token,
            });
        }
        pairs.push(PairStatus {
            pair: pair.name.clone(),
            open_conflicts: backlog.open_conflicts,
            sides,
        });
    }
    Ok(Status {
        generated_at: now,
        backend: store.backend().as_str(),
        pairs,
    })
}

fn rate_limit(reading: &SideHealth, now: DateTime<Utc>) -> RateLimit {
    if reading.daily_remaining.is_none() {
        return RateLimit::NoBudget {
            recorded_at: reading.recorded_at,
        };
    }
    RateLimit::Known {
        interval_remaining: reading.interval_remaining,
        daily_remaining: reading.daily_remaining,
        requests: reading.requests,
        throttled: reading.throttled,
        recorded_at: reading.recorded_at,
        age_secs: (now - reading.recorded_at).num_seconds(),
    }
}

/// The expiry of the access token the side uses: its location's token
/// (minted from the company token for company installs).
async fn oauth_token(
    store: &Store,
    side: &str,
    location: &str,
    install: &OAuthInstall,
    now: DateTime<Utc>,
) -> anyhow::Result<TokenInfo> {
    let mut subject = OAuthSession::location_subject(location);
    let mut token = store.load_token(&subject).await?;
    if token.is_none() {
        if let OAuthInstall::Company { company_id } = install {
            subject = OAuthSession::company_subject(company_id);
            token = store.load_token(&subject).await?;
        }
    }
    Ok(match token {
        Some(token) => TokenInfo::Oauth {
            subject,
            expires_at: Some(token.expires_at),
            expired: Some(token.expires_at <= now),
            note: None,
        },
        None => TokenInfo::Oauth {
            subject,
            expires_at: None,
            expired: None,
            note: Some(format!(
                "no tokens stored: run `ghlsync auth login --side {side}`"
            )),
        },
    })
}

fn print_human(status: &Status) {
    let now = status.generated_at;
    if status.pairs.is_empty() {
        println!("no pairs configured");
        return;
    }
    for (i, pair) in status.pairs.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!(
            "pair {} ({} mirror): {} open conflict(s)",
            pair.pair, status.backend, pair.open_conflicts
        );
        let mut table = Table::new(&["", "ghl side", "app side"]);
        let cell = |f: &dyn Fn(&SideStatus) -> String| -> Vec<String> {
            pair.sides.iter().map(f).collect()
        };
        let mut row = |label: &str, cells: Vec<String>| {
            let mut line = vec![label.to_owned()];
            line.extend(cells);
            table.row(line);
        };
        row(
            "side",
            cell(&|s| match &s.location {
                Some(location) => format!("{} ({}, location {location})", s.side, s.kind),
                None => format!("{} ({})", s.side, s.kind),
            }),
        );
        row(
            "last poll",
            cell(&|s| {
                s.last_poll_at
                    .map_or("never".to_owned(), |t| time_and_age(t, now))
            }),
        );
        row(
            "lag",
            cell(&|s| {
                if s.lag_secs.is_empty() {
                    return "-".to_owned();
                }
                s.lag_secs
                    .iter()
                    .map(|(entity, lag)| match lag {
                        Some(secs) => format!("{entity} {}", span(*secs)),
                        None => format!("{entity} (no watermark yet)"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        );
        row(
            "outbox to side",
            cell(&|s| {
                format!(
                    "{} pending, {} in flight, {} failed",
                    s.outbox.pending, s.outbox.in_flight, s.outbox.failed
                )
            }),
        );
        row(
            "dead letters",
            cell(&|s| format!("{} open", s.dead_letters)),
        );
        row(
            "rate limit",
            cell(&|s| match &s.rate_limit {
                RateLimit::Unknown { note } => (*note).to_owned(),
                RateLimit::NoBudget { recorded_at } => {
                    format!("no request budget (read {})", age(*recorded_at, now))
                }
                RateLimit::Known {
                    interval_remaining,
                    requests,
                    throttled,
                    recorded_at,
                    ..
                } => format!(
                    "{} left in window, {} requests, {} throttled (read {})",
                    interval_remaining.map_or("?".to_owned(), |n| n.to_string()),
                    requests.unwrap_or(0),
                    throttled.unwrap_or(0),
                    age(*recorded_at, now)
                ),
            }),
        );
        row(
            "daily budget left",
            cell(&|s| match &s.rate_limit {
                RateLimit::Unknown { note } => (*note).to_owned(),
                RateLimit::NoBudget { .. } => "-".to_owned(),
                RateLimit::Known {
                    daily_remaining,
                    recorded_at,
                    ..
                } => format!(
                    "{} (read {})",
                    daily_remaining.map_or("?".to_owned(), |n| n.to_string()),
                    age(*recorded_at, now)
                ),
            }),
        );
        row(
            "token",
            cell(&|s| match &s.token {
                TokenInfo::NotApplicable => "-".to_owned(),
                TokenInfo::PrivateToken => "private integration token (does not expire)".to_owned(),
                TokenInfo::Oauth {
                    expires_at: Some(at),
                    expired,
                    ..
                } => format!(
                    "expires {}{}",
                    time_and_age(*at, now),
                    if *expired == Some(true) {
                        ": EXPIRED"
                    } else {
                        ""
                    }
                ),
                TokenInfo::Oauth { note, .. } => note.clone().unwrap_or_default(),
            }),
        );
        table.print();
    }
}
