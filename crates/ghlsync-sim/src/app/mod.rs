//! The reference "your app" simulator: a small REST CRM standing for the
//! operator's own system, for tests, the demo and benchmarks, and as
//! `ghlsync sim app`. Its API is deliberately unlike GHL's (snake_case
//! fields, epoch-millisecond timestamps, cursor paging, PATCH, 404/409
//! errors, tombstones) so the REST connector, configured only by TOML, has
//! to adapt.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ghlsync_sim::app::{AppSim, AppSimOptions};
//! let sim = AppSim::start(AppSimOptions { contacts: 50, ..AppSimOptions::default() }).await?;
//! sim.handle().add_token("secret-token");
//! // GET {base_url}/api/v1/contacts with `Authorization: Bearer secret-token`
//! # let _ = sim.base_url();
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # The HTTP contract
//! Everything is under `/api/v1`, JSON in and out (`Content-Type:
//! application/json`), and needs `Authorization: Bearer <token>`.
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /contacts?updated_since=&limit=&cursor=&email_address=&mobile=` | `{"data": [contact], "next_cursor": string \| null}` |
//! | `POST /contacts` | 201 `{"data": contact}`, `Location` header; 409 on a used email |
//! | `GET /contacts/{id}` | `{"data": contact}` |
//! | `PATCH /contacts/{id}` | `{"data": contact}`; 409 on another contact's email |
//! | `DELETE /contacts/{id}` | 204 (its tasks and notes too) |
//! | `GET /contacts/{id}/tasks` | `{"data": [task]}` in creation order, not paged |
//! | `POST /contacts/{id}/tasks` | 201 `{"data": task}` |
//! | `GET`, `PATCH`, `DELETE /contacts/{id}/tasks/{task_id}` | `{"data": task}` / 204 |
//! | `GET /contacts/{id}/notes` | `{"data": [note]}` in creation order, not paged |
//! | `POST /contacts/{id}/notes` | 201 `{"data": note}` |
//! | `GET`, `PATCH`, `DELETE /contacts/{id}/notes/{note_id}` | `{"data": note}` / 204 |
//! | `GET /tasks?updated_since=&limit=&cursor=` | `{"data": [task], "next_cursor"}` (every task) |
//! | `GET /notes?updated_since=&limit=&cursor=` | `{"data": [note], "next_cursor"}` (every note) |
//! | `GET /deleted?updated_since=&limit=&cursor=` | `{"data": [{"entity", "id", "contact_id", "deleted_at"}], "next_cursor"}` |
//!
//! Records:
//! - contact: `id` (`ct_` + 12 base36), `first_name`, `last_name`,
//!   `email_address`, `mobile` (E.164), `company` (each a string or
//!   `null`, always present), `labels` (array of strings, always present),
//!   `created_at`, `updated_at`, and every extra field a client sent
//!   (any JSON value; kept and returned; `null` removes it);
//! - task: `id` (`tk_…`), `contact_id`, `name`, `details`, `due_on`
//!   (RFC 3339 string, kept as sent), `done`, `created_at`, `updated_at`;
//! - note: `id` (`nt_…`), `contact_id`, `text`, `created_at`,
//!   `updated_at`.
//!
//! Writes:
//! - `POST` and `PATCH` take a JSON object; `id`, `contact_id`,
//!   `created_at` and `updated_at` in it are ignored. Strings are trimmed
//!   and an empty string is `null`. `mobile` is stored as E.164 after
//!   removing spaces, dashes, dots and parentheses (anything else is 422).
//!   Labels are trimmed and de-duplicated; `"labels": null` empties them.
//!   A new contact needs at least one of the five string fields. Tasks
//!   (`name` required, `details`, `due_on`, `done` default `false`) and
//!   notes (`text` required) refuse unknown fields (422).
//! - Email addresses are unique per app, compared case-insensitively: a
//!   `POST` or `PATCH` with another contact's email is 409. Mobiles may
//!   repeat.
//! - Every successful `PATCH` bumps `updated_at` and emits `*.updated`,
//!   even when no value changes. Writing a task or note does not change
//!   its contact's `updated_at`.
//! - Deleting a contact deletes its tasks and notes: each gets a tombstone
//!   (children first, the contact last) and a `*.deleted` webhook.
//!
//! Timestamps (`created_at`, `updated_at`, `deleted_at`, `occurred_at`)
//! are epoch milliseconds from one app-wide clock that hands out
//! `max(now_ms, last + 1)`: no two writes share a timestamp.
//!
//! Change feeds (`/contacts`, `/tasks`, `/notes`, `/deleted`) are ordered
//! by `(updated_at, id)` (`(deleted_at, id)` for `/deleted`) ascending.
//! `updated_since` (epoch ms, inclusive) and `limit` (1..=200, default
//! 50) are checked (422 otherwise). `next_cursor` is an opaque string that
//! encodes the last item's `(updated_at, id)`, or `null` when the page
//! reached the end of the feed. Pass it back as `cursor` with the same
//! filters: the next page starts strictly after that item (and not before
//! `updated_since`). A record updated while a client pages moves to the end
//! of the feed and is seen again; none is skipped. To poll later, keep the
//! largest `updated_at` seen and pass it as `updated_since` (that record
//! comes back once more: the bound is inclusive). `email_address=` (exact,
//! case-insensitive) and `mobile=` (normalised like a write; a `+` sent
//! unencoded, hence decoded as a space, is tolerated) filter `/contacts`
//! for duplicate lookups and combine with paging; an empty filter is 422.
//!
//! Errors are `{"error": CODE, "message": TEXT}`: 401 `unauthorized`
//! (missing or unknown token), 404 `not_found` (unknown id, a task or note
//! of another contact, unknown route), 405 `method_not_allowed`, 409
//! `duplicate` (+ `existing_id`), 422 `invalid` (+ `details`, one
//! `"field: problem"` per problem; malformed JSON, wrong types, bad query
//! parameters), 429 `rate_limited` (+ `Retry-After`). On a `PATCH` an
//! unknown id is 404 even when the body is also invalid.
//!
//! # Request pipeline, in order
//! 1. injected latency, then faults that act before the handler (429
//!    storm, connection reset, error status: 502/503/504 as an HTML
//!    gateway page, others as a JSON error) — see [`FaultConfig`];
//! 2. bearer token: missing or unknown → 401;
//! 3. rate limit per token (default 20 requests in any one second) → 429
//!    `rate_limited` with `Retry-After` (whole seconds, ≥ 1); refused
//!    requests do not count. Every API response carries
//!    `X-RateLimit-Limit` and `X-RateLimit-Remaining` (unless the limit is
//!    off);
//! 4. the handler;
//! 5. faults that act after the handler (truncated body, HTML body, lost
//!    response after a committed write).
//!
//! `GET /sim/health` (no token, no faults) answers `{"status": "ok"}`.
//!
//! # Webhooks
//! `{"event", "entity", "id", "contact_id"?,
//! "occurred_at", "delivery_id"}`, signed with `X-App-Signature:
//! sha256=<hex HMAC-SHA256(secret, raw body)>` and `X-App-Timestamp`
//! (epoch seconds), delivered in order.
//!
//! # Counters
//! [`AppSimHandle::counters`] counts every API request by method, route
//! template (e.g. `/api/v1/contacts/{contact_id}`) and status (`0` =
//! connection dropped by a fault), the 429s sent, the faults injected, and
//! per token the most requests that arrived in any one-second span.

mod api;
mod cli;
mod error;
mod handle;
mod limits;
mod model;
mod seed;
mod server;
mod webhooks;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::controls::SimCore;
use crate::running::{seed_anchor, Launch};
use crate::RunningSim;

pub use crate::counters::RouteKey;
pub use crate::faults::{FaultArgs, FaultConfig, FaultKind};
pub use api::{DEFAULT_LIMIT, MAX_LIMIT};
pub use cli::{serve_cli, start_from_args, AppSimArgs};
pub use error::AppSimError;
pub use handle::AppSimHandle;
pub use limits::{CounterSnapshot, RATE_WINDOW};
pub use server::API_PREFIX;
pub use webhooks::{signature as webhook_signature, WebhookStats};

/// The token accepted when [`AppSimOptions::tokens`] is left at its default.
pub const DEFAULT_TOKEN: &str = "app-sim-token";
/// The webhook secret when none is given.
pub const DEFAULT_WEBHOOK_SECRET: &str = "app-sim-webhook-secret";
/// The default rate limit, requests per second per token.
pub const DEFAULT_RATE_LIMIT: u32 = 20;

/// How to start an app simulator.
#[derive(Debug, Clone)]
pub struct AppSimOptions {
    /// Where to listen; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Seeds the data, ids, faults and webhook delivery ids.
    pub seed: u64,
    /// Contacts generated at start.
    pub contacts: usize,
    /// The seed data's "now": `created_at` falls in the year before it.
    /// Default: the start of the current UTC day.
    pub seed_anchor: Option<DateTime<Utc>>,
    /// Accepted bearer tokens (more with [`AppSimHandle::add_token`]).
    pub tokens: Vec<String>,
    /// Requests per second per token; `None` = no limit.
    pub rate_limit: Option<u32>,
    /// Faults from the start (change them with [`AppSimHandle::set_faults`]).
    pub faults: FaultConfig,
    /// Where to POST webhooks; `None` = no deliveries.
    pub webhook_url: Option<String>,
    /// The HMAC key of `X-App-Signature`.
    pub webhook_secret: String,
    /// Capacity of the webhook queue, in events.
    pub webhook_queue: usize,
}

impl Default for AppSimOptions {
    fn default() -> Self {
        AppSimOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            contacts: 25,
            seed_anchor: None,
            tokens: vec![DEFAULT_TOKEN.to_string()],
            rate_limit: Some(DEFAULT_RATE_LIMIT),
            faults: FaultConfig::default(),
            webhook_url: None,
            webhook_secret: DEFAULT_WEBHOOK_SECRET.to_string(),
            webhook_queue: 10_000,
        }
    }
}

