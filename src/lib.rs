//! ghl-sync: keeps the contacts of a GoHighLevel location in two-way sync
//! with another system. The binary in `main.rs` is a thin CLI over this
//! library; tests drive the library and the binary against loopback
//! simulators.

pub mod cli;
pub mod clock;
pub mod config;
pub mod connector;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod engine;
pub mod mapping;
pub mod metrics;
pub mod server;
pub mod store;
pub mod telemetry;

/// mimalloc instead of the system allocator, for every binary linking this
/// library (the daemon, its tests and benchmarks alike): the engine
/// allocates and frees many small values per record, often on different
/// threads (built on a runtime worker, freed on SQLite's), where glibc's
/// allocator spent a quarter of a backfill's CPU time (see
/// docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
