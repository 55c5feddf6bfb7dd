//! The time the sync decides by: poll windows, leases, retry times,
//! reconciliation due dates, deletion times and the read time of a record
//! its side does not date.
//!
//! It is the system clock, except on a thread where the deterministic
//! simulation (`crates/ghlsync-dst`) has set a virtual one: there, hours of
//! polling and lease expiry pass in milliseconds, and two runs of one seed
//! see the same instants. The override is per thread because the
//! simulation runs each seed on a current-thread runtime of its own (every
//! task of that engine on that thread, several seeds side by side); the
//! daemon never sets it, so production reads `Utc::now()` and nothing else.
//!
//! What measures or talks to the outside world keeps real time: the GHL
//! limiter (GHL counts its windows in real seconds), OAuth token expiry,
//! webhook signature freshness, and durations in logs and metrics.

use std::cell::Cell;

use chrono::{DateTime, Utc};

thread_local! {
    static VIRTUAL: Cell<Option<DateTime<Utc>>> = const { Cell::new(None) };
}

/// Now: the virtual time of this thread if one is set, else the system's.
pub fn now() -> DateTime<Utc> {
    VIRTUAL.with(Cell::get).unwrap_or_else(Utc::now)
}

/// A virtual clock on the current thread, in force until dropped; the
/// deterministic simulation moves it with [`advance`].
#[derive(Debug)]
pub struct VirtualClock {
    /// Not `Send`: the clock belongs to the thread it was set on.
    _thread: std::marker::PhantomData<*const ()>,
}

impl VirtualClock {
    /// Sets this thread's time to `at`.
    pub fn start(at: DateTime<Utc>) -> VirtualClock {
        VIRTUAL.with(|clock| clock.set(Some(at)));
        VirtualClock {
            _thread: std::marker::PhantomData,
        }
    }
}

/// Moves this thread's virtual clock forward by `by`; nothing when the
/// thread keeps real time (only the simulation, which set one, calls it).
pub fn advance(by: chrono::Duration) {
    VIRTUAL.with(|clock| clock.set(clock.get().map(|t| t + by)));
}

impl Drop for VirtualClock {
    fn drop(&mut self) {
        VIRTUAL.with(|clock| clock.set(None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_virtual_clock_holds_its_thread_until_dropped() {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        {
            let _clock = VirtualClock::start(start);
            assert_eq!(now(), start);
            advance(chrono::Duration::seconds(90));
            assert_eq!(now(), start + chrono::Duration::seconds(90));
            let other = std::thread::spawn(now).join().unwrap();
            assert!(
                other > start + chrono::Duration::days(300),
                "other threads keep real time"
            );
        }
        assert!(now() > start + chrono::Duration::days(300));
    }
}
