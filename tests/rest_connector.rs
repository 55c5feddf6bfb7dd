//! The REST connector against small local servers, every side configured
//! only through TOML and the config loader: pagination styles,
//! authentication, timestamp formats, bad responses, creates that never
//! duplicate, webhooks, pacing and check-config validation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, TimeZone, Utc};
use futures::TryStreamExt;
use ghl_sync::config::{self, LoadOptions, Problem, RestSide, SideKind};
use ghl_sync::connector::rest::RestConnector;
use ghl_sync::connector::{Connector, ConnectorError, Page, Record, WebhookError};
use ghl_sync::domain::{EntityKind, MatchKey};
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------
// Harness: a side from TOML, a server on loopback.

/// Loads `toml` as the operator's file; the side `app` or the problems.
fn load(toml: &str) -> Result<RestSide, Vec<Problem>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ghlsync.toml");
    std::fs::write(&path, toml).unwrap();
    match config::load(&LoadOptions {
        file: Some(path),
        env: Some(HashMap::new()),
        no_search: true,
    }) {
        Ok(loaded) => match &loaded.settings.sides["app"].kind {
            SideKind::Rest(side) => Ok(side.clone()),
            SideKind::Ghl(_) => panic!("not a rest side"),
        },
        Err(error) => Err(error.problems().to_vec()),
    }
}

fn connector(toml: &str) -> RestConnector {
    let side = load(toml).unwrap_or_else(|problems| {
        panic!(
            "config does not load:\n{}",
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    RestConnector::build("app", &side).unwrap()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    format!("http://{addr}")
}

/// A side with contacts at `base`, `extra` appended to `[sides.app]`
/// before the contacts table, `contacts` inside it.
fn side(base: &str, extra: &str, contacts: &str) -> String {
    format!(
        "state_dir = \"./state\"\n\n[sides.app]\nkind = \"rest\"\nbase_url = \"{base}\"\n{extra}\n\n[sides.app.contacts]\n{contacts}\n"
    )
}

fn ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn ids(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

async fn all(connector: &RestConnector) -> Vec<Record> {
    let pages: Vec<Vec<Record>> = connector.all_contacts().try_collect().await.unwrap();
    pages.into_iter().flatten().collect()
}

async fn changes(
    connector: &RestConnector,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Page> {
    connector
        .changes(EntityKind::Contact, since, until)
        .try_collect()
        .await
        .unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// Five contacts `c1`…`c5` updated at 1000…5000 ms.
fn five() -> Vec<Value> {
    (1..=5)
        .map(|n| json!({"id": format!("c{n}"), "name": format!("Contact {n}"), "updated_at": n * 1000}))
        .collect()
}

type Log = Arc<Mutex<Vec<String>>>;

fn query_log(log: &Log, query: &HashMap<String, String>) {
    let mut pairs: Vec<_> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    log.lock().unwrap().push(pairs.join("&"));
}

fn param(query: &HashMap<String, String>, name: &str) -> Option<usize> {
    query.get(name).map(|v| v.parse().unwrap())
}

/// Serves `path` with `answer`, logging every request's query; returns
/// the base URL and the log.
async fn logged_listing(
    path: &'static str,
    answer: fn(&HashMap<String, String>) -> Response,
) -> (String, Log) {
    let log = Log::default();
    let router = Router::new()
        .route(
            path,
            get(
                move |State(log): State<Log>, Query(q): Query<HashMap<String, String>>| async move {
                    query_log(&log, &q);
                    answer(&q)
                },
            ),
        )
        .with_state(log.clone());
    (serve(router).await, log)
}

// ---------------------------------------------------------------------------
// Pagination: one test per style.

#[tokio::test]
async fn pagination_none_reads_one_bare_array() {
    let (base, log) =
        logged_listing("/contacts", |_| Json(Value::Array(five())).into_response()).await;
    let app = connector(&side(
        &base,
        "",
        "list = \"GET /contacts\"\ntimestamp_format = \"epoch_millis\"\nrecords_pointer = \"\"",
    ));
    assert_eq!(ids(&all(&app).await), ["c1", "c2", "c3", "c4", "c5"]);
    assert_eq!(log.lock().unwrap().len(), 1, "one request");
}

#[tokio::test]
async fn pagination_page_numbers_until_an_empty_page() {
    let (base, log) = logged_listing("/contacts", |q| {
        let (page, size) = (param(q, "p").unwrap(), param(q, "per_page").unwrap());
        let items: Vec<Value> = five().into_iter().skip(page * size).take(size).collect();
        Json(json!({"items": items})).into_response()
    })
    .await;
    let app = connector(&side(
        &base,
        "",
        "list = \"GET /contacts\"\ntimestamp_format = \"epoch_millis\"\nrecords_pointer = \"/items\"\n\
         [sides.app.contacts.pagination]\nstyle = \"page\"\npage_param = \"p\"\nsize_param = \"per_page\"\nsize = 2\nfirst = 0",
    ));
    let pages: Vec<Vec<Record>> = app.all_contacts().try_collect().await.unwrap();
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "p=0&per_page=2",
            "p=1&per_page=2",
            "p=2&per_page=2",
            "p=3&per_page=2"
        ]
    );
}

#[tokio::test]
async fn pagination_offset_advances_by_the_records_received() {
    let (base, log) = logged_listing("/contacts", |q| {
        // The server caps the page at 2 whatever is asked.
        let (offset, limit) = (param(q, "skip").unwrap(), param(q, "take").unwrap().min(2));
        let items: Vec<Value> = five().into_iter().skip(offset).take(limit).collect();
        Json(json!({"data": items})).into_response()
    })
    .await;
    let app = connector(&side(
        &base,
        "",
        "list = \"GET /contacts\"\ntimestamp_format = \"epoch_millis\"\nrecords_pointer = \"/data\"\n\
         [sides.app.contacts.pagination]\nstyle = \"offset\"\noffset_param = \"skip\"\nlimit_param = \"take\"\nlimit = 3",
    ));
    assert_eq!(ids(&all(&app).await), ["c1", "c2", "c3", "c4", "c5"]);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "skip=0&take=3",
            "skip=2&take=3",
            "skip=4&take=3",
            "skip=5&take=3"
        ]
    );
}

#[tokio::test]
async fn pagination_cursor_from_the_body_until_none() {
    let (base, log) = logged_listing("/contacts", |q| {
        let start = q
            .get("after")
            .map(|c| c.trim_start_matches("cur").parse::<usize>().unwrap())
            .unwrap_or(0);
        let items: Vec<Value> = five().into_iter().skip(start).take(2).collect();
        let next = (start + 2 < 5).then(|| format!("cur{}", start + 2));
        Json(json!({"data": items, "meta": {"next": next}})).into_response()
    })
    .await;
    let app = connector(&side(
        &base,
        "",
        "list = \"GET /contacts\"\ntimestamp_format = \"epoch_millis\"\nrecords_pointer = \"/data\"\n\
         [sides.app.contacts.pagination]\nstyle = \"cursor\"\ncursor_param = \"after\"\ncursor_pointer = \"/meta/next\"\nlimit_param = \"n\"\nlimit = 2",
    ));
    assert_eq!(ids(&all(&app).await), ["c1", "c2", "c3", "c4", "c5"]);
    assert_eq!(
        *log.lock().unwrap(),
        ["n=2", "after=cur2&n=2", "after=cur4&n=2"]
    );
}

#[tokio::test]
async fn pagination_link_header_follows_rel_next() {
    let (base, log) = logged_listing("/v2/contacts", |q| {
                let page = param(q, "page").unwrap_or(0);
                let items: Vec<Value> = five().into_iter().skip(page * 2).take(2).collect();
                let mut headers = HeaderMap::new();
                if page < 2 {
                    // Relative, as many APIs write it, with other relations.
                    let link = format!(
                        "</v2/contacts?page=0&per=2>; rel=\"first\", </v2/contacts?page={}&per=2>; rel=\"next\"",
                        page + 1
                    );
                    headers.insert("link", link.parse().unwrap());
                }
                (headers, Json(Value::Array(items))).into_response()
    })
    .await;
    let app = connector(&side(
        &format!("{base}/v2"),
        "",
        "list = \"GET /contacts\"\ntimestamp_format = \"epoch_millis\"\n\
         [sides.app.contacts.pagination]\nstyle = \"link_header\"\nlimit_param = \"per\"\nlimit = 2",
    ));
    assert_eq!(ids(&all(&app).await), ["c1", "c2", "c3", "c4", "c5"]);
    assert_eq!(
        *log.lock().unwrap(),
        ["per=2", "page=1&per=2", "page=2&per=2"]
    );
}

#[tokio::test]
async fn pagination_next_url_from_the_body() {
    let log = Log::default();
    let base_cell: Arc<Mutex<String>> = Arc::default();
    let state = (log.clone(), base_cell.clone());
    let router = Router::new()
        .route(
            "/contacts",
            get(
                |State((log, base)): State<(Log, Arc<Mutex<String>>)>,
                 Query(q): Query<HashMap<String, String>>| async move {
                    query_log(&log, &q);
                    let page = param(&q, "page").unwrap_or(0);
                    let items: Vec<Value> = five().into_iter().skip(page * 3).take(3).collect();
                    let next = (page < 1).then(|| {
                        format!("{}/contacts?page={}&size=3", base.lock().unwrap(), page + 1)
                    });
                    Json(json!({"results": items, "links": {"next": next}}))
                },
            ),
        )
        .with_state(state);
    let base = serve(router).await;
    *base_cell.lock().unwrap() = base.clone();
    let app = connector(&side(
        &base,
        "",
        "list = \"GET /contacts\"\ntimestamp_format = \"epoch_millis\"\nrecords_pointer = \"/results\"\n\
         [sides.app.contacts.pagination]\nstyle = \"next_url\"\nnext_pointer = \"/links/next\"\nlimit_param = \"size\"\nlimit = 3",
    ));
    assert_eq!(ids(&all(&app).await), ["c1", "c2", "c3", "c4", "c5"]);
    assert_eq!(*log.lock().unwrap(), ["size=3", "page=1&size=3"]);
}

/// A next-page link to another origin would carry the credentials there.
#[tokio::test]
async fn next_page_on_another_origin_is_refused() {
    let router = Router::new().route(
        "/contacts",
        get(|| async {
            Json(
                json!({"results": five(), "links": {"next": "http://localhost:9/contacts?page=2"}}),
            )
        }),
    );
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "",
        "list = \"GET /contacts\"\ntimestamp_format = \"epoch_millis\"\nrecords_pointer = \"/results\"\n\
         [sides.app.contacts.pagination]\nstyle = \"next_url\"\nnext_pointer = \"/links/next\"",
    ));
    let pages: Vec<_> = app.all_contacts().collect::<Vec<_>>().await;
    let error = pages.into_iter().find_map(Result::err).expect("refused");
    let text = error.to_string();
    assert!(
        text.contains("side `app`") && text.contains("GET /contacts"),
        "{text}"
    );
    assert!(
        text.contains("another origin (http://localhost:9)"),
        "{text}"
    );
}

