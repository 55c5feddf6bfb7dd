//! Checking what clients send: contact, task and note bodies. Every
//! problem of a body is reported at once (one message each, naming the
//! field), so a client learns all it has to fix from one answer.

use serde_json::{json, Value};

use super::{Record, CONTACT_STRINGS};

/// Fields the app sets; ignored when a client sends them.
const READ_ONLY: [&str; 4] = ["id", "contact_id", "created_at", "updated_at"];

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field: trimmed; empty or whitespace-only is `null`.
fn nullable_string(key: &str, value: &Value, errors: &mut Vec<String>) -> Option<Value> {
    match value {
        Value::Null => Some(Value::Null),
        Value::String(s) if s.trim().is_empty() => Some(Value::Null),
        Value::String(s) => Some(json!(s.trim())),
        other => {
            errors.push(format!(
                "{key}: expected a string or null, got {}",
                type_name(other)
            ));
            None
        }
    }
}

/// `local@domain.tld`, no whitespace.
fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

/// A mobile number in E.164 after removing spaces, dashes, dots and
/// parentheses: `+`, then 7 to 15 digits, the first not 0. `None` if it
/// is not one.
pub(crate) fn normalize_mobile(text: &str) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = cleaned.strip_prefix('+')?;
    let ok = (7..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(cleaned)
}

/// Checks a contact body. Returns the fields to write: `Null` clears a
/// known field (labels become `[]`) and removes an extra one. On create,
/// at least one of the five string fields must be set.
pub(crate) fn validate_contact(body: &Value, create: bool) -> Result<Record, Vec<String>> {
    let Value::Object(map) = body else {
        return Err(vec![format!(
            "body: expected a JSON object, got {}",
            type_name(body)
        )]);
    };
    let mut errors = Vec::new();
    let mut out = Record::new();
    for (key, value) in map {
        let key = key.as_str();
        if READ_ONLY.contains(&key) {
            continue;
        }
        match key {
            "first_name" | "last_name" | "company" => {
                if let Some(v) = nullable_string(key, value, &mut errors) {
                    out.insert(key.into(), v);
                }
            }
            "email_address" => match nullable_string(key, value, &mut errors) {
                Some(Value::String(email)) if !valid_email(&email) => {
                    errors.push(format!("email_address: {email:?} is not an email address"))
                }
                Some(v) => {
                    out.insert(key.into(), v);
                }
                None => {}
            },
            "mobile" => match nullable_string(key, value, &mut errors) {
                Some(Value::String(mobile)) => match normalize_mobile(&mobile) {
                    Some(m) => {
                        out.insert(key.into(), json!(m));
                    }
                    None => errors.push(format!(
                        "mobile: {mobile:?} is not an E.164 number (e.g. +15125550100)"
                    )),
                },
                Some(v) => {
                    out.insert(key.into(), v);
                }
                None => {}
            },
            "labels" => {
                if let Some(labels) = labels(value, &mut errors) {
                    out.insert(key.into(), labels);
                }
            }
            _ => {
                out.insert(key.into(), value.clone());
            }
        }
    }
    if create
        && errors.is_empty()
        && !CONTACT_STRINGS
            .iter()
            .any(|k| out.get(*k).is_some_and(Value::is_string))
    {
        errors.push(format!(
            "body: a contact needs at least one of {}",
            CONTACT_STRINGS.join(", ")
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `labels`: trimmed, blank and repeated ones dropped; `null` clears them
/// (`[]`). An array with a non-string item is still stored (without that
/// item), the item reported.
fn labels(value: &Value, errors: &mut Vec<String>) -> Option<Value> {
    match value {
        Value::Null => Some(json!([])),
        Value::Array(items) => {
            let mut labels: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => {
                        let s = s.trim();
                        if !s.is_empty() && !labels.iter().any(|l| l == s) {
                            labels.push(s.to_string());
                        }
                    }
                    other => errors.push(format!(
                        "labels[{i}]: expected a string, got {}",
                        type_name(other)
                    )),
                }
            }
            Some(json!(labels))
        }
        other => {
            errors.push(format!(
                "labels: expected an array of strings or null, got {}",
                type_name(other)
            ));
            None
        }
    }
}

/// Checks a task body: `name` (non-empty string; required on create),
/// `details` (string or null), `due_on` (RFC 3339 string or null), `done`
/// (boolean; false by default). Other fields are refused.
pub(crate) fn validate_task(body: &Value, create: bool) -> Result<Record, Vec<String>> {
    let Value::Object(map) = body else {
        return Err(vec![format!(
            "body: expected a JSON object, got {}",
            type_name(body)
        )]);
    };
    let mut errors = Vec::new();
    let mut out = Record::new();
    for (key, value) in map {
        let key = key.as_str();
        if READ_ONLY.contains(&key) {
            continue;
        }
        match key {
            "name" => match value {
                Value::String(s) if !s.trim().is_empty() => {
                    out.insert(key.into(), json!(s.trim()));
                }
                Value::String(_) | Value::Null => {
                    errors.push("name: must be a non-empty string".into())
                }
                other => errors.push(format!("name: expected a string, got {}", type_name(other))),
            },
            "details" => {
                if let Some(v) = nullable_string(key, value, &mut errors) {
                    out.insert(key.into(), v);
                }
            }
            "due_on" => match nullable_string(key, value, &mut errors) {
                Some(Value::String(due)) if chrono::DateTime::parse_from_rfc3339(&due).is_err() => {
                    errors.push(format!(
                        "due_on: {due:?} is not an RFC 3339 time (e.g. 2025-06-01T09:00:00Z)"
                    ))
                }
                Some(v) => {
                    out.insert(key.into(), v);
                }
                None => {}
            },
            "done" => match value {
                Value::Bool(_) => {
                    out.insert(key.into(), value.clone());
                }
                other => errors.push(format!(
                    "done: expected true or false, got {}",
                    type_name(other)
                )),
            },
            other => errors.push(format!(
                "{other}: unknown field (a task has name, details, due_on, done)"
            )),
        }
    }
    if create && errors.is_empty() {
        if !out.contains_key("name") {
            errors.push("name: required".into());
        }
        for (key, default) in [("details", Value::Null), ("due_on", Value::Null)] {
            out.entry(key).or_insert(default);
        }
        out.entry("done").or_insert(json!(false));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Checks a note body: `text` (non-empty string; required on create).
/// Other fields are refused.
pub(crate) fn validate_note(body: &Value, create: bool) -> Result<Record, Vec<String>> {
    let Value::Object(map) = body else {
        return Err(vec![format!(
            "body: expected a JSON object, got {}",
            type_name(body)
        )]);
    };
    let mut errors = Vec::new();
    let mut out = Record::new();
    for (key, value) in map {
        let key = key.as_str();
        if READ_ONLY.contains(&key) {
            continue;
        }
        match key {
            "text" => match value {
                Value::String(s) if !s.trim().is_empty() => {
                    out.insert(key.into(), json!(s));
                }
                Value::String(_) | Value::Null => {
                    errors.push("text: must be a non-empty string".into())
                }
                other => errors.push(format!("text: expected a string, got {}", type_name(other))),
            },
            other => errors.push(format!("{other}: unknown field (a note has text)")),
        }
    }
    if create && errors.is_empty() && !out.contains_key("text") {
        errors.push("text: required".into());
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
