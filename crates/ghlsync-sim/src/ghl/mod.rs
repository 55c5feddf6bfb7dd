//! A loopback simulator of the GoHighLevel API v2 Contacts endpoints and
//! OAuth, faithful to `shared/ghl-api/apps/contacts.json` and `oauth.json`
//! (and to the known live differences listed in `shared/README.md`), for
//! tests, the demo and benchmarks, and as `ghlsync sim ghl`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use ghlsync_sim::ghl::{GhlSim, SimOptions};
//! let sim = GhlSim::start(SimOptions { contacts_per_location: 50, ..SimOptions::default() }).await?;
//! let handle = sim.handle();
//! let location = handle.location_ids()[0].clone();
//! let token = handle.issue_token(&location, &["contacts.readonly", "contacts.write"], None);
//! // GET {base_url}/contacts/{id} with `Authorization: Bearer {token}` and `Version: 2021-07-28`
//! # let _ = (sim.base_url(), token);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What it serves
//! `GET/PUT/DELETE /contacts/{id}`, `POST /contacts/`, `POST
//! /contacts/upsert`, `GET /contacts/search/duplicate`, `POST
//! /contacts/search`, `GET /contacts/` (deprecated), `GET
//! /contacts/business/{businessId}`, tasks, notes, appointments and tags
//! under `/contacts/{id}/…`, `POST /locations/{locationId}/tasks/search`
//! (`apps/locations.json`), `POST /oauth/token`, `POST
//! /oauth/locationToken`, `GET /oauth/installedLocations`; plus `GET
//! /sim/keys` (webhook public keys) and `GET /sim/health`.
//!
//! # Request pipeline, in order
//! 1. injected latency, then faults that act before the handler (429
//!    storm, connection reset, error status) — see [`FaultConfig`];
//! 2. bearer token: missing or unknown → 401 "Invalid JWT"; expired → 401
//!    "Invalid JWT: token expired";
//! 3. rate limit per `(app, location)` → 429 "Too Many Requests" with
//!    `Retry-After`; refused requests do not count toward the window (see
//!    [`RateLimitConfig`]). Every response to a request with a valid token
//!    carries the `X-RateLimit-*` headers;
//! 4. `Version: 2021-07-28` → 422 with a message list when missing or
//!    different;
//! 5. token class and scope → 401 (see [`error`] for the messages);
//! 6. the handler: a record of another location → 403, an unknown id →
//!    400 "Contact not found" (the spec documents 400, not 404);
//! 7. faults that act after the handler (truncated body, HTML body, lost
//!    response).
//!
//! Every error body is `{statusCode, message, error?, traceId}`.
//!
//! # Counters
//! [`SimHandle::counters`] counts every request by method, spec path
//! template and status (`0` = connection dropped by a fault), the 429s
//! sent, the faults injected, and per `(app, location)` the most requests
//! that arrived in any 10 s span, refused ones included.

mod api;
mod auth;
mod cli;
pub mod error;
mod handle;
mod limits;
mod model;
mod oauth_api;
mod query;
mod seed;
mod server;
pub mod shapes;
mod tasks_search;
mod unusual;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::controls::SimCore;
use crate::running::{seed_anchor, Launch};
use crate::RunningSim;

pub use crate::counters::RouteKey;
pub use crate::faults::{FaultArgs, FaultConfig, FaultKind};
pub use auth::{TokenInfo, UserType, DEFAULT_APP_ID};
pub use cli::{serve_cli, start_from_args, GhlSimArgs, TokenArg};
pub use error::SimError;
pub use handle::{CustomFieldInfo, LocationInfo, SimHandle};
pub use limits::{CounterSnapshot, RateLimitConfig, PEAK_WINDOW};
pub use model::EventKind;
pub use query::{
    LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, SEARCH_DEFAULT_PAGE_LIMIT, SEARCH_MAX_PAGE_LIMIT,
    SEARCH_MAX_PAGE_WINDOW,
};
pub use server::API_VERSION;
pub use shapes::RecordShapes;
pub use unusual::UNUSUAL_VARIANTS;
pub use webhooks::{WebhookPublicKeys, WebhookStats};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Where to listen; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Seeds the data, ids, faults and webhook keys.
    pub seed: u64,
    /// Number of locations (sub-accounts) of the simulated company.
    pub locations: usize,
    /// Contacts generated per location.
    pub contacts_per_location: usize,
    /// The seed data's "now": `dateAdded` falls in the year before it.
    /// Default: the start of the current UTC day.
    pub seed_anchor: Option<DateTime<Utc>>,
    /// Rate limits per `(app, location)`.
    pub rate_limit: RateLimitConfig,
    /// Lifetime of access tokens minted by `/oauth/token` (GHL: one day).
    pub access_token_ttl: Duration,
    /// Faults from the start (change them with [`SimHandle::set_faults`]).
    pub faults: FaultConfig,
    /// Where to POST webhooks; `None` = no deliveries.
    pub webhook_url: Option<String>,
    /// Capacity of the webhook queues, in events.
    pub webhook_queue: usize,
    /// The location setting "allow duplicate contact". Off (the default):
    /// `POST /contacts/` with an email or phone already in the location
    /// is refused with 400 "This location does not allow duplicated
    /// contacts." (the message issue 13 saw; the body names no contact,
    /// as the spec's `BadRequestDTO` has no field for it).
    pub allow_duplicate_contacts: bool,
    /// Whether writing a task, note or appointment also bumps the
    /// contact's `dateUpdated`. Off by default (the spec does not say it
    /// does; no `ContactUpdate` is emitted either way).
    pub child_writes_touch_contact: bool,
    /// Sign webhooks with the legacy RSA `x-wh-signature` too, as GHL did
    /// before 2026-07-01. Off by default: GHL signs with Ed25519 only now
    /// and sends `x-wh-signature: N/A` (field notes, "Webhook signatures").
    pub legacy_rsa_signature: bool,
    /// What answers and webhooks carry: only what the spec's schemas list
    /// ([`RecordShapes::SpecStrict`], the default; see [`shapes`]) or
    /// every field the simulator holds ([`RecordShapes::Generous`]). Change it later
    /// with [`SimHandle::set_record_shapes`].
    pub record_shapes: RecordShapes,
    /// How long a contact write takes to become visible to `POST
    /// /contacts/search`: a contact is found there only once `dateUpdated
    /// + search_lag` has passed; `GET /contacts/{id}` and `GET /contacts/`
    /// see it at once. Zero (the default): no lag. The GHL field notes:
    /// "Search is an index: a write can take a few seconds to become
    /// visible there. Poll with an overlap below the watermark and a lag
    /// behind now." Until then the search finds neither the new version
    /// nor the one before it (a simplification: a live index still holds
    /// the previous version). Change it with [`SimHandle::set_search_lag`].
    pub search_lag: Duration,
}

