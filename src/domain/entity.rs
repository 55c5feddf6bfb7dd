//! The kinds of record the sync keeps.

use super::text_enum;

text_enum! {
    /// What kind of record a link, outbox item or journal row is about.
    pub enum EntityKind as "entity kind" {
        Contact => "contact",
        Task => "task",
        Note => "note",
        Appointment => "appointment",
    }
}
