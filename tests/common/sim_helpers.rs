//! Helpers shared by the simulator test crates (`sim_ghl`, `sim_app`),
//! which talk HTTP to a simulator on loopback: a client that keeps the
//! status, headers and raw text of every response ([`Api`], [`Resp`]), a
//! loopback webhook receiver ([`receiver`]), and the fault checks both
//! simulators must pass ([`check_faults`], [`assert_fault_counts`],
//! [`random_faults_follow_the_seed`]).
//!
//! Use from a test crate with `#[path = "common/sim_helpers.rs"] mod
//! sim_helpers;`. A crate adds its own methods to [`Api`] with an `impl
//! Api` block of its own.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghlsync_sim::app::AppSimHandle;
use ghlsync_sim::faults::{FaultConfig, FaultKind};
use ghlsync_sim::ghl::SimHandle;
use ghlsync_sim::RunningSim;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

/// A response, with its JSON body when it has one (`Value::Null` if not).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A check [`Api::call`] runs on every response (e.g. against a spec).
pub type Check = fn(&Method, &str, &Resp);

/// An API client with a bearer token and optional extra headers.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    headers: Vec<(&'static str, String)>,
    check: Option<Check>,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: base.to_string(),
            token: Some(token.to_string()),
            headers: Vec::new(),
            check: None,
        }
    }

    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(String::from),
            ..self.clone()
        }
    }

    /// The same client, sending `name: value` (`None`: not sending it).
    pub fn with_header(&self, name: &'static str, value: Option<&str>) -> Api {
        let mut api = self.clone();
        api.headers.retain(|(n, _)| *n != name);
        if let Some(value) = value {
            api.headers.push((name, value.to_string()));
        }
        api
    }

    /// The same client, running `check` on every response of
    /// [`Api::call`].
    pub fn with_check(&self, check: Check) -> Api {
        Api {
            check: Some(check),
            ..self.clone()
        }
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Resp, reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in &self.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            headers,
            text,
            json,
        })
    }

    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Resp, reqwest::Error> {
        self.try_send(method, path, body.map(|b| serde_json::to_vec(b).unwrap()))
            .await
    }

    /// Calls (panicking on a transport error) and runs the check.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let resp = self
            .try_call(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if let Some(check) = self.check {
            check(&method, path, &resp);
        }
        resp
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }
}

/// One webhook delivery: its headers and raw body.
pub type Delivery = (HeaderMap, Vec<u8>);

/// What a [`receiver`] got, in arrival order.
#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<Delivery>>>);

impl Received {
    /// A copy of every delivery so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.0.lock().unwrap().clone()
    }
}

/// A webhook receiver on loopback: records every `POST /hook`, answers
/// 200. Returns its URL, the record and the server task.
pub async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    let received = Received::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.0.lock().unwrap().push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, received, task)
}

/// The fault controls both simulators' handles have.
pub trait Faults {
    fn fail_next(&self, kind: FaultKind, count: u32);
    fn set_faults(&self, faults: FaultConfig);
    fn clear_faults(&self);
    fn set_429_storm(&self, on: bool);
}

macro_rules! faults_of {
    ($handle:ty) => {
        impl Faults for $handle {
            fn fail_next(&self, kind: FaultKind, count: u32) {
                <$handle>::fail_next(self, kind, count)
            }
            fn set_faults(&self, faults: FaultConfig) {
                <$handle>::set_faults(self, faults)
            }
            fn clear_faults(&self) {
                <$handle>::clear_faults(self)
            }
            fn set_429_storm(&self, on: bool) {
                <$handle>::set_429_storm(self, on)
            }
        }
    };
}
faults_of!(SimHandle);
faults_of!(AppSimHandle);

/// Checks that every fault is observable by a client reading `path`
/// (which answers 200 without faults): a reset, a truncated body, an HTML
/// page, an injected 500 (its body checked by `check_500`), a 503 HTML
/// gateway page three times, the 429 storm three times (each checked by
/// `check_storm`) and latency. Leaves no fault on; counts `reset`,
/// `truncate`, `html`, `status_500` once, `status_503` and `storm_429`
/// three times, and one `GET` of `path` with status 0.
pub async fn check_faults(
    sim: &impl Faults,
    api: &Api,
    path: &str,
    check_500: impl Fn(&Resp),
    check_storm: impl Fn(&Resp),
) {
    sim.fail_next(FaultKind::Reset, 1);
    let reset = api.try_call(Method::GET, path, None).await;
    assert!(reset.is_err(), "connection reset: {reset:?}");
    assert_eq!(
        api.get(path).await.status,
        200,
        "the next request is served"
    );

    sim.fail_next(FaultKind::Truncate, 1);
    let r = api.try_call(Method::GET, path, None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.text.is_empty());
    assert!(
        serde_json::from_str::<Value>(&r.text).is_err(),
        "truncated JSON: {}",
        r.text
    );
    let full = api.get(path).await;
    assert!(full.text.starts_with(&r.text) && full.text.len() > r.text.len());

    sim.fail_next(FaultKind::Html, 1);
    let r = api.try_call(Method::GET, path, None).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.text.starts_with("<!DOCTYPE html>"));

    sim.fail_next(FaultKind::Status(500), 1);
    let r = api.try_call(Method::GET, path, None).await.unwrap();
    assert_eq!(r.status, 500);
    check_500(&r);

    sim.set_faults(FaultConfig {
        error_rates: vec![(503, 1.0)],
        ..FaultConfig::default()
    });
    for _ in 0..3 {
        let r = api.try_call(Method::GET, path, None).await.unwrap();
        assert_eq!(r.status, 503);
        assert!(r.text.contains("503 Service Unavailable"));
    }
    sim.clear_faults();

    sim.set_429_storm(true);
    for _ in 0..3 {
        let r = api.try_call(Method::GET, path, None).await.unwrap();
        assert_eq!(r.status, 429);
        assert!(r.header("retry-after").is_some());
        check_storm(&r);
    }
    sim.set_429_storm(false);
    assert_eq!(api.get(path).await.status, 200);

    sim.set_faults(FaultConfig {
        latency: Duration::from_millis(150),
        ..FaultConfig::default()
    });
    let started = Instant::now();
    assert_eq!(api.get(path).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.clear_faults();
}

/// Checks the fault counters (`CounterSnapshot::faults`) hold these
/// counts.
pub fn assert_fault_counts(faults: &BTreeMap<String, u64>, expected: &[(&str, u64)]) {
    for (kind, n) in expected {
        assert_eq!(faults.get(*kind), Some(n), "{kind}: {faults:?}");
    }
}

/// Random faults come from the seeded RNG: starts a simulator twice with
/// `start` (given a fault configuration answering 500 to half the
/// requests; it returns the simulator, a client and a path that answers
/// 200), reads the path 24 times on each, and checks both see 500s and
/// 200s, in the same sequence.
pub async fn random_faults_follow_the_seed<H, F, Fut>(start: F)
where
    F: Fn(FaultConfig) -> Fut,
    Fut: Future<Output = (RunningSim<H>, Api, String)>,
{
    let mut sequences = Vec::new();
    for _ in 0..2 {
        let (sim, api, path) = start(FaultConfig {
            error_rates: vec![(500, 0.5)],
            ..FaultConfig::default()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(api.try_call(Method::GET, &path, None).await.unwrap().status);
        }
        assert!(
            statuses.contains(&500) && statuses.contains(&200),
            "{statuses:?}"
        );
        sequences.push(statuses);
        sim.shutdown().await;
    }
    assert_eq!(sequences[0], sequences[1]);
}
