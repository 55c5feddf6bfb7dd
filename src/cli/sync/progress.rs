//! `backfill`'s progress: a line on a terminal, periodic log lines
//! otherwise, with an estimate of the time left.
//!
//! A backfill has phases: it reads both sides (planning writes as it goes),
//! then drains the outbox. Their rates have nothing in common (a page of
//! 100 records read vs one request per write), so the estimate follows the
//! rate of the phase in progress only, measured since that phase began,
//! and only over this run's work: a rate averaged since the command started
//! counts the whole reading phase as slow writing, and the outbox's total
//! of done writes includes earlier runs' (it estimated "18 m" with ten
//! seconds left).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::engine::Engine;

/// What the backfill is doing, as its counters show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Nothing read or written since the command started.
    Starting,
    /// Reading the sides (records read go up).
    Reading,
    /// Draining the outbox (writes finished go up).
    Writing,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Reading => "reading",
            Phase::Writing => "writing",
        }
    }
}

/// One look at the counters, `at` the time since the command started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Sample {
    pub at: Duration,
    /// Records read since the command started.
    pub read: u64,
    /// Outbox items finished (done, dead or cancelled), in the whole
    /// outbox: earlier runs' included.
    pub finished: u64,
    /// Outbox items still to write.
    pub pending: u64,
}

/// What the progress line says of the phase in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Estimate {
    pub phase: Phase,
    /// Items of the phase per second (records read, or writes finished),
    /// since the phase began; `None` before any.
    pub rate: Option<f64>,
    /// Time left to write the pending items at that rate (writing only:
    /// how much is left to read is not known).
    pub eta: Option<Duration>,
}

/// Follows the phases through successive samples.
#[derive(Debug, Clone)]
pub(super) struct Estimator {
    first: Sample,
    last: Sample,
    phase: Phase,
    /// The last sample before the phase in progress began.
    phase_start: Sample,
}

impl Estimator {
    pub fn new(first: Sample) -> Self {
        Estimator {
            first,
            last: first,
            phase: Phase::Starting,
            phase_start: first,
        }
    }

    /// Writes finished by this run.
    pub fn written(&self) -> u64 {
        self.last.finished.saturating_sub(self.first.finished)
    }

    /// Takes a new sample: the phase it shows, its rate and the time left.
    ///
    /// Writes finishing mean writing, else records read mean reading; a
    /// sample where neither moved (a pause on a 429, a slow page) keeps the
    /// phase, and its rate drops. A new phase is measured from the last
    /// sample before it: nothing of it had happened then.
    pub fn observe(&mut self, sample: Sample) -> Estimate {
        let phase = if sample.finished > self.last.finished {
            Phase::Writing
        } else if sample.read > self.last.read {
            Phase::Reading
        } else {
            self.phase
        };
        if phase != self.phase {
            self.phase = phase;
            self.phase_start = self.last;
        }
        self.last = sample;
        let start = self.phase_start;
        let secs = sample.at.saturating_sub(start.at).as_secs_f64();
        let done = match phase {
            Phase::Starting => None,
            Phase::Reading => Some(sample.read.saturating_sub(start.read)),
            Phase::Writing => Some(sample.finished.saturating_sub(start.finished)),
        };
        let rate = done.filter(|_| secs > 0.0).map(|n| n as f64 / secs);
        let eta = match (phase, rate) {
            (Phase::Writing, Some(rate)) if rate > 0.0 => {
                Some(Duration::from_secs_f64(sample.pending as f64 / rate))
            }
            _ => None,
        };
        Estimate { phase, rate, eta }
    }
}

/// A progress bar on a terminal, periodic log lines otherwise.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    estimator: Option<Estimator>,
}

