//! Unit tests of the fault planner and the fault flags.

use super::args::{parse_error_rate, parse_probability};
use super::*;
use rand::SeedableRng;

#[test]
fn queued_faults_come_first_and_lost_responses_wait_for_a_write() {
    let mut state = FaultState::new(
        FaultConfig {
            storm_429: true,
            ..FaultConfig::default()
        },
        ChaCha8Rng::seed_from_u64(1),
    );
    state.push(FaultKind::LoseResponse, 1);
    state.push(FaultKind::Reset, 1);
    let get = state.plan(&Method::GET);
    assert_eq!(get.before, Some(FaultKind::Reset));
    let get = state.plan(&Method::GET);
    assert_eq!(get.before, Some(FaultKind::TooManyRequests));
    let patch = state.plan(&Method::PATCH);
    assert_eq!(patch.after, Some(FaultKind::LoseResponse));
    assert_eq!(patch.before, None);
    assert_eq!(
        state.plan(&Method::PATCH).before,
        Some(FaultKind::TooManyRequests)
    );
}

#[test]
fn fault_flags_parse() {
    assert_eq!(parse_error_rate("503=0.5").unwrap(), (503, 0.5));
    assert!(parse_error_rate("503=2").is_err());
    assert!(parse_error_rate("200=0.1").is_err());
    assert!(parse_probability("1.5").is_err());
    assert_eq!(parse_probability("0.25").unwrap(), 0.25);
}
