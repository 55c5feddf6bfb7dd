//! The limiter's pacing, daily budget and priority.
use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, value.parse().unwrap());
    }
    map
}

#[test]
fn paced_quota_never_exceeds_the_limit_in_any_window() {
    let limits = RateLimits::default();
    let per_interval = limits.paced_per_interval();
    let period = limits.interval / per_interval;
    // GCRA admits burst + floor(window / period) in any window.
    let worst = 1 + (limits.interval.as_nanos() / period.as_nanos()) as u32;
    assert!(worst <= limits.max_per_interval, "worst window {worst}");
    assert!(
        per_interval * 100 >= 95 * limits.max_per_interval,
        "sustains >= 95%"
    );
}

#[tokio::test(start_paused = true)]
async fn reads_stop_at_the_write_reserve_and_writes_at_zero() {
    let limiter = RateLimiter::new(RateLimits {
        write_reserve: 5,
        ..RateLimits::default()
    });
    limiter.observe(&headers(&[("x-ratelimit-daily-remaining", "6")]));
    limiter.acquire(Access::Read, Purpose::Poll).await.unwrap();
    let refused = limiter
        .acquire(Access::Read, Purpose::Poll)
        .await
        .unwrap_err();
    assert_eq!(refused.remaining, 5);
    for _ in 0..5 {
        limiter
            .acquire(Access::Write, Purpose::Write)
            .await
            .unwrap();
    }
    assert!(limiter
        .acquire(Access::Write, Purpose::Write)
        .await
        .is_err());
}

#[tokio::test(start_paused = true)]
async fn zero_remaining_pauses_for_the_interval() {
    let limiter = RateLimiter::new(RateLimits::default());
    limiter.acquire(Access::Read, Purpose::Poll).await.unwrap();
    limiter.observe(&headers(&[
        ("x-ratelimit-remaining", "0"),
        ("x-ratelimit-interval-milliseconds", "10000"),
    ]));
    let start = Instant::now();
    limiter.acquire(Access::Read, Purpose::Poll).await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_429_pauses_every_caller_and_is_counted() {
    let limiter = RateLimiter::new(RateLimits::default());
    limiter.throttled(Duration::from_secs(3));
    let start = Instant::now();
    limiter
        .acquire(Access::Write, Purpose::Write)
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(3));
    assert_eq!(limiter.headroom().throttled, 1);
}

/// Bulk requests saturating the pace do not slow live ones: a live
/// request waits for the next slot, not behind the bulk requests queued
/// before it. (Real time: the GCRA keeps its own clock.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_requests_pass_the_bulk_requests_waiting_for_the_window() {
    let limiter = RateLimiter::new(RateLimits {
        max_per_interval: 40,
        interval: Duration::from_secs(1),
        headroom: 0,
        ..RateLimits::default()
    });
    let mut bulk = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let limiter = limiter.clone();
        bulk.spawn(async move {
            loop {
                limiter
                    .acquire(Access::Read, Purpose::ChildrenSweep)
                    .await
                    .unwrap();
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bulk_before = limiter.headroom().usage.today(Purpose::ChildrenSweep);
    assert!(bulk_before > 0, "bulk work runs while nothing else does");
    let started = std::time::Instant::now();
    for _ in 0..20 {
        limiter.acquire(Access::Read, Purpose::Poll).await.unwrap();
    }
    let took = started.elapsed();
    let bulk_during = limiter.headroom().usage.today(Purpose::ChildrenSweep) - bulk_before;
    bulk.abort_all();
    // The live requests took the slots as they came (20 of 25 ms): the
    // bulk callers, sharing the window as equals, would have taken most.
    assert!(
        bulk_during <= 5,
        "{bulk_during} bulk requests went first while 20 live ones waited ({took:?})"
    );
}

/// When what is left of the day above the write reserve no longer covers
/// what live work is projected to need until UTC midnight, bulk work is
/// refused first; polls go on until the write reserve, writes to zero.
#[test]
fn bulk_stops_first_when_the_live_projection_needs_the_rest_of_the_day() {
    use chrono::TimeZone;
    let noon = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let limiter = RateLimiter::new(RateLimits {
        daily: 200_000,
        write_reserve: 1_000,
        ..RateLimits::default()
    });
    limiter.observe(&headers(&[("x-ratelimit-daily-remaining", "3000")]));
    let mut observed = limiter.observed.lock().unwrap();
    let check =
        |observed: &Observed, access, purpose| limiter.check_daily(observed, access, purpose, noon);
    assert!(check(&observed, Access::Read, Purpose::Reconcile).is_ok());
    // 100 polls in the last minutes: about 0.33 a second, 14,400 more by
    // midnight, more than the 2,000 left above the reserve.
    for second in 0..100 {
        observed
            .counts
            .count(Purpose::Poll, noon - chrono::Duration::seconds(second));
    }
    let refused = check(&observed, Access::Read, Purpose::Reconcile).unwrap_err();
    assert!(
        refused.kept_for_live.is_some_and(|need| need > 2_000),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("bulk work paused"),
        "{refused}"
    );
    assert!(check(&observed, Access::Read, Purpose::ChildrenSweep).is_err());
    assert!(check(&observed, Access::Read, Purpose::Poll).is_ok());
    assert!(check(&observed, Access::Write, Purpose::Write).is_ok());
    // With the day's room back, bulk work resumes.
    observed.daily_remaining = Some(20_000);
    assert!(check(&observed, Access::Read, Purpose::Reconcile).is_ok());
}