impl Progress {
    pub fn new(terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            estimator: None,
        }
    }

    /// Takes the counters' first sample, before the backfill starts: what
    /// the outbox already holds is not this run's work.
    pub async fn start(&mut self, engine: &Engine) {
        let first = self.sample(engine).await;
        self.estimator = Some(Estimator::new(first));
    }

    pub fn every(&self) -> Duration {
        if self.bar.is_some() {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(10)
        }
    }

    async fn sample(&self, engine: &Engine) -> Sample {
        let depth = engine.store.outbox_depth().await.unwrap_or_default();
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        Sample {
            at: self.started.elapsed(),
            read: engine.records_read.load(Ordering::Relaxed),
            finished: count(depth.done) + count(depth.dead) + count(depth.cancelled),
            pending: count(depth.pending),
        }
    }

    pub async fn show(&mut self, engine: &Engine) {
        let sample = self.sample(engine).await;
        let mut linked = 0;
        for pair in &engine.pairs {
            linked += engine
                .store
                .count_links(pair.name(), crate::domain::EntityKind::Contact)
                .await
                .unwrap_or(0);
        }
        let estimator = self.estimator.get_or_insert_with(|| Estimator::new(sample));
        let estimate = estimator.observe(sample);
        let written = estimator.written();
        let eta = estimate.eta.map_or("-".to_owned(), |left| {
            humantime::format_duration(Duration::from_secs(left.as_secs())).to_string()
        });
        let rate = estimate
            .rate
            .map_or("-".to_owned(), |rate| format!("{rate:.1}/s"));
        let phase = estimate.phase.label();
        let line = format!(
            "{phase} ({rate}): read {}, contacts linked {linked}, written {written}, pending {}, ETA {eta}",
            sample.read, sample.pending
        );
        match &self.bar {
            Some(bar) => bar.set_message(line),
            None => tracing::info!(
                phase,
                rate = %rate,
                read = sample.read,
                linked,
                written,
                pending = sample.pending,
                eta = %eta,
                "backfill progress"
            ),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, read: u64, finished: u64, pending: u64) -> Sample {
        Sample {
            at: Duration::from_secs(secs),
            read,
            finished,
            pending,
        }
    }

    fn secs(eta: Option<Duration>) -> Option<u64> {
        eta.map(|left| left.as_secs())
    }

    /// Fifteen minutes of reading (1,000 writes planned), then writes at
    /// 10 per second: the estimate is the writing phase's, from its first
    /// sample on, not the whole run's average (which said an hour).
    #[test]
    fn the_estimate_follows_the_rate_of_the_phase_in_progress() {
        // An earlier run left 5,000 done writes in the outbox.
        let mut estimator = Estimator::new(at(0, 0, 5_000, 0));
        for step in 1..=90 {
            let estimate = estimator.observe(at(step * 10, step * 100, 5_000, step * 11));
            assert_eq!(estimate.phase, Phase::Reading);
            assert_eq!(estimate.rate, Some(10.0), "records read per second");
            assert_eq!(estimate.eta, None, "how much is left to read is unknown");
        }
        let estimate = estimator.observe(at(910, 9_000, 5_100, 890));
        assert_eq!(estimate.phase, Phase::Writing);
        assert_eq!(estimate.rate, Some(10.0), "writes per second");
        assert_eq!(secs(estimate.eta), Some(89), "890 writes at 10 per second");
        assert_eq!(estimator.written(), 100, "this run's writes");
        let estimate = estimator.observe(at(960, 9_000, 5_600, 390));
        assert_eq!(secs(estimate.eta), Some(39));
        // The writes slow down (a 429 pause): the estimate follows.
        let estimate = estimator.observe(at(990, 9_000, 5_600, 390));
        assert_eq!(estimate.phase, Phase::Writing, "a stall is still writing");
        assert_eq!(estimate.rate, Some(600.0 / 90.0));
        assert_eq!(secs(estimate.eta), Some(58), "390 writes at 6.7 per second");
    }

    /// Back to reading (a second pass): its rate is measured from its own
    /// start, not from the writing phase before it.
    #[test]
    fn a_new_phase_starts_its_rate_afresh() {
        let mut estimator = Estimator::new(at(0, 0, 0, 0));
        estimator.observe(at(10, 1_000, 0, 100));
        estimator.observe(at(20, 1_000, 50, 50));
        let estimate = estimator.observe(at(30, 1_000, 100, 0));
        assert_eq!(estimate.phase, Phase::Writing);
        assert_eq!(estimate.rate, Some(5.0));
        let estimate = estimator.observe(at(40, 1_020, 100, 2));
        assert_eq!(estimate.phase, Phase::Reading);
        assert_eq!(estimate.rate, Some(2.0), "20 records in this phase's 10 s");
        assert_eq!(estimate.eta, None);
    }
}
