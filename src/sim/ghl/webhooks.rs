//! Webhook delivery: every change (through the API or the `*_as_user`
//! methods) is POSTed to the configured URL with GHL's payload for that
//! event, a unique `webhookId` and a `timestamp`, and signed over the raw
//! body twice:
//! - `x-wh-signature`: base64 RSA-SHA256 (PKCS#1 v1.5), 2048-bit key;
//! - `x-ghl-signature`: base64 Ed25519.
//!
//! The key pairs are derived from the seed (ChaCha RNG), generated once per
//! process per seed and cached (RSA key generation is slow in debug
//! builds). Their public halves are published as PEM (SPKI, `BEGIN PUBLIC
//! KEY`, like the key in `WebhookAuthentication.md`).
//!
//! Deliveries never delay an API response: events go to bounded queues
//! (sharded by contact id, one worker per shard, so the events of one
//! contact are delivered in order). A full queue drops the event and
//! counts it; a delivery is tried three times (after 50 ms and 250 ms)
//! on a connection error or a 5xx, then counted as failed and logged.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use base64::Engine as _;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use super::model::{gen_id, iso, now_ms, Event};

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
        use ed25519_dalek::Signer as _;
        let digest = Sha256::digest(body);
        let rsa_sig = self
            .rsa
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest)
            .expect("RSA signing");
        let ed_sig = self.ed25519.sign(body);
        let b64 = base64::engine::general_purpose::STANDARD;
        (b64.encode(rsa_sig), b64.encode(ed_sig.to_bytes()))
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

/// Delivery counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events accepted into a queue.
    pub queued: u64,
    /// Delivered (2xx from the receiver).
    pub delivered: u64,
    /// Given up after the retries.
    pub failed: u64,
    /// Dropped because a queue was full.
    pub dropped: u64,
    /// Queued or in flight now.
    pub pending: u64,
}

#[derive(Debug, Default)]
struct Stats {
    queued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    pending: AtomicU64,
}

struct Job {
    url: String,
    event: Event,
    webhook_id: String,
    timestamp: String,
}

pub(crate) struct Dispatcher {
    shards: Vec<mpsc::Sender<Job>>,
    url: RwLock<Option<String>>,
    stats: Arc<Stats>,
    ids: Mutex<rand_chacha::ChaCha8Rng>,
    seed: u64,
}

const SHARDS: usize = 4;

impl Dispatcher {
    /// Starts the workers (on the current tokio runtime).
    pub fn start(
        seed: u64,
        url: Option<String>,
        capacity: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Dispatcher {
        let stats = Arc::new(Stats::default());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let per_shard = (capacity / SHARDS).max(1);
        let mut shards = Vec::with_capacity(SHARDS);
        for _ in 0..SHARDS {
            let (tx, rx) = mpsc::channel(per_shard);
            shards.push(tx);
            tokio::spawn(worker(
                rx,
                stats.clone(),
                client.clone(),
                seed,
                shutdown.clone(),
            ));
        }
        Dispatcher {
            shards,
            url: RwLock::new(url),
            stats,
            ids: Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(
                seed ^ 0x7765_6268_6f6f_6b73,
            )),
            seed,
        }
    }

    pub fn set_url(&self, url: Option<String>) {
        *self.url.write().unwrap_or_else(|e| e.into_inner()) = url;
    }

    pub fn url(&self) -> Option<String> {
        self.url.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Queues an event; never blocks. Called under the database lock so
    /// per-contact order is the order of the writes.
    pub fn enqueue(&self, event: Event) {
        let Some(url) = self.url() else { return };
        let webhook_id = gen_id(&mut *self.ids.lock().unwrap_or_else(|e| e.into_inner()));
        let mut hasher = DefaultHasher::new();
        event.key.hash(&mut hasher);
        let shard = (hasher.finish() as usize) % self.shards.len();
        self.stats.pending.fetch_add(1, Ordering::SeqCst);
        let job = Job {
            url,
            event,
            webhook_id,
            timestamp: iso(now_ms()),
        };
        match self.shards[shard].try_send(job) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => {
                self.stats.pending.fetch_sub(1, Ordering::SeqCst);
                self.stats.dropped.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(%error, "ghl sim: webhook queue full or closed, event dropped");
            }
        }
    }

    pub fn stats(&self) -> WebhookStats {
        WebhookStats {
            queued: self.stats.queued.load(Ordering::SeqCst),
            delivered: self.stats.delivered.load(Ordering::SeqCst),
            failed: self.stats.failed.load(Ordering::SeqCst),
            dropped: self.stats.dropped.load(Ordering::SeqCst),
            pending: self.stats.pending.load(Ordering::SeqCst),
        }
    }
}

async fn worker(
    mut rx: mpsc::Receiver<Job>,
    stats: Arc<Stats>,
    client: reqwest::Client,
    seed: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            _ = shutdown.changed() => None,
        };
        let Some(job) = job else { break };
        let delivered = deliver(&client, seed, job).await;
        if delivered {
            stats.delivered.fetch_add(1, Ordering::SeqCst);
        } else {
            stats.failed.fetch_add(1, Ordering::SeqCst);
        }
        stats.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn deliver(client: &reqwest::Client, seed: u64, job: Job) -> bool {
    let mut payload = job.event.payload;
    payload.insert("webhookId".into(), json!(job.webhook_id));
    payload.insert("timestamp".into(), json!(job.timestamp));
    let kind = payload
        .get("type")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let keys = match tokio::task::spawn_blocking(move || signing_keys(seed)).await {
        Ok(keys) => keys,
        Err(_) => return false,
    };
    let (rsa_sig, ed_sig) = keys.sign(&body);
    let mut last_error = String::new();
    for (attempt, backoff) in [0u64, 50, 250].into_iter().enumerate() {
        if backoff > 0 {
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        }
        let sent = client
            .post(&job.url)
            .header("content-type", "application/json")
            .header("x-wh-signature", &rsa_sig)
            .header("x-ghl-signature", &ed_sig)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(event = %kind, webhook_id = %job.webhook_id, attempt, "ghl sim: webhook delivered");
                return true;
            }
            Ok(response) if response.status().is_client_error() => {
                last_error = format!("receiver answered {}", response.status());
                break;
            }
            Ok(response) => last_error = format!("receiver answered {}", response.status()),
            Err(error) => last_error = error.to_string(),
        }
    }
    tracing::warn!(event = %kind, webhook_id = %job.webhook_id, url = %job.url, error = %last_error, "ghl sim: webhook delivery failed");
    false
}