use futures::StreamExt;

// ---------------------------------------------------------------------------
// Authentication: the server checks the credential.

fn guarded(check: fn(&HeaderMap, &HashMap<String, String>) -> bool) -> Router {
    Router::new().route(
        "/contacts/{id}",
        get(
            move |Path(id): Path<String>,
                  headers: HeaderMap,
                  Query(q): Query<HashMap<String, String>>| async move {
                if check(&headers, &q) {
                    Json(json!({"id": id, "updated_at": "2024-05-01T10:00:00Z"})).into_response()
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        Json(json!({"error": "unauthorized"})),
                    )
                        .into_response()
                }
            },
        ),
    )
}

async fn get_one(app: &RestConnector) -> Result<Option<Record>, ConnectorError> {
    app.get(EntityKind::Contact, "c1", None).await
}

#[tokio::test]
async fn auth_none_sends_no_credentials() {
    let base = serve(guarded(|h, q| {
        h.get("authorization").is_none() && q.is_empty()
    }))
    .await;
    let app = connector(&side(
        &base,
        "[sides.app.auth]\nmethod = \"none\"",
        "get = \"GET /contacts/{id}\"",
    ));
    assert_eq!(get_one(&app).await.unwrap().unwrap().id, "c1");
}

#[tokio::test]
async fn auth_bearer_token() {
    let base = serve(guarded(|h, _| {
        h.get("authorization")
            .is_some_and(|v| v == "Bearer tok-123")
    }))
    .await;
    let app = connector(&side(
        &base,
        "[sides.app.auth]\nmethod = \"bearer\"\ntoken = \"tok-123\"",
        "get = \"GET /contacts/{id}\"",
    ));
    assert!(get_one(&app).await.unwrap().is_some());

    let wrong = connector(&side(
        &base,
        "[sides.app.auth]\nmethod = \"bearer\"\ntoken = \"nope\"",
        "get = \"GET /contacts/{id}\"",
    ));
    let error = get_one(&wrong).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Auth { .. }), "{error}");
    assert!(
        error.to_string().contains("GET /contacts/c1: answered 401"),
        "{error}"
    );
    assert!(
        !error.to_string().contains("nope"),
        "never the token: {error}"
    );
}

