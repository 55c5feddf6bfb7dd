//! Simulators of the systems ghlsync talks to, for tests, the demo and
//! benchmarks: loopback only, never the internet.
//!
//! What the simulators have in common is written once here: fault
//! injection ([`faults`]), request counters (`counters`), the webhook
//! queue (`webhook_queue`), the pipeline and JSON plumbing (`server`),
//! the handles' shared controls (`controls`) and starting and stopping
//! ([`RunningSim`]).

pub mod app;
mod controls;
mod counters;
pub mod faults;
pub mod ghl;
mod running;
mod server;
mod webhook_queue;

pub use counters::RouteKey;
pub use running::RunningSim;

/// Parses a simulator command's arguments as `ghlsync sim <name>` would
/// (after checking the command's definition), for the CLI unit tests.
#[cfg(test)]
pub(crate) fn parse_args<A: clap::Args>(argv: &[&str]) -> Result<A, clap::Error> {
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Wrapper<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }

    Wrapper::<A>::command().debug_assert();
    Wrapper::<A>::try_parse_from(std::iter::once("sim").chain(argv.iter().copied())).map(|w| w.args)
}
