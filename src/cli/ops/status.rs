//! `ghlsync status`: per pair and side, where detection stands (last poll,
//! lag per entity with a change feed; for the others, GHL tasks and notes,
//! that they are read with their contacts and when the side was last
//! reconciled), the backlog (outbox, dead letters, conflicts), the request
//! budget the daemon last saw (or, for an app that sends no budget headers,
//! the pace it is kept to), and the OAuth token's expiry. Reads
//! only the mirror: it works while the daemon runs, and when it does not.

mod budget;

use std::collections::BTreeMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::output::{age, print_json, span, time_and_age, Table};
use crate::config::{GhlAuth, Loaded, OAuthInstall, SideKind, SideSettings};
use crate::connector::ghl::connector::GhlConnector;
use crate::connector::ghl::OAuthSession;
use crate::domain::{EntityKind, Side};
use crate::store::{Cursor, PairBacklog, RequestUsage, SideHealth, SideOutbox, Store};
use budget::DayBudget;

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
    /// Records waiting to be decided again after a side could not be read.
    redecisions_waiting: i64,
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
    /// Seconds between now and the oldest watermark of each entity the
    /// side has a change feed of (None: nothing durably processed yet).
    lag_secs: BTreeMap<String, Option<i64>>,
    /// Entities the side has no change feed of (GHL tasks and notes): read
    /// as the children of the contacts that changed, and by
    /// reconciliation, so they have no watermark and no lag.
    read_with_contacts: Vec<String>,
    /// When the side was last fully read (reconciliation, backfill).
    last_reconciliation_at: Option<DateTime<Utc>>,
    /// Writes aimed at this side.
    outbox: SideOutbox,
    /// Open dead letters of this side's records or writes.
    dead_letters: i64,
    rate_limit: RateLimit,
    /// A GHL side's requests today (UTC) per purpose, their projection to
    /// midnight, and what stops first when it crosses the budget.
    requests_today: Option<DayBudget>,
    token: TokenInfo,
}

#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum RateLimit {
    /// No reading stored yet.
    Unknown { note: &'static str },
    /// A reading of a side that reports no request budget: a REST app
    /// sends no rate-limit headers, so it is kept to its configured pace.
    NoBudget {
        recorded_at: DateTime<Utc>,
        /// The side's `rate_limit` (a REST side's, configured or default).
        pace: Option<Pace>,
    },
    Known {
        interval_remaining: Option<i64>,
        daily_remaining: Option<i64>,
        requests: Option<i64>,
        throttled: Option<i64>,
        recorded_at: DateTime<Utc>,
        age_secs: i64,
    },
}

/// A REST side's `rate_limit`: at most `requests` in any `per_secs`.
#[derive(Debug, Clone, Copy, Serialize)]
struct Pace {
    requests: u32,
    per_secs: f64,
}

impl Pace {
    fn of(settings: Option<&SideSettings>) -> Option<Pace> {
        match settings.map(|s| &s.kind) {
            Some(SideKind::Rest(rest)) => Some(Pace {
                requests: rest.rate_limit.requests,
                per_secs: rest.rate_limit.per.as_secs_f64(),
            }),
            _ => None,
        }
    }
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
        let readings = Readings {
            cursors: store.cursors(&pair.name).await?,
            backlog: store.pair_backlog(&pair.name).await?,
            health: store.side_health(&pair.name).await?,
            usage: store.request_usage(&pair.name, now.date_naive()).await?,
        };
        let entities: Vec<EntityKind> = EntityKind::ALL
            .iter()
            .copied()
            .filter(|e| *e == EntityKind::Contact || pair.map.fields_of(*e).next().is_some())
            .collect();
        let mut sides = Vec::new();
        for role in Side::BOTH {
            let name = pair.side_name(role);
            let side = SideRef {
                role,
                name,
                entities: &entities,
            };
            sides.push(side_status(loaded, store, &readings, side, now).await?);
        }
        pairs.push(PairStatus {
            pair: pair.name.clone(),
            open_conflicts: readings.backlog.open_conflicts,
            redecisions_waiting: readings.backlog.redecisions,
            sides,
        });
    }
    Ok(Status {
        generated_at: now,
        backend: store.backend().as_str(),
        pairs,
    })
}

