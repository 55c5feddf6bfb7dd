//! The day's requests of one budget counted per purpose, the recent pace
//! of each, and the projection to the end of the UTC day that decides when
//! bulk work must stop so live work never runs out.
//!
//! The pace is measured over the last hour in one-minute buckets (at least
//! [`MIN_WINDOW`] is assumed, so the first burst after a start does not
//! project a day of bursts); the projection of a purpose is what it sent
//! today plus its pace times the seconds left until UTC midnight.

use std::collections::VecDeque;

use chrono::{DateTime, NaiveDate, Timelike, Utc};

use crate::domain::{Priority, Purpose};

/// Purposes counted (every [`Purpose`]).
pub const PURPOSES: usize = 6;

/// How far back the pace is measured.
const WINDOW_SECS: i64 = 3600;

/// The shortest window the pace is averaged over.
const MIN_WINDOW: i64 = 300;

/// Requests per purpose, indexed by [`Purpose::index`].
pub type PerPurpose = [u64; PURPOSES];

/// One budget's use today, per purpose, for `status`, `/metrics` and the
/// bulk gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// The UTC day counted.
    pub day: Option<NaiveDate>,
    /// Requests sent today through this limiter (since the daemon started,
    /// plus what an earlier run of the same day recorded: see
    /// [`Counts::resume`]).
    pub today: PerPurpose,
    /// `today` plus the recent pace until UTC midnight.
    pub projected: PerPurpose,
    /// Whether bulk work is held back now because the live work's
    /// projection leaves no room for it.
    pub bulk_paused: bool,
}

impl Usage {
    pub fn today(&self, purpose: Purpose) -> u64 {
        self.today[purpose.index()]
    }

    pub fn projected(&self, purpose: Purpose) -> u64 {
        self.projected[purpose.index()]
    }

    pub fn projected_total(&self) -> u64 {
        self.projected.iter().sum()
    }
}

/// The counters behind [`Usage`].
#[derive(Debug)]
pub struct Counts {
    day: NaiveDate,
    today: PerPurpose,
    /// Per minute since the epoch, the requests of that minute.
    minutes: VecDeque<(i64, PerPurpose)>,
    /// When counting began: the pace is averaged over at most this long.
    since: DateTime<Utc>,
    /// Whether an earlier run's counts of the day were added already.
    resumed: bool,
}

impl Counts {
    pub fn new(now: DateTime<Utc>) -> Self {
        Counts {
            day: now.date_naive(),
            today: [0; PURPOSES],
            minutes: VecDeque::new(),
            since: now,
            resumed: false,
        }
    }

    /// One request of `purpose` sent at `now`.
    pub fn count(&mut self, purpose: Purpose, now: DateTime<Utc>) {
        self.roll(now);
        let slot = purpose.index();
        self.today[slot] += 1;
        let minute = now.timestamp().div_euclid(60);
        match self.minutes.back_mut() {
            Some((at, counts)) if *at == minute => counts[slot] += 1,
            _ => {
                let mut counts = [0; PURPOSES];
                counts[slot] = 1;
                self.minutes.push_back((minute, counts));
            }
        }
        self.forget_before(minute);
    }

    /// Adds what an earlier run of the daemon recorded today, once: a
    /// restart must not make the day look unused.
    pub fn resume(&mut self, day: NaiveDate, earlier: PerPurpose, now: DateTime<Utc>) -> bool {
        self.roll(now);
        if self.resumed || day != self.day {
            return false;
        }
        for (slot, n) in self.today.iter_mut().zip(earlier) {
            *slot += n;
        }
        self.resumed = true;
        true
    }

    /// Whether [`resume`](Self::resume) was done (or is moot: a day begun
    /// while counting has no earlier run).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Starts a new day at UTC midnight (the pace carries over: it
    /// describes the work, not the day).
    fn roll(&mut self, now: DateTime<Utc>) {
        let today = now.date_naive();
        if today != self.day {
            self.day = today;
            self.today = [0; PURPOSES];
            self.resumed = true;
        }
    }

