//! Webhook delivery: every change (through the API or the `*_as_user`
//! methods) is POSTed to the configured URL with GHL's payload for that
//! event, a unique `webhookId` and a `timestamp`, and signed over the raw
//! body as GHL signs it since 2026-07-01: `x-ghl-signature`, base64
//! Ed25519, with `x-wh-signature: N/A` ("A header that is present but holds
//! the literal text `N/A` means not signed with this scheme": field notes,
//! "Webhook signatures"). With `SimOptions::legacy_rsa_signature`, as GHL
//! did before: `x-wh-signature` is also a base64 RSA-SHA256 (PKCS#1 v1.5)
//! signature, 2048-bit key (`WebhookAuthentication.md`).
//!
//! The key pairs are derived from the seed (ChaCha RNG), generated once per
//! process per seed and cached (RSA key generation is slow in debug
//! builds). Their public halves are published as PEM (SPKI, `BEGIN PUBLIC
//! KEY`, like the key in `WebhookAuthentication.md`).
//!
//! Deliveries go through the shared [`crate::webhook_queue`]: they
//! never delay an API response; the queue is sharded by contact id (one
//! worker per shard, so the events of one contact are delivered in
//! order); a full queue drops the event and counts it; a delivery is
//! tried three times (after 50 ms and 250 ms) on a connection error or a
//! 5xx, then counted as failed and logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine as _;
use rand::SeedableRng;
use rand_chacha::{ChaCha20Rng, ChaCha8Rng};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::model::{gen_id, iso, now_ms, Event};
pub use crate::webhook_queue::WebhookStats;
use crate::webhook_queue::{Outgoing, Signer, WebhookQueue};

/// The simulator's webhook public keys, PEM encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookPublicKeys {
    /// RSA 2048 public key (SPKI PEM) verifying `x-wh-signature`.
    pub rsa_pem: String,
    /// Ed25519 public key (SPKI PEM) verifying `x-ghl-signature`.
    pub ed25519_pem: String,
}

pub(crate) struct SigningKeys {
    rsa: rsa::RsaPrivateKey,
    ed25519: ed25519_dalek::SigningKey,
    pub public: WebhookPublicKeys,
}

impl SigningKeys {
    fn generate(seed: u64) -> SigningKeys {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5157_4542_484f_4f4b);
        let ed25519 = ed25519_dalek::SigningKey::generate(&mut rng);
        let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        let rsa_pem = rsa::RsaPublicKey::from(&rsa)
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .expect("RSA public key PEM");
        let ed25519_pem = ed25519
            .verifying_key()
            .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .expect("Ed25519 public key PEM");
        SigningKeys {
            rsa,
            ed25519,
            public: WebhookPublicKeys {
                rsa_pem,
                ed25519_pem,
            },
        }
    }

    /// `(x-wh-signature, x-ghl-signature)` of a body.
    pub fn sign(&self, body: &[u8]) -> (String, String) {
        let digest = Sha256::digest(body);
        let rsa_sig = self
            .rsa
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
            .expect("RSA signing");
        let b64 = base64::engine::general_purpose::STANDARD;
        (b64.encode(rsa_sig), self.sign_ed25519(body))
    }

    /// `x-ghl-signature` of a body: base64 Ed25519.
    pub fn sign_ed25519(&self, body: &[u8]) -> String {
        use ed25519_dalek::Signer as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        b64.encode(self.ed25519.sign(body).to_bytes())
    }
}

/// One seed's keys, generated once; concurrent callers wait for the first.
type KeySlot = Arc<OnceLock<Arc<SigningKeys>>>;

/// The keys of a seed, generated on first use and cached for the process.
pub(crate) fn signing_keys(seed: u64) -> Arc<SigningKeys> {
    static CACHE: OnceLock<Mutex<HashMap<u64, KeySlot>>> = OnceLock::new();
    let slot = {
        let mut cache = CACHE
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache.entry(seed).or_default().clone()
    };
    slot.get_or_init(|| Arc::new(SigningKeys::generate(seed)))
        .clone()
}

/// Signs with the seed's key pairs: `x-ghl-signature` (Ed25519), and
/// `x-wh-signature` (RSA) only when `legacy_rsa`, else `N/A`.
struct GhlSigner {
    seed: u64,
    legacy_rsa: bool,
}

impl Signer for GhlSigner {
    async fn sign(&self, body: &[u8]) -> Option<Vec<(&'static str, String)>> {
        let seed = self.seed;
        let keys = tokio::task::spawn_blocking(move || signing_keys(seed))
            .await
            .ok()?;
        let (rsa_sig, ed_sig) = if self.legacy_rsa {
            keys.sign(body)
        } else {
            ("N/A".to_owned(), keys.sign_ed25519(body))
        };
        Some(vec![
            ("x-wh-signature", rsa_sig),
            ("x-ghl-signature", ed_sig),
        ])
    }
}

/// Queues per contact: the events of one contact arrive in order.
const SHARDS: usize = 4;

/// Starts the webhook queue of a simulator (on the current tokio runtime).
pub(crate) fn start(
    seed: u64,
    legacy_rsa: bool,
    url: Option<String>,
    capacity: usize,
    shutdown: watch::Receiver<bool>,
) -> WebhookQueue {
    WebhookQueue::start(
        "ghl sim",
        GhlSigner { seed, legacy_rsa },
        SHARDS,
        capacity,
        url,
        ChaCha8Rng::seed_from_u64(seed ^ 0x7765_6268_6f6f_6b73),
        shutdown,
    )
}

/// Queues an event with a fresh `webhookId` and `timestamp`; never blocks.
/// Called under the database lock so per-contact order is the order of
/// the writes.
pub(crate) fn enqueue(queue: &WebhookQueue, event: Event) {
    let Event { key, mut payload } = event;
    queue.enqueue(&key, move |ids| {
        let webhook_id = gen_id(ids);
        payload.insert("webhookId".into(), json!(webhook_id));
        payload.insert("timestamp".into(), json!(iso(now_ms())));
        Outgoing {
            event: payload
                .get("type")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string(),
            id: webhook_id,
            body: serde_json::to_vec(&payload).unwrap_or_default(),
        }
    });
}
