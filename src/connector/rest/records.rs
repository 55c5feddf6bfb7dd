//! From response bodies to [`Record`]s, one record at a time: a record
//! that lacks its id or `updated_at`, or has them in the wrong type, is
//! refused on its own, and the others of its page still go through.

use serde_json::{Map, Value};

use super::spec::{type_name, EntityApi, JsonPointer};
use crate::connector::http::{looks_like_json, snippet};
use crate::connector::{Record, Stamp};
use crate::domain::EntityKind;

/// Why a body could not be read as JSON.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty, expected JSON".to_owned());
    }
    serde_json::from_slice(body).map_err(|error| {
        if looks_like_json(body) {
            format!("the body is not valid JSON ({error})")
        } else {
            format!("the body is not JSON: {}", snippet(body))
        }
    })
}

/// Reads records of one entity as its API describes them.
pub(crate) struct Reader<'a> {
    pub entity: EntityKind,
    pub api: &'a EntityApi,
}

impl Reader<'_> {
    /// The array of records in a listing's body.
    pub fn array<'v>(&self, body: &'v Value) -> Result<&'v [Value], String> {
        match self.api.records_pointer.get(body) {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(format!(
                "records_pointer {} leads to {}, expected a list of records",
                self.api.records_pointer,
                type_name(other)
            )),
            None => Err(format!(
                "the body has nothing at records_pointer {}",
                self.api.records_pointer
            )),
        }
    }

    /// The single record of a `get`, `create` or `update` answer; `None`
    /// when the answer holds `null` there.
    pub fn single<'v>(&self, body: &'v Value) -> Result<Option<&'v Value>, String> {
        match self.api.record_pointer.get(body) {
            Some(Value::Null) => Ok(None),
            Some(value) => Ok(Some(value)),
            None => Err(format!(
                "the body has nothing at record_pointer {}",
                self.api.record_pointer
            )),
        }
    }

    /// One record. `parent` is the contact the call was about, used when
    /// the record does not name its own.
    pub fn record(&self, value: &Value, parent: Option<&str>) -> Result<Record, Rejected> {
        let Value::Object(fields) = value else {
            return Err(Rejected {
                id: None,
                message: format!("the record is {}, expected an object", type_name(value)),
            });
        };
        let id = read_id(value, &self.api.id_pointer)
            .map_err(|message| Rejected { id: None, message })?;
        let reject = |message: String| Rejected {
            id: Some(id.clone()),
            message,
        };
        let updated_at = match self.api.updated_at_pointer.get(value) {
            None | Some(Value::Null) => {
                return Err(reject(format!(
                    "has no updated_at at {}",
                    self.api.updated_at_pointer
                )))
            }
            Some(raw) => self.api.timestamp_format.read(raw).map_err(|why| {
                reject(format!(
                    "updated_at at {} {why}",
                    self.api.updated_at_pointer
                ))
            })?,
        };
        let parent_id = match &self.api.parent_pointer {
            Some(pointer) => match pointer.get(value) {
                None | Some(Value::Null) => match parent {
                    Some(parent) => Some(parent.to_owned()),
                    None => {
                        return Err(reject(format!(
                            "has no contact id at parent_pointer {pointer}"
                        )))
                    }
                },
                Some(raw) => Some(
                    id_text(raw).map_err(|why| reject(format!("contact id at {pointer} {why}")))?,
                ),
            },
            None => parent.map(str::to_owned),
        };
        Ok(Record {
            entity: self.entity,
            id,
            parent_id,
            updated_at,
            stamp: Stamp::Side,
            fields: fields.clone(),
        })
    }
}

/// A record refused on its own.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub id: Option<String>,
    pub message: String,
}

fn read_id(value: &Value, pointer: &JsonPointer) -> Result<String, String> {
    match pointer.get(value) {
        None | Some(Value::Null) => Err(format!("has no id at {pointer}")),
        Some(raw) => id_text(raw).map_err(|why| format!("id at {pointer} {why}")),
    }
}

/// An id as text: a non-empty string or an integer.
pub(crate) fn id_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
        Value::String(_) => Err("is an empty string".to_owned()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        other => Err(format!(
            "is {}, expected a string or an integer",
            type_name(other)
        )),
    }
}

/// Whether a record holds what was sent: every sent field the record has
/// is equal (strings compared trimmed and without case; instants as
/// instants), and at least one was compared.
pub(crate) fn holds(record: &Map<String, Value>, sent: &Map<String, Value>) -> bool {
    let mut compared = 0;
    for (key, value) in sent {
        let Some(found) = record.get(key) else {
            continue;
        };
        if !loosely_equal(found, value) {
            return false;
        }
        compared += 1;
    }
    compared > 0
}

fn loosely_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => {
            let (a, b) = (a.trim(), b.trim());
            if a.eq_ignore_ascii_case(b) {
                return true;
            }
            match (
                chrono::DateTime::parse_from_rfc3339(a),
                chrono::DateTime::parse_from_rfc3339(b),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| loosely_equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| loosely_equal(v, w)))
        }
        (a, b) => a == b,
    }
}

/// A phone number reduced to its digits, for comparison.
pub(crate) fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::rest::spec::TimestampFormat;
    use serde_json::json;

    fn api() -> EntityApi {
        EntityApi {
            timestamp_format: TimestampFormat::EpochMillis,
            ..EntityApi::minimal()
        }
    }

    #[test]
    fn records_need_an_id_and_a_timestamp_of_the_right_type() {
        let api = api();
        let reader = Reader {
            entity: EntityKind::Contact,
            api: &api,
        };
        let ok = reader
            .record(&json!({"id": 7, "updated_at": 1000}), None)
            .unwrap();
        assert_eq!(ok.id, "7");
        let err = reader.record(&json!({"updated_at": 1}), None).unwrap_err();
        assert!(err.message.contains("has no id at /id"), "{}", err.message);
        let err = reader
            .record(&json!({"id": "a", "updated_at": "1000"}), None)
            .unwrap_err();
        assert_eq!(err.id.as_deref(), Some("a"));
        assert!(
            err.message
                .contains("is a string, expected epoch milliseconds"),
            "{}",
            err.message
        );
        let err = reader
            .record(&json!({"id": true, "updated_at": 1}), None)
            .unwrap_err();
        assert!(err.message.contains("is a boolean"), "{}", err.message);
    }

    #[test]
    fn holds_compares_sent_fields_loosely() {
        let record =
            json!({"id": "x", "email": "A@b.co", "due": "2024-01-01T00:00:00.000Z", "n": 1});
        let record = record.as_object().unwrap();
        let sent = json!({"email": "a@b.co ", "due": "2024-01-01T00:00:00Z"});
        assert!(holds(record, sent.as_object().unwrap()));
        let sent = json!({"email": "c@b.co"});
        assert!(!holds(record, sent.as_object().unwrap()));
        let sent = json!({"unknown": 1});
        assert!(!holds(record, sent.as_object().unwrap()));
    }
}
