//! Helpers of the engine's end-to-end tests (`tests/engine.rs`): both
//! simulators on loopback, a configuration rendered from a template and
//! loaded as the CLI loads it, the engine built from it, and the views of
//! the simulators the invariants are checked on (contacts by email, write
//! requests received).
//!
//! Use with `#[path = "common/engine_helpers.rs"] mod engine_helpers;`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ghl_sync::config::{self, LoadOptions, Loaded};
use ghl_sync::demo::Sims;
use ghl_sync::engine::{Engine, Mode, Reconcile, Report, Shutdown};
use ghlsync_sim::app::{AppSim, AppSimHandle, AppSimOptions};
use ghlsync_sim::ghl::{GhlSim, RateLimitConfig, SimHandle, SimOptions};
use serde_json::{Map, Value};

/// The variable naming the Postgres server of the tests.
pub const DATABASE_URL_VAR: &str = "GHLSYNC_TEST_DATABASE_URL";

/// The app side's client-side pace in the rendered configuration (the
/// appended `config/connectors/app-sim.toml` says 15 per second).
const APP_SIDE_PACE: &str = "requests = 15\n";

/// Starts both simulators: `ghl_contacts` seeded contacts in the GHL
/// location, `app_contacts` (other people) in the app.
///
/// Unlike [`Sims::start`], the GHL location allows duplicate contacts, so
/// a create the engine repeats would show up as a second contact with the
/// same email instead of being refused by the simulator; and the GHL rate
/// limit is raised (with the side's pacing in the templates) so the tests
/// are not paced at 10 requests per second. The app simulator has no
/// rate limit.
pub async fn start_sims(ghl_contacts: usize, app_contacts: usize) -> Sims {
    start_sims_with_webhooks(ghl_contacts, app_contacts, None).await
}

/// [`start_sims`], and with a server address, both simulators deliver
/// their signed webhooks to it (`/webhooks/ghl`, `/webhooks/app/app`).
pub async fn start_sims_with_webhooks(
    ghl_contacts: usize,
    app_contacts: usize,
    server: Option<std::net::SocketAddr>,
) -> Sims {
    start_sims_as(ghl_contacts, app_contacts, server, true).await
}

/// [`start_sims`] with a GHL location that refuses duplicate contacts
/// (same email or phone), as GHL's default "Allow duplicate contact" off
/// does: a second person sharing a phone is refused with 400.
pub async fn start_sims_refusing_duplicates(ghl_contacts: usize, app_contacts: usize) -> Sims {
    start_sims_as(ghl_contacts, app_contacts, None, false).await
}

async fn start_sims_as(
    ghl_contacts: usize,
    app_contacts: usize,
    server: Option<std::net::SocketAddr>,
    allow_duplicate_contacts: bool,
) -> Sims {
    let ghl = GhlSim::start(SimOptions {
        contacts_per_location: ghl_contacts,
        rate_limit: RateLimitConfig {
            burst: 100_000,
            interval: Duration::from_secs(10),
            daily: 100_000_000,
        },
        allow_duplicate_contacts,
        webhook_url: server.map(|at| format!("http://{at}/webhooks/ghl")),
        ..SimOptions::default()
    })
    .await
    .expect("start the GHL simulator");
    let app = AppSim::start(AppSimOptions {
        contacts: app_contacts,
        // Different people from the GHL seed.
        seed: 2,
        rate_limit: None,
        webhook_url: server.map(|at| format!("http://{at}/webhooks/app/app")),
        ..AppSimOptions::default()
    })
    .await
    .expect("start the app simulator");
    distinct_people(&app.handle());
    let location = ghl.handle().location_ids()[0].clone();
    let ghl_token =
        ghl.handle()
            .issue_token(&location, &["contacts.readonly", "contacts.write"], None);
    Sims {
        ghl,
        app,
        location,
        ghl_token,
    }
}

/// Makes every seeded app contact a person identified by email, as the
/// tests count people by email: the app seed leaves some contacts without
/// an email (they get one) and draws mobiles at random, so two people can
/// share one (the later loses it: two people with one phone number are
/// ambiguous for the `phone` match key, which is not what these tests are
/// about). GHL's seed already has unique emails and phones.
fn distinct_people(app: &AppSimHandle) {
    let mut mobiles = HashSet::new();
    for contact in app.contacts() {
        let id = text(&contact, "id");
        let mut patch = Map::new();
        if contact["email_address"].as_str().is_none() {
            patch.insert(
                "email_address".into(),
                Value::from(format!("no.email.{}@app.test", id.to_lowercase())),
            );
        }
        if let Some(mobile) = contact["mobile"].as_str() {
            if !mobiles.insert(mobile.to_owned()) {
                patch.insert("mobile".into(), Value::Null);
            }
        }
        if !patch.is_empty() {
            app.update_contact_as_user(&id, Value::Object(patch))
                .expect("edit a seeded app contact");
        }
    }
}

