//! The GHL client against the GHL simulator: pagination under faults,
//! creates that never duplicate, scopes, OAuth refresh and rotation, 429s,
//! and error messages that name the call.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::TryStreamExt;
use ghl_sync::config::{DatabaseSettings, SecretSource, TokenKey};
use ghl_sync::connector::ghl::auth::stored_token;
use ghl_sync::connector::ghl::client::http_client;
use ghl_sync::connector::ghl::{
    ClientOptions, ContactFields, Credentials, GhlClient, GhlError, OAuthApp, OAuthSession,
    RateLimiter, RateLimits, SearchQuery, TaskFields, TokenSource,
};
use ghl_sync::connector::http::RetryPolicy;
use ghl_sync::domain::EntityKind;
use ghl_sync::store::{Store, StoredToken};
use ghlsync_sim::ghl::{FaultConfig, FaultKind, GhlSim, RunningGhlSim, SimOptions};
use secrecy::{ExposeSecret, SecretString};

const WRITE: [&str; 2] = ["contacts.readonly", "contacts.write"];

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        min_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    }
}

async fn start(contacts: usize) -> RunningGhlSim {
    GhlSim::start(SimOptions {
        contacts_per_location: contacts,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

fn location(sim: &RunningGhlSim) -> String {
    sim.handle().location_ids()[0].clone()
}

fn client_with(
    sim: &RunningGhlSim,
    credentials: Credentials,
    scopes: &[&str],
    retry: RetryPolicy,
) -> GhlClient {
    GhlClient::new(ClientOptions {
        base_url: sim.base_url().parse().unwrap(),
        location_id: location(sim),
        credentials,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        limiter: RateLimiter::new(RateLimits::default()),
        retry,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

fn static_client(sim: &RunningGhlSim, scopes: &[&str]) -> GhlClient {
    let token = sim.handle().issue_token(&location(sim), scopes, None);
    client_with(
        sim,
        Credentials::Static(SecretString::from(token)),
        scopes,
        fast_retry(),
    )
}

fn ids(contacts: &[ghl_sync::connector::ghl::Contact]) -> Vec<String> {
    contacts.iter().map(|c| c.id.clone()).collect()
}

fn assert_each_once(seen: Vec<String>, expected: &HashSet<String>, what: &str) {
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "{what}: a contact was returned twice"
    );
    assert_eq!(&unique, expected, "{what}: contacts lost or invented");
}

#[tokio::test]
async fn pagination_survives_5xx_resets_and_bad_bodies_without_losing_or_repeating_a_page() {
    let sim = start(230).await;
    let handle = sim.handle();
    let expected: HashSet<String> = handle
        .contacts(&location(&sim))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let client = static_client(&sim, &WRITE);
    handle.set_faults(FaultConfig {
        error_rates: vec![(500, 0.1), (503, 0.1)],
        reset_rate: 0.1,
        truncate_rate: 0.05,
        html_rate: 0.05,
        ..FaultConfig::default()
    });

    let pages: Vec<Vec<_>> = client
        .list_contacts(20)
        .try_collect()
        .await
        .expect("listing completes");
    assert!(pages.len() >= 12, "{} pages", pages.len());
    assert_each_once(
        pages.iter().flat_map(|p| ids(p)).collect(),
        &expected,
        "GET /contacts/",
    );

    let query = SearchQuery::updated_between(Utc.timestamp_opt(0, 0).unwrap(), Utc::now(), 50);
    let pages: Vec<Vec<_>> = client
        .search_contacts(query)
        .try_collect()
        .await
        .expect("search completes");
    assert_each_once(
        pages.iter().flat_map(|p| ids(p)).collect(),
        &expected,
        "POST /contacts/search",
    );

    let by_business: HashSet<String> = handle
        .contacts(&location(&sim))
        .iter()
        .filter_map(|c| c["businessId"].as_str().map(str::to_owned))
        .collect();
    assert!(!by_business.is_empty(), "seed has businesses");
    for business in by_business {
        let expected: HashSet<String> = handle
            .contacts(&location(&sim))
            .iter()
            .filter(|c| c["businessId"] == business.as_str())
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect();
        let pages: Vec<Vec<_>> = client
            .list_business_contacts(&business, 3)
            .try_collect()
            .await
            .expect("business listing completes");
        assert_each_once(
            pages.iter().flat_map(|p| ids(p)).collect(),
            &expected,
            "GET /contacts/business",
        );
    }
    let faults = handle.counters().faults;
    assert!(
        faults.values().sum::<u64>() > 5,
        "faults were injected: {faults:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_create_whose_response_is_lost_makes_exactly_one_record() {
    let sim = start(3).await;
    let handle = sim.handle();
    let client = static_client(&sim, &WRITE);

    handle.fail_next(FaultKind::LoseResponse, 1);
    let fields = ContactFields::new()
        .set("firstName", "Ada")
        .set("email", "ada.lost@example.com");
    let contact = client
        .create_contact(&fields)
        .await
        .expect("create completes");
    let matching: Vec<_> = handle
        .contacts(&location(&sim))
        .into_iter()
        .filter(|c| c["email"] == "ada.lost@example.com")
        .collect();
    assert_eq!(matching.len(), 1, "exactly one contact: {matching:?}");
    assert_eq!(matching[0]["id"], contact.id.as_str());

    handle.fail_next(FaultKind::LoseResponse, 1);
    let task = TaskFields {
        title: Some("Call back".into()),
        due_date: Some(Utc.with_ymd_and_hms(2027, 1, 5, 9, 0, 0).unwrap()),
        ..TaskFields::default()
    };
    let created = client
        .create_task(&contact.id, &task)
        .await
        .expect("task create completes");
    let tasks = handle.tasks(&contact.id);
    assert_eq!(tasks.len(), 1, "exactly one task: {tasks:?}");
    assert_eq!(tasks[0]["id"], created.id.as_str());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_create_refused_as_a_duplicate_overwrites_nobody() {
    // Issue 13: the client used to finish a refused create through
    // `/contacts/upsert`, which matched another person by a shared phone
    // and replaced their name and email. A refusal is now reported as it
    // is; the engine verifies the existing contact before anything else.
    let sim = start(3).await;
    let handle = sim.handle();
    let existing = handle.contacts(&location(&sim))[0].clone();
    let phone = existing["phone"].as_str().unwrap().to_owned();
    let client = static_client(&sim, &WRITE);
    let refused = client
        .create_contact(
            &ContactFields::new()
                .set("email", "someone.else@example.com")
                .set("phone", phone.as_str())
                .set("lastName", "Else"),
        )
        .await
        .unwrap_err();
    assert!(refused.is_duplicate(), "{refused}");
    assert_eq!(handle.contacts(&location(&sim)).len(), 3, "nothing created");
    let after = handle.contact(existing["id"].as_str().unwrap()).unwrap();
    assert_eq!(after, existing, "the existing contact is untouched");
    assert_eq!(
        handle.counters().count_route("POST", "/contacts/upsert"),
        0,
        "no upsert"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_lost_create_is_not_taken_for_another_person_sharing_its_phone() {
    // The create's answer is lost and GHL refused it (the phone is
    // another contact's): the duplicate search finds that contact by
    // phone, but its email is not ours, so it is not "our" create.
    let sim = start(3).await;
    let handle = sim.handle();
    let existing = handle.contacts(&location(&sim))[0].clone();
    let phone = existing["phone"].as_str().unwrap().to_owned();
    let client = static_client(&sim, &WRITE);
    handle.fail_next(FaultKind::Status(502), 1);
    let error = client
        .create_contact(
            &ContactFields::new()
                .set("email", "sharing.a.phone@example.com")
                .set("phone", phone.as_str()),
        )
        .await
        .unwrap_err();
    assert!(
        error.is_duplicate(),
        "re-sent after a lookup, refused: {error}"
    );
    assert_eq!(handle.contacts(&location(&sim)).len(), 3);
    assert_eq!(
        handle.contact(existing["id"].as_str().unwrap()).unwrap(),
        existing
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn readonly_scope_refuses_writes_before_sending_anything() {
    let sim = start(2).await;
    let handle = sim.handle();
    let client = static_client(&sim, &["contacts.readonly"]);
    handle.reset_counters();
    let error = client
        .create_contact(&ContactFields::new().set("email", "x@example.com"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            GhlError::ScopeMissing {
                scope: "contacts.write",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("nothing was sent"), "{error}");
    assert!(!client.can_write());
    assert_eq!(
        handle.counters().total_requests,
        0,
        "no request reached GHL"
    );

    // A token GHL knows to be read-only, configured as writable: GHL's 401.
    let token = handle.issue_token(&location(&sim), &["contacts.readonly"], None);
    let lying = client_with(
        &sim,
        Credentials::Static(SecretString::from(token)),
        &WRITE,
        fast_retry(),
    );
    let id = handle.contacts(&location(&sim))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let error = lying
        .update_contact(&id, &ContactFields::new().set("firstName", "X"))
        .await
        .unwrap_err();
    assert!(matches!(error, GhlError::Unauthorized { .. }), "{error}");
    assert!(
        error.to_string().contains(&format!("PUT /contacts/{id}")),
        "{error}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn validation_failures_carry_ghl_messages_and_the_call() {
    let sim = start(2).await;
    let client = static_client(&sim, &WRITE);
    let id = sim.handle().contacts(&location(&sim))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // CreateTaskParams requires title and dueDate.
    let error = client
        .create_task(&id, &TaskFields::default())
        .await
        .unwrap_err();
    let GhlError::Unprocessable { messages, .. } = &error else {
        panic!("expected 422, got {error}");
    };
    assert!(!messages.is_empty());
    let text = error.to_string();
    assert!(
        text.contains(&format!("POST /contacts/{id}/tasks")),
        "{text}"
    );
    assert!(text.contains(&location(&sim)), "{text}");
    assert!(text.contains("traceId"), "{text}");

    let missing = client.get_contact("doesNotExist0000000").await.unwrap_err();
    assert!(missing.is_record_error(), "{missing}");
    assert!(
        missing
            .to_string()
            .contains("GET /contacts/doesNotExist0000000"),
        "{missing}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_429_is_waited_out_retried_and_counted() {
    let sim = start(2).await;
    let client = static_client(&sim, &WRITE);
    let id = sim.handle().contacts(&location(&sim))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.handle().fail_next(FaultKind::TooManyRequests, 1);
    let started = std::time::Instant::now();
    client
        .get_contact(&id)
        .await
        .expect("retried after Retry-After");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited per Retry-After"
    );
    assert_eq!(client.limiter().headroom().throttled, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_clear_error_when_retries_run_out() {
    let sim = start(2).await;
    let token = sim.handle().issue_token(&location(&sim), &WRITE, None);
    let once = RetryPolicy {
        max_attempts: 1,
        ..fast_retry()
    };
    let client = client_with(
        &sim,
        Credentials::Static(SecretString::from(token)),
        &WRITE,
        once,
    );
    let id = sim.handle().contacts(&location(&sim))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.handle().fail_next(FaultKind::Html, 1);
    let error = client.get_contact(&id).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, GhlError::Decode { .. }), "{text}");
    assert!(text.contains("not JSON"), "{text}");
    assert!(text.contains(&format!("GET /contacts/{id}")), "{text}");
    sim.shutdown().await;
}

// ------------------------------------------------------------------ OAuth --

const CLIENT_ID: &str = "sim-app-1";
const CLIENT_SECRET: &str = "sim-app-secret";

struct OAuthFixture {
    sim: RunningGhlSim,
    store: Store,
    app: OAuthApp,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    /// The mirror's settings, `database.token_key` included, for restarts.
    settings: DatabaseSettings,
}

async fn oauth_fixture(ttl: Duration) -> OAuthFixture {
    oauth_fixture_with_key(ttl, None).await
}

async fn oauth_fixture_with_key(ttl: Duration, token_key: Option<TokenKey>) -> OAuthFixture {
    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 3,
        access_token_ttl: ttl,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    sim.handle().register_oauth_client(CLIENT_ID, CLIENT_SECRET);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mirror.db");
    let mut settings = DatabaseSettings::sqlite_file(&db);
    settings.token_key = token_key;
    let store = Store::connect_and_migrate(&settings).await.unwrap();
    let app = OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
        redirect_uri: "http://127.0.0.1:8765/oauth/callback".parse().unwrap(),
        base_url: sim.base_url().parse().unwrap(),
    };
    // The code flow: the operator approves, GHL redirects with a code.
    let code = sim
        .handle()
        .authorization_code(CLIENT_ID, &location(&sim), &WRITE);
    let http = http_client(Duration::from_secs(5)).unwrap();
    let grant = app
        .exchange_code(&http, &code, "Location")
        .await
        .expect("code exchange");
    assert!(grant.refresh_token.is_some());
    let subject = OAuthSession::location_subject(&location(&sim));
    store
        .save_token(&stored_token(&app, subject, grant, None))
        .await
        .unwrap();
    OAuthFixture {
        sim,
        store,
        app,
        _dir: dir,
        db,
        settings,
    }
}

fn oauth_client(fixture: &OAuthFixture, store: &Store) -> (GhlClient, Arc<OAuthSession>) {
    let session = OAuthSession::new(
        fixture.app.clone(),
        http_client(Duration::from_secs(5)).unwrap(),
        store.clone(),
        "ghl",
        &location(&fixture.sim),
        TokenSource::Location,
    );
    let client = client_with(
        &fixture.sim,
        Credentials::OAuth(session.clone()),
        &WRITE,
        fast_retry(),
    );
    (client, session)
}

#[tokio::test]
async fn a_token_expired_mid_run_is_refreshed_once_and_the_call_succeeds() {
    let fixture = oauth_fixture(Duration::from_secs(3600)).await;
    let subject = OAuthSession::location_subject(&location(&fixture.sim));
    let (client, _) = oauth_client(&fixture, &fixture.store);
    let id = fixture.sim.handle().contacts(&location(&fixture.sim))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client.get_contact(&id).await.expect("first call");
    let before = fixture.store.load_token(&subject).await.unwrap().unwrap();

    // GHL revokes/expires the token while our copy still looks valid.
    assert!(fixture
        .sim
        .handle()
        .revoke_token(before.access_token.expose_secret()));
    client
        .get_contact(&id)
        .await
        .expect("refreshed after the 401");

    let after = fixture.store.load_token(&subject).await.unwrap().unwrap();
    assert_ne!(
        after.access_token.expose_secret(),
        before.access_token.expose_secret()
    );
    assert_ne!(
        after.refresh_token.expose_secret(),
        before.refresh_token.expose_secret(),
        "rotated"
    );
    assert_eq!(
        fixture
            .sim
            .handle()
            .counters()
            .count("POST", "/oauth/token", 200),
        2,
        "one code exchange, one refresh"
    );
    fixture.sim.shutdown().await;
}

#[tokio::test]
async fn tokens_are_refreshed_before_expiry_and_rotation_survives_a_restart() {
    refresh_and_rotation_survive_a_restart(None).await;
}

#[tokio::test]
async fn with_a_token_key_tokens_are_sealed_and_refresh_and_rotation_still_work() {
    use base64::Engine as _;
    let key = TokenKey::from_base64(
        &SecretString::from(base64::engine::general_purpose::STANDARD.encode([42u8; 32])),
        SecretSource::ConfigFile,
    )
    .unwrap();
    refresh_and_rotation_survive_a_restart(Some(key)).await;
}

async fn refresh_and_rotation_survive_a_restart(token_key: Option<TokenKey>) {
    let sealed = token_key.is_some();
    // Tokens that live less than the refresh margin are renewed before use.
    let fixture = oauth_fixture_with_key(Duration::from_secs(60), token_key).await;
    let subject = OAuthSession::location_subject(&location(&fixture.sim));
    let id = fixture.sim.handle().contacts(&location(&fixture.sim))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = fixture.store.load_token(&subject).await.unwrap().unwrap();
    {
        let (client, _) = oauth_client(&fixture, &fixture.store);
        client
            .get_contact(&id)
            .await
            .expect("call with a refreshed token");
    }
    let rotated = fixture.store.load_token(&subject).await.unwrap().unwrap();
    assert_ne!(
        rotated.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );

    // "Restart": a new store connection and session read what was persisted.
    fixture.store.close().await;
    if sealed {
        assert_tokens_sealed(&fixture.db, &[&first, &rotated]).await;
    }
    let reopened = Store::connect_and_migrate(&fixture.settings).await.unwrap();
    let (client, _) = oauth_client(&fixture, &reopened);
    client
        .get_contact(&id)
        .await
        .expect("the persisted refresh token still works");

    // The spent refresh token is refused by GHL: rotation really happened.
    let http = http_client(Duration::from_secs(5)).unwrap();
    let replay = fixture
        .app
        .refresh(&http, &first.refresh_token, "Location")
        .await;
    assert!(replay.is_err(), "a spent refresh token must be refused");
    fixture.sim.shutdown().await;
}

/// The mirror file holds none of the tokens, in any row, column or form.
async fn assert_tokens_sealed(db: &std::path::Path, tokens: &[&StoredToken]) {
    use sqlx::Connection as _;
    let mut raw = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT access_token, refresh_token FROM oauth_tokens")
            .fetch_all(&mut raw)
            .await
            .unwrap();
    assert!(!rows.is_empty());
    for (access, refresh) in rows {
        assert!(access.starts_with("xc1:") && refresh.starts_with("xc1:"));
        for token in tokens {
            for secret in [&token.access_token, &token.refresh_token] {
                assert!(!access.contains(secret.expose_secret()));
                assert!(!refresh.contains(secret.expose_secret()));
            }
        }
    }
}

#[tokio::test]
async fn an_agency_install_mints_location_tokens_and_lists_installed_locations() {
    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 3,
        locations: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let handle = sim.handle();
    handle.register_oauth_client(CLIENT_ID, CLIENT_SECRET);
    let dir = tempfile::tempdir().unwrap();
    let store =
        Store::connect_and_migrate(&DatabaseSettings::sqlite_file(&dir.path().join("m.db")))
            .await
            .unwrap();
    let app = OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: SecretString::from(CLIENT_SECRET.to_owned()),
        redirect_uri: "http://127.0.0.1:8765/oauth/callback".parse().unwrap(),
        base_url: sim.base_url().parse().unwrap(),
    };
    let http = http_client(Duration::from_secs(5)).unwrap();
    let code = handle.company_authorization_code(
        CLIENT_ID,
        &[
            "contacts.readonly",
            "contacts.write",
            "oauth.readonly",
            "oauth.write",
        ],
    );
    let grant = app
        .exchange_code(&http, &code, "Company")
        .await
        .expect("company code exchange");
    let company_id = grant.company_id.clone().expect("company id in the grant");
    assert_eq!(company_id, handle.company_id());
    store
        .save_token(&stored_token(
            &app,
            OAuthSession::company_subject(&company_id),
            grant,
            None,
        ))
        .await
        .unwrap();

    let second = handle.location_ids()[1].clone();
    let session = OAuthSession::new(
        app.clone(),
        http.clone(),
        store.clone(),
        "ghl",
        &second,
        TokenSource::Company {
            company_id: company_id.clone(),
        },
    );
    let client = GhlClient::new(ClientOptions {
        base_url: sim.base_url().parse().unwrap(),
        location_id: second.clone(),
        credentials: Credentials::OAuth(session.clone()),
        scopes: WRITE.iter().map(|s| s.to_string()).collect(),
        limiter: RateLimiter::new(RateLimits::default()),
        retry: fast_retry(),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let id = handle.contacts(&second)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    client
        .get_contact(&id)
        .await
        .expect("a minted location token works");
    let minted = store
        .load_token(&OAuthSession::location_subject(&second))
        .await
        .unwrap()
        .expect("the location token is stored");
    assert_eq!(minted.location_id.as_deref(), Some(second.as_str()));

    let company = session.company_token().await.unwrap();
    let installed = ghl_sync::connector::ghl::oauth::installed_locations(
        &http,
        &app.base_url,
        &company.access_token,
        &company_id,
        CLIENT_ID,
    )
    .await
    .expect("installed locations");
    let mut listed: Vec<String> = installed.into_iter().map(|l| l.id).collect();
    listed.sort();
    let mut expected = handle.location_ids();
    expected.sort();
    assert_eq!(listed, expected);
    sim.shutdown().await;
}

// ------------------------------------------------- malformed records --

/// Plants the two malformed contacts issue 13 saw in live-like data into
/// `sim`'s location: an existing contact whose phone arrives as a number,
/// and a contact without an id. Returns `(the bad contact's id, the ids of
/// every readable contact)`.
fn plant_malformed(sim: &RunningGhlSim) -> (String, HashSet<String>) {
    let handle = sim.handle();
    let location = location(sim);
    let contacts = handle.contacts(&location);
    let mut bad = contacts[1].clone();
    let bad_id = bad["id"].as_str().unwrap().to_owned();
    bad["phone"] = serde_json::json!(12345);
    bad.as_object_mut().unwrap().remove("dateUpdated");
    handle.plant_raw_contact(&location, bad).unwrap();
    let planted = handle
        .plant_raw_contact(
            &location,
            serde_json::json!({"email": "no.id@example.com", "firstName": "Nobody"}),
        )
        .unwrap();
    assert_eq!(planted, "", "stored under the empty id");
    let good = contacts
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .filter(|id| *id != bad_id)
        .collect();
    (bad_id, good)
}

/// Issue 13: one contact of the wrong shape (a number for `phone`) or
/// without an id used to fail its whole page. Each is now set aside alone,
/// named with its field, and every other contact of every paging style is
/// read; the cursor moves past pages holding nothing but a bad contact, so
/// the listings end.
#[tokio::test]
async fn a_malformed_contact_in_a_page_is_set_aside_and_the_rest_is_read() {
    let sim = start(7).await;
    let (bad_id, good) = plant_malformed(&sim);
    let client = static_client(&sim, &WRITE);

    let check = |pages: Vec<ghl_sync::connector::ghl::models::Listing<_>>, what: &str| {
        let seen: Vec<String> = pages.iter().flat_map(|p| ids(&p.records)).collect();
        assert_each_once(seen, &good, what);
        let unreadable: Vec<_> = pages.into_iter().flat_map(|p| p.unreadable).collect();
        assert_eq!(unreadable.len(), 2, "{what}: {unreadable:#?}");
        let phone = unreadable
            .iter()
            .find(|u| u.id.as_deref() == Some(bad_id.as_str()))
            .unwrap_or_else(|| panic!("{what}: {unreadable:#?}"));
        assert_eq!(phone.field.as_deref(), Some("phone"), "{what}");
        assert!(
            phone.reason.contains("12345") && phone.reason.contains("expected a string"),
            "{what}: {}",
            phone.reason
        );
        assert!(
            phone.updated_at.is_some(),
            "{what}: the planted dateUpdated reads"
        );
        assert_eq!(phone.raw["phone"], 12345, "{what}: the raw record is kept");
        let nameless = unreadable.iter().find(|u| u.id.is_none()).unwrap();
        assert_eq!(nameless.field.as_deref(), Some("id"), "{what}");
        assert!(
            nameless.reason.contains("no.id@example.com"),
            "{what}: {}",
            nameless.reason
        );
    };

    // Pages of 2 and of 1: some hold only a bad contact.
    for limit in [2, 1] {
        let pages: Vec<_> = client
            .list_contact_pages(limit)
            .try_collect()
            .await
            .expect("the listing completes");
        assert_eq!(
            pages.len(),
            9usize.div_ceil(limit as usize),
            "limit {limit}"
        );
        check(pages, &format!("GET /contacts/ by {limit}"));
        let until = Utc::now() + chrono::Duration::seconds(1);
        let query = SearchQuery::updated_between(Utc.timestamp_opt(0, 0).unwrap(), until, limit);
        let pages: Vec<_> = client
            .search_contact_pages(query)
            .try_collect()
            .await
            .expect("the search completes");
        check(pages, &format!("POST /contacts/search by {limit}"));
    }

    // The listings that promise every contact name the one they cannot
    // read instead of failing as an unreadable body.
    let error = client
        .list_contacts(100)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err()
        .to_string();
    let names_one = (error.contains(&bad_id) && error.contains("field `phone`"))
        || error.contains("contact without an id: it has no `id`");
    assert!(error.contains("GET /contacts/") && names_one, "{error}");
    sim.shutdown().await;
}

/// Through the connector: the change feed's page carries the bad contacts
/// as record errors (dead-lettered by the engine) next to the good ones,
/// and a page whose only contact is bad still has a watermark, so the feed
/// moves past it instead of reading it again forever.
#[tokio::test]
async fn the_change_feed_sets_bad_contacts_aside_and_moves_past_them() {
    use ghl_sync::connector::{Connector, ConnectorError};
    let sim = start(4).await;
    let (bad_id, good) = plant_malformed(&sim);
    let connector = ghl_sync::connector::ghl::GhlConnector::new("ghl", static_client(&sim, &WRITE));
    let epoch = Utc.timestamp_opt(0, 0).unwrap();
    // The simulator's clock ticks at least 1 ms per write, so the planted
    // contacts may be stamped a moment ahead of ours.
    let until = Utc::now() + chrono::Duration::seconds(1);

    let pages: Vec<_> = connector
        .changes(EntityKind::Contact, epoch, until)
        .try_collect()
        .await
        .expect("the feed is readable");
    let read: HashSet<String> = pages
        .iter()
        .flat_map(|p| p.records.iter().map(|r| r.id.clone()))
        .collect();
    assert_eq!(read, good);
    let rejected: Vec<&ConnectorError> = pages.iter().flat_map(|p| &p.rejected).collect();
    assert_eq!(rejected.len(), 2, "{rejected:#?}");
    for error in &rejected {
        let ConnectorError::Record {
            side,
            entity,
            id,
            message,
        } = error
        else {
            panic!("a record error, not a side error: {error}")
        };
        assert_eq!((side.as_str(), *entity), ("ghl", EntityKind::Contact));
        match id {
            Some(id) => {
                assert_eq!(id, &bad_id);
                assert!(message.contains("field `phone` holds 12345"), "{message}");
            }
            None => assert!(message.contains("no `id`"), "{message}"),
        }
    }

    // The id-less contact was planted last: a window holding only it is a
    // page of one bad record, and its watermark is that record's time.
    let nameless = sim.handle().contacts(&location(&sim)).pop().unwrap();
    assert!(nameless.get("id").is_none());
    let at: chrono::DateTime<Utc> = nameless["dateUpdated"].as_str().unwrap().parse().unwrap();
    let pages: Vec<_> = connector
        .changes(EntityKind::Contact, at, until)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(pages.len(), 1, "{pages:#?}");
    assert!(pages[0].records.is_empty());
    assert_eq!(pages[0].rejected.len(), 1);
    assert_eq!(
        pages[0].watermark,
        Some(at),
        "the feed moves past the bad record"
    );

    // The full listing sets them aside the same way.
    let pages: Vec<_> = connector.contact_pages().try_collect().await.unwrap();
    let rejected: usize = pages.iter().map(|p| p.rejected.len()).sum();
    assert_eq!(rejected, 2);
    sim.shutdown().await;
}

/// A single GET of a malformed contact: the contact's own error, named
/// with its field, answered at once (the same request would get the same
/// record: no retries), and a record error for that id through the
/// connector (dead-lettered), not the side being unavailable.
#[tokio::test]
async fn a_malformed_single_contact_is_a_record_error_not_an_outage() {
    use ghl_sync::connector::{Connector, ConnectorError};
    let sim = start(3).await;
    let (bad_id, _) = plant_malformed(&sim);
    let client = static_client(&sim, &WRITE);
    let handle = sim.handle();

    handle.reset_counters();
    let unreadable = client
        .read_contact(&bad_id)
        .await
        .expect("the call itself succeeds")
        .unwrap_err();
    assert_eq!(unreadable.id.as_deref(), Some(bad_id.as_str()));
    assert_eq!(unreadable.field.as_deref(), Some("phone"));
    let error = client.get_contact(&bad_id).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, GhlError::Decode { .. }), "{text}");
    assert!(
        text.contains(&format!("GET /contacts/{bad_id}"))
            && text.contains(&bad_id)
            && text.contains("field `phone`"),
        "{text}"
    );
    assert_eq!(
        handle.counters().total_requests,
        2,
        "one request per call: a malformed record is not retried"
    );

    let connector = ghl_sync::connector::ghl::GhlConnector::new("ghl", client);
    let error = connector
        .get(EntityKind::Contact, &bad_id, None)
        .await
        .unwrap_err();
    match &error {
        ConnectorError::Record { id, message, .. } => {
            assert_eq!(id.as_deref(), Some(bad_id.as_str()));
            assert!(message.contains("field `phone` holds 12345"), "{message}");
        }
        other => panic!("a record error for {bad_id}, not: {other}"),
    }
    sim.shutdown().await;
}

/// A 2xx with an empty body where the contract promises JSON is a failure
/// of that call, named, and not retried: asking again gets the same
/// (issue 15 saw it retried six times as if it were transient).
#[tokio::test]
async fn an_empty_200_is_named_and_not_retried() {
    let sim = start(2).await;
    let handle = sim.handle();
    let id = handle.contacts(&location(&sim))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = static_client(&sim, &WRITE);
    handle.reset_counters();
    handle.fail_next(FaultKind::EmptyBody, 1);
    let error = client.get_contact(&id).await.unwrap_err();
    assert!(
        matches!(error, GhlError::EmptyBody { status: 200, .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!("GET /contacts/{id}")) && text.contains("empty body"),
        "{text}"
    );
    assert_eq!(
        handle
            .counters()
            .count_route("GET", "/contacts/{contactId}"),
        1,
        "asked once"
    );
    sim.shutdown().await;
}
