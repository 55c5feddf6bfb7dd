//! Webhook delivery, shared by the simulators: bounded in-order queues,
//! delivery with retries, the counters ([`WebhookStats`]) and flushing.
//!
//! The simulators differ only in what they send (their payloads and ids)
//! and how they sign it (a [`Signer`]); the queueing, the retries and the
//! bookkeeping are written once here.
//!
//! Deliveries never delay an API response: [`WebhookQueue::enqueue`] never
//! blocks. Events go to bounded queues (shards, chosen by a key's hash,
//! one worker each), so the events of one key are delivered in the order
//! they were queued; with one shard, every event is. A full queue drops
//! the event and counts it. A delivery is tried three times (after 50 ms
//! and 250 ms) on a connection error or a 5xx, with the same body, then
//! counted as failed and logged; a 4xx is not retried.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};

use super::server::lock;

/// Delivery counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events accepted into a queue.
    pub queued: u64,
    /// Delivered (2xx from the receiver).
    pub delivered: u64,
    /// Given up after the retries (or refused with a 4xx).
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

/// One webhook, ready to send.
pub(crate) struct Outgoing {
    /// The event's name, for the logs.
    pub event: String,
    /// The delivery's unique id, for the logs.
    pub id: String,
    /// The raw JSON body (what the signature covers).
    pub body: Vec<u8>,
}

struct Job {
    url: String,
    webhook: Outgoing,
}

/// How a simulator authenticates its deliveries.
pub(crate) trait Signer: Send + Sync + 'static {
    /// The headers that sign `body`, computed once per delivery; `None`
    /// gives the delivery up (counted as failed).
    fn sign(&self, body: &[u8])
        -> impl Future<Output = Option<Vec<(&'static str, String)>>> + Send;

    /// Headers computed afresh for each attempt.
    fn attempt_headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A simulator's webhook queues and their workers.
pub(crate) struct WebhookQueue {
    /// Names the simulator in the logs (`ghl sim`, `app sim`).
    label: &'static str,
    shards: Vec<mpsc::Sender<Job>>,
    url: RwLock<Option<String>>,
    stats: Arc<Stats>,
    ids: Mutex<ChaCha8Rng>,
}

impl WebhookQueue {
    /// Starts one worker per shard (on the current tokio runtime); they
    /// stop when `shutdown` changes. `capacity` is shared by the shards;
    /// `ids` draws the delivery ids.
    pub fn start<S: Signer>(
        label: &'static str,
        signer: S,
        shards: usize,
        capacity: usize,
        url: Option<String>,
        ids: ChaCha8Rng,
        shutdown: watch::Receiver<bool>,
    ) -> WebhookQueue {
        let stats = Arc::new(Stats::default());
        let signer = Arc::new(signer);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let shards = shards.max(1);
        let per_shard = (capacity / shards).max(1);
        let senders = (0..shards)
            .map(|_| {
                let (tx, rx) = mpsc::channel(per_shard);
                tokio::spawn(worker(
                    label,
                    rx,
                    stats.clone(),
                    client.clone(),
                    signer.clone(),
                    shutdown.clone(),
                ));
                tx
            })
            .collect();
        WebhookQueue {
            label,
            shards: senders,
            url: RwLock::new(url),
            stats,
            ids: Mutex::new(ids),
        }
    }

    pub fn set_url(&self, url: Option<String>) {
        *self.url.write().unwrap_or_else(|e| e.into_inner()) = url;
    }

    pub fn url(&self) -> Option<String> {
        self.url.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Queues the webhook `make` builds (given the delivery-id RNG) on the
    /// shard of `key`; never blocks, and does nothing (not even drawing an
    /// id) while no URL is set. Call it under the database lock so the
    /// queue's order is the order of the writes.
    pub fn enqueue(&self, key: impl Hash, make: impl FnOnce(&mut ChaCha8Rng) -> Outgoing) {
        let Some(url) = self.url() else { return };
        let webhook = make(&mut lock(&self.ids));
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = (hasher.finish() as usize) % self.shards.len();
        self.stats.pending.fetch_add(1, Ordering::SeqCst);
        match self.shards[shard].try_send(Job { url, webhook }) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => {
                self.stats.pending.fetch_sub(1, Ordering::SeqCst);
                self.stats.dropped.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(%error, "{}: webhook queue full or closed, event dropped", self.label);
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

    /// Waits until no webhook is queued or in flight; `false` on timeout.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stats.pending.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn worker<S: Signer>(
    label: &'static str,
    mut rx: mpsc::Receiver<Job>,
    stats: Arc<Stats>,
    client: reqwest::Client,
    signer: Arc<S>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            _ = shutdown.changed() => None,
        };
        let Some(job) = job else { break };
        if deliver(label, &client, &*signer, &job).await {
            stats.delivered.fetch_add(1, Ordering::SeqCst);
        } else {
            stats.failed.fetch_add(1, Ordering::SeqCst);
        }
        stats.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn deliver<S: Signer>(label: &str, client: &reqwest::Client, signer: &S, job: &Job) -> bool {
    let webhook = &job.webhook;
    let Some(signature) = signer.sign(&webhook.body).await else {
        return false;
    };
    let mut last_error = String::new();
    for (attempt, backoff) in [0u64, 50, 250].into_iter().enumerate() {
        if backoff > 0 {
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        }
        let mut request = client
            .post(&job.url)
            .header("content-type", "application/json");
        for (name, value) in signer.attempt_headers().iter().chain(&signature) {
            request = request.header(*name, value);
        }
        match request.body(webhook.body.clone()).send().await {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(event = %webhook.event, id = %webhook.id, attempt, "{label}: webhook delivered");
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
    tracing::warn!(event = %webhook.event, id = %webhook.id, url = %job.url, error = %last_error, "{label}: webhook delivery failed");
    false
}
