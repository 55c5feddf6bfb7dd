//! Deterministic simulation of the whole sync.
//!
//! The production engine of `ghl-sync` (detect, decide, merge, outbox,
//! writer, reconciliation, targeted syncs from webhooks, the mirror on
//! SQLite) runs against two simulated sides behind its own `Connector`
//! trait, with every source of nondeterminism under one seed: the clock
//! (virtual: `ghl_sync::clock`), every random choice, which of the
//! daemon's tasks runs at each step, what users do meanwhile, which calls
//! fail and how, which webhooks are lost, doubled or late, and when the
//! daemon crashes. A seed replays exactly; a failure prints its seed and
//! the shortest run of that seed that still fails.
//!
//! See `docs/SIMULATION.md` for what it covers and what it cannot.

pub mod check;
pub mod faults;
pub mod model;
pub mod run;
pub mod side;
pub mod window;
pub mod workload;
pub mod world;

pub use faults::{Chaos, Covered};
pub use run::{run, Options, Outcome};

/// The shortest run of `options.seed` that still fails: the seed replayed
/// with fewer user operations (a bisection; a seed's choices are the same
/// up to the point where the shorter run stops).
pub fn shortest_failure(options: &Options) -> Outcome {
    let mut failing = run(options);
    if failing.violations.is_empty() {
        return failing;
    }
    let (mut low, mut high) = (0, options.ops);
    while low + 1 < high {
        let middle = (low + high) / 2;
        let shorter = run(&Options {
            ops: middle,
            ..options.clone()
        });
        if shorter.violations.is_empty() {
            low = middle;
        } else {
            high = middle;
            failing = shorter;
        }
    }
    failing
}
