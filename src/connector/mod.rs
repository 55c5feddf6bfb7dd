//! The systems on either side of a pair. Each connector speaks its side's
//! API; the engine sees them through one trait (added with the REST
//! connector).

pub mod ghl;