#[tokio::test]
async fn auth_api_key_in_a_header_or_the_query() {
    let base = serve(guarded(|h, q| {
        h.get("x-api-key").is_some_and(|v| v == "k-1")
            || q.get("api_key").is_some_and(|v| v == "k-2")
    }))
    .await;
    let header = connector(&side(
        &base,
        "[sides.app.auth]\nmethod = \"api_key\"\nheader = \"X-Api-Key\"\nkey = \"k-1\"",
        "get = \"GET /contacts/{id}\"",
    ));
    assert!(get_one(&header).await.unwrap().is_some());
    let query = connector(&side(
        &base,
        "[sides.app.auth]\nmethod = \"api_key\"\nquery = \"api_key\"\nkey = \"k-2\"",
        "get = \"GET /contacts/{id}\"",
    ));
    assert!(get_one(&query).await.unwrap().is_some());
}

#[tokio::test]
async fn auth_basic() {
    // "ops:pa ss" in base64.
    let base = serve(guarded(|h, _| {
        h.get("authorization")
            .is_some_and(|v| v == "Basic b3BzOnBhIHNz")
    }))
    .await;
    let app = connector(&side(
        &base,
        "[sides.app.auth]\nmethod = \"basic\"\nusername = \"ops\"\npassword = \"pa ss\"",
        "get = \"GET /contacts/{id}\"",
    ));
    assert!(get_one(&app).await.unwrap().is_some());
}

#[derive(Default)]
struct TokenServer {
    issued: Vec<String>,
    /// Tokens the API accepts now.
    valid: Vec<String>,
    forms: Vec<String>,
}

#[tokio::test]
async fn auth_oauth2_client_credentials_fetches_once_reuses_and_renews() {
    let tokens: Arc<Mutex<TokenServer>> = Arc::default();
    let router = Router::new()
        .route(
            "/oauth/token",
            post(|State(t): State<Arc<Mutex<TokenServer>>>, headers: HeaderMap, body: String| async move {
                // "cid:csecret" in base64: client_secret_basic.
                if headers.get("authorization").is_none_or(|v| v != "Basic Y2lkOmNzZWNyZXQ=") {
                    return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"}))).into_response();
                }
                let mut t = t.lock().unwrap();
                t.forms.push(body);
                let token = format!("at-{}", t.issued.len() + 1);
                t.issued.push(token.clone());
                t.valid = vec![token.clone()];
                Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 1})).into_response()
            }),
        )
        .route(
            "/api/contacts/{id}",
            get(|State(t): State<Arc<Mutex<TokenServer>>>, Path(id): Path<String>, headers: HeaderMap| async move {
                let presented = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_owned);
                if presented.is_some_and(|p| t.lock().unwrap().valid.contains(&p)) {
                    Json(json!({"id": id, "updated_at": "2024-05-01T10:00:00Z"})).into_response()
                } else {
                    StatusCode::UNAUTHORIZED.into_response()
                }
            }),
        )
        .with_state(tokens.clone());
    let base = serve(router).await;
    let app = connector(&side(
        &format!("{base}/api"),
        &format!(
            "[sides.app.auth]\nmethod = \"oauth2_client_credentials\"\ntoken_url = \"{base}/oauth/token\"\n\
             client_id = \"cid\"\nclient_secret = \"csecret\"\nscopes = [\"contacts.read\", \"contacts.write\"]"
        ),
        "get = \"GET /contacts/{id}\"",
    ));
    // Fetched once, reused.
    get_one(&app).await.unwrap().unwrap();
    get_one(&app).await.unwrap().unwrap();
    assert_eq!(tokens.lock().unwrap().issued.len(), 1);
    assert_eq!(
        tokens.lock().unwrap().forms[0],
        "grant_type=client_credentials&scope=contacts.read+contacts.write"
    );
    // Expired (1 s, renewed a tenth early): fetched again before use.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    get_one(&app).await.unwrap().unwrap();
    assert_eq!(tokens.lock().unwrap().issued.len(), 2);
    // Revoked by the app: the 401 fetches a new token, once, and the call
    // goes through.
    tokens.lock().unwrap().valid.clear();
    get_one(&app).await.unwrap().unwrap();
    assert_eq!(tokens.lock().unwrap().issued, ["at-1", "at-2", "at-3"]);
}

#[tokio::test]
async fn auth_oauth2_refused_client_is_an_auth_error() {
    let router = Router::new().route(
        "/token",
        post(|| async {
            (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_client", "error_description": "unknown client"})),
            )
        }),
    );
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        &format!(
            "[sides.app.auth]\nmethod = \"oauth2_client_credentials\"\ntoken_url = \"{base}/token\"\n\
             client_id = \"cid\"\nclient_secret = \"s3cr3t\"\nclient_auth = \"body\""
        ),
        "get = \"GET /contacts/{id}\"",
    ));
    let error = get_one(&app).await.unwrap_err();
    assert!(matches!(error, ConnectorError::Auth { .. }), "{error}");
    assert!(
        error.to_string().contains("invalid_client unknown client"),
        "{error}"
    );
    assert!(!error.to_string().contains("s3cr3t"), "{error}");
}

// ---------------------------------------------------------------------------
// Timestamp formats: in records and in the feed's lower bound.

async fn feed_in(format: &str, stamps: [Value; 3], expected_since: &str) {
    let log = Log::default();
    let records: Vec<Value> = stamps
        .iter()
        .enumerate()
        .map(|(n, at)| json!({"id": format!("c{n}"), "modified": at}))
        .collect();
    let router = Router::new()
        .route(
            "/contacts",
            get(
                move |State(log): State<Log>, Query(q): Query<HashMap<String, String>>| {
                    let records = records.clone();
                    async move {
                        query_log(&log, &q);
                        Json(json!({"data": records}))
                    }
                },
            ),
        )
        .with_state(log.clone());
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "",
        &format!(
            "list = \"GET /contacts\"\nupdated_since_param = \"since\"\ntimestamp_format = \"{format}\"\n\
             records_pointer = \"/data\"\nupdated_at_pointer = \"/modified\""
        ),
    ));
    // Since 2024-05-01T10:00:00.250Z, until 10:00:02: the third is later.
    let since =
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap() + chrono::Duration::milliseconds(250);
    let until = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 2).unwrap();
    let pages = changes(&app, since, until).await;
    assert_eq!(pages.len(), 1);
    assert_eq!(
        ids(&pages[0].records),
        ["c1"],
        "only records in [since, until]"
    );
    assert_eq!(
        pages[0].watermark,
        Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 1).unwrap())
    );
    assert_eq!(*log.lock().unwrap(), [format!("since={expected_since}")]);
}

