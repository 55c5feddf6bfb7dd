//! Starting, running and stopping a simulator, shared by the simulators:
//! binding the listener, serving with resettable connections until
//! shutdown ([`Launch`]), the running-simulator value tests and the CLI
//! hold ([`RunningSim`]), and serving a simulator as a process until
//! Ctrl-C or SIGTERM. Written once so every simulator starts and stops
//! the same way.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The seed data's "now": `anchor`, or else the start of the current UTC
/// day.
pub(crate) fn seed_anchor(anchor: Option<DateTime<Utc>>) -> DateTime<Utc> {
    anchor.unwrap_or_else(|| {
        let now = Utc::now();
        now.date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now)
    })
}

/// A simulator being started: its bound listener and its shutdown signal.
pub(crate) struct Launch {
    listener: TcpListener,
    addr: SocketAddr,
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    stop: watch::Sender<bool>,
    /// Turns `true` when the simulator stops (for its background tasks).
    pub stopping: watch::Receiver<bool>,
}

impl Launch {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Launch> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        Ok(Launch {
            listener,
            addr,
            base_url: format!("http://{addr}"),
            stop,
            stopping,
        })
    }

    /// Serves `router` (with resettable connections, see
    /// [`crate::faults`]) until the simulator is stopped. `label`
    /// names the simulator in the logs.
    pub fn serve<H>(self, router: Router, handle: H, label: &str, seed: u64) -> RunningSim<H> {
        let mut signal = self.stopping;
        let task = tokio::spawn(super::faults::serve(self.listener, router, async move {
            let _ = signal.wait_for(|stop| *stop).await;
        }));
        tracing::info!(base_url = %self.base_url, seed, "{label} listening");
        RunningSim {
            addr: self.addr,
            handle,
            shutdown: self.stop,
            task: Some(task),
        }
    }
}

/// A running simulator (`H` is its handle type). Dropping it stops the
/// server (without waiting); [`RunningSim::shutdown`] waits for it.
pub struct RunningSim<H> {
    addr: SocketAddr,
    handle: H,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl<H: Clone> RunningSim<H> {
    /// A handle to drive and inspect the simulator.
    pub fn handle(&self) -> H {
        self.handle.clone()
    }
}

impl<H> RunningSim<H> {
    /// `http://127.0.0.1:PORT` (no path, no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets in-flight requests finish (up to 2 s), stops
    /// the webhook workers.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }

    /// Prints `banner` to stdout, serves until Ctrl-C or SIGTERM, then
    /// shuts down (`label` names the simulator in the logs).
    pub(crate) async fn serve_until_signal(self, banner: &str, label: &str) -> anyhow::Result<()> {
        print!("{banner}");
        use std::io::Write as _;
        std::io::stdout().flush()?;
        wait_for_signal().await;
        tracing::info!("{label}: stopping");
        self.shutdown().await;
        Ok(())
    }
}

impl<H> Drop for RunningSim<H> {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
