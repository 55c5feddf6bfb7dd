//! `ghlsync demo`, and the harness it shares with the end-to-end tests and
//! benchmarks: both simulators on loopback, a configuration pointing a pair
//! at them, and the engine built from that configuration exactly as the
//! daemon builds it.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use ghlsync_sim::app::{AppSim, AppSimOptions, RunningAppSim};
use ghlsync_sim::ghl::{GhlSim, RateLimitConfig, RunningGhlSim, SimOptions};
use serde_json::{json, Value};

use crate::config::{self, LoadOptions, Loaded};
use crate::engine::{self, Engine, Shutdown};
use crate::store::Store;

/// The demo's pair: contacts, tasks and notes both ways.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
/// The app simulator as a REST side, appended to a template.
pub const APP_SIM_SIDE: &str = include_str!("../config/connectors/app-sim.toml");

/// Both simulators, running.
pub struct Sims {
    pub ghl: RunningGhlSim,
    pub app: RunningAppSim,
    /// The simulated GHL location.
    pub location: String,
    /// A Private Integration Token of that location with both contacts
    /// scopes.
    pub ghl_token: String,
}

impl Sims {
    /// Starts both simulators with `ghl_contacts` and `app_contacts` seeded
    /// records (different people on each side).
    pub async fn start(ghl_contacts: usize, app_contacts: usize) -> std::io::Result<Sims> {
        let ghl = GhlSim::start(SimOptions {
            contacts_per_location: ghl_contacts,
            rate_limit: RateLimitConfig::default(),
            ..SimOptions::default()
        })
        .await?;
        let app = AppSim::start(AppSimOptions {
            contacts: app_contacts,
            // Different people from the GHL seed.
            seed: 2,
            rate_limit: None,
            ..AppSimOptions::default()
        })
        .await?;
        let location = ghl.handle().location_ids()[0].clone();
        let ghl_token =
            ghl.handle()
                .issue_token(&location, &["contacts.readonly", "contacts.write"], None);
        Ok(Sims {
            ghl,
            app,
            location,
            ghl_token,
        })
    }

    /// `template` (a configuration with `@GHL_URL@`, `@GHL_TOKEN@`,
    /// `@LOCATION_ID@`, `@STATE_DIR@` placeholders and no app side) made
    /// to point at these simulators, with the app simulator's side
    /// appended as `[sides.app]`.
    pub fn render(&self, template: &str, state_dir: &Path) -> String {
        let app_side = APP_SIM_SIDE.replace(
            "base_url = \"http://127.0.0.1:8080/api/v1\"",
            &format!("base_url = \"{}\"", self.app.api_url()),
        );
        let mut text = template
            .replace("@GHL_URL@", &self.ghl.base_url())
            .replace("@GHL_TOKEN@", &self.ghl_token)
            .replace("@LOCATION_ID@", &self.location)
            .replace("@STATE_DIR@", &state_dir.display().to_string());
        text.push('\n');
        text.push_str(&app_side);
        text
    }

    /// Writes the rendered configuration to `<state_dir>/ghlsync.toml`
    /// and loads it as the CLI would.
    pub fn configure(&self, template: &str, state_dir: &Path) -> anyhow::Result<Loaded> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("ghlsync.toml");
        std::fs::write(&path, self.render(template, state_dir))?;
        config::load(&LoadOptions {
            file: Some(path),
            env: Some(Default::default()),
            no_search: true,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))
    }
}

/// Opens (and migrates) the configured store and builds the engine.
pub async fn engine(loaded: &Loaded) -> anyhow::Result<Engine> {
    let store = Store::connect_and_migrate(&loaded.settings.database)
        .await
        .context("cannot open the mirror store")?;
    engine::build(&loaded.settings, store)
        .await
        .context("cannot start the engine")
}

