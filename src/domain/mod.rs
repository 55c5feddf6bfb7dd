//! The product's vocabulary: the words every stage of the data path uses
//! (which side of a pair, what kind of record, by which key two records are
//! the same person, the names and ids that cross module edges).
//!
//! This module imports nothing of the crate, so configuration, connectors,
//! mapping, the store and the engine can all depend on it without depending
//! on one another.

mod entity;
mod match_key;
mod purpose;
mod side;
mod text_enum;

pub use entity::EntityKind;
pub use match_key::MatchKey;
pub use purpose::{Priority, Purpose};
pub use side::{PerSide, Side};
pub(crate) use text_enum::text_enum;
pub use text_enum::ParseEnumError;
