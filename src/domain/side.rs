//! The two sides of a pair, and a value kept once per side.

use std::ops::{Index, IndexMut};

use super::text_enum;

text_enum! {
    /// One of the two sides of a pair. Configuration names them by role
    /// (`[pairs.<name>] ghl = …, app = …`; the app side may be a second GHL
    /// location), and so do field maps and policies (`ghl_wins`). The
    /// mirror has always spelled them `a` (the GHL side) and `b`, which is
    /// what `as_str`, `Display` and the database see; `name` is the role.
    pub enum Side as "side" {
        Ghl => "a",
        App => "b",
    }
}

impl Side {
    /// Both sides, the GHL side first.
    pub const BOTH: [Side; 2] = [Side::Ghl, Side::App];

    /// The other side of the pair.
    pub fn other(self) -> Side {
        match self {
            Side::Ghl => Side::App,
            Side::App => Side::Ghl,
        }
    }

    /// The role's name, as configuration and field maps spell it.
    pub fn name(self) -> &'static str {
        match self {
            Side::Ghl => "ghl",
            Side::App => "app",
        }
    }
}

/// One value for each side of a pair, indexed by [`Side`]: code that does
/// the same for both sides says `sides[side]` instead of matching on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerSide<T> {
    pub ghl: T,
    pub app: T,
}

impl<T> PerSide<T> {
    pub const fn new(ghl: T, app: T) -> Self {
        PerSide { ghl, app }
    }

    /// A value for each side, made by `make(side)`.
    pub fn from_fn(mut make: impl FnMut(Side) -> T) -> Self {
        PerSide {
            ghl: make(Side::Ghl),
            app: make(Side::App),
        }
    }

    /// Each side's value turned into another.
    pub fn map<U>(self, mut f: impl FnMut(Side, T) -> U) -> PerSide<U> {
        PerSide {
            ghl: f(Side::Ghl, self.ghl),
            app: f(Side::App, self.app),
        }
    }

    /// Both values by reference.
    pub fn as_ref(&self) -> PerSide<&T> {
        PerSide {
            ghl: &self.ghl,
            app: &self.app,
        }
    }

    /// Both sides with their values, the GHL side first.
    pub fn iter(&self) -> impl Iterator<Item = (Side, &T)> {
        [(Side::Ghl, &self.ghl), (Side::App, &self.app)].into_iter()
    }
}

impl<T> Index<Side> for PerSide<T> {
    type Output = T;

    fn index(&self, side: Side) -> &T {
        match side {
            Side::Ghl => &self.ghl,
            Side::App => &self.app,
        }
    }
}

impl<T> IndexMut<Side> for PerSide<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Ghl => &mut self.ghl,
            Side::App => &mut self.app,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_is_the_other_of_the_other() {
        for side in Side::BOTH {
            assert_eq!(side.other().other(), side);
            assert_ne!(side.other(), side);
        }
    }

    #[test]
    fn the_mirror_spelling_is_kept() {
        assert_eq!(Side::Ghl.as_str(), "a");
        assert_eq!("b".parse::<Side>().unwrap(), Side::App);
        assert_eq!(Side::App.name(), "app");
    }

    #[test]
    fn per_side_values_are_indexed_by_side() {
        let mut counts = PerSide::new(1, 2);
        counts[Side::App] += 10;
        assert_eq!(counts[Side::Ghl], 1);
        assert_eq!(counts[Side::App], 12);
        let names = PerSide::from_fn(Side::name);
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            [(Side::Ghl, &"ghl"), (Side::App, &"app")]
        );
    }
}
