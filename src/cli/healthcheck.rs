//! `ghlsync healthcheck`: asks the running daemon's `/readyz` (or
//! `/healthz` with `--live`) and exits 0 or 1, for Docker's HEALTHCHECK and
//! other probes that have no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::config::Loaded;

pub async fn run(loaded: Loaded, live: bool, url: Option<String>) -> anyhow::Result<()> {
    let path = if live { "/healthz" } else { "/readyz" };
    let url = match url {
        Some(url) => url,
        None => {
            let Some(bind) = loaded.settings.server.bind else {
                bail!("server.bind is empty: the daemon runs no HTTP server to ask (pass --url)");
            };
            format!("http://{}{path}", local(bind))
        }
    };
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("no answer from {url}: is `ghlsync run` running?"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() {
        println!("{url}: {status}");
        return Ok(());
    }
    let failed = failed_checks(&body).unwrap_or(body);
    bail!("{url}: {status}: {failed}")
}

/// Where to reach a server bound to `bind`: a wildcard address is reached
/// on loopback.
fn local(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// The failed checks of a `/readyz` body, one line each.
fn failed_checks(body: &str) -> Option<String> {
    let readiness: serde_json::Value = serde_json::from_str(body).ok()?;
    let lines: Vec<String> = readiness["checks"]
        .as_array()?
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            let mut at = c["check"].as_str().unwrap_or("?").to_owned();
            for key in ["pair", "side"] {
                if let Some(value) = c[key].as_str() {
                    at.push_str(&format!(" {key}={value}"));
                }
            }
            format!("{at}: {}", c["detail"].as_str().unwrap_or(""))
        })
        .collect();
    Some(lines.join("; "))
}
