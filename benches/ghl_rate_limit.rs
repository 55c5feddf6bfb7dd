//! Drives one GHL client with many concurrent callers against the GHL
//! simulator enforcing GHL's real limits (100 requests per sliding 10 s,
//! 200,000 per day) and reports how much of the budget was used and how
//! many 429s came back. Target: zero 429s while sustaining at least 95% of
//! the budget.
//!
//! cargo bench --bench ghl_rate_limit -- [--seconds 60] [--callers 32]

#[path = "common/args.rs"]
mod args;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ghl_sync::connector::ghl::{ClientOptions, Credentials, GhlClient, RateLimiter, RateLimits};
use ghl_sync::connector::http::RetryPolicy;
use ghlsync_sim::ghl::{GhlSim, SimOptions};
use secrecy::SecretString;

#[tokio::main]
async fn main() {
    let seconds = args::number("--seconds", 60);
    let callers = args::number("--callers", 32);
    let sim = GhlSim::start(SimOptions {
        contacts_per_location: 50,
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    let handle = sim.handle();
    let location = handle.location_ids()[0].clone();
    let token = handle.issue_token(&location, &["contacts.readonly", "contacts.write"], None);
    let ids: Vec<String> = handle
        .contacts(&location)
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    let limits = RateLimits::default();
    let client = GhlClient::new(ClientOptions {
        base_url: sim.base_url().parse().unwrap(),
        location_id: location.clone(),
        credentials: Credentials::Static(SecretString::from(token)),
        scopes: vec!["contacts.readonly".into(), "contacts.write".into()],
        limiter: RateLimiter::new(limits),
        retry: RetryPolicy::default(),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    handle.reset_counters();

    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let client = client.clone();
        let ids = ids.clone();
        let (done, failed) = (done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = caller as usize;
            while Instant::now() < deadline {
                match client.get_contact(&ids[n % ids.len()]).await {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                n += callers as usize;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let counters = handle.counters();
    let served = counters.total_requests;
    let budget = elapsed / limits.interval.as_secs_f64() * f64::from(limits.max_per_interval);
    let max_window = counters
        .max_requests_per_10s
        .values()
        .copied()
        .max()
        .unwrap_or(0);
    println!(
        "ghl_rate_limit: {callers} callers for {elapsed:.1} s against GHL limits (100 per 10 s)"
    );
    println!("  requests served by the simulator: {served}");
    println!(
        "  calls completed: {}, failed: {}",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!("  429 responses: {}", counters.too_many_requests);
    println!("  most requests in any 10 s window: {max_window} (limit 100)");
    println!(
        "  budget used: {:.1}% ({:.2} requests/s of 10.00)",
        served as f64 / budget * 100.0,
        served as f64 / elapsed
    );
    sim.shutdown().await;
    assert_eq!(
        counters.too_many_requests, 0,
        "the limiter let a 429 happen"
    );
}
