//! The fault flags of the simulator commands (`ghlsync sim ghl|app
//! --fault-…`), read into a [`FaultConfig`].

use std::time::Duration;

use super::FaultConfig;

pub(super) fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err("a probability is between 0 and 1".into())
    }
}

pub(crate) fn parse_error_rate(text: &str) -> Result<(u16, f64), String> {
    let (status, p) = text
        .split_once('=')
        .ok_or_else(|| "expected STATUS=PROBABILITY, e.g. 503=0.05".to_string())?;
    let status: u16 = status
        .parse()
        .map_err(|_| format!("not a status: {status}"))?;
    if !(400..=599).contains(&status) {
        return Err("the status must be 4xx or 5xx".into());
    }
    Ok((status, parse_probability(p)?))
}

/// The fault flags of a simulator command (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultArgs {
    /// Answer a share of requests with an error: STATUS=PROBABILITY
    /// (e.g. 503=0.05). Repeatable.
    #[arg(long = "fault-error", value_name = "STATUS=P", value_parser = parse_error_rate)]
    pub fault_errors: Vec<(u16, f64)>,
    /// Latency added to every request.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub fault_latency: Duration,
    /// Extra random latency, up to this much.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub fault_jitter: Duration,
    /// Probability of dropping the connection without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_reset: f64,
    /// Probability of sending half of the JSON body.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_truncate: f64,
    /// Probability of answering an HTML page instead of JSON.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_html: f64,
    /// Probability of committing a write and then dropping the connection.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub fault_lose_response: f64,
    /// Answer every request 429.
    #[arg(long)]
    pub fault_429_storm: bool,
}

impl FaultArgs {
    /// The fault configuration these flags describe.
    pub fn config(&self) -> FaultConfig {
        FaultConfig {
            error_rates: self.fault_errors.clone(),
            latency: self.fault_latency,
            jitter: self.fault_jitter,
            reset_rate: self.fault_reset,
            truncate_rate: self.fault_truncate,
            html_rate: self.fault_html,
            lose_response_rate: self.fault_lose_response,
            storm_429: self.fault_429_storm,
        }
    }
}
