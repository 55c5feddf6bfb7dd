//! `ghlsync-dst`: explores seeds of the deterministic simulation, or
//! replays one.
//!
//! ```text
//! cargo run --release -p ghlsync-dst -- --seeds 10000 --ops 1000
//! cargo run --release -p ghlsync-dst -- --replay 4711 --ops 1000
//! ```

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use ghlsync_dst::{Chaos, Covered, Options, Outcome};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Parser)]
#[command(about = "Deterministic simulation of ghl-sync: explore seeds, or replay one")]
struct Args {
    /// How many seeds to explore.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed explored.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// User operations per seed before the world heals.
    #[arg(long, default_value_t = 1000)]
    ops: u64,
    /// Seeds run at once (one thread each); the machine's cores by default.
    #[arg(long)]
    jobs: Option<usize>,
    /// Replay this seed and print its whole trace.
    #[arg(long)]
    replay: Option<u64>,
    /// Stop at the first failing seed (with `--jobs 1`, the number of
    /// seeds it took to find a bug: how the mutation experiments count).
    #[arg(long)]
    until_failure: bool,
    /// Where the shortest failing trace of each failing seed is written.
    #[arg(long, default_value = "target/dst-failures")]
    failures: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = |seed, trace| Options {
        seed,
        ops: args.ops,
        chaos: Chaos::default(),
        trace,
    };
    if let Some(seed) = args.replay {
        // The engine's own logs, when asked for (`RUST_LOG=ghl_sync=debug`).
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
        }
        let outcome = ghlsync_dst::run(&options(seed, true));
        for line in &outcome.trace {
            println!("{line}");
        }
        report_violations(&outcome);
        std::process::exit(i32::from(!outcome.violations.is_empty()));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bar = ProgressBar::new(args.seeds);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {per_sec}, eta {eta} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let next = AtomicU64::new(args.first);
    let explored = AtomicU64::new(0);
    let end = args.first + args.seeds;
    let totals = Mutex::new((Covered::default(), 0u64, Vec::<u64>::new()));
    let started = Instant::now();
    let bar = Arc::new(bar);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    return;
                }
                if args.until_failure && !totals.lock().expect("never poisoned").2.is_empty() {
                    return;
                }
                let outcome = ghlsync_dst::run(&options(seed, false));
                explored.fetch_add(1, Ordering::Relaxed);
                let mut totals = totals.lock().expect("never poisoned");
                totals.0.add(&outcome.covered);
                totals.1 += outcome.ops;
                if !outcome.violations.is_empty() {
                    totals.2.push(seed);
                    bar.println(format!(
                        "seed {seed}: {} violations",
                        outcome.violations.len()
                    ));
                    bar.set_message(format!("{} failing", totals.2.len()));
                }
                bar.inc(1);
            });
        }
    });
    bar.finish();
    let (covered, ops, failing) = totals.into_inner().expect("never poisoned");
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    let explored = explored.into_inner();
    println!(
        "{explored} seeds in {:.1} min ({:.0} seeds/min), {ops} user operations",
        minutes,
        explored as f64 / minutes.max(1e-9)
    );
    print_covered(&covered);
    if failing.is_empty() {
        println!("violations: 0");
        return Ok(());
    }
    std::fs::create_dir_all(&args.failures)
        .with_context(|| format!("creating {}", args.failures.display()))?;
    for seed in &failing {
        let shortest = ghlsync_dst::shortest_failure(&options(*seed, true));
        let path = args.failures.join(format!("seed-{seed}.trace"));
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        for line in &shortest.trace {
            writeln!(file, "{line}")?;
        }
        println!(
            "seed {seed} fails (shortest: {} user operations, trace in {}; replay with --replay {seed} --ops {})",
            shortest.ops,
            path.display(),
            shortest.ops
        );
        report_violations(&shortest);
    }
    std::process::exit(1);
}

fn report_violations(outcome: &Outcome) {
    for violation in &outcome.violations {
        println!("  seed {}: {violation}", outcome.seed);
    }
}

fn print_covered(covered: &Covered) {
    println!(
        "covered: {} gates, {} crashes and restarts, {} webhooks delivered, {} GHL requests (peak {} in 10 s of virtual time)",
        covered.gates, covered.crashes, covered.webhooks, covered.ghl_requests, covered.ghl_peak_10s
    );
    println!(
        "user edits overwritten in the read-write window (no conditional writes): {}; passes the mirror's unique keys stopped: {}",
        covered.window_losses, covered.unique_key_races
    );
    if covered.deletes_held > 0 {
        println!(
            "deletes the mass-delete guard held at the end, as configured: {}",
            covered.deletes_held
        );
    }
    let faults: u64 = covered.faults.values().sum();
    println!("faults: {faults}");
    for (name, n) in &covered.faults {
        println!("  {n:>8}  {name}");
    }
}
