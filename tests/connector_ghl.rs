//! The connector contract suite against the GHL simulator through the GHL
//! connector.

#[path = "common/connector_suite.rs"]
mod suite;

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use ghl_sync::connector::ghl::{
    ClientOptions, Credentials, GhlClient, GhlConnector, RateLimiter, RateLimits,
};
use ghl_sync::connector::http::RetryPolicy;
use ghl_sync::connector::{Connector, Record};
use ghlsync_sim::ghl::{GhlSim, RunningGhlSim, SimOptions};
use secrecy::SecretString;
use serde_json::{Map, Value};

struct GhlFixture {
    sim: RunningGhlSim,
    location: String,
    connector: GhlConnector,
}

fn connector(sim: &RunningGhlSim, location: &str, scopes: &[&str]) -> GhlConnector {
    let token = sim.handle().issue_token(location, scopes, None);
    let client = GhlClient::new(ClientOptions {
        base_url: sim.base_url().parse().unwrap(),
        location_id: location.to_owned(),
        credentials: Credentials::Static(SecretString::from(token)),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        limiter: RateLimiter::new(RateLimits::default()),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    GhlConnector::new("ghl", client)
}

async fn fixture() -> GhlFixture {
    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 10,
        // The suite makes a few hundred calls; the real limit would make it
        // wait a minute without testing anything more.
        rate_limit: ghlsync_sim::ghl::RateLimitConfig {
            burst: 100_000,
            ..Default::default()
        },
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let location = sim.handle().location_ids()[0].clone();
    let connector = connector(&sim, &location, &["contacts.readonly", "contacts.write"]);
    GhlFixture {
        sim,
        location,
        connector,
    }
}

/// GHL's names of the suite's fields.
const NAMES: suite::FieldNames = suite::FieldNames {
    email: "email",
    first_name: "firstName",
    task_title: "title",
    task_due: "dueDate",
    note_text: "body",
};

#[async_trait]
impl suite::Fixture for GhlFixture {
    fn connector(&self) -> &dyn Connector {
        &self.connector
    }

    fn read_only(&self) -> Box<dyn Connector> {
        Box::new(connector(&self.sim, &self.location, &["contacts.readonly"]))
    }

    fn contact_ids(&self) -> HashSet<String> {
        suite::contact_ids(&self.sim.handle().contacts(&self.location))
    }

    async fn user_creates_contact(&self, email: &str, first_name: &str) -> String {
        let contact = self
            .sim
            .handle()
            .create_contact_as_user(
                &self.location,
                Value::Object(self.contact_fields(email, first_name)),
            )
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
async fn appointments_are_read_only() {
    let fixture = fixture().await;
    let caps = fixture
        .connector
        .capabilities()
        .of(ghl_sync::domain::EntityKind::Appointment);
    assert!(caps.read && !caps.writable());
    let contact = fixture.sim.handle().contacts(&fixture.location)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = fixture
        .connector
        .create(
            ghl_sync::domain::EntityKind::Appointment,
            Some(&contact),
            &Map::new(),
        )
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("appointments are read-only"),
        "{refused}"
    );
}

/// `config/examples/ghl-to-ghl.toml`: two locations, each with its own
/// token, connector and rate-limit budget.
#[tokio::test]
async fn two_locations_sync_through_their_own_tokens_and_limiters() {
    use futures::TryStreamExt;
    use ghl_sync::config::{self, LoadOptions, SideKind};
    use ghl_sync::connector::ghl::build::connect;
    use ghl_sync::connector::ghl::LimiterRegistry;

    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 4,
        locations: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let handle = sim.handle();
    let locations = handle.location_ids();
    let scopes = ["contacts.readonly", "contacts.write"];
    let env: std::collections::HashMap<String, String> = [
        ("GHLSYNC__SIDES__PRIMARY__BASE_URL", sim.base_url()),
        ("GHLSYNC__SIDES__SECONDARY__BASE_URL", sim.base_url()),
        ("GHLSYNC__SIDES__PRIMARY__LOCATION_ID", locations[0].clone()),
        (
            "GHLSYNC__SIDES__SECONDARY__LOCATION_ID",
            locations[1].clone(),
        ),
        (
            "GHLSYNC__SIDES__PRIMARY__AUTH__TOKEN",
            handle.issue_token(&locations[0], &scopes, None),
        ),
        (
            "GHLSYNC__SIDES__SECONDARY__AUTH__TOKEN",
            handle.issue_token(&locations[1], &scopes, None),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples/ghl-to-ghl.toml");
    let loaded = config::load(&LoadOptions {
        file: Some(example),
        env: Some(env),
        no_search: true,
    })
    .expect("the example is valid");
    let pair = &loaded.settings.pairs["locations"];
    assert_eq!(
        (pair.ghl.as_str(), pair.app.as_str()),
        ("primary", "secondary")
    );

    let dir = tempfile::tempdir().unwrap();
    let store = ghl_sync::store::Store::connect_and_migrate(
        &ghl_sync::config::DatabaseSettings::sqlite_file(&dir.path().join("m.db")),
    )
    .await
    .unwrap();
    let limiters = LimiterRegistry::new();
    let mut clients = Vec::new();
    for name in ["primary", "secondary"] {
        let SideKind::Ghl(side) = &loaded.settings.sides[name].kind else {
            panic!("{name} is a GHL side")
        };
        let http = ghl_sync::connector::ghl::client::http_client(side.timeout).unwrap();
        clients.push(connect(name, side, &store, &limiters, http).await.unwrap());
    }
    assert!(
        !std::sync::Arc::ptr_eq(clients[0].limiter(), clients[1].limiter()),
        "each location spends its own budget"
    );
    for (client, location) in clients.iter().zip(&locations) {
        let connector = GhlConnector::new("side", client.clone());
        let listed: Vec<Vec<Record>> = connector.all_contacts().try_collect().await.unwrap();
        let listed: HashSet<String> = listed.into_iter().flatten().map(|r| r.id).collect();
        let expected = suite::contact_ids(&handle.contacts(location));
        assert_eq!(listed, expected);
        assert_eq!(client.limiter().headroom().requests, 1);
    }
    sim.shutdown().await;
}

/// Search answers spell `address` for `address1` and give `dateOfBirth`
/// in epoch milliseconds (FIELD-NOTES.md, "Search"; the spec-strict
/// simulator answers so). The change feed, read from search, gives the
/// engine `GET /contacts/{id}`'s spelling: a field map written against it
/// must not see every address cleared.
#[tokio::test]
async fn the_change_feed_reads_search_answers_in_the_spelling_of_get() {
    let fixture = fixture().await;
    let handle = fixture.sim.handle();
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let contact = handle
        .create_contact_as_user(
            &fixture.location,
            serde_json::json!({
                "email": "ada@example.com",
                "address1": "12 Analytical Row",
                "dateOfBirth": "1990-09-25"
            }),
        )
        .unwrap();
    let id = contact["id"].as_str().unwrap();

    // As GHL spells it in a search answer.
    let api = reqwest::Client::new();
    let token = handle.issue_token(&fixture.location, &["contacts.readonly"], None);
    let answer: Value = api
        .post(format!("{}/contacts/search", fixture.sim.base_url()))
        .bearer_auth(token)
        .header("Version", ghlsync_sim::ghl::API_VERSION)
        .json(&serde_json::json!({"locationId": fixture.location, "pageLimit": 500}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let searched = answer["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap();
    assert_eq!(searched["address"], "12 Analytical Row", "{searched}");
    assert!(searched.get("address1").is_none(), "{searched}");
    assert_eq!(searched["dateOfBirth"], 654_220_800_000_i64, "{searched}");

    // As the connector hands it to the engine.
    let pages: Vec<_> = fixture
        .connector
        .changes(
            ghl_sync::domain::EntityKind::Contact,
            before,
            chrono::Utc::now() + chrono::Duration::seconds(1),
        )
        .collect()
        .await;
    let record = pages
        .into_iter()
        .flat_map(|page| page.unwrap().records)
        .find(|r| r.id == id)
        .expect("the new contact is in the change feed");
    assert_eq!(record.fields["address1"], "12 Analytical Row");
    assert!(record.fields.get("address").is_none());
    assert_eq!(record.fields["dateOfBirth"], "1990-09-25");
}

/// What a recording GHL stand-in received: method, path and JSON body.
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Option<Value>)>>>;

/// A GHL stand-in that records each request and answers every one with a
/// body each decoder of the client takes, and a connector on it.
async fn recording() -> (GhlConnector, Requests) {
    use axum::body::Bytes;
    use axum::extract::{OriginalUri, State};
    use axum::http::Method;

    async fn answer(
        State(log): State<Requests>,
        method: Method,
        uri: OriginalUri,
        body: Bytes,
    ) -> axum::Json<Value> {
        let body = serde_json::from_slice(&body).ok();
        log.lock()
            .unwrap()
            .push((method.to_string(), uri.path().to_owned(), body));
        axum::Json(serde_json::json!({
            "contact": {
                "id": "c1",
                "locationId": "loc",
                "tags": ["vip"],
                "dateAdded": "2024-01-01T00:00:00.000Z",
                "dateUpdated": "2024-01-02T00:00:00.000Z"
            },
            "tags": ["vip"],
            "succeded": true
        }))
    }

    let log = Requests::default();
    let app = axum::Router::new().fallback(answer).with_state(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let scopes = ["contacts.readonly", "contacts.write"];
    let client = GhlClient::new(ClientOptions {
        base_url: base.parse().unwrap(),
        location_id: "loc".to_owned(),
        credentials: Credentials::Static(SecretString::from("pit-test".to_owned())),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        limiter: RateLimiter::new(RateLimits::default()),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    (GhlConnector::new("ghl", client), log)
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

/// GHL field notes, "Tags": `tags` in a contact PUT replaces the whole
/// list, so an update sends the tag change as `POST /contacts/{id}/tags`
/// (added) and `DELETE /contacts/{id}/tags` (removed), each with exactly
/// the delta against `before`, and PUTs the other fields without `tags`;
/// a change to tags only sends no PUT (a GET reads the contact back), and
/// with `before` unknown nothing is removed.
#[tokio::test]
async fn contact_updates_send_tag_deltas_and_never_tags_in_the_put() {
    use ghl_sync::connector::Patch;
    use ghl_sync::domain::EntityKind::Contact;
    use serde_json::json;

    let (connector, log) = recording().await;
    let take = || std::mem::take(&mut *log.lock().unwrap());

    let patch = Patch {
        fields: object(json!({"firstName": "Ada", "tags": ["vip", "new", "NEW"]})),
        before: object(json!({"firstName": "Ad", "tags": ["VIP", "old"]})),
    };
    let record = connector.update(Contact, "c1", None, &patch).await.unwrap();
    assert_eq!(record.id, "c1");
    let tags = |list: &[&str]| Some(json!({ "tags": list }));
    assert_eq!(
        take(),
        vec![
            ("POST".into(), "/contacts/c1/tags".into(), tags(&["new"])),
            ("DELETE".into(), "/contacts/c1/tags".into(), tags(&["old"])),
            (
                "PUT".into(),
                "/contacts/c1".into(),
                Some(json!({"firstName": "Ada"}))
            ),
        ]
    );

    let patch = Patch {
        fields: object(json!({"tags": ["vip", "new"]})),
        before: object(json!({"tags": ["vip"]})),
    };
    connector.update(Contact, "c1", None, &patch).await.unwrap();
    assert_eq!(
        take(),
        vec![
            ("POST".into(), "/contacts/c1/tags".into(), tags(&["new"])),
            ("GET".into(), "/contacts/c1".into(), None),
        ],
        "tags only: no PUT"
    );

    let patch = Patch::new(object(json!({"tags": ["vip"]})));
    connector.update(Contact, "c1", None, &patch).await.unwrap();
    assert_eq!(
        take(),
        vec![
            ("POST".into(), "/contacts/c1/tags".into(), tags(&["vip"])),
            ("GET".into(), "/contacts/c1".into(), None),
        ],
        "`before` unknown: add, never remove"
    );

    let added = connector
        .add_tags(Contact, "c1", &object(json!({"tags": ["lost"]})))
        .await;
    assert!(matches!(added, Some(Ok(()))), "{added:?}");
    assert_eq!(
        take(),
        vec![("POST".into(), "/contacts/c1/tags".into(), tags(&["lost"]))],
        "the delete policy's tag: one request, no read"
    );
}

/// Against the simulator, which keeps GHL's semantics: a tag a user added
/// after `before` was read survives the update.
#[tokio::test]
async fn a_tag_added_after_the_read_survives_an_update() {
    use ghl_sync::connector::Patch;
    use ghl_sync::domain::EntityKind::Contact;
    use serde_json::json;

    let fixture = fixture().await;
    let handle = fixture.sim.handle();
    let id = suite::Fixture::user_creates_contact(&fixture, "tagged@example.com", "Tagged").await;
    handle.add_tags_as_user(&id, &["a", "b"]).unwrap();
    let before = object(json!({"tags": ["a", "b"]}));
    handle.add_tags_as_user(&id, &["user"]).unwrap();
    let patch = Patch {
        fields: object(json!({"tags": ["a", "c"], "firstName": "Renamed"})),
        before,
    };
    let record = fixture
        .connector
        .update(Contact, &id, None, &patch)
        .await
        .unwrap();
    let mut held: Vec<&str> = record.fields["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    held.sort();
    assert_eq!(held, ["a", "c", "user"]);
    assert_eq!(record.fields["firstName"], "Renamed");
    assert_eq!(handle.contact(&id).unwrap()["tags"], record.fields["tags"]);
}
