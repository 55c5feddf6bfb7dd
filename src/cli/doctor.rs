//! `ghlsync doctor`: read-only test requests that confirm each GHL side is
//! reachable and authorised, as the integration pages promise ("run test
//! requests to confirm authentication"). Nothing is written anywhere.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use futures::StreamExt;

use crate::config::{Loaded, SideKind};
use crate::connector::ghl::build::connect;
use crate::connector::ghl::client::{http_client, WRITE_SCOPE};
use crate::connector::ghl::task_search::{CONTACTS_PER_SEARCH, TASKS_SCOPE};
use crate::connector::ghl::{Contact, Credentials, GhlClient, GhlError, LimiterRegistry};
use crate::store::Store;

/// A token expiring sooner than this is reported as a warning.
const EXPIRY_WARNING: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Warn,
    Fail,
}

struct Check {
    side: String,
    name: &'static str,
    outcome: Outcome,
    latency: Option<Duration>,
    detail: String,
}

pub async fn run(loaded: Loaded, only_side: Option<String>) -> anyhow::Result<()> {
    let store = Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")?;
    let limiters = LimiterRegistry::new();
    let mut checks = Vec::new();
    let mut examined = 0;
    for side in loaded.settings.sides.values() {
        let SideKind::Ghl(ghl) = &side.kind else {
            continue;
        };
        if only_side.as_deref().is_some_and(|only| only != side.name) {
            continue;
        }
        examined += 1;
        let http = http_client(ghl.timeout)?;
        match connect(&side.name, ghl, &store, &limiters, http).await {
            Ok(client) => {
                checks.extend(check_side(&side.name, ghl.location_id.as_str(), &client).await)
            }
            Err(error) => checks.push(Check::new(
                &side.name,
                "credentials",
                Outcome::Fail,
                None,
                error.to_string(),
            )),
        }
    }
    store.close().await;
    if examined == 0 {
        anyhow::bail!(match only_side {
            Some(name) => format!("no GHL side named `{name}` in the configuration"),
            None => "no GHL side in the configuration".to_owned(),
        });
    }
    print_table(&checks);
    let failed = checks.iter().filter(|c| c.outcome == Outcome::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

impl Check {
    fn new(
        side: &str,
        name: &'static str,
        outcome: Outcome,
        latency: Option<Duration>,
        detail: String,
    ) -> Self {
        Check {
            side: side.to_owned(),
            name,
            outcome,
            latency,
            detail,
        }
    }
}

async fn check_side(side: &str, location: &str, client: &GhlClient) -> Vec<Check> {
    // The listing goes first: it is the token's real test. A token found
    // and unexpired may still be one GHL refuses (revoked, mistyped, of
    // another location), and the table must not call it ok.
    let (listing, contact) = first_contact(side, client).await;
    let mut token = token_check(side, location, client).await;
    if let Some(refusal) = listing.as_ref().and_then(|l| l.refusal.as_deref()) {
        token.outcome = Outcome::Fail;
        token.detail = format!("{}: refused by GHL: {refusal}", token.detail);
    }
    let mut checks = vec![token, scopes_check(side, client)];
    checks.extend(listing.map(|l| l.check));
    if let Some(contact) = &contact {
        checks.extend(children_checks(side, client, &contact.id).await);
    }
    checks.push(task_reads_check(side, client, contact.as_ref().map(|c| c.id.as_str())).await);
    checks.push(rate_limit_check(side, client));
    checks
}

/// 1. The token: present, and not about to expire.
///
/// [`check_side`] fails it too when GHL refuses it on the first request.
async fn token_check(side: &str, location: &str, client: &GhlClient) -> Check {
    match client.credentials() {
        Credentials::OAuth(session) => match session.token().await {
            Ok(token) => {
                let left = (token.expires_at - Utc::now()).to_std().unwrap_or_default();
                let outcome = if left < EXPIRY_WARNING {
                    Outcome::Warn
                } else {
                    Outcome::Ok
                };
                Check::new(
                    side,
                    "token",
                    outcome,
                    None,
                    format!(
                        "OAuth token for location {location}, expires in {} (refreshed automatically)",
                        humantime::format_duration(Duration::from_secs(left.as_secs()))
                    ),
                )
            }
            Err(error) => Check::new(side, "token", Outcome::Fail, None, error.to_string()),
        },
        Credentials::Static(_) => Check::new(
            side,
            "token",
            Outcome::Ok,
            None,
            format!("private integration token for location {location}"),
        ),
    }
}

/// 2. Scopes.
fn scopes_check(side: &str, client: &GhlClient) -> Check {
    if client.can_write() {
        Check::new(
            side,
            "scopes",
            Outcome::Ok,
            None,
            "contacts.readonly and contacts.write".into(),
        )
    } else {
        Check::new(
            side,
            "scopes",
            Outcome::Warn,
            None,
            format!("no {WRITE_SCOPE}: pairs with this side run one-way and never write to GHL"),
        )
    }
}

/// The check of the first request, and what it says of the token.
struct Listing {
    check: Check,
    /// GHL refused the token (401), in its words: the token row fails.
    refusal: Option<String>,
}

/// 3. A one-contact listing, and the contact it returned.
async fn first_contact(side: &str, client: &GhlClient) -> (Option<Listing>, Option<Contact>) {
    let started = Instant::now();
    let first = std::pin::pin!(client.list_contacts(1)).next().await;
    let latency = Some(started.elapsed());
    let name = "GET /contacts/?limit=1";
    match first {
        Some(Ok(contacts)) => {
            let detail = format!("{} contact(s) returned", contacts.len());
            let check = Check::new(side, name, Outcome::Ok, latency, detail);
            let listing = Listing {
                check,
                refusal: None,
            };
            (Some(listing), contacts.into_iter().next())
        }
        Some(Err(error)) => {
            let refusal = token_refusal(&error);
            let check = Check::new(side, name, Outcome::Fail, latency, error.to_string());
            (Some(Listing { check, refusal }), None)
        }
        None => (None, None),
    }
}

/// What a failed request says of the token: GHL's message when it
/// answered 401 (invalid, revoked or expired), or when a new access token
/// could not be had; `None` when the failure is not the token's.
fn token_refusal(error: &GhlError) -> Option<String> {
    match error {
        GhlError::Unauthorized {
            call,
            message,
            trace_id,
        } => Some(format!(
            "401 on {} {}: {message}{}",
            call.method,
            call.path,
            trace_id
                .as_ref()
                .map(|id| format!(" [traceId {id}]"))
                .unwrap_or_default()
        )),
        GhlError::TokenExpired { call, .. } => Some(format!(
            "401 on {} {}: the access token expired",
            call.method, call.path
        )),
        GhlError::Auth { source, .. } => Some(source.to_string()),
        _ => None,
    }
}

/// 4. That contact's tasks and notes.
async fn children_checks(side: &str, client: &GhlClient, contact_id: &str) -> [Check; 2] {
    let tasks = async { client.list_tasks(contact_id).await.map(|tasks| tasks.len()) };
    let notes = async { client.list_notes(contact_id).await.map(|notes| notes.len()) };
    [
        listing_check(
            side,
            "GET /contacts/:id/tasks",
            "task(s)",
            contact_id,
            tasks,
        )
        .await,
        listing_check(
            side,
            "GET /contacts/:id/notes",
            "note(s)",
            contact_id,
            notes,
        )
        .await,
    ]
}

/// 4b. How reconciliation reads this side's tasks: the location-wide task
/// search when the scopes include `locations/tasks.readonly` (tried once
/// with the contact of the listing), one request per contact otherwise.
async fn task_reads_check(side: &str, client: &GhlClient, contact: Option<&str>) -> Check {
    let name = "task reconciliation";
    let per_contact = "per contact: GET /contacts/:id/tasks, one request per contact";
    if !client.can_search_tasks() {
        let detail = format!(
            "{per_contact} (grant {TASKS_SCOPE} to list them with POST /locations/:id/tasks/search, \
             about one request per {CONTACTS_PER_SEARCH} contacts)"
        );
        return Check::new(side, name, Outcome::Ok, None, detail);
    }
    let Some(contact) = contact else {
        let detail = format!(
            "location-wide task search ({TASKS_SCOPE} listed; not tried: no contact to try it on)"
        );
        return Check::new(side, name, Outcome::Ok, None, detail);
    };
    let started = Instant::now();
    let tried = client.search_tasks(&[contact.to_owned()]).await;
    let latency = Some(started.elapsed());
    match tried {
        Ok(listing) => Check::new(
            side,
            name,
            Outcome::Ok,
            latency,
            format!(
                "location-wide task search (POST /locations/:id/tasks/search, {TASKS_SCOPE}): \
                 {} task(s) on contact {contact}",
                listing.records.len()
            ),
        ),
        Err(error @ (GhlError::Unauthorized { .. } | GhlError::Forbidden { .. })) => Check::new(
            side,
            name,
            Outcome::Warn,
            latency,
            format!(
                "{TASKS_SCOPE} is listed but GHL refused the task search ({error}): {per_contact}"
            ),
        ),
        Err(error) => Check::new(side, name, Outcome::Fail, latency, error.to_string()),
    }
}

/// 5. Rate-limit headroom as GHL reported it.
fn rate_limit_check(side: &str, client: &GhlClient) -> Check {
    let headroom = client.limiter().headroom();
    Check::new(
        side,
        "rate limit",
        if headroom.throttled > 0 {
            Outcome::Warn
        } else {
            Outcome::Ok
        },
        None,
        format!(
            "{} of {} left in this 10 s window, {} left today, {} 429s",
            headroom
                .interval_remaining
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            client.limiter().limits().max_per_interval,
            headroom.daily_remaining,
            headroom.throttled
        ),
    )
}

/// The check of one of a contact's sub-resource listings, timed from
/// when `listing` is awaited.
async fn listing_check(
    side: &str,
    name: &'static str,
    what: &str,
    contact_id: &str,
    listing: impl std::future::Future<Output = Result<usize, GhlError>>,
) -> Check {
    let started = Instant::now();
    let listed = listing.await;
    let (outcome, detail) = match listed {
        Ok(count) => (
            Outcome::Ok,
            format!("{count} {what} on contact {contact_id}"),
        ),
        Err(error) => (Outcome::Fail, error.to_string()),
    };
    Check::new(side, name, outcome, Some(started.elapsed()), detail)
}

fn print_table(checks: &[Check]) {
    println!(
        "{:<8} {:<26} {:<6} {:>8}  detail",
        "side", "check", "status", "latency"
    );
    for check in checks {
        let status = match check.outcome {
            Outcome::Ok => "ok",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
        };
        let latency = check
            .latency
            .map(|l| format!("{}ms", l.as_millis()))
            .unwrap_or_default();
        println!(
            "{:<8} {:<26} {:<6} {:>8}  {}",
            check.side, check.name, status, latency, check.detail
        );
    }
}
