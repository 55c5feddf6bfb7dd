//! `ghlsync sim ghl`: the simulator as a standalone process.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{GhlSim, RateLimitConfig, RecordShapes, SimOptions};
use crate::faults::FaultArgs;

/// A `--token` value: `TOKEN=scope,scope` or `TOKEN@LOCATION=scope,scope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenArg {
    /// The bearer token string.
    pub token: String,
    /// A location id, or a 1-based index into the seeded locations;
    /// `None` = the first location.
    pub location: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

fn parse_token(text: &str) -> Result<TokenArg, String> {
    let (left, scopes) = text
        .split_once('=')
        .ok_or_else(|| "expected TOKEN=scope,scope or TOKEN@LOCATION=scope,scope".to_string())?;
    let (token, location) = match left.split_once('@') {
        Some((token, location)) => (token, Some(location.to_string())),
        None => (left, None),
    };
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    let scopes: Vec<String> = scopes
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if scopes.is_empty() {
        return Err("no scopes given (e.g. contacts.readonly,contacts.write)".into());
    }
    Ok(TokenArg {
        token: token.into(),
        location,
        scopes,
    })
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| "expected CLIENT_ID=CLIENT_SECRET".to_string())
}

/// Options of `ghlsync sim ghl`.
#[derive(Debug, Clone, clap::Args)]
pub struct GhlSimArgs {
    /// Address to listen on. Keep it on loopback: the simulator has no
    /// real security.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one (printed at start).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Contacts generated per location.
    #[arg(long, default_value_t = 100)]
    pub contacts: usize,
    /// Number of locations.
    #[arg(long, default_value_t = 1)]
    pub locations: usize,
    /// Seed of the data, ids, faults and webhook keys.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A static bearer token that never expires: TOKEN=scope,scope (first
    /// location) or TOKEN@LOCATION=scope,scope (a location id or a 1-based
    /// index). Repeatable. Without any, one read-write token per location
    /// is issued and printed.
    #[arg(long = "token", value_name = "TOKEN=SCOPES", value_parser = parse_token)]
    pub tokens: Vec<TokenArg>,
    /// An OAuth app to accept: CLIENT_ID=CLIENT_SECRET. Repeatable; an
    /// authorization code per location is printed for each.
    #[arg(long = "oauth-client", value_name = "ID=SECRET", value_parser = parse_pair)]
    pub oauth_clients: Vec<(String, String)>,
    /// Lifetime of access tokens minted by /oauth/token.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub access_token_ttl: Duration,
    /// Requests allowed per (app, location) in each interval.
    #[arg(long, default_value_t = 100)]
    pub rate_limit_burst: u32,
    /// The burst limit's sliding window.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub rate_limit_interval: Duration,
    /// Requests allowed per (app, location) per UTC day.
    #[arg(long, default_value_t = 200_000)]
    pub rate_limit_daily: u64,
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Where to POST webhooks.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// Let the locations hold duplicate contacts (same email or phone).
    #[arg(long)]
    pub allow_duplicate_contacts: bool,
    /// What answers and webhooks carry: `spec-strict` (only what the
    /// official spec's schemas list, plus the documented live differences)
    /// or `generous` (every field the simulator holds).
    #[arg(long, value_enum, default_value_t = RecordShapes::SpecStrict)]
    pub record_shapes: RecordShapes,
    /// Sign webhooks with the legacy RSA `x-wh-signature` too, as GHL did
    /// before 2026-07-01 (by default: Ed25519 only, `x-wh-signature: N/A`).
    #[arg(long)]
    pub legacy_rsa_signature: bool,
}

impl GhlSimArgs {
    /// The simulator options these arguments describe.
    pub fn options(&self) -> SimOptions {
        SimOptions {
            bind: SocketAddr::new(self.bind, self.port),
            seed: self.seed,
            locations: self.locations.max(1),
            contacts_per_location: self.contacts,
            rate_limit: RateLimitConfig {
                burst: self.rate_limit_burst,
                interval: self.rate_limit_interval,
                daily: self.rate_limit_daily,
            },
            access_token_ttl: self.access_token_ttl,
            faults: self.faults.config(),
            webhook_url: self.webhook_url.clone(),
            allow_duplicate_contacts: self.allow_duplicate_contacts,
            record_shapes: self.record_shapes,
            legacy_rsa_signature: self.legacy_rsa_signature,
            ..SimOptions::default()
        }
    }
}

/// Runs the simulator until Ctrl-C or SIGTERM, after printing to stdout
/// its base URL, the seeded locations, the tokens, the OAuth codes and the
/// webhook public keys (see [`start_from_args`]).
pub async fn serve_cli(args: GhlSimArgs) -> anyhow::Result<()> {
    let (sim, banner) = start_from_args(&args).await?;
    sim.serve_until_signal(&banner, "ghl sim").await
}

