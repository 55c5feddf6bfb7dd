//! The command line: parses arguments, loads configuration, and runs one
//! command. Exit codes are part of the interface (see [`Exit`]).

mod auth;
mod check_config;
mod doctor;
mod healthcheck;
mod migrate;
mod ops;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, ConfigError, LoadOptions, Loaded};

/// Exit codes, documented in the README and in `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command did what was asked.
    Ok = 0,
    /// A runtime failure: a database, network or remote side failed.
    Runtime = 1,
    /// Invalid usage or configuration: fix the command line or the config.
    Invalid = 2,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ghlsync",
    version,
    about = "Two-way contact sync between a GoHighLevel location and another system",
    after_help = "Exit codes: 0 success, 1 runtime failure, 2 invalid usage or configuration.\n\
                  Configuration: --config PATH, else ./ghlsync.toml, else /etc/ghlsync/ghlsync.toml;\n\
                  GHLSYNC__SECTION__KEY environment variables override the file."
)]
pub struct Cli {
    /// Configuration file (TOML). Without it, ./ghlsync.toml then
    /// /etc/ghlsync/ghlsync.toml are tried, then defaults and environment.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "PATH",
        env = "GHLSYNC_CONFIG"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: poll, merge and write until SIGTERM or SIGINT, then
    /// finish the writes in flight within sync.shutdown_grace.
    Run,
    /// One full cycle (detect on every pair, drain the outbox), then exit.
    ///
    /// Writes another writer left under a lease (a daemon killed mid-batch)
    /// are waited for up to sync.writer_lease and taken over as their
    /// leases run out; any still leased after that are listed and the exit
    /// code is 1. On SIGTERM/SIGINT it stops reading at once, lets the write
    /// in flight finish within sync.shutdown_grace and exits 0; a second
    /// signal exits 1 at once.
    Sync {
        /// Required: one cycle and exit (the daemon is `ghlsync run`).
        #[arg(long, required = true)]
        once: bool,
        /// Also reconcile every pair (finds deletes), even if not due.
        #[arg(long)]
        reconcile: bool,
        /// Print the cycle's report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The sandbox: read both sides and print the writes a cycle would
    /// make, per side and field, writing nothing anywhere.
    Plan {
        #[arg(long)]
        json: bool,
    },
    /// The initial load: reconcile every pair in full and write what it
    /// finds, with progress.
    ///
    /// Leases and signals as for `sync --once`.
    Backfill {
        #[arg(long)]
        json: bool,
    },
    /// Start both simulators with seeded data, sync them with the daemon,
    /// make edits on both sides, and show what propagated. Needs no
    /// configuration.
    Demo,
    /// Validate the configuration and summarise what would run.
    CheckConfig,
    /// Create or upgrade the mirror store's schema, then exit.
    Migrate,
    /// OAuth 2.0 for GHL sides: authorize an app, show stored tokens.
    #[command(subcommand)]
    Auth(auth::AuthCommand),
    /// Read-only test requests against each GHL side: token, scopes,
    /// contacts, tasks and notes, with latency and rate-limit headroom.
    Doctor {
        /// Check only this side.
        #[arg(long)]
        side: Option<String>,
    },
    /// Ask the running daemon whether it is ready (GET /readyz on
    /// server.bind); exit 0 if so, 1 with the failed checks if not. For
    /// Docker's HEALTHCHECK and other probes.
    Healthcheck {
        /// Only check that the process answers (GET /healthz).
        #[arg(long)]
        live: bool,
        /// Ask this URL instead of the one server.bind implies.
        #[arg(long)]
        url: Option<String>,
    },
    /// Per pair and side: last poll, lag, outbox depth, dead letters, open
    /// conflicts, rate-limit headroom and daily budget (as the daemon last
    /// saw them), token expiry.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The audit trail of one contact (and its tasks and notes): every
    /// change seen, the decision, the write made and its result.
    History {
        /// The contact's id on either side, or its email.
        #[arg(value_name = "ID|EMAIL")]
        contact: String,
        /// Only this pair.
        #[arg(long)]
        pair: Option<String>,
        /// Journal rows per record, newest kept (default 1000).
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Fields parked by the `manual` policy: list, show, resolve.
    #[command(subcommand)]
    Conflicts(ops::ConflictsCommand),
    /// Records and writes that failed for good: list, retry, drop.
    #[command(subcommand)]
    DeadLetters(ops::DeadLettersCommand),
    /// Run a simulator of a system ghlsync talks to, on loopback, for
    /// trying things out without real accounts. Reads no configuration.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A GoHighLevel API v2 stand-in: seeded contacts, tasks and notes,
    /// OAuth, GHL's rate limits, fault injection and signed webhooks.
    Ghl(ghlsync_sim::ghl::GhlSimArgs),
    /// A reference REST CRM standing for "your app" (its own field names,
    /// cursor paging, epoch-millisecond timestamps, HMAC-signed webhooks),
    /// described for the REST connector by config/connectors/app-sim.toml.
    App(ghlsync_sim::app::AppSimArgs),
}

/// Entry point of the `ghlsync` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli).into()
}

fn run(cli: Cli) -> Exit {
    if let Command::Demo = cli.command {
        let log = config::LogSettings {
            level: "warn".into(),
            format: config::LogFormat::Auto,
            values: false,
        };
        return in_runtime(&log, crate::demo::run());
    }
    if let Command::Sim(sim) = cli.command {
        // Simulators need no configuration: log at info for a person.
        let log = config::LogSettings {
            level: "info".into(),
            format: config::LogFormat::Auto,
            values: false,
        };
        return match sim {
            SimCommand::Ghl(args) => in_runtime(&log, ghlsync_sim::ghl::serve_cli(args)),
            SimCommand::App(args) => in_runtime(&log, ghlsync_sim::app::serve_cli(args)),
        };
    }
    let options = LoadOptions {
        file: cli.config.clone(),
        ..LoadOptions::default()
    };
    let loaded = match config::load(&options) {
        Ok(loaded) => loaded,
        Err(error) => return config_failed(&error),
    };
    match cli.command {
        Command::CheckConfig => check_config::run(&loaded),
        Command::Migrate => with_runtime(&loaded, migrate::run),
        Command::Auth(command) => with_runtime(&loaded, |loaded| auth::run(loaded, command)),
        Command::Doctor { side } => with_runtime(&loaded, |loaded| doctor::run(loaded, side)),
        Command::Run => with_runtime(&loaded, sync::run),
        Command::Sync {
            once: _,
            reconcile,
            json,
        } => with_runtime(&loaded, |loaded| sync::once(loaded, reconcile, json)),
        Command::Plan { json } => with_runtime(&loaded, |loaded| sync::plan(loaded, json)),
        Command::Backfill { json } => with_runtime(&loaded, |loaded| sync::backfill(loaded, json)),
        Command::Healthcheck { live, url } => {
            with_runtime(&loaded, |loaded| healthcheck::run(loaded, live, url))
        }
        Command::Status { json } => with_runtime(&loaded, |loaded| ops::status::run(loaded, json)),
        Command::History {
            contact,
            pair,
            limit,
            json,
        } => with_runtime(&loaded, |loaded| {
            ops::history::run(loaded, contact, pair, limit, json)
        }),
        Command::Conflicts(command) => {
            with_runtime(&loaded, |loaded| ops::conflicts::run(loaded, command))
        }
        Command::DeadLetters(command) => {
            with_runtime(&loaded, |loaded| ops::dead_letters::run(loaded, command))
        }
        Command::Sim(_) | Command::Demo => unreachable!("handled above"),
    }
}

fn config_failed(error: &ConfigError) -> Exit {
    eprintln!("error: {error}");
    Exit::Invalid
}

/// Initialises logging and a Tokio runtime, then runs an async command.
fn with_runtime<F, Fut>(loaded: &Loaded, command: F) -> Exit
where
    F: FnOnce(Loaded) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init(&loaded.settings.log);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    block_on(command(loaded.clone()))
}

/// Initialises logging, then runs `future` on a Tokio runtime.
fn in_runtime<Fut>(log: &config::LogSettings, future: Fut) -> Exit
where
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    crate::telemetry::init(log);
    block_on(future)
}

/// Runs `future` to the end on a new Tokio runtime; errors exit 1.
fn block_on<Fut>(future: Fut) -> Exit
where
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return Exit::Runtime;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => Exit::Ok,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "command failed");
            eprintln!("error: {error:#}");
            Exit::Runtime
        }
    }
}
