//! Answers read record by record: the envelope is parsed with each
//! record left as raw JSON, then each record on its own, so one that does
//! not fit its model is set aside as [`Unreadable`], with the field at
//! fault and why, and the others of its page still go through.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::error::Call;
use super::models::{Listing, Unreadable};

/// Reads each record of an answer on its own as a `T`.
pub(crate) fn read_records<T: DeserializeOwned>(
    call: &Call,
    kind: &'static str,
    raw: Option<Vec<Box<RawValue>>>,
) -> Listing<T> {
    let raw = raw.unwrap_or_default();
    let mut listing = Listing {
        records: Vec::with_capacity(raw.len()),
        unreadable: Vec::new(),
    };
    for record in &raw {
        match read_record(call, kind, record) {
            Ok(record) => listing.records.push(record),
            Err(unreadable) => listing.unreadable.push(unreadable),
        }
    }
    listing
}

/// Reads one record as a `T`, straight from its text (no intermediate
/// `Value` for a record that fits); only a record that does not is parsed
/// again as a `Value`, to say what is wrong with it.
pub(crate) fn read_record<T: DeserializeOwned>(
    call: &Call,
    kind: &'static str,
    raw: &RawValue,
) -> Result<T, Unreadable> {
    serde_json::from_str(raw.get()).map_err(|error| {
        // The envelope parsed, so the record is valid JSON.
        let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        unreadable::<T>(call, kind, value, &error)
    })
}

/// Why `value` is not a `T`, naming the field at fault.
fn unreadable<T: DeserializeOwned>(
    call: &Call,
    kind: &'static str,
    value: Value,
    error: &serde_json::Error,
) -> Unreadable {
    let mut found = Unreadable {
        call: call.clone(),
        kind,
        id: None,
        updated_at: None,
        field: None,
        reason: String::new(),
        raw: Value::Null,
    };
    let Value::Object(fields) = &value else {
        found.reason = format!("the {kind} is {}, expected an object", type_name(&value));
        found.raw = value;
        return found;
    };
    found.id = fields.get("id").and_then(id_text);
    found.updated_at = ["dateUpdated", "dateAdded"]
        .iter()
        .find_map(|key| super::times::parse(fields.get(*key)?).ok().flatten());
    let (field, reason) = match fields.get("id") {
        None | Some(Value::Null) => (
            Some("id".to_owned()),
            format!("it has no `id` ({})", identity(fields)),
        ),
        Some(Value::String(id)) if id.trim().is_empty() => (
            Some("id".to_owned()),
            format!("its `id` is empty ({})", identity(fields)),
        ),
        _ => match culprit::<T>(fields) {
            Some((field, why)) => {
                let reason = field_reason(&field, &fields[&field], &why);
                (Some(field), reason)
            }
            None => (None, without_position(error)),
        },
    };
    found.field = field;
    found.reason = reason;
    found.raw = value;
    found
}

/// The first field that alone makes a record unreadable as a `T`, with
/// serde's reason. Each field is tried next to a placeholder `id` (the
/// one field every read model requires); only runs for a record that
/// already failed, so its cost does not matter.
fn culprit<T: DeserializeOwned>(fields: &Map<String, Value>) -> Option<(String, String)> {
    fields.iter().find_map(|(key, value)| {
        let mut probe = Map::new();
        if key != "id" {
            probe.insert("id".to_owned(), Value::String("-".to_owned()));
        }
        probe.insert(key.clone(), value.clone());
        T::deserialize(&Value::Object(probe))
            .err()
            .map(|error| (key.clone(), without_position(&error)))
    })
}

/// "field `phone` holds 12345: invalid type: …", the value withheld for
/// a field whose name suggests a secret or an identity number.
fn field_reason(field: &str, value: &Value, why: &str) -> String {
    if is_sensitive(field) {
        format!(
            "field `{field}` holds {} that does not fit (value withheld: the field may be sensitive)",
            type_name(value)
        )
    } else {
        format!("field `{field}` holds {}: {why}", json_snippet(value))
    }
}

/// Field names whose values are not repeated in reasons and logs.
fn is_sensitive(field: &str) -> bool {
    let field = field.to_ascii_lowercase();
    ["ssn", "password", "secret", "token", "apikey", "api_key"]
        .iter()
        .any(|word| field.contains(word))
}

