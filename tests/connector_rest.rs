//! The connector contract suite against the app simulator through the REST
//! connector, built only from `config/connectors/app-sim.toml` (the base
//! URL, token and read-only switch come in through the loader's
//! environment, as an operator would set them).

#[path = "common/connector_suite.rs"]
mod suite;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use async_trait::async_trait;
use ghl_sync::config::{self, LoadOptions, SideKind};
use ghl_sync::connector::rest::RestConnector;
use ghl_sync::connector::Connector;
use ghl_sync::domain::{EntityKind, MatchKey};
use ghlsync_sim::app::{AppSim, AppSimOptions, RunningAppSim};
use serde_json::{json, Value};

const TOKEN: &str = "suite-token";

struct AppFixture {
    sim: RunningAppSim,
    connector: RestConnector,
}

fn app_sim_toml() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/connectors/app-sim.toml")
}

/// The `app` side of `app-sim.toml`, pointed at `sim`.
fn connector(sim: &RunningAppSim, read_only: bool) -> RestConnector {
    let mut env = HashMap::from([
        (
            "GHLSYNC__SIDES__APP__BASE_URL".to_owned(),
            format!("{}/api/v1", sim.base_url()),
        ),
        (
            "GHLSYNC__SIDES__APP__AUTH__TOKEN".to_owned(),
            TOKEN.to_owned(),
        ),
        // The suite makes a few hundred calls: no need to wait for them.
        (
            "GHLSYNC__SIDES__APP__RATE_LIMIT__REQUESTS".to_owned(),
            "1000".to_owned(),
        ),
        (
            "GHLSYNC__SIDES__APP__RETRY__MIN_DELAY".to_owned(),
            "10ms".to_owned(),
        ),
    ]);
    if read_only {
        env.insert(
            "GHLSYNC__SIDES__APP__READ_ONLY".to_owned(),
            "true".to_owned(),
        );
    }
    let loaded = config::load(&LoadOptions {
        file: Some(app_sim_toml()),
        env: Some(env),
        no_search: true,
    })
    .unwrap_or_else(|e| panic!("app-sim.toml does not load: {e}"));
    let SideKind::Rest(side) = &loaded.settings.sides["app"].kind else {
        panic!("the app side is not of kind rest");
    };
    RestConnector::build("app", side).unwrap()
}

async fn fixture() -> AppFixture {
    let sim = AppSim::start(AppSimOptions {
        contacts: 10,
        tokens: vec![TOKEN.to_owned()],
        rate_limit: None,
        ..AppSimOptions::default()
    })
    .await
    .unwrap();
    let connector = connector(&sim, false);
    AppFixture { sim, connector }
}

/// The app's names of the suite's fields.
const NAMES: suite::FieldNames = suite::FieldNames {
    email: "email_address",
    first_name: "first_name",
    task_title: "name",
    task_due: "due_on",
    note_text: "text",
};

#[async_trait]
impl suite::Fixture for AppFixture {
    fn connector(&self) -> &dyn Connector {
        &self.connector
    }

    fn read_only(&self) -> Box<dyn Connector> {
        Box::new(connector(&self.sim, true))
    }

    fn contact_ids(&self) -> HashSet<String> {
        suite::contact_ids(&self.sim.handle().contacts())
    }

    async fn user_creates_contact(&self, email: &str, first_name: &str) -> String {
        let contact = self
            .sim
            .handle()
            .create_contact_as_user(Value::Object(self.contact_fields(email, first_name)))
            .unwrap();
        contact["id"].as_str().unwrap().to_owned()
    }

    async fn user_renames_contact(&self, id: &str, first_name: &str) {
        self.sim
            .handle()
            .update_contact_as_user(id, Value::Object(self.rename_patch(first_name)))
            .unwrap();
    }

    fn names(&self) -> &'static suite::FieldNames {
        &NAMES
    }
}

connector_suite_tests!(fixture());

#[tokio::test]
async fn app_sim_toml_declares_everything_the_simulator_offers() {
    let fixture = fixture().await;
    let caps = fixture.connector.capabilities();
    for entity in [EntityKind::Contact, EntityKind::Task, EntityKind::Note] {
        let of = caps.of(entity);
        assert!(
            of.read && of.create && of.update && of.delete && of.change_feed,
            "{entity}: {of:?}"
        );
    }
    assert!(!caps.of(EntityKind::Appointment).read);
    assert!(caps.webhooks);
    assert_eq!(caps.match_keys, vec![MatchKey::Email, MatchKey::Phone]);
}