#[tokio::test]
async fn timestamps_rfc3339() {
    feed_in(
        "rfc3339",
        [
            json!("2024-05-01T10:00:00Z"),
            json!("2024-05-01T12:00:01+02:00"),
            json!("2024-05-01T10:00:03Z"),
        ],
        "2024-05-01T10:00:00.250Z",
    )
    .await;
}

#[tokio::test]
async fn timestamps_epoch_seconds() {
    feed_in(
        "epoch_seconds",
        [json!(1714557600), json!(1714557601), json!(1714557603)],
        // Rounded down: the bound never skips a record.
        "1714557600",
    )
    .await;
}

#[tokio::test]
async fn timestamps_epoch_millis() {
    feed_in(
        "epoch_millis",
        [
            json!(1714557600000_i64),
            json!(1714557601000_i64),
            json!(1714557603000_i64),
        ],
        "1714557600250",
    )
    .await;
}

// ---------------------------------------------------------------------------
// Bad responses are contained and named.

const FEED: &str = "list = \"GET /contacts\"\nget = \"GET /contacts/{id}\"\ntimestamp_format = \"epoch_millis\"\nrecords_pointer = \"/data\"";

/// A page of good, bad, good: the two good ones come through, the bad one
/// is reported naming side, call and record.
async fn bad_record_in_a_page(bad: Value) -> (Page, String) {
    let page = json!({"data": [
        {"id": "c1", "updated_at": 1000},
        bad,
        {"id": "c3", "updated_at": 3000},
    ]});
    let router = Router::new().route(
        "/contacts",
        get(move || {
            let page = page.clone();
            async move { Json(page) }
        }),
    );
    let base = serve(router).await;
    let app = connector(&side(&base, "", FEED));
    let mut pages = changes(&app, ms(0), ms(10_000)).await;
    assert_eq!(pages.len(), 1);
    let page = pages.remove(0);
    assert_eq!(
        ids(&page.records),
        ["c1", "c3"],
        "the next record still comes through"
    );
    assert_eq!(page.watermark, Some(ms(3000)));
    assert_eq!(page.rejected.len(), 1);
    assert!(page.rejected[0].is_record_error());
    let message = page.rejected[0].to_string();
    assert!(
        message.contains("side `app`") && message.contains("GET /contacts"),
        "{message}"
    );
    assert!(message.contains("index 1"), "{message}");
    (page, message)
}

#[tokio::test]
async fn bad_record_without_id() {
    let (_, message) = bad_record_in_a_page(json!({"name": "no id", "updated_at": 2000})).await;
    assert!(message.contains("has no id at /id"), "{message}");
}

#[tokio::test]
async fn bad_record_without_updated_at() {
    let (page, message) = bad_record_in_a_page(json!({"id": "c2"})).await;
    assert!(
        message.contains("contact c2") && message.contains("has no updated_at at /updated_at"),
        "{message}"
    );
    assert!(matches!(&page.rejected[0], ConnectorError::Record { id: Some(id), .. } if id == "c2"));
}

#[tokio::test]
async fn bad_record_with_a_string_where_epoch_millis_are_expected() {
    let (_, message) =
        bad_record_in_a_page(json!({"id": "c2", "updated_at": "2024-05-01T10:00:00Z"})).await;
    assert!(
        message.contains(
            "updated_at at /updated_at is a string, expected epoch milliseconds (an integer)"
        ),
        "{message}"
    );
}

/// A server whose `/contacts/{id}` answers `good` normally and something
/// broken for the other ids.
async fn broken_get(extra: &str, broken: fn(&str) -> Response) -> (RestConnector, String) {
    let router = Router::new().route(
        "/contacts/{id}",
        get(move |Path(id): Path<String>| async move {
            if id == "good" {
                Json(json!({"id": "good", "updated_at": 1000})).into_response()
            } else {
                broken(&id)
            }
        }),
    );
    let base = serve(router).await;
    (connector(&side(&base, extra, FEED)), base)
}

/// Reading record `id` fails as a record error naming the side, the call
/// and `detail`, and the next record still reads.
async fn record_error_is_named(app: &RestConnector, id: &str, detail: &str) {
    let error = app.get(EntityKind::Contact, id, None).await.unwrap_err();
    let text = error.to_string();
    assert!(error.is_record_error(), "{text}");
    assert!(
        text.contains(&format!("side `app`, contact {id}: GET /contacts/{id}")),
        "{text}"
    );
    assert!(text.contains(detail), "{text}");
    next_one_still_works(app).await;
}

async fn next_one_still_works(app: &RestConnector) {
    let good = app
        .get(EntityKind::Contact, "good", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(good.id, "good");
}

#[tokio::test]
async fn an_html_page_for_one_record_is_the_sides_trouble_not_the_records() {
    // A proxy's maintenance page says nothing about the record: retried,
    // then the side is unavailable; the record is never dead-lettered
    // for it (issue 13).
    let (app, _) = broken_get(
        "[sides.app.retry]\nmax_attempts = 2\nmin_delay = \"10ms\"\nmax_delay = \"10ms\"",
        |_| {
            (
                [("content-type", "text/html")],
                "<html><body><h1>Maintenance</h1></body></html>",
            )
                .into_response()
        },
    )
    .await;
    let error = app
        .get(EntityKind::Contact, "html", None)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ConnectorError::Unavailable { .. }),
        "{text}"
    );
    assert!(text.contains("GET /contacts/html"), "{text}");
    assert!(text.contains("text/html"), "{text}");
    next_one_still_works(&app).await;
}

#[tokio::test]
async fn a_delete_answered_with_an_html_page_is_not_taken_as_done() {
    let router = Router::new().route(
        "/contacts/{id}",
        axum::routing::delete(|| async {
            (
                [("content-type", "text/html; charset=utf-8")],
                "<html><body>Please sign in</body></html>",
            )
        }),
    );
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "",
        &format!("{FEED}\ndelete = \"DELETE /contacts/{{id}}\""),
    ));
    let error = app
        .delete(EntityKind::Contact, "c1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectorError::Unavailable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("HTML page"), "{error}");
}