impl SimOptions {
    /// These options with answers and webhooks trimmed to the spec's
    /// schemas: a test's way to ask for a simulator that sends no more
    /// than GHL promises.
    pub fn spec_strict(self) -> Self {
        self.with_record_shapes(RecordShapes::SpecStrict)
    }

    /// These options with `record_shapes` set.
    pub fn with_record_shapes(self, record_shapes: RecordShapes) -> Self {
        SimOptions {
            record_shapes,
            ..self
        }
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            locations: 1,
            contacts_per_location: 25,
            seed_anchor: None,
            rate_limit: RateLimitConfig::default(),
            access_token_ttl: Duration::from_secs(86_400),
            faults: FaultConfig::default(),
            webhook_url: None,
            webhook_queue: 10_000,
            allow_duplicate_contacts: false,
            child_writes_touch_contact: false,
            legacy_rsa_signature: false,
            record_shapes: RecordShapes::default(),
            search_lag: Duration::ZERO,
        }
    }
}

fn lag_ms(lag: Duration) -> i64 {
    i64::try_from(lag.as_millis()).unwrap_or(i64::MAX)
}

impl SimHandle {
    /// Sets the search index lag from now on (see
    /// [`SimOptions::search_lag`]); contacts already written become
    /// visible `lag` after their own `dateUpdated`.
    pub fn set_search_lag(&self, lag: Duration) {
        server::lock(&self.shared.db).search_lag_ms = lag_ms(lag);
    }
}

/// Entry point: see [`GhlSim::start`].
pub struct GhlSim;

impl GhlSim {
    /// Seeds the data and starts serving on `options.bind`.
    pub async fn start(options: SimOptions) -> std::io::Result<RunningGhlSim> {
        let launch = Launch::bind(options.bind).await?;
        let anchor = seed_anchor(options.seed_anchor);
        let seeded = seed::generate(&seed::SeedSpec {
            seed: options.seed,
            locations: options.locations,
            contacts_per_location: options.contacts_per_location,
            anchor_ms: anchor.timestamp_millis(),
        });
        let mut db = model::Db::new(
            seeded.company_id,
            seeded.locations,
            ChaCha8Rng::seed_from_u64(options.seed ^ 0x6964_735f_6e65_7773),
        );
        db.allow_duplicates = options.allow_duplicate_contacts;
        db.child_writes_touch_contact = options.child_writes_touch_contact;
        db.record_shapes = options.record_shapes;
        db.search_lag_ms = lag_ms(options.search_lag);
        if options.webhook_url.is_some() {
            let seed = options.seed;
            // Warm the key cache off the runtime so the first delivery is quick.
            tokio::task::spawn_blocking(move || webhooks::signing_keys(seed));
        }
        let shared = Arc::new(server::Shared {
            core: SimCore::new(
                launch.base_url.clone(),
                options.seed,
                options.faults.clone(),
                ChaCha8Rng::seed_from_u64(options.seed ^ 0x6661_756c_7473),
                webhooks::start(
                    options.seed,
                    options.legacy_rsa_signature,
                    options.webhook_url.clone(),
                    options.webhook_queue,
                    launch.stopping.clone(),
                ),
            ),
            db: Mutex::new(db),
            auth: Mutex::new(auth::AuthState::new(
                ChaCha8Rng::seed_from_u64(options.seed ^ 0x746f_6b65_6e73),
                options.access_token_ttl,
            )),
            limiter: Mutex::new(limits::Limiter::new(options.rate_limit)),
        });
        let router = server::router(shared.clone());
        Ok(launch.serve(router, SimHandle { shared }, "ghl sim", options.seed))
    }
}

/// A running GHL simulator. Dropping it stops the server (without
/// waiting); [`RunningSim::shutdown`] waits for it.
pub type RunningGhlSim = RunningSim<SimHandle>;
