//! Webhook delivery: every change (through the API or the handle's
//! `*_as_user` methods) is POSTed to the configured URL as
//!
//! ```json
//! {"event": "contact.updated", "entity": "contact", "id": "ct_…",
//!  "occurred_at": 1717243200123, "delivery_id": "dl_…"}
//! ```
//!
//! (`contact_id` too for tasks and notes), with headers
//! `Content-Type: application/json`, `X-App-Timestamp: <epoch seconds of
//! the attempt>` and `X-App-Signature: sha256=<lowercase hex
//! HMAC-SHA256(secret, raw body)>`.
//!
//! Deliveries go through the shared [`crate::webhook_queue`] and
//! never delay an API response: events go, in the order of the writes, to
//! one bounded queue served by one worker, so every event arrives in order
//! (a receiver that is down delays the ones behind it). A full queue drops
//! the event and counts it. A delivery is tried three times (after 50 ms
//! and 250 ms) on a connection error or a 5xx, with the same body and
//! `delivery_id`, then counted as failed and logged; a 4xx is not retried.

use std::sync::{Arc, RwLock};

use hmac::{Hmac, Mac};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sha2::Sha256;
use tokio::sync::watch;

use super::model::{base36_id, Event};
pub use crate::webhook_queue::WebhookStats;
use crate::webhook_queue::{Outgoing, Signer, WebhookQueue};

/// The signature header's value for a body: `sha256=<hex>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Signs with the current secret (`X-App-Signature`) and stamps every
/// attempt (`X-App-Timestamp`).
struct AppSigner {
    secret: Arc<RwLock<String>>,
}

impl Signer for AppSigner {
    async fn sign(&self, body: &[u8]) -> Option<Vec<(&'static str, String)>> {
        let secret = self
            .secret
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(vec![("x-app-signature", signature(&secret, body))])
    }

    fn attempt_headers(&self) -> Vec<(&'static str, String)> {
        vec![(
            "x-app-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )]
    }
}

/// Starts the webhook queue of a simulator (on the current tokio runtime):
/// one queue, one worker, so every event arrives in order.
pub(crate) fn start(
    seed: u64,
    url: Option<String>,
    secret: Arc<RwLock<String>>,
    capacity: usize,
    shutdown: watch::Receiver<bool>,
) -> WebhookQueue {
    WebhookQueue::start(
        "app sim",
        AppSigner { secret },
        1,
        capacity,
        url,
        ChaCha8Rng::seed_from_u64(seed ^ 0x6170_705f_7768_6b73),
        shutdown,
    )
}

/// Queues an event with a fresh `delivery_id`; never blocks. Called under
/// the database lock so the queue's order is the order of the writes.
pub(crate) fn enqueue(queue: &WebhookQueue, event: &Event) {
    queue.enqueue((), |ids| {
        let delivery_id = base36_id(ids, "dl_", 16);
        let mut payload = event.payload();
        let name = payload
            .get("event")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        payload.insert("delivery_id".into(), json!(delivery_id));
        Outgoing {
            event: name,
            id: delivery_id,
            body: serde_json::to_vec(&payload).unwrap_or_default(),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
