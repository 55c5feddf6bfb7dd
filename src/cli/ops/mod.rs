//! The operator's commands: `status`, `history`, `conflicts` and
//! `dead-letters`. Each prints a table for people and, with `--json`, one
//! JSON document for scripts. The read-only ones open only the mirror;
//! those that act on the sides (resolving a conflict, retrying a dead
//! letter) build the engine like `sync` does.

pub mod conflicts;
pub mod dead_letters;
pub mod history;
mod output;
pub mod status;

pub use conflicts::ConflictsCommand;
pub use dead_letters::DeadLettersCommand;
