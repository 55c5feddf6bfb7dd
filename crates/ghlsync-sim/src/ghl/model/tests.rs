//! Unit tests of the model's formatting and normalisation.

use super::*;

#[test]
fn phones_normalise_to_e164() {
    assert_eq!(
        normalize_phone("+1 888-888-8888").as_deref(),
        Some("+18888888888")
    );
    assert_eq!(
        normalize_phone("(888) 888-8888").as_deref(),
        Some("+18888888888")
    );
    assert_eq!(
        normalize_phone("+44 20 7946 0958").as_deref(),
        Some("+442079460958")
    );
    assert_eq!(normalize_phone("12"), None);
}

#[test]
fn times_format_with_milliseconds() {
    assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(parse_time_ms("1970-01-01T00:00:01.5Z"), Some(1500));
    assert_eq!(parse_time_ms("1970-01-02"), Some(86_400_000));
}
