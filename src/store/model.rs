//! Values the mirror's tables share.
//!
//! Each table's own records live beside its statements (`links`,
//! `outbox`, `journal`, `conflicts`, `dead_letters`, `cursors`, `pairs`);
//! `store/mod.rs` re-exports them all. What stays here belongs to no one
//! table: [`Change`], the keep/set/clear of a nullable column that link
//! updates and cursor advances both use. (The token row, `StoredToken`,
//! belongs to the GHL connector, which defines what it keeps; `tokens.rs`
//! stores it.)
//!
//! Enumerations are stored as short lowercase TEXT (guarded by CHECK
//! constraints in the schema), declared with `domain::text_enum!` in the
//! module of their table.

/// A change to a nullable column: keep it, set it, or clear it to NULL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Change<T> {
    /// Leave the stored value as it is.
    #[default]
    Keep,
    /// Store this value.
    Set(T),
    /// Store NULL.
    Clear,
}

impl<T> Change<T> {
    /// 0 = keep, 1 = set, 2 = clear: the flag bound next to the value in
    /// statements that apply a change.
    pub(crate) fn flag(&self) -> i64 {
        match self {
            Change::Keep => 0,
            Change::Set(_) => 1,
            Change::Clear => 2,
        }
    }

    /// The value to bind (NULL unless `Set`).
    pub(crate) fn value(&self) -> Option<&T> {
        match self {
            Change::Set(v) => Some(v),
            _ => None,
        }
    }

    /// Folds a later change into this one (later `Set`/`Clear` win).
    pub(crate) fn then(self, later: Change<T>) -> Change<T> {
        match later {
            Change::Keep => self,
            other => other,
        }
    }
}
