//! Formats (how a side writes a value) and normalisers (the one canonical
//! spelling of a value).

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde_json::Value;

/// How a timestamp is written on a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    Rfc3339,
    EpochSeconds,
    EpochMillis,
}

/// How a side holds a field's value. Canonical forms: timestamps are RFC
/// 3339 strings in UTC with milliseconds, dates `YYYY-MM-DD`, lists arrays
/// of strings.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// The value as it is.
    Plain,
    Timestamp(TimeFormat),
    /// A calendar date; read from a date or a timestamp.
    Date,
    /// A list written as one string, e.g. `"vip, 2024"`.
    Delimited(String),
    /// An enumeration: pairs of (native value, canonical value).
    Values(Vec<(Value, Value)>),
}

/// A canonical normalisation, applied after decoding either side's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalize {
    Trim,
    Lowercase,
    /// E.164 phone numbers; numbers without a country code are read in
    /// this region (ISO 3166 alpha-2, e.g. "US").
    E164 {
        default_region: String,
    },
    /// A list as a set: sorted, duplicates and empties removed (tags).
    Set,
}

impl Format {
    /// Native value → canonical value.
    pub fn decode(&self, raw: &Value) -> Result<Value, String> {
        match self {
            Format::Plain => Ok(raw.clone()),
            Format::Timestamp(format) => {
                decode_time(*format, raw).map(|t| Value::String(canonical_time(t)))
            }
            Format::Date => match raw {
                Value::String(text) => {
                    if let Ok(date) = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
                        return Ok(Value::String(date.to_string()));
                    }
                    let time = decode_time(TimeFormat::Rfc3339, raw)?;
                    Ok(Value::String(time.date_naive().to_string()))
                }
                other => Err(format!(
                    "expected a date such as \"2026-01-31\", found {other}"
                )),
            },
            Format::Delimited(separator) => match raw {
                Value::String(text) => Ok(Value::Array(
                    text.split(separator.as_str())
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_owned()))
                        .collect(),
                )),
                Value::Array(_) => Ok(raw.clone()),
                other => Err(format!(
                    "expected a {separator:?}-separated string, found {other}"
                )),
            },
            Format::Values(table) => table
                .iter()
                .find(|(native, _)| loosely_equal(native, raw))
                .map(|(_, canonical)| canonical.clone())
                .ok_or_else(|| {
                    let known: Vec<String> = table.iter().map(|(n, _)| n.to_string()).collect();
                    format!(
                        "value {raw} is not in the value table (known: {})",
                        known.join(", ")
                    )
                }),
        }
    }

    /// Canonical value → native value.
    pub fn encode(&self, canonical: &Value) -> Result<Value, String> {
        match self {
            Format::Plain => Ok(canonical.clone()),
            Format::Timestamp(format) => {
                let time = decode_time(TimeFormat::Rfc3339, canonical)?;
                Ok(match format {
                    TimeFormat::Rfc3339 => Value::String(canonical_time(time)),
                    TimeFormat::EpochSeconds => Value::from(time.timestamp()),
                    TimeFormat::EpochMillis => Value::from(time.timestamp_millis()),
                })
            }
            Format::Date => Ok(canonical.clone()),
            Format::Delimited(separator) => match canonical {
                Value::Array(items) => Ok(Value::String(
                    items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .map_or_else(|| item.to_string(), str::to_owned)
                        })
                        .collect::<Vec<_>>()
                        .join(separator),
                )),
                other => Err(format!("expected a list, found {other}")),
            },
            Format::Values(table) => table
                .iter()
                .find(|(_, value)| loosely_equal(value, canonical))
                .map(|(native, _)| native.clone())
                .ok_or_else(|| {
                    format!("value {canonical} has no native counterpart in the value table")
                }),
        }
    }
}

impl Normalize {
    pub fn apply(&self, value: Value) -> Result<Value, String> {
        match (self, value) {
            (Normalize::Trim, Value::String(s)) => Ok(Value::String(s.trim().to_owned())),
            (Normalize::Lowercase, Value::String(s)) => Ok(Value::String(s.to_lowercase())),
            // Tags: GHL stores them lowercased, so a list compares item by
            // item in one spelling ("lowercase" before "set" also merges
            // `VIP` and `vip`).
            (Normalize::Trim | Normalize::Lowercase, Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(_) => self.apply(item),
                    other => Ok(other),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            (Normalize::E164 { default_region }, Value::String(s)) => {
                e164(&s, default_region).map(Value::String)
            }
            (Normalize::Set, Value::Array(items)) => {
                let mut set: Vec<String> = items
                    .iter()
                    .filter_map(|item| item.as_str().map(|s| s.trim().to_owned()))
                    .filter(|s| !s.is_empty())
                    .collect();
                set.sort();
                set.dedup();
                Ok(Value::Array(set.into_iter().map(Value::String).collect()))
            }
            (Normalize::Set, Value::String(s)) => {
                Normalize::Set.apply(Value::Array(vec![Value::String(s)]))
            }
            (Normalize::Set, other) => Err(format!("expected a list, found {other}")),
            (normalize, other) => Err(format!("{normalize:?} expects text, found {other}")),
        }
    }
}

fn e164(text: &str, region: &str) -> Result<String, String> {
    use rlibphonenumber::{PhoneNumberFormat, PHONE_NUMBER_UTIL};
    let region = phone_region(region).ok_or_else(|| format!("unknown region {region:?}"))?;
    let number = PHONE_NUMBER_UTIL
        .parse(text.trim(), Some(region))
        .map_err(|e| format!("{text:?} is not a phone number: {e}"))?;
    if !number.is_valid() {
        return Err(format!("{text:?} is not a valid phone number"));
    }
    Ok(number.format_as(PhoneNumberFormat::E164).into_owned())
}

/// The region phone numbers without a country code are read in, if
/// libphonenumber's metadata knows it (ISO 3166 alpha-2, e.g. "GB"): what
/// `e164:<region>` and `phone_region` accept.
pub fn phone_region(region: &str) -> Option<rlibphonenumber::Region> {
    let region = region.parse::<rlibphonenumber::Region>().ok()?;
    rlibphonenumber::PHONE_NUMBER_UTIL
        .get_country_code_for_region(region)
        .map(|_| region)
}

fn canonical_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn decode_time(format: TimeFormat, raw: &Value) -> Result<DateTime<Utc>, String> {
    let invalid = || format!("{raw} is not a timestamp in {format:?} format");
    match (format, raw) {
        (TimeFormat::Rfc3339, Value::String(text)) => DateTime::parse_from_rfc3339(text.trim())
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| invalid()),
        (TimeFormat::EpochSeconds, value) => number(value)
            .and_then(|n| Utc.timestamp_opt(n, 0).single())
            .ok_or_else(invalid),
        (TimeFormat::EpochMillis, value) => number(value)
            .and_then(|n| Utc.timestamp_millis_opt(n).single())
            .ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

fn number(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Value-table matching tolerant of `true` vs `"true"` and `1` vs `"1"`,
/// because TOML tables key by string.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    a == b || scalar_text(a).is_some() && scalar_text(a) == scalar_text(b)
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