/// A webhook the simulator signs passes `verify_webhook` as configured.
#[tokio::test]
async fn simulator_webhooks_verify_with_app_sim_toml() {
    use ghlsync_sim::app::{webhook_signature, DEFAULT_WEBHOOK_SECRET};
    use reqwest::header::{HeaderMap, HeaderValue};
    let fixture = fixture().await;
    let body = br#"{"event":"task.updated","entity":"task","id":"tk_1","contact_id":"ct_9","occurred_at":1,"delivery_id":"dl_1"}"#;
    let now = chrono::Utc::now();
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-app-signature",
        HeaderValue::from_str(&webhook_signature(DEFAULT_WEBHOOK_SECRET, body)).unwrap(),
    );
    headers.insert(
        "x-app-timestamp",
        HeaderValue::from_str(&now.timestamp().to_string()).unwrap(),
    );
    let event = fixture
        .connector
        .verify_webhook(&headers, body, now)
        .unwrap();
    assert_eq!(event.entity, EntityKind::Task);
    assert_eq!(event.id, "tk_1");
    assert_eq!(event.parent_id.as_deref(), Some("ct_9"));
}

/// The simulator commits a create and drops the connection: the record is
/// found by its email (contacts) or among the contact's records (tasks),
/// never created twice.
#[tokio::test]
async fn lost_create_answers_never_duplicate_on_the_simulator() {
    use ghlsync_sim::app::FaultKind;
    let fixture = fixture().await;
    let handle = fixture.sim.handle();
    let before = handle.contact_count();
    handle.fail_next(FaultKind::LoseResponse, 1);
    let contact = fixture
        .connector
        .create(
            EntityKind::Contact,
            None,
            &suite::object(json!({"email_address": "lost@example.com", "first_name": "Lost"})),
        )
        .await
        .expect("create");
    assert_eq!(handle.contact_count(), before + 1, "exactly one contact");
    assert_eq!(contact.fields["email_address"], "lost@example.com");

    handle.fail_next(FaultKind::LoseResponse, 1);
    let task = fixture
        .connector
        .create(
            EntityKind::Task,
            Some(&contact.id),
            &suite::object(json!({"name": "Call back", "due_on": "2027-01-05T09:00:00Z"})),
        )
        .await
        .expect("create task");
    let tasks = handle.tasks(&contact.id);
    assert_eq!(tasks.len(), 1, "exactly one task: {tasks:?}");
    assert_eq!(tasks[0]["id"], json!(task.id));

    // A duplicate email: the 409 is reported naming the existing contact,
    // which the engine verifies before it links anything.
    let again = fixture
        .connector
        .create(
            EntityKind::Contact,
            None,
            &suite::object(json!({"email_address": "LOST@example.com"})),
        )
        .await
        .expect_err("409 is a duplicate");
    assert!(
        matches!(&again, ghl_sync::connector::ConnectorError::Duplicate { existing_id: Some(id), .. } if *id == contact.id),
        "{again:?}"
    );
    assert_eq!(handle.contact_count(), before + 1);
}

/// Injected faults: 503s, truncated bodies and HTML pages are retried.
#[tokio::test]
async fn simulator_faults_are_retried_or_contained() {
    use ghlsync_sim::app::FaultKind;
    let fixture = fixture().await;
    let handle = fixture.sim.handle();
    let id = handle.contacts()[0]["id"].as_str().unwrap().to_owned();
    handle.fail_next(FaultKind::Status(503), 2);
    assert!(fixture
        .connector
        .get(EntityKind::Contact, &id, None)
        .await
        .unwrap()
        .is_some());
    handle.fail_next(FaultKind::Truncate, 1);
    assert!(fixture
        .connector
        .get(EntityKind::Contact, &id, None)
        .await
        .unwrap()
        .is_some());
    // An HTML page (a proxy's) is the side's trouble, not the record's:
    // asked again, like a 503.
    handle.fail_next(FaultKind::Html, 1);
    assert!(fixture
        .connector
        .get(EntityKind::Contact, &id, None)
        .await
        .unwrap()
        .is_some());
}
