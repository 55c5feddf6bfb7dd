//! What the spec contract checks (`ghl_contract.rs`, `ghl_prism.rs`) send
//! through each GHL client call: the client, and one contact, task and
//! note, written once.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use ghl_sync::connector::ghl::{
    ClientOptions, ContactFields, Credentials, GhlClient, NoteFields, RateLimiter, RateLimits,
    TaskFields,
};
use ghl_sync::connector::http::RetryPolicy;
use secrecy::SecretString;
use serde_json::json;

/// A read-write client of the checks' location at `base`.
pub fn client(base: &str, retry: RetryPolicy, timeout: Duration) -> GhlClient {
    GhlClient::new(ClientOptions {
        base_url: base.parse().unwrap(),
        location_id: "ve9EPM428h8vShlRW1KT".into(),
        credentials: Credentials::Static(SecretString::from("pit-test".to_owned())),
        scopes: vec!["contacts.readonly".into(), "contacts.write".into()],
        limiter: RateLimiter::new(RateLimits::default()),
        retry,
        timeout,
    })
    .unwrap()
}

/// Ids and bodies for every client call.
pub struct Inputs {
    pub contact: &'static str,
    pub task_id: &'static str,
    pub note_id: &'static str,
    pub fields: ContactFields,
    pub task: TaskFields,
    pub note: NoteFields,
    pub tags: Vec<String>,
}

impl Inputs {
    pub fn new() -> Self {
        Inputs {
            contact: "c0000000000000000001",
            task_id: "t0000000000000000001",
            note_id: "n0000000000000000001",
            fields: ContactFields::new()
                .set("firstName", "Ada")
                .set("lastName", "Lovelace")
                .set("email", "ada@example.com")
                .set("phone", "+14155550100")
                .set("tags", json!(["vip"])),
            task: TaskFields {
                title: Some("Call".into()),
                body: Some("About the renewal".into()),
                due_date: Some(Utc.with_ymd_and_hms(2027, 1, 5, 9, 0, 0).unwrap()),
                completed: Some(false),
                assigned_to: None,
            },
            note: NoteFields {
                body: "Met at the fair".into(),
                user_id: None,
            },
            tags: vec!["vip".to_owned()],
        }
    }
}
