//! `ghlsync sim app`: the app simulator as a standalone process.

use std::net::{IpAddr, SocketAddr};

use super::{
    AppSim, AppSimOptions, RunningAppSim, API_PREFIX, DEFAULT_RATE_LIMIT, DEFAULT_TOKEN,
    DEFAULT_WEBHOOK_SECRET,
};
use crate::faults::FaultArgs;

/// Options of `ghlsync sim app`.
#[derive(Debug, Clone, clap::Args)]
pub struct AppSimArgs {
    /// Address to listen on. Keep it on loopback: the simulator has no
    /// real security.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one (printed at start).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Contacts generated at start.
    #[arg(long, default_value_t = 25)]
    pub contacts: usize,
    /// Seed of the data, ids, faults and webhook delivery ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A bearer token to accept. Repeatable. Without any, the token
    /// `app-sim-token` is accepted.
    #[arg(long = "token", value_name = "TOKEN")]
    pub tokens: Vec<String>,
    /// Where to POST webhooks.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// The HMAC-SHA256 key of `X-App-Signature` (default
    /// `app-sim-webhook-secret`).
    #[arg(long, value_name = "SECRET")]
    pub webhook_secret: Option<String>,
    /// Requests allowed per second per token; 0 = no limit.
    #[arg(long, default_value_t = DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    #[command(flatten)]
    pub faults: FaultArgs,
}

impl AppSimArgs {
    /// The simulator options these arguments describe.
    pub fn options(&self) -> AppSimOptions {
        AppSimOptions {
            bind: SocketAddr::new(self.bind, self.port),
            seed: self.seed,
            contacts: self.contacts,
            tokens: if self.tokens.is_empty() {
                vec![DEFAULT_TOKEN.to_string()]
            } else {
                self.tokens.clone()
            },
            rate_limit: Some(self.rate_limit).filter(|l| *l > 0),
            faults: self.faults.config(),
            webhook_url: self.webhook_url.clone(),
            webhook_secret: self
                .webhook_secret
                .clone()
                .unwrap_or_else(|| DEFAULT_WEBHOOK_SECRET.to_string()),
            ..AppSimOptions::default()
        }
    }
}

/// Runs the simulator until Ctrl-C or SIGTERM, after printing to stdout
/// what [`start_from_args`] returns.
pub async fn serve_cli(args: AppSimArgs) -> anyhow::Result<()> {
    let (sim, banner) = start_from_args(&args).await?;
    sim.serve_until_signal(&banner, "app sim").await
}

/// Starts the simulator the arguments describe and returns it with the
/// text `serve_cli` prints, one fact per line:
///
/// ```text
/// app simulator listening on http://127.0.0.1:PORT/api/v1
/// contacts 25 seed 1
/// token TOKEN
/// rate limit 20 requests per second per token
/// webhooks to URL            (or: webhooks off (no --webhook-url))
/// webhook secret SECRET (from --webhook-secret)   (or: (default))
/// ```
pub async fn start_from_args(args: &AppSimArgs) -> anyhow::Result<(RunningAppSim, String)> {
    let options = args.options();
    let sim = AppSim::start(options.clone()).await.map_err(|e| {
        anyhow::anyhow!(
            "app simulator: cannot listen on {}:{}: {e}",
            args.bind,
            args.port
        )
    })?;
    let mut out = String::new();
    out.push_str(&format!(
        "app simulator listening on {}{API_PREFIX}\n",
        sim.base_url()
    ));
    out.push_str(&format!(
        "contacts {} seed {}\n",
        sim.handle().contact_count(),
        options.seed
    ));
    for token in &options.tokens {
        out.push_str(&format!("token {token}\n"));
    }
    match options.rate_limit {
        Some(limit) => out.push_str(&format!(
            "rate limit {limit} requests per second per token\n"
        )),
        None => out.push_str("rate limit off\n"),
    }
    match &options.webhook_url {
        Some(url) => out.push_str(&format!("webhooks to {url}\n")),
        None => out.push_str("webhooks off (no --webhook-url)\n"),
    }
    let source = if args.webhook_secret.is_some() {
        "from --webhook-secret"
    } else {
        "default"
    };
    out.push_str(&format!(
        "webhook secret {} ({source})\n",
        options.webhook_secret
    ));
    Ok((sim, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_args;
    use std::time::Duration;

    #[test]
    fn arguments_parse_into_options() {
        let args: AppSimArgs = parse_args(&[
            "--contacts",
            "5",
            "--seed",
            "9",
            "--token",
            "t1",
            "--token",
            "t2",
            "--rate-limit",
            "0",
            "--fault-error",
            "503=0.1",
            "--fault-latency",
            "20ms",
            "--fault-429-storm",
            "--webhook-url",
            "http://127.0.0.1:1/h",
            "--webhook-secret",
            "s3",
        ])
        .unwrap();
        let o = args.options();
        assert_eq!((o.contacts, o.seed), (5, 9));
        assert_eq!(o.tokens, vec!["t1", "t2"]);
        assert_eq!(o.rate_limit, None);
        assert_eq!(o.faults.error_rates, vec![(503, 0.1)]);
        assert_eq!(o.faults.latency, Duration::from_millis(20));
        assert!(o.faults.storm_429);
        assert_eq!(o.webhook_url.as_deref(), Some("http://127.0.0.1:1/h"));
        assert_eq!(o.webhook_secret, "s3");
        let d = parse_args::<AppSimArgs>(&[]).unwrap().options();
        assert_eq!(d.tokens, vec![DEFAULT_TOKEN]);
        assert_eq!(d.rate_limit, Some(DEFAULT_RATE_LIMIT));
        assert_eq!(d.webhook_secret, DEFAULT_WEBHOOK_SECRET);
        assert!(parse_args::<AppSimArgs>(&["--fault-reset", "1.5"]).is_err());
    }
}