/// `template` rendered for `sims` (placeholders filled in, the app side
/// appended), with the app side's client-side pace raised to
/// `app_pace` requests per second.
pub fn render(sims: &Sims, template: &str, state_dir: &Path, app_pace: u32) -> String {
    let text = sims.render(template, state_dir);
    assert!(
        text.contains(APP_SIDE_PACE),
        "the app side's rate limit moved in config/connectors/app-sim.toml"
    );
    text.replace(APP_SIDE_PACE, &format!("requests = {app_pace}\n"))
}

/// Writes `text` to `<dir>/ghlsync.toml` and loads it as the CLI would.
pub fn load(text: &str, dir: &Path) -> (PathBuf, Loaded) {
    std::fs::create_dir_all(dir).expect("state dir");
    let path = dir.join("ghlsync.toml");
    std::fs::write(&path, text).expect("write the configuration");
    let loaded = config::load(&LoadOptions {
        file: Some(path.clone()),
        env: Some(Default::default()),
        no_search: true,
    })
    .unwrap_or_else(|e| panic!("the test configuration does not load: {e}\n{text}"));
    (path, loaded)
}

/// Both simulators, a loaded configuration and the engine built from it.
pub struct Harness {
    pub sims: Sims,
    pub loaded: Loaded,
    pub engine: Engine,
    pub config_path: PathBuf,
    /// Holds the SQLite mirror (unless the template names a database).
    pub dir: tempfile::TempDir,
}

impl Harness {
    /// Builds the engine for `template` against `sims`.
    pub async fn new(sims: Sims, template: &str) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let text = render(&sims, template, dir.path(), 1000);
        let (config_path, loaded) = load(&text, dir.path());
        let engine = ghl_sync::demo::engine(&loaded)
            .await
            .expect("build the engine");
        Harness {
            sims,
            loaded,
            engine,
            config_path,
            dir,
        }
    }

    pub fn ghl(&self) -> SimHandle {
        self.sims.ghl.handle()
    }

    pub fn app(&self) -> AppSimHandle {
        self.sims.app.handle()
    }

    /// One cycle; panics if it fails.
    pub async fn cycle(&self, mode: Mode, reconcile: Reconcile) -> Report {
        self.engine
            .cycle(mode, reconcile, &Shutdown::default())
            .await
            .unwrap_or_else(|e| panic!("{mode:?} cycle failed: {e}"))
    }

    /// The GHL location's contacts.
    pub fn ghl_contacts(&self) -> Vec<Value> {
        self.ghl().contacts(&self.sims.location)
    }

    /// How many GHL contacts have each email (lower-cased; contacts
    /// without one count under "").
    pub fn ghl_emails(&self) -> BTreeMap<String, usize> {
        emails(&self.ghl_contacts(), "email")
    }

    /// How many app contacts have each email.
    pub fn app_emails(&self) -> BTreeMap<String, usize> {
        emails(&self.app().contacts(), "email_address")
    }

    /// The GHL contact with this email (panics unless exactly one).
    pub fn ghl_by_email(&self, email: &str) -> Value {
        one(self.ghl_contacts(), "email", email, "GHL")
    }

    /// The app contact with this email (panics unless exactly one).
    pub fn app_by_email(&self, email: &str) -> Value {
        one(self.app().contacts(), "email_address", email, "app")
    }

    /// Write requests each simulator received since its counters were
    /// last reset: `(ghl, app)`.
    pub fn writes(&self) -> (u64, u64) {
        (ghl_writes(&self.ghl()), app_writes(&self.app()))
    }

    pub fn reset_counters(&self) {
        self.ghl().reset_counters();
        self.app().reset_counters();
    }

    /// Asserts that both sides hold exactly the contacts of `expected`
    /// (emails), each once.
    pub fn assert_both_sides_hold(&self, expected: &BTreeMap<String, usize>, context: &str) {
        let want: BTreeMap<String, usize> = expected.keys().map(|e| (e.clone(), 1)).collect();
        assert_eq!(
            self.ghl_emails(),
            want,
            "{context}: GHL contacts by email (each must exist exactly once)"
        );
        assert_eq!(
            self.app_emails(),
            want,
            "{context}: app contacts by email (each must exist exactly once)"
        );
    }
}

/// Counts records by the (lower-cased) text at `field`.
pub fn emails(records: &[Value], field: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for record in records {
        let email = record[field].as_str().unwrap_or_default().to_lowercase();
        *counts.entry(email).or_default() += 1;
    }
    counts
}