#[tokio::test]
async fn redirect_to_another_host_is_refused_and_named() {
    let hits = Arc::new(Mutex::new(0));
    let counter = hits.clone();
    let elsewhere = serve(Router::new().fallback(move || {
        *counter.lock().unwrap() += 1;
        async { "stolen" }
    }))
    .await
    .replace("127.0.0.1", "localhost");
    let location = format!("{elsewhere}/steal");
    let router = {
        let location = location.clone();
        Router::new().route(
            "/contacts/{id}",
            get(move |Path(id): Path<String>| {
                let location = location.clone();
                async move {
                    if id == "good" {
                        Json(json!({"id": "good", "updated_at": 1000})).into_response()
                    } else {
                        (StatusCode::FOUND, [("location", location)]).into_response()
                    }
                }
            }),
        )
    };
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "[sides.app.auth]\nmethod = \"bearer\"\ntoken = \"t\"",
        FEED,
    ));
    let error = app
        .get(EntityKind::Contact, "moved", None)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("side `app`") && text.contains("GET /contacts/moved"),
        "{text}"
    );
    assert!(
        text.contains(&format!("302 Found redirecting to {location}")),
        "{text}"
    );
    assert!(text.contains("never followed"), "{text}");
    assert_eq!(*hits.lock().unwrap(), 0, "the redirect was not followed");
    next_one_still_works(&app).await;
}

#[tokio::test]
async fn oversized_body_is_refused_and_named() {
    let (app, _) = broken_get("max_body_bytes = \"1KiB\"", |id| {
        Json(json!({"id": id, "updated_at": 1000, "blob": "x".repeat(5000)})).into_response()
    })
    .await;
    record_error_is_named(&app, "huge", "exceeds the 1024-byte limit (max_body_bytes)").await;
}

/// A proxy in front of the app that answers its login page with `200` and
/// `text/html` to the first `html_answers` requests, then lets them through.
async fn behind_a_login_proxy(html_answers: usize) -> (RestConnector, Arc<Mutex<usize>>) {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/contacts",
        get(move || {
            let call = {
                let mut calls = counter.lock().unwrap();
                *calls += 1;
                *calls
            };
            async move {
                if call <= html_answers {
                    (
                        [("content-type", "text/html; charset=utf-8")],
                        format!(
                            "<!DOCTYPE html><html><head><title>Sign in</title></head><body>{}</body></html>",
                            "<p>Your session expired.</p>".repeat(20)
                        ),
                    )
                        .into_response()
                } else {
                    Json(json!({"data": five()})).into_response()
                }
            }
        }),
    );
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "[sides.app.retry]\nmax_attempts = 3\nmin_delay = \"10ms\"\nmax_delay = \"20ms\"",
        FEED,
    ));
    (app, calls)
}

/// An HTML `200` to a listing is an unreadable answer like a 503: the
/// client's retry policy tries again, and the listing goes through once
/// the app answers.
#[tokio::test]
async fn a_listing_answered_200_with_html_is_retried() {
    let (app, calls) = behind_a_login_proxy(2).await;
    let pages = changes(&app, ms(0), ms(10_000)).await;
    let records: Vec<&Record> = pages.iter().flat_map(|p| &p.records).collect();
    assert_eq!(records.len(), 5);
    assert_eq!(*calls.lock().unwrap(), 3, "two HTML answers, then JSON");
}

/// When every attempt gets the HTML page, the side is unavailable (the
/// pass is retried later, no record is blamed), and the error names the
/// side, the call, the status, the content type and the start of the body.
#[tokio::test]
async fn a_listing_that_stays_html_is_named_after_the_retries() {
    let (app, calls) = behind_a_login_proxy(usize::MAX).await;
    let error = app
        .changes(EntityKind::Contact, ms(0), ms(1))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ConnectorError::Unavailable { .. }),
        "{text}"
    );
    assert_eq!(*calls.lock().unwrap(), 3, "max_attempts = 3");
    for part in [
        "side `app`",
        "GET /contacts: answered 200 OK with an unreadable body",
        "content type text/html; charset=utf-8",
        "the body is not JSON: \"<!DOCTYPE html><html><head><title>Sign in</title>",
    ] {
        assert!(text.contains(part), "missing {part:?} in {text}");
    }
    assert!(
        !text.contains("Your session expired.</p>".repeat(5).as_str()),
        "only the start of the body is quoted: {text}"
    );
}

/// An empty `200` is unreadable too, and so named.
#[tokio::test]
async fn a_listing_answered_with_an_empty_200_is_named() {
    let router = Router::new().route("/contacts", get(|| async { "" }));
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "[sides.app.retry]\nmax_attempts = 2\nmin_delay = \"10ms\"\nmax_delay = \"20ms\"",
        FEED,
    ));
    let error = app
        .changes(EntityKind::Contact, ms(0), ms(1))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ConnectorError::Unavailable { .. }),
        "{text}"
    );
    assert!(
        text.contains("GET /contacts: answered 200 OK with an unreadable body")
            && text.contains("0 bytes): the body is empty, expected JSON"),
        "{text}"
    );
}

#[tokio::test]
async fn a_4xx_on_one_record_is_a_record_error_and_404_is_none() {
    let (app, _) = broken_get("", |id| match id {
        "gone" => (StatusCode::NOT_FOUND, Json(json!({"error": "not_found"}))).into_response(),
        _ => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "invalid", "message": "bad id"})),
        )
            .into_response(),
    })
    .await;
    assert!(app
        .get(EntityKind::Contact, "gone", None)
        .await
        .unwrap()
        .is_none());
    let error = app
        .get(EntityKind::Contact, "weird", None)
        .await
        .unwrap_err();
    assert!(error.is_record_error(), "{error}");
    assert!(
        error
            .to_string()
            .contains("GET /contacts/weird: answered 422 Unprocessable Entity: invalid: bad id"),
        "{error}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_unavailable() {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/contacts/{id}",
        get(move || {
            *counter.lock().unwrap() += 1;
            async { (StatusCode::BAD_GATEWAY, "<html>502</html>") }
        }),
    );
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "[sides.app.retry]\nmax_attempts = 3\nmin_delay = \"10ms\"\nmax_delay = \"20ms\"",
        FEED,
    ));
    let error = app.get(EntityKind::Contact, "x", None).await.unwrap_err();
    assert!(
        matches!(error, ConnectorError::Unavailable { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("GET /contacts/x: answered 502 Bad Gateway"),
        "{error}"
    );
    assert_eq!(*calls.lock().unwrap(), 3);
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let router = Router::new().route(
        "/contacts/{id}",
        get(move |Path(id): Path<String>| {
            let first = {
                let mut calls = counter.lock().unwrap();
                *calls += 1;
                *calls == 1
            };
            async move {
                if first {
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        Json(json!({"error": "rate_limited"})),
                    )
                        .into_response()
                } else {
                    Json(json!({"id": id, "updated_at": 1})).into_response()
                }
            }
        }),
    );
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "[sides.app.retry]\nmin_delay = \"10ms\"",
        FEED,
    ));
    let started = Instant::now();
    assert!(app
        .get(EntityKind::Contact, "x", None)
        .await
        .unwrap()
        .is_some());
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(*calls.lock().unwrap(), 2);
}

