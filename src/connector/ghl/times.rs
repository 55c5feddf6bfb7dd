//! GHL's times as the live API spells them. The official spec shows more
//! than one spelling: contacts and tasks use ISO 8601 with milliseconds
//! and `Z` (`ContactsSearchSchema.dateAdded`, `TaskSchema.dueDate`), while
//! `GetEventSchema` gives `dateAdded`, `dateUpdated`, `startTime` and
//! `endTime` as `"2021-07-16 11:00:00"`, with neither a `T` nor a zone.
//! The field notes add epoch milliseconds in search answers. A time that
//! fits none of them makes its record unreadable, with the field named
//! (`reading.rs`); an empty string is no time at all.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Wall-clock spellings without a zone, read as UTC: GHL gives no zone, and
/// what the sync compares is one record's versions with each other, which
/// one consistent reading keeps in order.
const ZONELESS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];

/// A time in any spelling GHL uses, `None` for no time (`null`, `""`).
pub fn parse(value: &Value) -> Result<Option<DateTime<Utc>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        Value::String(text) => parse_text(text.trim()).map(Some),
        Value::Number(n) => n
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .map(Some)
            .ok_or_else(|| format!("{n} is not a time in epoch milliseconds")),
        other => Err(format!("expected a time, found {other}")),
    }
}

fn parse_text(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    ZONELESS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|at| at.and_utc())
        .or_else(|| {
            text.parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
        })
        .ok_or_else(|| format!("`{text}` is not a time GHL is known to send"))
}

/// `#[serde(deserialize_with)]` for an optional time field.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value = Value::deserialize(d)?;
    parse(&value).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_spelling_ghl_uses_reads_as_the_same_instant() {
        let want = "2021-07-16T11:30:00Z".parse::<DateTime<Utc>>().unwrap();
        for spelled in [
            json!("2021-07-16T11:30:00.000Z"),
            json!("2021-07-16T11:30:00Z"),
            json!("2021-07-16T11:30:00+00:00"),
            json!("2021-07-16T13:30:00+02:00"),
            json!("2021-07-16 11:30:00"),
            json!("2021-07-16T11:30:00"),
            json!(1626435000000_i64),
            json!("1626435000000"),
        ] {
            assert_eq!(parse(&spelled), Ok(Some(want)), "{spelled}");
        }
    }

    #[test]
    fn no_time_is_none_and_a_wrong_one_is_named() {
        assert_eq!(parse(&json!(null)), Ok(None));
        assert_eq!(parse(&json!("  ")), Ok(None));
        let error = parse(&json!("next tuesday")).unwrap_err();
        assert!(error.contains("next tuesday"), "{error}");
        assert!(parse(&json!(true)).is_err());
    }
}