    fn forget_before(&mut self, minute: i64) {
        let oldest = minute - WINDOW_SECS / 60;
        while self.minutes.front().is_some_and(|(at, _)| *at <= oldest) {
            self.minutes.pop_front();
        }
    }

    /// Requests per second of each purpose over the recent window.
    fn pace(&self, now: DateTime<Utc>) -> [f64; PURPOSES] {
        let minute = now.timestamp().div_euclid(60);
        let oldest = minute - WINDOW_SECS / 60;
        let mut sums = [0u64; PURPOSES];
        for (_, counts) in self.minutes.iter().filter(|(at, _)| *at > oldest) {
            for (sum, n) in sums.iter_mut().zip(counts) {
                *sum += n;
            }
        }
        let window = (now - self.since)
            .num_seconds()
            .clamp(MIN_WINDOW, WINDOW_SECS) as f64;
        sums.map(|sum| sum as f64 / window)
    }

    /// Today's counts and their projection to UTC midnight.
    pub fn usage(&mut self, now: DateTime<Utc>) -> Usage {
        self.roll(now);
        let left = seconds_left(now) as f64;
        let pace = self.pace(now);
        let mut projected = self.today;
        for (slot, rate) in projected.iter_mut().zip(pace) {
            *slot += (rate * left).ceil() as u64;
        }
        Usage {
            day: Some(self.day),
            today: self.today,
            projected,
            bulk_paused: false,
        }
    }

    /// What live work (every purpose but bulk) is projected to send from
    /// now to UTC midnight at its recent pace.
    pub fn live_need(&self, now: DateTime<Utc>) -> u64 {
        let left = seconds_left(now) as f64;
        let pace = self.pace(now);
        Purpose::ALL
            .iter()
            .filter(|p| p.priority() == Priority::Live)
            .map(|p| (pace[p.index()] * left).ceil() as u64)
            .sum()
    }
}

/// Seconds from `now` to the next UTC midnight.
fn seconds_left(now: DateTime<Utc>) -> i64 {
    86_400 - i64::from(now.num_seconds_from_midnight())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, m, s).unwrap()
    }

    #[test]
    fn the_projection_adds_the_recent_pace_until_midnight() {
        let mut counts = Counts::new(at(11, 0, 0));
        // One poll a second for an hour.
        for second in 0..3600 {
            let now = at(11, 0, 0) + chrono::Duration::seconds(second);
            counts.count(Purpose::Poll, now);
        }
        let usage = counts.usage(at(12, 0, 0));
        assert_eq!(usage.today(Purpose::Poll), 3600);
        // 12 hours left at about one a second (the window's oldest minute
        // has aged out).
        let projected = usage.projected(Purpose::Poll);
        assert!(
            (3600 + 42_000..=3600 + 43_300).contains(&projected),
            "{projected}"
        );
        assert_eq!(usage.projected(Purpose::Reconcile), 0);
        assert!(counts.live_need(at(12, 0, 0)) >= 42_000);
    }

    #[test]
    fn a_new_day_starts_from_zero_and_an_earlier_run_is_added_once() {
        let mut counts = Counts::new(at(23, 59, 0));
        counts.count(Purpose::Write, at(23, 59, 30));
        let next = at(23, 59, 0) + chrono::Duration::minutes(2);
        assert_eq!(counts.usage(next).today(Purpose::Write), 0);
        let mut counts = Counts::new(at(8, 0, 0));
        let mut earlier = [0; PURPOSES];
        earlier[Purpose::Reconcile.index()] = 500;
        assert!(counts.resume(at(8, 0, 0).date_naive(), earlier, at(8, 0, 0)));
        assert!(!counts.resume(at(8, 0, 0).date_naive(), earlier, at(8, 0, 0)));
        assert_eq!(counts.usage(at(8, 0, 1)).today(Purpose::Reconcile), 500);
    }
}