// ---------------------------------------------------------------------------
// Creates never duplicate.

#[derive(Default)]
struct Crm {
    contacts: Vec<Value>,
    posts: usize,
}

type Shared = Arc<Mutex<Crm>>;

fn crm_router(crm: Shared, lose_first_answer: bool) -> Router {
    Router::new()
        .route(
            "/contacts",
            get(
                |State(crm): State<Shared>, Query(q): Query<HashMap<String, String>>| async move {
                    let crm = crm.lock().unwrap();
                    let found: Vec<Value> = crm
                        .contacts
                        .iter()
                        .filter(|c| {
                            q.get("email").is_none_or(|e| {
                                c["email"]
                                    .as_str()
                                    .is_some_and(|x| x.eq_ignore_ascii_case(e))
                            })
                        })
                        .cloned()
                        .collect();
                    Json(json!({"data": found}))
                },
            )
            .post(
                move |State(crm): State<Shared>, Json(body): Json<Value>| async move {
                    let (record, first) = {
                        let mut crm = crm.lock().unwrap();
                        crm.posts += 1;
                        let email = body["record"]["email"].clone();
                        if let Some(existing) = crm.contacts.iter().find(|c| c["email"] == email) {
                            let id = existing["id"].clone();
                            return (
                                StatusCode::CONFLICT,
                                Json(json!({"error": "duplicate", "existing_id": id})),
                            )
                                .into_response();
                        }
                        let mut record = body["record"].clone();
                        record["id"] = json!(format!("c{}", crm.contacts.len() + 1));
                        record["updated_at"] = json!(5000);
                        crm.contacts.push(record.clone());
                        (record, crm.posts == 1)
                    };
                    if lose_first_answer && first {
                        // Committed, then the answer never arrives in time.
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    (StatusCode::CREATED, Json(json!({"record": record}))).into_response()
                },
            ),
        )
        .route(
            "/contacts/{id}",
            get(
                |State(crm): State<Shared>, Path(id): Path<String>| async move {
                    let crm = crm.lock().unwrap();
                    match crm.contacts.iter().find(|c| c["id"] == json!(id)) {
                        Some(c) => Json(json!({"record": c})).into_response(),
                        None => StatusCode::NOT_FOUND.into_response(),
                    }
                },
            ),
        )
        .with_state(crm)
}

const CRM: &str = "list = \"GET /contacts\"\nget = \"GET /contacts/{id}\"\ncreate = \"POST /contacts\"\n\
    timestamp_format = \"epoch_millis\"\nrecords_pointer = \"/data\"\nwrapper = \"record\"\n\
    conflict_id_pointer = \"/existing_id\"\nlookup_email = \"GET /contacts?email={value}\"\nemail_field = \"email\"";

#[tokio::test]
async fn create_with_a_lost_response_makes_exactly_one_record() {
    let crm = Shared::default();
    let base = serve(crm_router(crm.clone(), true)).await;
    let app = connector(&side(
        &base,
        "timeout = \"500ms\"\n[sides.app.retry]\nmin_delay = \"10ms\"",
        CRM,
    ));
    let created = app
        .create(
            EntityKind::Contact,
            None,
            &object(json!({"email": "ada@example.com", "name": "Ada"})),
        )
        .await
        .unwrap();
    assert_eq!(created.id, "c1");
    let crm = crm.lock().unwrap();
    assert_eq!(crm.contacts.len(), 1, "exactly one record");
    assert_eq!(crm.posts, 1, "found by the lookup, not sent again");
}

#[tokio::test]
async fn create_answered_409_is_a_duplicate_naming_the_existing_record() {
    // The connector never decides that the existing record is ours: the
    // engine verifies it (issue 13: a match acted on unverified overwrote
    // another person's contact).
    let crm = Shared::default();
    crm.lock()
        .unwrap()
        .contacts
        .push(json!({"id": "c7", "email": "grace@example.com", "updated_at": 4000}));
    let base = serve(crm_router(crm.clone(), false)).await;
    let app = connector(&side(&base, "", CRM));
    let refused = app
        .create(
            EntityKind::Contact,
            None,
            &object(json!({"email": "grace@example.com"})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ConnectorError::Duplicate { existing_id: Some(id), .. } if id == "c7"),
        "{refused:?}"
    );
    assert_eq!(crm.lock().unwrap().contacts.len(), 1);
    // Without conflict_id_pointer the refusal names no record.
    let app = connector(&side(
        &base,
        "",
        &CRM.replace("conflict_id_pointer = \"/existing_id\"\n", ""),
    ));
    let refused = app
        .create(
            EntityKind::Contact,
            None,
            &object(json!({"email": "grace@example.com"})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            ConnectorError::Duplicate {
                existing_id: None,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(crm.lock().unwrap().posts, 2, "one POST each, never re-sent");
    // The lookup offers it as a candidate.
    let found = app
        .find_contacts(MatchKey::Email, "Grace@Example.com")
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["c7"]
    );
    assert!(app
        .find_contacts(MatchKey::Email, "nobody@example.com")
        .await
        .unwrap()
        .is_empty());
}

/// The tasks a server holds, and how many POSTs it received.
type Todos = Arc<Mutex<(Vec<Value>, usize)>>;

/// A task has no email to look up by: the contact's tasks are searched for
/// one holding what was sent.
#[tokio::test]
async fn create_of_a_task_with_a_lost_response_is_found_among_the_contacts_tasks() {
    let tasks = Todos::default();
    let router =
        Router::new()
            .route(
                "/people/{cid}/todos",
                get(
                    |State(t): State<Todos>, Path(cid): Path<String>| async move {
                        let t = t.lock().unwrap();
                        let mine: Vec<Value> =
                            t.0.iter()
                                .filter(|x| x["person"] == json!(cid))
                                .cloned()
                                .collect();
                        Json(Value::Array(mine))
                    },
                )
                .post(
                    |State(t): State<Todos>,
                     Path(cid): Path<String>,
                     Json(mut body): Json<Value>| async move {
                        let first = {
                            let mut t = t.lock().unwrap();
                            t.1 += 1;
                            body["id"] = json!(format!("t{}", t.0.len() + 1));
                            body["person"] = json!(cid);
                            body["changed"] = json!("2024-05-01T10:00:00Z");
                            t.0.push(body.clone());
                            t.1 == 1
                        };
                        if first {
                            // Committed, then the connection breaks.
                            tokio::time::sleep(Duration::from_secs(3)).await;
                        }
                        (StatusCode::CREATED, Json(body))
                    },
                ),
            )
            .with_state(tasks.clone());
    let base = serve(router).await;
    let toml = side(
        &base,
        "timeout = \"500ms\"",
        "get = \"GET /people/{id}\"\n\n[sides.app.tasks]\nchildren = \"GET /people/{contact_id}/todos\"\n\
         create = \"POST /people/{contact_id}/todos\"\nparent_pointer = \"/person\"\nupdated_at_pointer = \"/changed\"",
    );
    let app = connector(&toml);
    let created = app
        .create(
            EntityKind::Task,
            Some("p1"),
            &object(json!({"title": "Call back", "due": "2024-06-01T09:00:00.000Z"})),
        )
        .await
        .unwrap();
    assert_eq!(
        (created.id.as_str(), created.parent_id.as_deref()),
        ("t1", Some("p1"))
    );
    assert_eq!(tasks.lock().unwrap().0.len(), 1, "exactly one task");
}

// ---------------------------------------------------------------------------
// Webhooks.

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn webhooks_are_verified() {
    let app = connector(&format!(
        "{}\n[sides.app.tasks]\nchildren = \"GET /contacts/{{contact_id}}/tasks\"\nparent_pointer = \"/contact_id\"\n",
        side(
            "http://127.0.0.1:9",
            "webhook_secret = \"whsec\"\n[sides.app.webhook]\nsignature_header = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\n\
             tolerance = \"5m\"\nentity_pointer = \"/type\"\nid_pointer = \"/object/id\"\nparent_pointer = \"/object/contact\"",
            "get = \"GET /contacts/{id}\"",
        )
    ));
    let now = Utc::now();
    let body = br#"{"type":"task","object":{"id":"t9","contact":"c1"}}"#;
    let headers = |sig: Option<String>, ts: Option<i64>| {
        let mut h = reqwest::header::HeaderMap::new();
        if let Some(sig) = sig {
            h.insert("x-sig", sig.parse().unwrap());
        }
        if let Some(ts) = ts {
            h.insert("x-ts", ts.to_string().parse().unwrap());
        }
        h
    };
    let good = headers(Some(sign("whsec", body)), Some(now.timestamp()));
    let event = app.verify_webhook(&good, body, now).unwrap();
    assert_eq!(
        (event.entity, event.id.as_str(), event.parent_id.as_deref()),
        (EntityKind::Task, "t9", Some("c1"))
    );

    let bad = headers(Some(sign("other", body)), Some(now.timestamp()));
    assert!(matches!(
        app.verify_webhook(&bad, body, now),
        Err(WebhookError::BadSignature { .. })
    ));
    let tampered = br#"{"type":"task","object":{"id":"t0","contact":"c1"}}"#;
    assert!(matches!(
        app.verify_webhook(&good, tampered, now),
        Err(WebhookError::BadSignature { .. })
    ));
    let missing = headers(None, Some(now.timestamp()));
    let error = app.verify_webhook(&missing, body, now).unwrap_err();
    assert!(
        matches!(error, WebhookError::MissingSignature { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("X-Sig"), "{error}");
    let stale = headers(Some(sign("whsec", body)), Some(now.timestamp() - 301));
    let error = app.verify_webhook(&stale, body, now).unwrap_err();
    assert!(
        matches!(error, WebhookError::StaleTimestamp { .. }),
        "{error}"
    );
    let no_time = headers(Some(sign("whsec", body)), None);
    assert!(matches!(
        app.verify_webhook(&no_time, body, now),
        Err(WebhookError::MissingTimestamp { .. })
    ));

    let malformed = b"{\"type\":\"task\"}";
    let signed = headers(Some(sign("whsec", malformed)), Some(now.timestamp()));
    let error = app.verify_webhook(&signed, malformed, now).unwrap_err();
    assert!(matches!(error, WebhookError::Malformed { .. }), "{error}");
    assert!(error.to_string().contains("no id at /object/id"), "{error}");
    let not_json = b"entity=task";
    let signed = headers(Some(sign("whsec", not_json)), Some(now.timestamp()));
    assert!(matches!(
        app.verify_webhook(&signed, not_json, now),
        Err(WebhookError::Malformed { .. })
    ));
}

// ---------------------------------------------------------------------------
// Pacing: never more than `requests` per `per`, as the server counts.

#[tokio::test]
async fn rate_limit_is_never_exceeded() {
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let router = Router::new()
        .route(
            "/contacts/{id}",
            get(
                |State(a): State<Arc<Mutex<Vec<Instant>>>>, Path(id): Path<String>| async move {
                    a.lock().unwrap().push(Instant::now());
                    Json(json!({"id": id, "updated_at": 1}))
                },
            ),
        )
        .with_state(arrivals.clone());
    let base = serve(router).await;
    let app = Arc::new(connector(&side(
        &base,
        "[sides.app.rate_limit]\nrequests = 5\nper = \"1s\"",
        FEED,
    )));
    let calls = (0..16).map(|n| {
        let app = app.clone();
        async move {
            app.get(EntityKind::Contact, &format!("c{n}"), None)
                .await
                .unwrap()
        }
    });
    futures::future::join_all(calls).await;
    let arrivals = arrivals.lock().unwrap();
    assert_eq!(arrivals.len(), 16);
    // Any one-second window, starting at any arrival.
    let most = arrivals
        .iter()
        .map(|start| {
            arrivals
                .iter()
                .filter(|t| **t >= *start && t.duration_since(*start) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    assert!(most <= 5, "{most} requests in one second");
}

// ---------------------------------------------------------------------------
// Capabilities follow the endpoints; read_only turns writes off.

#[tokio::test]
async fn capabilities_follow_the_configured_endpoints() {
    let app = connector(&side(
        "http://127.0.0.1:9",
        "",
        "list = \"GET /c\"\nget = \"GET /c/{id}\"\ncreate = \"POST /c\"\nupdate = \"PUT /c/{id}\"\nlookup_phone = \"GET /c?phone={value}\"",
    ));
    let caps = app.capabilities().of(EntityKind::Contact);
    assert!(caps.read && caps.create && caps.update && caps.change_feed && !caps.delete);
    assert_eq!(app.capabilities().match_keys, [MatchKey::Phone]);
    let error = app
        .delete(EntityKind::Contact, "c1", None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectorError::Unsupported { .. }),
        "{error}"
    );
    let error = app.children(EntityKind::Task, "c1").await.unwrap_err();
    assert!(
        matches!(error, ConnectorError::Unsupported { .. }),
        "{error}"
    );

    let read_only = connector(&side(
        "http://127.0.0.1:9",
        "read_only = true",
        "get = \"GET /c/{id}\"\ncreate = \"POST /c\"\ndelete = \"DELETE /c/{id}\"",
    ));
    assert!(!read_only.capabilities().of(EntityKind::Contact).writable());
    let refused = read_only
        .create(EntityKind::Contact, None, &Map::new())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ConnectorError::Unsupported { .. }),
        "{refused}"
    );
    let error = read_only
        .changes(EntityKind::Contact, ms(0), ms(1))
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectorError::Unsupported { .. }),
        "no list, no feed: {error}"
    );
}

/// The (id, body) of each PUT received.
type Puts = Arc<Mutex<Vec<(String, Value)>>>;

/// Ids are URL-encoded into one path segment; PUT sends the merged record.
#[tokio::test]
async fn ids_are_encoded_and_put_sends_the_whole_record() {
    let seen = Puts::default();
    let router = Router::new()
        .route(
            "/c/{id}",
            get(|Path(id): Path<String>| async move {
                Json(json!({"id": id, "name": "Old", "city": "Oslo", "updated_at": "2024-05-01T10:00:00Z"}))
            })
            .put(|State(s): State<Puts>, Path(id): Path<String>, Json(body): Json<Value>| async move {
                s.lock().unwrap().push((id, body.clone()));
                StatusCode::NO_CONTENT
            }),
        )
        .with_state(seen.clone());
    let base = serve(router).await;
    let app = connector(&side(
        &base,
        "",
        "get = \"GET /c/{id}\"\nupdate = \"PUT /c/{id}\"",
    ));
    let updated = app
        .update(
            EntityKind::Contact,
            "a/b c",
            None,
            &object(json!({"name": "New", "city": null})).into(),
        )
        .await
        .unwrap();
    assert_eq!(updated.id, "a/b c");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].0, "a/b c", "one segment, decoded by the server");
    assert_eq!(
        seen[0].1,
        json!({"id": "a/b c", "name": "New", "city": null, "updated_at": "2024-05-01T10:00:00Z"})
    );
}

// ---------------------------------------------------------------------------
// check-config: every problem at once, each naming key and expectation.

fn problems(contacts: &str, extra: &str) -> Vec<Problem> {
    let toml = format!(
        "{}{extra}",
        side("https://api.example.com/v1", "", contacts)
    );
    load(&toml).expect_err("should not load")
}

fn find<'a>(problems: &'a [Problem], key: &str) -> &'a Problem {
    problems
        .iter()
        .find(|p| p.key == key)
        .unwrap_or_else(|| panic!("no problem for {key} in {problems:#?}"))
}