/// What identifies a record without an id, for the operator to find it:
/// the values of its identifying fields that are present.
fn identity(fields: &Map<String, Value>) -> String {
    const KEYS: [&str; 7] = [
        "email",
        "phone",
        "firstName",
        "lastName",
        "title",
        "contactId",
        "dateAdded",
    ];
    let parts: Vec<String> = KEYS
        .iter()
        .filter_map(|key| match fields.get(*key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(format!("{key} {}", json_snippet(value))),
        })
        .collect();
    if parts.is_empty() {
        "no identifying field either".to_owned()
    } else {
        parts.join(", ")
    }
}

/// A value as JSON, cut to 120 characters.
fn json_snippet(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// serde's message without ` at line 1 column 177`: a position inside
/// one record's text says nothing an operator can use, and would make the
/// same record's reason differ between answers.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if error.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    text.strip_suffix(&suffix).unwrap_or(&text).to_owned()
}

/// An id as text: a non-empty string, or an integer (wrong, but it still
/// names the record).
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

fn type_name(value: &Value) -> &'static str {
    crate::connector::rest::spec::type_name(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::ghl::models::{Contact, Task};
    use serde::Deserialize;
    use serde_json::json;

    fn call() -> Call {
        Call {
            method: "GET",
            endpoint: "/contacts/",
            path: "/contacts/".to_owned(),
            location: "loc".to_owned(),
        }
    }

    fn raw(value: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&value).unwrap()
    }

    #[test]
    fn one_bad_record_is_set_aside_and_the_others_are_read() {
        let listing: Listing<Contact> = read_records(
            &call(),
            "contact",
            Some(vec![
                raw(json!({"id": "a", "phone": "+15125550100", "custom": [1]})),
                raw(json!({"id": "b", "phone": 12345, "dateUpdated": "2026-01-02T03:04:05.000Z"})),
                raw(json!({"email": "x@example.com", "dateAdded": "2026-01-01T00:00:00.000Z"})),
                raw(json!({"id": "c", "email": null, "tags": null, "dateUpdated": null})),
                raw(json!("not a record")),
            ]),
        );
        let ids: Vec<&str> = listing.records.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"], "absent and null optional fields are fine");
        assert_eq!(
            listing.records[0].extra["custom"],
            json!([1]),
            "unknown fields kept"
        );
        assert_eq!(listing.len(), 5);

        let [phone, no_id, text] = &listing.unreadable[..] else {
            panic!("{:#?}", listing.unreadable)
        };
        assert_eq!(phone.id.as_deref(), Some("b"));
        assert_eq!(phone.field.as_deref(), Some("phone"));
        assert_eq!(
            phone.reason,
            "field `phone` holds 12345: invalid type: integer `12345`, expected a string"
        );
        assert_eq!(
            phone.updated_at,
            Some("2026-01-02T03:04:05Z".parse().unwrap())
        );
        assert_eq!(no_id.id, None);
        assert_eq!(no_id.field.as_deref(), Some("id"));
        assert!(
            no_id.reason.contains("no `id`") && no_id.reason.contains("x@example.com"),
            "{}",
            no_id.reason
        );
        assert!(no_id.updated_at.is_some(), "dateAdded stands in");
        assert!(
            text.reason.contains("is a string, expected an object"),
            "{}",
            text.reason
        );
        assert!(
            phone.to_string().contains("GET /contacts/") && phone.to_string().contains("contact b"),
            "{phone}"
        );
    }

    #[test]
    fn a_sensitive_field_is_named_without_its_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct WithSsn {
            id: String,
            ssn: Option<String>,
        }
        let error = read_record::<WithSsn>(
            &call(),
            "contact",
            &raw(json!({"id": "a", "ssn": 123456789})),
        )
        .unwrap_err();
        assert_eq!(error.field.as_deref(), Some("ssn"));
        assert!(!error.reason.contains("123456789"), "{}", error.reason);
    }

    #[test]
    fn strict_names_the_first_unreadable_record() {
        let listing: Listing<Task> = read_records(
            &call(),
            "task",
            Some(vec![raw(json!({"id": "t", "completed": "yes"}))]),
        );
        let error = listing.strict().unwrap_err().to_string();
        assert!(
            error.contains("task t") && error.contains("field `completed`"),
            "{error}"
        );
    }
}