/// Entry point: see [`AppSim::start`].
pub struct AppSim;

impl AppSim {
    /// Seeds the data and starts serving on `options.bind`.
    pub async fn start(options: AppSimOptions) -> std::io::Result<RunningAppSim> {
        let launch = Launch::bind(options.bind).await?;
        let anchor = seed_anchor(options.seed_anchor);
        let mut db = model::Db::new(ChaCha8Rng::seed_from_u64(
            options.seed ^ 0x6170_705f_6964_7331,
        ));
        for (entity, record) in seed::generate(&seed::SeedSpec {
            seed: options.seed,
            contacts: options.contacts,
            anchor_ms: anchor.timestamp_millis(),
        }) {
            db.load(entity, record);
        }
        let webhook_secret = Arc::new(RwLock::new(options.webhook_secret.clone()));
        let shared = Arc::new(server::Shared {
            core: SimCore::new(
                launch.base_url.clone(),
                options.seed,
                options.faults.clone(),
                ChaCha8Rng::seed_from_u64(options.seed ^ 0x6170_705f_6661_756c),
                webhooks::start(
                    options.seed,
                    options.webhook_url.clone(),
                    webhook_secret.clone(),
                    options.webhook_queue,
                    launch.stopping.clone(),
                ),
            ),
            db: Mutex::new(db),
            tokens: Mutex::new(options.tokens.iter().cloned().collect::<HashSet<_>>()),
            limiter: Mutex::new(limits::Limiter::new(options.rate_limit)),
            webhook_secret,
        });
        let router = server::router(shared.clone());
        Ok(launch.serve(router, AppSimHandle { shared }, "app sim", options.seed))
    }
}

/// A running app simulator. Dropping it stops the server (without
/// waiting); [`RunningSim::shutdown`] waits for it.
pub type RunningAppSim = RunningSim<AppSimHandle>;

impl RunningAppSim {
    /// `http://127.0.0.1:PORT/api/v1` (the base URL is
    /// [`RunningSim::base_url`]).
    pub fn api_url(&self) -> String {
        format!("{}{API_PREFIX}", self.base_url())
    }
}