#[test]
fn check_config_reports_a_bad_template() {
    let found = problems("get = \"FETCH /contacts/{id}\"\ndelete = \"DELETE /contacts\"\nupdate = \"PATCH /x/{contact_id}/{id}\"", "");
    let get = find(&found, "sides.app.contacts.get");
    assert!(
        get.message
            .contains("method `FETCH` is not one of GET, POST, PUT, PATCH, DELETE"),
        "{get}"
    );
    let delete = find(&found, "sides.app.contacts.delete");
    assert!(
        delete.message.contains("needs the placeholder `{id}`"),
        "{delete}"
    );
    assert_eq!(delete.value.as_deref(), Some("DELETE /contacts"));
    let update = find(&found, "sides.app.contacts.update");
    assert!(
        update
            .message
            .contains("`{contact_id}` cannot be filled in here (known: `{id}`)"),
        "{update}"
    );
    assert!(
        update.to_string().contains("ghlsync.toml:"),
        "located: {update}"
    );
}

#[test]
fn check_config_reports_a_bad_pointer() {
    let found = problems(
        "get = \"GET /c/{id}\"\nid_pointer = \"id\"\nupdated_at_pointer = \"/a~2\"",
        "",
    );
    let id = find(&found, "sides.app.contacts.id_pointer");
    assert!(
        id.message.contains("RFC 6901 JSON pointer") && id.message.contains("try \"/id\""),
        "{id}"
    );
    let updated = find(&found, "sides.app.contacts.updated_at_pointer");
    assert!(
        updated.message.contains("`~` must be followed by 0"),
        "{updated}"
    );
}