fn one(records: Vec<Value>, field: &str, email: &str, side: &str) -> Value {
    let mut found: Vec<Value> = records
        .into_iter()
        .filter(|r| {
            r[field]
                .as_str()
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{side}: expected exactly one contact with email {email}: {found:#?}"
    );
    found.remove(0)
}

/// Text at `field` of a record.
pub fn text(record: &Value, field: &str) -> String {
    record[field].as_str().unwrap_or_default().to_owned()
}

/// Requests that may change data the GHL simulator received (its search
/// is a POST but reads).
pub fn ghl_writes(ghl: &SimHandle) -> u64 {
    ghl.counters().writes()
}

/// Requests that may change data the app simulator received.
pub fn app_writes(app: &AppSimHandle) -> u64 {
    app.counters().writes()
}

/// Waits until `check` holds, up to `timeout`; false on timeout.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !check() {
        if started.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    true
}

// ------------------------------------------------------------- postgres --

/// Runs `case` with the URL of a fresh Postgres database (dropped
/// afterwards), or skips with a NOTICE when `GHLSYNC_TEST_DATABASE_URL` is
/// unset: the store tests' harness.
pub async fn with_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    crate::store_backends::with_postgres_url(&format!("engine test {name}"), case).await
}

/// The engine tests' configuration: the demo's pair (config/demo.toml) with a
/// schedule that sees changes at once (`lag = "0s"`), a mass-delete guard
/// that applies to small mirrors (`mass_delete_min = 1`), short writer
/// leases (a killed writer's items are taken again within seconds), and
/// GHL pacing raised to match the simulator's raised limit. `@...@`
/// placeholders of the harness are filled in by `Sims::render`; the
/// others by [`Template::render`].
pub const TEMPLATE: &str = r#"
state_dir = "@STATE_DIR@"
@DATABASE@

[log]
level = "warn"

[sync]
poll_interval = "500ms"
poll_jitter = "0s"
overlap = "5s"
lag = "0s"
reconcile_interval = "1h"
mass_delete_min = 1
writer_lease = "2s"
shutdown_grace = "2s"

[sides.ghl]
kind = "ghl"
location_id = "@LOCATION_ID@"
base_url = "@GHL_URL@"
scopes = ["contacts.readonly", "contacts.write"]

[sides.ghl.auth]
method = "private_token"
token = "@GHL_TOKEN@"

[sides.ghl.rate_limit]
max_per_interval = 100000
interval = "10s"

[pairs.main]
ghl = "ghl"
app = "app"
default_policy = "newest"
deletes = "propagate"

[[pairs.main.fields]]
name = "email"
ghl = "/email"
app = "/email_address"
normalize = ["trim", "lowercase"]
match_key = "email"

[[pairs.main.fields]]
name = "first_name"
ghl = "/firstName"
app = "/first_name"
normalize = ["trim"]
@FIRST_NAME_POLICY@

[[pairs.main.fields]]
name = "last_name"
ghl = "/lastName"
app = "/last_name"
normalize = ["trim"]

[[pairs.main.fields]]
name = "phone"
ghl = "/phone"
app = "/mobile"
normalize = ["e164"]
match_key = "phone"

[[pairs.main.fields]]
name = "tags"
ghl = "/tags"
app = "/labels"
normalize = ["set"]
policy = "union"

@CHILDREN@
"#;

/// Tasks and notes both ways, as in config/demo.toml.
pub const CHILDREN: &str = r#"
[[pairs.main.fields]]
entity = "task"
name = "title"
ghl = "/title"
app = "/name"

[[pairs.main.fields]]
entity = "task"
name = "completed"
ghl = "/completed"
app = "/done"

[[pairs.main.fields]]
entity = "task"
name = "due"
ghl = { pointer = "/dueDate", format = "rfc3339" }
app = { pointer = "/due_on", format = "rfc3339" }

[[pairs.main.fields]]
entity = "note"
name = "text"
ghl = "/body"
app = "/text"
"#;

/// What varies between the tests' configurations.
#[derive(Default)]
pub struct Template {
    /// `[database] url`; unset: SQLite in the state directory.
    pub database: Option<String>,
    /// `policy` of the first name field; unset: the pair's `newest`.
    pub first_name_policy: Option<&'static str>,
    /// Map tasks and notes too (the seeded children sync as well).
    pub children: bool,
}

impl Template {
    pub fn contacts() -> Template {
        Template::default()
    }

    pub fn with_children() -> Template {
        Template {
            children: true,
            ..Template::default()
        }
    }

    pub fn render(&self) -> String {
        TEMPLATE
            .replace(
                "@DATABASE@",
                &self
                    .database
                    .as_ref()
                    .map(|url| format!("[database]\nurl = \"{url}\"\n"))
                    .unwrap_or_default(),
            )
            .replace(
                "@FIRST_NAME_POLICY@",
                &self
                    .first_name_policy
                    .map(|p| format!("policy = \"{p}\""))
                    .unwrap_or_default(),
            )
            .replace("@CHILDREN@", if self.children { CHILDREN } else { "" })
    }
}
