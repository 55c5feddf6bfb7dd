//! The sync engine: change detection, three-way merge, planning and the
//! outbox writer. Built stage by stage; `merge` decides, per field, what a
//! pair of records should become.

pub mod merge;