#[test]
fn check_config_reports_pagination_without_its_parameters() {
    let found = problems(
        "list = \"GET /c\"\n[sides.app.contacts.pagination]\nstyle = \"cursor\"\nlimit = 10",
        "",
    );
    assert!(find(&found, "sides.app.contacts.pagination.cursor_param")
        .message
        .contains("missing required key"));
    assert!(find(&found, "sides.app.contacts.pagination.cursor_pointer")
        .message
        .contains("where the next cursor is"));
    assert!(find(&found, "sides.app.contacts.pagination.limit_param")
        .message
        .contains("`limit` needs `limit_param`"));
    let found = problems("list = \"GET /c\"\n[sides.app.contacts.pagination]\nstyle = \"page\"\npage_param = \"p\"\nnext_pointer = \"/n\"", "");
    let unknown = find(&found, "sides.app.contacts.pagination.next_pointer");
    assert!(
        unknown.message.contains("unknown key"),
        "keys of another style: {unknown}"
    );
}

#[test]
fn check_config_reports_several_problems_at_once() {
    let found = problems(
        "list = \"GET /contacts?x={value}\"\nrecords_pointer = \"data\"\ntimestamp_format = \"unix\"\nlookup_email = \"GET /contacts\"\nlsit = \"GET /c\"",
        "\n[sides.app.tasks]\nlist = \"GET /tasks\"\nget = \"GET /tasks/{id}\"\n\n[sides.app.notes]\nchildren = \"GET /notes\"\nparent_pointer = \"/contact_id\"\n",
    );
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "sides.app.contacts.list",
        "sides.app.contacts.records_pointer",
        "sides.app.contacts.timestamp_format",
        "sides.app.contacts.lookup_email",
        "sides.app.contacts.lsit",
        "sides.app.tasks.children",
        "sides.app.tasks.parent_pointer",
        "sides.app.notes.children",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(find(&found, "sides.app.contacts.lsit")
        .message
        .contains("did you mean `list`"));
    assert!(find(&found, "sides.app.contacts.timestamp_format")
        .message
        .contains("\"epoch_millis\""));
    assert!(find(&found, "sides.app.notes.children")
        .message
        .contains("needs the placeholder `{contact_id}`"));
    assert!(find(&found, "sides.app.tasks.parent_pointer")
        .message
        .contains("missing required key"));
}

#[test]
fn app_sim_toml_loads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/connectors/app-sim.toml");
    let side = load(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(side.tasks.is_some() && side.notes.is_some());
}
