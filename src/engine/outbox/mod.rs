//! The outbox contract: what the stages that plan writes (a decision, a
//! deletion, an operator's conflict resolution) and the writer that
//! performs them agree on, through the store's outbox.
//!
//! - [`WritePayload`]: what an outbox row carries to the writer.
//! - `keys`: every idempotency-key format, one function each, and the way
//!   back from a change's key to the record and time it carries.
//! - [`OutboxWrite`]: the one way a planned write enters a changeset, as
//!   the outbox item together with the `planned` journal row announcing it.

mod keys;
mod payload;
mod plan;

pub(super) use keys::{change_key, change_of_key, link_key, resolution_key, source_in_key};
pub use payload::WritePayload;
pub(super) use plan::OutboxWrite;