/// What the mirror holds of one pair's sides.
struct Readings {
    cursors: Vec<Cursor>,
    backlog: PairBacklog,
    health: Vec<SideHealth>,
    /// Today's requests per side and purpose.
    usage: Vec<RequestUsage>,
}

/// One side of a pair, as `status` looks at it.
struct SideRef<'a> {
    role: Side,
    /// Its configured name.
    name: &'a str,
    /// The entities the pair syncs.
    entities: &'a [EntityKind],
}

/// The status of side `side.name`, the pair's `side.role`.
async fn side_status(
    loaded: &Loaded,
    store: &Store,
    readings: &Readings,
    side: SideRef<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<SideStatus> {
    let SideRef { role, name, .. } = side;
    let settings = loaded.settings.sides.get(name);
    let kind = settings.map_or("unknown", |s| s.kind.name()).to_owned();
    let location = match settings.map(|s| &s.kind) {
        Some(SideKind::Ghl(ghl)) => Some(ghl.location_id.clone()),
        _ => None,
    };
    let mine: Vec<&Cursor> = readings.cursors.iter().filter(|c| c.side == role).collect();
    let last_poll_at = mine.iter().filter_map(|c| c.last_poll_at).max();
    let last_success_at = mine.iter().filter_map(|c| c.last_success_at).max();
    let health = readings.health.iter().find(|h| h.side == role);
    let rate_limit = match health {
        None => RateLimit::Unknown { note: NO_READING },
        Some(reading) => rate_limit(reading, Pace::of(settings), now),
    };
    let requests_today = match settings.map(|s| &s.kind) {
        Some(SideKind::Ghl(ghl)) => {
            let rows: Vec<&RequestUsage> =
                readings.usage.iter().filter(|u| u.side == role).collect();
            Some(DayBudget::of(&rows, health, ghl.rate_limit, now))
        }
        _ => None,
    };
    let fed = |entity: EntityKind| match settings.map(|s| &s.kind) {
        Some(SideKind::Ghl(_)) => GhlConnector::has_change_feed(entity),
        Some(SideKind::Rest(rest)) => rest.has_change_feed(entity),
        None => true,
    };
    let read_with_contacts = side
        .entities
        .iter()
        .filter(|e| !fed(**e))
        .map(|e| e.to_string())
        .collect();
    let fed_cursors: Vec<&Cursor> = mine.iter().copied().filter(|c| fed(c.entity)).collect();
    let token = match settings.map(|s| &s.kind) {
        Some(SideKind::Ghl(ghl)) => match &ghl.auth {
            GhlAuth::PrivateToken { .. } => TokenInfo::PrivateToken,
            GhlAuth::OAuth { install, .. } => {
                oauth_token(store, name, &ghl.location_id, install, now).await?
            }
        },
        _ => TokenInfo::NotApplicable,
    };
    Ok(SideStatus {
        role,
        side: name.to_owned(),
        kind,
        location,
        last_poll_at,
        last_poll_age_secs: last_poll_at.map(|t| (now - t).num_seconds()),
        last_success_at,
        lag_secs: lag_secs(&fed_cursors, now),
        read_with_contacts,
        last_reconciliation_at: mine.iter().filter_map(|c| c.last_full_sync_at).max(),
        outbox: readings.backlog.outbox(role),
        dead_letters: readings.backlog.dead_letters(role),
        rate_limit,
        requests_today,
        token,
    })
}

/// Seconds between now and the oldest watermark of each entity of
/// `cursors` (None: nothing durably processed yet).
fn lag_secs(cursors: &[&Cursor], now: DateTime<Utc>) -> BTreeMap<String, Option<i64>> {
    let mut lag_secs: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for cursor in cursors {
        let lag = cursor.watermark.map(|w| (now - w).num_seconds().max(0));
        let slot = lag_secs.entry(cursor.entity.to_string()).or_insert(lag);
        // Several streams of one entity: the one furthest behind.
        *slot = match (*slot, lag) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }
    lag_secs
}

fn rate_limit(reading: &SideHealth, pace: Option<Pace>, now: DateTime<Utc>) -> RateLimit {
    if reading.daily_remaining.is_none() {
        return RateLimit::NoBudget {
            recorded_at: reading.recorded_at,
            pace,
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
            "pair {} ({} mirror): {} open conflict(s), {} record(s) waiting to be decided again",
            pair.pair, status.backend, pair.open_conflicts, pair.redecisions_waiting
        );
        let mut table = Table::new(&["", "ghl side", "app side"]);
        for (label, cell) in ROWS {
            let mut line = vec![label.to_owned()];
            line.extend(pair.sides.iter().map(|s| cell(s, now)));
            table.row(line);
        }
        table.print();
    }
}

/// A row of the human table: its label, and its cell for a side at `now`.
type Row = (&'static str, fn(&SideStatus, DateTime<Utc>) -> String);

/// The rows of the human table, in order.
const ROWS: [Row; 9] = [
    ("side", |s, _| s.describe()),
    ("last poll", SideStatus::last_poll),
    ("lag", SideStatus::lag),
    ("outbox to side", |s, _| s.outbox()),
    ("dead letters", |s, _| format!("{} open", s.dead_letters)),
    ("rate limit", SideStatus::rate_limit),
    ("daily budget left", SideStatus::daily_budget),
    ("requests today", |s, _| {
        s.requests_today
            .as_ref()
            .map_or("-".to_owned(), DayBudget::describe)
    }),
    ("token", SideStatus::token),
];

/// The cells of the human table.
impl SideStatus {
    fn describe(&self) -> String {
        match &self.location {
            Some(location) => format!("{} ({}, location {location})", self.side, self.kind),
            None => format!("{} ({})", self.side, self.kind),
        }
    }

    fn last_poll(&self, now: DateTime<Utc>) -> String {
        self.last_poll_at
            .map_or("never".to_owned(), |t| time_and_age(t, now))
    }

    fn lag(&self, now: DateTime<Utc>) -> String {
        let mut parts: Vec<String> = self
            .lag_secs
            .iter()
            .map(|(entity, lag)| match lag {
                Some(secs) => format!("{entity} {}", span(*secs)),
                None => format!("{entity} (no watermark yet)"),
            })
            .collect();
        if !self.read_with_contacts.is_empty() {
            parts.push(format!(
                "{} read with their contacts; last reconciliation {}",
                self.read_with_contacts.join(", "),
                self.last_reconciliation_at
                    .map_or("never".to_owned(), |t| time_and_age(t, now))
            ));
        }
        if parts.is_empty() {
            return "-".to_owned();
        }
        parts.join(", ")
    }

    fn outbox(&self) -> String {
        format!(
            "{} pending, {} in flight, {} failed",
            self.outbox.pending, self.outbox.in_flight, self.outbox.failed
        )
    }

    fn rate_limit(&self, now: DateTime<Utc>) -> String {
        match &self.rate_limit {
            RateLimit::Unknown { note } => (*note).to_owned(),
            RateLimit::NoBudget { recorded_at, pace } => format!(
                "no budget headers from the app; {} (read {})",
                pace.map_or("not paced".to_owned(), |p| format!(
                    "paced at {} per {} (rate_limit)",
                    p.requests,
                    humantime::format_duration(std::time::Duration::from_secs_f64(p.per_secs))
                )),
                age(*recorded_at, now)
            ),
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
        }
    }

    fn daily_budget(&self, now: DateTime<Utc>) -> String {
        match &self.rate_limit {
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
        }
    }

    fn token(&self, now: DateTime<Utc>) -> String {
        match &self.token {
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
        }
    }
}