/// Waits until `check` holds, up to `timeout`; how long it took.
pub async fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while !check() {
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

fn text(record: &Value, field: &str) -> String {
    record[field].as_str().unwrap_or_default().to_owned()
}

/// How long the demo waits for a change to propagate.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A simulator's refusal of a user's edit, as an error.
fn refused<T, E: std::fmt::Debug>(result: Result<T, E>) -> anyhow::Result<T> {
    result.map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// The demo: both simulators, a SQLite mirror in a temporary directory,
/// the daemon, and edits on both sides; prints what propagated.
pub async fn run() -> anyhow::Result<()> {
    let sims = Sims::start(5, 5).await?;
    let dir = tempfile::tempdir()?;
    let loaded = sims.configure(DEMO_CONFIG, dir.path())?;
    let engine = engine(&loaded).await?;
    println!("ghlsync demo");
    println!(
        "  GoHighLevel simulator  {} (location {})",
        sims.ghl.base_url(),
        sims.location
    );
    println!("  app simulator          {}", sims.app.api_url());
    println!(
        "  mirror                 {}",
        loaded.settings.database.redacted_url()
    );
    println!();

    let stop = Shutdown::default();
    let daemon = tokio::spawn(engine::run(engine.clone(), stop.clone()));
    initial_sync(&sims).await?;
    let (ghl_id, email) = ghl_edit(&sims).await?;
    let edited = app_edit(&sims, ghl_id, email).await?;
    conflict(&sims, &edited).await?;
    task(&sims, &edited).await?;
    delete(&sims, &edited).await?;

    stop.trigger();
    daemon.await??;
    let depth = engine.store.outbox_depth().await?;
    let dead = engine.store.dead_letters(None).await?.len();
    let conflicts = engine.store.open_conflicts(None).await?.len();
    println!();
    println!(
        "done: {} writes applied, {} pending, {} dead letters, {} open conflicts",
        depth.done, depth.pending, dead, conflicts
    );
    engine.store.close().await;
    Ok(())
}

/// The contact the demo edits: its ids on both sides and its email.
struct Edited {
    ghl_id: String,
    app_id: String,
    email: String,
}

/// The app's contact with `email`, if any.
fn app_record(sims: &Sims, email: &str) -> Option<Value> {
    sims.app
        .handle()
        .contacts()
        .into_iter()
        .find(|c| c["email_address"].as_str() == Some(email))
}

/// 1. The initial load: everyone on both sides.
async fn initial_sync(sims: &Sims) -> anyhow::Result<()> {
    let (ghl, app) = (sims.ghl.handle(), sims.app.handle());
    let took = wait_for("the initial sync", TIMEOUT, || {
        ghl.contacts(&sims.location).len() == 10 && app.contact_count() == 10
    })
    .await?;
    println!(
        "1. initial sync      5 GHL contacts created in the app, 5 app contacts created in GHL ({:.1} s)",
        took.as_secs_f64()
    );
    Ok(())
}

/// 2. An edit in GHL reaches the app. The contact's GHL id and email.
async fn ghl_edit(sims: &Sims) -> anyhow::Result<(String, String)> {
    let ghl = sims.ghl.handle();
    let contact = ghl.contacts(&sims.location)[0].clone();
    let ghl_id = text(&contact, "id");
    let email = text(&contact, "email");
    refused(ghl.update_contact_as_user(&ghl_id, json!({"firstName": "Adaline"})))?;
    let took = wait_for("the GHL edit to reach the app", TIMEOUT, || {
        app_record(sims, &email).is_some_and(|c| c["first_name"] == "Adaline")
    })
    .await?;
    println!(
        "2. GHL edit          {email}: first name \"{}\" -> \"Adaline\" in the app ({:.1} s)",
        text(&contact, "firstName"),
        took.as_secs_f64()
    );
    Ok((ghl_id, email))
}

/// 3. An edit in the app (of the contact edited in GHL) reaches GHL.
async fn app_edit(sims: &Sims, ghl_id: String, email: String) -> anyhow::Result<Edited> {
    let (ghl, app) = (sims.ghl.handle(), sims.app.handle());
    let app_id = text(
        &app_record(sims, &email).context("linked app contact")?,
        "id",
    );
    refused(app.update_contact_as_user(&app_id, json!({"last_name": "Lovelace"})))?;
    let took = wait_for("the app edit to reach GHL", TIMEOUT, || {
        ghl.contact(&ghl_id)
            .is_some_and(|c| c["lastName"] == "Lovelace")
    })
    .await?;
    println!(
        "3. app edit          {email}: last name -> \"Lovelace\" in GHL ({:.1} s)",
        took.as_secs_f64()
    );
    Ok(Edited {
        ghl_id,
        app_id,
        email,
    })
}

/// 4. The same field edited on both sides: `newest` settles it.
async fn conflict(sims: &Sims, edited: &Edited) -> anyhow::Result<()> {
    let (ghl, app) = (sims.ghl.handle(), sims.app.handle());
    let Edited {
        ghl_id,
        app_id,
        email,
    } = edited;
    refused(ghl.update_contact_as_user(ghl_id, json!({"firstName": "Ada (GHL)"})))?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    refused(app.update_contact_as_user(app_id, json!({"first_name": "Ada (app)"})))?;
    let took = wait_for("the conflict to settle", TIMEOUT, || {
        ghl.contact(ghl_id)
            .is_some_and(|c| c["firstName"] == "Ada (app)")
            && app_record(sims, email).is_some_and(|c| c["first_name"] == "Ada (app)")
    })
    .await?;
    println!(
        "4. conflict          {email}: first name set to \"Ada (GHL)\" in GHL, then \"Ada (app)\" in the app;\n                      policy `newest` kept \"Ada (app)\" on both sides ({:.1} s)",
        took.as_secs_f64()
    );
    Ok(())
}

/// 5. A task created in GHL reaches the app.
async fn task(sims: &Sims, edited: &Edited) -> anyhow::Result<()> {
    let (ghl, app) = (sims.ghl.handle(), sims.app.handle());
    refused(ghl.create_task_as_user(
        &edited.ghl_id,
        json!({"title": "Send the contract", "dueDate": "2027-01-05T09:00:00Z", "completed": false}),
    ))?;
    let took = wait_for("the task to reach the app", TIMEOUT, || {
        app.tasks(&edited.app_id)
            .iter()
            .any(|t| t["name"] == "Send the contract")
    })
    .await?;
    println!(
        "5. task              \"Send the contract\" created in GHL appeared in the app ({:.1} s)",
        took.as_secs_f64()
    );
    Ok(())
}

/// 6. A contact deleted in the app is deleted in GHL.
async fn delete(sims: &Sims, edited: &Edited) -> anyhow::Result<()> {
    let (ghl, app) = (sims.ghl.handle(), sims.app.handle());
    let victim = app
        .contacts()
        .into_iter()
        .find(|c| c["id"].as_str() != Some(edited.app_id.as_str()))
        .context("a second contact")?;
    let victim_email = text(&victim, "email_address");
    refused(app.delete_contact_as_user(&text(&victim, "id")))?;
    let took = wait_for("the delete to reach GHL", TIMEOUT, || {
        !ghl.contacts(&sims.location)
            .iter()
            .any(|c| c["email"].as_str() == Some(victim_email.as_str()))
    })
    .await?;
    println!(
        "6. delete            {victim_email} deleted in the app, then in GHL ({:.1} s)",
        took.as_secs_f64()
    );
    Ok(())
}
