//! Simulators of the systems ghlsync talks to, for tests, the demo and
//! benchmarks: loopback only, never the internet.
//!
//! - [`ghl`] stands in for the GoHighLevel API v2 (Contacts, OAuth, rate
//!   limits, signed webhooks), so the daemon can be built, tested, demoed
//!   and benchmarked without a GHL account or a live location;
//! - [`app`] is the reference REST app ("your app"), deliberately unlike
//!   GHL, which the configurable REST connector has to adapt to.
//!
//! The GHL simulator follows the official spec (vendored in the product's
//! `spec/ghl-api/`, from `../shared/ghl-api/`) and, where the live API
//! differs from it, the field notes (`../shared/ghl-api/FIELD-NOTES.md`),
//! saying so where it follows them ("as the live API does"). Faithfulness
//! is the point: a behaviour the simulator invents is one the daemon gets
//! tested against and GHL may not have.
//!
//! This is its own crate of the workspace so the product library
//! (`ghl_sync`) does not carry the simulators: the daemon's binary links
//! them only for `ghlsync sim ghl|app` and `ghlsync demo`, and the
//! product's tests and benchmarks use them as `ghlsync_sim::…`.
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
