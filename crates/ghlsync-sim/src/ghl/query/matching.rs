//! Whether a contact matches: the filter conditions and groups of a
//! search, and the free-text `query` the listing endpoints share.

use serde_json::Value;

use super::{Filter, Op};
use crate::ghl::model::{normalize_phone, parse_time_ms, Contact};

fn is_date_field(field: &str) -> bool {
    matches!(
        field,
        "dateAdded" | "dateUpdated" | "lastActivity" | "dateOfBirth"
    )
}

/// A range bound, or a field's value, as a number: dates (ISO times or
/// epoch ms) as epoch ms, anything else read as a number.
pub(super) fn bound_value(field: &str, value: &Value) -> Option<f64> {
    if is_date_field(field) {
        match value {
            Value::String(s) => parse_time_ms(s).map(|ms| ms as f64),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    } else {
        value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
    }
}

fn field_number(contact: &Contact, field: &str) -> Option<f64> {
    match field {
        "dateAdded" => Some(contact.added_ms as f64),
        "dateUpdated" => Some(contact.updated_ms as f64),
        _ => {
            let value = contact.data.get(field)?;
            bound_value(field, value)
        }
    }
}

fn text_eq(field: &str, actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::String(a), Value::String(w)) => match field {
            "email" => a.eq_ignore_ascii_case(w.trim()),
            "phone" => normalize_phone(w).as_deref() == Some(a.as_str()),
            _ => a == w,
        },
        (Value::Array(items), w) => items.iter().any(|i| text_eq(field, i, w)),
        (a, w) => a == w,
    }
}

/// Whether a contact meets a filter: one condition, or an AND / OR group.
pub(super) fn matches(contact: &Contact, filter: &Filter) -> bool {
    match filter {
        Filter::Group { any: true, filters } => filters.iter().any(|f| matches(contact, f)),
        Filter::Group {
            any: false,
            filters,
        } => filters.iter().all(|f| matches(contact, f)),
        Filter::Cond { field, op, value } => {
            let actual = contact.data.get(field.as_str()).filter(|v| !v.is_null());
            match op {
                Op::Exists => actual.is_some_and(|v| {
                    v.as_str() != Some("") && v.as_array().is_none_or(|a| !a.is_empty())
                }),
                Op::NotExists => !matches(
                    contact,
                    &Filter::Cond {
                        field: field.clone(),
                        op: Op::Exists,
                        value: Value::Null,
                    },
                ),
                Op::Eq => match value {
                    Value::Array(options) => {
                        actual.is_some_and(|a| options.iter().any(|w| text_eq(field, a, w)))
                    }
                    _ => actual.is_some_and(|a| text_eq(field, a, value)),
                },
                Op::NotEq => !matches(
                    contact,
                    &Filter::Cond {
                        field: field.clone(),
                        op: Op::Eq,
                        value: value.clone(),
                    },
                ),
                Op::Contains => contains(actual, value),
                Op::NotContains => !contains(actual, value),
                Op::Range => {
                    let Some(number) = field_number(contact, field) else {
                        return false;
                    };
                    value.as_object().is_some_and(|bounds| {
                        bounds.iter().all(|(k, v)| {
                            let Some(bound) = bound_value(field, v) else {
                                return false;
                            };
                            match k.as_str() {
                                "gt" => number > bound,
                                "gte" => number >= bound,
                                "lt" => number < bound,
                                "lte" => number <= bound,
                                _ => false,
                            }
                        })
                    })
                }
            }
        }
    }
}

/// `contains`: on an array field (tags) every wanted value must be an
/// element (case-insensitive); on a text field, a case-insensitive
/// substring.
fn contains(actual: Option<&Value>, wanted: &Value) -> bool {
    let wanted: Vec<String> = match wanted {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect(),
        Value::String(s) => vec![s.to_lowercase()],
        other => vec![other.to_string()],
    };
    match actual {
        Some(Value::Array(items)) => wanted.iter().all(|w| {
            items
                .iter()
                .any(|i| i.as_str().map(str::to_lowercase).as_deref() == Some(w.as_str()))
        }),
        Some(Value::String(s)) => {
            let s = s.to_lowercase();
            wanted.iter().all(|w| s.contains(w.as_str()))
        }
        _ => false,
    }
}

/// Free-text match over names, email, phone and company.
pub(super) fn matches_query(contact: &Contact, query: &str) -> bool {
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return true;
    }
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    [
        "contactName",
        "firstName",
        "lastName",
        "email",
        "companyName",
    ]
    .iter()
    .filter_map(|k| contact.data.get(*k).and_then(Value::as_str))
    .any(|v| v.to_lowercase().contains(&query))
        || (digits.len() >= 3
            && contact
                .data
                .get("phone")
                .and_then(Value::as_str)
                .is_some_and(|p| p.contains(&digits)))
}