/// Starts the simulator the arguments describe, registers their tokens and
/// OAuth clients, and returns it with the text `serve_cli` prints: lines
/// `GHL simulator listening on URL`, `company ID`, `location ID "NAME"`,
/// `token TOKEN location=ID scopes=A,B`, `oauth client=ID location=ID
/// code=CODE`, then the two webhook public keys in PEM.
pub async fn start_from_args(args: &GhlSimArgs) -> anyhow::Result<(super::RunningGhlSim, String)> {
    let sim = GhlSim::start(args.options()).await.map_err(|e| {
        anyhow::anyhow!(
            "ghl simulator: cannot listen on {}:{}: {e}",
            args.bind,
            args.port
        )
    })?;
    let handle = sim.handle();
    let locations = handle.location_ids();
    let resolve = |location: &Option<String>| -> anyhow::Result<String> {
        match location {
            None => Ok(locations[0].clone()),
            Some(l) if locations.contains(l) => Ok(l.clone()),
            Some(l) => match l.parse::<usize>() {
                Ok(i) if (1..=locations.len()).contains(&i) => Ok(locations[i - 1].clone()),
                _ => anyhow::bail!(
                    "--token: unknown location {l:?} (use an id or 1..={})",
                    locations.len()
                ),
            },
        }
    };
    let mut out = String::new();
    out.push_str(&format!("GHL simulator listening on {}\n", sim.base_url()));
    out.push_str(&format!("company {}\n", handle.company_id()));
    for location in &locations {
        let name = handle
            .locations()
            .into_iter()
            .find(|l| &l.id == location)
            .map(|l| l.name)
            .unwrap_or_default();
        out.push_str(&format!("location {location} \"{name}\"\n"));
    }
    if args.tokens.is_empty() {
        for location in &locations {
            let token =
                handle.issue_token(location, &["contacts.readonly", "contacts.write"], None);
            out.push_str(&format!(
                "token {token} location={location} scopes=contacts.readonly,contacts.write\n"
            ));
        }
    }
    for arg in &args.tokens {
        let location = resolve(&arg.location)?;
        let scopes: Vec<&str> = arg.scopes.iter().map(String::as_str).collect();
        handle.add_static_token(&arg.token, &location, &scopes);
        out.push_str(&format!(
            "token {} location={location} scopes={}\n",
            arg.token,
            arg.scopes.join(",")
        ));
    }
    for (client_id, secret) in &args.oauth_clients {
        handle.register_oauth_client(client_id, secret);
        for location in &locations {
            let code = handle.authorization_code(
                client_id,
                location,
                &["contacts.readonly", "contacts.write"],
            );
            out.push_str(&format!(
                "oauth client={client_id} location={location} code={code}\n"
            ));
        }
    }
    let keys = tokio::task::spawn_blocking({
        let handle = handle.clone();
        move || handle.webhook_public_keys()
    })
    .await?;
    out.push_str("webhook RSA public key (x-wh-signature):\n");
    out.push_str(&keys.rsa_pem);
    out.push_str("webhook Ed25519 public key (x-ghl-signature):\n");
    out.push_str(&keys.ed25519_pem);
    Ok((sim, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::parse_error_rate;
    use crate::parse_args;

    #[test]
    fn arguments_parse_into_options() {
        let args: GhlSimArgs = parse_args(&[
            "--contacts",
            "5",
            "--locations",
            "2",
            "--seed",
            "9",
            "--token",
            "t1=contacts.readonly",
            "--token",
            "t2@2=contacts.readonly,contacts.write",
            "--fault-error",
            "503=0.1",
            "--fault-latency",
            "20ms",
            "--fault-429-storm",
            "--rate-limit-burst",
            "10",
            "--rate-limit-interval",
            "1s",
            "--webhook-url",
            "http://127.0.0.1:1/h",
        ])
        .unwrap();
        let o = args.options();
        assert_eq!((o.contacts_per_location, o.locations, o.seed), (5, 2, 9));
        assert_eq!(o.faults.error_rates, vec![(503, 0.1)]);
        assert_eq!(o.faults.latency, Duration::from_millis(20));
        assert!(o.faults.storm_429);
        assert_eq!(o.rate_limit.burst, 10);
        assert_eq!(o.rate_limit.interval, Duration::from_secs(1));
        assert_eq!(o.webhook_url.as_deref(), Some("http://127.0.0.1:1/h"));
        assert_eq!(args.tokens.len(), 2);
        assert_eq!(o.record_shapes, RecordShapes::SpecStrict);
        let generous: GhlSimArgs = parse_args(&["--record-shapes", "generous"]).unwrap();
        assert_eq!(generous.options().record_shapes, RecordShapes::Generous);
        assert!(parse_args::<GhlSimArgs>(&["--record-shapes", "strict"]).is_err());
        assert!(parse_args::<GhlSimArgs>(&["--fault-reset", "1.5"]).is_err());
        assert!(parse_args::<GhlSimArgs>(&["--token", "nothing"]).is_err());
    }

    #[test]
    fn token_args_parse() {
        let t = parse_token("abc=contacts.readonly,contacts.write").unwrap();
        assert_eq!(t.token, "abc");
        assert_eq!(t.location, None);
        assert_eq!(t.scopes, vec!["contacts.readonly", "contacts.write"]);
        let t = parse_token("abc@2=contacts.readonly").unwrap();
        assert_eq!(t.location.as_deref(), Some("2"));
        assert!(parse_token("abc").is_err());
        assert!(parse_token("=x").is_err());
        assert_eq!(parse_error_rate("503=0.5").unwrap(), (503, 0.5));
        assert!(parse_error_rate("503=2").is_err());
    }
}
