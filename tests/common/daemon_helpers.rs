//! A daemon in this test process: both simulators delivering signed
//! webhooks to its HTTP server, and the engine, the targeted-sync worker
//! and the server running as `ghlsync run` runs them. Polling is slowed to
//! once an hour after the first pass, so whatever propagates later came
//! through a webhook.
//!
//! Use with `#[path = "common/daemon_helpers.rs"] mod daemon_helpers;`
//! beside `#[path = "common/engine_helpers.rs"] mod engine_helpers;`
//! (benchmarks: `#[path = "../tests/common/..."]`).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;

use ghl_sync::config::Loaded;
use ghl_sync::demo::{Sims, DEMO_CONFIG};
use ghl_sync::engine::{self, run_targets, Engine, Schedule, Shutdown, TargetQueue};
use ghl_sync::server::{self, ServerState};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The webhook public keys the server trusts, as PEM.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    pub rsa_pem: String,
    pub ed25519_pem: String,
}

/// Both simulators, with their webhooks pointed at `address`.
pub async fn start_sims(address: SocketAddr, ghl_contacts: usize, app_contacts: usize) -> Sims {
    crate::engine_helpers::start_sims_with_webhooks(ghl_contacts, app_contacts, Some(address)).await
}

/// The demo's configuration for `sims`, with the server on `address`,
/// polls once an hour after the first, and `keys` trusted for GHL.
pub fn configure(sims: &Sims, dir: &Path, address: SocketAddr, keys: &TrustedKeys) -> Loaded {
    configure_polling(sims, dir, address, keys, "1h")
}

/// [`configure`] with polls every `poll_interval` (the demo's `"1s"` keeps
/// the demo's pace).
pub fn configure_polling(
    sims: &Sims,
    dir: &Path,
    address: SocketAddr,
    keys: &TrustedKeys,
    poll_interval: &str,
) -> Loaded {
    std::fs::create_dir_all(dir).unwrap();
    let rsa = dir.join("ghl-rsa.pem");
    let ed25519 = dir.join("ghl-ed25519.pem");
    std::fs::write(&rsa, &keys.rsa_pem).unwrap();
    std::fs::write(&ed25519, &keys.ed25519_pem).unwrap();
    let template = DEMO_CONFIG
        .replace(
            "poll_interval = \"1s\"",
            &format!("poll_interval = \"{poll_interval}\""),
        )
        .replace("reconcile_interval = \"5s\"", "reconcile_interval = \"1h\"")
        .replace("bind = \"127.0.0.1:0\"", &format!("bind = \"{address}\""))
        + &format!(
            "\n[webhooks]\nghl_rsa_public_key_file = \"{}\"\nghl_ed25519_public_key_file = \"{}\"\n",
            rsa.display(),
            ed25519.display()
        );
    sims.configure(&template, dir)
        .expect("the configuration loads")
}

/// The simulator's own webhook keys.
pub fn sim_keys(sims: &Sims) -> TrustedKeys {
    let keys = sims.ghl.handle().webhook_public_keys();
    TrustedKeys {
        rsa_pem: keys.rsa_pem,
        ed25519_pem: keys.ed25519_pem,
    }
}

/// A daemon started from a configuration.
pub struct Daemon {
    pub engine: Engine,
    pub address: SocketAddr,
    pub stop: Shutdown,
    tasks: Vec<JoinHandle<()>>,
}

impl Daemon {
    /// Starts the engine, the worker and the server on `listener`.
    pub async fn start(loaded: &Loaded, listener: TcpListener) -> Daemon {
        let address = listener.local_addr().unwrap();
        let engine = ghl_sync::demo::engine(loaded)
            .await
            .expect("the engine builds");
        let stop = Shutdown::default();
        let (targets, receiver) = TargetQueue::new();
        let state = ServerState::new(engine.clone(), &loaded.settings, targets);
        let webhooks = &loaded.settings.webhooks;
        let schedule = Schedule {
            webhooks: Some((webhooks.trust_for, webhooks.safety_poll_interval)),
        };
        let tasks = vec![
            tokio::spawn({
                let stop = stop.clone();
                async move {
                    server::serve(listener, state, stop).await.unwrap();
                }
            }),
            tokio::spawn(run_targets(engine.clone(), receiver, stop.clone())),
            tokio::spawn({
                let (engine, stop) = (engine.clone(), stop.clone());
                async move {
                    engine::run_daemon(engine, stop, schedule).await.unwrap();
                }
            }),
        ];
        Daemon {
            engine,
            address,
            stop,
            tasks,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Stops everything and waits for it.
    pub async fn stop(self) {
        self.stop.trigger();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// A listener on a free loopback port.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Keys of our own, to sign deliveries the tests shape (timestamps, ids).
pub struct Signer {
    rsa: rsa::RsaPrivateKey,
    ed25519: ed25519_dalek::SigningKey,
}

impl Signer {
    pub fn new(seed: u64) -> Signer {
        use rand::SeedableRng as _;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        Signer {
            rsa: rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap(),
            ed25519: ed25519_dalek::SigningKey::generate(&mut rng),
        }
    }

    pub fn trusted(&self) -> TrustedKeys {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        TrustedKeys {
            rsa_pem: rsa::RsaPublicKey::from(&self.rsa)
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap(),
            ed25519_pem: self
                .ed25519
                .verifying_key()
                .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .unwrap(),
        }
    }

    pub fn rsa_signature(&self, body: &[u8]) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(body);
        let signature = self
            .rsa
            .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest)
            .unwrap();
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(signature)
    }

    pub fn ed25519_signature(&self, body: &[u8]) -> String {
        use base64::Engine as _;
        use ed25519_dalek::Signer as _;
        base64::engine::general_purpose::STANDARD.encode(self.ed25519.sign(body).to_bytes())
    }
}
