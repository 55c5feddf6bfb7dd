//! The fields by which one person is recognised on both sides.

use std::fmt;

/// A field by which the same person is recognised on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchKey {
    Email,
    Phone,
}

impl fmt::Display for MatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MatchKey::Email => "email",
            MatchKey::Phone => "phone",
        })
    }
}
